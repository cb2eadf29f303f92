"""Session 37 audit (helper 'plugins'), fixed by 'fix_widget': the Propagate dock living with napari
and other layers. Each test reproduces one finding (3D-view freeze, a layer's data replaced under
the dock, a multiscale labels layer, the output's data replaced mid-run) and failed before the fix;
run under `QT_QPA_PLATFORM=xcb xvfb-run -a`.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from _layers import first_frame_only, sliding_square
from _widget_run import NO_DISPLAY, setup_widget, wait_done

pytest.importorskip("napari")
if NO_DISPLAY:
    pytest.skip("needs a display: run under xvfb-run -a", allow_module_level=True)

pytestmark = pytest.mark.gui


def _dock(viewer, method="flow"):
    from napari_vos._widgets.propagate_widget import PropagateWidget

    widget = PropagateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.select_method(method)
    widget.device_combo.setCurrentText("cpu")
    return widget


def _slow_flow(monkeypatch, seconds=0.2):
    from napari_vos.methods.flow import FlowMethod

    original = FlowMethod.step

    def step(self, image):
        time.sleep(seconds)
        return original(self, image)

    monkeypatch.setattr(FlowMethod, "step", step)


class _Stall:
    """The longest gap between two ticks of a 20 ms timer: how long the GUI thread was blocked."""

    def __init__(self):
        from qtpy.QtCore import QTimer

        self.last, self.worst = time.perf_counter(), 0.0
        self.timer = QTimer()
        self.timer.setInterval(20)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self):
        now = time.perf_counter()
        self.worst, self.last = max(self.worst, now - self.last), now

    def stop(self) -> float:
        self.timer.stop()
        return self.worst


# -- finding 1 -------------------------------------------------------------------------------------
def test_a_run_in_3d_view_does_not_block_the_viewer_a_second_per_frame(make_napari_viewer, qtbot):
    """A (T, Y, X) stack looked at in 3D (the 2D/3D button) while the run goes on: every frame's
    output.refresh() re-slices and re-uploads the whole (T, Y, X) output volume in the GUI thread:
    2.1 s per frame for 120 x 1024 x 1024 here (0.06 s in 2D), and the frames shown per second fall
    from 4.9 to 0.55."""
    n, h, w = 120, 1024, 1024
    viewer = make_napari_viewer(show=True)
    video = np.zeros((n, h, w), np.uint8)
    for t in range(n):
        video[t, 300:500, 300 + 2 * t:500 + 2 * t] = 200
    painted = np.zeros((n, h, w), np.uint8)
    painted[0, 300:500, 300:500] = 1
    viewer.add_image(video, name="video")
    viewer.add_labels(painted, name="painted")
    widget = _dock(viewer)
    widget.direction_combo.setCurrentText("forward")
    viewer.dims.ndisplay = 3
    qtbot.wait(300)
    widget.propagate_button.click()
    qtbot.waitUntil(lambda: widget.job is not None and widget.job.frames_shown >= 2, timeout=60_000)
    stall = _Stall()
    shown = widget.job.frames_shown
    qtbot.waitUntil(lambda: widget.job.frames_shown >= shown + 6, timeout=120_000)
    worst = stall.stop()
    widget.cancel()
    wait_done(qtbot, widget, timeout=60_000)
    assert worst < 1.0, f"the GUI thread was blocked {worst:.2f} s at once while frames came in 3D view"


# -- finding 2 -------------------------------------------------------------------------------------
def test_replacing_the_image_layers_data_updates_the_frame_range_and_the_start_frame(make_napari_viewer, qtbot):
    """`viewer.layers['video'].data = full_stack` (3 preview frames replaced by 8): the dock does not
    listen to layer.events.data, so the annotated-frame box stays capped at 2; moving the slider to
    frame 6 shows 2, and a (Y, X) mask of frame 6 is silently propagated as frame 2's (no note,
    provenance start_frame 2)."""
    frames, truth = sliding_square(8, (64, 64))
    viewer = make_napari_viewer()
    viewer.add_image(frames[:3], name="video")
    viewer.add_labels(truth[6].astype(np.uint8), name="painted")  # the mask of frame 6
    widget = _dock(viewer)
    viewer.layers["video"].data = frames
    viewer.dims.set_current_step(0, 6)
    assert widget.frame_spin.maximum() == 7 and widget.frame_spin.value() == 6, \
        (widget.frame_spin.maximum(), widget.frame_spin.value())
    widget.propagate_button.click()
    wait_done(qtbot, widget)
    assert viewer.layers[-1].metadata["napari_vos"]["start_frame"] == 6
    assert "taken as frame 6's" in widget.status.text(), widget.status.text()


def test_a_shorter_array_in_the_image_layer_narrows_the_frame_range_and_moves_the_frame(make_napari_viewer, qtbot):
    """The image's 8 frames replaced by its first 4 while the box shows frame 6 and the slider stays put:
    the box's range and frame follow the array the layer holds now, and the run starts from that frame."""
    frames, truth = sliding_square(8, (64, 64))
    viewer = make_napari_viewer()
    viewer.add_image(frames, name="video")
    viewer.add_labels(truth[6].astype(np.uint8), name="painted")  # one frame's mask: the run starts on the box's frame
    widget = _dock(viewer)
    viewer.dims.set_current_step(0, 6)
    assert widget.frame_spin.value() == 6
    viewer.layers["video"].data = frames[:4]
    viewer.layers["painted"].data = truth[3].astype(np.uint8)
    assert widget.frame_spin.maximum() == 3, widget.frame_spin.maximum()
    shown = widget.frame_spin.value()
    assert shown == int(viewer.dims.current_step[0]) <= 3, (shown, viewer.dims.current_step)
    assert widget.status.text() == "", widget.status.text()
    widget.propagate_button.click()
    wait_done(qtbot, widget)
    assert viewer.layers[-1].metadata["napari_vos"]["start_frame"] == shown


