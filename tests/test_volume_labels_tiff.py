"""(T, Z, Y, X) labels in the napari-vos labels TIFF: an ImageJ hyperstack of frames of Z slices with the
layer's pixel size, frame interval and Z step (ImageJ's ``spacing``) and the run's record, opened again
as the layer it was (shape, scale, units, placement, record), also where a frame or plane axis of one
was left out of the file."""
from __future__ import annotations

import numpy as np
import pytest
from napari.components import ViewerModel

from _menu import said
from test_widget_z_planes import SCALE, TRANSLATE, T, X, Y, Z, _model_viewer, _volume

UNITS = ("s", "µm", "µm", "µm")


def _cubes(shape: tuple[int, int], ids: tuple[int, ...] = (1, 2)) -> np.ndarray:
    """(T, Z, 12, 16) labels: object k a 2 x 3 x 3 block at its own place on every frame and plane pair."""
    labels = np.zeros((*shape, 12, 16), np.int32)
    for k, i in enumerate(ids):
        labels[:, k % shape[1]:k % shape[1] + 1, 2 + 4 * k:5 + 4 * k, 3:6] = i
    return labels


def test_a_layer_scale_of_four_axes_gives_the_z_step():
    from napari_vos.data.calibration import Calibration, calibration_from_scale, storable_calibration

    found = calibration_from_scale((5.0, 2.0, 0.5, 0.25), UNITS)
    assert (found.pixel_size, found.unit, found.frame_interval, found.time_unit) == ((0.5, 0.25), "µm", 5.0, "s")
    assert (found.z_size, found.z_unit) == (2.0, "µm")
    only_z = calibration_from_scale((1.0, 3.0, 1.0, 1.0))  # a Z step alone has a pixel of 1 beside it
    assert (only_z.pixel_size, only_z.z_size, only_z.frame_interval) == ((1.0, 1.0), 3.0, None)
    assert calibration_from_scale((1.0, 1.0, 1.0, 1.0)) == Calibration() and calibration_from_scale(
        (1.0, 1.0, 1.0, 1.0)).z_size is None
    # ImageJ's spacing is in the pixel size's unit: a metric Z step is converted, a Z step in pixels is not kept
    mixed = storable_calibration(Calibration((0.5, 0.5), "µm", z_size=500.0, z_unit="nm"), imagej=True, volume=True)
    assert (mixed.z_size, mixed.z_unit) == (pytest.approx(0.5), "µm")
    in_pixels = Calibration((0.5, 0.5), "µm", z_size=2.0, z_unit=None)
    assert storable_calibration(in_pixels, imagej=True, volume=True).z_size is None
    stepped = Calibration((0.5, 0.5), "µm", z_size=2.0, z_unit="µm")
    assert storable_calibration(stepped, imagej=True, volume=True).z_size == 2.0
    # none in a baseline TIFF, nor in a (T, Y, X) file (the plane of `propagate --z`)
    assert storable_calibration(stepped, imagej=False, volume=True).z_size is None
    assert storable_calibration(stepped, imagej=True).z_size is None
    # Å-scale pixels given in metres (beyond TIFF's rationals) are stored in Å, the Z step with them
    metres = storable_calibration(Calibration((2e-10, 2e-10), "m", z_size=4e-10, z_unit="m"), imagej=True, volume=True)
    assert metres.unit == "Å" and metres.pixel_size == pytest.approx((2, 2)) and metres.z_size == pytest.approx(4)


def test_a_volume_stack_is_written_as_frames_of_z_slices_with_its_z_step(tmp_path):
    import tifffile

    from napari_vos.data.calibration import calibration_from_scale, read_tiff_calibration
    from napari_vos.data.writers import write_tiff_labels

    labels = _cubes((3, 4))
    path = write_tiff_labels(tmp_path / "v.tif", labels, calibration=calibration_from_scale((5.0, 2.0, 0.5, 0.5), UNITS),
                             provenance={"method": "flow"})
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej and tif.series[0].axes == "TZYX" and len(tif.pages) == 12
        meta = tif.imagej_metadata
        assert (meta["frames"], meta["slices"], meta["spacing"], meta["finterval"]) == (3, 4, 2.0, 5.0)
        assert np.array_equal(tif.asarray(), labels) and tif.asarray().dtype == np.uint16
    back = read_tiff_calibration(path)
    assert (back.pixel_size, back.z_size, back.z_unit, back.frame_interval) == ((0.5, 0.5), 2.0, "µm", 5.0)
    big = labels * 40000  # ids beyond uint16: a baseline TIFF, which keeps the shape but not the Z step
    path = write_tiff_labels(tmp_path / "big.tif", big, calibration=calibration_from_scale((5.0, 2.0, 0.5, 0.5), UNITS))
    assert np.array_equal(tifffile.imread(path), big) and tifffile.imread(path).dtype == np.uint32
    with pytest.raises(ValueError, match=r"\(T, Y, X\) or \(T, Z, Y, X\), got shape \(2, 1, 3, 4, 5\)"):
        write_tiff_labels(tmp_path / "five.tif", np.zeros((2, 1, 3, 4, 5), np.uint16))
    assert not (tmp_path / "five.tif").exists()


