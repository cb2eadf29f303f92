"""Divided cells given their own ids (`napari_vos.divisions.split_divisions`): hand-made stacks where an
id's mask falls into two parts, with debris, brief splits, second divisions and odd ids."""
from __future__ import annotations

import numpy as np
import pytest
from _layers import dividing_cell

from napari_vos.divisions import Division, split_divisions


def _dividing(frames: int = 6, split_at: int = 2) -> np.ndarray:
    return dividing_cell(frames, split_at)


def test_the_parent_ends_and_each_half_gets_its_own_id_from_the_frame_it_split():
    result = split_divisions(_dividing())
    assert result.divisions == [Division(parent=3, frame=2, daughters=(4, 5))]
    assert result.lineage == {1: (0, 0, 5), 3: (0, 0, 1), 4: (3, 2, 5), 5: (3, 2, 5)}
    assert result.graph() == {4: [3], 5: [3]}
    left, right = result.labels[5, 10, 12], result.labels[5, 10, 26]
    assert {int(left), int(right)} == {4, 5} and left != right
    assert all(set(np.unique(result.labels[t])) == {0, 1, int(left), int(right)} for t in range(2, 6))
    # each daughter stays on its own side as the halves move apart
    assert all(result.labels[t, 10, 15 - (t - 2)] == left for t in range(2, 6))
    table = result.lineage_table()
    assert table.columns["parent"].tolist() == [0, 0, 3, 3]


def test_a_split_shorter_than_persist_frames_is_not_a_division():
    labels = _dividing()
    labels[3:] = labels[1]  # split on frame 2 only
    assert split_divisions(labels).divisions == []
    assert split_divisions(labels, persist=1).divisions == [Division(3, 2, (4, 5))]


def test_debris_below_the_fraction_stays_with_the_nearest_daughter_and_is_no_daughter():
    labels = _dividing()
    labels[2:, 16, 35] = 3  # one stray pixel, right of the right half
    result = split_divisions(labels)
    assert len(result.divisions) == 1 and len(result.divisions[0].daughters) == 2
    assert result.labels[4, 16, 35] == result.labels[4, 10, 25]  # with the right half


def test_a_daughter_divides_again_with_the_parent_id_the_daughters_one():
    labels = _dividing(frames=10)
    for t in range(6, 10):  # the right half (x 25..29 on frame 6) splits again, top and bottom
        right = labels[t] == 3
        right[:, :20] = False
        labels[t][right] = 0
        gap = t - 6
        labels[t, 5 - gap:9 - gap, 25 + (t - 6):29 + (t - 6)] = 3
        labels[t, 11 + gap:15 + gap, 25 + (t - 6):29 + (t - 6)] = 3
    result = split_divisions(labels)
    first, second = result.divisions
    assert first.parent == 3 and second.parent in first.daughters and second.frame == 6
    assert result.lineage[second.daughters[0]][0] == second.parent


@pytest.mark.parametrize("ids", [(-4, 7), (2**40, 9)])
def test_negative_and_very_large_ids_divide_under_their_own_ids(ids):
    labels = _dividing().astype(np.int64)
    labels[labels == 3], labels[labels == 1] = ids[0], ids[1]
    result = split_divisions(labels)
    (division,) = result.divisions
    assert division.parent == ids[0] and all(d > max(ids) for d in division.daughters)


@pytest.mark.parametrize("labels, kwargs, words", [
    (np.zeros((8, 8), np.uint8), {}, "(T, Y, X)"),
    (np.zeros((2, 8, 8), np.float32), {}, "integers"),
    (np.zeros((2, 8, 8), np.uint8), {"min_fraction": 0.7}, "min_fraction"),
    (np.zeros((2, 8, 8), np.uint8), {"persist": 0}, "persist"),
])
def test_what_cannot_be_split_is_refused_saying_why(labels, kwargs, words):
    with pytest.raises(ValueError) as err:
        split_divisions(labels, **kwargs)
    assert words in str(err.value)