def test_replacing_the_labels_layers_data_updates_the_mismatch_line(make_napari_viewer):
    """The labels layer's data replaced by a mask of another size: the status line stays empty
    (the layers 'fit') until Propagate is pressed."""
    viewer, widget, _ = setup_widget(make_napari_viewer, n_frames=6)
    assert widget.status.text() == ""
    viewer.layers["painted"].data = np.zeros((6, 32, 32), np.uint8)
    assert "do not match" in widget.status.text(), widget.status.text()
    viewer.layers["painted"].data = np.zeros((6, 64, 64), np.uint8)
    assert widget.status.text() == "", widget.status.text()


def test_a_points_layers_data_events_do_not_recheck_the_inputs(make_napari_viewer, monkeypatch):
    """A Points or Shapes layer emits a data event at every drag: only image and labels arrays
    matter to the panel, so nothing is re-checked for the others."""
    from napari_vos._widgets.propagate_widget import PropagateWidget

    viewer, widget, _ = setup_widget(make_napari_viewer, n_frames=6)
    checks = []
    monkeypatch.setattr(PropagateWidget, "_selection_changed", lambda self, *a: checks.append(1))
    points = viewer.add_points(np.array([[0, 5, 5]]), name="points")
    checks.clear()
    points.data = np.array([[0, 6, 6]])
    assert checks == []
    viewer.layers["painted"].data = np.zeros((6, 64, 64), np.uint8)
    assert checks == [1]


# -- finding 3 -------------------------------------------------------------------------------------
def test_a_multiscale_labels_layer_is_called_multiscale_in_the_status_line(make_napari_viewer):
    """A multiscale Labels layer (an OME-Zarr label image): the panel says "labels 'painted'
    (8, 64, 64) do not match image 'video' (8, 64, 64)", the same shape on both sides; Propagate
    then says the real reason ("is multiscale; use a plain labels layer")."""
    frames, truth = sliding_square(8, (64, 64))
    painted = first_frame_only(truth).astype(np.uint8)
    viewer = make_napari_viewer()
    viewer.add_image(frames, name="video")
    viewer.add_labels([painted, painted[:, ::2, ::2]], name="painted", multiscale=True)
    widget = _dock(viewer)
    said = widget.status.text()
    assert "multiscale" in said and "do not match" not in said, said
    assert "viewer.add_labels(np.asarray(viewer.layers['painted'].data[0]))" in said, said  # the recipe


