"""Per-object measurements of a propagated labels stack: one row per object and frame, one per track.

What a microscopist does next with the labels: how large each cell is over time, where it goes and
how fast, how bright it is. skimage's ``regionprops_table`` measures each frame in pixels; this
module adds what it does not know: the frame and its time, the stack's pixel size (anisotropic
pixels included: skimage's calibrated perimeter takes square pixels only), whether an object is in
several pieces (a division kept under one id), whether it touches the frame's edge, and a summary
per object id across frames (the ids are the tracks: propagation keeps them).
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

__all__ = ["ObjectTable", "measure_objects", "track_summary", "tracks_path", "write_tables", "compact_ids",
           "unit_suffix", "time_suffix"]

#: skimage's per-region properties measured in pixels
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
        partial = path.with_name(f".{path.stem}.partial{path.suffix}")
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
    hidden = [(table, where, where.with_name(f".{where.stem}.whole{where.suffix}")) for table, where in pairs]
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
    """A CSV cell: integers as they are, floats to 7 significant digits, NaN as empty. A whole float
    keeps a ".0" (5.0, not 5), so that pandas and R read a float column as floats in every file, not
    as integers in the files where each value happens to be whole (a time of 0, 5, 10 min)."""
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    number = float(value)
    if math.isnan(number):
        return ""
    text = f"{number:.7g}"
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
        raise ValueError(f"labels of shape {shape}: give (T, Y, X) labels, or one (Y, X) frame (a (T, Z, Y, X) "
                         "stack: one Z plane at a time)")
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
    turn negative), int64 for the others (int64 ids may be negative)."""
    return np.uint64 if _label_dtype(labels) == np.uint64 else np.int64


def _pieces(mask: np.ndarray) -> int:
    """How many 8-connected parts an object's mask has (more than one: divided, or split by an occluder)."""
    from scipy import ndimage

    return int(ndimage.label(mask, structure=np.ones((3, 3), bool))[1])


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


# The intensities of an object leave NaN pixels out (a float image's no-data: a registration's padding,
# a masked area), as Fiji's measurements do; skimage's intensity_mean/min/max are NaN for one such pixel.
# An object with no value at all gets NaN (an empty cell). The sum is the values' own (exact for counts).
def _intensity_mean(mask: np.ndarray, intensity: np.ndarray) -> Any:
    return _quiet(np.nanmean, intensity[mask])


def _intensity_min(mask: np.ndarray, intensity: np.ndarray) -> Any:
    return _quiet(np.nanmin, intensity[mask])


def _intensity_max(mask: np.ndarray, intensity: np.ndarray) -> Any:
    return _quiet(np.nanmax, intensity[mask])


def _intensity_sum(mask: np.ndarray, intensity: np.ndarray) -> Any:
    return np.nansum(intensity[mask], axis=0)


def _quiet(function: Callable[..., Any], values: np.ndarray) -> Any:
    """``function`` over the pixels (axis 0: per channel) without NumPy's warning for an all-NaN object."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return function(values, axis=0)


_INTENSITY_FUNCTIONS = (_intensity_mean, _intensity_min, _intensity_max, _intensity_sum)


def _frame_rows(frame: np.ndarray, intensity: np.ndarray | None, id_type: type = np.int64) -> dict[str, np.ndarray]:
    """skimage's measurements of one frame's objects, in pixels, with the pieces of each and (with an
    image) the intensities; the ids as ``id_type``, so that the frames' label columns join unchanged."""
    from skimage.measure import regionprops_table

    compact, ids = compact_ids(np.asarray(frame))
    extra = (_pieces, *(_INTENSITY_FUNCTIONS if intensity is not None else ()))
    table = regionprops_table(compact, intensity_image=intensity, properties=_SHAPE_PROPERTIES,
                              extra_properties=extra)
    if ids is not None:
        table["label"] = ids[np.asarray(table["label"], np.int64) - 1]
    table["label"] = np.asarray(table["label"]).astype(id_type)
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
    """
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
    joined = {key: np.concatenate([np.asarray(p[key]) for p in parts]) for key in parts[0]}
    n = len(joined["label"])
    columns: dict[str, np.ndarray] = {"frame": joined["frame"]}
    if interval is not None:
        columns[time_name] = joined["frame"] * float(interval)
    columns["label"] = np.asarray(joined["label"], id_type)
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
    names = ["label", *(["parent"] if parents is not None else []), "first_frame", "last_frame", "frames_present",
             "frames_missing", *(["frames_after_last"] if frames is not None else []), "mean_area_px",
             *([f"mean_area_{space}2"] if space is not None else []),
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
        put("mean_area_px", float(np.mean(c["area_px"][at])))
        if space is not None:
            put(f"mean_area_{space}2", float(np.mean(c[f"area_{space}2"][at])))
        for unit in units:
            y, x = c[f"centroid_y_{unit}"][at], c[f"centroid_x_{unit}"][at]
            steps = np.hypot(np.diff(y), np.diff(x))
            put(f"path_length_{unit}", float(steps.sum()))
            put(f"net_displacement_{unit}", float(np.hypot(y[-1] - y[0], x[-1] - x[0])))
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
