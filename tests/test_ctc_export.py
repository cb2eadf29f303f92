"""A labels stack as a Cell Tracking Challenge result folder (`napari_vos.ctc_export`, `napari-vos ctc`):
gaps split into tracks, lineages mapped, ids renumbered into 16 bits, the folder written whole or
not at all, and checked by the rules CTC's software applies. Small stacks made here."""
from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import tifffile
from _layers import dividing_cell

from napari_vos.ctc_export import MAX_TRACKS, check_ctc, ctc_tracks, mask_name, write_ctc


def _rows(folder) -> list[list[int]]:
    return [[int(v) for v in line.split()] for line in (folder / "res_track.txt").read_text().splitlines()]


def _gapped() -> np.ndarray:
    """Id 7 on frames 0-2 and 5-6 (a gap of two frames); id 2 on every frame."""
    labels = np.zeros((7, 10, 12), np.uint8)
    labels[[0, 1, 2, 5, 6], 1:4, 1:4] = 7
    labels[:, 6:9, 6:10] = 2
    return labels


def test_an_id_back_after_a_gap_is_a_new_track_whose_parent_is_its_track_before():
    out, table = ctc_tracks(_gapped())
    # numbered by first frame, then id: 2 -> 1, 7 -> 2 (frames 0-2), 7 again -> 3 (frames 5-6)
    assert table.tolist() == [[1, 0, 6, 0], [2, 0, 2, 0], [3, 5, 6, 2]]
    assert out.dtype == np.uint16 and out.shape == (7, 10, 12)
    assert out[:, 2, 2].tolist() == [2, 2, 2, 0, 0, 3, 3]
    assert (out[:, 7, 7] == 1).all() and set(np.unique(out).tolist()) == {0, 1, 2, 3}


def test_a_daughter_is_linked_to_the_parents_last_track_and_a_missing_or_overlapping_parent_gives_0():
    labels = np.zeros((8, 12, 20), np.uint16)
    labels[[0, 1, 3, 4], 2:6, 2:6] = 5  # the parent: frames 0-1, a gap, 3-4
    labels[5:, 2:6, 1:3] = 11  # its daughters from frame 5
    labels[5:, 2:6, 6:8] = 12
    labels[:, 8:10, 10:12] = 20  # on every frame
    labels[2:, 8:10, 14:16] = 21  # "daughter" of 20, which is still there: no division CTC can hold
    labels[4:, 0:2, 16:18] = 30  # daughter of 99, not in the stack
    out, table = ctc_tracks(labels, {11: 5, 12: 5, 21: 20, 30: 99})
    rows = {int(out[t, y, x]): row for row, (t, y, x) in zip(table.tolist(), [
        (0, 3, 3), (0, 9, 11), (2, 9, 15), (3, 3, 3), (4, 1, 17), (5, 3, 1), (5, 3, 6)])}
    assert [r[0] for r in table.tolist()] == list(range(1, 8))
    first, back = out[0, 3, 3], out[3, 3, 3]
    assert rows[back][3] == first  # the parent's gap
    assert rows[out[5, 3, 1]][3] == back and rows[out[5, 3, 6]][3] == back  # its last track, not its first
    assert rows[out[2, 9, 15]][3] == 0 and rows[out[4, 1, 17]][3] == 0


def test_the_export_notes_the_lineage_links_it_left_out_and_counts_divisions_and_gaps(tmp_path):
    labels = np.zeros((8, 12, 20), np.uint16)
    labels[[0, 1, 3, 4], 2:6, 2:6] = 5
    labels[5:, 2:6, 1:3], labels[5:, 2:6, 6:8] = 11, 12
    labels[:, 8:10, 10:12], labels[2:, 8:10, 14:16] = 20, 21
    labels[4:, 0:2, 16:18] = 30
    result = write_ctc(tmp_path / "res", labels, {11: 5, 12: 5, 21: 20, 30: 99, 40: 5})
    assert (result.gaps, result.divisions, result.daughters) == (1, 1, 2)
    assert sorted(result.left_out) == [(21, 20, "the parent does not end before the daughter begins"),
                                       (30, 99, "the parent is not in the labels"),
                                       (40, 5, "the daughter is not in the labels")]  # a lineage of other labels
    assert check_ctc(tmp_path / "res") == []


