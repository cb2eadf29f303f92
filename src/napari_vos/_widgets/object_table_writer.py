"""napari's writer for a labels layer's measurements (npe2 ``writers``): two CSV tables, what `napari-vos
measure` writes.

Select the labels (and, for intensities, the image they were propagated on), File > Save Selected
Layers..., and pick the napari-vos measurements type: NAME.csv gets one row per object per frame,
NAME.tracks.csv one per object id. Sizes and positions are also given in the labels layer's units
(its scale), times in its time unit. (T, Z, Y, X) labels that are no run's plane output (a run through
several planes, a 3D segmentation over time) are measured in 3D (`measure_volumes`: voxels, a volume
in the layer's Z step x Y x X units), with one level of a (T, Z, Y, X) image for the intensities.
napari calls writers on its GUI thread, so the viewer waits while they are measured: 0.15 s for 40
frames of 25 cells at 256x256, 1.0 s for 37 frames of ~70 cells at 1024x1022, 0.3 s for 30 volumes of
40x256x256 with 50 objects (docs/benchmarks.md); Layers > Measure (`measure_menu`) measures in the
background, `napari-vos measure` outside napari.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from napari_vos.data.calibration import calibration_from_scale
from napari_vos.data.pyramid import frame_shapes, level_for_labels

#: extensions of other formats, refused rather than given .csv after them
_OTHER_FORMATS = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".gif", ".mp4", ".json", ".txt", ".xlsx", ".xls",
                  ".tsv", ".npy", ".npz", ".zarr", ".h5", ".hdf5", ".svg", ".pdf"}


class TablesNotWritten(Exception):
    """Why the measurements were not written. Not a ValueError: napari's ``layers.save(..., plugin=)``
    drops a writer's ValueError and warns only that the plugin "is not a valid writer" for the path."""


def write_object_tables(path: str, layer_data: list[tuple[Any, dict[str, Any], str]]) -> list[str]:
    """npe2 multi-layer writer for one labels layer and at most one image layer: the per-object and
    per-track CSV tables at ``path`` and beside it; returns both paths. What it cannot measure is
    refused as a `TablesNotWritten` saying why."""
    try:
        return _write_object_tables(path, layer_data)
    except ValueError as err:
        raise TablesNotWritten(str(err)) from None


def layer_tables(labels: Any, labelled: dict[str, Any], video: Any = None, image: dict[str, Any] | None = None,
                 progress: Callable[[int, int], None] | None = None) -> tuple[Any, Any]:
    """The (objects, tracks) tables of a labels layer's data and state (its ``scale``, ``units``,
    ``multiscale``, ``metadata``), with the intensities under an image layer's when given.
    progress(done, total) after each frame measured."""
    from napari_vos._widgets.unfinished import stopped_run_note
    from napari_vos.divisions import parents_from_metadata
    from napari_vos.object_table import measure_objects, track_summary
    from napari_vos._widgets.plane_outputs import without_z

    metadata = labelled.get("metadata") or {}
    labels, video = measured_inputs(labels, labelled, video, image)
    stopped = stopped_run_note(metadata, labelled.get("name", "labels"), "in the tables as well")
    if stopped:
        warnings.warn(stopped, stacklevel=3)
    scale = [abs(float(v)) for v in np.ravel(labelled.get("scale", ()))]
    units = labelled.get("units")
    if len(scale) == 4 and np.ndim(labels) != 4:  # a run's plane output: its plane's (T, Y, X) calibration
        scale, units = without_z(scale) or [], without_z(units)
    # a volume over time is measured in 3D, with its Z step
    calibration = calibration_from_scale(scale or None, units)
    objects = measure_objects(labels, video, calibration=calibration, progress=progress)
    frames = int(np.shape(labels)[0]) if np.ndim(labels) >= 3 else 1
    parents = parents_from_metadata(metadata)  # a split layer's, or an opened divisions TIFF's record
    return objects, track_summary(objects, frames=frames, parents=parents)


