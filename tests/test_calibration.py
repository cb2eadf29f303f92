"""TIFF calibration: read from OME, ImageJ and baseline tags; written back with the labels."""
import numpy as np
import pytest
import tifffile

from napari_vos.data.calibration import Calibration, calibration_from_scale, read_tiff_calibration, tiff_calibration_kwargs
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


def test_an_ome_pixel_height_in_a_unit_of_its_own_is_converted_to_the_widths(tmp_path):
    path = tmp_path / "nm.ome.tif"
    tifffile.imwrite(path, _stack(), ome=True, metadata={"axes": "TYX", "PhysicalSizeX": 0.5, "PhysicalSizeXUnit": "µm",
                                                         "PhysicalSizeY": 650, "PhysicalSizeYUnit": "nm"})
    cal = read_tiff_calibration(path)
    assert cal.unit == "µm" and cal.pixel_size == pytest.approx((0.65, 0.5))


def test_baseline_tags_and_no_calibration(tmp_path):
    tifffile.imwrite(tmp_path / "cm.tif", _stack(), photometric="minisblack", resolution=(4.0, 4.0), resolutionunit="CENTIMETER")
    assert read_tiff_calibration(tmp_path / "cm.tif") == Calibration((0.25, 0.25), "cm")
    tifffile.imwrite(tmp_path / "plain.tif", _stack(), photometric="minisblack")
    plain = read_tiff_calibration(tmp_path / "plain.tif")
    assert plain.empty and plain.describe() == "no calibration"


def test_a_unit_baseline_tiff_cannot_name_is_converted_or_left_out_not_mislabelled():
    # nm is metric: converted to a unit a baseline TIFF names (session 34: it was dropped)
    kw = tiff_calibration_kwargs(Calibration((2.0, 2.0), "nm"), imagej=False)
    assert kw["resolutionunit"] == "MICROMETER" and kw["resolution"] == pytest.approx((500.0, 500.0))
    assert tiff_calibration_kwargs(Calibration((2.0, 2.0), "furlong"), imagej=False) == {}
    assert tiff_calibration_kwargs(Calibration((2.0, 2.0), None), imagej=False) == {}
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


def test_stacks_past_4_gib_are_written_as_bigtiff(tmp_path, monkeypatch):
    # a classic TIFF ends at 4 GiB and an ImageJ file past it would be truncated to one page:
    # from BIGTIFF_FROM raw bytes on, labels and maps are BigTIFFs (threshold lowered to test it)
    import tifffile

    from napari_vos.data import writers
    from napari_vos.data.calibration import Calibration

    monkeypatch.setattr(writers, "BIGTIFF_FROM", 4 * 16 * 16 * 2)
    labels = np.zeros((5, 16, 16), np.int32)
    labels[:, 4:8, 4:8] = 3
    cal = Calibration(pixel_size=(0.5, 0.5), unit="µm", frame_interval=2.0)
    for n, big in ((3, False), (5, True)):
        path = writers.write_tiff_labels(tmp_path / f"l{n}.tif", labels[:n], calibration=cal, provenance={"n": n})
        with tifffile.TiffFile(path) as tif:
            assert tif.is_bigtiff == big and tif.is_imagej == (not big) and len(tif.pages) == n
        assert np.array_equal(tifffile.imread(path), labels[:n]) and writers.read_tiff_provenance(path) == {"n": n}
    maps = np.random.default_rng(0).random((5, 2, 8, 8)).astype(np.float32)  # 2560 bytes from 2048 on
    monkeypatch.setattr(writers, "BIGTIFF_FROM", 2048)
    path = writers.write_tiff_map(tmp_path / "m.tif", maps, cal, {"map": "x"})
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff and len(tif.pages) == 10
    assert np.array_equal(tifffile.imread(path), maps) and writers.read_tiff_provenance(path) == {"map": "x"}


