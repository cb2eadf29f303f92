"""What a user sees while and after the widget runs (a real viewer under `xvfb-run -a`): locked
choices, a status line that keeps the method and the start's note, refusals beside an empty bar,
kept frames named after an error, map contrast from 0, labels drawn elsewhere than the image."""
from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest
from _layers import first_frame_only, sliding_square
from _widget_run import click as _click
from _widget_run import setup_widget

if os.environ.get("QT_QPA_PLATFORM") == "offscreen" or (
        sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))):
    pytest.skip("the napari widget tests need a display: run them under `xvfb-run -a`", allow_module_level=True)
pytest.importorskip("napari")
from napari.components import ViewerModel  # noqa: E402

from napari_vos import propagate_layers  # noqa: E402
from napari_vos._widgets.propagate_widget import PropagateWidget, _speed  # noqa: E402

pytestmark = pytest.mark.gui


def _setup(make_napari_viewer, n_frames=6):
    """The shared docked widget, with the slider on unpainted frame 2: the start line gets a note."""
    viewer, widget, truth = setup_widget(make_napari_viewer, n_frames=n_frames)
    viewer.dims.set_current_step(0, 2)
    return viewer, widget, truth


def _slow_flow(monkeypatch, seconds=0.3, fail_at=None):
    """flow's step takes ``seconds`` (so a test can look at the widget mid-run); the ``fail_at``-th
    step raises a NaN-like ValueError."""
    from napari_vos.methods.flow import FlowMethod

    original, calls = FlowMethod.step, []

    def step(self, image):
        calls.append(1)
        time.sleep(seconds)
        if fail_at is not None and len(calls) == fail_at:
            raise ValueError("frame 3 contains NaN or infinite values; fill or mask them first")
        return original(self, image)

    monkeypatch.setattr(FlowMethod, "step", step)


def test_choices_are_locked_while_running_and_the_status_keeps_method_and_note(make_napari_viewer, qtbot, monkeypatch):
    viewer, widget, _ = _setup(make_napari_viewer)
    _slow_flow(monkeypatch)
    assert widget.method_combo.isEnabled() and not widget.checkpoint_edit.isEnabled()  # flow takes no checkpoint
    _click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: widget.status.text().startswith("flow: frame"), timeout=20_000)
    text = widget.status.text()
    assert "frame 2 is not painted; starting from painted frame 0" in text  # still there after the first frame
    for control in (widget.method_combo, widget.image_combo, widget.labels_combo, widget.frame_spin,
                    widget.maps_checkbox, widget.max_side_spin, widget.options_edit, widget.direction_combo):
        assert not control.isEnabled()
    assert widget.cancel_button.isEnabled()
    started = widget.frame_spin.value()
    viewer.dims.set_current_step(0, started + 1)  # scrolling mid-run: the locked box keeps the run's frame
    assert widget.frame_spin.value() == started
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    assert widget.frame_spin.value() == started + 1  # and follows the slider again once the run is over
    assert widget.method_combo.isEnabled() and widget.labels_combo.isEnabled() and widget.options_edit.isEnabled()
    assert not widget.checkpoint_edit.isEnabled()  # each control gets its own state back
    assert widget.status.text().startswith("done") and "starting from painted frame 0" in widget.status.text()


def test_a_refused_run_empties_the_bar_and_an_error_names_the_kept_frames(make_napari_viewer, qtbot, monkeypatch):
    viewer, widget, truth = _setup(make_napari_viewer)
    _click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    assert widget.progress.value() == widget.progress.maximum() == len(truth)

    widget.direction_combo.setCurrentText("backward")
    widget.frame_spin.setValue(0)
    _click(qtbot, widget.propagate_button)  # refused: nothing to propagate backward from frame 0
    assert widget.worker is None and widget.status.text().startswith("error: nothing to propagate")
    assert widget.progress.value() == 0

    widget.direction_combo.setCurrentText("forward")
    _slow_flow(monkeypatch, seconds=0.0, fail_at=3)
    _click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    text = widget.status.text()
    assert text.startswith("error: frame 3 contains NaN")
    out = [lyr for lyr in viewer.layers if lyr.name.startswith("painted propagated (flow)")][-1]
    assert text.endswith(f"; the 2 frames segmented before it are kept in {out.name!r}")
    assert out.data[1:3].any() and not out.data[3:].any()