def test_the_command_writes_the_relabelled_tiff_with_its_calibration_and_the_lineage(tmp_path, capsys):
    import csv

    from napari_vos.cli import main
    from napari_vos.data.calibration import Calibration, read_tiff_calibration
    from napari_vos.data.writers import read_tiff_provenance, write_tiff_labels

    source = write_tiff_labels(tmp_path / "out.tif", _dividing(), calibration=Calibration((0.5, 0.5), "µm", 2.0, "min"),
                               provenance={"method": "flow"})
    assert main(["divisions", str(source), "-o", str(tmp_path / "divided.tif")]) == 0
    assert "1 division found" in capsys.readouterr().out
    assert read_tiff_calibration(tmp_path / "divided.tif").pixel_size == (0.5, 0.5)
    record = read_tiff_provenance(tmp_path / "divided.tif")
    assert record["method"] == "flow" and record["divisions_split"]["divisions"] == [[3, 2, [4, 5]]]
    with open(tmp_path / "divided.lineage.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["label"], r["parent"], r["first_frame"]) for r in rows] == [
        ("1", "0", "0"), ("3", "0", "0"), ("4", "3", "2"), ("5", "3", "2")]
    assert main(["divisions", str(source), "-o", str(tmp_path / "divided.tif")]) == 2  # no --force
    assert main(["divisions", str(source), "-o", str(source)]) == 2  # never over its input
    assert main(["divisions", str(source), "-o", str(tmp_path / "d.png")]) == 2
    assert "exists" in capsys.readouterr().err


def test_the_layers_menu_adds_a_divided_labels_layer_where_the_labels_lie():
    pytest.importorskip("napari")
    from napari.components import ViewerModel

    from napari_vos._widgets.tracks_layer import divided_layer_data

    v = ViewerModel()
    layer = v.add_labels(_dividing(), name="cells", scale=(3, 0.5, 0.5), translate=(0, 4, 4))
    data, state, kind = divided_layer_data(layer)
    added = v.add_labels(data, **{k: val for k, val in state.items()})
    assert kind == "labels" and added.name == "cells divided" and set(np.unique(data[5])) == {0, 1, 4, 5}
    np.testing.assert_allclose(added.scale, (3, 0.5, 0.5))
    assert added.metadata["napari_vos_divisions"]["lineage"]["4"] == [3, 2, 5]