@pytest.mark.parametrize("top_id", [7, 70000])
def test_non_square_pixels_and_a_time_unit_survive_the_round_trip(tmp_path, top_id):
    # pins: the written resolution is (1/x, 1/y), not swapped, in ImageJ and baseline labels; ImageJ keeps tunit
    labels = np.zeros((3, 16, 20), np.int64)
    labels[1, 2:5, 3:8] = top_id
    cal = Calibration((0.5, 0.25), "µm", 2.0, "min")
    path = write_tiff_labels(tmp_path / "l.tif", labels, calibration=cal)
    got = read_tiff_calibration(path)
    assert got.pixel_size == pytest.approx((0.5, 0.25), rel=1e-4) and got.unit == "µm"
    if top_id == 7:  # ImageJ hyperstack: the frame interval and its unit come back too
        assert (got.frame_interval, got.time_unit) == (2.0, "min")


def test_a_pixel_size_without_a_unit_survives_the_round_trip(tmp_path):
    """A napari layer scaled (1, 0.5, 0.25) with napari's default units ("pixel") is saved with that
    resolution and ImageJ's unit "pixel"; it reopened at scale 1, off its image."""
    from napari_vos.data.calibration import scale_from_calibration

    cal = calibration_from_scale((1.0, 0.5, 0.25), ("pixel", "pixel", "pixel"))
    path = write_tiff_labels(tmp_path / "l.tif", np.ones((3, 16, 20), np.uint8), calibration=cal)
    got = read_tiff_calibration(path)
    assert got.pixel_size == pytest.approx((0.5, 0.25), rel=1e-4) and got.unit is None
    assert scale_from_calibration(got, 3)[0][1:] == pytest.approx([0.5, 0.25], rel=1e-4)
    plain = tmp_path / "plain.tif"  # ImageJ with no unit at all: its resolution says nothing
    tifffile.imwrite(plain, _stack(), imagej=True, resolution=(4.0, 2.0), metadata={"axes": "TYX"})
    assert read_tiff_calibration(plain).pixel_size is None


def test_a_baseline_tiff_gets_no_imagej_metadata_and_ids_past_65535_are_uint32(tmp_path):
    # pins: the frame interval goes to ImageJ files only; 65535 is the last id written as uint16
    kw = tiff_calibration_kwargs(Calibration((0.5, 0.25), "µm", 3.0, "s"), imagej=False)
    assert kw == {"resolution": (4.0, 2.0), "resolutionunit": "MICROMETER"}
    for top, dtype in ((65535, np.uint16), (65536, np.uint32)):
        labels = np.zeros((2, 4, 4), np.int64)
        labels[1, 1, 1] = top
        back = tifffile.imread(write_tiff_labels(tmp_path / f"l{top}.tif", labels))
        assert back.dtype == dtype and back[1, 1, 1] == top


@pytest.mark.parametrize("scale, units, expected", [
    ((2, 0.5, 0.25), ("minute", "micrometer", "micrometer"), Calibration((0.5, 0.25), "µm", 2.0, "minute")),
    ((0.5, 0.5), ("micrometer", "micrometer"), Calibration((0.5, 0.5), "µm", None, None)),  # one (Y, X) frame
    ((1, 1, 1), ("second", "micrometer", "micrometer"), Calibration((1.0, 1.0), "µm", 1.0, "second")),  # 1 is a size
    ((1, 0.5, 0.5), ("pixel", "pixel", "pixel"), Calibration((0.5, 0.5), None, None, None)),
    ((1, 1, 1), ("pixel", "pixel", "pixel"), Calibration()),  # nothing to write
    ((3, 2, 2), None, Calibration((2.0, 2.0), None, 3.0, None)),
])
def test_a_napari_layers_scale_and_units_become_the_calibration_written_with_its_labels(scale, units, expected):
    from napari_vos.data.calibration import calibration_from_scale

    assert calibration_from_scale(scale, units) == expected


