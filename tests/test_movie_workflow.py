"""A scientist's movie workflow end to end: a phone's portrait movie painted in napari (whose reader
shows it as stored, sideways) and given to the command line (which reads it upright), the frame
interval napari's reader leaves out, and a variable-frame-rate movie's uneven spacing, each said
where the user meets it."""
import warnings
from fractions import Fraction

import numpy as np
import pytest
import tifffile
from PIL import Image

av = pytest.importorskip("av")

from _widget_run import click, needs_display, wait_done  # noqa: E402
from conftest import moving_square_video  # noqa: E402
from napari_vos.cli import main  # noqa: E402
from napari_vos.data.video_files import VariableFrameRate, read_video_file  # noqa: E402

turnable = pytest.mark.skipif(not hasattr(av.video.stream.VideoStream, "set_display_rotation"),
                              reason="this PyAV cannot write a display rotation (it reads one from 15 on)")


def write_movie(path, frames, rate=30, rotation=None, times_ms=None):
    """Encode (T, Y, X, 3) ``frames`` losslessly (FFV1); ``times_ms``: each frame's time stamp, for
    unevenly spaced frames."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=Fraction(rate))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "bgr0"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if times_ms is not None:  # stamps in ms, not rounded to the 1 / rate grid
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = int(times_ms[i]), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def portrait_movie(tmp_path, n_frames=4):
    """A portrait movie as a phone stores it: landscape frames with a display rotation of 270
    degrees; returns the movie, its upright truth and its truth as stored."""
    frames, truth = moving_square_video(n_frames=n_frames, size=(96, 64), step=2)  # upright: portrait
    stored = np.rot90(frames, 1, axes=(1, 2))
    movie = write_movie(tmp_path / "phone.mkv", stored, rotation=-90)
    return movie, truth, np.rot90(truth, 1, axes=(1, 2))


@turnable
def test_labels_painted_on_a_turned_movies_stored_frames_are_refused_naming_the_turn(tmp_path, capsys):
    movie, _, stored_truth = portrait_movie(tmp_path)
    mask = tmp_path / "painted.png"
    Image.fromarray((stored_truth[0] * 255).astype(np.uint8)).save(mask)
    assert main(["propagate", str(movie), str(mask), "-o", str(tmp_path / "o.tif"), "--method", "flow",
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "as stored, sideways" in err and "np.rot90(labels, 3, axes=(-2, -1))" in err and "Traceback" not in err


@turnable
def test_overlay_of_a_turned_movies_stored_labels_names_the_turn_and_the_turned_labels_draw(tmp_path, capsys):
    movie, truth, stored_truth = portrait_movie(tmp_path)
    tifffile.imwrite(tmp_path / "saved.tif", stored_truth.astype(np.uint8))  # an output saved from napari
    assert main(["overlay", str(movie), str(tmp_path / "saved.tif"), "-o", str(tmp_path / "o.mp4")]) == 2
    assert "np.rot90(labels, 3, axes=(-2, -1))" in capsys.readouterr().err
    turned = np.rot90(tifffile.imread(tmp_path / "saved.tif"), 3, axes=(-2, -1))  # the fix the error gives
    assert np.array_equal(turned, truth)
    tifffile.imwrite(tmp_path / "upright.tif", np.ascontiguousarray(turned))
    assert main(["overlay", str(movie), str(tmp_path / "upright.tif"), "-o", str(tmp_path / "o.mp4")]) == 0


def test_a_movie_with_unevenly_spaced_frames_is_noted_and_an_even_one_is_not(tmp_path, capsys):
    frames, truth = moving_square_video(n_frames=6)
    uneven = write_movie(tmp_path / "vfr.mkv", frames, times_ms=[0, 33, 66, 150, 183, 216])
    with pytest.warns(VariableFrameRate, match=r"0\.033 to 0\.084 s apart"):
        read_video_file(uneven)
    with warnings.catch_warnings():
        warnings.simplefilter("error", VariableFrameRate)
        read_video_file(write_movie(tmp_path / "cfr.mkv", frames))
    Image.fromarray((truth[0] * 255).astype(np.uint8)).save(tmp_path / "first.png")
    assert main(["propagate", str(uneven), str(tmp_path / "first.png"), "-o", str(tmp_path / "o.tif"),
                 "--method", "flow", "--device", "cpu"]) == 0
    assert "note: " in capsys.readouterr().err.split("variable frame rate")[0][-400:]


def _run_widget_on_movie(make_napari_viewer, qtbot, movie, truth):
    """Open ``movie`` with napari's own reader, paint frame 1 with ``truth``, run the Propagate widget
    (flow, CPU); the viewer, the widget and the output layer."""
    from napari_vos._widgets.propagate_widget import PropagateWidget

    viewer = make_napari_viewer()
    [image] = viewer.open(str(movie))
    painted = np.zeros(image.data.shape[:3], np.uint8)
    painted[1] = truth[1]
    viewer.add_labels(painted, name="painted")
    widget = PropagateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image_combo.setCurrentText(image.name)
    widget.labels_combo.setCurrentText("painted")
    widget.select_method("flow")
    widget.device_combo.setCurrentText("cpu")
    click(qtbot, widget.propagate_button)
    wait_done(qtbot, widget)
    return viewer, widget, viewer.layers["painted propagated (flow)"]


@needs_display
def test_the_widget_notes_the_frame_interval_naparis_movie_reader_leaves_out(make_napari_viewer, qtbot, tmp_path):
    frames, truth = moving_square_video(n_frames=4, step=2)
    movie = write_movie(tmp_path / "clip.mp4", frames, rate=25)
    viewer, widget, out = _run_widget_on_movie(make_napari_viewer, qtbot, movie, truth)
    said = widget.status.text() + widget.status.toolTip()
    assert "0.04 s between frames (napari's reader leaves it out)" in said, said
    assert "viewer.layers['clip'].scale = (0.04, 1, 1)" in said
    assert out.data.shape == truth.shape


@needs_display
@turnable
def test_the_widget_notes_a_turned_movie_shown_as_stored(make_napari_viewer, qtbot, tmp_path):
    movie, _, stored_truth = portrait_movie(tmp_path)
    viewer, widget, out = _run_widget_on_movie(make_napari_viewer, qtbot, movie, stored_truth)
    said = widget.status.text() + widget.status.toolTip()
    assert "display rotation of 270 degrees" in said and "np.rot90(labels, 3, axes=(-2, -1))" in said, said
    assert out.data.shape == stored_truth.shape  # napari's frames, as stored
