"""Layers > Track: "Centroid tracks" (the selected labels layer's objects as a Tracks layer) and "Split
divided cells" (their daughters under new ids, as a new labels layer).

napari runs a menu command with the active layer injected by its type annotation and adds the layer
data tuple it returns, so the annotations name napari's real types, resolved at run time (this
module, unlike the package, imports napari). The centroids take 0.06 s for the 40-frame cells sample
and 0.3 s for 37 frames of 1024x1022 with ~70 cells (docs/benchmarks.md), on napari's GUI thread.
"""
from __future__ import annotations

import napari.layers
import napari.types

from napari_vos._widgets.tracks_layer import tracks_layer_data


def labels_tracks(layer: napari.layers.Labels) -> napari.types.LayerDataTuple:
    """The centroid tracks of the active (T, Y, X) labels layer, where it lies (`tracks_layer_data`)."""
    if not isinstance(layer, napari.layers.Labels):
        raise ValueError("select a (T, Y, X) labels layer (a Propagate output) to draw its objects' tracks")
    return tracks_layer_data(layer)


def divided_labels(layer: napari.layers.Labels) -> napari.types.LayerDataTuple:
    """The active (T, Y, X) labels layer with each divided object's daughters under new ids
    (`napari_vos.divisions.split_divisions`, its defaults), as a new labels layer "<labels> divided"
    where the labels lie (rotate, shear and affine too); the lineage (id -> parent, first and last frame)
    in its metadata."""
    import numpy as np

    from napari_vos._widgets.tracks_layer import placed_like
    from napari_vos.divisions import parents_from_lineage, split_divisions

    if not isinstance(layer, napari.layers.Labels):
        raise ValueError("select a (T, Y, X) labels layer (a Propagate output) to split its divided cells")
    data = layer.data[0] if layer.multiscale else layer.data
    if np.ndim(data) != 3:
        raise ValueError(f"divisions happen over time: the labels layer {layer.name!r} has shape {np.shape(data)}, "
                         "not (T, Y, X)")
    result = split_divisions(data)
    # a layer split before: its parents kept
    result.inherit(parents_from_lineage((layer.metadata.get("napari_vos_divisions") or {}).get("lineage")) or {})
    state = {"name": f"{layer.name} divided", **placed_like(layer),
             "metadata": {"napari_vos_divisions": {"source": layer.name, "lineage": {
                 str(i): list(v) for i, v in result.lineage.items()}}}}
    return (result.labels, state, "labels")
