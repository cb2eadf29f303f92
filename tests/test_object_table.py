"""Per-object measurements of a labels stack (`napari_vos.object_table`, `napari-vos measure`): hand
values for sizes, positions, pieces, intensities and track speeds, in pixels and in the stack's units;
the CSV files; the refusals."""
from __future__ import annotations

import csv
import math
import subprocess
import sys

import numpy as np
import pytest

from napari_vos.data.calibration import Calibration
from napari_vos.object_table import (ObjectTable, measure_objects, time_suffix, track_summary, tracks_path,
                                     unit_suffix)


def _stack() -> np.ndarray:
    """Three 40x50 frames: a 10x10 square (id 1) moving 3 px down and 4 px right a frame, then to the
    left edge; a 5x10 bar (id 2) on frames 0 and 2 only, split in two on frame 2."""
    labels = np.zeros((3, 40, 50), np.uint16)
    labels[0, 5:15, 5:15] = 1
    labels[1, 8:18, 9:19] = 1
    labels[2, 30:40, 0:10] = 1
    labels[0, 20:25, 20:30] = 2
    labels[2, 20:25, 20:22] = 2
    labels[2, 20:25, 25:27] = 2
    return labels


def _rows(table: ObjectTable) -> list[dict]:
    return list(table.rows())


def test_each_object_on_each_frame_gets_its_size_position_box_and_pieces_in_pixels():
    rows = _rows(measure_objects(_stack()))
    assert [(r["frame"], r["label"]) for r in rows] == [(0, 1), (0, 2), (1, 1), (2, 1), (2, 2)]
    square, bar, moved, at_edge, split = rows
    assert square["area_px"] == 100 and (square["centroid_y_px"], square["centroid_x_px"]) == (9.5, 9.5)
    assert (square["bbox_y0"], square["bbox_x0"], square["bbox_y1"], square["bbox_x1"]) == (5, 5, 15, 15)
    assert square["equivalent_diameter_px"] == pytest.approx(math.sqrt(400 / math.pi))
    assert square["perimeter_px"] == pytest.approx(36.0)  # skimage's 4-connected boundary estimate of a 10x10 square
    assert (moved["centroid_y_px"], moved["centroid_x_px"]) == (12.5, 13.5)
    assert bar["pieces"] == 1 and split["pieces"] == 2 and split["area_px"] == 20
    assert [r["touches_edge"] for r in rows] == [False, False, False, True, False]
    assert "area_um2" not in rows[0] and "time_s" not in rows[0]  # no calibration: pixels only


def test_a_calibration_adds_physical_columns_and_the_time_of_each_frame():
    table = measure_objects(_stack(), calibration=Calibration((0.5, 0.5), "µm", 2.0, "min"))
    square = _rows(table)[2]  # frame 1's square
    assert square["time_min"] == 2.0
    assert square["area_um2"] == pytest.approx(25.0)
    assert (square["centroid_y_um"], square["centroid_x_um"]) == (6.25, 6.75)
    assert square["equivalent_diameter_um"] == pytest.approx(math.sqrt(4 * 25.0 / math.pi))
    assert square["perimeter_um"] == pytest.approx(18.0)


def test_with_pixels_that_are_not_square_the_perimeter_has_no_physical_length_but_the_area_has():
    table = measure_objects(_stack(), calibration=Calibration((1.0, 0.25), "µm"))
    first = _rows(table)[0]
    assert first["area_um2"] == pytest.approx(25.0) and first["centroid_x_um"] == pytest.approx(9.5 * 0.25)
    assert math.isnan(first["perimeter_um"])


def test_intensities_are_the_raw_values_under_each_object_per_channel():
    labels = _stack()
    grey = np.full(labels.shape, 1000, np.uint16)
    grey[0, 5:10, 5:15] = 3000  # the top half of the square on frame 0
    row = _rows(measure_objects(labels, grey))[0]
    assert (row["intensity_mean"], row["intensity_min"], row["intensity_max"]) == (2000.0, 1000.0, 3000.0)
    assert row["intensity_sum"] == pytest.approx(200000.0)
    colour = np.zeros((*labels.shape, 2), np.float32)
    colour[..., 1] = 7.0
    row = _rows(measure_objects(labels, colour))[0]
    assert row["intensity_mean_c0"] == 0.0 and row["intensity_mean_c1"] == 7.0


