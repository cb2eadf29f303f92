"""How long the viewer stops answering while the Propagate widget runs with its maps on: 8 painted
discs in a 10-frame 256 x 256 RGB video, a 5 ms Qt timer logging each event-loop turn, the widget's
real button pressed; prints the longest gaps and how long each of the first frames' turns took.

    QT_QPA_PLATFORM=xcb xvfb-run -a python scripts/map_layer_stall.py [METHOD]    # default frtm
"""
from __future__ import annotations

import json
import sys
import time

import napari
import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

from napari_vos._widgets.propagate_widget import PropagateWidget

method = sys.argv[1] if len(sys.argv) > 1 else "frtm"
T, S = 10, 256
yy, xx = np.mgrid[:S, :S]
frames = np.zeros((T, S, S, 3), np.uint8)
labels = np.zeros((T, S, S), np.uint8)
rng = np.random.default_rng(0)
frames[:] = rng.integers(0, 60, size=(1, S, S, 3))
for k in range(8):
    cy, cx = 40 + 60 * (k // 4) + 40, 30 + 55 * (k % 4)
    for t in range(T):
        m = (yy - cy - t) ** 2 + (xx - cx - 2 * t) ** 2 < 18 ** 2
        frames[t][m] = (60 + 20 * k, 200 - 15 * k, 120)
        if t == 0:
            labels[0][m] = k + 1
viewer = napari.Viewer(show=True)
viewer.add_image(frames, name="video", rgb=True)
viewer.add_labels(labels, name="painted")
w = PropagateWidget(viewer)
viewer.window.add_dock_widget(w)
w.image_combo.setCurrentText("video")
w.labels_combo.setCurrentText("painted")
w.select_method(method)
w.device_combo.setCurrentText("cpu")
w.maps_checkbox.setChecked(True)
ticks = []
timer = QTimer()
timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
timer.start(5)
calls = []
orig = w._on_frame


def timed(frame):
    t0 = time.perf_counter()
    orig(frame)
    calls.append(time.perf_counter() - t0)


w._on_frame = timed  # the worker connects to it when the button is pressed
app = QApplication.instance()
for _ in range(20):
    app.processEvents()
    time.sleep(0.01)
w.propagate_button.click()
t_end = time.time() + 600
while w.worker is not None and time.time() < t_end:
    app.processEvents()
    time.sleep(0.002)
for _ in range(50):
    app.processEvents()
    time.sleep(0.005)
gaps = np.diff(ticks)
print(json.dumps({"method": method, "layers": len(viewer.layers), "status": w.status.text()[:120],
                  "max_gap_s": round(float(gaps.max()), 3),
                  "gaps_over_100ms": [round(float(g), 3) for g in gaps[gaps > 0.1]],
                  "on_frame_s": [round(c, 3) for c in calls][:4]}))
viewer.close()