def test_a_divisions_lineage_is_taken_as_DivisionResult_gives_it():
    from napari_vos.divisions import split_divisions

    divided = split_divisions(dividing_cell(6, 2))
    _, from_tuples = ctc_tracks(divided.labels, divided.lineage)
    _, from_parents = ctc_tracks(divided.labels, {4: 3, 5: 3})
    assert from_tuples.tolist() == from_parents.tolist() == [[1, 0, 5, 0], [2, 0, 1, 0], [3, 2, 5, 2], [4, 2, 5, 2]]


def test_big_ids_are_renumbered_by_first_frame_then_id_into_16_bits():
    labels = np.zeros((3, 6, 6), np.uint32)
    labels[1:, 0, 0] = 4_000_000_000
    labels[:, 2, 2] = 70_000
    labels[:, 4, 4] = 2**31 + 5
    labels[1:, 5, 5] = 9
    out, table = ctc_tracks(labels)
    assert table[:, 0].tolist() == [1, 2, 3, 4]
    assert [int(out[2, y, x]) for y, x in ((2, 2), (4, 4), (5, 5), (0, 0))] == [1, 2, 3, 4]
    negative = labels.astype(np.int64)
    negative[negative == 9] = -3  # a negative id is an object too, first among frame 1's new ones
    out, _ = ctc_tracks(negative)
    assert int(out[2, 5, 5]) == 3 and int(out[2, 0, 0]) == 4


def test_65535_tracks_fit_and_one_more_is_refused_saying_why(tmp_path):
    ids = np.arange(1, 65537, dtype=np.uint32).reshape(1, 256, 256)
    with pytest.raises(ValueError, match="more than 65535 tracks.*16-bit"):
        ctc_tracks(ids)
    with pytest.raises(ValueError, match="65535"):
        write_ctc(tmp_path / "res", ids)
    assert list(tmp_path.iterdir()) == []  # no folder, no hidden partial one
    ids[0, 0, 0] = 0
    out, table = ctc_tracks(ids)
    assert len(table) == MAX_TRACKS and int(out.max()) == 65535 and int(out[0, 0, 1]) == 1


@pytest.mark.parametrize("labels, words", [
    (np.zeros((0, 8, 8), np.uint8), "no frames"),
    (np.zeros((8, 8), np.uint8), "(T, Y, X)"),
    (np.zeros((2, 1, 3, 8, 8), np.uint8), "(T, Y, X)"),
    (np.zeros((2, 3, 8, 8), np.uint8), "no object"),  # (T, Z, Y, X): a 3D result, here of no object
    (np.zeros((2, 0, 8), np.uint8), "no pixels"),
    (np.zeros((2, 8, 8), np.float32), "integers"),
    (np.zeros((2, 8, 8), np.uint16), "no object"),
])
def test_what_is_no_labels_stack_is_refused_saying_why(labels, words, tmp_path):
    with pytest.raises(ValueError) as err:
        ctc_tracks(labels)
    assert words in str(err.value)
    with pytest.raises(ValueError):
        write_ctc(tmp_path / "res", labels)
    assert list(tmp_path.iterdir()) == []


def test_the_written_folder_is_what_ctc_reads_and_passes_its_checks(tmp_path):
    labels = _gapped()
    result = write_ctc(tmp_path / "01_RES", labels)
    folder = tmp_path / "01_RES"
    assert sorted(p.name for p in folder.iterdir()) == [f"mask{t:03d}.tif" for t in range(7)] + ["res_track.txt"]
    assert (folder / "res_track.txt").read_text() == "1 0 6 0\n2 0 2 0\n3 5 6 2\n"
    assert result.table.tolist() == _rows(folder) and result.gaps == 1
    masks = np.stack([tifffile.imread(folder / mask_name(t, 7)) for t in range(7)])
    assert masks.dtype == np.uint16
    np.testing.assert_array_equal(masks, ctc_tracks(labels)[0])
    assert check_ctc(folder) == []


