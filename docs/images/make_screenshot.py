"""Regenerate docs/images/propagate-widget.png from a real viewer (Linux: run under a virtual display).

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/images/make_screenshot.py [method] [frame]

Opens the natural sample, docks the Propagate widget through the plugin manifest, clicks
Propagate, waits for the worker, and grabs the whole window.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import napari
from qtpy.QtCore import Qt
from qtpy.QtTest import QTest
from qtpy.QtWidgets import QApplication

OUT = Path(__file__).with_name("propagate-widget.png")


def main(method: str = "flow", frame: str = "12") -> None:
    from napari.settings import get_settings

    get_settings().application.gui_notification_level = "none"  # no toasts over the canvas
    viewer = napari.Viewer()
    viewer.window.resize(1500, 900)
    viewer.open_sample("napari-vos", "natural")
    _, widget = viewer.window.add_plugin_dock_widget("napari-vos", "Propagate")
    widget.image_combo.setCurrentText("natural video")
    widget.labels_combo.setCurrentText("natural labels")
    widget.select_method(method)
    widget.device_combo.setCurrentText("cpu")
    widget.maps_checkbox.setChecked(True)
    widget.options_box.expand(animate=False)
    app = QApplication.instance()
    viewer.dims.set_current_step(0, 0)  # the painted frame: the annotated frame follows the slider
    QTest.mouseClick(widget.propagate_button, Qt.MouseButton.LeftButton)
    start = time.time()
    while widget.worker is not None and time.time() - start < 600:
        app.processEvents()
        time.sleep(0.02)
    print(widget.status.text())
    from napari_vos._widgets.layer_job import is_map_layer

    for layer in viewer.layers:  # the maps stay in the layer list, hidden, as the caption says
        if is_map_layer(layer):
            layer.visible = False
    viewer.layers["natural labels"].visible = False
    viewer.layers.selection.active = viewer.layers[f"natural labels propagated ({method})"]
    viewer.dims.set_current_step(0, int(frame))
    for _ in range(10):
        app.processEvents()
        time.sleep(0.05)
    viewer.reset_view()
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()
    for _ in range(10):
        app.processEvents()
        time.sleep(0.05)
    viewer.screenshot(str(OUT), canvas_only=False)
    print("wrote", OUT)
    viewer.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
