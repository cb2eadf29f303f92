"""File > Save Selected Layers with an image and its labels selected: the napari-vos overlay writer
draws the labels over the video as a movie or a GIF, with the image's contrast limits, at a video's
own rate (a time-lapse at 10 frames/s), and refuses what it cannot draw naming the layers."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from _layers import sliding_square
from _save_dialog import save_as

pytest.importorskip("napari")
from napari.components import ViewerModel  # noqa: E402

from napari_vos._widgets.overlay_writer import playback_rate  # noqa: E402
from napari_vos.data.animated_images import animated_image_calibration, read_animated_image  # noqa: E402
from napari_vos.data.writers import davis_palette  # noqa: E402


@pytest.fixture(autouse=True)
def _plugins():
    import npe2

    npe2.PluginManager.instance().discover()


def _save_as_overlay(layers, path):
    return save_as(layers, path, "overlay")


def test_a_video_and_its_labels_save_as_a_movie_at_the_videos_own_rate(tmp_path):
    av = pytest.importorskip("av")
    from napari_vos.data.video_files import read_video_file

    frames, truth = sliding_square(5, (48, 64))
    colour = np.repeat(frames[..., None], 3, axis=-1)
    v = ViewerModel()
    image = v.add_image(colour, rgb=True, name="movie", scale=(0.04, 1, 1), units=("s", "pixel", "pixel"))
    labels = v.add_labels(truth, name="movie labels", scale=(0.04, 1, 1))
    written = _save_as_overlay([image, labels], tmp_path / "result")  # the dialog's name, no extension typed
    assert written == [str(tmp_path / "result.mp4")]
    with av.open(written[0]) as movie:
        assert movie.streams.video[0].average_rate == 25
    shown = np.asarray(read_video_file(written[0])).astype(int)
    redness = shown[..., 0] - shown[..., 2]  # object 1's palette colour is red
    assert shown.shape == (5, 48, 64, 3) and redness[truth > 0].mean() > redness[truth == 0].mean() + 40


def test_a_16_bit_time_lapse_is_drawn_with_its_contrast_limits_as_a_gif_at_10_frames_a_second(tmp_path,
                                                                                            monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # a GIF needs no PyAV
    frames, truth = sliding_square(4, (40, 56))
    v = ViewerModel()
    video = np.full(frames.shape, 1500, np.uint16)  # mid-way in the contrast limits below
    image = v.add_image(video, name="cells", scale=(5, 0.65, 0.65), units=("minute", "µm", "µm"))
    image.contrast_limits = (1000, 2000)
    labels = v.add_labels(truth, name="cells labels", scale=(5, 0.65, 0.65))
    v.layers.selection = {image, labels}
    written = v.layers.save(str(tmp_path / "cells.gif"), selected=True, plugin="napari-vos")
    assert written == [str(tmp_path / "cells.gif")]
    shown = read_animated_image(written[0]).astype(int)
    assert np.abs(shown[truth == 0] - 128).max() <= 2  # 1500 between 1000 and 2000: mid grey
    tint = 0.55 * 127.5 + 0.45 * davis_palette()[1]
    from scipy.ndimage import binary_erosion

    inside = shown[binary_erosion(truth > 0, np.ones((1, 5, 5), bool))]  # clear of the outline
    assert np.abs(inside - tint).max() <= 8
    assert animated_image_calibration(written[0]).frame_interval == pytest.approx(0.1)  # a time-lapse: 10 /s


@pytest.mark.parametrize("scale, units, fps", [
    ((0.04, 1, 1), ("s", "pixel", "pixel"), 25.0),
    ((40, 1, 1), ("millisecond", "pixel", "pixel"), 25.0),
    ((0.5, 1, 1), None, 2.0),  # a time step without a unit: seconds
    ((2, 1, 1), ("second", "pixel", "pixel"), 10.0),  # frames further apart than a second: a time-lapse
    ((5, 1, 1), ("min", "µm", "µm"), 10.0),
    ((1, 1, 1), None, 10.0),  # no time calibration
    ((2.5, 1, 1), ("µm", "µm", "µm"), 10.0),  # a Z step, no frame interval
])
def test_the_playback_rate_follows_the_time_scale(scale, units, fps):
    assert playback_rate(scale, units) == pytest.approx(fps)


def test_what_cannot_be_drawn_is_refused_naming_the_layers_and_nothing_is_written(tmp_path):
    from napari_vos._widgets.overlay_writer import OverlayNotWritten, write_overlay

    frames, truth = sliding_square(3, (32, 32))
    v = ViewerModel()
    image, labels = v.add_image(frames, name="video"), v.add_labels(truth, name="labels")
    with pytest.raises(OverlayNotWritten, match=r"name it out\.mp4 or out\.gif, not out\.tif"):
        write_overlay(str(tmp_path / "out.tif"), [image.as_layer_data_tuple(), labels.as_layer_data_tuple()])
    other = v.add_labels(truth[:, :16], name="half labels")
    with pytest.raises(OverlayNotWritten, match=r"the labels layer 'half labels' is \(3, 16, 32\) but the image "
                                                r"layer 'video' is \(3, 32, 32\) frames of \(Y, X\)"):
        write_overlay(str(tmp_path / "o.gif"), [image.as_layer_data_tuple(), other.as_layer_data_tuple()])
    one = v.add_image(frames[0], name="one frame")
    with pytest.raises(OverlayNotWritten, match=r"'one frame' has shape \(32, 32\)"):
        write_overlay(str(tmp_path / "o.gif"), [one.as_layer_data_tuple(), labels.as_layer_data_tuple()])
    assert not list(tmp_path.iterdir())


def test_from_the_console_a_refusal_says_why_rather_than_napari_calling_the_plugin_no_writer(tmp_path, monkeypatch):
    # napari's layers.save(..., plugin=) drops a writer's ValueError and warns only "Given plugin
    # 'napari-vos' is not a valid writer": the refusal must reach the user as its own message
    from napari_vos._widgets.overlay_writer import OverlayNotWritten

    frames, truth = sliding_square(3, (32, 32))
    v = ViewerModel()
    one, labels = v.add_image(frames[0], name="one frame"), v.add_labels(truth[0], name="labels")
    v.layers.selection = {one, labels}
    with pytest.raises(OverlayNotWritten, match=r"'one frame' has shape \(32, 32\)"):
        v.layers.save(str(tmp_path / "o.gif"), selected=True, plugin="napari-vos")
    monkeypatch.setitem(sys.modules, "av", None)
    image, labels = v.add_image(frames, name="video"), v.add_labels(truth, name="video labels")
    v.layers.selection = {image, labels}
    with pytest.raises(OverlayNotWritten, match=r"needs PyAV.*or write a GIF \(o\.gif\)"):
        v.layers.save(str(tmp_path / "o.mp4"), selected=True, plugin="napari-vos")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("colormap, gamma, expected", [
    ("green", 1.0, (0, 128, 0)),  # mid-way through black-green
    ("gray", 0.5, (180, 180, 180)),  # 0.5 ** 0.5 = 0.707 of white
    ("magma", 1.0, None),  # magma's own colour half-way
])
def test_a_grey_video_is_drawn_in_its_colormap_and_gamma_as_napari_shows_it(tmp_path, colormap, gamma, expected):
    from napari.utils.colormaps import ensure_colormap

    frames, truth = sliding_square(3, (32, 32))
    v = ViewerModel()
    image = v.add_image(np.full(frames.shape, 150, np.uint8), name="video", colormap=colormap, gamma=gamma,
                        contrast_limits=(100, 200))
    labels = v.add_labels(truth, name="video labels")
    written = _save_as_overlay([image, labels], tmp_path / "o.gif")
    shown = read_animated_image(written[0]).astype(int)
    if expected is None:
        expected = np.round(np.asarray(ensure_colormap(colormap).map(np.array([0.5])))[0, :3] * 255)
    assert np.abs(shown[truth == 0] - np.asarray(expected)).max() <= 3


def test_nan_pixels_of_a_float_video_are_black_not_an_undefined_cast(tmp_path):
    frames, truth = sliding_square(3, (32, 32))
    video = frames.astype(np.float32)
    video[:, :4] = np.nan  # napari shows NaN in its colormaps' nan colour: transparent, over the black canvas
    v = ViewerModel()
    image, labels = v.add_image(video, name="video", contrast_limits=(0, 255)), v.add_labels(truth, name="labels")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        written = _save_as_overlay([image, labels], tmp_path / "o.gif")
    shown = read_animated_image(written[0]).astype(int)
    assert shown[:, :4].max() <= 6 and shown[:, 4:][truth[:, 4:] == 0].max() > 20


def test_labels_painted_at_a_coarser_level_of_a_multiscale_video_are_drawn_over_that_level(tmp_path):
    # the widget propagates over the level the labels match (a coarse one keeps a large stack fast),
    # so its output is that level's size: the overlay draws over that level, not refuses level 0
    frames, truth = sliding_square(3, (64, 64))
    v = ViewerModel()
    image = v.add_image([frames, frames[:, ::2, ::2]], multiscale=True, name="pyramid")
    labels = v.add_labels(truth[:, ::2, ::2], name="pyramid labels", scale=(1, 2, 2))
    written = _save_as_overlay([image, labels], tmp_path / "o.gif")
    shown = read_animated_image(written[0]).astype(int)
    assert shown.shape == (3, 32, 32, 3)
    redness = shown[..., 0] - shown[..., 2]
    assert redness[truth[:, ::2, ::2] > 0].mean() > redness[truth[:, ::2, ::2] == 0].mean() + 40


@pytest.mark.parametrize("name", ["clip.jpeg", "clip.webp", "clip.apng", "clip.m4v", "clip.svg", "clip.npy"])
def test_a_name_for_another_format_is_refused_not_given_a_second_extension(tmp_path, name):
    # "clip.webp" written as clip.webp.mp4 is neither what was asked nor named for what it is
    from napari_vos._widgets.overlay_writer import OverlayNotWritten

    frames, truth = sliding_square(3, (32, 32))
    v = ViewerModel()
    image, labels = v.add_image(frames, name="video"), v.add_labels(truth, name="labels")
    with pytest.raises(OverlayNotWritten, match=rf"name it clip\.mp4 or clip\.gif, not {name.replace('.', '[.]')}"):
        _save_as_overlay([image, labels], tmp_path / name)
    assert not list(tmp_path.iterdir())


def test_an_output_a_run_is_still_filling_is_refused_and_saved_once_it_has_its_record(tmp_path):
    """A run's output before its provenance comes (the widget marks it napari_vos_output) has empty
    frames ahead of the run: an overlay of it would pass for the result."""
    from napari_vos._widgets.overlay_writer import OverlayNotWritten

    frames, truth = sliding_square(3, (32, 32))
    v = ViewerModel()
    image = v.add_image(frames, name="video")
    output = v.add_labels(truth, name="video labels propagated (flow)", metadata={"napari_vos_output": True})
    v.layers.selection = {image, output}
    with pytest.raises(OverlayNotWritten, match=r"'video labels propagated \(flow\)' is still being filled by a "
                                                r"Propagate run"):
        v.layers.save(str(tmp_path / "o.gif"), selected=True, plugin="napari-vos")
    assert not list(tmp_path.iterdir())
    output.metadata = {"napari_vos": {"complete": False, "frames_segmented": "0-1"}}  # cancelled: its record came
    assert v.layers.save(str(tmp_path / "o.gif"), selected=True, plugin="napari-vos") == [str(tmp_path / "o.gif")]


def test_the_command_line_and_the_save_dialog_play_a_video_at_one_rate(tmp_path):
    """`napari-vos overlay` played a TIFF stack of 0.04 s frames at 10 frames/s (only movies and
    animated images kept their rate) where the save dialog's writer played the same frames at 25."""
    import tifffile

    from napari_vos.cli_overlay import _playback_fps
    from napari_vos.data.calibration import read_tiff_calibration

    for interval, unit, fps in ((0.04, "s", 25.0), (40.0, "ms", 25.0), (300.0, "s", 10.0), (5.0, "min", 10.0)):
        path = tmp_path / f"v{interval}{unit}.tif"
        tifffile.imwrite(path, np.zeros((3, 8, 8), np.uint8), imagej=True,
                         metadata={"axes": "TYX", "finterval": interval, "tunit": unit})
        calibration = read_tiff_calibration(path)
        assert _playback_fps(str(path), calibration, None) == pytest.approx(fps)
        assert playback_rate([interval, 1, 1], [unit, "pixel", "pixel"]) == pytest.approx(fps)