def measured_inputs(labels: Any, labelled: dict[str, Any], video: Any = None,
                    image: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """The labels and video `layer_tables` measures (the full-resolution labels, the image level they
    match; a run's plane output: its plane, and that plane of a (T, Z, Y, X) image; other (T, Z, Y, X)
    labels as they are, measured in 3D, with the image level of their shape), or a ValueError saying why
    they cannot be measured together: an output a run is still filling, labels that are not (T, Y, X),
    (Y, X) or (T, Z, Y, X), an image of another size, a plane output with labels on other planes too. The
    Measure menu asks it before its save dialog: no frame is read (a plane output's other planes are
    looked at, pages never written: `run_plane`)."""
    from napari_vos._widgets.plane_outputs import image_plane, image_volume, run_plane
    from napari_vos._widgets.unfinished import refuse_unfinished

    name = labelled.get("name", "labels")
    refuse_unfinished(labelled.get("metadata") or {}, name, "measure it")
    labels = labels[0] if labelled.get("multiscale") else labels
    volume = tuple(np.shape(labels))
    labels, z = run_plane(labels, labelled.get("metadata"), name, "the measurements are of the run's plane only")
    if np.ndim(labels) not in (2, 3, 4):
        raise ValueError(f"the napari-vos measurements take (T, Y, X) or (Y, X) labels, or (T, Z, Y, X) ones "
                         f"(measured in 3D); {name!r} has shape {np.shape(labels)}")
    if z is not None and video is not None and image is not None:
        video = image_plane(video, image, volume, z, name, "select the labels and the image they were propagated "
                            "on (or the labels alone, for sizes and positions only)")
    elif np.ndim(labels) == 4 and video is not None and image is not None:
        video = image_volume(video, image, volume, name, "select the labels and the (T, Z, Y, X) image they belong "
                             "to (or the labels alone, for sizes and positions only)")
    elif video is not None and image is not None:
        rgb = bool(image.get("rgb"))
        if image.get("multiscale"):  # the level the labels match (a propagation over a coarse one)
            shapes = frame_shapes([np.shape(level) for level in video], rgb)
            level = level_for_labels(np.shape(labels), shapes)
            video = video[level or 0]
        if tuple(np.shape(video)[:np.ndim(labels)]) != tuple(np.shape(labels)):
            raise ValueError(f"the labels layer {name!r} is {np.shape(labels)} but the image layer "
                             f"{image.get('name')!r} is {tuple(np.shape(video))}: select the labels and the image "
                             "they were propagated on (or the labels alone, for sizes and positions only)")
    return labels, video


def layer_inputs(labels: Any, image: Any = None) -> tuple[Any, dict[str, Any], Any, dict[str, Any] | None]:
    """`layer_tables`' first four arguments from a napari labels layer and an optional image layer: the
    labels' data and the state the tables read (scale, units, metadata, name, multiscale), the image's
    data and what of its display they need (rgb, multiscale, name)."""
    state = {"scale": tuple(labels.scale), "units": getattr(labels, "units", None),
             "metadata": dict(labels.metadata or {}), "name": labels.name, "multiscale": labels.multiscale}
    if image is None:
        return labels.data, state, None, None
    return labels.data, state, image.data, {"rgb": image.rgb, "multiscale": image.multiscale, "name": image.name}


def table_path(path: str | Path) -> Path:
    """The per-object table's path for a name typed in a save dialog: ``.csv`` added where it has no
    extension (or a dot inside the name); a ValueError for another format's (a TIFF named .csv opens
    nowhere, and "x.tif.csv" is not what was asked)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in _OTHER_FORMATS:
        raise ValueError(f"the napari-vos measurements are CSV tables: name them {path.stem}.csv, not {path.name}")
    return path if suffix == ".csv" else path.with_name(f"{path.name}.csv")


def _write_object_tables(path: str, layer_data: list[tuple[Any, dict[str, Any], str]]) -> list[str]:
    images = [(data, meta) for data, meta, kind in layer_data if kind == "image"]
    labels = [(data, meta) for data, meta, kind in layer_data if kind == "labels"]
    if len(labels) != 1 or len(images) > 1:
        raise ValueError("the napari-vos measurements are of one labels layer, with at most one image layer for "
                         "the intensities: select those (or pick another file type in the save dialog)")
    path = str(table_path(path))
    from napari_vos.object_table import write_tables

    video, image = images[0] if images else (None, None)
    objects, tracks = layer_tables(labels[0][0], labels[0][1], video, image)
    return [str(where) for where in write_tables(objects, tracks, path)]
