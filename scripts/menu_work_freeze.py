"""How long napari's GUI thread is blocked while Layers > Track > Split divided cells and Centroid tracks,
Layers > Measure > Object measurements, and File > IO Utilities > Overlay movie and Cell Tracking
Challenge result folder run on a long cell stack: the longest gap between ticks of a 10 ms QTimer,
with the work on the GUI thread (as the menu ran it up to session 40; the measurements and overlay as
their save types write them; the CTC folder as the console's save_ctc) and through the menu command
(a worker thread now).
Needs a display (`xvfb-run -a`). Usage: .venv/bin/python scripts/menu_work_freeze.py [FRAMES] [SIZE] [CELLS]
[CASE ...] with CASE among split, tracks, measure, overlay, ctc (default: all)."""
import sys
import tempfile
import time
from pathlib import Path

import napari
import numpy as np
from napari._app_model import get_app_model
from qtpy.QtCore import QEventLoop, QTimer
from qtpy.QtWidgets import QApplication, QFileDialog, QMessageBox

from napari_vos._widgets.menu_work import running_work
from napari_vos._widgets.object_table_writer import write_object_tables
from napari_vos._widgets.overlay_writer import write_overlay
from napari_vos._widgets.tracks_layer import divided_layer_data, tracks_layer_data
from napari_vos.data.synthetic_cells import cell_video, under_root_ids

frames, size, cells = (int(a) for a in (sys.argv[1:4] + ["200", "512", "80"][len(sys.argv[1:4]):])[:3])
cases = set(sys.argv[4:]) or {"split", "tracks", "measure", "overlay", "ctc"}
video = cell_video(frames, (size, size), n_cells=cells, seed=0, division_rate=0.004)
labels = under_root_ids(video.labels, video.lineage)  # a division kept under one id, as the methods propagate it
viewer = napari.Viewer(show=True)
layer = viewer.add_labels(labels, name="cells")
app = QApplication.instance()
ticks: list[float] = []
timer = QTimer()
timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
timer.start(10)


def longest_gap(run, probe: bool = True) -> tuple[float, float]:
    """(seconds the work took, the longest gap between timer ticks meanwhile). probe False: no 10 ms timer
    (its wake-ups take the GIL from the worker), the time alone."""
    for _ in range(20):  # settle
        app.processEvents()
        time.sleep(0.01)
    timer.start(10) if probe else timer.stop()
    ticks.clear()
    ticks.append(time.perf_counter())
    start = time.perf_counter()
    run()
    loop = QEventLoop()  # napari's own event loop waits the same way: idle until an event comes
    watch = QTimer()
    watch.timeout.connect(lambda: running_work() or loop.quit())
    watch.start(10 if probe else 100)
    loop.exec_()
    watch.stop()
    took = time.perf_counter() - start
    app.processEvents()
    ticks.append(time.perf_counter())
    return took, max(b - a for a, b in zip(ticks, ticks[1:]))


image = viewer.add_image(np.asarray(video.frames), name="video")
out = Path(tempfile.mkdtemp())
# the dialogs answered: a file name by the dialog's caption, the CTC folder, Yes to replacing it
QFileDialog.getSaveFileName = staticmethod(lambda parent, caption, *args: (
    str(out / ("menu.mp4" if "overlay" in caption else "menu.csv")), ""))
QFileDialog.getExistingDirectory = staticmethod(lambda *args: str(out / "menu_RES"))
QMessageBox.question = staticmethod(lambda *args: QMessageBox.Yes)
(out / "menu_RES").mkdir()


def measure_on_gui() -> None:  # what the save type does: napari calls the writer on its GUI thread
    write_object_tables(str(out / "writer.csv"), [(image.data, {"name": "video", "rgb": False}, "image"),
                                                  (layer.data, {"name": "cells"}, "labels")])


def overlay_on_gui() -> None:  # the overlay save type, on the GUI thread
    write_overlay(str(out / "writer.mp4"), [image.as_layer_data_tuple(), layer.as_layer_data_tuple()])


def ctc_on_gui() -> None:  # console.save_ctc, on the GUI thread
    from napari_vos.console import save_ctc

    save_ctc(viewer, layer, out / "console_RES", force=True)


for case, title, run_on_gui, command in (
        ("split", "Split divided cells", lambda: divided_layer_data(layer), "napari-vos.divided_labels"),
        ("tracks", "Centroid tracks", lambda: tracks_layer_data(layer), "napari-vos.labels_tracks"),
        ("measure", "Object measurements (with the image)", measure_on_gui, "napari-vos.measure_objects"),
        ("overlay", "Overlay movie (.mp4)", overlay_on_gui, "napari-vos.export_overlay"),
        ("ctc", "CTC result folder", ctc_on_gui, "napari-vos.export_ctc")):
    if case not in cases:
        continue

    def from_menu(command=command, both=case in ("measure", "overlay")) -> None:
        viewer.layers.selection = {layer, image} if both else {layer}  # an added layer was selected
        get_app_model().commands.execute_command(command).result()

    on_gui = longest_gap(run_on_gui)
    in_worker = longest_gap(from_menu)
    alone = longest_gap(from_menu, probe=False)
    print(f"{title}, {frames} frames of {size}x{size}, {cells} cells: on the GUI thread {on_gui[0]:.2f} s, "
          f"GUI blocked up to {on_gui[1]:.2f} s; menu command (worker) {in_worker[0]:.2f} s, GUI blocked up to "
          f"{in_worker[1]:.3f} s; without the 10 ms timer {alone[0]:.2f} s")
timer.stop()
viewer.close()
