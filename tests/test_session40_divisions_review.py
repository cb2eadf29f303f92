"""Review of the divided-cells split and the centroid tracks (session 40): a daughter's id kept over frames
without it, sisters that touch and part again, an id in parts from its first frame, uint64 ids above
2**63, and the Tracks layer of a rotated or divided labels layer. Hand-made stacks."""
from __future__ import annotations

import numpy as np
import pytest
from _layers import dividing_cell

from napari_vos.divisions import Division, split_divisions


def _halves(frames: int, split_at: int = 2, dtype: type = np.uint8) -> np.ndarray:
    return dividing_cell(frames, split_at, width=60, dtype=dtype)


def test_daughters_keep_their_ids_after_frames_without_their_cell():
    """Both daughters lost on frame 5 (an out-of-focus frame, a gap in a run) went, on their return, to
    the first daughter (nothing to measure the distance to on the frame before), which then "divided"
    into two new ids while its sister ended."""
    labels = _halves(9)
    labels[5][labels[5] == 3] = 0
    result = split_divisions(labels)
    assert result.divisions == [Division(3, 2, (4, 5))]
    assert result.labels[6, 10, 11] == result.labels[4, 10, 13] and result.labels[6, 10, 27] == result.labels[4, 10, 25]
    assert result.lineage[4] == (3, 2, 8) and result.lineage[5] == (3, 2, 8)


def test_sisters_that_touch_for_a_frame_keep_their_ids_when_they_part():
    """Sisters touching on frame 5 are one blob given to one of them; when they parted, both parts
    overlapped that one: the other ended and the first "divided" again (a false generation)."""
    labels = np.zeros((10, 30, 60), np.uint8)
    labels[:2, 5:15, 15:25] = 3
    for t in range(2, 10):
        if t == 5:
            labels[t, 5:15, 12:30] = 3
        else:
            labels[t, 5:15, 12:17] = 3
            labels[t, 5:15, 24:29] = 3
    result = split_divisions(labels)
    assert result.divisions == [Division(3, 2, (4, 5))]
    assert result.labels[9, 10, 14] == result.labels[4, 10, 14] and result.labels[9, 10, 26] == result.labels[4, 10, 26]
    assert sorted(result.lineage) == [3, 4, 5]


def test_an_id_in_parts_from_its_first_frame_has_no_parent_without_frames():
    """Painted over two cells on frame 0: the parts got daughters of an id with no frame, so the lineage
    table named a parent it does not have and napari's Tracks layer refused the graph."""
    result = split_divisions(_halves(6, split_at=0))
    assert result.divisions == [] and result.graph() == {}
    assert result.lineage == {1: (0, 0, 5), 4: (0, 0, 5), 5: (0, 0, 5)}
    assert all(parent == 0 or parent in result.lineage for parent, _, _ in result.lineage.values())


def test_uint64_ids_above_2_63_are_split_under_ids_that_fit():
    """The relabelled stack was int64: an id above 2**63 raised OverflowError."""
    big = 2**63 + 5
    labels = _halves(5).astype(np.uint64)
    labels[labels == 3] = big
    result = split_divisions(labels)
    assert result.labels.dtype == np.uint64
    assert result.divisions == [Division(big, 2, (big + 1, big + 2))]
    assert result.labels[0, 10, 20] == big


def test_the_tracks_and_the_divided_layer_of_a_rotated_labels_layer_turn_with_it():
    """The tracks and the divided labels lay unrotated beside a rotated labels layer."""
    pytest.importorskip("napari")
    from napari.components import ViewerModel

    from napari_vos._widgets.tracks_layer import divided_layer_data, tracks_layer_data

    v = ViewerModel()
    layer = v.add_labels(_halves(6), name="cells", rotate=30, scale=(2, 0.5, 0.5))
    data, state, _ = tracks_layer_data(layer)
    tracks = v.add_tracks(data, **state)
    np.testing.assert_allclose(tracks.rotate, layer.rotate, atol=1e-9)
    world = layer.data_to_world((3, 10, 20))
    np.testing.assert_allclose(tracks.data_to_world((3, 10, 20)), world, atol=1e-9)
    data, state, _ = divided_layer_data(layer)
    divided = v.add_labels(data, **state)
    np.testing.assert_allclose(divided.data_to_world((3, 10, 20)), world, atol=1e-9)


def test_the_tracks_of_a_divided_layer_draw_its_lineage():
    """The tracks of a Split divided cells layer (or of a `napari-vos divisions` TIFF opened with its
    record) carry the daughters' parent as napari's graph; they had none."""
    pytest.importorskip("napari")
    from napari.components import ViewerModel

    from napari_vos._widgets.tracks_layer import divided_layer_data, tracks_layer_data

    v = ViewerModel()
    data, state, _ = divided_layer_data(v.add_labels(_halves(6), name="cells"))
    divided = v.add_labels(data, **state)
    tdata, tstate, _ = tracks_layer_data(divided)
    assert tstate["graph"] == {4: [3], 5: [3]}
    assert v.add_tracks(tdata, **tstate).graph == {4: [3], 5: [3]}
    big = v.add_labels(data.astype(np.int64) + 2**40 * (data > 0), name="opened",  # renumbered track ids
                       metadata={"napari_vos": {"divisions_split": {"divisions": [[2**40 + 3, 2, [2**40 + 4,
                                                                                                   2**40 + 5]]]}}})
    tdata, tstate, _ = tracks_layer_data(big)
    assert tstate["graph"] == {3: [2], 4: [2]}  # ids 1, 3, 4, 5 (+2**40) are tracks 1, 2, 3, 4
    v.add_tracks(tdata, **tstate)
    plain = v.add_labels(_halves(6), name="plain")
    assert "graph" not in tracks_layer_data(plain)[1]


def test_the_command_says_when_its_labels_are_a_stopped_runs(tmp_path, capsys):
    """A stopped run's frames after the stop have no objects, so every id "ends" there in the lineage;
    `measure` said so, `divisions` did not."""
    from napari_vos.cli import main
    from napari_vos.data.writers import write_tiff_labels

    labels = _halves(6)
    labels[4:] = 0
    source = write_tiff_labels(tmp_path / "out.tif", labels, provenance={
        "method": "flow", "complete": False, "frames_segmented": "0-3", "stopped_by": "the Stop button"})
    assert main(["divisions", str(source), "-o", str(tmp_path / "divided.tif")]) == 0
    assert "stopped run (the Stop button)" in capsys.readouterr().err


def test_labels_without_frames_are_refused_saying_so():
    """Was an IndexError on frame 0."""
    with pytest.raises(ValueError, match="hold no frame"):
        split_divisions(np.zeros((0, 8, 8), np.uint8))
