"""Divided cells split in 3D: `split_divisions` on (T, Z, Y, X) labels, a (Z, Y, X) volume a frame."""
from __future__ import annotations

import numpy as np
import pytest

from _layers import DIVIDING_GAPS, DIVIDING_SHAPE, ball, dividing_ball

from napari_vos.divisions import split_divisions


@pytest.mark.parametrize("necks, divided_on", [(True, 3), (False, 4)])
def test_a_dividing_volume_gets_two_daughters_at_its_neck_or_when_apart(necks, divided_on):
    labels = dividing_ball()
    result = split_divisions(labels, necks=necks, back=0)
    (division,) = result.divisions
    assert division.parent == 1 and division.frame == divided_on and len(division.daughters) == 2
    left, right = division.daughters
    assert result.lineage[1] == (0, 0, divided_on - 1) and result.lineage[2] == (0, 0, len(DIVIDING_GAPS) - 1)
    assert result.lineage[left] == (1, divided_on, len(DIVIDING_GAPS) - 1) == result.lineage[right]
    assert np.array_equal(result.labels == 2, labels == 2)  # the cell that never divides keeps its id
    for t in range(divided_on, len(DIVIDING_GAPS)):  # each daughter is one ball, the same one on every frame
        xs = {d: np.nonzero(result.labels[t] == d)[2].mean() for d in (left, right)}
        half = DIVIDING_GAPS[t] / 2
        assert xs[left] == pytest.approx(24 - half, abs=0.6) and xs[right] == pytest.approx(24 + half, abs=0.6)
        assert abs(int((result.labels[t] == left).sum()) - int((result.labels[t] == right).sum())) < 0.05 * \
            int((labels[t] == 1).sum())
    assert not np.isin(result.labels[:divided_on], division.daughters).any()


def test_a_division_in_a_volume_is_dated_back_to_where_the_daughters_show():
    result = split_divisions(dividing_ball(), necks=False)  # found apart on frame 4, dated back a frame
    assert [(d.parent, d.frame) for d in result.divisions] == [(1, 3)]


def test_a_volume_cut_in_two_for_one_frame_only_is_no_division():
    labels = dividing_ball()
    labels[4:] = labels[2]  # one ball again after frame 3's neck
    assert split_divisions(labels).divisions == []


def test_a_volume_pinched_by_a_neighbour_around_it_is_no_division():
    """A cell with two lobes whose waist a neighbour rings (the notch filled: max_hidden), as a cell wrapped
    around another is in 2-D."""
    labels = dividing_ball()
    z, y, x = np.ogrid[:DIVIDING_SHAPE[0], :DIVIDING_SHAPE[1], :DIVIDING_SHAPE[2]]
    around_the_waist = ((z - 10) ** 2 + (y - 20) ** 2 <= 8 ** 2) & (abs(x - 24) <= 8)
    for t in range(3, len(DIVIDING_GAPS)):
        labels[t][labels[t] == 1] = 0
        cell = ball((10, 20, 18), 7) | ball((10, 20, 30), 7)
        labels[t][cell] = 1
        labels[t][around_the_waist & ~cell] = 3
    assert split_divisions(labels, persist=1).divisions == []
    assert 1 in [d.parent for d in split_divisions(labels, persist=1, max_hidden=1.0).divisions]  # the rule's doing


def test_the_divisions_command_splits_a_volume_labels_tiff_and_ctc_takes_its_lineage(tmp_path, capsys):
    import tifffile

    from napari_vos.cli import main
    from napari_vos.data.writers import read_tiff_provenance

    labels = dividing_ball()
    tifffile.imwrite(tmp_path / "cells.tif", labels, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "TZYX", "spacing": 1.5, "unit": "um", "finterval": 60.0})
    assert main(["divisions", str(tmp_path / "cells.tif"), "-o", str(tmp_path / "divided.tif")]) == 0
    assert "1 division found, 4 ids over 8 frames of 20 Z planes (split in 3D)" in capsys.readouterr().out
    with tifffile.TiffFile(tmp_path / "divided.tif") as tif:
        divided = tif.asarray()
        assert tif.series[0].axes == "TZYX" and tif.imagej_metadata["spacing"] == 1.5
    assert divided.shape == labels.shape and set(np.unique(divided[-1]).tolist()) == {0, 2, 3, 4}
    assert read_tiff_provenance(tmp_path / "divided.tif")["divisions_split"]["divisions"] == [[1, 3, [3, 4]]]
    lines = (tmp_path / "divided.lineage.csv").read_text().splitlines()
    assert lines[0] == "label,first_frame,last_frame,parent" and "3,3,7,1" in lines and "4,3,7,1" in lines
    assert main(["ctc", str(tmp_path / "divided.tif"), "-o", str(tmp_path / "01_RES")]) == 0
    tracks = (tmp_path / "01_RES" / "res_track.txt").read_text().split("\n")
    assert "3 3 7 1" in tracks and "4 3 7 1" in tracks
    assert tifffile.imread(tmp_path / "01_RES" / "mask005.tif").shape == DIVIDING_SHAPE  # CTC's 3D masks
    assert main(["divisions", str(tmp_path / "cells.tif"), "--z", "10", "-o", str(tmp_path / "plane.tif")]) == 0
    plane = tifffile.imread(tmp_path / "plane.tif")  # one plane, split in 2-D
    assert plane.shape == (len(DIVIDING_GAPS), *DIVIDING_SHAPE[1:])


def test_a_split_that_would_not_fit_in_memory_is_refused_before_it_starts(monkeypatch):
    import psutil

    real = psutil.virtual_memory()
    monkeypatch.setattr(psutil, "virtual_memory", lambda: real._replace(available=10 * 2**20))  # 10 MiB free
    labels = dividing_ball()  # 8 x 20 x 40 x 64, relabelled as uint32: 1.6 MB, fits
    assert split_divisions(labels).divisions
    big = np.zeros((40, 20, 120, 128), np.uint16)  # 49 MB as uint32
    big[:, 5:10, 5:10, 5:10] = 1
    with pytest.raises(ValueError, match=r"holds the relabelled labels \(40, 20, 120, 128\) in memory, 0.05 GiB, more "
                                         r"than this machine has free \(0.01 GiB\): split a crop"):
        split_divisions(big)
