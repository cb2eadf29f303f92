"""Measurements of (T, Z, Y, X) labels in 3D (`object_table.measure_volumes`, through measure_objects, the
writer and Layers > Measure): hand-made boxes of known voxel counts, centroids and boxes, the volume in
the Z step x Y x X pixel size, paths and speeds in 3D, intensities under a (T, Z, Y, X) image."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from _widget_run import needs_display

from napari_vos.data.calibration import Calibration
from napari_vos.object_table import measure_objects, track_summary

#: 2 um planes of 0.5 x 0.25 um pixels, 5 s between frames
CALIBRATION = Calibration((0.5, 0.25), "µm", 5.0, "s", 2.0, "µm")
SCALE = (5.0, 2.0, 0.5, 0.25)
UNITS = ("s", "um", "um", "um")


def _boxes(frames: int = 4) -> np.ndarray:
    """(T, 8, 20, 24) labels: id 4 a 2x3x4 box one plane deeper each frame (centroid z 1.5 + t, y 6, x 9.5);
    id 7 one voxel on plane 0 (the volume's first plane: its edge); id 9 two voxels touching at a corner
    only (one 26-connected piece) and a third apart (two pieces), on frame 0 only."""
    labels = np.zeros((frames, 8, 20, 24), np.uint16)
    for t in range(frames):
        labels[t, 1 + t:3 + t, 5:8, 8:12] = 4
        labels[t, 0, 12, 12] = 7
    labels[0, 5, 15, 15] = labels[0, 6, 16, 16] = 9  # corner to corner
    labels[0, 6, 16, 20] = 9  # apart
    return labels


def _row(table, label: int, frame: int) -> dict:
    return next(r for r in table.rows() if r["label"] == label and r["frame"] == frame)


def test_a_volumes_objects_are_measured_in_3d_with_the_voxel_size():
    table = measure_objects(_boxes(), calibration=CALIBRATION)
    assert table.names == [
        "frame", "time_s", "label", "volume_px", "volume_um3", "centroid_z_px", "centroid_y_px", "centroid_x_px",
        "centroid_z_um", "centroid_y_um", "centroid_x_um", "bbox_z0", "bbox_y0", "bbox_x0", "bbox_z1", "bbox_y1",
        "bbox_x1", "equivalent_diameter_px", "equivalent_diameter_um", "pieces", "touches_edge"]
    assert [(r["frame"], r["label"]) for r in table.rows()] == [(0, 4), (0, 7), (0, 9), (1, 4), (1, 7), (2, 4),
                                                                  (2, 7), (3, 4), (3, 7)]
    for t in range(4):
        box = _row(table, 4, t)
        assert box["volume_px"] == 24 and box["volume_um3"] == pytest.approx(24 * 2.0 * 0.5 * 0.25)
        assert (box["centroid_z_px"], box["centroid_y_px"], box["centroid_x_px"]) == (1.5 + t, 6.0, 9.5)
        assert box["centroid_z_um"] == pytest.approx((1.5 + t) * 2.0) and box["centroid_x_um"] == 9.5 * 0.25
        assert [box[f"bbox_{a}"] for a in ("z0", "y0", "x0", "z1", "y1", "x1")] == [1 + t, 5, 8, 3 + t, 8, 12]
        assert box["time_s"] == 5.0 * t and box["pieces"] == 1 and not box["touches_edge"]
        assert box["equivalent_diameter_px"] == pytest.approx((6 * 24 / math.pi) ** (1 / 3))
        assert box["equivalent_diameter_um"] == pytest.approx((6 * 6.0 / math.pi) ** (1 / 3))
    assert _row(table, 7, 0)["touches_edge"] and _row(table, 7, 0)["volume_px"] == 1  # on Z's first plane
    assert _row(table, 9, 0)["pieces"] == 2 and _row(table, 9, 0)["volume_px"] == 3


def test_a_volumes_track_summary_has_its_mean_volume_and_3d_path_and_speed():
    labels = np.zeros((3, 8, 20, 24), np.uint8)
    for t in range(3):  # one voxel deeper, lower and further right each frame
        labels[t, 1 + t:3 + t, 2 + t:5 + t, 3 + t:7 + t] = 2
    tracks = track_summary(measure_objects(labels, calibration=CALIBRATION), frames=3)
    row = next(tracks.rows())
    assert "mean_area_px" not in tracks.names and row["mean_volume_px"] == 24.0
    assert row["mean_volume_um3"] == pytest.approx(6.0)
    step_um = math.sqrt(2.0**2 + 0.5**2 + 0.25**2)
    assert row["path_length_px"] == pytest.approx(2 * math.sqrt(3))
    assert row["net_displacement_px"] == pytest.approx(2 * math.sqrt(3))
    assert row["path_length_um"] == pytest.approx(2 * step_um)
    assert row["speed_px_per_frame"] == pytest.approx(math.sqrt(3))
    assert row["speed_um_per_s"] == pytest.approx(2 * step_um / 10.0)


def test_intensities_under_a_volume_image_per_channel_nan_voxels_left_out():
    labels = _boxes(2)
    image = labels.astype(np.float32) * 10
    image[0, 1, 5, 8] = np.nan  # one voxel of the box: left out
    image[0, 2, 7, 11] = 100.0
    table = measure_objects(labels, image)
    box = _row(table, 4, 0)
    assert box["intensity_min"] == 40 and box["intensity_max"] == 100
    assert box["intensity_sum"] == pytest.approx(40 * 22 + 100) and box["intensity_mean"] == pytest.approx(980 / 23)
    two = measure_objects(labels, np.stack([image, -image], axis=-1))
    assert _row(two, 4, 1)["intensity_mean_c0"] == 40 and _row(two, 4, 1)["intensity_mean_c1"] == -40
    with pytest.raises(ValueError, match=r"the image is \(2, 8, 20, 23\) but the labels are \(2, 8, 20, 24\)"):
        measure_objects(labels, image[..., :23])


def test_without_a_z_step_in_the_pixel_sizes_unit_the_columns_needing_it_are_nan():
    no_step = measure_objects(_boxes(1), calibration=Calibration((0.5, 0.25), "µm"))
    box = _row(no_step, 4, 0)
    assert math.isnan(box["volume_um3"]) and math.isnan(box["centroid_z_um"]) and box["centroid_y_um"] == 3.0
    other_unit = measure_objects(_boxes(1), calibration=Calibration((0.5, 0.25), "µm", z_size=2.0, z_unit="nm"))
    assert math.isnan(_row(other_unit, 4, 0)["volume_um3"])
    plain = measure_objects(_boxes(1))
    assert "volume_px" in plain.names and not any(name.endswith("um3") for name in plain.names)


def test_a_volume_of_ids_napari_cannot_take_keeps_them_and_no_object_gives_the_header():
    labels = _boxes(2).astype(np.int64)
    labels[labels == 4] = 2**40
    labels[labels == 7] = -3
    table = measure_objects(labels)
    assert sorted(set(table.columns["label"].tolist())) == [-3, 9, 2**40]
    assert _row(table, 2**40, 1)["centroid_z_px"] == 2.5
    empty = measure_objects(np.zeros((2, 3, 8, 8), np.uint8))
    assert len(empty) == 0 and "volume_px" in empty.names and len(track_summary(empty)) == 0


pytest.importorskip("napari")


def test_a_volume_layer_is_measured_in_its_scale_with_its_images_matching_level():
    from napari.components import ViewerModel

    from napari_vos._widgets.object_table_writer import layer_inputs, layer_tables

    viewer = ViewerModel()
    labels = _boxes()
    video = labels.astype(np.uint16) * 10
    coarse = viewer.add_image([np.zeros((4, 8, 40, 48), np.uint16), video], name="pyramid", multiscale=True)
    several = {"napari_vos": {"method": "flow", "z_planes": 8, "z_planes_run": [1, 2, 3, 4, 5]}}
    layer = viewer.add_labels(labels, name="cells", scale=SCALE, units=UNITS, metadata=several)
    objects, tracks = layer_tables(*layer_inputs(layer, coarse))
    box = _row(objects, 4, 2)
    assert box["volume_um3"] == pytest.approx(6.0) and box["centroid_z_um"] == pytest.approx(3.5 * 2.0)
    assert box["time_s"] == 10.0 and box["intensity_mean"] == 40
    row = next(r for r in tracks.rows() if r["label"] == 4)
    assert row["path_length_um"] == pytest.approx(3 * 2.0) and row["speed_um_per_s"] == pytest.approx(6.0 / 15.0)
    steps = viewer.add_labels(labels, name="z step only", scale=(1, 3, 1, 1))  # no units: in "units"
    objects, _ = layer_tables(*layer_inputs(steps))
    assert _row(objects, 4, 0)["volume_units3"] == 24 * 3 and _row(objects, 4, 0)["centroid_z_units"] == 4.5
    other = viewer.add_image(video[:, :5], name="five planes")
    with pytest.raises(ValueError, match=r"'cells' is \(4, 8, 20, 24\) but the image layer 'five planes' is "
                                         r"\(4, 5, 20, 24\): select the labels and the \(T, Z, Y, X\) image"):
        layer_tables(*layer_inputs(layer, other))


def test_a_run_through_every_painted_plane_is_measured_in_3d_with_its_images_intensities():
    from napari.components import ViewerModel
    from test_volume_tracks import painted_planes_run

    from napari_vos._widgets.object_table_writer import layer_inputs, layer_tables

    viewer = ViewerModel()
    out = painted_planes_run(viewer)
    objects, tracks = layer_tables(*layer_inputs(out, viewer.layers["volume"]))
    assert objects.columns["frame"].tolist() == list(range(5)) and set(objects.columns["label"].tolist()) == {3}
    np.testing.assert_allclose(objects.columns["centroid_z_units"], 1.5 * 2.0)  # no units: the scale's "units"
    np.testing.assert_allclose(objects.columns["volume_units3"], objects.columns["volume_px"] * 2.0 * 0.5 * 0.5)
    assert np.all(np.abs(objects.columns["volume_px"] - 288) <= 29)  # 2 x 12 x 12, within 10 %
    assert np.all(objects.columns["intensity_max"] == 220)
    row = next(tracks.rows())
    assert row["path_length_px"] == pytest.approx(8.0, abs=2) and row["mean_volume_px"] == pytest.approx(288, abs=29)


def test_the_writer_saves_a_volumes_two_tables(tmp_path):
    from napari.components import ViewerModel

    from napari_vos._widgets.object_table_writer import write_object_tables

    viewer = ViewerModel()
    layer = viewer.add_labels(_boxes(), name="cells", scale=SCALE, units=UNITS)
    written = write_object_tables(str(tmp_path / "cells.csv"), [layer.as_layer_data_tuple()])
    with open(written[0], newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9 and rows[0]["volume_um3"] == "6.0" and rows[0]["centroid_z_um"] == "3.0"
    with open(written[1], newline="", encoding="utf-8") as f:
        assert [r["mean_volume_um3"] for r in csv.DictReader(f)] == ["6.0", "0.25", "0.75"]  # a voxel: 2 x 0.5 x 0.25 um


@needs_display
@pytest.mark.gui
def test_the_measure_menu_writes_a_volumes_tables_with_the_selected_images_intensities(
        make_napari_viewer, qtbot, monkeypatch, tmp_path):
    from _menu import answer_save_dialog, run_menu_command, said

    viewer = make_napari_viewer()
    labels = _boxes()
    image = viewer.add_image(labels.astype(np.uint16) * 10, name="volume video", scale=SCALE)
    layer = viewer.add_labels(labels, name="cells 3d", scale=SCALE, units=UNITS)
    viewer.layers.selection = {layer, image}
    answer_save_dialog(monkeypatch, str(tmp_path / "cells.csv"))
    run_menu_command(qtbot, "napari-vos.measure_objects")
    with open(tmp_path / "cells.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    box = next(r for r in rows if r["frame"] == "3" and r["label"] == "4")
    assert float(box["volume_um3"]) == 6.0 and float(box["centroid_z_um"]) == 9.0
    assert float(box["intensity_mean"]) == 40 and "perimeter_px" not in box
    with open(tmp_path / "cells.tracks.csv", newline="", encoding="utf-8") as f:
        assert [r["label"] for r in csv.DictReader(f)] == ["4", "7", "9"]
    assert any("cells.tracks.csv" in text and "intensities of 'volume video'" in text for text in said())