@pytest.mark.parametrize("ids", [(-3, 5), (2**40, 7), (-(2**40), 2**41)])
def test_negative_and_very_large_ids_are_measured_under_their_own_ids(ids):
    """skimage measures ids from 1 and sizes its bookkeeping by the largest id: those are renumbered
    for it and given back."""
    labels = np.zeros((2, 20, 20), np.int64)
    labels[:, 2:6, 2:6] = ids[0]
    labels[:, 10:18, 10:18] = ids[1]
    rows = _rows(measure_objects(labels))
    assert sorted((r["frame"], r["label"], r["area_px"]) for r in rows) == sorted(
        [(t, ids[0], 16) for t in range(2)] + [(t, ids[1], 64) for t in range(2)])


def test_the_track_summary_follows_each_id_across_frames():
    objects = measure_objects(_stack(), calibration=Calibration((0.5, 0.5), "µm", 2.0, "min"))
    square, bar = _rows(track_summary(objects, frames=4))
    step1, step2 = math.hypot(3, 4), math.hypot(34.5 - 12.5, 4.5 - 13.5)
    assert (square["first_frame"], square["last_frame"], square["frames_present"]) == (0, 2, 3)
    assert square["path_length_px"] == pytest.approx(step1 + step2)
    assert square["net_displacement_px"] == pytest.approx(math.hypot(25, 5))
    assert square["speed_px_per_frame"] == pytest.approx((step1 + step2) / 2)
    assert square["speed_um_per_min"] == pytest.approx((step1 + step2) * 0.5 / 4.0)
    assert square["frames_touching_edge"] == 1 and square["frames_after_last"] == 1
    assert bar["frames_present"] == 2 and bar["frames_missing"] == 1 and bar["max_pieces"] == 2
    assert bar["mean_area_um2"] == pytest.approx((50 + 20) / 2 * 0.25)


def test_an_object_on_one_frame_has_no_speed_and_empty_labels_give_headers():
    labels = np.zeros((2, 10, 10), np.uint8)
    labels[1, 2:4, 2:4] = 9
    (only,) = _rows(track_summary(measure_objects(labels)))
    assert only["path_length_px"] == 0.0 and math.isnan(only["speed_px_per_frame"])
    empty = measure_objects(np.zeros((2, 10, 10), np.uint8))
    assert len(empty) == 0 and "area_px" in empty.names
    assert len(track_summary(empty)) == 0 and "speed_px_per_frame" in track_summary(empty).names


def test_one_frame_is_measured_as_frame_0():
    rows = _rows(measure_objects(_stack()[0]))
    assert [(r["frame"], r["label"]) for r in rows] == [(0, 1), (0, 2)]


@pytest.mark.parametrize("labels, image, words", [
    (np.zeros((2, 8, 8), np.float32), None, "integers"),
    (np.zeros((2, 2, 3, 8, 8), np.uint8), None, "(T, Y, X) or (T, Z, Y, X)"),
    (np.zeros((2, 8, 8), np.uint8), np.zeros((3, 8, 8)), "propagated on"),
    (np.zeros((2, 8, 8), np.uint8), np.zeros((2, 8, 9)), "propagated on"),
])
def test_what_cannot_be_measured_is_refused_saying_why(labels, image, words):
    with pytest.raises(ValueError) as err:
        measure_objects(labels, image)
    assert words in str(err.value)


