"""Layers > Measure > Object measurements (CSV)... in a real viewer: the save dialog's path, the
selected image's intensities, the tables written off the GUI thread, Cancel in the dialog."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from _layers import dividing_cell
from _menu import answer_save_dialog, run_menu_command, said
from _widget_run import click, needs_display

pytestmark = [needs_display, pytest.mark.gui]


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_measure_menu_writes_both_tables_with_the_selected_images_intensities(make_napari_viewer, qtbot,
                                                                                  monkeypatch, tmp_path):
    from napari._app_model import get_app_model

    viewer = make_napari_viewer()
    labels = dividing_cell()
    image = viewer.add_image(labels.astype(np.uint16) * 100, name="video", scale=(1, 0.5, 0.5))
    layer = viewer.add_labels(labels, name="cells", scale=(1, 0.5, 0.5), units=("s", "um", "um"))
    titles = [item.command.title for item in get_app_model().menus.get_menu("napari/layers/measure")
              if hasattr(item, "command")]
    assert "Object measurements (CSV)... (napari-vos)" in titles
    viewer.layers.selection = {layer, image}  # both selected (shift-click): napari has no active layer then
    asked = answer_save_dialog(monkeypatch, str(tmp_path / "cells"))  # typed without .csv
    run_menu_command(qtbot, "napari-vos.measure_objects")
    assert asked[0].endswith("cells.csv")
    rows = _rows(tmp_path / "cells.csv")
    assert len(rows) == 2 * len(labels)  # ids 1 and 3 on every frame
    first = next(r for r in rows if r["frame"] == "0" and r["label"] == "3")
    assert float(first["intensity_mean"]) == 300 and float(first["area_um2"]) == 100 * 0.25
    tracks = _rows(tmp_path / "cells.tracks.csv")
    assert [r["label"] for r in tracks] == ["1", "3"]
    assert any("cells.tracks.csv" in text and "intensities of 'video'" in text for text in said())


def test_without_an_image_selected_the_tables_have_no_intensities_and_cancel_writes_nothing(
        make_napari_viewer, qtbot, monkeypatch, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((6, 30, 44), np.uint16), name="video")
    layer = viewer.add_labels(dividing_cell(), name="cells")
    viewer.layers.selection.active = layer
    answer_save_dialog(monkeypatch, "")  # Cancel
    run_menu_command(qtbot, "napari-vos.measure_objects")
    assert list(tmp_path.iterdir()) == []
    answer_save_dialog(monkeypatch, str(tmp_path / "plain.csv"))
    run_menu_command(qtbot, "napari-vos.measure_objects")
    rows = _rows(tmp_path / "plain.csv")
    assert rows and not any(name.startswith("intensity") for name in rows[0])
    assert any("no image selected" in text for text in said())


def test_an_image_of_another_size_is_refused_with_both_shapes(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((6, 20, 20), np.uint16), name="other")
    layer = viewer.add_labels(dividing_cell(), name="cells")
    viewer.layers.selection = {layer, image}  # both selected (shift-click): napari has no active layer then
    asked = answer_save_dialog(monkeypatch, str(tmp_path / "t.csv"))
    with pytest.raises(ValueError, match=r"\(6, 30, 44\).*\(6, 20, 20\)"):
        run_menu_command(qtbot, "napari-vos.measure_objects")
    assert asked == [] and not (tmp_path / "t.csv").exists()  # refused before the dialog asked for a name
    viewer.layers.selection = {viewer.add_labels(np.zeros((2, 2, 3, 8, 8), np.uint8), name="five axes")}
    with pytest.raises(ValueError, match=r"'five axes' has shape \(2, 2, 3, 8, 8\)"):
        run_menu_command(qtbot, "napari-vos.measure_objects")
    assert asked == []


def test_two_images_selected_are_refused_at_once_naming_the_selection(make_napari_viewer, monkeypatch, tmp_path):
    from napari._app_model import get_app_model

    viewer = make_napari_viewer()
    a = viewer.add_image(np.zeros((6, 30, 44), np.uint16), name="a")
    b = viewer.add_image(np.zeros((6, 30, 44), np.uint16), name="b")
    layer = viewer.add_labels(dividing_cell(), name="cells")
    viewer.layers.selection = {layer, a, b}
    asked = answer_save_dialog(monkeypatch, str(tmp_path / "t.csv"))
    with pytest.raises(ValueError, match="at most one image"):
        get_app_model().commands.execute_command("napari-vos.measure_objects").result()
    assert asked == []  # refused before the dialog


def test_cancelling_the_measurements_writes_no_table(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    """The bar's Cancel mid-measurement: neither table is written, and the note says so."""
    import time

    from napari._app_model import get_app_model
    from napari._qt.widgets.qt_progress_bar import QtLabeledProgressBar

    import napari_vos.object_table as object_table
    from napari_vos._widgets.menu_work import running_work

    real = object_table.measure_objects
    frames_done: list[int] = []

    def slow(labels, image=None, *, progress=None, **kwargs):
        def step(done, total):
            frames_done.append(done)
            time.sleep(0.2)
            progress(done, total)
        return real(labels, image, progress=step, **kwargs)

    monkeypatch.setattr(object_table, "measure_objects", slow)
    viewer = make_napari_viewer()
    layer = viewer.add_labels(dividing_cell(), name="cells")
    viewer.layers.selection = {layer}
    answer_save_dialog(monkeypatch, str(tmp_path / "t.csv"))
    get_app_model().commands.execute_command("napari-vos.measure_objects").result()
    bars = lambda: viewer.window._qt_window._activity_dialog.findChildren(QtLabeledProgressBar)  # noqa: E731
    qtbot.waitUntil(lambda: bool(bars() and frames_done), timeout=5000)
    click(qtbot, bars()[0].cancel_button)
    qtbot.waitUntil(lambda: running_work() == 0, timeout=10000)
    assert list(tmp_path.iterdir()) == []
    assert any("cancelled; nothing written" in text for text in said())


