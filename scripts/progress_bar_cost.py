"""What an open napari progress bar costs a worker thread: the object measurements of a synthetic cell
stack timed on the GUI thread, in a plain thread, in napari's `create_worker`, and in `create_worker`
while a `cancelable_progress` bar is open (the Layers-menu commands' bar), the GUI in its event loop.
Needs a display (`xvfb-run -a`). Usage: .venv/bin/python scripts/progress_bar_cost.py [FRAMES]"""
import sys
import threading
import time

import napari
import numpy as np
from napari.qt.threading import create_worker
from napari.utils import cancelable_progress
from qtpy.QtCore import QEventLoop, QTimer
from qtpy.QtWidgets import QApplication

from napari_vos._widgets.object_table_writer import layer_tables
from napari_vos.data.synthetic_cells import cell_video

frames = int(sys.argv[1]) if len(sys.argv) > 1 else 50
video = cell_video(frames, (512, 512), n_cells=80, seed=0)
viewer = napari.Viewer(show=True)
labels = viewer.add_labels(np.asarray(video.labels))
image = viewer.add_image(np.asarray(video.frames))
app = QApplication.instance()


def measure() -> float:
    start = time.perf_counter()
    layer_tables(labels.data, {"name": "cells"}, image.data, {"name": "video", "rgb": False})
    return time.perf_counter() - start


def wait_while(busy) -> None:
    loop, watch = QEventLoop(), QTimer()
    watch.timeout.connect(lambda: busy() or loop.quit())
    watch.start(100)
    loop.exec_()


def in_worker() -> float:
    took: list[float] = []
    create_worker(lambda: took.append(measure()), _start_thread=True)
    wait_while(lambda: not took)
    return took[0]


def in_thread() -> float:
    took: list[float] = []
    thread = threading.Thread(target=lambda: took.append(measure()))
    thread.start()
    wait_while(thread.is_alive)
    return took[0]


for _ in range(30):
    app.processEvents()
    time.sleep(0.01)
print(f"{frames} frames of 512x512, 80 cells: GUI thread {measure():.2f} s; plain thread {in_thread():.2f} s; "
      f"create_worker {in_worker():.2f} s", end="")
bar = cancelable_progress(total=frames, desc="open")
print(f"; create_worker with a progress bar open {in_worker():.2f} s")
bar.close()
viewer.close()