def test_an_error_in_the_forward_half_of_a_both_way_run_names_the_frames_never_reached(make_napari_viewer, qtbot,
                                                                                      monkeypatch):
    viewer, widget, truth = _setup(make_napari_viewer)
    painted = [lyr for lyr in viewer.layers if lyr.name == "painted"][0]
    painted.data = np.where(np.arange(len(truth))[:, None, None] == 2, truth, 0).astype(painted.data.dtype)
    widget.direction_combo.setCurrentText("both")
    widget.frame_spin.setValue(2)
    _slow_flow(monkeypatch, seconds=0.0, fail_at=2)  # frame 4: forward, before the backward half
    _click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    assert widget.status.text().endswith("; frames 0-1 were not reached: run 'backward' from frame 2 for them")


def test_cancel_says_how_many_frames_were_segmented(make_napari_viewer, qtbot, monkeypatch):
    viewer, widget, truth = _setup(make_napari_viewer, n_frames=12)
    _slow_flow(monkeypatch, seconds=0.4)
    _click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: widget.status.text().startswith("flow: frame 2"), timeout=20_000)
    _click(qtbot, widget.cancel_button)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    out = viewer.layers["painted propagated (flow)"]
    done = out.metadata["napari_vos"]["frames_done"]
    assert widget.status.text().startswith(f"cancelled: {done} frames segmented ({done + 1} of 12 in ")


def test_image_layers_that_are_no_time_lapse_are_said_for_their_shape(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = PropagateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    viewer.add_image(np.zeros((64, 64), np.float32), name="flat")
    widget.image_combo.setCurrentText("flat")
    assert "is one 2-D image; napari-vos needs a time-lapse" in widget.status.text()
    viewer.add_image(np.zeros((3, 5, 32, 32), np.float32), name="tzyx")  # 3D + time: propagated a plane at a time
    widget.image_combo.setCurrentText("tzyx")
    assert "time-lapse" not in widget.status.text()
    # the same axis named as channels: one layer per channel
    viewer.add_image(np.zeros((3, 2, 32, 32), np.float32), name="tcyx", axis_labels=("t", "c", "y", "x"))
    widget.image_combo.setCurrentText("tcyx")
    text = widget.status.text()
    assert "its axis names say it holds channels" in text and "channel_axis=1" in text
    viewer.add_image(np.zeros((3, 32, 32, 2), np.float32), name="tyxc")  # channels last, not shown as RGB
    widget.image_combo.setCurrentText("tyxc")
    text = widget.status.text()
    assert "looks like (T, Y, X, C) with 2 channels" in text and "channel_axis=-1" in text and "channel_axis=1" not in text


def test_speed_reads_as_seconds_per_frame_below_one_frame_a_second():
    assert _speed(21.14) == "21.1 frames/s" and _speed(1.0) == "1.0 frames/s"
    assert _speed(0.1) == "10.0 s/frame" and _speed(0.25) == "4.0 s/frame"
    assert _speed(0.0) == "0.0 frames/s"


def test_labels_drawn_elsewhere_than_the_image_are_propagated_with_a_note():
    viewer = ViewerModel()
    frames, truth = sliding_square(4, (64, 64))
    viewer.add_image(frames, name="video", scale=(1, 0.65, 0.65), translate=(0, 30, 30))
    viewer.add_labels(first_frame_only(truth), name="mask file")  # opened without the image's calibration
    said = r"'mask file' is drawn at scale \(1, 1\), offset \(0, 0\) but the image at \(0.65, 0.65\), \(30, 30\)"
    with pytest.warns(UserWarning, match=said + ".*paired by index"):
        out = propagate_layers(viewer, "video", "mask file", method="flow", device="cpu")
    np.testing.assert_allclose(out.labels.scale, (1, 0.65, 0.65))
    viewer.layers["mask file"].scale = (1, 0.65, 0.65)
    viewer.layers["mask file"].translate = (0, 30, 30)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # placed alike: no note
        propagate_layers(viewer, "video", "mask file", method="flow", device="cpu")
    # another frame interval: labels frame i was paired with image frame i without a word
    viewer.layers["video"].scale = (2, 0.65, 0.65)
    with pytest.warns(UserWarning, match=r"'mask file' is at time scale 1, offset 0 but the image at 2, 0: frames "
                                         r"are paired by index"):
        propagate_layers(viewer, "video", "mask file", method="flow", device="cpu")


def test_score_maps_with_negative_values_start_their_contrast_at_zero(request):
    from napari_vos._widgets.layer_job import LayerJob

    viewer = ViewerModel()
    frames, truth = sliding_square(3, (64, 64))
    viewer.add_image(frames, name="video")
    viewer.add_labels(first_frame_only(truth), name="painted")
    job = LayerJob(viewer, "video", "painted", "flow", device="cpu", maps=True)
    job.object_ids = [1]
    job._show_map("score", 0, np.array([[[-1.2, 0.03], [0.5, 1.4]]], np.float32), 1)
    assert job.map_layers[("score", 0)].contrast_limits == pytest.approx((0.0, 1.4))
    job._show_map("above", 0, np.array([[[0.2, 0.5]]], np.float32), 1)  # all positive: from its minimum
    assert job.map_layers[("above", 0)].contrast_limits == pytest.approx((0.2, 0.5))
    job._show_map("below", 0, np.array([[[-0.7, -0.1]]], np.float32), 1)  # all negative: its own range
    assert job.map_layers[("below", 0)].contrast_limits == pytest.approx((-0.7, -0.1))


def test_map_layers_are_never_offered_as_images_not_even_mid_run(make_napari_viewer, qtbot, monkeypatch):
    viewer, widget, _ = _setup(make_napari_viewer)
    _slow_flow(monkeypatch, seconds=0.3)
    widget.maps_checkbox.setChecked(True)
    _click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: any(" - flow_magnitude" in lyr.name for lyr in viewer.layers), timeout=20_000)
    images = [widget.image_combo.itemText(i) for i in range(widget.image_combo.count())]
    channels = [widget.channels_list.item(i).text() for i in range(widget.channels_list.count())]
    assert images == ["video"] and not any("flow_magnitude" in name for name in channels)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)


