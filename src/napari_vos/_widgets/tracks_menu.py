"""Layers > Track: "Centroid tracks" (the selected labels layer's objects as a Tracks layer) and "Split
divided cells" (their daughters under new ids, as a new labels layer).

napari runs a menu command with the active layer and the viewer injected by their type annotations,
so the annotations name napari's real types, resolved at run time (this module, unlike the package,
imports napari). The work runs off the GUI thread with a cancelable progress bar (`menu_work`): the
split takes about 9 s for 200 frames of 512x512 with 80 cells (docs/benchmarks.md), which froze the
viewer. Both take (T, Y, X) labels, a run's plane output (at its plane) and (T, Z, Y, X) labels (in 3D: the
tracks of 3D centroids, the split of a volume a frame). A layer of another shape is refused at once, on the
GUI thread, as a menu command's error.
"""
from __future__ import annotations

import napari
import napari.layers

from napari_vos._widgets.menu_work import start_layer_work
from napari_vos._widgets.tracks_layer import divided_layer_data, tracked_stack, tracks_layer_data


def labels_tracks(layer: napari.layers.Labels, viewer: napari.Viewer) -> None:
    """Add the active (T, Y, X) or (T, Z, Y, X) labels layer's centroid tracks where it lies (`tracks_layer_data`)."""
    if not isinstance(layer, napari.layers.Labels):
        raise ValueError("select a (T, Y, X) or (T, Z, Y, X) labels layer (a Propagate output) to draw its objects' "
                         "tracks")
    frames = len(tracked_stack(layer, "tracks")[0])
    start_layer_work(viewer, layer, f"Centroid tracks of {layer.name!r}", frames,
                     lambda progress: tracks_layer_data(layer, progress),
                     lambda tup: viewer.add_tracks(tup[0], **tup[1]))


def divided_labels(layer: napari.layers.Labels, viewer: napari.Viewer) -> None:
    """Add the active (T, Y, X) or (T, Z, Y, X) labels layer with each divided object's daughters under new ids
    as a new labels layer "<labels> divided" (`divided_layer_data`)."""
    if not isinstance(layer, napari.layers.Labels):
        raise ValueError("select a (T, Y, X) or (T, Z, Y, X) labels layer (a Propagate output) to split its "
                         "divided cells")
    frames = len(tracked_stack(layer, "divisions")[0])
    start_layer_work(viewer, layer, f"Split divided cells of {layer.name!r}", frames,
                     lambda progress: divided_layer_data(layer, progress),
                     lambda tup: viewer.add_labels(tup[0], **tup[1]))
