"""`napari-vos measure` on (T, Z, Y, X) labels TIFFs: measured in 3D (volumes in the Z step x pixel size,
3D centroids, intensities of a (T, Z, Y, X) video), the Z step from the file or --z-step, refusals by
name, --z's one plane still in 2-D, and `overlay` refusing such labels without --z as before."""
import csv

import numpy as np
import pytest
import tifffile

from napari_vos.cli import main

#: a 2 x 3 x 4 voxel box (24 voxels) of id 5: planes 1-2 on frame 0, planes 2-3 on frame 1
_BOX = (slice(2, 5), slice(3, 7))


def _stack(dtype=np.uint16) -> np.ndarray:
    """(T=2, Z=6, Y=10, X=12) labels: id 5 a box moving one plane up between the frames, id 9 one voxel."""
    labels = np.zeros((2, 6, 10, 12), dtype)
    labels[0, 1:3][(slice(None), *_BOX)] = 5
    labels[1, 2:4][(slice(None), *_BOX)] = 5
    labels[:, 5, 8, 10] = 9  # on the last plane: touches the edge in Z
    return labels


def _imagej(path, data, **metadata) -> str:
    """An ImageJ hyperstack of 0.5 x 0.5 µm pixels (and what ``metadata`` adds: spacing, finterval)."""
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"axes": "TZYX" if data.ndim == 4 else "TYX", "unit": "um", **metadata})
    return str(path)


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _row(rows, frame: int, label: int) -> dict[str, str]:
    return next(r for r in rows if r["frame"] == str(frame) and r["label"] == str(label))


def test_imagej_volumes_are_measured_in_3d_with_the_files_z_step(tmp_path, capsys):
    labels = _imagej(tmp_path / "labels.tif", _stack(), spacing=2.0, finterval=3.0, tunit="min")
    assert main(["measure", labels, "-o", str(tmp_path / "objects.csv")]) == 0
    rows = _rows(tmp_path / "objects.csv")
    assert len(rows) == 4 and "area_px" not in rows[0] and "perimeter_px" not in rows[0]
    box = _row(rows, 0, 5)
    assert box["volume_px"] == "24" and float(box["volume_um3"]) == pytest.approx(24 * 2.0 * 0.5 * 0.5)
    assert float(box["centroid_z_px"]) == 1.5 and float(box["centroid_z_um"]) == pytest.approx(3.0)
    assert float(box["centroid_y_um"]) == pytest.approx(1.5) and float(box["centroid_x_um"]) == pytest.approx(2.25)
    assert (box["bbox_z0"], box["bbox_z1"], box["touches_edge"], box["pieces"]) == ("1", "3", "0", "1")
    assert float(_row(rows, 1, 5)["centroid_z_um"]) == pytest.approx(5.0) and _row(rows, 1, 5)["time_min"] == "3.0"
    assert _row(rows, 0, 9)["touches_edge"] == "1"  # the volume's last plane is an edge too
    tracks = {r["label"]: r for r in _rows(tmp_path / "objects.tracks.csv")}
    assert float(tracks["5"]["mean_volume_um3"]) == pytest.approx(12.0)
    assert float(tracks["5"]["net_displacement_um"]) == pytest.approx(2.0)  # one Z step of 2 µm
    assert float(tracks["5"]["net_displacement_px"]) == pytest.approx(1.0)
    out = capsys.readouterr()
    assert "over 2 frames of 6 Z planes" in out.out and "Z step 2 µm" in out.out
    assert "no Z step" not in out.err


