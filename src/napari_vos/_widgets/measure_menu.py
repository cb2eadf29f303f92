"""Layers > Measure > "Object measurements (CSV)...": the selected labels layer's per-object and per-track
tables written in the background, with a cancelable progress bar.

The save type "napari-vos object measurements" writes the same two tables, but napari runs writers on
its GUI thread, so the viewer waits while they are measured (about 1 s for 37 frames of ~70 cells at
1024x1022, 2.6 s for 200 frames of 512x512 with 80 cells, docs/benchmarks.md; a long time-lapse
more). This command asks where to write
NAME.csv (beside it NAME.tracks.csv), then measures in a worker thread (`menu_work`). The
intensities come from the image layer selected together with the labels, if one is. (T, Z, Y, X) labels
that are no run's plane output are measured in 3D (`object_table.measure_volumes`), a volume per frame.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
import napari.layers
from napari.utils.notifications import show_info, show_warning
from qtpy.QtWidgets import QApplication, QFileDialog

from napari_vos._widgets.menu_work import start_layer_work

__all__ = ["measure_objects_menu", "selected_layers"]


def selected_layers(viewer: "napari.Viewer") -> "tuple[napari.layers.Labels, napari.layers.Image | None]":
    """The one labels layer selected and the image selected with it (the intensities' source), or None; an
    error naming what is selected otherwise. (With two layers selected napari has no active layer, so
    the command reads the selection.)"""
    chosen = list(viewer.layers.selection)
    labels = [layer for layer in chosen if isinstance(layer, napari.layers.Labels)]
    images = [layer for layer in chosen if isinstance(layer, napari.layers.Image)]
    if len(labels) != 1 or len(images) > 1:
        named = ", ".join(repr(layer.name) for layer in chosen) or "none"
        raise ValueError(f"select one labels layer (a Propagate output) and at most one image, the one it was "
                         f"propagated on, for the intensities (selected: {named})")
    return labels[0], (images[0] if images else None)


def _csv_path(layer: "napari.layers.Labels") -> Path | None:
    """Where the user wants the per-object table (a save dialog in the folder napari last saved in, as its
    own save dialog opens), or None for Cancel; the folder joins napari's save history."""
    from napari.utils.history import update_save_history

    from napari_vos._widgets.object_table_writer import table_path
    from napari_vos._widgets.save_dialogs import suggested_path

    chosen, _ = QFileDialog.getSaveFileName(QApplication.activeWindow(), "Save the object measurements",
                                            str(suggested_path(layer.name, "labels", ".csv")), "CSV tables (*.csv)")
    if not chosen:
        return None
    path = table_path(chosen)  # the CSV writer's rule for the name typed
    update_save_history(str(path))
    return path


def measure_objects_menu(viewer: napari.Viewer) -> None:
    """Measure the selected labels layer's objects on every frame (with the selected image's intensities)
    and write NAME.csv and NAME.tracks.csv where the user says, off the GUI thread."""
    from napari_vos._widgets.layer_job import pairing_note
    from napari_vos._widgets.object_table_writer import layer_inputs, layer_tables, measured_inputs
    from napari_vos.object_table import write_tables

    layer, image = selected_layers(viewer)
    inputs = layer_inputs(layer, image)  # read on the GUI thread, as the layers are when the command runs
    data, _ = measured_inputs(*inputs)  # what cannot be measured is refused before the save dialog
    placed = pairing_note(viewer, image, layer) if image is not None else ""
    if placed:  # the intensities are read under the labels' pixels, not where napari draws them
        show_warning(f"intensities measured pixel by pixel: {placed}")
    frames = int(data.shape[0]) if len(data.shape) >= 3 else 1  # (T, Y, X) or a (T, Z, Y, X) volume
    path = _csv_path(layer)
    if path is None:
        return

    def work(progress: Any) -> tuple[list[Path], int]:
        objects, tracks = layer_tables(*inputs, progress=progress)
        return write_tables(objects, tracks, path), len(objects)

    def written(result: tuple[list[Path], int]) -> None:
        (objects_at, tracks_at), rows = result
        with_image = f" with the intensities of {image.name!r}" if image is not None else \
            " (no image selected: no intensity columns)"
        show_info(f"wrote {objects_at} ({rows} rows, one per object per frame) and {tracks_at}{with_image}")

    start_layer_work(viewer, layer, f"Object measurements of {layer.name!r}", frames, work, written,
                     nothing="nothing written", writes=True)
