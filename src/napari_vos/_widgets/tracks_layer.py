"""Each object's path through a labels stack as a napari Tracks layer: where the cells went, drawn with tails.

The propagated ids are the tracks, so a track is an id's centroid on each frame it is on. napari's
Tracks layer sizes its track graph by the largest track id and breaks on negative ones (they wrap
round to 2**32), so ids that are neither small nor positive are numbered 1, 2... for it, and every
track keeps its object's id in the ``label`` feature. The output of a run through one Z plane of a
(T, Z, Y, X) image is tracked, and split, on its plane, and its tracks and split cells lie at that
plane. Any other (T, Z, Y, X) labels (a run through several planes, a 3D segmentation over time) are
tracked in 3D, each id's centroid in its (Z, Y, X) volume, and their divided cells split in 3D. No Qt
here: the console and the widget share it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from napari.layers import Labels

__all__ = ["centroid_tracks", "lineage_graph", "layer_parents", "placed_like", "tracks_layer_data",
           "divided_layer_data", "tracked_stack"]

#: the largest object id used as napari's track id as it is (its graph is sized by the largest id)
_LARGEST_TRACK_ID = 2**20


def centroid_tracks(labels: Any, progress: Callable[[int, int], None] | None = None
                    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(N, 4) rows of track id, frame, y, x (pixels) for each object's centroid on each frame of a
    (T, Y, X) labels stack, sorted by track then frame, and the features napari shows with them
    (``label``: the object's id; ``area_px``). (T, Z, Y, X) labels (a 3D segmentation over time) give
    (N, 5) rows of track id, frame, z, y, x, napari's 3D + time tracks, with ``volume_px`` (voxels)
    for the area. Read one frame (one (Z, Y, X) volume) at a time."""
    from skimage.measure import regionprops_table

    from napari_vos.object_table import compact_ids

    if np.ndim(labels) not in (3, 4):
        raise ValueError(f"tracks follow objects through time: give (T, Y, X) or (T, Z, Y, X) labels, not shape "
                         f"{np.shape(labels)}")
    frames, axes = int(np.shape(labels)[0]), np.ndim(labels) - 1
    # exact ids in the stack's own range: uint64 ids from 2**63 on stay positive (int64 made them negative)
    kind = np.dtype(getattr(labels, "dtype", None) or (np.asarray(labels[0]).dtype if frames else np.int64))
    id_type = np.uint64 if kind.kind == "u" and kind.itemsize == 8 else np.int64
    # exact ids (float64 rounds above 2**53); t, area (voxels), then the centroid's axes
    ids, values = [np.zeros(0, id_type)], [np.zeros((0, 2 + axes))]
    for t in range(frames):
        compact, originals = compact_ids(np.asarray(labels[t]))
        table = regionprops_table(compact, properties=("label", "area", "centroid"))
        found = np.asarray(table["label"], np.int64)
        ids.append(originals[found - 1].astype(id_type) if originals is not None else found.astype(id_type))
        values.append(np.column_stack([np.full(len(found), t), table["area"],
                                       *(table[f"centroid-{a}"] for a in range(axes))]).astype(np.float64))
        if progress is not None:
            progress(t + 1, frames)
    exact, rows = np.concatenate(ids), np.concatenate(values)
    order = np.lexsort((rows[:, 0], exact))
    exact, rows = exact[order], rows[order]
    unique, rank = np.unique(exact, return_inverse=True)
    small = unique.size == 0 or (unique.min() > 0 and unique.max() <= _LARGEST_TRACK_ID)
    track_ids = exact if small else rank + 1
    data = np.column_stack([track_ids, rows[:, 0], rows[:, 2:]]).astype(np.float64)
    return data, {"label": exact, "volume_px" if axes == 3 else "area_px": rows[:, 1].astype(np.int64)}


def layer_parents(metadata: dict[str, Any]) -> dict[int, int]:
    """Each daughter's parent (daughter id -> parent id) of a labels layer whose divided cells were split:
    from a *Split divided cells* layer's lineage (``metadata["napari_vos_divisions"]``) or a `napari-vos
    divisions` TIFF's record (``metadata["napari_vos"]["divisions_split"]``); {} for other labels."""
    from napari_vos.divisions import parents_from_metadata

    return parents_from_metadata(metadata) or {}


def lineage_graph(metadata: dict[str, Any], data: np.ndarray, labels: np.ndarray) -> dict[int, list[int]]:
    """napari's Tracks ``graph`` (track id -> [parent's track id]) of labels whose divided cells were split:
    a *Split divided cells* layer's lineage (``metadata["napari_vos_divisions"]``) or a `napari-vos
    divisions` TIFF's record (``metadata["napari_vos"]["divisions_split"]``, as `open_labels_layer`
    puts it); {} for other labels. ``data``, ``labels``: `centroid_tracks`' rows and ``label`` feature,
    which map an object id to its track id; a parent or daughter with no track is left out (napari
    refuses a graph naming a track it does not have)."""
    parents = layer_parents(metadata)
    track = {int(label): int(tid) for label, tid in zip(labels.tolist(), data[:, 0].tolist())}
    return {track[d]: [track[p]] for d, p in sorted(parents.items()) if d in track and p in track}


