"""Driving the Propagate dock widget in a real viewer, shared by the widget test files: a docked
widget over a sliding-square video (also in a shown, active window, for keyboard tests), a real
mouse click, and the wait for the thread worker."""
from __future__ import annotations

import os
import sys

import pytest
from _layers import first_frame_only, sliding_square

NO_DISPLAY = os.environ.get("QT_QPA_PLATFORM") == "offscreen" or (
    sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")))
needs_display = pytest.mark.skipif(NO_DISPLAY, reason="the napari widget tests need a display: run them under "
                                                      "`xvfb-run -a`")

SCALE = (1.0, 0.5, 0.25)
TRANSLATE = (0.0, 10.0, -3.0)


def setup_widget(make_napari_viewer, n_frames=6, size=(64, 64), video=None, method="flow"):
    """A viewer with ``video`` (frames, truth; default a sliding square) and its first frame painted,
    both at SCALE/TRANSLATE, and the docked widget set to ``method`` on the CPU."""
    viewer = make_napari_viewer()
    frames, truth = sliding_square(n_frames, size) if video is None else video
    viewer.add_image(frames, name="video", scale=SCALE, translate=TRANSLATE)
    viewer.add_labels(first_frame_only(truth), name="painted", scale=SCALE, translate=TRANSLATE)
    return viewer, docked_widget(viewer, "video", "painted", method), truth


def docked_widget(viewer, image: str, labels: str, method: str = "flow"):
    """The Propagate widget docked in ``viewer``, set to the ``image`` and ``labels`` layers and ``method``
    on the CPU."""
    from napari_vos._widgets.propagate_widget import PropagateWidget  # after the display check

    widget = PropagateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image_combo.setCurrentText(image)
    widget.labels_combo.setCurrentText(labels)
    widget.select_method(method)
    widget.device_combo.setCurrentText("cpu")
    return widget


def click(qtbot, button):
    """A left click on an enabled button, as a user makes it."""
    from qtpy.QtCore import Qt

    assert button.isEnabled()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def wait_done(qtbot, widget, timeout=30_000):
    """Until the widget's run (its thread worker) has ended."""
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


#: the start of a subprocess script (`python script.py`): a viewer, a 150-frame sliding square (still
#: running 0.3 s after the click on any machine), the docked widget running flow on it, 0.3 s of events;
#: names `viewer`, `widget`, `dock`, `QApplication`, `time` for the script's own ending
SCRIPT_STARTING_A_RUN = """
import time
import numpy as np
import napari
from qtpy.QtWidgets import QApplication
from napari_vos._widgets.propagate_widget import PropagateWidget

viewer = napari.Viewer(show=False)
video = np.zeros((150, 128, 128), np.uint8)
for t in range(150):
    video[t, 20 + t % 60:50 + t % 60, 20:50] = 200
painted = np.zeros(video.shape, np.uint8)
painted[0, 20:50, 20:50] = 1
viewer.add_image(video, name="video")
viewer.add_labels(painted, name="painted")
widget = PropagateWidget(viewer)
dock = viewer.window.add_dock_widget(widget)
widget.image_combo.setCurrentText("video")
widget.labels_combo.setCurrentText("painted")
widget.select_method("flow")
widget.device_combo.setCurrentText("cpu")
widget.propagate_button.click()
end = time.time() + 0.3
while time.time() < end:
    QApplication.processEvents()
    time.sleep(0.02)
"""


def menu_docked_widget(viewer, method="flow", direction=None):
    """The Propagate dock opened as a user opens it (Plugins menu: napari hands it proxies of the
    viewer and its layers), set to ``method`` on the CPU (and ``direction`` when given)."""
    _, widget = viewer.window.add_plugin_dock_widget("napari-vos", "Propagate")
    widget.select_method(method)
    widget.device_combo.setCurrentText("cpu")
    if direction is not None:
        widget.direction_combo.setCurrentText(direction)
    return widget


def active_viewer_with_widget(make_napari_viewer, qtbot, n_frames=6, image_name="video", method="flow"):
    """A shown, active viewer window with a sliding square, its first frame painted, and the docked
    widget set to ``method`` on the CPU (keyboard focus needs a shown, active window)."""
    from qtpy.QtWidgets import QApplication

    from napari_vos._widgets.propagate_widget import PropagateWidget

    viewer = make_napari_viewer(show=True)
    frames, truth = sliding_square(n_frames, (64, 64))
    viewer.add_image(frames, name=image_name)
    viewer.add_labels(first_frame_only(truth), name="painted")
    widget = PropagateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.select_method(method)
    widget.device_combo.setCurrentText("cpu")
    window = viewer.window._qt_window
    window.raise_()
    window.activateWindow()
    QApplication.setActiveWindow(window)
    qtbot.wait(50)
    return viewer, widget
