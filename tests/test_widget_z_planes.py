"""3D + time image layers (T, Z, Y, X[, C]) are propagated one Z plane at a time: the plane under the Z
slider (or ``plane=``), read lazily; the labels are painted in a layer of the image's shape (read at
that plane) or are one (Y, X) frame; the output has the image's shape with that plane filled, the maps
are one plane deep at its Z, and an output's edit checks look at its plane only."""
from __future__ import annotations

import numpy as np
import pytest

from napari_vos.data.plane_view import PlaneView, plane_of

T, Z, Y, X = 6, 4, 48, 64
SCALE = (2.0, 3.0, 0.5, 0.5)
TRANSLATE = (0.0, 1.5, 10.0, -3.0)


def _volume(rgb: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A (T, Z, Y, X) stack whose disc moves right over time, further right on deeper planes, and its truth."""
    yy, xx = np.mgrid[:Y, :X]
    video = np.full((T, Z, Y, X), 30, np.uint8)
    truth = np.zeros((T, Z, Y, X), np.uint8)
    for t in range(T):
        for z in range(Z):
            disc = (yy - 24) ** 2 + (xx - 14 - 3 * t - 6 * z) ** 2 < 81
            video[t, z][disc] = 220
            truth[t, z][disc] = 1
    if rgb:
        video = np.repeat(video[..., None], 3, axis=-1)
    return video, truth


def _painted(truth: np.ndarray, z: int, t: int = 0) -> np.ndarray:
    labels = np.zeros_like(truth)
    labels[t, z] = truth[t, z]
    return labels


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1))


def _model_viewer(video: np.ndarray, labels: np.ndarray | None, rgb: bool = False):
    from napari.components import ViewerModel

    viewer = ViewerModel()
    viewer.add_image(video, name="volume", scale=SCALE, translate=TRANSLATE, rgb=rgb)
    if labels is not None:
        n = labels.ndim  # a (Y, X) frame at the image's pixel placement
        viewer.add_labels(labels, name="painted", scale=SCALE[-n:], translate=TRANSLATE[-n:])
    return viewer


def test_a_plane_view_reads_only_the_frames_asked_for_at_its_plane():
    """PlaneView over a non-numpy stack reads stack[t, z] when frame t is asked for, nothing up front."""
    video, _ = _volume()

    class Counted:  # a zarr-like stack that records every read
        shape, dtype, ndim, chunks = video.shape, video.dtype, video.ndim, (2, 1, Y, X)

        def __init__(self) -> None:
            self.reads: list = []

        def __getitem__(self, key):
            self.reads.append(key)
            return video[key]

    stack = Counted()
    view = PlaneView(stack, 2)
    assert view.shape == (T, Y, X) and view.dtype == np.uint8 and view.chunks == (2, Y, X) and stack.reads == []
    assert np.array_equal(view[3], video[3, 2]) and stack.reads == [(3, 2)]
    assert np.array_equal(view[1:3], video[1:3, 2]) and np.array_equal(view[4, 5:9], video[4, 2, 5:9])
    with pytest.raises(IndexError, match="without"):
        view[..., 0]
    with pytest.raises(ValueError, match=r"Z plane 4 is outside the stack's planes 0\.\.3"):
        PlaneView(stack, 4)
    # a numpy stack's plane is a writable view, nothing copied
    out = np.zeros((T, Z, Y, X), np.uint8)
    plane_of(out, 1)[2] = 7
    assert out[2, 1].all() and not out[:, [0, 2, 3]].any()


def test_the_console_propagates_the_plane_under_the_z_slider():
    """propagate_layers on a (T, Z, Y, X) image: the plane on screen, the output of the image's shape at its
    placement with only that plane filled, maps one plane deep at that plane's Z, the plane in the record."""
    from napari_vos.console import propagate_layers

    video, truth = _volume()
    viewer = _model_viewer(video, _painted(truth, 2))
    viewer.dims.set_point(1, TRANSLATE[1] + 2 * SCALE[1])  # the Z slider at plane 2
    run = propagate_layers(viewer, "volume", "painted", method="flow", maps=True)
    out = run.labels
    assert out.name == "painted propagated (flow, Z plane 2)"
    assert out.data.shape == (T, Z, Y, X) and tuple(out.scale) == SCALE and tuple(out.translate) == TRANSLATE
    assert min(_iou(out.data[t, 2] > 0, truth[t, 2]) for t in range(T)) > 0.8
    assert not out.data[:, [0, 1, 3]].any()
    # stored plane by plane: the plane's frames lie together, so numpy's 2 MiB huge pages are not
    # committed one per frame written
    assert out.data[:, 2].flags.c_contiguous
    record = out.metadata["napari_vos"]
    assert record["z_plane"] == 2 and record["z_planes"] == Z
    assert run.maps
    for layer in run.maps:
        assert layer.data.shape[:2] == (T, 1)
        assert layer.scale[1] == SCALE[1] and layer.translate[1] == pytest.approx(TRANSLATE[1] + 2 * SCALE[1])
        assert layer.data[:, 0].any()


def test_plane_picks_another_plane_and_its_paint_is_read_there():
    from napari_vos.console import propagate_layers

    video, truth = _volume()
    labels = _painted(truth, 1)
    labels[0, 3] = truth[0, 3]  # two painted planes: each run reads its own
    viewer = _model_viewer(video, labels)
    for z in (1, 3):
        out = propagate_layers(viewer, "volume", "painted", method="flow", plane=z).labels
        assert min(_iou(out.data[t, z] > 0, truth[t, z]) for t in range(T)) > 0.8
        assert not np.delete(out.data, z, axis=1).any()


def test_a_plane_without_paint_is_refused_naming_the_painted_planes():
    from napari_vos.console import propagate_layers

    video, truth = _volume()
    viewer = _model_viewer(video, _painted(truth, 2))
    with pytest.raises(ValueError, match=r"empty on every frame at Z plane 0: .*move the Z slider to a painted "
                                         r"plane \(2\)"):
        propagate_layers(viewer, "volume", "painted", method="flow", plane=0)
    assert [layer.name for layer in viewer.layers] == ["volume", "painted"]  # no empty output left behind
    with pytest.raises(ValueError, match=r"Z plane 7 is outside image layer 'volume''s planes 0\.\.3"):
        propagate_layers(viewer, "volume", "painted", method="flow", plane=7)


def test_labels_of_another_shape_and_plane_on_a_time_lapse_are_refused():
    from napari_vos.console import propagate_layers

    video, truth = _volume()
    viewer = _model_viewer(video, None)
    viewer.add_labels(truth[:, 0], name="painted")  # (T, Y, X) beside a (T, Z, Y, X) image: napari shows it on Z, Y, X
    with pytest.raises(ValueError, match=r"must match the image layer 'volume': \(T, Z, Y, X\) = \(6, 4, 48, 64\) or "
                                         r"one frame \(Y, X\) = \(48, 64\)"):
        propagate_layers(viewer, "volume", "painted", method="flow")
    from napari.components import ViewerModel

    flat = ViewerModel()
    flat.add_image(video[:, 0], name="volume")
    flat.add_labels(_painted(truth, 0)[:, 0], name="painted")
    with pytest.raises(ValueError, match=r"plane=1 picks a Z plane of a \(T, Z, Y, X\) image layer"):
        propagate_layers(flat, "volume", "painted", method="flow", plane=1)


def test_one_painted_frame_rgb_planes_and_a_single_plane_axis():
    """A (Y, X) labels frame annotates the plane's frame on screen; a (T, Z, Y, X, 3) colour stack and a
    (T, 1, Y, X) stack (OME's one plane kept as an axis) are propagated the same way."""
    from napari_vos.console import propagate_layers

    video, truth = _volume(rgb=True)
    viewer = _model_viewer(video, truth[0, 1], rgb=True)
    out = propagate_layers(viewer, "volume", "painted", method="flow", frame=0, plane=1).labels
    assert out.data.shape == (T, Z, Y, X) and min(_iou(out.data[t, 1] > 0, truth[t, 1]) for t in range(T)) > 0.8
    grey, truth = _volume()
    single = _model_viewer(grey[:, 2:3], _painted(truth, 2)[:, 2:3])
    out = propagate_layers(single, "volume", "painted", method="flow").labels
    assert out.data.shape == (T, 1, Y, X) and min(_iou(out.data[t, 0] > 0, truth[t, 2]) for t in range(T)) > 0.8


def test_channel_layers_of_a_volume_are_read_at_the_same_plane():
    from napari_vos.console import propagate_layers

    video, truth = _volume()
    viewer = _model_viewer(video, _painted(truth, 2))
    viewer.add_image(video // 2, name="second", scale=SCALE, translate=TRANSLATE)
    run = propagate_layers(viewer, "volume", "painted", method="flow", plane=2, channel_layers=["second"])
    assert min(_iou(run.labels.data[t, 2] > 0, truth[t, 2]) for t in range(T)) > 0.8
    viewer.add_image(video[:, 0], name="flat", scale=SCALE[1:], translate=TRANSLATE[1:])
    with pytest.raises(ValueError, match=r"channel layer 'flat' has shape \(6, 48, 64\) but the image is "
                                         r"\(6, 4, 48, 64\)"):
        propagate_layers(viewer, "volume", "painted", method="flow", plane=2, channel_layers=["flat"])


def test_an_outputs_edits_are_looked_for_on_its_plane_only():
    """A re-run from a plane output names the frames edited at that plane; paint on other planes is no edit."""
    from napari_vos._widgets.frame_edits import edited_frames
    from napari_vos.console import propagate_layers

    video, truth = _volume()
    viewer = _model_viewer(video, _painted(truth, 2))
    out = propagate_layers(viewer, "volume", "painted", method="flow", plane=2).labels
    assert edited_frames(out, range(T)) == []
    out.data[4, 0, 5, 5] = 3  # another plane
    assert edited_frames(out, range(T)) == []
    out.data[4, 2, 5, 5] = 3
    assert edited_frames(out, range(T)) == [4]
    # a forward re-run from frame 3 of the output keeps frames 0-2 of its plane and names frame 4's edit
    with pytest.warns(UserWarning, match=r"frame 4 of 'painted propagated \(flow, Z plane 2\)' was changed"):
        again = propagate_layers(viewer, "volume", out, method="flow", frame=3, plane=2, all_painted=False,
                                 direction="forward").labels
    assert np.array_equal(again.data[:3, 2], out.data[:3, 2]) and not again.data[:, 0].any()


def test_the_widget_propagates_the_plane_on_screen(make_napari_viewer, qtbot):
    """In a real viewer: the Z slider on plane 2, Propagate clicked: an output of the image's shape with plane 2
    segmented, and the status line names the plane."""
    from _widget_run import NO_DISPLAY, click, docked_widget, wait_done

    if NO_DISPLAY:
        pytest.skip("the napari widget tests need a display: run them under `xvfb-run -a`")
    video, truth = _volume()
    viewer = make_napari_viewer()
    viewer.add_image(video, name="volume", scale=SCALE, translate=TRANSLATE)
    viewer.add_labels(_painted(truth, 2), name="painted", scale=SCALE, translate=TRANSLATE)
    widget = docked_widget(viewer, "volume", "painted")
    assert widget.propagate_button.isEnabled() and "time-lapse" not in widget.status.text()
    viewer.dims.set_current_step(1, 1)  # an unpainted plane: refused, nothing added
    click(qtbot, widget.propagate_button)
    wait_done(qtbot, widget)
    assert "empty on every frame at Z plane 1" in widget.status.text() and len(viewer.layers) == 2
    viewer.dims.set_current_step(1, 2)
    viewer.dims.set_current_step(0, 0)
    click(qtbot, widget.propagate_button)
    wait_done(qtbot, widget)
    out = viewer.layers["painted propagated (flow, Z plane 2)"]
    assert out.data.shape == (T, Z, Y, X) and tuple(out.scale) == SCALE
    assert min(_iou(out.data[t, 2] > 0, truth[t, 2]) for t in range(T)) > 0.8 and not out.data[:, :2].any()
    assert out.metadata["napari_vos"]["z_plane"] == 2
    viewer.add_labels(truth[:, 0], name="flat labels")
    widget.labels_combo.setCurrentText("flat labels")
    assert "do not match image 'volume' (6, 4, 48, 64)" in widget.status.text()


def test_a_plane_output_is_saved_as_its_plane_and_opens_again_at_its_place(tmp_path):
    """The napari-vos labels TIFF of a plane output holds the plane's (T, Y, X) labels, as `propagate --z`
    writes them; opened again it is the output layer as it was (shape, plane, placement, record), which
    can start a correction round; labels painted on another plane are not dropped: such an output is
    saved whole, as (T, Z, Y, X) labels, and opens again as it was."""
    import tifffile

    from napari_vos.console import open_labels_layer, propagate_layers, save_labels_layer

    video, truth = _volume()
    viewer = _model_viewer(video, _painted(truth, 2))
    out = propagate_layers(viewer, "volume", "painted", method="flow", plane=2).labels
    path = save_labels_layer(out, tmp_path / "plane.tif")
    assert np.array_equal(tifffile.imread(path), out.data[:, 2])
    again = open_labels_layer(viewer, path, name="reopened")
    assert again.data.shape == (T, Z, Y, X) and np.array_equal(again.data, out.data)
    assert tuple(again.scale) == pytest.approx(SCALE) and tuple(again.translate) == pytest.approx(TRANSLATE)
    record = again.metadata["napari_vos"]
    assert record["z_plane"] == 2 and "layer_z" not in record
    rerun = propagate_layers(viewer, "volume", "reopened", method="flow", frame=3, all_painted=False,
                             direction="forward", plane=2).labels  # a correction round from the reopened output
    assert rerun.data.shape == (T, Z, Y, X) and np.array_equal(rerun.data[:3, 2], out.data[:3, 2])
    assert min(_iou(rerun.data[t, 2] > 0, truth[t, 2]) for t in range(T)) > 0.8
    out.data[1, 0, 3, 3] = 5  # a stroke on another plane: the plane alone would lose it
    whole = save_labels_layer(out, tmp_path / "again.tif")
    assert tifffile.imread(whole).shape == (T, Z, Y, X)
    again = open_labels_layer(viewer, whole, name="whole")
    assert np.array_equal(again.data, out.data) and again.data[1, 0, 3, 3] == 5
    assert tuple(again.scale) == pytest.approx(SCALE) and tuple(again.translate) == pytest.approx(TRANSLATE)
    assert again.metadata["napari_vos"]["z_plane"] == 2


def _pyramid_viewer(video: np.ndarray, labels: np.ndarray, halve_z: bool = False):
    """A multiscale (T, Z, Y, X) image (level 1 halves Y and X; also Z with ``halve_z``) and labels
    painted at the given shape, placed at the matching level's pixels."""
    from napari.components import ViewerModel

    coarse = video[:, ::2, ::2, ::2] if halve_z else video[:, :, ::2, ::2]
    viewer = ViewerModel()
    viewer.add_image([video, coarse], name="pyramid", scale=SCALE, translate=TRANSLATE, multiscale=True)
    level = 1 if labels.shape[-1] != video.shape[-1] else 0
    scale = (SCALE[0], SCALE[1], SCALE[2] * 2 ** level, SCALE[3] * 2 ** level)
    viewer.add_labels(labels, name="painted", scale=scale, translate=TRANSLATE)
    return viewer


def test_a_multiscale_volume_is_propagated_on_the_level_the_labels_match_through_the_plane():
    """An OME-Zarr-like (T, Z, Y, X) pyramid that halves Y and X: labels painted at level 1 give a level-1
    output of (T, Z, Y/2, X/2) at that level's scale, the plane filled; at level 0 a full-size one."""
    from napari_vos.console import propagate_layers

    video, truth = _volume()
    coarse_truth = truth[:, :, ::2, ::2]
    viewer = _pyramid_viewer(video, _painted(coarse_truth, 2))
    run = propagate_layers(viewer, "pyramid", "painted", method="flow", plane=2, maps=True)
    out = run.labels
    assert out.data.shape == (T, Z, Y // 2, X // 2)
    np.testing.assert_allclose(out.scale, (SCALE[0], SCALE[1], SCALE[2] * 2, SCALE[3] * 2))
    for layer in run.maps:  # one plane deep at plane 2's depth
        assert layer.data.shape[:2] == (T, 1) and layer.translate[1] == pytest.approx(TRANSLATE[1] + 2 * SCALE[1])
    assert min(_iou(out.data[t, 2] > 0, coarse_truth[t, 2]) for t in range(T)) > 0.7
    assert not np.delete(out.data, 2, axis=1).any()
    record = out.metadata["napari_vos"]
    assert record["image_level"] == 1 and record["z_plane"] == 2 and record["z_planes"] == Z
    viewer = _pyramid_viewer(video, _painted(truth, 1))
    out = propagate_layers(viewer, "pyramid", "painted", method="flow", plane=1).labels
    assert out.data.shape == (T, Z, Y, X) and out.metadata["napari_vos"]["image_level"] == 0
    assert min(_iou(out.data[t, 1] > 0, truth[t, 1]) for t in range(T)) > 0.8


def test_a_pyramid_level_that_halves_z_is_not_one_to_paint_on():
    """A level with fewer Z planes has no plane under the slider's: labels of its shape are refused, naming
    the levels that keep every plane."""
    from napari_vos.console import propagate_layers

    video, truth = _volume()
    viewer = _pyramid_viewer(video, _painted(truth, 2)[:, ::2, ::2, ::2], halve_z=True)
    with pytest.raises(ValueError, match=r"must match one level of the multiscale image 'pyramid': \(T, Z, Y, X\) or "
                                         r"one frame \(Y, X\) = \(6, 4, 48, 64\) / \(48, 64\)$"):
        propagate_layers(viewer, "pyramid", "painted", method="flow", plane=2)
    viewer.layers.remove("painted")
    viewer.add_labels(_painted(truth, 2), name="full", scale=SCALE, translate=TRANSLATE)
    out = propagate_layers(viewer, "pyramid", "full", method="flow", plane=2).labels
    assert out.data.shape == (T, Z, Y, X) and min(_iou(out.data[t, 2] > 0, truth[t, 2]) for t in range(T)) > 0.8


def test_the_widget_propagates_a_multiscale_volume_on_screen(make_napari_viewer, qtbot):
    """In a real viewer: a (T, Z, Y, X) pyramid with labels at its coarse level, the Z slider on plane 2,
    Propagate clicked: a level-1 output with plane 2 segmented (was refused as a multiscale 3D + time stack)."""
    from _widget_run import NO_DISPLAY, click, docked_widget, wait_done

    if NO_DISPLAY:
        pytest.skip("the napari widget tests need a display: run them under `xvfb-run -a`")
    video, truth = _volume()
    coarse_truth = truth[:, :, ::2, ::2]
    viewer = make_napari_viewer()
    viewer.add_image([video, video[:, :, ::2, ::2]], name="pyramid", scale=SCALE, translate=TRANSLATE,
                     multiscale=True)
    viewer.add_labels(_painted(coarse_truth, 2), name="painted", scale=(*SCALE[:2], SCALE[2] * 2, SCALE[3] * 2),
                      translate=TRANSLATE)
    widget = docked_widget(viewer, "pyramid", "painted")
    assert widget.propagate_button.isEnabled(), widget.status.text()
    viewer.dims.set_current_step(1, 2)
    viewer.dims.set_current_step(0, 0)
    click(qtbot, widget.propagate_button)
    wait_done(qtbot, widget)
    out = viewer.layers["painted propagated (flow, Z plane 2)"]
    assert out.data.shape == (T, Z, Y // 2, X // 2)
    assert min(_iou(out.data[t, 2] > 0, coarse_truth[t, 2]) for t in range(T)) > 0.7
    viewer.add_labels(np.zeros((T, Z, 10, 10), np.uint8), name="odd")
    widget.labels_combo.setCurrentText("odd")
    assert "do not match image 'pyramid' (6, 4, 48, 64) or (6, 4, 24, 32)" in widget.status.text()


def test_a_volume_napari_opened_at_scale_1_is_told_its_files_scale_with_the_z_step(tmp_path):
    """napari's own TIFF reader opens a calibrated (T, Z, Y, X) file at scale 1: the note gives the scale of
    its four axes, the Z step in its place (the frame interval was put on the Z axis, the Z step left out)."""
    import warnings

    import npe2
    import tifffile
    from napari.components import ViewerModel

    from napari_vos.console import propagate_layers

    video, truth = _volume()
    path = tmp_path / "volume.tif"
    tifffile.imwrite(path, video, imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"axes": "TZYX", "unit": "um", "finterval": 30.0, "spacing": 2.0})
    npe2.PluginManager.instance().discover()  # as napari's app does at start (a bare ViewerModel does not)
    viewer = ViewerModel()
    image = viewer.open(path)[0]
    assert image.data.shape == (T, Z, Y, X) and tuple(image.scale) == (1.0, 1.0, 1.0, 1.0)
    viewer.add_labels(_painted(truth, 2), name="painted")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        propagate_layers(viewer, image, "painted", method="flow", plane=2)
    notes = " ".join(str(w.message) for w in said)
    assert "viewer.layers['volume'].scale = (30, 2, 0.5, 0.5)" in notes, notes