def test_measuring_a_divided_stack_gives_the_tracks_their_parent(tmp_path):
    """After `napari-vos divisions`, `measure` (and the measurements save type on a Split divided
    cells layer) write each track's parent, so a lineage is one table."""
    import csv

    from napari_vos.cli import main
    from napari_vos.data.writers import write_tiff_labels

    source = write_tiff_labels(tmp_path / "out.tif", _dividing())
    assert main(["divisions", str(source), "-o", str(tmp_path / "divided.tif")]) == 0
    assert main(["measure", str(tmp_path / "divided.tif"), "-o", str(tmp_path / "t.csv")]) == 0
    with open(tmp_path / "t.tracks.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["label"], r["parent"]) for r in rows] == [("1", "0"), ("3", "0"), ("4", "3"), ("5", "3")]
    assert main(["measure", str(source), "-o", str(tmp_path / "plain.csv")]) == 0
    with open(tmp_path / "plain.tracks.csv", newline="", encoding="utf-8") as f:
        assert "parent" not in next(csv.DictReader(f))  # labels no divisions pass made


def test_the_measurements_of_a_divided_layer_name_each_tracks_parent():
    pytest.importorskip("napari")
    from napari_vos._widgets.object_table_writer import layer_tables
    from napari_vos._widgets.tracks_layer import divided_layer_data
    from napari.components import ViewerModel

    v = ViewerModel()
    data, state, _ = divided_layer_data(v.add_labels(_dividing(), name="cells"))
    _, tracks = layer_tables(data, state)
    assert dict(zip(tracks.columns["label"].tolist(), tracks.columns["parent"].tolist())) == {1: 0, 3: 0, 4: 3, 5: 3}


def test_splitting_a_split_stack_again_keeps_the_first_lineage(tmp_path):
    """A divided output corrected and split again lost its first pass's parents."""
    import csv

    from napari_vos.cli import main
    from napari_vos.data.writers import read_tiff_provenance, write_tiff_labels

    source = write_tiff_labels(tmp_path / "out.tif", _dividing())
    assert main(["divisions", str(source), "-o", str(tmp_path / "once.tif")]) == 0
    assert main(["divisions", str(tmp_path / "once.tif"), "-o", str(tmp_path / "twice.tif")]) == 0
    with open(tmp_path / "twice.lineage.csv", newline="", encoding="utf-8") as f:
        parents = {r["label"]: r["parent"] for r in csv.DictReader(f)}
    assert parents == {"1": "0", "3": "0", "4": "3", "5": "3"}
    assert read_tiff_provenance(tmp_path / "twice.tif")["divisions_split"]["divisions"] == [[3, 2, [4, 5]]]

    pytest.importorskip("napari")
    from napari.components import ViewerModel

    from napari_vos._widgets.tracks_layer import divided_layer_data

    v = ViewerModel()
    data, state, _ = divided_layer_data(v.add_labels(_dividing(), name="cells"))
    again, state2, _ = divided_layer_data(v.add_labels(data, **state))
    assert state2["metadata"]["napari_vos_divisions"]["lineage"]["4"][0] == 3


def test_a_divisions_tiff_opened_in_napari_keeps_its_parents_in_the_tables_and_a_second_split(tmp_path):
    """`napari-vos divisions` output opened with its record (``metadata["napari_vos"]``): the Measure
    tables and Split divided cells read the parents from that record, as the tracks graph did."""
    pytest.importorskip("napari")
    from napari.components import ViewerModel

    from napari_vos.cli import main
    from napari_vos.console import open_labels_layer
    from napari_vos.data.writers import write_tiff_labels
    from napari_vos._widgets.object_table_writer import layer_inputs, layer_tables
    from napari_vos._widgets.tracks_layer import divided_layer_data

    source = write_tiff_labels(tmp_path / "out.tif", _dividing())
    assert main(["divisions", str(source), "-o", str(tmp_path / "divided.tif")]) == 0
    v = ViewerModel()
    opened = open_labels_layer(v, tmp_path / "divided.tif")
    _, tracks = layer_tables(*layer_inputs(opened))
    assert dict(zip(tracks.columns["label"].tolist(), tracks.columns["parent"].tolist())) == {1: 0, 3: 0, 4: 3, 5: 3}
    _, state, _ = divided_layer_data(opened)
    assert state["metadata"]["napari_vos_divisions"]["lineage"]["4"][0] == 3
    plain = open_labels_layer(v, source, name="plain")
    assert "parent" not in layer_tables(*layer_inputs(plain))[1].columns


def test_a_split_layer_saved_as_a_labels_tiff_opens_again_with_its_parents_and_the_runs_record(tmp_path):
    """A *Split divided cells* layer saved with the napari-vos labels save type lost its lineage (only
    the run record was written, and the split layer had none)."""
    pytest.importorskip("napari")
    from napari.components import ViewerModel

    from napari_vos._widgets.labels_writer import write_labels_tiff
    from napari_vos._widgets.object_table_writer import layer_inputs, layer_tables
    from napari_vos._widgets.tracks_layer import divided_layer_data
    from napari_vos.console import open_labels_layer
    from napari_vos.data.writers import read_tiff_provenance

    v = ViewerModel()
    output = v.add_labels(_dividing(), name="cells", metadata={"napari_vos": {"method": "flow", "complete": True}})
    data, state, _ = divided_layer_data(output)
    assert state["metadata"]["napari_vos"]["method"] == "flow"
    (path,) = write_labels_tiff(str(tmp_path / "divided"), data, state)
    record = read_tiff_provenance(path)
    assert record["method"] == "flow" and record["divisions_split"]["divisions"] == [[3, 2, [4, 5]]]
    opened = open_labels_layer(v, path)
    _, tracks = layer_tables(*layer_inputs(opened))
    assert dict(zip(tracks.columns["label"].tolist(), tracks.columns["parent"].tolist())) == {1: 0, 3: 0, 4: 3, 5: 3}
    painted = v.add_labels(_dividing(), name="painted")  # no run made it: no record to carry
    assert "napari_vos" not in divided_layer_data(painted)[1]["metadata"]