def test_the_done_line_survives_an_input_layer_deleted_mid_run(make_napari_viewer, qtbot, monkeypatch):
    viewer, widget, truth = _setup(make_napari_viewer)
    _slow_flow(monkeypatch, seconds=0.2)
    _click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: widget.status.text().startswith("flow: frame"), timeout=20_000)
    viewer.layers.remove(viewer.layers["video"])
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    text = widget.status.text()
    assert text.startswith(f"done: {len(truth)} frames with flow") and "; now: add an image layer" in text
    viewer.add_image(np.zeros_like(truth, dtype=np.uint8), name="video again")  # the layers fit again
    widget.image_combo.setCurrentText("video again")
    assert widget.status.text() == ""


def _flush_deferred_deletes() -> None:
    """Run the pending deleteLater()s, as the next event-loop turn would."""
    from qtpy.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def test_deleted_layers_and_a_failed_run_are_not_held_by_the_widget(make_napari_viewer, qtbot, monkeypatch):
    """A user who deletes layers (after an out-of-memory error, say) gets their memory back: the
    widget forgets a deleted pick, and lets go of a reported error (its traceback holds the job)."""
    import gc
    import weakref

    viewer, widget, truth = _setup(make_napari_viewer)
    frames, _ = sliding_square(6, (64, 64))
    viewer.add_image(frames.copy(), name="other video", scale=viewer.layers["video"].scale,
                     translate=viewer.layers["video"].translate)
    widget.image_combo.setCurrentText("other video")  # picked by hand
    widget.image_combo.setCurrentText("video")
    widget.image_combo.setCurrentText("other video")
    other = weakref.ref(viewer.layers["other video"])
    assert widget._picks["image"] is other()
    viewer.layers.remove("other video")
    _flush_deferred_deletes()  # napari's layer controls hold the layer until their deleteLater runs (PySide6)
    gc.collect()
    assert other() is None and widget._picks["image"] is None

    _slow_flow(monkeypatch, seconds=0.0, fail_at=2)
    _click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    assert widget.status.text().startswith("error: frame 3 contains NaN")
    out = weakref.ref([lyr for lyr in viewer.layers if lyr.name.startswith("painted propagated")][-1])
    viewer.layers.remove(out())
    _flush_deferred_deletes()
    gc.collect()
    assert widget._error is None and out() is None
