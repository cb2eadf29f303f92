"""File > IO Utilities (napari-vos): "Open image TIFF...", "Open labels TIFF...", and the two exports of a result written in the
background with a cancelable progress bar, "Overlay movie..." and "Cell Tracking Challenge result folder...".

napari's File > Open reads a TIFF at scale 1, without the pixel size and frame interval it holds (and a
labels TIFF napari-vos wrote as an image, without its placement and run record), and the outputs of
Propagate take the image's scale: "Open image TIFF..." opens a time-lapse as `console.open_image_layers`
does, at its calibration and read a frame at a time (a 3D + time stack whole, read a plane at a time, for
Propagate to run through the plane under the Z slider); "Open labels TIFF..." opens a labels TIFF as
`console.open_labels_layer` does, a Labels layer where the saved one lay. The overlay save type
writes the same movie as "Overlay movie...", but napari runs writers on its GUI thread, so the
viewer waits while every frame is drawn and encoded (2.3 s for 82 frames of 854x480, a long
time-lapse far more); a CTC result folder had no menu at all (`napari-vos ctc`, or
`console.save_ctc`). Each export asks where to write, checks what it was given on the GUI thread
(so a refusal comes at once), then writes in a worker thread (`menu_work`). A cancelled write leaves
nothing: both write under a hidden name renamed when whole.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
import napari.layers
from napari.utils.notifications import show_info, show_warning
from qtpy.QtWidgets import QApplication, QFileDialog, QMessageBox

from napari_vos._widgets.layer_sources import refuse_a_source
from napari_vos._widgets.menu_work import start_layer_work
from napari_vos._widgets.save_dialogs import save_folder, suggested_path

__all__ = ["open_image_menu", "open_labels_menu", "export_overlay_menu", "export_ctc_menu"]

#: the save dialog's file types for an overlay (the first is the default)
_OVERLAY_FILTERS = "H.264 movie (*.mp4 *.mkv *.mov);;Animated GIF (*.gif)"


def open_image_menu(viewer: napari.Viewer) -> None:
    """Open a TIFF time-lapse as Image layers at its pixel size and frame interval (one per channel),
    read a frame at a time, so that the Propagate outputs lie at its calibration too; a 3D + time
    stack opens whole (T, Z, Y, X), read a plane at a time, and Propagate runs through the plane under
    the Z slider, so no plane is asked for here."""
    from napari.utils.history import get_open_history, update_open_history

    from napari_vos.console import open_image_layers

    chosen, _ = QFileDialog.getOpenFileName(QApplication.activeWindow(), "Open a TIFF time-lapse at its calibration",
                                            get_open_history()[0], "TIFF (*.tif *.tiff)")
    if not chosen:
        return
    update_open_history(chosen)
    layers = open_image_layers(viewer, chosen)
    show_info(_opened_text(Path(chosen).name, layers))


def _opened_text(file_name: str, layers: "list[napari.layers.Image]") -> str:
    """What "Open image TIFF..." says it opened: the layers, the frames (and Z planes of a 3D + time
    stack, with where Propagate runs) and the calibration."""
    first = layers[0]
    units = getattr(first, "units", None)
    shape = first.data.shape[:-1] if first.rgb else first.data.shape
    volume = len(shape) == 4
    size = f"pixel size {first.scale[-1]:g} {units[-1] if units is not None else ''}".rstrip()
    if volume and units is not None and str(units[1]) != "pixel":
        size += f", Z step {first.scale[1]:g} {units[1]}"
    timed = f", {first.scale[0]:g} {units[0] if units is not None else ''} between frames".rstrip() \
        if units is not None and str(units[0]) != "pixel" else ", no frame interval in the file"
    names = ", ".join(repr(layer.name) for layer in layers)
    count = shape[0]
    frames = f"{count} frame{'' if count == 1 else 's'} of {tuple(shape[-2:])}"
    if volume:
        return (f"opened {file_name} as {names}: a 3D + time stack of {shape[1]} Z planes, {frames} at {size}{timed}; "
                "Propagate runs through the plane under the Z slider")
    return f"opened {file_name} as {names}: {frames} at {size}{timed}"


def open_labels_menu(viewer: napari.Viewer) -> None:
    """Open a labels TIFF napari-vos wrote (a Propagate output saved with its save type, `napari-vos
    propagate`, `divisions`) as a Labels layer at its calibration and placement, with its run's record."""
    from napari.utils.history import get_open_history, update_open_history

    from napari_vos.console import open_labels_layer

    chosen, _ = QFileDialog.getOpenFileName(QApplication.activeWindow(), "Open a labels TIFF napari-vos wrote",
                                            get_open_history()[0], "Labels TIFF (*.tif *.tiff)")
    if not chosen:
        return
    update_open_history(chosen)
    layer = open_labels_layer(viewer, chosen)
    record = (layer.metadata or {}).get("napari_vos") or {}
    units = getattr(layer, "units", None)
    size = f"pixel size {layer.scale[-1]:g} {units[-1] if units is not None else ''}".rstrip()
    if layer.ndim == 4:  # a 3D + time stack
        size += f", Z step {layer.scale[1]:g} {units[1] if units is not None else ''}".rstrip()
    run = f", a {record['method']} run's output" if record.get("method") else ""
    split = ", its divided cells split (the lineage kept)" if record.get("divisions_split") else ""
    show_info(f"opened {Path(chosen).name} as {layer.name!r}: {tuple(layer.data.shape)} labels at {size}{run}{split}")


