"""`console.open_image_layers` on a 3D + time TIFF (T, Z, Y, X[, C]) without ``z``: before, it opened one Z
plane (``z=N``) or refused the file; now it opens the whole stack as (T, Z, Y, X) layers at the file's Z step,
read lazily (one dask chunk a (t, z) plane, read from the file when napari shows it), for Propagate to run
through the plane under the Z slider. ``z=N`` still opens one plane as (T, Y, X)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile
from _open_files import closes_with_its_last_layer

T, Z, Y, X = 4, 5, 24, 32


def _viewer():
    from napari.components import ViewerModel

    return ViewerModel()


def _volume(t: int = T, z: int = Z) -> np.ndarray:
    """A (T, Z, Y, X) uint16 stack whose every plane holds its own (t, z) in its first pixels."""
    video = np.random.default_rng(0).integers(0, 1000, (t, z, Y, X), dtype=np.uint16)
    for i in range(t):
        for j in range(z):
            video[i, j, 0, :2] = (i, j)
    return video


def _reads(monkeypatch) -> list:
    """Record every plane the TIFF readers read (the index each read asks the file for)."""
    from napari_vos.data import readers

    seen: list = []
    real = readers._read_plane

    def counted(arr, axes, at, path):
        seen.append(dict(at))
        return real(arr, axes, at, path)

    monkeypatch.setattr(readers, "_read_plane", counted)
    return seen


def _units(layer) -> list[str]:
    return [str(u) for u in getattr(layer, "units", ())]


def test_an_ome_tzyx_stack_opens_whole_at_its_z_step_one_plane_a_chunk(tmp_path, monkeypatch):
    import dask.array as da

    from napari_vos.console import open_image_layers

    video = _volume()
    path = tmp_path / "cells.ome.tif"
    tifffile.imwrite(path, video, ome=True, metadata={"axes": "TZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5,
                                                       "PhysicalSizeZ": 2.0, "TimeIncrement": 30.0})
    reads = _reads(monkeypatch)
    (layer,) = open_image_layers(_viewer(), path)
    assert layer.name == "cells" and not layer.rgb and layer.data.shape == (T, Z, Y, X)
    assert isinstance(layer.data, da.Array)
    assert layer.data.chunks == ((1,) * T, (1,) * Z, (Y,), (X,))  # one chunk a (t, z) plane
    np.testing.assert_allclose(layer.scale, (30.0, 2.0, 0.5, 0.5))
    if _units(layer):  # napari >= 0.6
        assert _units(layer) == ["second", "micrometer", "micrometer", "micrometer"]
    reads.clear()
    np.testing.assert_array_equal(np.asarray(layer.data[2, 3]), video[2, 3])
    assert reads == [{"T": 2, "Z": 3}]  # that plane only, not the volume or the frame
    np.testing.assert_array_equal(np.asarray(layer.data), video)


def test_an_imagej_tzcyx_hyperstack_opens_a_volume_layer_per_channel_at_its_spacing(tmp_path):
    from napari_vos.console import open_image_layers

    video = np.stack([_volume(), _volume()[:, :, ::-1]], axis=2)  # (T, Z, C, Y, X)
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, video, imagej=True, resolution=(1 / 0.65, 1 / 0.65),
                     metadata={"axes": "TZCYX", "unit": "um", "spacing": 2.5, "finterval": 60})
    layers = open_image_layers(_viewer(), path)
    assert [layer.name for layer in layers] == ["two ch0", "two ch1"]
    for c, layer in enumerate(layers):
        assert layer.data.shape == (T, Z, Y, X) and layer.data.chunks[:2] == ((1,) * T, (1,) * Z)
        np.testing.assert_allclose(layer.scale, (60, 2.5, 0.65, 0.65))
        if _units(layer):
            assert _units(layer) == ["second", "micrometer", "micrometer", "micrometer"]
        np.testing.assert_array_equal(np.asarray(layer.data[3, 1]), video[3, 1, c])


def test_any_axis_order_colour_planes_and_no_calibration(tmp_path):
    from napari_vos.console import open_image_layers

    video = _volume()
    viewer = _viewer()
    tifffile.imwrite(tmp_path / "ztyx.ome.tif", video.transpose(1, 0, 2, 3).copy(), ome=True,
                     metadata={"axes": "ZTYX"})
    (layer,) = open_image_layers(viewer, tmp_path / "ztyx.ome.tif")
    assert layer.data.shape == (T, Z, Y, X)
    np.testing.assert_array_equal(np.asarray(layer.data), video)
    np.testing.assert_allclose(layer.scale, (1, 1, 1, 1))
    if _units(layer):
        assert _units(layer) == ["pixel"] * 4
    colour = np.random.default_rng(1).integers(0, 255, (T, Z, Y, X, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "colour.ome.tif", colour, ome=True, photometric="rgb", metadata={"axes": "TZYXS"})
    (layer,) = open_image_layers(viewer, tmp_path / "colour.ome.tif")
    assert layer.rgb and layer.data.shape == (T, Z, Y, X, 3)
    np.testing.assert_array_equal(np.asarray(layer.data[1, 4]), colour[1, 4])


def test_an_unnamed_t_z_y_x_array_opens_whole_and_z_still_opens_one_plane(tmp_path):
    """tifffile.imwrite(path, volume) names no axes ("QQYX"): before, refused without z."""
    from napari_vos.console import open_image_layers

    video = _volume()
    tifffile.imwrite(tmp_path / "plain.tif", video)
    viewer = _viewer()
    (whole,) = open_image_layers(viewer, tmp_path / "plain.tif")
    assert whole.data.shape == (T, Z, Y, X) and whole.data.chunks[1] == (1,) * Z
    np.testing.assert_array_equal(np.asarray(whole.data), video)
    (plane,) = open_image_layers(viewer, tmp_path / "plain.tif", z=3, name="plane 3")
    assert plane.data.shape == (T, Y, X) and plane.data.chunks[0] == (1,) * T
    np.testing.assert_array_equal(np.asarray(plane.data), video[:, 3])
    np.testing.assert_allclose(plane.scale, (1, 1, 1))
    # a named stack too, at its (T, Y, X) calibration
    tifffile.imwrite(tmp_path / "ij.tif", video, imagej=True, metadata={"axes": "TZYX", "spacing": 3.0})
    (plane,) = open_image_layers(viewer, tmp_path / "ij.tif", z=1)
    assert plane.data.shape == (T, Y, X)
    np.testing.assert_array_equal(np.asarray(plane.data[2]), video[2, 1])


def test_one_z_plane_kept_as_an_axis_opens_as_a_time_lapse(tmp_path):
    from napari_vos.console import open_image_layers

    video = _volume(z=1)
    viewer = _viewer()
    tifffile.imwrite(tmp_path / "one.ome.tif", video, ome=True, metadata={"axes": "TZYX", "PhysicalSizeZ": 4.0})
    tifffile.imwrite(tmp_path / "one.tif", video)  # unnamed (T, 1, Y, X)
    for name in ("one.ome.tif", "one.tif"):
        (layer,) = open_image_layers(viewer, tmp_path / name)
        assert layer.data.shape == (T, Y, X)
        np.testing.assert_array_equal(np.asarray(layer.data), video[:, 0])
        assert len(layer.scale) == 3


def test_a_z_stack_without_time_and_extra_axes_are_refused(tmp_path):
    from napari_vos.console import open_image_layers

    viewer = _viewer()
    tifffile.imwrite(tmp_path / "zyx.tif", _volume()[0], imagej=True, metadata={"axes": "ZYX"})
    with pytest.raises(ValueError, match="a Z stack of 5 planes with no time axis"):
        open_image_layers(viewer, tmp_path / "zyx.tif")
    with pytest.raises(ValueError, match="has no time axis to pick a Z plane from"):
        open_image_layers(viewer, tmp_path / "zyx.tif", z=1)
    tifffile.imwrite(tmp_path / "extra.ome.tif", np.zeros((2, 3, 4, Y, X), np.uint16), ome=True,
                     metadata={"axes": "TZAYX"})
    with pytest.raises(ValueError, match="only T, Z, Y, X and channels are supported"):
        open_image_layers(viewer, tmp_path / "extra.ome.tif")
    tifffile.imwrite(tmp_path / "tzyx.tif", _volume(), imagej=True, metadata={"axes": "TZYX"})
    with pytest.raises(ValueError, match="outside the stack's 5 planes"):
        open_image_layers(viewer, tmp_path / "tzyx.tif", z=9)
    assert len(viewer.layers) == 0


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files through /proc")
def test_the_volumes_file_is_closed_with_its_last_layer_and_reopened_if_read_again(tmp_path):
    from napari_vos.console import open_image_layers

    video = np.stack([_volume(), _volume()[:, ::-1]], axis=2)
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, video, imagej=True, metadata={"axes": "TZCYX"})
    viewer = _viewer()
    layers = open_image_layers(viewer, path)
    closes_with_its_last_layer(viewer, path, layers, (3, 4), video[3, 4, 1], (1, 2), video[1, 2, 0])


def test_propagate_runs_through_a_plane_of_a_volume_opened_so(tmp_path):
    """End to end: a (T, Z, Y, X) OME file opened whole, a disc painted on frame 0 of plane 2, propagated
    through that plane; the output has the image's shape and scale, that plane filled."""
    from napari_vos.console import open_image_layers, propagate_layers

    t_n, z_n, size = 5, 4, 48
    yy, xx = np.mgrid[:size, :size]
    video = np.full((t_n, z_n, size, size), 30, np.uint8)
    truth = np.zeros_like(video)
    for t in range(t_n):
        for z in range(z_n):
            disc = (yy - 24) ** 2 + (xx - 12 - 3 * t - 4 * z) ** 2 < 64
            video[t, z][disc], truth[t, z][disc] = 220, 1
    path = tmp_path / "volume.ome.tif"
    tifffile.imwrite(path, video, ome=True, metadata={"axes": "TZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5,
                                                       "PhysicalSizeZ": 2.0})
    viewer = _viewer()
    (image,) = open_image_layers(viewer, path)
    painted = np.zeros_like(truth)
    painted[0, 2] = truth[0, 2]
    viewer.add_labels(painted, name="painted", scale=image.scale)
    out = propagate_layers(viewer, image.name, "painted", method="flow", device="cpu", plane=2).labels
    assert out.data.shape == (t_n, z_n, size, size)
    np.testing.assert_allclose(out.scale, image.scale)
    got = np.asarray(out.data[t_n - 1, 2]) == 1
    iou = np.logical_and(got, truth[t_n - 1, 2]).sum() / np.logical_or(got, truth[t_n - 1, 2]).sum()
    assert iou > 0.7, iou
    assert not np.asarray(out.data[:, 1]).any()  # the other planes are left empty
