"""TIFF calibration: read from OME, ImageJ and baseline tags; written back with the labels."""
import numpy as np
import pytest
import tifffile

from napari_vos.data.calibration import Calibration, read_tiff_calibration, tiff_calibration_kwargs
from napari_vos.data.writers import read_tiff_provenance, write_tiff_labels


def _stack(t=3, y=16, x=20):
    return np.zeros((t, y, x), np.uint16)


def test_imagej_calibration_is_read(tmp_path):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, _stack(), imagej=True, resolution=(1 / 0.65, 1 / 0.5),
                     metadata={"axes": "TYX", "unit": "micron", "finterval": 5.0, "tunit": "min"})
    cal = read_tiff_calibration(path)
    assert cal.unit == "µm" and cal.time_unit == "min" and cal.frame_interval == 5.0
    assert cal.pixel_size == pytest.approx((0.5, 0.65), rel=1e-4)  # (Y, X)
    assert cal.describe() == "0.5 x 0.65 µm pixels, 5 min between frames"


def test_ome_calibration_is_read(tmp_path):
    path = tmp_path / "m.ome.tif"
    tifffile.imwrite(path, _stack(), metadata={"axes": "TYX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.3,
                                               "PhysicalSizeXUnit": "µm", "TimeIncrement": 30.0})
    cal = read_tiff_calibration(path)
    assert cal == Calibration((0.3, 0.2), "µm", 30.0, "s")


def test_baseline_tags_and_no_calibration(tmp_path):
    tifffile.imwrite(tmp_path / "cm.tif", _stack(), photometric="minisblack", resolution=(4.0, 4.0), resolutionunit="CENTIMETER")
    assert read_tiff_calibration(tmp_path / "cm.tif") == Calibration((0.25, 0.25), "cm")
    tifffile.imwrite(tmp_path / "plain.tif", _stack(), photometric="minisblack")
    plain = read_tiff_calibration(tmp_path / "plain.tif")
    assert plain.empty and plain.describe() == "no calibration"


def test_a_unit_baseline_tiff_cannot_name_is_left_out_not_mislabelled():
    assert tiff_calibration_kwargs(Calibration((2.0, 2.0), "nm"), imagej=False) == {}
    kw = tiff_calibration_kwargs(Calibration((2.0, 2.0), "nm", 3.0), imagej=True)
    assert kw["resolution"] == (0.5, 0.5) and kw["metadata"] == {"unit": "nm", "finterval": 3.0}


@pytest.mark.parametrize("top_id, imagej", [(7, True), (70000, False)])
def test_labels_keep_the_calibration_and_provenance(tmp_path, top_id, imagej):
    labels = np.zeros((4, 16, 20), np.int64)
    labels[2, 3:6, 4:9] = top_id
    cal = Calibration((0.4, 0.4), "µm", 2.0 if imagej else None, "s" if imagej else None)
    path = write_tiff_labels(tmp_path / "l.tif", labels, calibration=cal, provenance={"method": "flow"})
    back = tifffile.imread(path)
    assert back.shape == labels.shape and back[2, 4, 5] == top_id
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej == imagej and tif.series[0].axes == "TYX"
    got = read_tiff_calibration(path)
    assert got.unit == "µm" and got.pixel_size == pytest.approx((0.4, 0.4), rel=1e-4)
    assert got.frame_interval == cal.frame_interval
    assert read_tiff_provenance(path) == {"method": "flow"}