def test_the_csv_has_a_header_empty_cells_for_missing_values_and_a_failed_write_keeps_the_old_file(tmp_path,
                                                                                                   monkeypatch):
    table = measure_objects(_stack(), calibration=Calibration((1.0, 0.25), "µm"))
    path = table.write_csv(tmp_path / "objects.csv")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and rows[0]["perimeter_um"] == "" and rows[0]["area_px"] == "100"
    assert rows[3]["touches_edge"] == "1"
    before = path.read_bytes()
    import napari_vos.object_table as object_table

    def broken(value):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(object_table, "_cell", broken)
    with pytest.raises(RuntimeError):
        table.write_csv(path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["objects.csv"]


def test_a_16_bit_images_summed_counts_are_written_whole_and_other_floats_to_seven_digits(tmp_path):
    labels = np.zeros((2, 64, 64), np.uint16)
    labels[:, :, :] = 1
    image = np.full((2, 64, 64), 4092, np.uint16)
    image[:, 0, :35] += 1  # 16760867 in all: more than 7 digits
    table = measure_objects(labels, image)
    with open(table.write_csv(tmp_path / "objects.csv"), newline="", encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    assert row["intensity_sum"] == "16760867.0" and row["intensity_mean"] == "4092.009"


def test_unit_suffixes_are_plain_column_names():
    assert [unit_suffix(u) for u in ("µm", "nm", "Å", None, "m m")] == ["um", "nm", "angstrom", "units", "m_m"]
    assert [time_suffix(u) for u in ("minute", "Minutes", "min", None, "hour", "fortnight")] == [
        "min", "min", "min", "units", "h", "fortnight"]
    assert tracks_path("out/cells.csv").name == "cells.tracks.csv"


# the command line ---------------------------------------------------------------------------------
def _files(tmp_path, record=None):
    import tifffile

    from napari_vos.data.writers import write_tiff_labels

    labels = _stack()
    write_tiff_labels(tmp_path / "out.tif", labels, calibration=Calibration((0.5, 0.5), "µm", 2.0, "min"),
                      provenance=record)
    video = np.full(labels.shape, 500, np.uint16)
    tifffile.imwrite(tmp_path / "video.tif", video, imagej=True, metadata={"axes": "TYX"})
    return tmp_path / "out.tif", tmp_path / "video.tif"


def _table(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_measure_writes_both_tables_in_the_labels_files_units_with_the_videos_intensities(tmp_path, capsys):
    from napari_vos.cli import main

    labels, video = _files(tmp_path)
    assert main(["measure", str(labels), "--video", str(video), "-o", str(tmp_path / "t" / "cells.csv")]) == 0
    objects, tracks = _table(tmp_path / "t" / "cells.csv"), _table(tmp_path / "t" / "cells.tracks.csv")
    assert len(objects) == 5 and objects[2]["time_min"] == "2.0" and objects[2]["area_um2"] == "25.0"
    assert objects[0]["intensity_mean"] == "500.0"
    assert [r["label"] for r in tracks] == ["1", "2"] and "speed_um_per_min" in tracks[0]
    assert "0.5 x 0.5 µm pixels, 2 min between frames" in capsys.readouterr().out


def test_measure_flags_replace_the_files_calibration(tmp_path):
    from napari_vos.cli import main

    labels, _ = _files(tmp_path)
    assert main(["measure", str(labels), "-o", str(tmp_path / "a.csv"), "--pixel-size", "2", "--unit", "nm",
                 "--frame-interval", "30", "--time-unit", "s"]) == 0
    first = _table(tmp_path / "a.csv")[2]
    assert first["area_nm2"] == "400.0" and first["time_s"] == "30.0"


def test_measure_refuses_before_reading_and_never_replaces_a_table_or_an_input_unasked(tmp_path, capsys):
    from napari_vos.cli import main

    labels, video = _files(tmp_path)
    (tmp_path / "old.csv").write_text("kept")
    assert main(["measure", str(labels), "-o", str(tmp_path / "old.csv")]) == 2
    assert "exists" in capsys.readouterr().err and (tmp_path / "old.csv").read_text() == "kept"
    assert main(["measure", str(labels), "-o", str(tmp_path / "cells.xlsx")]) == 2
    assert "cells.csv" in capsys.readouterr().err
    short = tmp_path / "short.tif"
    import tifffile

    tifffile.imwrite(short, np.zeros((2, 40, 50), np.uint16), imagej=True, metadata={"axes": "TYX"})
    assert main(["measure", str(labels), "--video", str(short), "-o", str(tmp_path / "b.csv")]) == 2
    assert "2 frames" in capsys.readouterr().err and not (tmp_path / "b.csv").exists()
    assert main(["measure", str(labels), "-o", str(tmp_path / "c.csv"), "--unit", "um",
                 "--pixel-size", "0"]) == 2
    assert main(["measure", str(labels), "-o", str(tmp_path / "old.csv"), "--force"]) == 0
    assert (tmp_path / "old.csv").read_text().startswith("frame,")


def test_measure_says_a_stopped_runs_output_is_missing_frames(tmp_path, capsys):
    from napari_vos.cli import main

    labels, _ = _files(tmp_path, record={"complete": False, "frames_segmented": "0-1", "stopped_by": "interrupt"})
    assert main(["measure", str(labels), "-o", str(tmp_path / "a.csv")]) == 0
    err = capsys.readouterr().err
    assert "stopped run" in err and "frames 0-1" in err


def test_the_measuring_modules_import_no_torch_napari_or_qt():
    code = ("import sys, napari_vos.object_table, napari_vos.cli_objects; "
            "print([m for m in ('torch', 'napari', 'qtpy', 'PyQt5', 'PyQt6') if m in sys.modules])")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_a_time_step_without_a_unit_is_not_called_seconds():
    """A napari layer scaled (5, 0.5, 0.5) with napari's default units ("pixel") has a time step of 5
    in no known unit: the columns were time_s and speed_..._per_s."""
    from napari_vos.data.calibration import calibration_from_scale

    objects = measure_objects(_stack(), calibration=calibration_from_scale((5, 0.5, 0.5), ("pixel",) * 3))
    tracks = track_summary(objects)
    assert "time_units" in objects.names and not any(n.startswith("time_s") for n in objects.names)
    assert "speed_units_per_time_unit" in tracks.names
