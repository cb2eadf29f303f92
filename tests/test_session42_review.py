"""Session 42's review of the day's code: inputs a demanding microscopist gives that broke the object
measurements, File > IO Utilities and the division parents, each found by trying it (the GUI tests need
a display: `xvfb-run -a`)."""
from __future__ import annotations

import numpy as np
import pytest
from _layers import dividing_cell
from _menu import run_menu_command, said
from _widget_run import needs_display


def test_big_endian_uint64_labels_keep_their_ids_as_uint64():
    """tifffile gives a big-endian TIFF's ids as '>u8': they were compared with np.uint64 byte order and
    all, so ids from 2**63 on came out negative in an int64 label column (and sorted first)."""
    from napari_vos.object_table import measure_objects, track_summary

    stack = np.zeros((2, 6, 6), np.uint64)
    stack[:, 1:3, 1:3] = 2 ** 63 + 5
    stack[:, 4:, 4:] = 3
    native = measure_objects(stack)
    swapped = measure_objects(stack.astype(">u8"))
    assert swapped.columns["label"].dtype == np.uint64
    assert swapped.columns["label"].tolist() == native.columns["label"].tolist() == [3, 2 ** 63 + 5] * 2
    assert track_summary(swapped).columns["label"].tolist() == [3, 2 ** 63 + 5]


# --- io_menu ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("typed, picked, written", [
    ("cells", "Animated GIF (*.gif)", "cells.gif"), ("my cells.v2", "Animated GIF (*.gif)", "my cells.v2.gif"),
    ("cells.GIF", "Animated GIF (*.gif)", "cells.GIF"), ("cells.mp4", "Animated GIF (*.gif)", "cells.mp4"),
    ("cells", "H.264 movie (*.mp4 *.mkv *.mov)", "cells.mp4")])
@needs_display
@pytest.mark.gui
def test_the_overlay_menu_writes_a_gif_where_the_gif_file_type_was_picked(typed, picked, written, make_napari_viewer,
                                                                          qtbot, monkeypatch, tmp_path):
    """A name typed without an extension under the dialog's "Animated GIF (*.gif)" file type (Qt's and
    GTK's dialogs on Linux add none) was written as an H.264 .mp4, the picked type ignored (and without
    PyAV refused as a movie that needs it)."""
    from qtpy.QtWidgets import QFileDialog

    if written.endswith(".mp4"):
        pytest.importorskip("av")
    viewer = make_napari_viewer()
    labels = dividing_cell()
    image = viewer.add_image(labels.astype(np.uint8), name="video")
    layer = viewer.add_labels(labels, name="cells")
    viewer.layers.selection = {image, layer}
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(
        lambda parent, caption, start, filters: (str(tmp_path / typed), picked)))
    run_menu_command(qtbot, "napari-vos.export_overlay")
    assert [p.name for p in tmp_path.iterdir()] == [written], said()
    if written.lower().endswith(".gif"):
        assert (tmp_path / written).read_bytes()[:6] in (b"GIF89a", b"GIF87a")


@needs_display
@pytest.mark.gui
def test_the_ctc_menu_says_the_labels_are_a_stopped_runs_output(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    """`napari-vos ctc` notes a stopped run's output (its later frames hold no object, so its tracks end
    there); the menu doing what it does wrote such a result without a word."""
    from qtpy.QtWidgets import QFileDialog

    viewer = make_napari_viewer()
    record = {"method": "flow", "complete": False, "frames_segmented": "0-2", "stopped_by": "cancel"}
    stopped = viewer.add_labels(dividing_cell(), name="stopped", metadata={"napari_vos": record})
    viewer.layers.selection = {stopped}
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *args: str(tmp_path / "01_RES")))
    run_menu_command(qtbot, "napari-vos.export_ctc")
    assert (tmp_path / "01_RES" / "res_track.txt").is_file()
    assert any("'stopped'" in text and "stopped run" in text and "0-2" in text for text in said("warning")), said()
    finished = viewer.add_labels(dividing_cell(), name="finished", metadata={"napari_vos": {"method": "flow"}})
    viewer.layers.selection = {finished}
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *args: str(tmp_path / "02_RES")))
    run_menu_command(qtbot, "napari-vos.export_ctc")
    assert (tmp_path / "02_RES" / "res_track.txt").is_file()
    assert not any("'finished'" in text for text in said("warning"))


@needs_display
@pytest.mark.gui
def test_the_ctc_menu_says_a_split_layer_without_divisions_kept_none(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    """A *Split divided cells* layer in which no cell divided was written with "no lineage (split divided
    cells first to keep divisions)", telling the user to do what they had done; `napari-vos ctc` says
    "0 divisions kept" for such labels."""
    from napari.layers import Layer
    from qtpy.QtWidgets import QFileDialog

    from napari_vos._widgets.tracks_layer import divided_layer_data

    viewer = make_napari_viewer()
    still = dividing_cell()
    still[still == 3] = 0  # only the cell that never divides
    source = viewer.add_labels(still, name="cells")
    divided = viewer.add_layer(Layer.create(*divided_layer_data(source)))
    viewer.layers.selection = {divided}
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *args: str(tmp_path / "01_RES")))
    run_menu_command(qtbot, "napari-vos.export_ctc")
    info = [text for text in said("info") if str(tmp_path / "01_RES") in text]
    assert len(info) == 1 and "0 divisions kept" in info[0] and "split divided cells first" not in info[0], info
    viewer.layers.selection = {source}  # labels no split made: said as before
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *args: str(tmp_path / "02_RES")))
    run_menu_command(qtbot, "napari-vos.export_ctc")
    assert any(str(tmp_path / "02_RES") in text and "split divided cells first" in text for text in said("info"))


def test_a_record_that_is_no_dict_does_not_break_the_measurements():
    """A reader plugin that copies a napari-vos TIFF's metadata into the layer gives the record as the
    file's JSON text: layer_tables raised AttributeError on it."""
    from napari_vos._widgets.object_table_writer import layer_tables

    labels = np.zeros((2, 8, 8), np.uint8)
    labels[:, 2:5, 2:5] = 1
    objects, tracks = layer_tables(labels, {"name": "opened", "metadata": {"napari_vos": '{"method": "flow"}'}})
    assert len(objects) == 2 and "parent" not in tracks.columns
