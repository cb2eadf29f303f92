"""Per-object measurements of a propagated labels stack: one row per object and frame, one per track.

What a microscopist does next with the labels: how large each cell is over time, where it goes and
how fast, how bright it is. Each frame is measured in pixels as skimage's ``regionprops_table``
measures it (its values, all objects of a frame at once: see `_measure_frame`); this module adds
what skimage does not know: the frame and its time, the stack's pixel size (anisotropic
pixels included: skimage's calibrated perimeter takes square pixels only), whether an object is in
several pieces (a division kept under one id), whether it touches the frame's edge, and a summary
per object id across frames (the ids are the tracks: propagation keeps them). (T, Z, Y, X) labels
are measured in 3D, a (Z, Y, X) volume per frame (`measure_volumes`: skimage's voxel counts,
centroids and boxes, the volume in the Z step x pixel size), with no 2-D shape measures.
"""
from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_vos.data.calibration import SECONDS_PER_TIME_UNIT, Calibration, ascii_unit
from napari_vos.data.hidden_files import hidden_beside

__all__ = ["ObjectTable", "measure_objects", "measure_volumes", "track_summary", "tracks_path", "write_tables",
           "compact_ids", "unit_suffix", "time_suffix"]

#: the skimage regionprops_table properties of the per-frame table, in pixels (measured here as skimage
#: measures them, all objects of a frame at once: see _measure_frame)
_SHAPE_PROPERTIES = ("label", "area", "centroid", "bbox", "perimeter", "eccentricity", "solidity")