def test_z_step_replaces_the_files_and_an_ome_files_physical_size_z_is_read(tmp_path):
    labels = _imagej(tmp_path / "labels.tif", _stack(), spacing=2.0)
    assert main(["measure", labels, "-o", str(tmp_path / "a.csv"), "--z-step", "0.25"]) == 0
    box = _row(_rows(tmp_path / "a.csv"), 0, 5)
    assert float(box["volume_um3"]) == pytest.approx(24 * 0.25 * 0.25) and float(box["centroid_z_um"]) == 0.375
    ome = tmp_path / "labels.ome.tif"
    tifffile.imwrite(ome, _stack(), ome=True, metadata={"axes": "TZYX", "PhysicalSizeZ": 1.5, "PhysicalSizeY": 0.5,
                                                         "PhysicalSizeX": 0.5})
    assert main(["measure", str(ome), "-o", str(tmp_path / "b.csv")]) == 0
    assert float(_row(_rows(tmp_path / "b.csv"), 0, 5)["volume_um3"]) == pytest.approx(24 * 1.5 * 0.25)


def test_unit_alone_renames_imagejs_spacing_with_the_pixel_size_and_converts_an_ome_z_step_of_its_own(tmp_path):
    """ImageJ's spacing has no unit of its own: --unit alone says the files' numbers are in that unit, Z's too.
    An OME Z step in a unit other than the pixel size's keeps its own."""
    labels = _imagej(tmp_path / "labels.tif", _stack(), spacing=2.0)
    assert main(["measure", labels, "-o", str(tmp_path / "a.csv"), "--unit", "nm"]) == 0
    box = _row(_rows(tmp_path / "a.csv"), 0, 5)
    assert float(box["volume_nm3"]) == pytest.approx(24 * 2.0 * 0.5 * 0.5) and float(box["centroid_z_nm"]) == 3.0
    ome = tmp_path / "labels.ome.tif"
    tifffile.imwrite(ome, _stack(), ome=True, metadata={"axes": "TZYX", "PhysicalSizeZ": 1500, "PhysicalSizeZUnit": "nm",
                                                         "PhysicalSizeY": 0.5, "PhysicalSizeX": 0.5})
    assert main(["measure", str(ome), "-o", str(tmp_path / "b.csv"), "--unit", "nm"]) == 0
    assert float(_row(_rows(tmp_path / "b.csv"), 0, 5)["centroid_z_nm"]) == pytest.approx(1.5 * 1500)


def test_without_a_z_step_the_planes_are_one_pixel_apart_with_a_note(tmp_path, capsys):
    labels = _imagej(tmp_path / "labels.tif", _stack())  # a pixel size, no spacing
    assert main(["measure", labels, "-o", str(tmp_path / "a.csv")]) == 0
    box = _row(_rows(tmp_path / "a.csv"), 0, 5)
    assert float(box["volume_um3"]) == pytest.approx(24 * 0.5 ** 3) and float(box["centroid_z_um"]) == 0.75
    assert "no Z step in the files" in capsys.readouterr().err
    raw = tmp_path / "raw.tif"  # a plain 4-D array: tifffile names its axes from the shape alone
    tifffile.imwrite(raw, _stack())
    assert main(["measure", str(raw), "-o", str(tmp_path / "b.csv")]) == 0
    rows = _rows(tmp_path / "b.csv")
    assert _row(rows, 0, 5)["volume_px"] == "24" and not any(k.endswith("_um3") for k in rows[0])
    err = capsys.readouterr().err
    assert "no Z step in the files" in err and "no pixel size" in err


def test_a_tzyx_video_gives_the_intensities_in_3d(tmp_path):
    labels = _imagej(tmp_path / "labels.tif", _stack(), spacing=2.0)
    video = np.full((2, 6, 10, 12), 7, np.uint16)
    video[_stack() == 5] = 100
    video[0, 1, 2, 3] = 40  # one voxel of the box dimmer on frame 0
    path = _imagej(tmp_path / "video.tif", video, spacing=2.0)
    assert main(["measure", labels, "--video", path, "-o", str(tmp_path / "a.csv")]) == 0
    rows = _rows(tmp_path / "a.csv")
    first, second = _row(rows, 0, 5), _row(rows, 1, 5)
    assert float(first["intensity_sum"]) == 23 * 100 + 40 and first["intensity_min"] == "40.0"
    assert float(first["intensity_mean"]) == pytest.approx((23 * 100 + 40) / 24)
    assert second["intensity_mean"] == "100.0" and _row(rows, 0, 9)["intensity_mean"] == "7.0"


