"""Session 42 review (second pass): inputs and situations that broke the background Layers-menu works
(`menu_work`), the Cell Tracking Challenge export and the division split, each found by trying it."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from _layers import dividing_cell
from _menu import progress_bars, said
from _widget_run import click, needs_display

from napari_vos.ctc_export import check_ctc, write_ctc
from napari_vos.divisions import split_divisions


@needs_display
@pytest.mark.gui
def test_a_work_ending_on_a_base_exception_ends_and_is_shown(make_napari_viewer, qtbot, monkeypatch):
    """superqt's worker catches Exception only: a SystemExit (or KeyboardInterrupt) raised in the work left
    it counted as running for ever, its progress bar open and its callbacks connected, and said nothing."""
    from napari.utils.notifications import notification_manager

    from napari_vos._widgets.menu_work import running_work, start_layer_work

    monkeypatch.setattr(notification_manager, "catch_error", True)  # as in napari
    viewer = make_napari_viewer()
    layer = viewer.add_labels(dividing_cell(), name="cells")

    def work(progress):
        progress(1, 3)
        raise SystemExit(3)

    start_layer_work(viewer, layer, "Exiting work", 3, work, lambda result: None)
    qtbot.waitUntil(lambda: running_work() == 0, timeout=5000)
    qtbot.waitUntil(lambda: not progress_bars(viewer), timeout=5000)
    assert sum("Exiting work stopped on SystemExit" in text for text in said("error")) == 1


@needs_display
@pytest.mark.gui
def test_an_error_in_deliver_is_shown_once_not_raised_into_the_event_loop(make_napari_viewer, qtbot, monkeypatch):
    """An error adding the result (napari refusing the layer) went into Qt's event loop (a failed test,
    a traceback in a terminal) where the work's own errors are shown as notifications."""
    from napari.utils.notifications import notification_manager

    from napari_vos._widgets.menu_work import running_work, start_layer_work

    monkeypatch.setattr(notification_manager, "catch_error", True)
    viewer = make_napari_viewer()
    layer = viewer.add_labels(dividing_cell(), name="cells")

    def deliver(result):
        raise RuntimeError("napari refused the layer")

    start_layer_work(viewer, layer, "Broken delivery", 3, lambda progress: 5, deliver)
    qtbot.waitUntil(lambda: running_work() == 0, timeout=5000)
    assert sum("napari refused the layer" in text for text in said("error")) == 1


@needs_display
@pytest.mark.gui
def test_a_cancel_after_the_ctc_folder_is_written_does_not_say_nothing_written(make_napari_viewer, qtbot,
                                                                              monkeypatch, tmp_path):
    """Cancel clicked while the written folder was being checked (the bar full, its Cancel button still
    there): the folder was written, but the note said 'cancelled; nothing written'."""
    from qtpy.QtWidgets import QFileDialog

    import napari_vos.ctc_export as ctc_export
    from napari_vos._widgets.menu_work import running_work

    real, checking, go_on = ctc_export.check_ctc, threading.Event(), threading.Event()

    def slow_check(folder, **kwargs):
        checking.set()
        go_on.wait(10)
        return real(folder, **kwargs)

    monkeypatch.setattr(ctc_export, "check_ctc", slow_check)
    folder = tmp_path / "01_RES"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda parent, caption, start: str(folder)))
    viewer = make_napari_viewer()
    viewer.add_labels(dividing_cell(), name="cells")
    from napari._app_model import get_app_model

    before = len(said())  # the notifications of earlier tests stay in napari's records
    get_app_model().commands.execute_command("napari-vos.export_ctc").result()
    qtbot.waitUntil(checking.is_set, timeout=10000)
    qtbot.waitUntil(lambda: len(progress_bars(viewer)) == 1, timeout=5000)
    click(qtbot, progress_bars(viewer)[0].cancel_button)
    go_on.set()
    qtbot.waitUntil(lambda: running_work() == 0, timeout=10000)
    assert (folder / "res_track.txt").is_file()  # written whole before the cancel
    shown = said()[before:]
    assert not any("nothing written" in text for text in shown)
    assert any(f"wrote {folder}" in text for text in shown)
    assert any("cancelled after the work had ended" in text for text in shown)


