"""Driving the Propagate dock widget in a real viewer, shared by the widget test files: a docked
widget over a sliding-square video, a real mouse click, and the wait for the thread worker."""
from __future__ import annotations

from _layers import first_frame_only, sliding_square

SCALE = (1.0, 0.5, 0.25)
TRANSLATE = (0.0, 10.0, -3.0)


def setup_widget(make_napari_viewer, n_frames=6, size=(64, 64), video=None, method="flow"):
    """A viewer with ``video`` (frames, truth; default a sliding square) and its first frame painted,
    both at SCALE/TRANSLATE, and the docked widget set to ``method`` on the CPU."""
    from napari_vos._widgets.propagate_widget import PropagateWidget  # after the display check

    viewer = make_napari_viewer()
    frames, truth = sliding_square(n_frames, size) if video is None else video
    viewer.add_image(frames, name="video", scale=SCALE, translate=TRANSLATE)
    viewer.add_labels(first_frame_only(truth), name="painted", scale=SCALE, translate=TRANSLATE)
    widget = PropagateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image_combo.setCurrentText("video")
    widget.labels_combo.setCurrentText("painted")
    widget.select_method(method)
    widget.device_combo.setCurrentText("cpu")
    return viewer, widget, truth


def click(qtbot, button):
    """A left click on an enabled button, as a user makes it."""
    from qtpy.QtCore import Qt

    assert button.isEnabled()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def wait_done(qtbot, widget, timeout=30_000):
    """Until the widget's run (its thread worker) has ended."""
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)