def test_a_3d_time_lapse_and_its_labels_are_drawn_with_the_planes_run_side_by_side(tmp_path, monkeypatch):
    from napari_vos._widgets.overlay_writer import write_overlay
    from napari_vos.data.plane_montage import GAP

    monkeypatch.setitem(sys.modules, "av", None)
    frames, truth = sliding_square(4, (40, 56))
    video = np.stack([frames] * 3, axis=1)  # (T, Z, Y, X)
    ids = np.zeros(video.shape, np.uint8)
    ids[:, 0], ids[:, 2] = truth, truth * 2  # planes 0 and 2 hold labels, plane 1 none
    v = ViewerModel()
    image, labels = v.add_image(video, name="volume"), v.add_labels(ids, name="volume labels")
    assert write_overlay(str(tmp_path / "z.gif"), [image.as_layer_data_tuple(), labels.as_layer_data_tuple()]) == \
        [str(tmp_path / "z.gif")]
    shown = np.asarray(read_animated_image(tmp_path / "z.gif")).astype(int)
    assert shown.shape == (4, 40, 2 * 56 + GAP, 3)  # planes 0 and 2, side by side: the planes holding labels
    assert (shown[:, :, 56:56 + GAP] == 255).all()  # the line between them
    for cell, colour in ((slice(0, 56), davis_palette()[1]), (slice(56 + GAP, None), davis_palette()[2])):
        inside = shown[:, :, cell][truth > 0]
        assert np.abs(inside - colour).sum(-1).min() <= 30  # each plane's object outlined in its own colour
    # a record naming the planes run: those, whatever else holds labels
    labels.metadata["napari_vos"] = {"z_planes_run": [1, 2], "complete": True}
    write_overlay(str(tmp_path / "run.gif"), [image.as_layer_data_tuple(), labels.as_layer_data_tuple()])
    shown = np.asarray(read_animated_image(tmp_path / "run.gif")).astype(int)
    assert shown.shape == (4, 40, 2 * 56 + GAP, 3)
    inside = shown[:, :, :56][truth > 0]
    assert np.abs(inside - davis_palette()[1]).sum(-1).min() > 30  # plane 1 holds no labels: nothing outlined