# --- divisions ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, top", [(np.uint64, 2**64 - 1), (np.int64, 2**63 - 1)])
def test_ids_at_the_top_of_their_type_are_refused_saying_so_not_an_overflow(dtype, top):
    """A daughter's new id is above the stack's largest: with an id at the top of uint64 (or of int64 with
    negative ids beside it) the split ended in 'OverflowError: Python int too large to convert to C long'."""
    labels = np.zeros((4, 40, 40), dtype)
    labels[:, 5:15, 5:15] = top
    labels[2:, 5:15, 25:35] = top  # its second part from frame 2: a division
    if dtype == np.int64:
        labels[:, 30:35, 30:35] = -4
    with pytest.raises(ValueError, match="no room"):
        split_divisions(labels, persist=1)


# --- ctc_export ---------------------------------------------------------------------------------------


def _two_cells() -> np.ndarray:
    labels = np.zeros((4, 12, 12), np.uint8)
    labels[:, 1:4, 1:4] = 1
    labels[2:, 6:9, 6:9] = 2
    return labels


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="symbolic links")
def test_a_result_folder_given_as_a_link_to_an_empty_folder_is_written_into_it(tmp_path):
    """01_RES a symbolic link to an empty folder (on a larger disk): 'NotADirectoryError: [Errno 20] Not a
    directory' as the whole result was moved in (the link was removed as if it were the folder)."""
    target = tmp_path / "disk" / "01_RES"
    target.mkdir(parents=True)
    link = tmp_path / "run" / "01_RES"
    link.parent.mkdir()
    os.symlink(target, link)
    result = write_ctc(link, _two_cells())
    assert link.is_symlink() and os.path.realpath(link) == os.path.realpath(target)
    assert sorted(p.name for p in target.iterdir()) == [f"mask{t:03d}.tif" for t in range(4)] + ["res_track.txt"]
    assert check_ctc(link) == [] and len(result.table) == 2
    assert os.listdir(link.parent) == ["01_RES"] and os.listdir(target.parent) == ["01_RES"]  # no hidden folder left


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="symbolic links")
def test_a_forced_write_through_a_link_works_beside_the_folder_it_names(tmp_path, monkeypatch):
    """--force onto a link to a folder on another disk: the earlier masks were set aside, and the new ones
    made, beside the link, so moving them into the folder crossed disks (os.replace: 'Invalid cross-device
    link') and the write failed. Simulated: a move between the link's folder and the target's refused."""
    import napari_vos.ctc_export as ctc_export

    target = tmp_path / "disk" / "01_RES"
    target.mkdir(parents=True)
    write_ctc(target, _two_cells())
    (target / "notes.txt").write_text("mine")
    link = tmp_path / "run" / "01_RES"
    link.parent.mkdir()
    os.symlink(target, link)
    real_replace, real_rename = os.replace, os.rename
    disk = os.path.realpath(target.parent)

    def on_disk(path) -> bool:
        return os.path.realpath(os.path.dirname(os.path.abspath(path))).startswith(disk)

    def one_disk(move):
        def checked(src, dst, *args, **kwargs):
            if on_disk(src) != on_disk(dst):
                raise OSError(18, "Invalid cross-device link")
            return move(src, dst, *args, **kwargs)
        return checked

    monkeypatch.setattr(ctc_export.os, "replace", one_disk(real_replace))
    monkeypatch.setattr(ctc_export.os, "rename", one_disk(real_rename))
    labels = _two_cells()
    labels[3, 1:4, 1:4] = 0
    result = write_ctc(link, labels, force=True)
    assert result.table.tolist() == [[1, 0, 2, 0], [2, 2, 3, 0]]
    assert (target / "notes.txt").read_text() == "mine" and check_ctc(target) == []
    assert link.is_symlink() and os.listdir(link.parent) == ["01_RES"]
    assert sorted(os.listdir(target.parent)) == ["01_RES"]