def test_mask_names_take_four_digits_beyond_1000_frames(tmp_path):
    assert (mask_name(0, 1000), mask_name(999, 1000)) == ("mask000.tif", "mask999.tif")
    assert (mask_name(0, 1001), mask_name(1000, 1001)) == ("mask0000.tif", "mask1000.tif")
    labels = np.zeros((1001, 2, 2), np.uint8)
    labels[:, 0, 0] = 1
    write_ctc(tmp_path / "long", labels)
    assert (tmp_path / "long" / "mask1000.tif").is_file() and (tmp_path / "long" / "mask0000.tif").is_file()
    assert _rows(tmp_path / "long") == [[1, 0, 1000, 0]] and check_ctc(tmp_path / "long") == []


@pytest.mark.parametrize("damage, words", [
    ("a track off a frame", "track 1 is missing from mask003.tif"),
    ("an unlisted label", "label 9 is on mask002.tif"),
    ("a parent ending late", "a parent ends before its daughters begin"),
    ("a missing mask", "no mask for frame 4"),
    ("an 8-bit mask", "mask001.tif is uint8"),
    ("a table line", "line 2"),
    ("a repeated track", "track 2 is listed 2 times"),
    ("a stray parent", "its parent 8 is not in res_track.txt"),
    ("a wider name", "mask0005.tif should be named mask005.tif"),
    ("another tif", "overview.tif is no mask"),
    ("a blank line", "line 4 is blank"),
    ("mixed separators", "line 2 separates its values"),
])
def test_a_hand_broken_folder_fails_the_check_naming_what_is_wrong(tmp_path, damage, words):
    folder = tmp_path / "res"
    write_ctc(folder, _gapped())
    table = folder / "res_track.txt"
    if damage == "a track off a frame":
        mask = tifffile.imread(folder / "mask003.tif")
        tifffile.imwrite(folder / "mask003.tif", np.where(mask == 1, 0, mask).astype(np.uint16))
    elif damage == "an unlisted label":
        mask = tifffile.imread(folder / "mask002.tif")
        mask[0, 0] = 9
        tifffile.imwrite(folder / "mask002.tif", mask)
    elif damage == "a parent ending late":
        table.write_text("1 0 6 0\n2 0 5 0\n3 5 6 2\n")
    elif damage == "a missing mask":
        (folder / "mask004.tif").unlink()
    elif damage == "an 8-bit mask":
        tifffile.imwrite(folder / "mask001.tif", tifffile.imread(folder / "mask001.tif").astype(np.uint8))
    elif damage == "a table line":
        table.write_text("1 0 6 0\n2 0 two 0\n3 5 6 2\n")
    elif damage == "a repeated track":
        table.write_text(table.read_text() + "2 0 2 0\n")
    elif damage == "a stray parent":
        table.write_text("1 0 6 0\n2 0 2 8\n3 5 6 2\n")
    elif damage == "a wider name":
        os.replace(folder / "mask005.tif", folder / "mask0005.tif")
    elif damage == "another tif":  # py-ctcmetrics reads every *.tif in the folder as a frame's mask
        tifffile.imwrite(folder / "overview.tif", np.ones((10, 12), np.uint16))
    elif damage == "a blank line":  # py-ctcmetrics' reader fails on it
        table.write_text(table.read_text() + "\n")
    elif damage == "mixed separators":  # py-ctcmetrics splits every line at line 1's separator
        table.write_text("1 0 6 0\n2\t0\t2\t0\n3 5 6 2\n")
    problems = check_ctc(folder)
    assert any(words in p for p in problems), problems


def test_the_track_table_may_use_tabs_or_spaces_the_way_its_first_line_does(tmp_path):
    folder = tmp_path / "res"
    write_ctc(folder, _gapped())
    table = folder / "res_track.txt"
    table.write_text(table.read_text().replace(" ", "\t"))
    assert check_ctc(folder) == []
    table.write_text("1  0 6 0\r\n2 0 2 0 \r\n3 5 6 2")  # doubled and trailing spaces, CRLF, no last newline
    assert check_ctc(folder) == []


def test_check_ctc_says_what_is_missing_from_no_folder_or_an_empty_one(tmp_path):
    assert check_ctc(tmp_path / "nothing") == [f"{tmp_path / 'nothing'} is not a folder"]
    problems = check_ctc(tmp_path)
    assert any("no mask files" in p for p in problems) and any("no res_track.txt" in p for p in problems)


