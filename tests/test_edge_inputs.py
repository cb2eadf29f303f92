"""Edge cases of one session's fixes: a cancel() made twice, an explicit max_side above the
enlargement budget, layer names with dots for the writer, 32-bit integers with an offset, and
tifffile-saved 4-D arrays read with a Z plane asked for or a unit axis."""
import threading
import warnings

import numpy as np
import pytest
import tifffile


def _session(method, video, lab, **kw):
    from napari_vos.session import Session
    s = Session(video, method=method, device="cpu", **kw)
    s.annotate(0, lab)
    return s


def test_second_cancel_still_lets_the_next_run_clear_the_callers_event():
    v = np.random.default_rng(0).integers(0, 255, (4, 32, 32), dtype=np.uint8)
    lab = np.zeros((32, 32), np.uint8); lab[8:20, 8:20] = 1
    ev = threading.Event()
    s = _session("osvos_at", v, lab, cancel_event=ev)
    s.cancel(); s.cancel()
    s.propagate("forward")
    assert not ev.is_set()


@pytest.mark.real_working_size
def test_an_explicit_max_side_is_not_told_it_caps_nothing():
    v = np.zeros((3, 512, 512), np.uint8); v[:, 100:103, 100:103] = 200
    lab = np.zeros((512, 512), np.uint8); lab[100:103, 100:103] = 1
    s = _session("rgmp", v, lab, max_side=8192)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.propagate("forward")  # refused today: "max_side=8192 caps nothing"
    assert s.work_size == (8192, 8192)


@pytest.mark.parametrize("name", ["run 1.5 cells", "cells.ome segmented (cosnet)"])
def test_writer_takes_a_layer_name_with_a_dot(tmp_path, name):
    from napari_vos._widgets.labels_writer import write_labels_tiff
    lab = np.zeros((2, 8, 8), np.uint8); lab[:, 2:4, 2:4] = 1
    written = write_labels_tiff(str(tmp_path / name), lab, {"name": name})
    assert written == [str(tmp_path / f"{name}.tif")]


@pytest.mark.parametrize("dtype,base", [(np.uint32, 2**31), (np.int32, 2**30)])
def test_32bit_ints_with_an_offset_keep_their_range(dtype, base):
    from napari_vos.data.frames import FrameSource
    v = (base + np.random.default_rng(0).integers(0, 50, (10, 32, 32))).astype(dtype)
    frame = FrameSource(v)[0][..., 0]
    assert 0.3 < frame.mean() < 0.7  # today 0.98: the range collapsed to flat in float32


def test_tiff_channels_last_with_a_z_plane_asked_is_refused(tmp_path):
    from napari_vos.data.readers import open_tiff_frames
    p = tmp_path / "tyxc.tif"; tifffile.imwrite(p, np.zeros((5, 16, 12, 2), np.uint16))
    with pytest.raises(ValueError):
        open_tiff_frames(p, z=1)[0]  # today: frames of (12, 2), the X and C axes, taken as Y and X


@pytest.mark.parametrize("shape", [(5, 16, 12, 1), (5, 1, 16, 12)])
def test_tiff_with_a_unit_axis_reads_as_t_y_x(tmp_path, shape):
    from napari_vos.data.readers import open_tiff_frames
    a = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
    p = tmp_path / "unit.tif"; tifffile.imwrite(p, a)
    f = open_tiff_frames(p)
    assert f[1].shape == (16, 12)
    np.testing.assert_array_equal(f[1], a[1].reshape(16, 12))