def test_a_lineage_csv_saved_by_a_spreadsheet_in_its_local_encoding_is_read(tmp_path):
    """A lineage CSV with a notes column saved again by a spreadsheet as Windows-1252 (é as one byte 0xe9):
    'error: 'utf-8' codec can't decode byte 0xe9 in position 55', naming neither the file nor a fix,
    though the label and parent columns are plain digits."""
    from napari_vos.cli_ctc import read_lineage_csv

    path = tmp_path / "cells.lineage.csv"
    path.write_bytes("label,first_frame,last_frame,parent,note\r\n4,2,5,3,divisé\r\n5,2,5,3,\r\n".encode("cp1252"))
    assert read_lineage_csv(path) == {4: 3, 5: 3}


@needs_display
@pytest.mark.gui
@pytest.mark.parametrize("writes", [False, True])
def test_a_cancel_after_the_last_step_adds_no_layer_but_a_written_file_is_said(make_napari_viewer, qtbot, writes):
    """Cancel after a work's last progress step: a work that writes files has written them, so its result is
    delivered and the late cancel said; a work whose result is a layer to add adds nothing, as asked."""
    from napari_vos._widgets.menu_work import running_work, start_layer_work

    viewer = make_napari_viewer()
    layer = viewer.add_labels(dividing_cell(), name="cells")
    ended, go_on, delivered = threading.Event(), threading.Event(), []

    def work(progress):
        progress(3, 3)
        ended.set()
        go_on.wait(10)
        return "result"

    before = len(said())
    start_layer_work(viewer, layer, "Late work", 3, work, delivered.append, writes=writes)
    qtbot.waitUntil(lambda: ended.is_set() and len(progress_bars(viewer)) == 1, timeout=10000)
    click(qtbot, progress_bars(viewer)[0].cancel_button)
    go_on.set()
    qtbot.waitUntil(lambda: running_work() == 0, timeout=10000)
    shown = said()[before:]
    if writes:
        assert delivered == ["result"] and any("too late to stop it" in text for text in shown)
    else:
        assert delivered == [] and any("cancelled; nothing added" in text for text in shown)


def test_uint64_ids_from_2_63_on_stay_positive_in_the_tracks_label_feature():
    """`centroid_tracks` cast the ids to int64: 2**64 - 5 came out as -5 in the Tracks layer's label feature."""
    from napari_vos._widgets.tracks_layer import centroid_tracks

    labels = np.zeros((3, 10, 10), np.uint64)
    labels[:, 2:5, 2:5] = 2**64 - 5
    labels[:, 6:9, 6:9] = 7
    data, features = centroid_tracks(labels)
    assert sorted(int(v) for v in set(features["label"].tolist())) == [7, 2**64 - 5]
    assert features["label"].dtype == np.uint64 and set(data[:, 0].tolist()) == {1.0, 2.0}  # renumbered tracks


def test_a_plain_4d_labels_tiff_without_z_is_written_as_3d_masks(tmp_path, capsys):
    """A (T, Z, Y, X) labels TIFF saved by a plain tifffile.imwrite, given without --z, was refused as
    holding 'one frame', then asked for its plane; now it is CTC's 3D result, and --z gives one plane."""
    import tifffile

    from napari_vos.cli import main

    stack = np.zeros((3, 2, 8, 8), np.uint8)
    stack[:, :, 2:5, 2:5] = 1
    tifffile.imwrite(tmp_path / "tz.tif", stack)
    assert main(["ctc", str(tmp_path / "tz.tif"), "-o", str(tmp_path / "res3d")]) == 0
    assert "over 3 frames of 2 Z planes" in capsys.readouterr().out
    assert tifffile.imread(tmp_path / "res3d" / "mask000.tif").shape == (2, 8, 8)
    assert main(["ctc", str(tmp_path / "tz.tif"), "-o", str(tmp_path / "res"), "--z", "1"]) == 0