def _image_and_labels(viewer: "napari.Viewer") -> "tuple[napari.layers.Image, napari.layers.Labels]":
    """The one image and the one labels layer selected, or an error naming what is selected."""
    chosen = list(viewer.layers.selection)
    images = [layer for layer in chosen if isinstance(layer, napari.layers.Image)]
    labels = [layer for layer in chosen if isinstance(layer, napari.layers.Labels)]
    if len(images) != 1 or len(labels) != 1 or len(chosen) != 2:
        named = ", ".join(repr(layer.name) for layer in chosen) or "none"
        raise ValueError("select the image and the labels drawn over it, those two layers only (shift-click); "
                         f"selected: {named}")
    return images[0], labels[0]


def _only_labels(viewer: "napari.Viewer") -> "napari.layers.Labels":
    """The one labels layer selected, or an error naming what is selected."""
    chosen = list(viewer.layers.selection)
    if len(chosen) != 1 or not isinstance(chosen[0], napari.layers.Labels):
        named = ", ".join(repr(layer.name) for layer in chosen) or "none"
        raise ValueError("select one (T, Y, X) or (T, Z, Y, X) labels layer to write as a Cell Tracking Challenge "
                         f"result (selected: {named})")
    return chosen[0]


def export_overlay_menu(viewer: napari.Viewer) -> None:
    """Draw the selected labels over the selected image, as napari shows the image (contrast limits, gamma,
    colormap), into a movie or GIF the user names, off the GUI thread."""
    from napari.utils.history import update_save_history

    from napari_vos._widgets.layer_job import pairing_note
    from napari_vos._widgets.overlay_writer import overlay_arguments
    from napari_vos.data.overlay_movies import rate_words, write_overlay_movie

    image, labels = _image_and_labels(viewer)
    placed = pairing_note(viewer, image, labels)
    if placed:  # drawn over the image's pixels by index, not where napari shows the labels
        show_warning(f"the overlay pairs the pixels by index: {placed}")
    start = suggested_path(labels.name, "overlay", ".mp4")
    chosen, picked = QFileDialog.getSaveFileName(QApplication.activeWindow(), "Save the overlay movie", str(start),
                                                 _OVERLAY_FILTERS)
    if not chosen:
        return
    # a name typed without an extension takes the file type picked (Qt's and GTK's dialogs add none)
    suffix = ".gif" if "*.gif" in (picked or "") else ".mp4"
    # read and checked on the GUI thread, as the layers are when the command runs
    path, arguments = overlay_arguments(chosen, [image.as_layer_data_tuple(), labels.as_layer_data_tuple()], suffix)
    refuse_a_source(path, (image, labels), "the overlay")
    update_save_history(path)
    frames = len(arguments["labels"])

    def work(progress: Any) -> Path:
        return write_overlay_movie(path, progress=progress, **arguments)

    def written(at: Path) -> None:
        show_info(f"wrote {at}: {labels.name!r} over {image.name!r}, {frames} frame{'' if frames == 1 else 's'} at "
                  f"{rate_words(at, arguments['fps'])}")

    start_layer_work(viewer, labels, f"Overlay movie of {labels.name!r}", frames, work, written,
                     nothing="nothing written", writes=True)