def test_a_video_of_another_shape_or_without_z_planes_is_refused_by_name(tmp_path, capsys):
    labels = _imagej(tmp_path / "labels.tif", _stack(), spacing=2.0)
    other = _imagej(tmp_path / "other.tif", np.zeros((2, 5, 10, 12), np.uint16))
    assert main(["measure", labels, "--video", other, "-o", str(tmp_path / "a.csv")]) == 2
    err = capsys.readouterr().err
    assert "other.tif" in err and "(2, 5, 10, 12)" in err and "(2, 6, 10, 12)" in err
    flat = _imagej(tmp_path / "flat.tif", np.zeros((2, 10, 12), np.uint16))
    assert main(["measure", labels, "--video", flat, "-o", str(tmp_path / "a.csv")]) == 2
    err = capsys.readouterr().err
    assert "flat.tif" in err and "(2, 10, 12)" in err and "(2, 6, 10, 12)" in err and "(T, Z, Y, X)" in err
    assert not (tmp_path / "a.csv").exists()


def test_refusals_name_the_file_or_the_flag(tmp_path, capsys):
    colour = tmp_path / "colour.tif"
    tifffile.imwrite(colour, np.zeros((2, 10, 12, 3), np.uint8))
    assert main(["measure", str(colour), "-o", str(tmp_path / "a.csv")]) == 2
    assert "colour.tif" in capsys.readouterr().err
    channels = tmp_path / "channels.tif"
    tifffile.imwrite(channels, np.zeros((2, 6, 2, 10, 12), np.uint16), imagej=True, metadata={"axes": "TZCYX"})
    assert main(["measure", str(channels), "-o", str(tmp_path / "a.csv")]) == 2
    err = capsys.readouterr().err
    assert "channels.tif" in err and "(2, 6, 10, 12, 2)" in err and "one object id per voxel" in err
    flat = _imagej(tmp_path / "flat.tif", _stack()[:, 1])
    assert main(["measure", flat, "-o", str(tmp_path / "a.csv"), "--z-step", "2"]) == 2
    assert "--z-step is for (T, Z, Y, X) labels" in capsys.readouterr().err
    volumes = _imagej(tmp_path / "labels.tif", _stack())
    for step in ("0", "-1", "nan"):
        assert main(["measure", volumes, "-o", str(tmp_path / "a.csv"), "--z-step", step]) == 2
        assert f"--z-step {float(step)}" in capsys.readouterr().err
    raw = tmp_path / "raw.tif"
    tifffile.imwrite(raw, _stack())
    assert main(["measure", str(raw), "-o", str(tmp_path / "a.csv"), "--z-step", "2"]) == 2
    assert "without a pixel size" in capsys.readouterr().err
    assert not (tmp_path / "a.csv").exists()


def test_z_keeps_one_plane_measured_in_2d(tmp_path, capsys):
    labels = _imagej(tmp_path / "labels.tif", _stack(), spacing=2.0)
    assert main(["measure", labels, "--z", "2", "-o", str(tmp_path / "a.csv")]) == 0
    rows = _rows(tmp_path / "a.csv")
    assert [(r["frame"], r["label"], r["area_px"]) for r in rows] == [("0", "5", "12"), ("1", "5", "12")]
    assert "volume_px" not in rows[0] and "Z planes" not in capsys.readouterr().out
    assert main(["measure", labels, "--z", "2", "-o", str(tmp_path / "b.csv"), "--z-step", "2"]) == 2
    assert "--z-step is for (T, Z, Y, X) labels" in capsys.readouterr().err


