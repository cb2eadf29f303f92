"""Session 35, the Propagate panel by keyboard and screen reader: the focus stays in the panel through a
run, folded options take no keys, every control has a name, a long layer name does not widen the dock,
the device list offers accelerators to arrow keys, keys on the panel do not act on the viewer, and Enter
presses a focused button."""
from __future__ import annotations

import time

import pytest

from _widget_run import NO_DISPLAY, active_viewer_with_widget

pytest.importorskip("napari")
if NO_DISPLAY:
    pytest.skip("needs a display: run under xvfb-run -a", allow_module_level=True)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _slow_flow(monkeypatch, seconds=0.05):
    from napari_vos.methods.flow import FlowMethod

    original = FlowMethod.step
    monkeypatch.setattr(FlowMethod, "step", lambda self, image: (time.sleep(seconds), original(self, image))[1])


def test_keyboard_propagate_then_cancel_keeps_the_focus_in_the_panel(make_napari_viewer, qtbot, monkeypatch):
    """Finding 1: Space on the focused Propagate button starts the run, and disables that button before
    Cancel is enabled, so Qt moves the focus out of the panel, to the dock's 'hide this panel' button
    (a second Space hides the panel, the run going on unseen). Cancel is then out of a keyboard user's
    reach (more than 80 Tabs through napari's window). Likewise Space on Cancel and the run's end."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication

    _slow_flow(monkeypatch)
    viewer, widget = active_viewer_with_widget(make_napari_viewer, qtbot, n_frames=80)
    widget.direction_combo.setCurrentText("forward")
    widget.propagate_button.setFocus()
    qtbot.wait(20)
    assert QApplication.focusWidget() is widget.propagate_button
    qtbot.keyClick(widget.propagate_button, Qt.Key.Key_Space)
    qtbot.wait(20)
    assert widget.worker is not None, "Space on Propagate should start the run"
    focus = QApplication.focusWidget()
    assert focus is widget.cancel_button, (
        f"after Propagate by keyboard the focus went to {type(focus).__name__} {focus.objectName()!r} "
        f"({focus.toolTip()!r}), not to Cancel")
    qtbot.keyClick(widget.cancel_button, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    focus = QApplication.focusWidget()
    assert focus is not None and widget.isAncestorOf(focus), (
        f"after the run the focus is outside the panel: {type(focus).__name__} {focus.objectName()!r}")


def test_collapsed_method_options_take_no_keyboard_input(make_napari_viewer, qtbot):
    """Finding 2: with 'Method options' collapsed (the default), QCollapsible only squeezes its content
    to 0 px height: Tab from the toggle lands in the invisible 'max working side' spin box, and Down +
    PageDown there silently change the working size from 1024 to 320 px."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication

    viewer, widget = active_viewer_with_widget(make_napari_viewer, qtbot)
    assert not widget.options_box.isExpanded()
    toggle = widget.options_box.toggleButton()
    toggle.setFocus()
    qtbot.wait(20)
    before = widget.max_side_spin.value()
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
    focus = QApplication.focusWidget()
    qtbot.keyClick(focus, Qt.Key.Key_Down)
    qtbot.keyClick(focus, Qt.Key.Key_PageDown)
    assert focus is None or not focus.visibleRegion().isEmpty(), (
        f"Tab put the focus in an invisible {type(focus).__name__} inside the collapsed 'Method options'")
    assert widget.max_side_spin.value() == before, "hidden 'max working side' changed by keys the user cannot see"


def _accessible_name(widget, buddies):
    """What Qt's accessibility bridge reads as the control's name: its accessibleName, a button's text,
    or the text of the QLabel whose buddy it is."""
    from qtpy.QtWidgets import QAbstractButton

    if widget.accessibleName():
        return widget.accessibleName()
    if isinstance(widget, QAbstractButton) and widget.text().strip(" …."):
        return widget.text()
    return buddies.get(id(widget), "")


def test_every_control_has_a_name_a_screen_reader_can_read(make_napari_viewer, qtbot):
    """Finding 3: the checkpoint field (its 'checkpoint' row label is on a layout, so it is nobody's
    buddy) has neither an accessible name nor a tooltip; the browse button reads as '…'; the 'add
    channels' list's label is passed as a widget, so it is not the list's buddy either."""
    from qtpy.QtWidgets import QLabel

    viewer, widget = active_viewer_with_widget(make_napari_viewer, qtbot, method="frtm")
    viewer.add_image(viewer.layers["video"].data.copy(), name="nuclei")  # shows the channels list
    buddies = {id(lbl.buddy()): lbl.text() for lbl in widget.findChildren(QLabel) if lbl.buddy() is not None}
    unnamed = [name for name in ("image_combo", "channels_list", "labels_combo", "frame_spin", "all_painted",
                                 "method_combo", "device_combo", "direction_combo", "maps_checkbox",
                                 "max_side_spin", "precision_combo", "checkpoint_edit", "checkpoint_button",
                                 "options_edit", "propagate_button", "cancel_button")
               if not _accessible_name(getattr(widget, name), buddies)]
    assert not unnamed, f"controls a screen reader announces without a name: {unnamed}"
    assert widget.checkpoint_button.toolTip(), "the '…' button has no tooltip saying what it does"