# -- finding 4 -------------------------------------------------------------------------------------
def test_the_output_stays_locked_when_its_data_is_replaced_mid_run(make_napari_viewer, qtbot, monkeypatch):
    """`output.data = ...` mid-run (clearing it from the console): napari's data setter calls
    _reset_editable(), so the output the run locked (a stroke on a frame not reached yet would be
    overwritten) is paintable again while the run goes on."""
    viewer, widget, _ = setup_widget(make_napari_viewer, n_frames=10)
    _slow_flow(monkeypatch)
    widget.propagate_button.click()
    qtbot.waitUntil(lambda: widget.status.text().startswith("flow: frame"), timeout=20_000)
    out = widget.job.output
    out.data = np.zeros_like(out.data)
    locked = not out.editable
    wait_done(qtbot, widget)
    assert locked
    assert out in viewer.layers and out.editable, "unlocked once the run has stopped"
    assert not out.data.any(), "the run went on writing into the array the user replaced"
    assert "napari_vos" not in out.metadata and "napari_vos_output" not in out.metadata  # the user's layer now
    assert "was replaced" in widget.status.text(), widget.status.text()


def test_an_output_whose_data_is_replaced_by_another_shape_is_named_and_kept(make_napari_viewer, qtbot, monkeypatch):
    """The output's data replaced by an array of another shape mid-run: the status line says only
    "error: could not broadcast input array from shape (64,64) into shape (16,16)", and the layer
    (holding the user's array now) is deleted."""
    viewer, widget, _ = setup_widget(make_napari_viewer, n_frames=10)
    _slow_flow(monkeypatch)
    widget.propagate_button.click()
    qtbot.waitUntil(lambda: widget.status.text().startswith("flow: frame"), timeout=20_000)
    out = widget.job.output
    name = out.name
    out.data = np.zeros((3, 16, 16), out.data.dtype)
    wait_done(qtbot, widget)
    assert name in viewer.layers, "the layer holding the user's array was removed"
    assert name in widget.status.text(), widget.status.text()
    assert "broadcast" not in widget.status.text() and "error" not in widget.status.text(), widget.status.text()
    assert viewer.layers[name].data.shape == (3, 16, 16)


# -- finding 1, without timings: how often the output is redrawn -------------------------------------
def _output_refreshes(monkeypatch) -> list[int]:
    """Each refresh of a running output layer, as the number of its frames then painted."""
    from napari.layers import Labels

    seen: list[int] = []
    original = Labels.refresh

    def refresh(self, *args, **kwargs):
        if "napari_vos_output" in self.metadata:
            seen.append(int(np.asarray(self.data).any(axis=(1, 2)).sum()))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Labels, "refresh", refresh)
    return seen


@pytest.mark.parametrize("ndisplay", [2, 3])
def test_the_output_is_redrawn_every_frame_in_2d_and_about_once_a_second_in_3d(make_napari_viewer, qtbot,
                                                                               monkeypatch, ndisplay):
    """12 frames at 0.2 s each: in 2D every frame is redrawn as it comes; in 3D (napari re-slices the
    whole volume at each redraw) about once a second, and the run's end shows every frame."""
    viewer, widget, _ = setup_widget(make_napari_viewer, n_frames=12)
    widget.direction_combo.setCurrentText("forward")
    _slow_flow(monkeypatch)
    viewer.dims.ndisplay = ndisplay
    seen = _output_refreshes(monkeypatch)
    began = time.perf_counter()
    widget.propagate_button.click()
    wait_done(qtbot, widget)
    seconds = time.perf_counter() - began
    assert seen and seen[-1] == 12, seen  # the last redraw shows the whole result
    if ndisplay == 2:
        assert len(seen) >= 12, seen
    else:  # the first frame, about one a second, and the end's
        assert 2 <= len(seen) <= min(seconds + 2, 8), (seen, seconds)


def test_the_redraw_pacer_spaces_3d_redraws_by_their_cost():
    """The pacer alone: 2D always; 3D never while a redraw is unsettled, then after max(1 s, 5x its cost)."""
    from napari_vos._widgets.redraw_pacer import RedrawPacer

    now = [0.0]
    pacer = RedrawPacer(clock=lambda: now[0])
    assert pacer.due(volume=True)
    pacer.started()
    assert pacer.due(volume=False) and not pacer.due(volume=True)
    now[0] = 0.1
    pacer.settled()  # a cheap redraw: the next one after a second
    now[0] = 1.0
    assert not pacer.due(volume=True)
    now[0] = 1.11
    assert pacer.due(volume=True)
    pacer.started()
    now[0] = 3.11
    pacer.settled()  # a 2 s redraw: the next one 10 s later
    now[0] = 12.0
    assert not pacer.due(volume=True) and pacer.due(volume=False)
    now[0] = 13.2
    assert pacer.due(volume=True)