def test_labels_drawn_elsewhere_than_the_image_are_measured_with_a_warning_and_the_overlay_too(
        make_napari_viewer, qtbot, monkeypatch, tmp_path):
    """The intensities (and the overlay movie) pair the two layers pixel by pixel: labels napari draws 15 px
    off the image were measured and drawn over the image's pixels with no word, as Propagate says it."""
    viewer = make_napari_viewer()
    labels = dividing_cell()
    image = viewer.add_image(labels.astype(np.uint8) * 60, name="video")
    layer = viewer.add_labels(labels, name="cells", translate=(0, 15, 15))
    viewer.layers.selection = {layer, image}
    start = len(said())
    answer_save_dialog(monkeypatch, str(tmp_path / "cells.csv"))
    run_menu_command(qtbot, "napari-vos.measure_objects")
    assert any(text.startswith("intensities measured pixel by pixel: the labels layer 'cells' is drawn at scale")
               for text in said("warning")[-3:])
    assert (tmp_path / "cells.csv").exists()
    answer_save_dialog(monkeypatch, str(tmp_path / "cells.gif"), "GIF (*.gif)")
    run_menu_command(qtbot, "napari-vos.export_overlay")
    assert any(text.startswith("the overlay pairs the pixels by index: the labels layer 'cells'")
               for text in said("warning")[-3:])
    layer.translate = (0, 0, 0)  # drawn over the image: nothing said
    before = len(said("warning"))
    answer_save_dialog(monkeypatch, str(tmp_path / "again.csv"))
    run_menu_command(qtbot, "napari-vos.measure_objects")
    assert len(said("warning")) == before and len(said()) > start


def test_a_name_of_another_format_is_refused_as_the_csv_save_type_refuses_it(make_napari_viewer, qtbot, monkeypatch,
                                                                               tmp_path):
    """The menu wrote 'cells.tif.csv' for 'cells.tif', which the CSV save type refuses."""
    viewer = make_napari_viewer()
    viewer.layers.selection.active = viewer.add_labels(dividing_cell(), name="cells")
    answer_save_dialog(monkeypatch, str(tmp_path / "cells.tif"))
    with pytest.raises(ValueError, match="name them cells.csv, not cells.tif"):
        run_menu_command(qtbot, "napari-vos.measure_objects")
    assert list(tmp_path.iterdir()) == []