class _CountedFrames:
    """A stack read only frame by frame (as a memmap or a lazy reader is), counting the reads."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels, self.shape, self.dtype, self.reads = labels, labels.shape, labels.dtype, []

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, t):
        if not isinstance(t, (int, np.integer)):
            raise AssertionError(f"read whole: {t!r}")
        self.reads.append(int(t))
        if t == getattr(self, "fail_at", None):
            raise OSError("the disk went away")
        return self.labels[t]


def test_the_stack_is_read_once_a_frame_at_a_time_and_a_tiff_memmap_works(tmp_path):
    frames = _CountedFrames(_gapped())
    write_ctc(tmp_path / "a", frames)
    assert frames.reads == list(range(7))
    tifffile.imwrite(tmp_path / "labels.tif", _gapped())
    write_ctc(tmp_path / "b", tifffile.memmap(tmp_path / "labels.tif"))
    assert _rows(tmp_path / "b") == _rows(tmp_path / "a")


def test_an_existing_folder_is_refused_unless_forced_and_forcing_keeps_other_files(tmp_path):
    folder = tmp_path / "res"
    long = np.zeros((9, 10, 12), np.uint8)
    long[:, 1:4, 1:4] = 3
    write_ctc(folder, long)
    (folder / "notes.txt").write_text("my notes")
    (folder / "mask_overview.TIF").write_bytes(b"not a mask")  # .TIF: not read as a mask by py-ctcmetrics
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(ValueError, match="not empty.*force.*other file in it is kept"):
        write_ctc(folder, _gapped())
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # untouched
    write_ctc(folder, _gapped(), force=True)
    names = sorted(p.name for p in folder.iterdir())
    # the earlier 9 masks are gone (mask007.tif and mask008.tif too), the other files kept
    assert names == sorted([f"mask{t:03d}.tif" for t in range(7)] + ["mask_overview.TIF", "notes.txt",
                                                                       "res_track.txt"])
    assert (folder / "notes.txt").read_text() == "my notes"
    assert check_ctc(folder) == [] and _rows(folder) == [[1, 0, 6, 0], [2, 0, 2, 0], [3, 5, 6, 2]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]  # no hidden folder left beside it
    empty = tmp_path / "empty"
    empty.mkdir()
    write_ctc(empty, _gapped())  # an empty folder needs no force
    assert check_ctc(empty) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        write_ctc(tmp_path / "file", _gapped(), force=True)


def test_a_forced_write_into_a_folder_holding_another_tif_is_refused_naming_it(tmp_path):
    """py-ctcmetrics takes every *.tif in a result folder for a frame's mask, in name order: a labels.tif
    kept beside mask000.tif ... would be read as one frame more, so the write is refused up front."""
    folder = tmp_path / "res"
    write_ctc(folder, _gapped())
    tifffile.imwrite(folder / "labels.tif", _gapped())
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(ValueError, match="labels.tif.*every .tif in a result folder.*mask"):
        write_ctc(folder, _gapped(), force=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert any("labels.tif is no mask" in p for p in check_ctc(folder))


def test_a_write_that_fails_part_way_leaves_the_earlier_folder_as_it_was(tmp_path, monkeypatch):
    folder = tmp_path / "res"
    write_ctc(folder, _gapped())
    (folder / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    frames = _CountedFrames(dividing_cell(6, 2))
    frames.fail_at = 3
    with pytest.raises(OSError, match="disk went away"):
        write_ctc(folder, frames, force=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    with pytest.raises(OSError, match="disk went away"):
        write_ctc(tmp_path / "new", frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]  # no new folder, no hidden one

    real, calls = os.replace, []

    def flaky(src, dst):  # the moves into the folder fail after two files
        calls.append(dst)
        if len(calls) == 10:  # 8 earlier files set aside, then two new ones moved in
            raise OSError("no space left")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError, match="no space left"):
        write_ctc(folder, dividing_cell(6, 2), force=True)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # put back as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]


def test_a_forced_write_moves_the_track_table_in_last(tmp_path, monkeypatch):
    """A folder caught part way through a forced write has no new res_track.txt beside old masks."""
    folder = tmp_path / "res"
    write_ctc(folder, _gapped())
    (folder / "notes.txt").write_text("mine")
    real, moved = os.replace, []
    monkeypatch.setattr(os, "replace", lambda src, dst: (moved.append(os.fspath(dst)), real(src, dst)))
    write_ctc(folder, dividing_cell(6, 2), force=True)
    into = [os.path.basename(d) for d in moved if os.path.dirname(d) == os.fspath(folder)]
    assert len(into) == 7 and into[-1] == "res_track.txt"


def test_the_command_writes_a_divisions_output_with_the_lineage_of_its_record(tmp_path, capsys):
    from napari_vos.cli import main
    from napari_vos.data.writers import write_tiff_labels

    source = write_tiff_labels(tmp_path / "out.tif", dividing_cell(6, 2))
    assert main(["divisions", str(source), "-o", str(tmp_path / "divided.tif")]) == 0
    capsys.readouterr()
    assert main(["ctc", str(tmp_path / "divided.tif"), "-o", str(tmp_path / "01_RES")]) == 0
    said = capsys.readouterr().out
    assert "4 tracks over 6 frames" in said and "1 division kept (2 daughter tracks)" in said and "0 gaps" in said
    assert _rows(tmp_path / "01_RES") == [[1, 0, 5, 0], [2, 0, 1, 0], [3, 2, 5, 2], [4, 2, 5, 2]]
    assert check_ctc(tmp_path / "01_RES") == []
    # the plain propagate output has no lineage: the cell keeps one track over both halves
    assert main(["ctc", str(source), "-o", str(tmp_path / "plain")]) == 0
    assert "no lineage" in capsys.readouterr().out and _rows(tmp_path / "plain") == [[1, 0, 5, 0], [2, 0, 5, 0]]


def test_the_command_takes_the_lineage_csv_and_refuses_what_it_cannot_write(tmp_path, capsys):
    from napari_vos.cli import main
    from napari_vos.data.writers import write_tiff_labels
    from napari_vos.divisions import split_divisions

    divided = split_divisions(dividing_cell(6, 2))
    source = write_tiff_labels(tmp_path / "plain.tif", divided.labels)  # no record: the lineage is a CSV
    divided.lineage_table().write_csv(tmp_path / "d.lineage.csv")
    assert main(["ctc", str(source), "-o", str(tmp_path / "res"), "--lineage", str(tmp_path / "d.lineage.csv")]) == 0
    assert "1 division kept" in capsys.readouterr().out
    assert [r[3] for r in _rows(tmp_path / "res")] == [0, 0, 2, 2]

    (tmp_path / "res" / "notes.txt").write_text("mine")
    assert main(["ctc", str(source), "-o", str(tmp_path / "res")]) == 2  # not empty, no --force
    assert "not empty" in capsys.readouterr().err
    assert main(["ctc", str(source), "-o", str(tmp_path / "res"), "--force"]) == 0
    assert (tmp_path / "res" / "notes.txt").read_text() == "mine" and check_ctc(tmp_path / "res") == []
    assert [r[3] for r in _rows(tmp_path / "res")] == [0, 0, 0, 0]  # no lineage this time

    with open(tmp_path / "bad.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["id", "mother"], [4, 3]])
    assert main(["ctc", str(source), "-o", str(tmp_path / "x"), "--lineage", str(tmp_path / "bad.csv")]) == 2
    with open(tmp_path / "worse.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["label", "first_frame", "last_frame", "parent"], [4, 2, 5, "three"]])
    assert main(["ctc", str(source), "-o", str(tmp_path / "x"), "--lineage", str(tmp_path / "worse.csv")]) == 2
    err = capsys.readouterr().err
    assert "label and parent columns" in err and "line 2" in err
    assert main(["ctc", str(source), "-o", str(source)]) == 2  # a file, not a folder
    assert "is a file" in capsys.readouterr().err
    inside = tmp_path / "inside"
    inside.mkdir()
    write_tiff_labels(inside / "mask000.tif", divided.labels)
    assert main(["ctc", str(inside / "mask000.tif"), "-o", str(inside), "--force"]) == 2  # would replace its input
    assert "replace them" in capsys.readouterr().err
    write_tiff_labels(tmp_path / "res" / "labels.tif", divided.labels)
    assert main(["ctc", str(tmp_path / "res" / "labels.tif"), "-o", str(tmp_path / "res"), "--force"]) == 2
    assert "every .tif in a result folder" in capsys.readouterr().err  # CTC's evaluation would read it as a mask
    assert not (tmp_path / "x").exists()