def test_a_long_layer_name_does_not_widen_the_dock(make_napari_viewer, qtbot):
    """Finding 4: the layer combos size to their longest entry when first shown (QComboBox's
    AdjustToContentsOnFirstShow). Opened over an image named after its file, the panel's minimum
    width went from 405 to 848 px and napari's window minimum from 1017 to 1460 px (wider than a
    1366 px laptop screen; at 200 % scaling the short-name 1017 px already exceeds a 1080p screen's
    960 logical px)."""
    long_name = "2023-05-12_HeLa_H2B-GFP_timelapse_position03_channel1_maxprojection_registered.ome"
    viewer, widget = active_viewer_with_widget(make_napari_viewer, qtbot, image_name=long_name)
    qtbot.wait(50)
    assert widget.image_combo.currentText() == long_name
    assert widget.minimumSizeHint().width() <= 420, (
        f"the panel cannot be narrower than {widget.minimumSizeHint().width()} px because of a layer name")


def test_the_device_list_offers_the_accelerators_to_arrow_keys(make_napari_viewer, qtbot, monkeypatch):
    """Finding 5: DeviceCombo looks up cuda/mps only in showPopup; a keyboard user who changes the
    focused combo with the arrow keys (no popup) is offered 'auto' and 'cpu' only."""
    from qtpy.QtCore import Qt

    from napari_vos._widgets import propagate_widget

    monkeypatch.setattr(propagate_widget, "available_devices", lambda: ["auto", "cpu", "cuda"])
    viewer, widget = active_viewer_with_widget(make_napari_viewer, qtbot)
    combo = widget.device_combo
    combo.setCurrentText("auto")
    combo.setFocus()
    qtbot.wait(20)
    qtbot.keyClick(combo, Qt.Key.Key_Down)
    qtbot.keyClick(combo, Qt.Key.Key_Down)
    assert combo.currentText() == "cuda", f"arrow keys reach {[combo.itemText(i) for i in range(combo.count())]} only"


@pytest.mark.parametrize("control, key, modifier, what", [
    ("propagate_button", "Key_P", "NoModifier", "mode"),        # the painted layer switches to paint mode
    ("all_painted", "Key_V", "NoModifier", "visible"),          # the selected layer is hidden
    ("method_combo", "Key_Right", "NoModifier", "step"),        # the time slider (and the annotated frame) moves
    ("method_combo", "Key_Delete", "ControlModifier", "layers"),  # the selected layer is deleted
])
def test_keys_pressed_in_the_panel_do_not_act_on_the_viewer(make_napari_viewer, qtbot, control, key, modifier, what):
    """Finding 6 (low): a key the focused control does not use climbs to napari's window and runs the
    viewer's shortcut: with focus on Propagate, 'P' puts the painted layer in paint mode; on the
    checkbox, 'V' hides it; Right on a combo moves the time slider, which the annotated frame follows;
    Ctrl+Delete (or Ctrl+Backspace) on a combo or button deletes the selected layer. The text fields are
    not affected (they take the keys)."""
    from qtpy.QtCore import Qt

    viewer, widget = active_viewer_with_widget(make_napari_viewer, qtbot)
    painted = viewer.layers["painted"]
    viewer.layers.selection.active = painted

    def state():
        return {"mode": str(painted.mode), "visible": painted.visible, "step": tuple(viewer.dims.current_step),
                "layers": len(viewer.layers)}[what]

    before = state()
    target = getattr(widget, control)
    target.setFocus()
    qtbot.wait(20)
    qtbot.keyClick(target, getattr(Qt.Key, key), getattr(Qt.KeyboardModifier, modifier))
    qtbot.wait(20)
    assert state() == before, f"{key} with {modifier} on the panel's {control} changed the viewer's {what}"


def test_enter_on_the_focused_propagate_button_starts_the_run(make_napari_viewer, qtbot):
    from qtpy.QtCore import Qt

    viewer, widget = active_viewer_with_widget(make_napari_viewer, qtbot)
    widget.propagate_button.setFocus()
    qtbot.wait(20)
    qtbot.keyClick(widget.propagate_button, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: any(layer.name.startswith("painted propagated") for layer in viewer.layers), timeout=30_000)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
