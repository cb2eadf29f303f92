"""The per-frame measurements of `napari_vos.object_table` (all objects of a frame at once) against
skimage's ``regionprops_table``, one object at a time, which measured them before: on random label
frames and stacks (blobs that overlap and touch, one-pixel and line objects, objects on the edges,
with holes, in several pieces, large, negative and bool ids) with and without intensity images of
every kind. The values are skimage's by construction (the same integer counts, the same NumPy calls
where the order of a float sum matters), so every column must be equal bit for bit."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage
from skimage.draw import disk, ellipse, line, polygon
from skimage.measure import perimeter, regionprops, regionprops_table
from skimage.morphology import convex_hull_image

from napari_vos import object_table
from napari_vos.object_table import _SHAPE_PROPERTIES, compact_ids, measure_objects


# The measurements as they were taken before: regionprops_table with these extra properties.
def _pieces(mask):
    return int(ndimage.label(mask, structure=np.ones((3, 3), bool))[1])


def _quiet(function, values):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return function(values, axis=0)


def _intensity_mean(mask, intensity):
    return _quiet(np.nanmean, intensity[mask])


def _intensity_min(mask, intensity):
    return _quiet(np.nanmin, intensity[mask])


def _intensity_max(mask, intensity):
    return _quiet(np.nanmax, intensity[mask])


def _intensity_sum(mask, intensity):
    return np.nansum(intensity[mask], axis=0)


def _regionprops_rows(labels, intensity):
    extra = (_pieces, *((_intensity_mean, _intensity_min, _intensity_max, _intensity_sum)
                        if intensity is not None else ()))
    return regionprops_table(labels, intensity_image=intensity, properties=_SHAPE_PROPERTIES, extra_properties=extra)


def _assert_same(fast: dict, slow: dict) -> None:
    assert set(fast) == set(slow)
    for key in slow:
        a, b = np.asarray(fast[key]), np.asarray(slow[key])
        assert a.shape == b.shape, key
        if b.dtype.kind in "iub":
            assert a.dtype.kind in "iub", key
            np.testing.assert_array_equal(a, b, err_msg=key)
        else:  # bit for bit: no tolerance (NaN where skimage's is NaN)
            np.testing.assert_array_equal(a.astype(np.float64), b.astype(np.float64), err_msg=key, strict=True)


# Random frames of every kind.
def _blobs(rng, shape, count, ids=None):
    """Disks, ellipses, rectangles and polygons of random ids, later ones over earlier ones (so
    touching, cut into pieces, with holes), some out over the frame's edges."""
    frame = np.zeros(shape, np.int64)
    ids = ids if ids is not None else rng.integers(1, 2 * count + 2, count)
    for i in ids:
        kind = rng.integers(5)
        r, c = rng.integers(-5, shape[0] + 5), rng.integers(-5, shape[1] + 5)
        if kind == 0:
            rr, cc = disk((r, c), rng.uniform(0.5, 12), shape=shape)
        elif kind == 1:
            rr, cc = ellipse(r, c, rng.uniform(0.5, 15), rng.uniform(0.5, 6), shape=shape,
                             rotation=rng.uniform(0, np.pi))
        elif kind == 2:
            h, w = rng.integers(1, 20, 2)
            rr, cc = np.mgrid[min(max(r, 0), shape[0]):min(max(r + h, 0), shape[0]),
                              min(max(c, 0), shape[1]):min(max(c + w, 0), shape[1])].reshape(2, -1)
        elif kind == 3:
            rr, cc = polygon(rng.integers(-3, shape[0] + 3, 5), rng.integers(-3, shape[1] + 3, 5), shape=shape)
        else:
            rr, cc = line(*np.clip([r, c, r + rng.integers(-25, 25), c + rng.integers(-25, 25)], 0,
                                   [shape[0] - 1, shape[1] - 1, shape[0] - 1, shape[1] - 1]))
        frame[rr, cc] = i
    if rng.random() < 0.5:  # holes
        frame[rng.random(shape) < 0.05] = 0
    return frame


