"""Divisions found at the neck (session 41): `split_divisions` cuts a blob whose distance transform has two
sizeable lobes with a deep enough saddle, so daughters that still touch count as parts. Hand-made stacks:
two discs joined by a thin neck that part later, a one-frame pinch, an ellipse, a wide waist."""
from __future__ import annotations

import numpy as np
import pytest
from _layers import disc

from napari_vos.divisions import Division, _lobes, split_divisions


def _touching_then_apart(frames: int = 9, touch_from: int = 2, apart_from: int = 6) -> np.ndarray:
    """(T, 40, 80) labels, id 2: one disc (radius 9) until ``touch_from``, then two discs (radius 7) whose
    rims meet through a 3-pixel neck until ``apart_from``, then apart, 1 px further a frame."""
    shape = (40, 80)
    labels = np.zeros((frames, *shape), np.uint8)
    for t in range(frames):
        if t < touch_from:
            labels[t][disc(shape, (20, 40), 9)] = 2
            continue
        gap = 0 if t < apart_from else 2 + (t - apart_from)
        left, right = 40 - 7 - gap / 2, 40 + 7 + gap / 2
        labels[t][disc(shape, (20, left), 7) | disc(shape, (20, right), 7)] = 2
        if t < apart_from:
            labels[t, 19:22, 38:43] = 2  # the neck where the rims meet
    return labels


def test_touching_daughters_are_found_on_the_frame_they_divide():
    labels = _touching_then_apart()
    found = split_divisions(labels)
    assert found.divisions == [Division(parent=2, frame=2, daughters=(3, 4))]
    # each daughter keeps its own disc while they touch and after they part
    for t in range(2, 9):
        left, right = found.labels[t, 20, 30], found.labels[t, 20, 52]
        assert {int(left), int(right)} == {3, 4}
        assert found.labels[t, 20, 27] == left and found.labels[t, 20, 50] == right
    assert found.lineage[3] == (2, 2, 8) and found.lineage[4] == (2, 2, 8)


def test_without_necks_the_division_waits_for_the_daughters_to_part():
    labels = _touching_then_apart()
    found = split_divisions(labels, necks=False)
    assert found.divisions == [Division(parent=2, frame=6, daughters=(3, 4))]


def test_a_pinch_on_one_frame_is_no_division():
    labels = _touching_then_apart(frames=8, touch_from=2, apart_from=20)
    labels[3:] = labels[0]  # pinched on frame 2 only, then one disc again
    assert split_divisions(labels).divisions == []
    assert split_divisions(labels, persist=1).divisions == [Division(2, 2, (3, 4))]


def test_an_ellipse_and_a_wide_waist_are_not_cut():
    shape = (40, 80)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    ellipse = ((yy - 20) / 8) ** 2 + ((xx - 40) / 18) ** 2 <= 1
    waist = disc(shape, (20, 35), 9) | disc(shape, (20, 45), 9)  # centres 10 apart: waist 2 x 7.5
    for mask in (ellipse, waist):
        labels = np.repeat(mask[None].astype(np.uint8) * 5, 5, axis=0)
        assert split_divisions(labels).divisions == []
        assert _lobes(mask, 0.8)[1] == 0


def test_the_neck_ratio_sets_how_deep_a_neck_must_be():
    shape = (40, 80)
    peanut = disc(shape, (20, 33), 9) | disc(shape, (20, 47), 9)  # centres 14 apart: saddle ~ 5.7 of 9
    lobes, n = _lobes(peanut, 0.8)
    assert n == 2
    assert lobes[20, 28] != lobes[20, 52] and lobes[20, 28] and lobes[20, 52]
    assert _lobes(peanut, 0.5)[1] == 0  # a saddle above half the peak is no neck at 0.5
    labels = np.repeat(peanut[None].astype(np.uint8), 4, axis=0)
    labels[:2] = disc(shape, (20, 40), 11)
    assert split_divisions(labels).divisions == [Division(1, 2, (2, 3))]
    assert split_divisions(labels, neck_ratio=0.5).divisions == []


def test_a_small_bump_is_no_daughter():
    """A lobe below the daughter size (min_fraction of the mask) stays with the cell."""
    shape = (40, 80)
    cell = disc(shape, (20, 35), 10) | disc(shape, (20, 48), 3)
    cell[19:22, 44:47] = True
    labels = np.repeat(cell[None].astype(np.uint8), 5, axis=0)
    assert split_divisions(labels).divisions == []


@pytest.mark.parametrize("ratio", [0.0, 1.0, 1.5])
def test_a_neck_ratio_outside_0_1_is_refused(ratio):
    with pytest.raises(ValueError, match="neck_ratio"):
        split_divisions(_touching_then_apart(), neck_ratio=ratio)


def test_the_command_line_takes_no_necks(tmp_path):
    import tifffile

    from napari_vos.cli import main
    from napari_vos.data.writers import read_tiff_provenance, write_tiff_labels

    source = write_tiff_labels(tmp_path / "labels.tif", _touching_then_apart())
    assert main(["divisions", str(source), "-o", str(tmp_path / "a.tif")]) == 0
    assert main(["divisions", str(source), "-o", str(tmp_path / "b.tif"), "--no-necks"]) == 0
    split = {name: read_tiff_provenance(tmp_path / name)["divisions_split"] for name in ("a.tif", "b.tif")}
    assert split["a.tif"]["divisions"] == [[2, 2, [3, 4]]] and split["a.tif"]["necks"] is True
    assert split["b.tif"]["divisions"] == [[2, 6, [3, 4]]] and split["b.tif"]["necks"] is False
    a, b = tifffile.imread(tmp_path / "a.tif"), tifffile.imread(tmp_path / "b.tif")
    assert len(np.unique(a[2])) == 3 and len(np.unique(b[2])) == 2  # daughters apart on frame 2 with necks only