@pytest.mark.parametrize("calibration, ndim, scale, units", [
    (Calibration((0.65, 0.5), "µm", 5.0, "min"), 3, [5.0, 0.65, 0.5], ["min", "µm", "µm"]),
    (Calibration((0.65, 0.65), "µm"), 3, [1.0, 0.65, 0.65], ["pixel", "µm", "µm"]),
    (Calibration(None, None, 2.0, None), 3, [2.0, 1.0, 1.0], ["s", "pixel", "pixel"]),
    (Calibration(), 3, [1.0, 1.0, 1.0], ["pixel"] * 3),
    (Calibration((0.2, 0.3), "mm"), 2, [0.2, 0.3], ["mm", "mm"]),
])
def test_scale_from_calibration_places_a_layer_and_reads_back(calibration, ndim, scale, units):
    from napari_vos.data.calibration import scale_from_calibration

    assert scale_from_calibration(calibration, ndim) == (scale, units)
    back = calibration_from_scale(scale, units)
    assert back.pixel_size == calibration.pixel_size and back.frame_interval == calibration.frame_interval
    assert back.unit == calibration.unit


def test_scale_from_calibration_takes_two_three_or_four_axes():
    from napari_vos.data.calibration import scale_from_calibration

    with pytest.raises(ValueError, match="not 5 axes"):
        scale_from_calibration(Calibration(), 5)
    # (T, Z, Y, X): the Z step in its own unit, 1 and "pixel" where the file has none
    stepped = Calibration((0.5, 0.5), "µm", 30.0, "s", 2.0, "µm")
    assert scale_from_calibration(stepped, 4) == ([30.0, 2.0, 0.5, 0.5], ["s", "µm", "µm", "µm"])
    assert scale_from_calibration(stepped, 3) == ([30.0, 0.5, 0.5], ["s", "µm", "µm"])  # a plane's layer: no Z
    assert scale_from_calibration(Calibration((0.5, 0.5), "µm"), 4) == ([1.0, 1.0, 0.5, 0.5],
                                                                        ["pixel", "pixel", "µm", "µm"])


def test_the_z_step_is_read_from_ome_and_imagej_and_left_out_of_what_labels_keep(tmp_path):
    """OME PhysicalSizeZ and ImageJ's ``spacing``: the Z step of a 3D + time stack opened whole. A labels
    TIFF (one plane) cannot hold it: the describe() of what is kept and `empty` are as before."""
    from napari_vos.data.calibration import storable_calibration

    volume = np.zeros((2, 3, 8, 8), np.uint16)
    tifffile.imwrite(tmp_path / "v.ome.tif", volume, ome=True,
                     metadata={"axes": "TZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "PhysicalSizeZ": 2.0,
                               "PhysicalSizeZUnit": "nm", "TimeIncrement": 4.0})
    ome = read_tiff_calibration(tmp_path / "v.ome.tif")
    assert ome == Calibration((0.5, 0.5), "µm", 4.0, "s") and (ome.z_size, ome.z_unit) == (2.0, "nm")
    tifffile.imwrite(tmp_path / "v.tif", volume, imagej=True, resolution=(1 / 0.65, 1 / 0.65),
                     metadata={"axes": "TZYX", "unit": "um", "spacing": 1.5})
    ij = read_tiff_calibration(tmp_path / "v.tif")
    assert (ij.z_size, ij.z_unit, ij.unit) == (1.5, "µm", "µm") and ij.frame_interval is None
    tifffile.imwrite(tmp_path / "z_only.tif", volume, imagej=True, metadata={"axes": "TZYX", "spacing": 3.0})
    z_only = read_tiff_calibration(tmp_path / "z_only.tif")
    assert (z_only.z_size, z_only.z_unit, z_only.empty, z_only.describe()) == (3.0, None, True, "no calibration")
    assert ome.describe() == "0.5 x 0.5 µm pixels, 4 s between frames"
    kept = storable_calibration(ome, imagej=True)  # compared without the Z step: `propagate --z` keeps it all
    assert kept == ome and kept.z_size is None and "spacing" not in str(tiff_calibration_kwargs(ome, imagej=True))