@pytest.mark.parametrize("frames_planes", [(3, 4), (1, 4), (3, 1), (1, 1)])
def test_a_volume_labels_layer_is_saved_and_opens_again_as_it_was(tmp_path, frames_planes):
    """An axis of one frame or one plane, which ImageJ leaves out of the file, comes back."""
    import tifffile

    from napari_vos.console import open_labels_layer, save_labels_layer

    viewer = ViewerModel()
    labels = _cubes(frames_planes)
    layer = viewer.add_labels(labels, name="cells", scale=(5.0, 2.0, 0.5, 0.5), units=UNITS,
                              translate=(0.0, 4.0, 1.0, 2.0), axis_labels=("t", "z", "y", "x"))
    path = save_labels_layer(layer, tmp_path / "cells")  # no extension: .tif added
    assert path.name == "cells.tif" and tifffile.imread(path).size == labels.size
    again = open_labels_layer(viewer, path, name="again")
    assert again.data.shape == labels.shape and np.array_equal(again.data, labels)
    assert tuple(again.scale) == pytest.approx((5.0, 2.0, 0.5, 0.5))
    assert tuple(again.translate) == pytest.approx((0.0, 4.0, 1.0, 2.0))
    assert [str(u) for u in again.units] == ["second", "micrometer", "micrometer", "micrometer"]
    assert tuple(again.axis_labels) == ("t", "z", "y", "x")
    assert again.metadata == {}  # a hand-painted layer's placement is no run's record


def test_an_output_of_several_planes_is_saved_whole_with_its_record(tmp_path):
    """The output of a run through every painted plane (no single plane to keep) is written whole; opened
    again it is that output: its planes, placement and the record of each plane's run."""
    from napari_vos.console import open_labels_layer, propagate_layers, save_labels_layer

    video, truth = _volume()
    labels = np.zeros(truth.shape, np.uint16)
    labels[0, 1], labels[2, 3] = truth[0, 1], truth[2, 3] * 2
    viewer = _model_viewer(video, labels)
    out = propagate_layers(viewer, "volume", "painted", method="flow", plane="painted").labels
    assert out.data[:, 1].any() and out.data[:, 3].any()
    path = save_labels_layer(out, tmp_path / "planes.tif")
    again = open_labels_layer(viewer, path)
    assert again.data.shape == (T, Z, Y, X) and np.array_equal(again.data, out.data)
    assert tuple(again.scale) == pytest.approx(SCALE) and tuple(again.translate) == pytest.approx(TRANSLATE)
    record = again.metadata["napari_vos"]
    assert record["z_planes_run"] == [1, 3] and record["method"] == "flow" and record["complete"] is True
    assert set(record["plane_runs"]) == {"1", "3"} and "layer_ndim" not in record


def test_a_rotated_plane_output_is_saved_whole_with_its_rotation(tmp_path):
    """The plane alone would lose a rotation of the (T, Z, Y, X) layer; saved whole, it keeps it."""
    from napari_vos.console import open_labels_layer, propagate_layers, save_labels_layer

    video, truth = _volume()
    labels = np.zeros(truth.shape, np.uint16)
    labels[0, 2] = truth[0, 2]
    viewer = _model_viewer(video, labels)
    out = propagate_layers(viewer, "volume", "painted", method="flow", plane=2).labels
    turn = np.eye(4)
    turn[2:, 2:] = [[0.0, -1.0], [1.0, 0.0]]
    out.rotate = turn
    path = save_labels_layer(out, tmp_path / "turned.tif")
    again = open_labels_layer(viewer, path)
    assert again.data.shape == (T, Z, Y, X) and np.array_equal(again.data, out.data)
    np.testing.assert_allclose(again.rotate, turn, atol=1e-9)
    assert again.metadata["napari_vos"]["z_plane"] == 2


