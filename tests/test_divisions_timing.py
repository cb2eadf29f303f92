"""Divisions dated and found (session 43): `split_divisions` dates a division back to the frame where the
daughters first show (a shallow neck, or the frame where the mask changed shape most), keeps touching
sisters apart instead of "dividing" them again when they part, and refuses lobes pinched by neighbours
rather than by a furrow. Small hand-drawn stacks."""
from __future__ import annotations

import numpy as np
import pytest
from _layers import disc

from napari_vos.divisions import Division, _hidden_share, split_divisions

SHAPE = (40, 80)


def _ellipse(centre: tuple[float, float], ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    return ((yy - centre[0]) / ry) ** 2 + ((xx - centre[1]) / rx) ** 2 <= 1


def _pinching(frames: int = 10) -> np.ndarray:
    """id 2: a round cell (frames 0-3), an elongated one with no neck (frame 4: the daughters have
    appeared, overlapping), two discs joined by a thin neck (frames 5-6), then apart (7-)."""
    labels = np.zeros((frames, *SHAPE), np.uint8)
    for t in range(frames):
        if t < 4:
            mask = disc(SHAPE, (20, 40), 9)
        elif t == 4:
            mask = _ellipse((20, 40), 8, 14)
        else:
            gap = 0 if t < 7 else t - 5
            mask = disc(SHAPE, (20, 33 - gap / 2), 7) | disc(SHAPE, (20, 47 + gap / 2), 7)
            if t < 7:
                mask[19:22, 38:43] = True  # the neck
        labels[t][mask] = 2
    return labels


def test_a_cell_that_pinches_over_three_frames_divides_on_the_first():
    labels = _pinching()
    found = split_divisions(labels)
    assert found.divisions == [Division(parent=2, frame=4, daughters=(3, 4))]
    # each daughter has its own end of the elongated cell on frame 4, and keeps it after
    for t in range(4, 10):
        left, right = int(found.labels[t, 20, 30]), int(found.labels[t, 20, 50])
        assert {left, right} == {3, 4}
        assert left == int(found.labels[4, 20, 30])
    assert found.lineage[2] == (0, 0, 3)
    assert found.lineage[3][:2] == (2, 4) and found.lineage[4][:2] == (2, 4)


def test_without_dating_back_the_division_comes_on_the_first_deep_neck():
    assert split_divisions(_pinching(), back=0).divisions == [Division(2, 5, (3, 4))]


def test_a_shallow_neck_dates_the_division_back_too():
    labels = _pinching()
    labels[4] = 0
    labels[4][disc(SHAPE, (20, 35), 8) | disc(SHAPE, (20, 45), 8)] = 2  # a shallow neck: 0.8 to 0.9 of the lobes
    found = split_divisions(labels)
    assert found.divisions == [Division(2, 4, (3, 4))]


def test_dating_back_stops_where_the_mask_is_the_parents():
    labels = _pinching()
    labels[4] = labels[3]  # round on frame 4 too: the daughters show from frame 5
    assert split_divisions(labels).divisions == [Division(2, 5, (3, 4))]


def test_the_parent_keeps_a_frame():
    labels = _pinching()[3:]  # the elongated cell on frame 1: the round parent only on frame 0
    assert split_divisions(labels).divisions == [Division(2, 1, (3, 4))]
    labels = _pinching()[4:]  # elongated from frame 0: no frame is the parent's alone
    found = split_divisions(labels)
    assert found.divisions[0].frame >= 1


def _sisters_touching(frames: int = 18) -> np.ndarray:
    """id 5 divides on frame 3 (two discs apart); the sisters, the left one smaller, touch along a flat side
    (two rectangles side by side, one with no neck) on frames 6-13, then part again."""
    labels = np.zeros((frames, *SHAPE), np.uint8)
    for t in range(frames):
        if t < 3:
            labels[t][disc(SHAPE, (20, 24), 11)] = 5
        elif t < 6 or t > 13:
            gap = {3: 4, 4: 2, 5: 1}.get(t, t - 13)
            labels[t, 16:24, 12 - gap:20 - gap] = 5
            labels[t, 14:26, 20 + gap:32 + gap] = 5
        else:
            labels[t, 16:24, 12:20] = 5
            labels[t, 14:26, 20:32] = 5
    return labels


def test_touching_sisters_keep_their_ids_and_do_not_divide_again():
    found = split_divisions(_sisters_touching())
    assert found.divisions == [Division(5, 3, (6, 7))]
    left, right = int(found.labels[3, 20, 12]), int(found.labels[3, 20, 28])
    assert {left, right} == {6, 7}
    for t in range(6, 14):  # each keeps its own rectangle while they touch (the line may be a column off)
        assert np.mean(found.labels[t, 16:24, 12:20] == left) >= 0.85
        assert np.mean(found.labels[t, 14:26, 20:32] == right) >= 0.85
    assert int(found.labels[-1, 20, 10]) == left and int(found.labels[-1, 20, 30]) == right


def _crescent(frames: int = 7) -> np.ndarray:
    """id 1: a cell beside its neighbour id 2 (frames 0-1), then wrapped around it (a ring with its top cut
    away, two thick ends: two lobes that the neighbour, not a furrow, pinches apart)."""
    labels = np.zeros((frames, *SHAPE), np.uint8)
    ring = disc(SHAPE, (22, 40), 15) & ~disc(SHAPE, (22, 40), 8)
    ring[:16] = False
    ring |= disc(SHAPE, (17, 27), 6) | disc(SHAPE, (17, 53), 6)  # the thick ends
    for t in range(frames):
        labels[t][ring if t >= 2 else disc(SHAPE, (30, 40), 10)] = 1
        labels[t][disc(SHAPE, (22, 40), 10 if t >= 2 else 6)] = 2
    return labels


def test_lobes_pinched_by_a_neighbour_are_no_daughters():
    labels = _crescent()
    lone = np.where(labels == 2, 0, labels)
    assert _hidden_share(labels[3] == 1, labels[3]) > 0.7
    assert _hidden_share(lone[3] == 1, lone[3]) == 0
    assert split_divisions(labels).divisions == []
    assert [d.parent for d in split_divisions(labels, max_hidden=1).divisions] == [1]
    assert [d.parent for d in split_divisions(lone).divisions] == [1]  # the same lobes around nothing divide


@pytest.mark.parametrize("bad", [{"back": -1}, {"loose_ratio": 1.0}, {"max_hidden": 0}])
def test_the_new_options_are_checked(bad):
    with pytest.raises(ValueError):
        split_divisions(_pinching(), **bad)


def test_the_command_takes_the_new_rules_and_records_them(tmp_path, capsys):
    """`napari-vos divisions` passes --back, --follow, --loose-ratio and --max-hidden to the split and keeps
    them in the output's record, as it keeps the others."""
    import json

    import tifffile

    from napari_vos.cli import main

    source = tmp_path / "labels.tif"
    tifffile.imwrite(source, _pinching())
    assert main(["divisions", str(source), "-o", str(tmp_path / "a.tif")]) == 0
    assert main(["divisions", str(source), "-o", str(tmp_path / "b.tif"), "--back", "0", "--no-follow",
                 "--max-hidden", "1", "--loose-ratio", "0.85"]) == 0
    from napari_vos.data.writers import read_tiff_provenance

    dated = {name: read_tiff_provenance(tmp_path / name)["divisions_split"] for name in ("a.tif", "b.tif")}
    assert dated["a.tif"]["divisions"] == [[2, 4, [3, 4]]] and dated["b.tif"]["divisions"] == [[2, 5, [3, 4]]]
    assert (dated["b.tif"]["back"], dated["b.tif"]["follow"], dated["b.tif"]["max_hidden"],
            dated["b.tif"]["loose_ratio"]) == (0, False, 1.0, 0.85)
    assert json.dumps(dated)  # the record stays JSON
    assert main(["divisions", str(source), "-o", str(tmp_path / "c.tif"), "--back", "-1"]) == 2
    assert "back -1" in capsys.readouterr().err
