"""`propagate_layers`: what the Propagate button does, as one call for napari's console or a script.

    >>> from napari_vos import propagate_layers
    >>> out = propagate_layers(viewer, "natural video", "natural labels", method="flow", maps=True)
    >>> out.labels.data.shape, out.result.fps, [m.name for m in out.maps]
    >>> out = propagate_layers(viewer, "natural video", method="cosnet")  # zero-shot: no labels layer
    >>> out = propagate_layers(viewer, "phase", "cells", channel_layers=["nuclei"])  # two channels

It runs synchronously in the calling thread (the viewer redraws when the call returns), shares
`LayerJob` with the widget so both produce the same layers, scale/translate and provenance, and
is importable as ``napari_vos.propagate_layers`` without importing napari up front.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_vos._widgets.layer_job import LayerJob, get_layer
from napari_vos._widgets.plane_runs import PlaneRuns, several_planes

if TYPE_CHECKING:  # pragma: no cover
    import napari
    import torch
    from napari.layers import Image, Labels, Tracks

    from napari_vos.advice import MethodAdvice
    from napari_vos.object_table import ObjectTable
    from napari_vos.session import Result

__all__ = ["propagate_layers", "LayerOutputs", "save_labels_layer", "open_labels_layer", "open_image_layers",
           "measure_layers",
           "LayerTables", "show_tracks", "split_divided_cells",
           "save_ctc"]

#: what a saved labels layer's record holds of its placement besides the pixel size (``layer_<key>``)
PLACEMENT_KEYS = ("translate", "scale", "rotate", "shear", "affine")


@dataclass
class LayerOutputs:
    """What `propagate_layers` added: the output Labels layer, the map Image layers, the engine Result
    (whose ``maps`` is empty: the map layers hold the maps, once; runs through several Z planes: the last
    plane's, the output's record holding each plane's)."""

    labels: "Labels"
    maps: "list[Image]"
    result: "Result"
    advice: "MethodAdvice | None" = None  # a better-measured method for what was painted (also printed)


def propagate_layers(viewer: "napari.Viewer", image: "str | Image", labels: "str | Labels | None" = None,
                     method: str = "frtm",
                     frame: int | None = None, *, device: "str | torch.device" = "auto", direction: str = "both",
                     maps: bool = False, all_painted: bool = True, name: str | None = None,
                     channel_layers: "Sequence[str | Image]" = (), plane: "int | str | Sequence[int] | None" = None,
                     resume: "str | Labels | None" = None, **options: Any) -> LayerOutputs:
    """Propagate the painted ``labels`` layer through the ``image`` layer and add the result to ``viewer``.

    image, labels: layer names or layers. labels is either (T, Y, X), where every painted frame is
    an annotation (``all_painted=False``: only ``frame``), or one (Y, X) frame annotating ``frame``,
    or None for a zero-shot method (``method="cosnet"``), which segments every frame unannotated.
    frame: the annotated frame to start from (default: the engine's choice, the first painted one;
    zero-shot: frame 0). As with the button, whose frame follows the time slider, an unpainted
    ``frame`` of a (T, Y, X) layer starts the run from the nearest painted frame whose run reaches
    it (where none does, the nearest painted frame, whose run then misses it), with a warning saying
    so (`napari_vos.propagate` refuses such a frame).
    maps: also add the method's intermediate maps as Image layers overlaying the image.
    channel_layers: up to two more grey image layers of the image's shape (a channel each, as napari
    opens a multi-channel stack with ``channel_axis``) read with the image as one multi-channel video.
    plane: for a (T, Z, Y, X) image (3D + time), the Z plane propagated through time (default: the
    one under the Z slider); the labels are painted in a layer of the image's shape (read at that
    plane) or are one (Y, X) frame, and the output has the image's shape with that plane filled.
    ``plane="painted"`` runs through every Z plane painted in the labels layer, and a list through those
    planes, one after another into one output (each plane's objects followed on that plane by a run of
    its own; its record lists them in ``z_planes_run`` and each one's start and frames in ``plane_runs``).
    resume: with ``plane="painted"`` (or a list), the output of such runs that stopped (Cancel, an error):
    the planes it holds finished are kept, the others run into it (a plane stopped part-way from its start),
    and it is returned as the output.
    options: passed to `Session` (``checkpoint``, ``max_side``, ``channels``, method options).
    The output layers keep the image's scale/translate; the provenance is in
    ``layer.metadata["napari_vos"]``. Engine errors (ValueError, CheckpointError) propagate; a
    failure before the first frame removes the empty output layer again.
    """
    settings = {"frame": frame, "device": device, "direction": direction, "maps": maps, "all_painted": all_painted,
                "channel_layers": channel_layers, **options}
    if several_planes(plane):
        runs = PlaneRuns(viewer, image, labels, method, plane, name=name, resume=resume, **settings)
        results = [_run_job(job, runs) for job in runs.jobs]
        runs.finish()
        job = runs.jobs[-1]
        return LayerOutputs(runs.output, [m for j in runs.jobs for m in j.map_layers.values()], results[-1], job.advice)
    if resume is not None:
        raise ValueError("resume goes on with stopped runs through several Z planes: give plane='painted' (or a list "
                         "of planes) with it")
    job = LayerJob(viewer, image, labels, method, name=name, plane=plane, **settings)
    result = _run_job(job)
    return LayerOutputs(job.output, list(job.map_layers.values()), result, job.advice)


def _run_job(job: LayerJob, runs: "PlaneRuns | None" = None) -> "Result":
    """Run one job to its end in this thread, saying its notes and advice; its output is kept if it segmented
    a frame (its record says the error that stopped it), else removed (an output other planes' runs
    filled is kept, with their record, ``runs``)."""
    if job.note:
        warnings.warn(job.note, stacklevel=3)
    if job.advice:
        print(job.advice.text)
    try:
        for step in job.steps():
            job.show(step)
    except BaseException as err:
        if job.frames_computed == 0:
            job.discard()
        else:
            ended = job.finish(error=err)
            if runs is not None:
                runs.job_ended(job, ended)
        if runs is not None:
            runs.finish()
        raise
    result = job.finish()
    assert result is not None  # steps() always builds the session
    if runs is not None:
        runs.job_ended(job, result)
    if job.maps_not_shown:
        warnings.warn(job.maps_not_shown_text(), stacklevel=3)
    return result


def save_labels_layer(layer: "Labels", path: "str | Path") -> Path:
    """Write a (T, Z, Y, X), (T, Y, X) or (Y, X) Labels layer as the command line writes labels: an ImageJ
    TIFF (16-bit up to id 65535) with the layer's pixel size, frame interval, Z step and the run's
    provenance (napari's own File > Save writes uint32 and keeps none of them). Returns the path
    written. The same writer is offered in napari's save dialog ("napari-vos labels TIFF"). The output
    of a run through one Z plane of a (T, Z, Y, X) image is written as that plane's (T, Y, X) labels, as
    ``napari-vos propagate --z N`` writes them; `open_labels_layer` puts it back at its plane."""
    from napari.layers import Labels

    from napari_vos._widgets.labels_writer import LabelsNotWritten, write_labels_tiff

    if not isinstance(layer, Labels):  # an image's grey levels were written as object ids
        named = f" {layer.name!r}" if isinstance(getattr(layer, "name", None), str) else ""
        raise ValueError(f"save_labels_layer writes a Labels layer, got {type(layer).__name__}{named}" +
                         (": give the layer, viewer.layers[name]" if isinstance(layer, str) else ""))
    state = {"scale": layer.scale, "units": getattr(layer, "units", None), "metadata": layer.metadata,
             "name": layer.name, "translate": layer.translate, "rotate": layer.rotate, "shear": layer.shear,
             "affine": layer.affine.affine_matrix, "axis_labels": getattr(layer, "axis_labels", None)}
    try:
        return Path(write_labels_tiff(str(path), layer.data, state)[0])
    except LabelsNotWritten as refused:  # the writer's own type is for napari's save path; here, as elsewhere
        raise ValueError(str(refused)) from None


@dataclass
class LayerTables:
    """What `measure_layers` measured: one row per object per frame, and one per object id (track)."""

    objects: "ObjectTable"
    tracks: "ObjectTable"


def measure_layers(viewer: "napari.Viewer", labels: "str | Labels", image: "str | Image | None" = None,
                   path: "str | Path | None" = None) -> LayerTables:
    """Measure each object of a (T, Y, X) labels layer (or a plane output's plane, with that plane of a
    (T, Z, Y, X) ``image``) on each frame (area, centroid, box, shape, pieces, and with ``image`` its
    intensities) and summarise each id as a track, in the layer's units (its
    scale and units) beside pixels; what `napari-vos measure` and the "napari-vos object measurements"
    save type write. Any other (T, Z, Y, X) labels layer (a run through several planes, a 3D
    segmentation over time) is measured in 3D, a volume per frame, with a (T, Z, Y, X) ``image`` (or
    its level of that shape): voxels and the volume in the layer's Z step x Y x X units, the 3D
    centroid and box, 26-connected pieces, no perimeter or other 2-D shape measure
    (`napari_vos.object_table.measure_volumes`); its tracks' mean volume, path and speed in 3D.
    path: also write the two CSV tables (``path`` and ``NAME.tracks.csv`` beside it).
    ``.objects.to_pandas()`` gives a data frame."""
    from napari_vos._widgets.object_table_writer import layer_inputs, layer_tables
    from napari_vos.object_table import write_tables

    labels_layer = get_layer(viewer, labels, "labels")
    image_layer = get_layer(viewer, image, "image") if image is not None else None
    objects, tracks = layer_tables(*layer_inputs(labels_layer, image_layer))
    if path is not None:
        write_tables(objects, tracks, path)
    return LayerTables(objects, tracks)


def show_tracks(viewer: "napari.Viewer", labels: "str | Labels") -> "Tracks":
    """Add each object's centroid path through a (T, Y, X) labels layer (or the output of a run through one
    Z plane: at its plane's depth; or any other (T, Z, Y, X) labels layer, a run through several planes or
    a 3D segmentation over time: each id's 3D centroid, napari's 3D + time tracks with a ``volume_px``
    feature) as a Tracks layer named "<labels> tracks", where the labels lie; what
    *Layers > Track > Centroid tracks* does. Returns it."""
    from napari.layers import Layer

    from napari_vos._widgets.tracks_layer import tracks_layer_data

    layer = get_layer(viewer, labels, "labels")
    return viewer.add_layer(Layer.create(*tracks_layer_data(layer)))


def split_divided_cells(viewer: "napari.Viewer", labels: "str | Labels") -> "Labels":
    """Add a (T, Y, X) labels layer (or a plane output, split on its plane; a (T, Z, Y, X) one, split in 3D)
    with each divided object's daughters under new ids as a new labels layer "<labels> divided" where the
    labels lie, its lineage in ``metadata["napari_vos_divisions"]``; what *Layers > Track > Split divided
    cells* does (`napari_vos.divisions.split_divisions`). Returns it."""
    from napari.layers import Layer

    from napari_vos._widgets.tracks_layer import divided_layer_data

    layer = get_layer(viewer, labels, "labels")
    return viewer.add_layer(Layer.create(*divided_layer_data(layer)))


def save_ctc(viewer: "napari.Viewer", labels: "str | Labels", folder: "str | Path", force: bool = False) -> Any:
    """Write a (T, Y, X) labels layer (or a plane output's plane, or a (T, Z, Y, X) layer as CTC's 3D masks)
    as a Cell Tracking Challenge result folder (mask000.tif ... and res_track.txt), with the lineage of a
    *Split divided cells* layer or of an opened `napari-vos divisions` TIFF; what `napari-vos ctc` does
    (`napari_vos.ctc_export.write_ctc`: an id back after a gap is a new track). Returns its `CtcExport`
    (the tracks table, gaps split, divisions kept)."""
    from napari_vos._widgets.tracks_layer import tracked_stack
    from napari_vos.ctc_export import write_ctc
    from napari_vos.divisions import parents_from_metadata

    layer = get_layer(viewer, labels, "labels")
    return write_ctc(folder, tracked_stack(layer, "Cell Tracking Challenge tracks")[0],
                     parents_from_metadata(dict(layer.metadata or {})), force=force)


def open_labels_layer(viewer: "napari.Viewer", path: "str | Path", name: str | None = None) -> "Labels":
    """Open a labels TIFF napari-vos wrote (`napari-vos propagate`, `save_labels_layer`, the save
    dialog's napari-vos writer) as a Labels layer at its pixel size and frame interval, with the run's
    record in ``metadata["napari_vos"]`` and, where the saved layer had them, its translate, flip,
    rotate, shear, affine and axis names (a time axis saved without a unit stays without one): napari's
    own File > Open reads the data only, so the labels would lie at scale 1 beside a calibrated image.
    Any integer (Y, X), (T, Y, X) or (T, Z, Y, X) TIFF opens (a 3D + time one at its Z step); the saved
    plane of a run through a (T, Z, Y, X) image opens as that run's output, the plane at its place in a
    layer of the image's shape."""
    import inspect

    import numpy as np

    from napari_vos._widgets.plane_outputs import plane_layer
    from napari_vos.data.calibration import scale_from_calibration
    from napari_vos.data.readers import tiff_stem

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is not a file; give a labels TIFF written by napari-vos")
    labels, record, calibration = _saved_labels(path)
    scale, units = scale_from_calibration(calibration, labels.ndim)
    kwargs: dict[str, Any] = {"name": name or tiff_stem(path), "scale": scale}
    saved_units = (record or {}).pop("layer_units", None)  # a time axis without a unit stays without
    if saved_units is not None and len(saved_units) == labels.ndim == len(units):
        units = [str(saved_units[0]), *units[1:]]  # the time axis only: the file's pixel size holds the others
    if "units" in inspect.signature(viewer.add_labels).parameters:  # napari >= 0.6
        kwargs["units"] = units
    if record is not None:
        record.pop("layer_ndim", None)
        # where the saved layer lay (`save_labels_layer`): its offset, a flip, rotate, shear and affine
        for key in PLACEMENT_KEYS:
            value = record.pop(f"layer_{key}", None)
            if value is not None and _placement_fits(key, value, labels.ndim):
                kwargs[key] = np.asarray(value, dtype=float)
        axis_labels = record.pop("layer_axis_labels", None)
        if axis_labels is not None and len(axis_labels) == labels.ndim and \
                "axis_labels" in inspect.signature(viewer.add_labels).parameters:  # napari >= 0.6
            kwargs["axis_labels"] = [str(v) for v in axis_labels]
        if record:  # a placement alone (a hand-painted layer's translate) is no run's record: not an output
            kwargs["metadata"] = {"napari_vos": record}
    # the plane of a run through a (T, Z, Y, X) image goes back to its place in a layer of that shape
    labels, kwargs = plane_layer(labels, kwargs)
    return viewer.add_labels(labels, **kwargs)


def open_image_layers(viewer: "napari.Viewer", path: "str | Path", name: str | None = None,
                      z: int | None = None) -> "list[Image]":
    """Open a TIFF time-lapse (OME, ImageJ hyperstack or plain; any axis order) as Image layers at its pixel
    size and frame interval, read a frame at a time as napari shows it: napari's own File > Open gives
    scale 1, and the outputs of Propagate take the image's scale. A (T, Y, X) file gives one layer; a
    channel axis gives one layer per channel (napari's channel_axis: pick one as the image and tick the
    others under *add channels*), or one RGB(A) layer for 8-bit colour samples. A 3D + time stack
    (T, Z, Y, X[, C]) opens whole as (T, Z, Y, X) layers at its Z step too, read a plane at a time
    (Propagate runs through the plane under the Z slider); ``z`` opens only that plane, as (T, Y, X).
    The file is closed when the last of the layers leaves the viewer."""
    from napari_vos.data.readers import open_tiff_frames, open_tiff_volume_frames

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is not a file; give a TIFF time-lapse")
    if z is None:
        volume = open_tiff_volume_frames(path)
        if volume is not None:
            return _add_image_layers(viewer, path, volume, name, lambda: open_tiff_volume_frames(path))
    frames = open_tiff_frames(path, z)
    _refuse_a_z_stack_without_time(path, frames, z)
    return _add_image_layers(viewer, path, frames, name, lambda: open_tiff_frames(path, z))


def _refuse_a_z_stack_without_time(path: Path, frames: Any, z: int | None) -> None:
    """Close ``frames`` and refuse a file of several Z planes opened without ``z`` as a time-lapse: a Z
    stack with no time axis (its planes would be taken for frames). A 3D + time stack never comes
    here (`open_tiff_volume_frames` opens it whole)."""
    from napari_vos.data.readers import tiff_z_planes

    planes = tiff_z_planes(path) if z is None else 1
    if planes > 1:
        frames.close()
        raise ValueError(f"{path} holds a Z stack of {planes} planes with no time axis: napari-vos propagates "
                         "through time; save it as (T, Y, X) or (T, Z, Y, X) with ImageJ or OME axes")


def _add_image_layers(viewer: "napari.Viewer", path: Path, frames: Any, name: str | None,
                      reopen: "Callable[[], Any]") -> "list[Image]":
    """Add the opened ``frames`` (a time-lapse's frames, or a 3D + time stack's `LazyPlanes`) as Image
    layers read a plane at a time, at the file's calibration: one layer, one per channel, or one RGB(A)
    layer for 8-bit colour samples. ``reopen`` opens the file again where a layer is read after the
    last of them left the viewer (`_ReopeningFrames`)."""
    import inspect

    from napari_vos._widgets.layer_sources import SOURCE_KEY
    from napari_vos.data.calibration import read_tiff_calibration, scale_from_calibration
    from napari_vos.data.readers import tiff_stem

    first = frames[0]
    if first.dtype.kind not in "uifb":
        frames.close()
        raise ValueError(f"{path} holds {first.dtype} pixels, which napari cannot show as an image")
    grid = tuple(getattr(frames, "volume", (len(frames),)))  # (T,) or (T, Z): one chunk a plane
    reader = _ReopeningFrames(frames, reopen)
    stack = _lazy_stack(reader, grid, first.shape, first.dtype)
    scale, units = scale_from_calibration(read_tiff_calibration(path), len(grid) + 2)  # (T[, Z], Y, X)
    name = name or tiff_stem(path)
    # the file the layers are read from, which no save may replace (`layer_sources`)
    kwargs: dict[str, Any] = {"scale": scale, "metadata": {SOURCE_KEY: str(path.resolve())}}
    if "units" in inspect.signature(viewer.add_image).parameters:  # napari >= 0.6
        kwargs["units"] = units
    if first.ndim == 3:
        channels = first.shape[-1]
        colour = frames.channels_are_colour is not False and channels in (3, 4) and first.dtype == "uint8"
        if colour:
            added = [viewer.add_image(stack, name=name, rgb=True, **kwargs)]
        else:
            added = list(viewer.add_image(stack, channel_axis=stack.ndim - 1,
                                          name=[f"{name} ch{c}" for c in range(channels)], **kwargs))
    else:
        added = [viewer.add_image(stack, name=name, rgb=False, **kwargs)]
    reader.close_with(viewer, added)
    return added


def _lazy_stack(reader: "_ReopeningFrames", grid: tuple[int, ...], plane: tuple[int, ...], dtype: Any) -> Any:
    """A dask array of shape ``(*grid, *plane)`` with one chunk per plane, plane ``i`` (in C order over
    ``grid``) read by ``reader`` only when napari (or anything else) computes that chunk. Built as one
    graph rather than a ``da.stack`` of delayed reads: a (T, Z) grid of 100 x 200 planes is 20,000 chunks."""
    import itertools
    import uuid

    import dask.array as da
    import numpy as np

    key = f"napari-vos-tiff-{uuid.uuid4().hex}"
    lead = len(grid)
    graph = {(key, *at, *(0,) * len(plane)): (reader.read_block, int(np.ravel_multi_index(at, grid)), lead)
             for at in itertools.product(*(range(n) for n in grid))}
    chunks = tuple((1,) * n for n in grid) + tuple((n,) for n in plane)
    return da.Array(graph, key, chunks=chunks, dtype=dtype)


class _ReopeningFrames:
    """An opened TIFF's frames (or a 3D + time stack's planes), read by the layers `open_image_layers` adds
    (a dask chunk each, `_lazy_stack`): the file is closed once none of them is in the viewer (so it can be
    overwritten or deleted, on Windows too) and opened again if a frame is read after that (a layer kept in
    the console and added back). A close asked for while frames are being read waits for the last of those
    reads."""

    def __init__(self, frames: Any, reopen: Callable[[], Any]) -> None:
        import threading

        self._frames, self._reopen = frames, reopen
        self._lock = threading.Lock()
        self._reading = 0
        self._closing = False

    def read(self, t: int) -> Any:
        with self._lock:
            if self._frames is None:
                self._frames = self._reopen()
            frames, self._closing = self._frames, False
            self._reading += 1
        try:
            return frames[t]
        finally:
            with self._lock:
                self._reading -= 1
                if self._closing and not self._reading:
                    self._close_now()

    def read_block(self, i: int, lead: int) -> Any:
        """Plane ``i`` as one chunk of a `_lazy_stack`: with ``lead`` length-1 axes in front."""
        return self.read(i)[(None,) * lead]

    def close(self) -> None:
        with self._lock:
            self._closing = True
            if not self._reading:
                self._close_now()

    def _close_now(self) -> None:  # under the lock
        if self._frames is not None:
            self._frames.close()
        self._frames, self._closing = None, False

    def close_with(self, viewer: "napari.Viewer", layers: "list[Image]") -> None:
        """Close the file whenever none of ``layers`` is in ``viewer`` (held weakly: a layer let go counts
        as removed)."""
        import weakref

        held = weakref.WeakSet(layers)

        def removed(event: Any = None) -> None:
            if not any(layer in viewer.layers for layer in held):
                self.close()

        viewer.layers.events.removed.connect(removed)


def _saved_labels(path: Path) -> tuple[Any, dict[str, Any] | None, Any]:
    """A labels TIFF's integer (Y, X), (T, Y, X) or (T, Z, Y, X) labels, its record and its calibration, read
    in one opening, the labels with the axes of the layer saved where its file left one out (ImageJ leaves
    out an axis of one frame or one Z plane: `saved_volume_shape`); a ValueError naming what the file holds
    otherwise (floats, colour samples or channels, more axes)."""
    import numpy as np
    import tifffile

    from napari_vos.data.calibration import tiff_calibration
    from napari_vos.data.damaged_files import reading
    from napari_vos.data.readers import saved_volume_shape
    from napari_vos.data.writers import tiff_record

    with reading(path, "a TIFF"), tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        labels, axes, record = series.asarray(), series.axes, tiff_record(tif)
        volume, calibration = saved_volume_shape(tif), tiff_calibration(tif)
    # colour pixels (samples last) or named channels are no labels; tifffile's planar "S" of a plain
    # (T, 3, Y, X) array written without ``photometric`` is taken for the planes it most likely is
    samples = "colour samples" if axes.endswith("S") else "channels" if "C" in axes else None
    if not np.issubdtype(labels.dtype, np.integer) or labels.ndim not in (2, 3, 4) or samples:
        held = f"{labels.dtype} data{f' with {samples}' if samples else ''} of shape {labels.shape}"
        raise ValueError(f"{path} holds {held}, not integer (T, Z, Y, X), (T, Y, X) or (Y, X) labels; open it with "
                         "napari's File > Open")
    if volume is not None:
        return labels.reshape(volume), record, calibration
    if labels.ndim == 2 and _saved_with_three_axes(record or {}):  # one page, which reads back as (Y, X)
        return labels[None], record, calibration
    return labels, record, calibration


def _saved_with_three_axes(record: dict[str, Any]) -> bool:
    """Whether a labels file's record says its layer was (1, Y, X): ``layer_ndim`` 3, or (files
    written before it) 3 axis names or a translate, scale, rotate, shear or affine that places a
    layer of 3 axes (`_placement_fits`)."""
    if record.get("layer_ndim") is not None:
        return record["layer_ndim"] == 3
    if len(record.get("layer_axis_labels") or ()) == 3:
        return True
    return any(_placement_fits(key, record[f"layer_{key}"], 3) for key in PLACEMENT_KEYS if f"layer_{key}" in record)


def _placement_fits(key: str, value: Any, ndim: int) -> bool:
    """Whether a recorded ``layer_<key>`` places a layer of ``ndim`` axes: translate and scale one
    number per axis, rotate (ndim, ndim), shear its ndim * (ndim - 1) / 2 values or (ndim, ndim),
    affine (ndim + 1, ndim + 1); napari refuses the others, or reads the layer's axes from them."""
    import numpy as np

    shape = np.shape(value)
    fits = {"translate": [(ndim,)], "scale": [(ndim,)], "rotate": [(ndim, ndim)],
            "shear": [(ndim * (ndim - 1) // 2,), (ndim, ndim)], "affine": [(ndim + 1, ndim + 1)]}
    return shape in fits[key]
