"""Session 35, review of the day's changes: keys released in the panel, Enter's auto-repeat, units
only where napari draws with them (dims.units), napari 0.5-0.6's default axis names, the older-last.pt
note, and a one-frame labels stack saved with its placement.

Tests 1-2 need a display (xvfb-run -a); the others need no Qt."""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from _layers import first_frame_only, sliding_square
from _widget_run import active_viewer_with_widget

pytest.importorskip("napari")
from napari.components import ViewerModel  # noqa: E402

from napari_vos import propagate_layers  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _display():
    from _widget_run import NO_DISPLAY

    if NO_DISPLAY:
        pytest.skip("needs a display: run under xvfb-run -a")


# -- 1. the panel swallows key presses but not their releases ------------------------------------
def test_a_key_pressed_on_the_panel_does_not_undo_the_viewers_mode(make_napari_viewer, qtbot):
    """Finding 1: PropagateWidget.keyPressEvent accepts every key press, but the key's release still
    climbs to napari's window (QtViewerDockWidget.keyReleaseEvent -> KeymapHandler.release_key), which
    runs the 'hold' callback the last press of that key in the canvas left behind (napari never clears
    it): P tapped in the canvas puts the labels in paint mode; P pressed later on a panel button (the
    user thinking the canvas has the focus) now switches the layer back OUT of paint mode (before
    today P there re-selected paint mode). The user guide says keys pressed in the panel stay there."""
    _display()
    from qtpy.QtCore import Qt

    viewer, widget = active_viewer_with_widget(make_napari_viewer, qtbot)
    painted = viewer.layers["painted"]
    viewer.layers.selection.active = painted
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.wait(20)
    qtbot.keyClick(canvas, Qt.Key.Key_P)  # a tap in the canvas: paint mode
    qtbot.wait(20)
    assert str(painted.mode) == "paint"
    time.sleep(0.7)  # longer than napari's hold_button_delay (0.5 s): the next release counts as a hold's end
    widget.propagate_button.setFocus()
    qtbot.wait(20)
    qtbot.keyClick(widget.propagate_button, Qt.Key.Key_P)
    qtbot.wait(20)
    assert str(painted.mode) == "paint", f"P pressed on the panel changed the labels layer's mode to {painted.mode}"


# -- 2. a held Enter starts the run and then cancels it --------------------------------------------
def test_holding_enter_on_propagate_does_not_cancel_the_run_it_started(make_napari_viewer, qtbot, monkeypatch):
    """Finding 2: Enter on the focused Propagate starts the run and start() moves the focus to Cancel;
    the key's first auto-repeat (the key held a little longer than the OS repeat delay) then arrives
    at Cancel and keyPressEvent clicks it: the run stops after one frame. Space, which Qt handles on
    the release and never on auto-repeats, does not do this."""
    _display()
    from qtpy.QtCore import QEvent, Qt
    from qtpy.QtGui import QKeyEvent
    from qtpy.QtWidgets import QApplication

    from napari_vos.methods.flow import FlowMethod

    original = FlowMethod.step
    monkeypatch.setattr(FlowMethod, "step", lambda self, image: (time.sleep(0.05), original(self, image))[1])
    viewer, widget = active_viewer_with_widget(make_napari_viewer, qtbot)
    widget.propagate_button.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is widget.propagate_button, timeout=5_000)

    def enter(auto_repeat):
        event = QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Return, Qt.KeyboardModifier.NoModifier, "\r", auto_repeat)
        QApplication.sendEvent(QApplication.focusWidget(), event)

    enter(False)
    assert widget.worker is not None
    qtbot.waitUntil(lambda: QApplication.focusWidget() is widget.cancel_button, timeout=5_000)  # as documented
    enter(True)  # the same key, held: its first auto-repeat
    qtbot.wait(10)
    cancelled = widget.job is not None and widget.job.cancelled
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    assert not cancelled, f"a held Enter cancelled the run it started: {widget.status.text()!r}"


# -- 3. units converted where napari draws without them --------------------------------------------
def _notes(viewer):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        propagate_layers(viewer, "video", "painted", method="flow")
    return [str(w.message) for w in caught]


def test_nm_labels_over_um_image_are_noted_when_napari_draws_them_apart():
    """Finding 3a: paired_offsets converts the labels' units to the image's from the layers alone, but
    napari draws in common units only when every layer's units agree (dims.units; napari 0.5.1-0.6
    never). One uncalibrated layer (pixel units) in the viewer and napari falls back to plain
    numbers: labels at 100 nm per pixel lie 1000x larger than the 0.1 um image, yet no note is given
    (before today there was one)."""
    frames, truth = sliding_square(5, (64, 64))
    viewer = ViewerModel()
    viewer.add_image(frames, name="video", scale=(1, 0.1, 0.1), units=("s", "um", "um"))
    viewer.add_labels(first_frame_only(truth), name="painted", scale=(1, 100, 100), units=("s", "nm", "nm"))
    viewer.add_image(np.zeros((8, 8)), name="uncalibrated")  # napari's default pixel units
    assert viewer.dims.units is None  # napari renders without units now
    assert any("drawn at scale" in n for n in _notes(viewer)), "labels drawn 1000x off the image, not noted"