def _result_folder(layer: "napari.layers.Labels") -> tuple[Path, bool] | None:
    """The result folder the user picks (a folder dialog, which can make a new one) and whether its earlier
    CTC files may be replaced (asked where it holds files); None where the user cancels either. What no
    write may go into (a file, a folder holding a .tif that is no CTC mask) is refused before asking."""
    from napari_vos.ctc_export import check_target, is_ctc_file

    chosen = QFileDialog.getExistingDirectory(QApplication.activeWindow(),
                                              f"Folder for {layer.name!r} as a CTC result (e.g. a new 01_RES)",
                                              str(save_folder()))
    if not chosen:
        return None
    folder = Path(chosen)
    check_target(folder, force=True)
    entries = sorted(folder.iterdir()) if folder.is_dir() else []
    if not entries:
        return folder, False
    ctc = [p.name for p in entries if p.is_file() and is_ctc_file(p.name)]
    kept = len(entries) - len(ctc)
    question = (f"{folder} holds {len(entries)} item{'s' if len(entries) != 1 else ''}"
                + (f", {len(ctc)} of them a CTC result's ({', '.join(ctc[:2])}{' ...' if len(ctc) > 2 else ''})"
                   if ctc else "") + ".\n\nWrite the result there? Its mask*.tif and res_track.txt are replaced"
                + (f"; the {kept} other item{'s' if kept != 1 else ''} are kept." if kept else "."))
    answer = QMessageBox.question(QApplication.activeWindow(), "Replace the CTC result?", question,
                                  QMessageBox.Yes | QMessageBox.Cancel, QMessageBox.Cancel)
    return (folder, True) if answer == QMessageBox.Yes else None


def export_ctc_menu(viewer: napari.Viewer) -> None:
    """Write the selected (T, Y, X) labels layer (or a run's plane output: its plane; a (T, Z, Y, X) layer as
    CTC's 3D masks) as a Cell Tracking Challenge result folder (mask000.tif ... and res_track.txt), with
    the lineage of a divided layer, off the GUI thread; what `napari-vos ctc` does."""
    from napari_vos._widgets.tracks_layer import tracked_stack
    from napari_vos._widgets.unfinished import refuse_unfinished, stopped_run_note
    from napari_vos.ctc_export import check_ctc, write_ctc
    from napari_vos.divisions import parents_from_metadata

    layer = _only_labels(viewer)
    refuse_unfinished(dict(layer.metadata or {}), layer.name, "write its CTC result")
    # a stopped run's output: said, as `napari-vos ctc` notes it (its tracks end where the run stopped)
    stopped = stopped_run_note(dict(layer.metadata or {}), layer.name, "in the CTC result as well")
    stack, plane = tracked_stack(layer, "Cell Tracking Challenge tracks")
    # None: labels no split made; {}: a split in which no cell divided ("0 divisions kept", as the CLI says)
    parents = parents_from_metadata(dict(layer.metadata or {}))
    target = _result_folder(layer)
    if target is None:
        return
    folder, force = target

    def work(progress: Any) -> tuple[Any, list[str]]:
        result = write_ctc(folder, stack, parents, force=force, progress=progress)
        return result, check_ctc(folder)

    def written(outcome: tuple[Any, list[str]]) -> None:
        result, problems = outcome
        n = len(result.table)
        lineage = ("no lineage (split divided cells first to keep divisions)" if parents is None else
                   f"{result.divisions} division{'' if result.divisions == 1 else 's'} kept")
        at_plane = (f" of Z plane {plane}" if plane is not None else
                    f" of {stack.shape[1]} Z planes (3D masks)" if len(stack.shape) == 4 else "")
        show_info(f"wrote {result.folder}: {n} track{'' if n == 1 else 's'} over {result.frames} frames{at_plane}, "
                  f"{result.gaps} gap{'' if result.gaps == 1 else 's'} split into new tracks, {lineage}")
        if result.left_out:
            show_warning(f"{len(result.left_out)} lineage link{'s' if len(result.left_out) != 1 else ''} left out: "
                         + "; ".join(f"id {d}'s parent {p}: {why}" for d, p, why in result.left_out[:3]))
        if problems:
            show_warning(f"{result.folder} does not pass CTC's checks (please report this): " + "; ".join(problems[:3]))
        if stopped is not None:
            show_warning(stopped)

    start_layer_work(viewer, layer, f"CTC result of {layer.name!r}", len(stack), work, written,
                     nothing="nothing written", writes=True)