def placed_like(layer: "Labels") -> dict[str, Any]:
    """A new layer's placement keywords for lying where ``layer`` lies: its scale, translate, units and
    any rotate, shear or affine (a rotated labels layer's tracks or split cells turned alike)."""
    from napari_vos._widgets.layer_job import orientation

    placement: dict[str, Any] = {"scale": tuple(layer.scale), "translate": tuple(layer.translate)}
    if getattr(layer, "units", None) is not None:
        placement["units"] = tuple(str(u) for u in layer.units)
    placement.update(orientation(layer))
    return placement


def tracked_stack(layer: "Labels", what: str = "tracks") -> tuple[Any, int | None]:
    """The labels a layer's tracks follow: its (T, Y, X) array (the full-resolution level when multiscale),
    the run's plane of the output of a run through one Z plane with that plane's index, or a (T, Z, Y, X)
    volume over time as it is (tracked in 3D; plane index None); an error naming the layer for other
    shapes, or where a plane output holds labels on other planes too."""
    from napari_vos._widgets.plane_outputs import run_plane

    data = layer.data[0] if layer.multiscale else layer.data
    stack, z = run_plane(data, dict(layer.metadata or {}), layer.name, f"{what} are found on the run's plane only")
    if np.ndim(stack) not in (3, 4):
        raise ValueError(f"{what} are found over time: the labels layer {layer.name!r} has shape "
                         f"{np.shape(data)}, not (T, Y, X) (nor (T, Z, Y, X))")
    return stack, z


def tracks_layer_data(layer: "Labels", progress: Callable[[int, int], None] | None = None
                      ) -> tuple[np.ndarray, dict[str, Any], str]:
    """The Tracks layer data tuple of a (T, Y, X) labels layer's centroid tracks, where the labels lie
    (their scale, translate, units and any rotate, shear or affine), named "<labels> tracks", with the
    division lineage as napari's ``graph`` where the labels are a divided cells split (`lineage_graph`);
    an error naming the layer where it is not one to track (one frame, no object). A plane output's
    tracks are (track, t, z, y, x) rows at its plane; a (T, Z, Y, X) volume's (any other 4-D labels layer)
    are its objects' 3D centroids, with ``volume_px`` for ``area_px``. ``progress(done, total)`` after
    each frame."""
    import warnings

    from napari_vos._widgets.unfinished import stopped_run_note

    stack, z = tracked_stack(layer, "tracks")
    data, features = centroid_tracks(stack, progress)
    if len(data) == 0:
        raise ValueError(f"the labels layer {layer.name!r} holds no object on any frame: nothing to track")
    stopped = stopped_run_note(dict(layer.metadata or {}), layer.name, "so the tracks end where the run stopped")
    if stopped:
        warnings.warn(stopped, stacklevel=2)
    state: dict[str, Any] = {"name": f"{layer.name} tracks", "features": features, **placed_like(layer)}
    graph = lineage_graph(dict(layer.metadata or {}), data, features["label"])
    if graph:
        state["graph"] = graph
    if z is not None:  # napari's 3D + time tracks: a z column, the layer's (T, Z, Y, X) placement
        data = np.insert(data, 2, float(z), axis=1)
    return data, state, "tracks"


def divided_layer_data(layer: "Labels", progress: Callable[[int, int], None] | None = None
                       ) -> tuple[np.ndarray, dict[str, Any], str]:
    """The (T, Y, X) labels layer with each divided object's daughters under new ids
    (`napari_vos.divisions.split_divisions`, its defaults; a (T, Z, Y, X) layer is split in 3D, a volume a
    frame), as the data tuple of a new labels layer "<labels> divided" where the labels lie (rotate, shear
    and affine too), the lineage (id -> parent, first and last frame) in its metadata, with the run's record of an output (``metadata["napari_vos"]``,
    as `napari-vos divisions` keeps it in its TIFF); labels split before (a *Split divided cells* layer, or
    a `napari-vos divisions` TIFF opened with its record) keep their parents. A plane output is split on
    its plane, into a layer of its shape (the other planes empty) that keeps its record."""
    from napari_vos._widgets.plane_outputs import plane_volume
    from napari_vos.divisions import split_divisions

    stack, z = tracked_stack(layer, "divisions")
    result = split_divisions(stack, progress=progress)
    metadata = dict(layer.metadata or {})
    result.inherit(layer_parents(metadata))
    kept: dict[str, Any] = {"napari_vos_divisions": {"source": layer.name, "lineage": {
        str(i): list(v) for i, v in result.lineage.items()}}}
    if isinstance(metadata.get("napari_vos"), dict):  # an output's record: the split labels are results too
        kept["napari_vos"] = dict(metadata["napari_vos"])
    state = {"name": f"{layer.name} divided", **placed_like(layer), "metadata": kept}
    if z is not None:
        return plane_volume(result.labels, z, int(np.shape(layer.data)[1])), state, "labels"
    return result.labels, state, "labels"
