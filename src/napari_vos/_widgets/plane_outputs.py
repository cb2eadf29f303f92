"""The output of a run through one Z plane of a (T, Z, Y, X) image: its plane read as (T, Y, X) labels
(to track, split, measure, export or save), and put back in a layer of the image's shape.

Its output layer has the image's shape with one plane filled. The napari-vos labels TIFF keeps that
plane as (T, Y, X) labels, as `napari-vos propagate --z N` writes them, with the plane's place in
the record (``layer_z``: the Z axis's scale, translate, unit and name), so `open_labels_layer` puts
the plane back where it was in a layer of the image's shape. No Qt here.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["run_plane", "image_plane", "image_volume", "empty_planes", "plane_volume", "without_z", "plane_to_save",
           "plane_layer", "planes_run", "plain_transform"]


def planes_run(record: dict[str, Any]) -> list[int | None]:
    """The Z planes a run's record says it filled: ``z_planes_run`` (runs through several planes into one
    output), else [``z_plane``] ([None] for a time-lapse run's)."""
    several = record.get("z_planes_run")
    return [int(z) for z in several] if isinstance(several, list) else [record.get("z_plane")]


def _plane_record(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    record = (metadata or {}).get("napari_vos")
    return record if isinstance(record, dict) and record.get("z_plane") is not None else None


def run_plane(data: Any, metadata: dict[str, Any] | None, name: str, kept_for: str) -> tuple[Any, int | None]:
    """The run's plane of the (T, Z, Y, X) output of a run through one Z plane, as (T, Y, X) labels (a numpy
    view, or read a frame at a time), and that plane's index; ``data`` and None for any other labels.
    A ValueError where the layer holds labels on other planes too, which would be left out unsaid
    (``kept_for``: what keeps the run's plane only, the error's end). Looking costs little: the other
    planes of an output are pages never written (0.04 s for 119 planes of 30 frames of 512x512,
    `scripts/z_plane_cost.py`, docs/benchmarks.md)."""
    from napari_vos.data.plane_view import plane_of

    record = _plane_record(metadata)
    if record is None or np.ndim(data) != 4:
        return data, None
    z, planes = int(record["z_plane"]), int(np.shape(data)[1])
    if not 0 <= z < planes:
        raise ValueError(f"the labels layer {name!r} records Z plane {z} but has {planes} planes")
    others = _other_planes(data, z)
    if others:
        raise ValueError(f"the labels layer {name!r} is the output of a run through Z plane {z} but holds labels "
                         f"on plane(s) {', '.join(map(str, others[:5]))} too: {kept_for}")
    return plane_of(data, z), z


def _other_planes(data: Any, z: int) -> list[int]:
    """The planes of (T, Z, Y, X) labels besides ``z`` that hold any label."""
    return [k for k in range(int(np.shape(data)[1])) if k != z and np.asarray(data[:, k]).any()]


def image_plane(video: Any, image: dict[str, Any], volume: tuple[int, ...], z: int, labels_name: str,
                hint: str) -> Any:
    """Plane ``z`` of the (T, Z, Y, X[, C]) image a plane output of shape ``volume`` was propagated on (a
    multiscale image: of its level of that shape), read a frame at a time; a ValueError naming both
    shapes, then ``hint``, where the image has no such level. ``image``: its layer state (name, multiscale)."""
    from napari_vos.data.plane_view import plane_of

    return plane_of(image_volume(video, image, volume, labels_name, hint), z)


def image_volume(video: Any, image: dict[str, Any], volume: tuple[int, ...], labels_name: str, hint: str) -> Any:
    """The (T, Z, Y, X[, C]) image, or the level of a multiscale one, whose (T, Z, Y, X) is ``volume``, the
    shape of the labels layer ``labels_name``; a ValueError naming both shapes, then ``hint``, where there is
    none. ``image``: its layer state (name, multiscale)."""
    levels = list(video) if image.get("multiscale") else [video]
    match = next((level for level in levels if tuple(np.shape(level)[:4]) == tuple(volume)
                  and len(np.shape(level)) <= 5), None)
    if match is None:
        shapes = " or ".join(str(tuple(np.shape(level))) for level in levels)
        raise ValueError(f"the labels layer {labels_name!r} is {tuple(volume)} but the image layer "
                         f"{image.get('name')!r} is {shapes}: {hint}")
    return match


def empty_planes(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Zeros of a (T, Z, Y, X) ``shape`` stored plane by plane ((Z, T, Y, X) seen as (T, Z, Y, X)), for an
    output of which one plane is written: numpy's zeros take memory only where written, but numpy asks
    for 2 MiB huge pages, and a plane's frames kept 2 MiB apart (stored frame by frame) committed a
    whole huge page for each (60 MiB for 30 frames of 512 x 512, against 7.5 MiB held together)."""
    t, z, *frame = shape
    return np.zeros((z, t, *frame), dtype).swapaxes(0, 1)


def plane_volume(labels: np.ndarray, z: int, planes: int) -> np.ndarray:
    """(T, Y, X) labels as plane ``z`` of a (T, Z, Y, X) layer whose other planes are empty, stored plane by
    plane as a run's output is (`empty_planes`): only that plane's pages take memory."""
    t, *frame = np.shape(labels)
    volume = empty_planes((t, planes, *frame), np.asarray(labels[:0]).dtype)
    volume[:, z] = labels
    return volume


def without_z(values: Any) -> list[Any] | None:
    """A (T, Z, Y, X) layer's per-axis values (scale, units, axis names) for its (T, Y, X) plane."""
    return None if values is None else [v for i, v in enumerate(list(values)) if i != 1]


def plane_to_save(data: Any, attributes: dict[str, Any]) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """For the (T, Z, Y, X) output of a run through one plane: its plane's (T, Y, X) labels, the layer's
    attributes for those three axes, and the record entry ``layer_z`` that places the plane again;
    ``data`` and ``attributes`` as they are (and {}) for any other layer, and for such an output that
    the plane alone would not keep whole (saved as (T, Z, Y, X) labels): one holding labels on other
    planes too, or rotated, sheared or affine-transformed."""
    from napari_vos.data.plane_view import plane_of

    record = _plane_record(attributes.get("metadata"))
    if record is None or np.ndim(data) != 4:
        return data, attributes, {}
    z = int(record["z_plane"])
    if not 0 <= z < np.shape(data)[1] or _other_planes(data, z) or _transformed(attributes):
        return data, attributes, {}
    plane = plane_of(data, z)
    kept = {k: v for k, v in attributes.items() if k not in ("rotate", "shear", "affine")}
    scale, translate = (list(attributes[key]) if attributes.get(key) is not None else [default] * 4
                        for key, default in (("scale", 1.0), ("translate", 0.0)))
    units, names = attributes.get("units"), attributes.get("axis_labels")
    kept.update({"scale": without_z(scale), "translate": without_z(translate)})
    if units is not None:
        kept["units"] = without_z(units)
    if names is not None:
        kept["axis_labels"] = without_z(names)
    place = {"scale": float(scale[1]), "translate": float(translate[1]),
             "unit": str(units[1]) if units is not None else None, "axis_label": str(names[1]) if names is not None else None}
    return plane, kept, {"layer_z": place}


def _transformed(attributes: dict[str, Any]) -> bool:
    """Whether a layer's rotate, shear or affine is other than the identity (`plain_transform`)."""
    return not all(plain_transform(attributes.get(key)) for key in ("rotate", "shear", "affine"))


def plain_transform(value: Any) -> bool:
    """Whether a layer's rotate, shear or affine (a matrix, or an object with ``affine_matrix``) changes
    nothing: the identity matrix, or zeros where given as values (a 2-D layer's rotate as an angle,
    a shear as its upper-triangle values); None too."""
    if value is None:
        return True
    matrix = np.asarray(getattr(value, "affine_matrix", value), dtype=float)
    if matrix.ndim < 2:
        return bool(np.allclose(matrix, 0))
    return matrix.shape[0] == matrix.shape[1] and bool(np.allclose(matrix, np.eye(len(matrix))))


def plane_layer(labels: np.ndarray, kwargs: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """For (T, Y, X) labels whose record (``kwargs["metadata"]["napari_vos"]``) says they are the plane of
    a run through a (T, Z, Y, X) image (``z_plane``, ``z_planes``, ``layer_z``): that layer again, the
    plane in place among empty ones (stored plane by plane, as the run's output is), and ``kwargs``
    (scale, translate, units, axis names) with the Z axis put back; the two as they are otherwise."""
    record = _plane_record(kwargs.get("metadata"))
    place = record.pop("layer_z", None) if record is not None else None
    if record is None or not isinstance(place, dict) or labels.ndim != 3 or not record.get("z_planes"):
        return labels, kwargs
    z, planes = int(record["z_plane"]), int(record["z_planes"])
    if not 0 <= z < planes:
        return labels, kwargs
    volume = plane_volume(labels, z, planes)
    out = dict(kwargs)
    out["scale"] = [*list(kwargs["scale"])[:1], float(place.get("scale", 1.0)), *list(kwargs["scale"])[1:]]
    translate = list(kwargs.get("translate", [0.0, 0.0, 0.0]))
    out["translate"] = [*translate[:1], float(place.get("translate", 0.0)), *translate[1:]]
    if "units" in kwargs:
        out["units"] = [*list(kwargs["units"])[:1], place.get("unit") or "pixel", *list(kwargs["units"])[1:]]
    if "axis_labels" in kwargs and place.get("axis_label"):
        out["axis_labels"] = [*list(kwargs["axis_labels"])[:1], place["axis_label"], *list(kwargs["axis_labels"])[1:]]
    return volume, out