def _sparse(rng, shape):
    """Single pixels, short runs and diagonal specks: objects of one pixel, of pixels touching by a corner only."""
    frame = np.where(rng.random(shape) < rng.uniform(0.05, 0.6), rng.integers(1, 6, shape), 0)
    return frame


def _lines(shape):
    """One-pixel lines in every direction, along every edge, and one-pixel objects in the corners."""
    frame = np.zeros(shape, np.int64)
    frame[0, :] = 1
    frame[-1, 3:] = 2
    frame[2:, 0] = 3
    frame[1:-1, -1] = 4
    rr, cc = line(2, 2, shape[0] - 3, shape[1] - 3)
    frame[rr, cc] = 5
    rr, cc = line(shape[0] - 3, 2, 2, min(shape[1] - 3, 9))
    frame[rr, cc] = 6
    frame[shape[0] // 2, 3:-3] = 7
    frame[3:-3, shape[1] // 2] = 8
    frame[0, 0] = 9
    frame[-1, -1] = 10
    frame[-1, 0] = 11
    return frame


def _frames(seed, count=12):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        shape = tuple(int(n) for n in rng.integers(1, 70, 2))
        kind = rng.integers(3)
        if kind == 0:
            yield _blobs(rng, shape, int(rng.integers(1, 25)))
        elif kind == 1:
            yield _sparse(rng, shape)
        else:
            yield _lines((max(shape[0], 8), max(shape[1], 8)))


def _image(rng, shape, kind):
    if kind == "uint8":
        return rng.integers(0, 256, shape).astype(np.uint8)
    if kind == "uint16":
        return rng.integers(0, 65536, shape).astype(np.uint16)
    if kind == "int16":
        return rng.integers(-32768, 32768, shape).astype(np.int16)
    if kind == "uint32":
        return rng.integers(0, 2 ** 32, shape, dtype=np.uint64).astype(np.uint32)
    if kind == "int64 huge":  # sums beyond 2**53: each object's own NumPy sums
        return rng.integers(-2 ** 62, 2 ** 62, shape, dtype=np.int64)
    if kind == "bool":
        return rng.random(shape) < 0.5
    if kind == "float32 nan":
        image = rng.normal(100, 30, shape).astype(np.float32)
        image[rng.random(shape) < 0.2] = np.nan
        return image
    if kind == "float64":
        return rng.normal(0, 1e3, shape)
    if kind == "rgb":
        return rng.integers(0, 256, (*shape, 3)).astype(np.uint8)
    if kind == "one channel":
        return rng.integers(0, 4096, (*shape, 1)).astype(np.uint16)
    if kind == "float channels":
        image = rng.random((*shape, 2)).astype(np.float32)
        image[rng.random(shape) < 0.3, 1] = np.nan
        return image
    raise AssertionError(kind)


_IMAGES = ("uint8", "uint16", "int16", "uint32", "int64 huge", "bool", "float32 nan", "float64", "rgb", "one channel",
           "float channels")


@pytest.mark.parametrize("seed", range(6))
def test_each_frames_shapes_are_regionprops_own(seed):
    for frame in _frames(seed):
        compact, _ = compact_ids(frame)
        _assert_same(object_table._measure_frame(compact, None), _regionprops_rows(compact, None))


@pytest.mark.parametrize("kind", _IMAGES)
def test_each_frames_intensities_are_those_of_each_objects_pixels(kind):
    rng = np.random.default_rng(len(kind))
    for frame in _frames(100 + len(kind), count=6):
        compact, _ = compact_ids(frame)
        image = _image(rng, frame.shape, kind)
        _assert_same(object_table._measure_frame(compact, image), _regionprops_rows(compact, image))


def test_an_empty_frame_has_every_column_and_no_row():
    for image in (None, np.zeros((6, 7), np.uint16), np.zeros((6, 7, 3), np.float32)):
        fast = object_table._measure_frame(np.zeros((6, 7), np.int32), image)
        keys = {"label", "area", "centroid-0", "centroid-1", "bbox-0", "bbox-1", "bbox-2", "bbox-3", "perimeter",
                "eccentricity", "solidity", "_pieces"}
        if image is not None:
            channels = [""] if image.ndim == 2 else ["-0", "-1", "-2"]
            keys |= {f"_intensity_{what}{c}" for what in ("mean", "min", "max", "sum") for c in channels}
        assert set(fast) == keys and all(len(v) == 0 for v in fast.values())


def test_the_convex_area_and_perimeter_are_skimages_for_large_and_ragged_objects():
    """Objects of hundreds of rows, ragged sides (many points off the hull) and scattered pixels."""
    rng = np.random.default_rng(7)
    frames = [(rng.random((300, 200)) < 0.002).astype(np.uint8)]  # one object of scattered pixels
    ragged = np.zeros((400, 300), np.int32)
    for r in range(400):
        a, b = sorted(rng.integers(0, 300, 2))
        ragged[r, a:b + 1] = 1 + (r % 3 == 0)
    frames.append(ragged)
    yy, xx = np.mgrid[:257, :311]
    frames.append(((yy - 128) ** 2 / 120.0 ** 2 + (xx - 150) ** 2 / 149.0 ** 2 <= 1).astype(np.int16))
    star = np.zeros((201, 201), np.uint16)
    angles, radii = np.arange(10) * np.pi / 5, np.where(np.arange(10) % 2, 30.0, 100.0)
    rr, cc = polygon(100 + radii * np.sin(angles), 100 + radii * np.cos(angles), star.shape)
    star[rr, cc] = 3
    frames.append(star)
    for frame in frames:
        fast = object_table._measure_frame(frame, None)
        for i, region in enumerate(regionprops(frame)):
            hull = int(convex_hull_image(region.image).sum())
            assert fast["solidity"][i] == region.area / hull
            assert fast["perimeter"][i] == perimeter(region.image, 4)
        _assert_same(fast, _regionprops_rows(frame, None))


def _reference_measure(monkeypatch, labels, image=None, **kwargs):
    """measure_objects with each frame measured by regionprops_table, as before."""
    with monkeypatch.context() as patch:
        patch.setattr(object_table, "_measure_frame", _regionprops_rows)
        return measure_objects(labels, image, **kwargs)


def _assert_same_table(fast, slow):
    assert fast.names == slow.names
    for name in slow.names:
        assert fast.columns[name].dtype == slow.columns[name].dtype, name
        np.testing.assert_array_equal(fast.columns[name], slow.columns[name], err_msg=name, strict=True)


@pytest.mark.parametrize("ids", ["small", "large", "negative", "uint64", "bool"])
def test_stacks_and_single_frames_of_any_ids_give_the_tables_regionprops_gave(ids, monkeypatch):
    from napari_vos.data.calibration import Calibration

    rng = np.random.default_rng(["small", "large", "negative", "uint64", "bool"].index(ids))
    stack = np.stack([_blobs(rng, (48, 57), 15) for _ in range(5)])
    if ids == "large":
        stack = np.where(stack > 0, stack * 2 ** 40 + 7, 0)
    elif ids == "negative":
        stack = np.where(stack % 2 == 1, -stack, stack)
    elif ids == "uint64":
        stack = np.where(stack > 0, np.uint64(2 ** 64 - 100) + stack.astype(np.uint64), np.uint64(0))
    elif ids == "bool":
        stack = stack % 3 == 1
    image = rng.integers(0, 65536, stack.shape).astype(np.uint16)
    calibration = Calibration(pixel_size=(0.5, 0.5), unit="µm", frame_interval=2.0, time_unit="min")
    for labels, video in ((stack, image), (stack, None), (stack[2], image[2]), (stack[2], None)):
        _assert_same_table(measure_objects(labels, video, calibration=calibration),
                           _reference_measure(monkeypatch, labels, video, calibration=calibration))


def test_the_synthetic_cells_stack_gives_the_table_regionprops_gave(monkeypatch):
    from napari_vos.data.synthetic_cells import cell_video

    video = cell_video(4, (128, 128), n_cells=12, seed=3, division_rate=0.2)
    labels, frames = np.asarray(video.labels), np.asarray(video.frames)
    _assert_same_table(measure_objects(labels, frames), _reference_measure(monkeypatch, labels, frames))