@dataclass
class ObjectTable:
    """Columns of equal length (name -> 1D array), in order: a CSV's or a data frame's columns."""

    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def rows(self) -> Iterator[dict[str, Any]]:
        """Each row as a dict of Python numbers."""
        for i in range(len(self)):
            yield {name: values[i].item() for name, values in self.columns.items()}

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` of the columns (pandas comes with napari; it is no dependency of the engine)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("to_pandas needs pandas (pip install pandas); the columns are in .columns as "
                              "NumPy arrays") from None
        return pandas.DataFrame(self.columns)

    def write_csv(self, path: str | Path) -> Path:
        """Write the table as a UTF-8 CSV with a header row (floats to 7 significant digits, a
        missing value empty), its folder made if need be; returns the path. It is written under a
        hidden name and renamed when whole, so a stopped or failed write leaves no half table (and
        an earlier one as it was)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = hidden_beside(path, "partial")
        try:
            with open(partial, "w", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                writer.writerow(self.names)
                for row in zip(*self.columns.values()):
                    writer.writerow([_cell(value) for value in row])
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return path


def tracks_path(objects: str | Path) -> Path:
    """Where the per-track table goes beside the per-object one: objects.csv -> objects.tracks.csv."""
    objects = Path(objects)
    return objects.with_name(f"{objects.stem}.tracks{objects.suffix}")


def write_tables(objects: ObjectTable, tracks: ObjectTable, path: str | Path,
                 tracks_at: str | Path | None = None) -> list[Path]:
    """Write the per-object table at ``path`` and the per-track one at ``tracks_at`` (default: beside
    it, `tracks_path`), both whole under hidden names first and then renamed together: a write
    stopped part way leaves neither a new table beside an old one (a rerun over earlier tables) nor
    half of one. Returns the two paths."""
    pairs = [(objects, Path(path)), (tracks, Path(tracks_at) if tracks_at is not None else tracks_path(path))]
    hidden = [(table, where, hidden_beside(where, "whole")) for table, where in pairs]
    try:
        for table, _, temporary in hidden:
            table.write_csv(temporary)
        for _, where, temporary in hidden:
            os.replace(temporary, where)
    finally:
        for _, _, temporary in hidden:
            temporary.unlink(missing_ok=True)
    return [where for _, where in pairs]


def _cell(value: Any) -> str:
    """A CSV cell: integers as they are, floats to 7 significant digits, yet always to the unit (a
    16-bit image's summed counts, 16764835, stay whole counts rather than 1.676484e+07), NaN as empty.
    A whole float keeps a ".0" (5.0, not 5), so that pandas and R read a float column as floats in
    every file, not as integers in the files where each value happens to be whole (a time of 0, 5, 10 min)."""
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    number = float(value)
    if math.isnan(number):
        return ""
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    whole_digits = int(math.log10(abs(number))) + 1 if abs(number) >= 1 else 0
    text = f"{number:.{max(7, whole_digits if number.is_integer() else whole_digits + 1)}g}"
    return f"{text}.0" if text.lstrip("-").isdigit() else text


def unit_suffix(unit: str | None) -> str:
    """A unit as a column name's suffix: µm -> um, Å -> angstrom, none (a scale without a unit) -> units."""
    if not unit:
        return "units"
    text = ascii_unit(unit.replace("Å", "angstrom"))
    return re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_") or "units"


#: the short name of each time unit's length (napari's "minute" and ImageJ's "min" make one column name)
_SHORT_TIME = {1.0: "s", 1e-3: "ms", 1e-6: "us", 1e-9: "ns", 60.0: "min", 3600.0: "h", 86400.0: "d"}


def time_suffix(unit: str | None) -> str:
    """A time unit as a column name's suffix: minute, minutes, min -> min; none -> units (a napari time
    axis scaled without a unit: its step is known, its unit not, so the columns do not say seconds)."""
    if not unit:
        return "units"
    seconds = SECONDS_PER_TIME_UNIT.get(unit.strip().lower())
    return _SHORT_TIME[seconds] if seconds is not None else unit_suffix(unit)


def _pixel_size(calibration: Calibration | None) -> tuple[float, float] | None:
    if calibration is None or calibration.pixel_size is None:
        return None
    return float(calibration.pixel_size[0]), float(calibration.pixel_size[1])


def _check_stack(labels: Any, image: Any) -> tuple[int, tuple[int, int], bool]:
    """(frames, (Y, X), one_frame) of a (T, Y, X) or (Y, X) integer labels stack, ``image`` checked against it."""
    shape = tuple(int(n) for n in np.shape(labels))
    if len(shape) not in (2, 3):
        raise ValueError(f"labels of shape {shape}: give (T, Y, X) or (T, Z, Y, X) labels, or one (Y, X) frame")
    if 0 in shape:
        raise ValueError(f"labels of shape {shape} hold no frames{' (or frames of no pixels)' if shape[0] else ''}: "
                         "there is nothing to measure; give the labels a propagation wrote")
    dtype = _label_dtype(labels)
    if dtype.kind not in "iub":
        raise ValueError(f"labels of type {dtype}: object ids are integers (a labels layer, or a napari-vos output), "
                         "not an image")
    one_frame = len(shape) == 2
    frames, size = (1, shape) if one_frame else (shape[0], shape[1:])
    if image is not None:
        image_shape = tuple(int(n) for n in np.shape(image))
        expected = size if one_frame else (frames, *size)
        if image_shape[:len(expected)] != expected or len(image_shape) > len(expected) + 1:
            raise ValueError(f"the image is {image_shape} but the labels are {shape}: the intensities are measured "
                             f"under the labels, so give the image they were propagated on ({expected} "
                             "frames of (Y, X), with channels last if it has them)")
    return frames, size, one_frame


def _label_dtype(labels: Any) -> np.dtype:
    """The labels' type, from its ``dtype`` where it has one (a dask or zarr stack: no frame read for it)."""
    dtype = getattr(labels, "dtype", None)
    return np.dtype(dtype if dtype is not None else np.asarray(labels[0]).dtype)


def _id_type(labels: Any) -> type:
    """The type of the label column: uint64 for uint64 labels (ids up to 2**64 - 1, which int64 would
    turn negative), int64 for the others (int64 ids may be negative). Either byte order: tifffile gives
    a big-endian TIFF's ids as '>u8', which is no np.uint64 to ``==``."""
    dtype = _label_dtype(labels)
    return np.uint64 if dtype.kind == "u" and dtype.itemsize == 8 else np.int64


def compact_ids(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The frame as skimage can measure it: where ids are negative, or so large that skimage's per-id
    bookkeeping (up to the largest id) would not fit, ids 1, 2... in their order with 0 kept as the
    background; with the ids those stand for (None: the frame unchanged)."""
    if frame.dtype == np.bool_:
        return frame.view(np.uint8), None
    low, high = (int(frame.min()), int(frame.max())) if frame.size else (0, 0)
    if low >= 0 and high <= 4 * frame.size + 1024:
        return frame, None
    values, inverse = np.unique(frame, return_inverse=True)
    inverse = inverse.reshape(frame.shape).astype(np.int64)
    zero = int(np.searchsorted(values, 0))
    if zero < len(values) and values[zero] == 0:  # ids below 0 move up one, 0 becomes the background
        return np.where(inverse < zero, inverse + 1, np.where(inverse == zero, 0, inverse)), np.delete(values, zero)
    return inverse + 1, values


# What each frame's table holds, under skimage's regionprops_table names (``label``, ``area``,
# ``centroid-0``...), measured here for all of a frame's objects at once: skimage's RegionProperties
# measure one object at a time in Python, with a convex hull image per object for the solidity; the
# values are skimage's own (see tests/test_object_table_speedup.py, which compares them with
# regionprops_table on random stacks):
# - area, centroid, bbox: pixel counts and sums of integer coordinates (exact in any order, as in skimage);
# - perimeter: skimage.measure.perimeter's rule (4-neighbourhood border pixels coded by their border
#   neighbours of the same object, a weight per code), the codes of all objects counted at once and
#   each object's histogram weighted with the very product skimage takes;
# - solidity: skimage's convex hull is that of the midpoints of the object's pixel edges, and its convex
#   image the pixel centres inside or on that polygon (grid_points_in_poly, exact for such coordinates);
#   here the same pixels are counted row by row from the hull's left and right chains, in integers;
# - eccentricity: skimage's own central moments of each object (skimage.measure.moments_central, as
#   RegionProperties calls it) and its inertia tensor, the eigenvalues of all objects in one call;
# - pieces: the 8-connected parts of each object, from one labelling of the frame's foreground (and of
#   each object's own image where objects touch);
# - intensities: of an integer image per-object sums, minima and maxima of all objects at once (exact
#   below 2**53, checked); of a float image (whose sums depend on their order) NumPy's nan-functions on
#   each object's pixels in skimage's order, one channel at a time, as the extra properties had them.
_SHAPE_KEYS = ("label", "area", "centroid-0", "centroid-1", "bbox-0", "bbox-1", "bbox-2", "bbox-3", "perimeter",
               "eccentricity", "solidity", "_pieces")
_INTENSITY_NAMES = ("mean", "min", "max", "sum")

#: skimage.measure.perimeter's weight of a border pixel's code (1 + 2 x its 4-neighbours and 10 x its
#: diagonal neighbours on the border of the same object); the other codes weigh 0
_PERIMETER_WEIGHTS = np.zeros(50, dtype=np.float64)
_PERIMETER_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1
_PERIMETER_WEIGHTS[[21, 33]] = math.sqrt(2)
_PERIMETER_WEIGHTS[[13, 23]] = (1 + math.sqrt(2)) / 2


def _quiet(function: Callable[..., Any], values: np.ndarray) -> Any:
    """``function`` over the pixels (axis 0: per channel) without NumPy's warning for an all-NaN object."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return function(values, axis=0)


def _empty_rows(intensity: np.ndarray | None) -> dict[str, np.ndarray]:
    """A frame without objects: every column, none long."""
    table = {key: np.zeros(0, np.int64 if key in ("label", "_pieces") or key.startswith("bbox") else np.float64)
             for key in _SHAPE_KEYS}
    for key in _intensity_keys(intensity):
        table[key] = np.zeros(0, np.float64)
    return table


def _intensity_keys(intensity: np.ndarray | None) -> list[str]:
    if intensity is None:
        return []
    channels = [""] if intensity.ndim == 2 else [f"-{c}" for c in range(intensity.shape[2])]
    return [f"_intensity_{what}{channel}" for what in _INTENSITY_NAMES for channel in channels]


def _frame_rows(frame: np.ndarray, intensity: np.ndarray | None, id_type: type = np.int64) -> dict[str, np.ndarray]:
    """skimage's measurements of one frame's objects, in pixels, with the pieces of each and (with an
    image) the intensities; the ids as ``id_type``, so that the frames' label columns join unchanged."""
    compact, ids = compact_ids(np.asarray(frame))
    table = _measure_frame(compact, intensity)
    if ids is not None:
        table["label"] = ids[np.asarray(table["label"], np.int64) - 1]
    table["label"] = np.asarray(table["label"]).astype(id_type)
    return table


def _measure_frame(labels: np.ndarray, intensity: np.ndarray | None) -> dict[str, np.ndarray]:
    """The columns regionprops_table gives for `_frame_rows` (see the notes above), of a frame of
    non-negative ids (`compact_ids`), objects in the order of their ids."""
    height, width = labels.shape
    flat = labels.ravel()
    # per-pixel indices in 32 bits where the padded frame's pixels fit (half the memory of int64: a fully
    # labelled 2048x2048 frame peaked at 306 MiB with int64 indices); products of them are taken in int64
    index = np.int32 if (height + 2) * (width + 2) < 2**31 else np.int64
    fg = np.flatnonzero(flat).astype(index, copy=False)
    if not len(fg):
        return _empty_rows(intensity)
    ids = flat[fg].astype(np.intp)
    present = np.flatnonzero(np.bincount(ids))
    n = len(present)
    dense = np.zeros(int(present[-1]) + 1, index)
    dense[present] = np.arange(n)
    region = dense[ids]  # each object pixel's object, 0..n-1
    del ids, dense
    rows, cols = np.divmod(fg, index(width))
    area = np.bincount(region, minlength=n)

    # the frame padded with background: each object pixel's neighbours by offset, none out of range
    wide = width + 2
    padded = np.zeros((height + 2, wide), labels.dtype)
    padded[1:-1, 1:-1] = labels
    pflat = padded.ravel()
    at = fg + 2 * rows + wide + 1
    own = flat[fg]
    starts, ends = pflat[at - 1] != own, pflat[at + 1] != own  # the first and last pixel of a run in a row
    border = starts | ends | (pflat[at - wide] != own) | (pflat[at + wide] != own)

    # each object's leftmost and rightmost pixel in each of its rows (object, then row order)
    first_s, last_e = np.flatnonzero(starts), np.flatnonzero(ends)
    first_s = first_s[np.argsort(region[first_s], kind="stable")]
    last_e = last_e[np.argsort(region[last_e], kind="stable")]
    key = region[first_s].astype(np.int64) * height + rows[first_s]
    first_s = first_s[np.r_[True, key[1:] != key[:-1]]]
    key = region[last_e].astype(np.int64) * height + rows[last_e]
    last_e = last_e[np.r_[key[1:] != key[:-1], True]]
    row_object, row, row_left, row_right = region[first_s], rows[first_s], cols[first_s], cols[last_e]
    object_rows = np.flatnonzero(np.r_[True, row_object[1:] != row_object[:-1]])  # each object's first row
    top, bottom = row[object_rows], row[np.r_[object_rows[1:], len(row)] - 1]
    left = np.minimum.reduceat(row_left, object_rows)
    right = np.maximum.reduceat(row_right, object_rows)

    table: dict[str, np.ndarray] = {"label": present.astype(np.int64), "area": area.astype(np.float64)}
    table["centroid-0"] = np.bincount(region, weights=rows, minlength=n) / area
    table["centroid-1"] = np.bincount(region, weights=cols, minlength=n) / area
    table.update({"bbox-0": top.astype(np.int64), "bbox-1": left.astype(np.int64),
                  "bbox-2": bottom.astype(np.int64) + 1, "bbox-3": right.astype(np.int64) + 1})
    table["perimeter"] = _perimeters(region, border, at, own, pflat, wide, n)
    table["eccentricity"] = _eccentricities(labels, present, region, rows, cols, area, top, bottom, left, right)
    convex = _convex_pixels(row_object, row, row_left, row_right, top, bottom, n, height)
    table["solidity"] = table["area"] / convex.astype(np.float64)
    table["_pieces"] = _pieces(labels, fg, region, present, (top, bottom, left, right))
    if intensity is not None:
        table.update(_intensities(np.asarray(intensity), fg, region, area, n))
    return table


def _perimeters(region: np.ndarray, border: np.ndarray, at: np.ndarray, own: np.ndarray, pflat: np.ndarray,
                wide: int, n: int) -> np.ndarray:
    """skimage.measure.perimeter (4-neighbourhood) of each object.

    skimage erodes the object's own image with a cross and convolves the border left with
    [[10, 2, 10], [2, 1, 2], [10, 2, 10]]: a border pixel's code is 1 + 2 x its 4-neighbours and
    10 x its diagonal ones that are border pixels of the same object; the histogram of the codes is
    weighted with ``histogram @ weights``. The codes here are those, for all border pixels of the
    frame at once; each object's histogram is weighted with the same product (a dot product whose
    rounding follows its own summation order, so it is taken as skimage takes it, one object at a time)."""
    at_border, own_border = at[border], own[border]
    is_border = np.zeros(pflat.size, bool)
    is_border[at_border] = True
    code = np.ones(len(at_border), np.intp)
    for offset, weight in ((-1, 2), (1, 2), (-wide, 2), (wide, 2),
                           (-wide - 1, 10), (-wide + 1, 10), (wide - 1, 10), (wide + 1, 10)):
        code += weight * ((pflat[at_border + offset] == own_border) & is_border[at_border + offset])
    histograms = np.bincount(region[border].astype(np.intp) * 50 + code, minlength=n * 50).reshape(n, 50)
    return np.array([histogram @ _PERIMETER_WEIGHTS for histogram in histograms], np.float64)


def _eccentricities(labels: np.ndarray, present: np.ndarray, region: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                    area: np.ndarray, top: np.ndarray, bottom: np.ndarray, left: np.ndarray,
                    right: np.ndarray) -> np.ndarray:
    """skimage's eccentricity of each object: its central moments as RegionProperties computes them
    (skimage.measure.moments_central of the object's image about its centroid in the box, order 3),
    the inertia tensor from them with skimage's arithmetic, and the eigenvalues of all objects in one
    call of the same LAPACK routine."""
    from skimage.measure import moments_central

    n = len(present)
    # the centroid in the box, as skimage's raw moments give it: integer sums (exact) over the count
    local_y = np.bincount(region, weights=rows - top[region], minlength=n) / area
    local_x = np.bincount(region, weights=cols - left[region], minlength=n) / area
    mu = np.empty((n, 4, 4))
    for i in range(n):
        image = labels[top[i]:bottom[i] + 1, left[i]:right[i] + 1] == present[i]
        mu[i] = moments_central(image.astype(np.uint8), (local_y[i], local_x[i]), order=3)
    mu0, mu20, mu02 = mu[:, 0, 0], mu[:, 2, 0], mu[:, 0, 2]
    both = mu20 + mu02
    tensor = np.empty((n, 2, 2))
    tensor[:, 0, 0] = (both - mu20) / mu0
    tensor[:, 1, 1] = (both - mu02) / mu0
    tensor[:, 0, 1] = tensor[:, 1, 0] = -mu[:, 1, 1] / mu0
    eigenvalues = np.clip(np.linalg.eigvalsh(tensor), 0, None)  # ascending
    large, small = eigenvalues[:, 1], eigenvalues[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(large == 0, 0.0, np.sqrt(1 - small / large))


def _convex_pixels(row_object: np.ndarray, row: np.ndarray, row_left: np.ndarray, row_right: np.ndarray,
                   top: np.ndarray, bottom: np.ndarray, n: int, height: int) -> np.ndarray:
    """How many pixels skimage's convex hull image of each object has (``area_convex``).

    skimage (convex_hull_image) takes the midpoints of each pixel's edges, (r +- 1/2, c) and
    (r, c +- 1/2), their convex hull (scipy's ConvexHull), and the pixel centres inside or on that
    polygon (grid_points_in_poly >= 1; its crossing test is exact for these half-integer vertices, and
    no vertex is a pixel centre). The same polygon is the hull of each row's leftmost and rightmost
    pixels' midpoints; its left side is the lower convex chain of x against y of the left points, its
    right side the upper one of the right points. Written here in integers (coordinates doubled), for
    all objects at once: points not on a chain are dropped until none is, then each row's pixel
    centres between the two chains are counted (ceil / floor of exact fractions). NumPy has no
    convex hull of many point sets at once, and scipy's would be one call per object."""
    # doubled coordinates: each row r gives (2r - 1, 2c), (2r, 2c -+ 1), (2r + 1, 2c) on each side; the
    # right side negated, so that both sides are lower chains; chains 0..n-1 left, n..2n-1 right
    y = np.stack([2 * row - 1, 2 * row, 2 * row + 1], axis=1).ravel().astype(np.int64)
    x_left = np.stack([2 * row_left, 2 * row_left - 1, 2 * row_left], axis=1).ravel().astype(np.int64)
    x_right = -np.stack([2 * row_right, 2 * row_right + 1, 2 * row_right], axis=1).ravel().astype(np.int64)
    chain = np.concatenate([np.repeat(row_object, 3), np.repeat(row_object, 3) + n]).astype(np.int64)
    y, x = np.concatenate([y, y]), np.concatenate([x_left, x_right])
    span = 2 * height + 4
    key = chain * span + y + 1
    same_y = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])  # two rows' points on one half row: the outer
    x, y, chain, key = np.minimum.reduceat(x, same_y), y[same_y], chain[same_y], key[same_y]
    while len(x) > 2:  # drop every point on or right of the segment between its neighbours, until none is
        inner = (chain[:-2] == chain[1:-1]) & (chain[1:-1] == chain[2:])
        cross = (x[1:-1] - x[:-2]) * (y[2:] - y[:-2]) - (x[2:] - x[:-2]) * (y[1:-1] - y[:-2])
        drop = inner & (cross >= 0)
        if not drop.any():
            break
        keep = np.r_[True, ~drop, True]
        x, y, chain, key = x[keep], y[keep], chain[keep], key[keep]
    # every row of each object's box, on both chains: the chain's segment over it, the row's x on it
    heights = (bottom - top + 1).astype(np.int64)
    which = np.repeat(np.arange(n), heights)
    query_y = 2 * (top[which] + np.arange(len(which)) - np.repeat(np.cumsum(heights) - heights, heights))
    count = None
    for side in (0, 1):
        k = np.searchsorted(key, (which + side * n) * span + query_y + 1, side="right") - 1
        dy = y[k + 1] - y[k]
        numerator = x[k] * dy + (x[k + 1] - x[k]) * (query_y - y[k])  # 2 x (the chain's x) x dy
        if side == 0:
            low = -((-numerator) // (2 * dy))  # the first pixel centre at or right of the left chain
        else:
            high = (-numerator) // (2 * dy)  # the last one at or left of the right chain
            count = np.maximum(high - low + 1, 0)
    return np.bincount(which, weights=count, minlength=n).astype(np.int64)


def _pieces(labels: np.ndarray, fg: np.ndarray, region: np.ndarray, present: np.ndarray, boxes: tuple) -> np.ndarray:
    """How many 8-connected parts each object has (more than one: divided, or split by an occluder):
    the parts of the frame's foreground counted per object (scipy's labelling, once per frame), and
    where a part holds several objects that touch, those objects' own parts (each object's image
    labelled as skimage's image of it, the way this column was measured before)."""
    from scipy import ndimage

    eight = np.ones((3, 3), bool)
    parts = ndimage.label(labels != 0, structure=eight)[0].ravel()[fg]
    part_object = np.zeros(int(parts.max()) + 1, np.intp)
    part_object[parts] = region  # one object of each part
    mixed = np.zeros(len(part_object), bool)
    mixed[parts[part_object[parts] != region]] = True  # parts of several objects
    pure = ~mixed
    pure[0] = False
    pieces = np.bincount(part_object[pure], minlength=len(present)).astype(np.int64)
    top, bottom, left, right = boxes
    for i in np.unique(region[mixed[parts]]):
        image = labels[top[i]:bottom[i] + 1, left[i]:right[i] + 1] == present[i]
        pieces[i] = ndimage.label(image, structure=eight)[1]
    return pieces


def _intensities(intensity: np.ndarray, fg: np.ndarray, region: np.ndarray, area: np.ndarray,
                 n: int) -> dict[str, np.ndarray]:
    """Each object's intensity mean, min, max and sum (per channel), NaN pixels left out, as NumPy's
    nanmean, nanmin, nanmax and nansum of the object's pixels give them (skimage's own intensity_mean
    is NaN for one NaN pixel; Fiji leaves them out); an object with no value at all: NaN."""
    channels = intensity.ndim == 3
    values = intensity.reshape(intensity.shape[0] * intensity.shape[1], -1)[fg]
    if values.dtype == np.bool_:
        values = values.view(np.uint8)
    keys = _intensity_keys(intensity)
    columns = len(keys) // len(_INTENSITY_NAMES)
    largest = max(abs(int(values.min())), abs(int(values.max()))) if values.dtype.kind in "iu" else None
    if largest is not None and largest * int(area.max()) < 2 ** 53:
        # integers: the sums exact in float64 (so in any order) and the extremes order-free
        table = {}
        for c in range(columns):
            v = values[:, c]
            total = np.bincount(region, weights=v, minlength=n)
            low = np.full(n, np.iinfo(v.dtype).max, v.dtype)
            high = np.full(n, np.iinfo(v.dtype).min, v.dtype)
            np.minimum.at(low, region, v)
            np.maximum.at(high, region, v)
            suffix = f"-{c}" if channels else ""
            table.update({f"_intensity_mean{suffix}": total / area, f"_intensity_min{suffix}": low.astype(np.float64),
                          f"_intensity_max{suffix}": high.astype(np.float64), f"_intensity_sum{suffix}": total})
        return {key: table[key] for key in keys}
    # floats (or integers beyond 2**53): NumPy's reductions of each object's pixels in skimage's order, one
    # channel at a time (skimage calls an extra property once per channel)
    order = np.argsort(region, kind="stable")
    ends = np.cumsum(area)
    table = {key: np.empty(n, np.float64) for key in keys}
    for c in range(columns):
        suffix = f"-{c}" if channels else ""
        mean, low, high, total = (table[f"_intensity_{what}{suffix}"] for what in _INTENSITY_NAMES)
        for i in range(n):
            pixels = values[order[ends[i] - area[i]:ends[i]], c]
            mean[i] = _quiet(np.nanmean, pixels)
            low[i] = _quiet(np.nanmin, pixels)
            high[i] = _quiet(np.nanmax, pixels)
            total[i] = np.nansum(pixels, axis=0)
    return table


def _calibrated(name: str, values: np.ndarray, factor: float, suffix: str) -> tuple[str, np.ndarray]:
    return f"{name}_{suffix}", np.asarray(values, np.float64) * factor


def measure_objects(labels: Any, image: Any = None, *, calibration: Calibration | None = None,
                    progress: Callable[[int, int], None] | None = None) -> ObjectTable:
    """Measure every object on every frame of ``labels``: one row per object and frame it is on.

    labels: (T, Y, X) object ids (a NumPy, memory-mapped, dask or zarr array, a napari-vos output;
    read one frame at a time) or one (Y, X) frame. image: the video they belong to, (T, Y, X) or
    (T, Y, X, C), for the intensity columns (raw values: 16-bit counts stay counts); None: none.
    calibration: the pixel size and frame interval (`napari_vos.data.calibration`), for the columns
    in physical units beside the pixel ones. progress(done, total) is called after each frame.

    Columns: frame, time_<unit> (with a frame interval), label, area_px, centroid_y_px,
    centroid_x_px, bbox_y0/x0/y1/x1 (pixels, the end exclusive), equivalent_diameter_px,
    perimeter_px, eccentricity, solidity (of the pixel grid), pieces (8-connected parts: above 1
    where a cell divided under one id), touches_edge; with a pixel size the area, centroid,
    diameter and (square pixels only) perimeter again in its unit (``area_um2``, ``centroid_y_um``);
    with an image intensity_mean/min/max and intensity_sum (per channel: ``_c0``, ``_c1``...; a float
    image's NaN pixels left out). Ids keep their type's range: uint64 labels give a uint64 label column.

    (T, Z, Y, X) labels (a 3D segmentation over time, one (Z, Y, X) volume read at a time) are measured
    in 3D by `measure_volumes`, with its columns.
    """
    if len(np.shape(labels)) == 4:
        return measure_volumes(labels, image, calibration=calibration, progress=progress)
    frames, (height, width), one_frame = _check_stack(labels, image)
    id_type = _id_type(labels)
    pixel = _pixel_size(calibration)
    space = unit_suffix(calibration.unit) if pixel is not None and calibration is not None else None
    interval = calibration.frame_interval if calibration is not None else None
    time_name = "time_" + time_suffix(calibration.time_unit if calibration is not None else None)
    parts: list[dict[str, np.ndarray]] = []
    for t in range(frames):
        frame = np.asarray(labels if one_frame else labels[t])
        intensity = None
        if image is not None:
            intensity = np.asarray(image if one_frame else image[t])
        table = _frame_rows(frame, intensity, id_type)
        table["frame"] = np.full(len(table["label"]), t, np.int64)
        parts.append(table)
        if progress is not None:
            progress(t + 1, frames)
    joined, columns = _joined_columns(parts, interval, time_name, id_type)
    n = len(joined["label"])
    area = np.asarray(joined["area"], np.float64)
    columns["area_px"] = area.astype(np.int64)
    if pixel is not None:
        columns.update([_calibrated("area", area, pixel[0] * pixel[1], f"{space}2")])
    columns["centroid_y_px"] = np.asarray(joined["centroid-0"], np.float64)
    columns["centroid_x_px"] = np.asarray(joined["centroid-1"], np.float64)
    if pixel is not None:
        columns.update([_calibrated("centroid_y", joined["centroid-0"], pixel[0], space),
                        _calibrated("centroid_x", joined["centroid-1"], pixel[1], space)])
    y0, x0, y1, x1 = (np.asarray(joined[f"bbox-{i}"], np.int64) for i in range(4))
    columns.update(bbox_y0=y0, bbox_x0=x0, bbox_y1=y1, bbox_x1=x1)
    columns["equivalent_diameter_px"] = np.sqrt(4.0 * area / np.pi)
    if pixel is not None:
        columns[f"equivalent_diameter_{space}"] = np.sqrt(4.0 * area * pixel[0] * pixel[1] / np.pi)
    columns["perimeter_px"] = np.asarray(joined["perimeter"], np.float64)
    if pixel is not None:  # skimage's perimeter follows pixel edges: a length only where pixels are square
        square = math.isclose(pixel[0], pixel[1], rel_tol=1e-9)
        columns[f"perimeter_{space}"] = columns["perimeter_px"] * pixel[1] if square else np.full(n, np.nan)
    columns["eccentricity"] = np.asarray(joined["eccentricity"], np.float64)
    columns["solidity"] = np.asarray(joined["solidity"], np.float64)
    columns["pieces"] = np.asarray(joined["_pieces"], np.int64)
    columns["touches_edge"] = (y0 == 0) | (x0 == 0) | (y1 == height) | (x1 == width)
    if image is not None:
        columns.update(_intensity_columns(joined))
    order = np.lexsort((columns["label"], columns["frame"]))
    return ObjectTable({name: values[order] for name, values in columns.items()})


def _joined_columns(parts: list[dict[str, Any]], interval: float | None, time_name: str,
                    id_type: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The frames' rows joined (key -> one array), and a table's first columns from them: frame, the time
    (with a frame interval) and label, in that order (the 2-D and the volume tables alike)."""
    joined = {key: np.concatenate([np.asarray(p[key]) for p in parts]) for key in parts[0]}
    columns: dict[str, np.ndarray] = {"frame": joined["frame"]}
    if interval is not None:
        columns[time_name] = joined["frame"] * float(interval)
    columns["label"] = np.asarray(joined["label"], id_type)
    return joined, columns


#: the skimage regionprops_table properties of a volume's objects (3D: area is the voxel count, the
#: centroid has three components, the box six)
_VOLUME_PROPERTIES = ("label", "area", "centroid", "bbox")


def measure_volumes(labels: Any, image: Any = None, *, calibration: Calibration | None = None,
                    progress: Callable[[int, int], None] | None = None) -> ObjectTable:
    """Measure every object of (T, Z, Y, X) labels in 3D: one row per object and frame it is on.

    labels: a 3D segmentation over time whose ids are kept through time (a NumPy, memory-mapped, dask
    or zarr array; one (Z, Y, X) volume read at a time). image: (T, Z, Y, X) or (T, Z, Y, X, C), for
    the intensity columns; None: none. calibration: the pixel size, Z step (``z_size``, in ``z_unit``)
    and frame interval. progress(done, total) after each frame.

    Columns: frame, time_<unit> (with a frame interval), label, volume_px (voxels),
    centroid_z/y/x_px, bbox_z0/y0/x0/z1/y1/x1 (voxels, the ends exclusive), equivalent_diameter_px
    (of the sphere of that many voxels), pieces (26-connected parts), touches_edge (the box on any of
    the volume's six faces, Z's first and last plane included); with a pixel size the volume
    (Z step x Y x X pixel size, anisotropic voxels included), centroid and diameter again in its unit
    (``volume_um3``, ``centroid_z_um``); where the Z step is unknown, or in another unit than the
    pixel size, those that need it are NaN. With an image intensity_mean/min/max/sum as in
    `measure_objects`. The 2-D shape measures (perimeter, eccentricity, solidity) are not given for
    volumes: skimage's perimeter is 2-D only, and a surface area or 3D solidity would need a mesh
    or a 3D convex hull per object, which no column here promises.
    """
    frames, volume_shape = _check_volumes(labels, image)
    id_type = _id_type(labels)
    voxel = _voxel_size(calibration)
    space = unit_suffix(calibration.unit) if voxel is not None and calibration is not None else None
    interval = calibration.frame_interval if calibration is not None else None
    time_name = "time_" + time_suffix(calibration.time_unit if calibration is not None else None)
    parts = []
    for t in range(frames):
        table = _volume_rows(np.asarray(labels[t]), None if image is None else np.asarray(image[t]), id_type)
        table["frame"] = np.full(len(table["label"]), t, np.int64)
        parts.append(table)
        if progress is not None:
            progress(t + 1, frames)
    joined, columns = _joined_columns(parts, interval, time_name, id_type)
    count = np.asarray(joined["area"], np.float64)
    columns["volume_px"] = count.astype(np.int64)
    if voxel is not None:
        columns[f"volume_{space}3"] = count * (voxel[0] * voxel[1] * voxel[2])
    for axis, key in zip("zyx", ("centroid-0", "centroid-1", "centroid-2")):
        columns[f"centroid_{axis}_px"] = np.asarray(joined[key], np.float64)
    if voxel is not None:
        for axis, key, size in zip("zyx", ("centroid-0", "centroid-1", "centroid-2"), voxel):
            columns[f"centroid_{axis}_{space}"] = np.asarray(joined[key], np.float64) * size
    box = {f"bbox_{axis}{end}": np.asarray(joined[f"bbox-{i + 3 * end}"], np.int64)
           for end in (0, 1) for i, axis in enumerate("zyx")}
    columns.update(box)
    columns["equivalent_diameter_px"] = np.cbrt(6.0 * count / np.pi)
    if voxel is not None:
        columns[f"equivalent_diameter_{space}"] = np.cbrt(6.0 * columns[f"volume_{space}3"] / np.pi)
    columns["pieces"] = np.asarray(joined["_pieces"], np.int64)
    columns["touches_edge"] = np.zeros(len(count), bool)
    for axis, size in zip("zyx", volume_shape):
        columns["touches_edge"] |= (box[f"bbox_{axis}0"] == 0) | (box[f"bbox_{axis}1"] == size)
    if image is not None:
        columns.update(_intensity_columns(joined))
    order = np.lexsort((columns["label"], columns["frame"]))
    return ObjectTable({name: values[order] for name, values in columns.items()})


def _check_volumes(labels: Any, image: Any) -> tuple[int, tuple[int, int, int]]:
    """(frames, (Z, Y, X)) of (T, Z, Y, X) integer labels, ``image`` checked against them."""
    shape = tuple(int(n) for n in np.shape(labels))
    if 0 in shape:
        raise ValueError(f"labels of shape {shape} hold no frames{' (or volumes of no voxels)' if shape[0] else ''}: "
                         "there is nothing to measure")
    dtype = _label_dtype(labels)
    if dtype.kind not in "iub":
        raise ValueError(f"labels of type {dtype}: object ids are integers (a labels layer), not an image")
    if image is not None:
        image_shape = tuple(int(n) for n in np.shape(image))
        if image_shape[:4] != shape or len(image_shape) > 5:
            raise ValueError(f"the image is {image_shape} but the labels are {shape}: the intensities are measured "
                             f"under the labels, so give the (T, Z, Y, X) image they belong to ({shape}, with "
                             "channels last if it has them)")
    return shape[0], (shape[1], shape[2], shape[3])


def _voxel_size(calibration: Calibration | None) -> tuple[float, float, float] | None:
    """(Z, Y, X) voxel size in the pixel size's unit; None without a pixel size. Z is NaN where the
    calibration has no Z step, or has it in another unit (nothing converts one into the other here)."""
    pixel = _pixel_size(calibration)
    if pixel is None or calibration is None:
        return None
    same_unit = calibration.z_unit == calibration.unit
    z = float(calibration.z_size) if calibration.z_size is not None and same_unit else math.nan
    return z, pixel[0], pixel[1]


def _volume_rows(volume: np.ndarray, intensity: np.ndarray | None, id_type: type) -> dict[str, np.ndarray]:
    """One (Z, Y, X) volume's objects: skimage's label, area (voxels), centroid and box, the pieces of
    each and (with an image) the intensities as `measure_objects` takes them; ids as ``id_type``."""
    from skimage.measure import regionprops_table

    compact, ids = compact_ids(volume)
    table = {key: np.asarray(values) for key, values in
             regionprops_table(compact, properties=_VOLUME_PROPERTIES).items()}
    found = table["label"].astype(np.int64)
    table["_pieces"] = _volume_pieces(compact, found, table)
    if intensity is not None:
        table.update(_volume_intensities(compact, found, table["area"].astype(np.int64), intensity))
    if ids is not None:
        found = ids[found - 1]
    table["label"] = np.asarray(found).astype(id_type)
    return table


def _volume_pieces(volume: np.ndarray, found: np.ndarray, table: dict[str, np.ndarray]) -> np.ndarray:
    """How many 26-connected parts each object of a volume has (the 3D counterpart of 8-connected),
    each object labelled in its own box."""
    from scipy import ndimage

    every = np.ones((3, 3, 3), bool)
    pieces = np.zeros(len(found), np.int64)
    for i, label in enumerate(found.tolist()):
        box = tuple(slice(int(table[f"bbox-{a}"][i]), int(table[f"bbox-{a + 3}"][i])) for a in range(3))
        pieces[i] = ndimage.label(volume[box] == label, structure=every)[1]
    return pieces


def _volume_intensities(volume: np.ndarray, found: np.ndarray, area: np.ndarray,
                        intensity: np.ndarray) -> dict[str, np.ndarray]:
    """Each object's intensity mean, min, max and sum as `_intensities` takes them (NaN voxels left out),
    the volume seen as one (Z x Y, X) frame: objects in ``found`` order (skimage's, by id)."""
    flat = volume.ravel()
    fg = np.flatnonzero(flat)
    region = np.searchsorted(found, flat[fg])
    depth, height, width = volume.shape
    plane = intensity.reshape(depth * height, width, *intensity.shape[3:])
    if not len(found):
        return {key: np.zeros(0, np.float64) for key in _intensity_keys(plane)}
    return _intensities(plane, fg, region, area, len(found))


def _intensity_columns(joined: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """intensity_mean/min/max/sum, one set per channel (``_c0``...) where the image has channels."""
    channels = sorted(int(k.rsplit("-", 1)[1]) for k in joined if k.startswith("_intensity_mean-"))
    columns: dict[str, np.ndarray] = {}
    for suffix, key in ([("", "")] if not channels else [(f"_c{c}", f"-{c}") for c in channels]):
        for what in ("mean", "min", "max", "sum"):
            columns[f"intensity_{what}{suffix}"] = np.asarray(joined[f"_intensity_{what}{key}"], np.float64)
    return columns


def track_summary(objects: ObjectTable, *, frames: int | None = None,
                  parents: dict[int, int] | None = None) -> ObjectTable:
    """One row per object id of a `measure_objects` table: where it is seen and how it moves.

    Columns: label, first_frame, last_frame, frames_present, frames_missing (between its first and
    last frame), mean_area_px, path_length_px (the centroid's steps between the frames it is on),
    net_displacement_px (first to last centroid), speed_px_per_frame (path over the frames from
    first to last), max_pieces, frames_touching_edge; the area, lengths and speed also in the
    table's units where it has them (``mean_area_um2``, ``speed_um_per_min``). frames: the stack's
    length, for frames_after_last (how many frames at the end it is not on); None: not given.
    parents: a lineage's daughter id -> parent id (`napari_vos.divisions`), for a ``parent`` column
    (0: none); None: no such column.

    A `measure_volumes` table (3D: ``volume_px`` and ``centroid_z_*`` columns) gives mean_volume_px
    (and ``mean_volume_um3``) for the area, and its path, displacement and speed in 3D (in voxel
    steps for ``_px``: a Z step counts one voxel whatever its length; in the unit with the Z step).
    """
    c = objects.columns
    if not c or "label" not in c:
        raise ValueError("track_summary summarises a measure_objects table (its label, frame and centroid columns)")
    space = next((name[len("centroid_y_"):] for name in c
                  if name.startswith("centroid_y_") and name != "centroid_y_px"), None)
    time_name = next((name for name in c if name.startswith("time_")), None)
    units = ("px",) + ((space,) if space is not None else ())
    per = time_name[len("time_"):] if time_name is not None else None
    speed = f"speed_{space}_per_{'time_unit' if per == 'units' else per}" if space is not None and per else None
    solid = "centroid_z_px" in c  # a measure_volumes table: volumes, and paths in 3D
    size, power = ("volume", 3) if solid else ("area", 2)
    names = ["label", *(["parent"] if parents is not None else []), "first_frame", "last_frame", "frames_present",
             "frames_missing", *(["frames_after_last"] if frames is not None else []), f"mean_{size}_px",
             *([f"mean_{size}_{space}{power}"] if space is not None else []),
             *(f"{what}_{unit}" for unit in units for what in ("path_length", "net_displacement")),
             "speed_px_per_frame", *([speed] if speed else []), "max_pieces", "frames_touching_edge"]
    out: dict[str, list[Any]] = {name: [] for name in names}  # the header also where no object is on any frame

    def put(name: str, value: Any) -> None:
        out[name].append(value)

    order = np.lexsort((c["frame"], c["label"]))  # each id's rows together, in frame order
    starts = np.flatnonzero(np.r_[True, np.diff(c["label"][order]) != 0]) if len(order) else np.array([], int)
    for at in np.split(order, starts[1:]) if len(order) else []:
        label, seen = c["label"][at[0]], c["frame"][at]
        first, last = int(seen[0]), int(seen[-1])
        put("label", int(label))
        if parents is not None:
            put("parent", int(parents.get(int(label), 0)))
        put("first_frame", first)
        put("last_frame", last)
        put("frames_present", len(at))
        put("frames_missing", last - first + 1 - len(at))
        if frames is not None:
            put("frames_after_last", frames - 1 - last)
        put(f"mean_{size}_px", float(np.mean(c[f"{size}_px"][at])))
        if space is not None:
            put(f"mean_{size}_{space}{power}", float(np.mean(c[f"{size}_{space}{power}"][at])))
        for unit in units:
            path, net = _path(np.column_stack([c[f"centroid_{a}_{unit}"][at] for a in ("zyx" if solid else "yx")]))
            put(f"path_length_{unit}", path)
            put(f"net_displacement_{unit}", net)
        put("speed_px_per_frame", float(out["path_length_px"][-1] / (last - first)) if last > first else math.nan)
        if speed is not None and time_name is not None:
            elapsed = float(c[time_name][at][-1] - c[time_name][at][0])
            put(speed, float(out[f"path_length_{space}"][-1] / elapsed) if elapsed > 0 else math.nan)
        put("max_pieces", int(np.max(c["pieces"][at])))
        put("frames_touching_edge", int(np.count_nonzero(c["touches_edge"][at])))
    counts = ("first_frame", "last_frame", "frames_present", "frames_missing", "frames_after_last", "max_pieces",
              "frames_touching_edge")
    kinds = {"label": c["label"].dtype, "parent": c["label"].dtype, **{name: np.int64 for name in counts}}
    return ObjectTable({name: np.asarray(values, kinds.get(name, np.float64)) for name, values in out.items()})


def _path(points: np.ndarray) -> tuple[float, float]:
    """The path length (the sum of the steps) and net displacement (first to last) of (N, 2) y, x or (N, 3)
    z, y, x points; each step's length by ``np.hypot`` over the axes."""
    steps = np.hypot.reduce(np.diff(points, axis=0), axis=1)
    return float(steps.sum()), float(np.hypot.reduce(points[-1] - points[0]))