def test_z_of_labels_with_no_z_axis_is_refused_by_measure_ctc_and_divisions_as_by_overlay(tmp_path, capsys):
    """--z on (T, Y, X) labels was dropped unsaid: the whole stack measured, exported or split."""
    flat = _imagej(tmp_path / "flat.tif", _stack()[:, 1])
    for command in (["measure", flat, "-o", str(tmp_path / "a.csv")], ["ctc", flat, "-o", str(tmp_path / "res")],
                    ["divisions", flat, "-o", str(tmp_path / "d.tif")]):
        assert main([*command, "--z", "3"]) == 2
        err = capsys.readouterr().err
        assert "--z 3: the labels" in err and "with no Z axis; leave out --z" in err
    assert not any(tmp_path.joinpath(name).exists() for name in ("a.csv", "res", "d.tif"))
    # with a (T, Z, Y, X) video, flat labels are a plane's (propagate --z's output): measured with that plane
    video = _imagej(tmp_path / "video.tif", np.ones((2, 6, 10, 12), np.uint16))
    assert main(["measure", flat, "--video", video, "--z", "1", "-o", str(tmp_path / "b.csv")]) == 0


def test_labels_whose_only_axis_is_z_are_taken_as_frames_with_a_note(tmp_path, capsys):
    """ImageJ saves a time-lapse as slices as often as a volume: read as frames, as the video is, but said."""
    single = tmp_path / "zyx.tif"
    tifffile.imwrite(single, _stack()[0], imagej=True, metadata={"axes": "ZYX", "spacing": 2.0})
    assert main(["measure", str(single), "-o", str(tmp_path / "a.csv")]) == 0
    captured = capsys.readouterr()
    assert "over 6 frames" in captured.out and "has no time axis (axes ZYX): its Z planes are taken as frames" in \
        captured.err
    assert main(["measure", _imagej(tmp_path / "tyx.tif", _stack()[:, 1]), "-o", str(tmp_path / "b.csv")]) == 0
    assert "no time axis" not in capsys.readouterr().err


def test_unnamed_labels_of_three_or_four_planes_are_measured_as_volumes_not_refused_as_colour(tmp_path, capsys):
    """tifffile names a plain (T, 4, Y, X) array "QSYX" (planar colour): labels hold no colour, and --z
    already read such a file as Z planes, yet measure refused it as '4 values per pixel, shape (2, 10, 12, 4)'."""
    raw = tmp_path / "raw.tif"
    tifffile.imwrite(raw, _stack()[:, 1:5])
    assert main(["measure", str(raw), "-o", str(tmp_path / "a.csv")]) == 0
    assert "over 2 frames of 4 Z planes" in capsys.readouterr().out
    assert _row(_rows(tmp_path / "a.csv"), 0, 5)["volume_px"] == "24"


def test_overlay_still_refuses_tzyx_labels_without_z(tmp_path, capsys):
    labels = _imagej(tmp_path / "labels.tif", _stack(), spacing=2.0)
    video = _imagej(tmp_path / "video.tif", np.zeros((2, 6, 10, 12), np.uint16))
    assert main(["overlay", video, labels, "-o", str(tmp_path / "o.gif")]) == 2
    assert "--z N" in capsys.readouterr().err and not (tmp_path / "o.gif").exists()
    raw = tmp_path / "raw.tif"
    tifffile.imwrite(raw, _stack())
    assert main(["overlay", video, str(raw), "-o", str(tmp_path / "o.gif"), "--z", "1"]) == 0
    assert main(["overlay", video, str(raw), "-o", str(tmp_path / "p.gif")]) == 2
    assert "give the plane with --z N" in capsys.readouterr().err


def test_help_names_both_label_shapes(capsys):
    with pytest.raises(SystemExit):
        main(["measure", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(T, Y, X) or (T, Z, Y, X)" in text and "--z-step" in text
