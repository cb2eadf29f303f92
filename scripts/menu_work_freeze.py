"""How long napari's GUI thread is blocked while Layers > Track > Split divided cells and Centroid tracks
run on a long cell stack: the longest gap between ticks of a 10 ms QTimer, with the work on the GUI
thread (as the menu ran it up to session 40) and through the menu command (a worker thread now).
Needs a display (`xvfb-run -a`). Usage: .venv/bin/python scripts/menu_work_freeze.py [FRAMES] [SIZE] [CELLS]"""
import sys
import time

import napari
import numpy as np
from napari._app_model import get_app_model
from qtpy.QtCore import QEventLoop, QTimer
from qtpy.QtWidgets import QApplication

from napari_vos._widgets.menu_work import running_work
from napari_vos._widgets.tracks_layer import divided_layer_data, tracks_layer_data
from napari_vos.data.synthetic_cells import cell_video

frames, size, cells = (int(a) for a in (sys.argv[1:] + ["200", "512", "80"][len(sys.argv) - 1:])[:3])
video = cell_video(frames, (size, size), n_cells=cells, seed=0, division_rate=0.004)
truth = np.asarray(video.labels)


def root(i: int) -> int:
    while video.lineage.get(i, (0,))[0]:
        i = video.lineage[i][0]
    return i


lut = np.arange(int(truth.max()) + 1, dtype=truth.dtype)  # every daughter under its root cell's id:
for i in video.lineage:  # a division kept under one id, as the methods propagate it
    lut[i] = root(i)
labels = lut[truth]
viewer = napari.Viewer(show=True)
layer = viewer.add_labels(labels, name="cells")
app = QApplication.instance()
ticks: list[float] = []
timer = QTimer()
timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
timer.start(10)


def longest_gap(run) -> tuple[float, float]:
    """(seconds the work took, the longest gap between timer ticks meanwhile)."""
    for _ in range(20):  # settle
        app.processEvents()
        time.sleep(0.01)
    ticks.clear()
    ticks.append(time.perf_counter())
    start = time.perf_counter()
    run()
    loop = QEventLoop()  # napari's own event loop waits the same way: idle until an event comes
    watch = QTimer()
    watch.timeout.connect(lambda: running_work() or loop.quit())
    watch.start(10)
    loop.exec_()
    watch.stop()
    took = time.perf_counter() - start
    app.processEvents()
    ticks.append(time.perf_counter())
    return took, max(b - a for a, b in zip(ticks, ticks[1:]))


for title, data_of, command in (("Split divided cells", divided_layer_data, "napari-vos.divided_labels"),
                                ("Centroid tracks", tracks_layer_data, "napari-vos.labels_tracks")):
    viewer.layers.selection.active = layer
    on_gui = longest_gap(lambda: data_of(layer))
    viewer.layers.selection.active = layer
    in_worker = longest_gap(lambda: get_app_model().commands.execute_command(command).result())
    print(f"{title}, {frames} frames of {size}x{size}, {cells} cells: on the GUI thread {on_gui[0]:.2f} s, "
          f"GUI blocked up to {on_gui[1]:.2f} s; menu command (worker) {in_worker[0]:.2f} s, GUI blocked up to "
          f"{in_worker[1]:.3f} s")
timer.stop()
viewer.close()
