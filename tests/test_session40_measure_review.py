"""Review of the object measurements (`napari_vos.object_table`, `napari-vos measure`): ids beyond
int64, NaN pixels of a float image, a stack without frames, float columns that read back as floats,
and the command line's names, flags and folders."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from napari_vos.object_table import measure_objects, track_summary


def _labels() -> np.ndarray:
    labels = np.zeros((2, 12, 12), np.uint8)
    labels[:, 2:6, 2:6] = 1
    return labels


def test_uint64_ids_beyond_int64_keep_their_value_in_both_tables_and_the_csv(tmp_path):
    """An id of 2**64 - 1 came out as -1, and 2**60 + 1 on one frame beside a small id on another
    lost its last digit (the frames' label columns were joined as floats)."""
    labels = np.zeros((2, 12, 12), np.uint64)
    labels[0, 1:4, 1:4] = 2**64 - 1
    labels[0, 6:9, 6:9] = 2**60 + 1
    labels[1, 6:9, 6:9] = 3
    objects = measure_objects(labels)
    assert sorted(objects.columns["label"].tolist()) == [3, 2**60 + 1, 2**64 - 1]
    assert sorted(track_summary(objects).columns["label"].tolist()) == [3, 2**60 + 1, 2**64 - 1]
    with open(objects.write_csv(tmp_path / "o.csv"), newline="", encoding="utf-8") as f:
        assert sorted(int(row["label"]) for row in csv.DictReader(f)) == [3, 2**60 + 1, 2**64 - 1]


def test_nan_pixels_of_a_float_image_are_left_out_of_the_intensities_as_fiji_does():
    """One NaN pixel (a registration's padding, a masked-out area) made all four intensities of its object NaN."""
    image = np.ones((2, 12, 12), np.float32)
    image[0, 2, 2] = np.nan
    image[0, 3, 3] = 5.0
    image[1, 2:6, 2:6] = np.nan  # an object wholly on no data: its intensities are missing
    first, second = measure_objects(_labels(), image).rows()
    assert first["intensity_mean"] == pytest.approx(19 / 15) and first["intensity_sum"] == pytest.approx(19.0)
    assert (first["intensity_min"], first["intensity_max"]) == (1.0, 5.0) and first["area_px"] == 16
    assert all(np.isnan(second[f"intensity_{what}"]) for what in ("mean", "min", "max"))
    assert second["intensity_sum"] == 0.0 or np.isnan(second["intensity_sum"])


def test_the_integrated_intensity_of_16_bit_counts_is_exact():
    image = np.full((2, 12, 12), 65535, np.uint16)
    (row, _) = measure_objects(_labels(), image).rows()
    assert row["intensity_sum"] == 16 * 65535


def test_a_stack_without_frames_is_refused_saying_so():
    """It raised an IndexError from inside the measuring."""
    with pytest.raises(ValueError, match="no frames"):
        measure_objects(np.zeros((0, 12, 12), np.uint8))


def test_float_columns_read_back_as_floats_in_pandas_also_where_every_value_is_whole(tmp_path):
    """A time of 0, 5, 10 min or a perimeter of 16 px was written "5", "16": pandas read those
    columns as int64 in one file and float64 in the next."""
    pandas = pytest.importorskip("pandas")
    from napari_vos.data.calibration import Calibration

    table = measure_objects(_labels(), calibration=Calibration((1.0, 1.0), "µm", 5.0, "min"))
    frame = pandas.read_csv(table.write_csv(tmp_path / "o.csv"))
    for name in ("time_min", "area_um2", "perimeter_px", "solidity", "centroid_y_um"):
        assert frame[name].dtype == np.float64, name
    for name in ("frame", "label", "area_px", "bbox_y0", "pieces", "touches_edge"):
        assert frame[name].dtype == np.int64, name
    tracks = pandas.read_csv(track_summary(measure_objects(_labels())).write_csv(tmp_path / "t.csv"))
    assert tracks["mean_area_px"].dtype == np.float64 and tracks["frames_present"].dtype == np.int64


# the command line ---------------------------------------------------------------------------------
def _labels_tiff(tmp_path):
    import tifffile

    path = tmp_path / "labels.tif"
    tifffile.imwrite(path, _labels())
    return path


def test_tracks_named_as_the_objects_table_under_another_spelling_are_refused(tmp_path, capsys):
    """``-o q/x.csv --tracks q/../q/x.csv`` wrote the track table over the object table."""
    from napari_vos.cli import main

    labels = _labels_tiff(tmp_path)
    (tmp_path / "q").mkdir()
    out = tmp_path / "q" / "x.csv"
    assert main(["measure", str(labels), "-o", str(out), "--tracks", str(tmp_path / "q" / ".." / "q" / "x.csv")]) == 2
    assert "is the -o table" in capsys.readouterr().err and not out.exists()


def test_the_output_folder_is_not_made_when_the_labels_cannot_be_read(tmp_path, capsys):
    from napari_vos.cli import main

    assert main(["measure", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "new" / "x.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "new").exists()


@pytest.mark.parametrize("flags, words", [
    (["--pixel-size", "abc"], "--pixel-size abc"),
    (["--pixel-size", "nan"], "--pixel-size nan"),
    (["--pixel-size", "0.5,inf"], "--pixel-size 0.5,inf"),
    (["--frame-interval", "nan"], "--frame-interval nan"),
    (["--frame-interval", "inf"], "--frame-interval inf"),
])
def test_a_pixel_size_or_frame_interval_that_is_no_finite_number_is_refused_naming_the_flag(tmp_path, capsys,
                                                                                           flags, words):
    """NaN was taken (every physical column empty), and "abc" gave Python's own float() message."""
    from napari_vos.cli import main

    labels = _labels_tiff(tmp_path)
    assert main(["measure", str(labels), "-o", str(tmp_path / "x.csv"), *flags]) == 2
    assert words in capsys.readouterr().err and not (tmp_path / "x.csv").exists()