def test_same_numbers_in_other_units_are_not_noted_when_napari_draws_them_over_the_image():
    """Finding 3b, the other way: the same numbers in nm and um overlay on screen when napari draws
    without units, but the note says they lie elsewhere."""
    frames, truth = sliding_square(5, (64, 64))
    viewer = ViewerModel()
    viewer.add_image(frames, name="video", scale=(1, 0.1, 0.1), units=("s", "um", "um"))
    viewer.add_labels(first_frame_only(truth), name="painted", scale=(1, 0.1, 0.1), units=("s", "nm", "nm"))
    viewer.add_image(np.zeros((8, 8)), name="uncalibrated")
    assert viewer.dims.units is None
    assert not [n for n in _notes(viewer) if "drawn at scale" in n]


# -- 4. napari 0.5-0.6's default axis names ----------------------------------------------------------
def test_napari_before_0_7_default_axis_names_are_not_recorded():
    """Finding 4: napari before 0.7 names a layer's axes 'axis -3', 'axis -2', 'axis -1' by default
    (0.7 dropped the prefix, napari#8566); layer_placement keeps only all-digit names out, so every
    labels layer saved on napari 0.5.1-0.6 records its default names as 'layer_axis_labels' (a hand-
    painted layer gets a napari-vos record it never had, and opened on napari >= 0.7 its axes are
    named 'axis -3'...)."""
    from napari_vos._widgets.labels_writer import layer_placement

    assert layer_placement({"axis_labels": ("axis -3", "axis -2", "axis -1")}, [1.0, 1.0, 1.0]) == {}


# -- 5. the older-last.pt note claims the --config was not recorded when it was -------------------
@dataclass
class _Tiny:
    name: str = "tiny"
    default_lr: float = 1e-4
    config: str = "light"

    def build(self, device):
        torch.manual_seed(0)
        return torch.nn.Linear(4, 1).to(device)

    def batch(self, rng):
        return torch.as_tensor(rng.standard_normal((2, 4)), dtype=torch.float32)

    def loss(self, model, batch, device):
        return model(batch.to(device)).pow(2).mean(), {}


def test_a_last_pt_that_recorded_its_config_is_not_said_to_lack_it(tmp_path):
    """Finding 5 (low): last.pt has recorded 'config' since commit 033b3a8 but 'stage' only since 79349fc.
    A file from between (any FRTM/A-GAME/OSVOS-AT/S2S/COSNet run: no stage at all) passes the config
    check, and the log then says it 'was saved by an older napari-vos that did not record the run's
    --config ... if it was trained with another, stop'."""
    from napari_vos.training.loop import TrainSettings, train

    train(_Tiny(), tmp_path, TrainSettings(steps=1, save_every=1, log_every=1), log=lambda s: None)
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    del state["stage"]  # as commits 033b3a8..79349fc wrote it
    torch.save(state, tmp_path / "last.pt")
    lines: list[str] = []
    train(_Tiny(), tmp_path, TrainSettings(steps=2, save_every=1, log_every=1), resume=True, log=lines.append)
    assert not [line for line in lines if "did not record the run's --config" in line], lines


# -- 6. (outside today's diff) a one-frame (1, Y, X) layer with a placement does not open again ------
def test_a_one_frame_labels_stack_saved_with_its_placement_opens_again(tmp_path):
    """Finding 6 (pre-existing, beside today's axis names): a (1, Y, X) labels layer is written as one
    page, which tifffile reads back as (Y, X); its 3-long layer_translate passes open_labels_layer's
    length test (ndim or ndim + 1, meant for the affine) and add_labels fails with numpy's 'could
    not broadcast input array from shape (3,) into shape (2,)'."""
    from napari_vos.console import open_labels_layer, save_labels_layer

    viewer = ViewerModel()
    data = np.zeros((1, 16, 16), np.uint8)
    data[0, 2:5, 2:5] = 1
    layer = viewer.add_labels(data, name="one", translate=(0, 5, 5), axis_labels=("t", "y", "x"))
    path = save_labels_layer(layer, tmp_path / "one.tif")
    opened = open_labels_layer(viewer, path)
    assert np.allclose(opened.translate[-2:], (5, 5))