def test_files_that_hold_no_volume_labels_are_refused_by_what_they_hold(tmp_path):
    import tifffile

    from napari_vos.console import open_labels_layer

    viewer = ViewerModel()
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((3, 8, 8, 3), np.uint8), photometric="rgb")
    tifffile.imwrite(tmp_path / "channels.tif", np.zeros((3, 2, 8, 8), np.uint16), imagej=True,
                     metadata={"axes": "TCYX"})
    tifffile.imwrite(tmp_path / "float.tif", np.zeros((3, 2, 8, 8), np.float32), imagej=True,
                     metadata={"axes": "TZYX"})
    tifffile.imwrite(tmp_path / "five.tif", np.zeros((2, 2, 2, 8, 8), np.uint16))
    for name, held in (("rgb", r"uint8 data with colour samples of shape \(3, 8, 8, 3\)"),
                       ("channels", r"uint16 data with channels of shape \(3, 2, 8, 8\)"),
                       ("float", "float32 data of shape"), ("five", r"uint16 data of shape \(2, 2, 2, 8, 8\)")):
        with pytest.raises(ValueError, match=held + r".*not integer \(T, Z, Y, X\), \(T, Y, X\) or \(Y, X\) labels"):
            open_labels_layer(viewer, tmp_path / f"{name}.tif")
    assert len(viewer.layers) == 0
    # (2, 3, Y, X) written without photometric: tifffile's planar RGB, taken for the Z planes it is
    tifffile.imwrite(tmp_path / "plain.tif", _cubes((2, 3)).astype(np.uint16))
    assert open_labels_layer(viewer, tmp_path / "plain.tif").data.shape == (2, 3, 12, 16)
    # a 4-D integer TIFF from elsewhere (Fiji's T and Z) opens at its Z step
    tifffile.imwrite(tmp_path / "fiji.tif", _cubes((2, 3)).astype(np.uint16), imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "TZYX", "spacing": 1.5, "unit": "um"})
    layer = open_labels_layer(viewer, tmp_path / "fiji.tif")
    assert layer.data.shape == (2, 3, 12, 16) and tuple(layer.scale) == pytest.approx((1.0, 1.5, 0.5, 0.5))


def test_the_napari_save_type_writes_a_volume_and_the_menu_opens_it(make_napari_viewer, monkeypatch, tmp_path):
    """napari's save with the napari-vos type (the save dialog's choice), then Open labels TIFF... in the
    Layers menu: the volume comes back at its Z step, and the menu says it."""
    import npe2
    from qtpy.QtWidgets import QFileDialog

    from test_io_menu import _execute

    npe2.PluginManager.instance().discover()
    viewer = make_napari_viewer()
    layer = viewer.add_labels(_cubes((3, 4)), name="cells", scale=(5.0, 2.0, 0.5, 0.5), units=UNITS)
    layer.save(str(tmp_path / "cells.tif"), plugin="napari-vos")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *args: (str(tmp_path / "cells.tif"), "")))
    _execute("napari-vos.open_labels")
    opened = viewer.layers[-1]
    assert opened.name == "cells [1]"  # napari numbers a second layer of one name
    assert opened is not layer and np.array_equal(opened.data, layer.data)
    assert tuple(opened.scale) == pytest.approx((5.0, 2.0, 0.5, 0.5))
    assert any("(3, 4, 12, 16) labels at pixel size 0.5 micrometer, Z step 2 micrometer" in text
               for text in said("info")), said("info")


@pytest.mark.parametrize("frames_planes", [(1, 4), (3, 1)])
def test_the_commands_read_a_saved_volume_of_one_frame_or_plane_as_volumes(tmp_path, capsys, frames_planes):
    """The file of a (1, Z, Y, X) layer holds ImageJ slices only ("ZYX"): `measure` and `ctc` took its planes
    for frames; its record puts the frame axis back, as `open_labels_layer` does."""
    import tifffile

    from napari_vos.cli import main
    from napari_vos.console import save_labels_layer

    labels = _cubes(frames_planes)
    layer = ViewerModel().add_labels(labels, name="cells", scale=(5.0, 2.0, 0.5, 0.5), units=UNITS)
    path = str(save_labels_layer(layer, tmp_path / "cells.tif"))
    frames, planes = frames_planes
    assert main(["measure", path, "-o", str(tmp_path / "cells.csv")]) == 0
    assert f"over {frames} frames of {planes} Z planes (measured in 3D, Z step 2 µm)" in capsys.readouterr().out
    rows = (tmp_path / "cells.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * frames and "volume_px" in rows[0]
    assert main(["ctc", path, "-o", str(tmp_path / "01_RES")]) == 0
    assert tifffile.imread(tmp_path / "01_RES" / "mask000.tif").size == planes * 12 * 16
    assert len(list((tmp_path / "01_RES").glob("mask*.tif"))) == frames
