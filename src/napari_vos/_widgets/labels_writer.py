"""napari's writer for labels (npe2 ``writers``): a calibrated ImageJ TIFF with the napari-vos provenance.

napari's own TIFF writer keeps the data only (labels as uint32, no pixel size, no record of the
run); this one writes what `napari-vos propagate` writes. It is offered in the save dialog beside
napari's, which stays the default.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_vos.data.calibration import calibration_from_scale
from napari_vos.data.writers import write_tiff_labels
from napari_vos._widgets.layer_sources import refuse_a_source, viewer_images
from napari_vos._widgets.plane_outputs import plain_transform, plane_to_save


#: extensions of other formats: a TIFF written under one of them opens nowhere
_OTHER_FORMATS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".npy", ".npz", ".zarr", ".h5", ".hdf5",
                  ".csv", ".json", ".txt", ".mp4", ".avi", ".mov", ".czi", ".nd2", ".lif", ".svg", ".pdf"}


class LabelsNotWritten(Exception):
    """Why the labels TIFF was not written. Not a ValueError: napari's ``layer.save(..., plugin=)``
    drops a writer's ValueError and warns only that the plugin "is not a valid writer" for the path."""


def write_labels_tiff(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """npe2 single-layer writer: (T, Z, Y, X), (T, Y, X) or (Y, X) labels to ``path``; returns the path
    written. The output of a run through one Z plane of a (T, Z, Y, X) image is written as its plane,
    with the plane's place in the record (`plane_outputs`); any other (T, Z, Y, X) layer whole, with
    its Z step.

    napari's save dialog hands the name as typed (it proposes the layer's name, without an
    extension): a name without one gets ``.tif``, another extension is refused (a TIFF named
    ``.png`` opens nowhere).
    """
    name = attributes.get("name", "labels")
    suffix = Path(path).suffix.lower()
    if suffix in _OTHER_FORMATS:
        raise LabelsNotWritten(f"the napari-vos labels file is a TIFF: name it {Path(path).stem}.tif, not {Path(path).name}")
    if suffix not in (".tif", ".tiff"):  # none, or a dot inside the name ("run 1.5 cells", "cells.ome segmented")
        path = f"{path}.tif"
    try:  # an image read from its file frame by frame would show the labels (and its pixels be lost)
        refuse_a_source(path, viewer_images(), "the labels")
    except ValueError as err:
        raise LabelsNotWritten(str(err)) from None
    if attributes.get("multiscale"):  # np.asarray of napari's multiscale data is its coarsest level
        data = data[0]
    data, attributes, plane_place = plane_to_save(data, attributes)
    labels = np.asarray(data)
    # an axis of one frame or plane is left out of an ImageJ file: it reads back with fewer axes
    squeezed = labels.ndim in (3, 4) and 1 in labels.shape[:labels.ndim - 2]
    if labels.ndim == 2:
        labels = labels[None]
    if labels.ndim not in (3, 4):
        raise LabelsNotWritten(f"the napari-vos labels TIFF holds (T, Z, Y, X), (T, Y, X) or (Y, X) labels; {name!r} "
                               f"has shape {labels.shape}: save it with napari's own writer")
    if labels.size and labels.min() < 0:  # would wrap to 65535 in the unsigned TIFF
        raise LabelsNotWritten(f"the labels layer {name!r} holds negative ids ({labels.min()}); the labels TIFF keeps "
                         "0 (background) and positive ids: save it with napari's own writer")
    scale = [float(v) for v in np.ravel(attributes.get("scale", ()))]
    # the pixel size is a length (a flipped layer's negative scale: its sign goes into the record)
    calibration = calibration_from_scale([abs(v) for v in scale] or None, attributes.get("units"))  # per axis
    provenance = run_record(attributes.get("metadata") or {})
    placement = layer_placement(attributes, scale)
    if squeezed:
        placement["layer_ndim"] = labels.ndim
    if calibration.frame_interval is not None and calibration.time_unit is None:
        # ImageJ's finterval reads back in seconds: the layer's own units say its time axis had none
        placement["layer_units"] = [str(u) for u in attributes.get("units") or ("pixel",) * labels.ndim]
    placement.update(plane_place)
    if placement:  # no TIFF tag holds these: the record keeps them for `open_labels_layer`
        provenance = {**(provenance or {}), **placement}
    return [str(write_tiff_labels(path, labels, calibration=calibration, provenance=provenance))]


def run_record(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """The run's record to write for a layer's ``metadata``: its provenance, with a *Split divided
    cells* layer's lineage as the divisions a `napari-vos divisions` record lists (so the file opens
    again with its parents); for an output a run is still filling (saved mid-run, before the
    provenance comes), a record saying it is incomplete, so the file opens again as an output (its
    propagated frames results, not annotations), not as hand-painted labels; None for a layer no run
    made."""
    from napari_vos.divisions import record_divisions

    split = metadata.get("napari_vos_divisions")
    if isinstance(split, dict) and isinstance(split.get("lineage"), dict):
        record = metadata.get("napari_vos")
        return {**(record if isinstance(record, dict) else {}),
                "divisions_split": {"source": split.get("source"), "divisions": record_divisions(split["lineage"])}}
    if "napari_vos" in metadata:
        return metadata["napari_vos"]
    if "napari_vos_output" in metadata:
        return {"complete": False, "frames_segmented": "unknown: saved while the run filling this layer was going "
                "on (frames it had not reached yet are empty)"}
    return None


def layer_placement(attributes: dict[str, Any], scale: list[float]) -> dict[str, Any]:
    """What places a layer in the world besides its pixel size, where it is not the default: its
    translate, a flipped (negative) scale, and its rotate, shear and affine, as record entries
    ``layer_translate``, ``layer_scale``, ``layer_rotate``, ``layer_shear`` and ``layer_affine``; and its
    axis names (``layer_axis_labels``) where they are not napari's defaults ("-3" or "axis -3").
    (`write_labels_tiff` adds ``layer_ndim`` for a layer with one frame or one Z plane, which an ImageJ
    file leaves out, and ``layer_units`` for a time axis without a unit.)"""
    out: dict[str, Any] = {}
    translate = [float(v) for v in np.ravel(attributes.get("translate", ()))]
    if any(translate):
        out["layer_translate"] = translate
    axis_labels = [str(v) for v in attributes.get("axis_labels") or ()]
    # napari's own names: "-3", "-2", "-1" (0.7 on), "axis -3", ... before
    if axis_labels and not all(v.removeprefix("axis ").lstrip("-").isdigit() for v in axis_labels):
        out["layer_axis_labels"] = axis_labels
    if any(v < 0 for v in scale):
        out["layer_scale"] = scale
    for key in ("rotate", "shear", "affine"):
        value = attributes.get(key)
        if not plain_transform(value):
            out[f"layer_{key}"] = np.asarray(getattr(value, "affine_matrix", value), dtype=float).tolist()
    return out
