"""napari's writer for an image and a labels layer together (npe2 ``writers``): the labels drawn over
the video as a movie or a GIF, what `napari-vos overlay` writes.

Select the image and its labels, File > Save Selected Layers..., and pick the napari-vos overlay
type: the frames are shown with the image layer's contrast limits, gamma and (grey) colormap, as
napari shows them, each object tinted and outlined in its palette colour. napari calls writers on
its GUI thread, so the viewer waits while the movie is written: 2.3 s for 82 frames of 854x480 as
.mp4, 1.6-1.8 s as .gif (docs/benchmarks.md, session 39); File > IO Utilities > Overlay movie...
(`io_menu`) writes the same movie in the background, `napari-vos overlay` outside the viewer.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_vos._widgets.layer_sources import refuse_a_source, viewer_images
from napari_vos._widgets.unfinished import refuse_unfinished
from napari_vos.data.calibration import calibration_from_scale
from napari_vos.data.overlay_movies import OVERLAY_SUFFIXES, TIME_LAPSE_FPS, playback_fps, write_overlay_movie
from napari_vos.data.pyramid import frame_shapes, level_for_labels

#: extensions of other formats, refused rather than given .mp4 after them (clip.webp.mp4)
_OTHER_FORMATS = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".webp", ".apng", ".svg", ".pdf", ".avi",
                  ".webm", ".m4v", ".mpg", ".mpeg", ".ogv", ".wmv", ".flv", ".npy", ".npz", ".zarr", ".h5",
                  ".hdf5", ".csv", ".json", ".txt"}
__all__ = ["write_overlay", "overlay_arguments", "playback_rate", "shown_colours", "OverlayNotWritten", "TIME_LAPSE_FPS"]


class OverlayNotWritten(Exception):
    """Why the overlay was not written. Not a ValueError: napari's ``layers.save(..., plugin=)`` drops
    a writer's ValueError and warns only that the plugin "is not a valid writer" for the path."""


def write_overlay(path: str, layer_data: list[tuple[Any, dict[str, Any], str]]) -> list[str]:
    """npe2 multi-layer writer for one image and one labels layer: the overlay movie at ``path``
    (.mp4, .mkv, .mov or .gif; none given: .mp4); returns the path written. What it cannot draw
    (or write: an H.264 movie without PyAV) is refused as an `OverlayNotWritten` saying why."""
    try:
        return _write_overlay(path, layer_data)
    except ValueError as err:
        raise OverlayNotWritten(str(err)) from None


def _write_overlay(path: str, layer_data: list[tuple[Any, dict[str, Any], str]]) -> list[str]:
    path, arguments = overlay_arguments(path, layer_data)
    refuse_a_source(path, viewer_images(), "the overlay")
    return [str(write_overlay_movie(path, **arguments))]


def overlay_arguments(path: str, layer_data: list[tuple[Any, dict[str, Any], str]],
                      default_suffix: str = ".mp4") -> tuple[str, dict[str, Any]]:
    """The overlay's path (``default_suffix`` added where no movie or GIF extension was typed: .gif where
    a dialog's GIF file type was picked) and `write_overlay_movie`'s
    other arguments for one image and one labels layer's data tuples: the frames (of the level the
    labels match), the labels, the frame rate and the image layer's contrast limits, gamma and colormap;
    a ValueError saying what cannot be drawn, before anything is written."""
    images = [(data, meta) for data, meta, kind in layer_data if kind == "image"]
    labels = [(data, meta) for data, meta, kind in layer_data if kind == "labels"]
    if len(images) != 1 or len(labels) != 1:
        raise ValueError("the napari-vos overlay draws one labels layer over one image layer: select those two "
                         "(or pick another file type in the save dialog)")
    (video, image), (ids, labelled) = images[0], labels[0]
    refuse_unfinished(labelled.get("metadata"), labelled.get("name"), "save the overlay")
    suffix = Path(path).suffix.lower()
    if suffix not in OVERLAY_SUFFIXES:
        if suffix in _OTHER_FORMATS:
            raise ValueError(f"the napari-vos overlay is a movie or a GIF: name it {Path(path).stem}.mp4 or "
                             f"{Path(path).stem}.gif, not {Path(path).name}")
        path = f"{path}{default_suffix}"  # no extension typed (or a dot inside the name): the dialog passes it as typed
    ids = ids[0] if labelled.get("multiscale") else ids
    rgb = bool(image.get("rgb"))
    video, ids, image = _run_plane_of(video, image, ids, labelled)
    white = None
    if np.ndim(ids) == 4 and not image.get("multiscale") and tuple(np.shape(video)[:4]) == tuple(np.shape(ids)):
        video, ids, white = _planes_side_by_side(video, ids, labelled)
    if image.get("multiscale"):  # the level the labels match (a propagation over a coarse one); else the full size
        shapes = frame_shapes([np.shape(level) for level in video], rgb)
        level = level_for_labels(np.shape(ids), shapes) if np.ndim(ids) == 3 else None
        video = video[level or 0]
    if np.ndim(video) != (4 if rgb else 3) or np.ndim(ids) != 3:
        raise ValueError(f"the napari-vos overlay draws (T, Y, X) labels over a (T, Y, X) video (RGB or grey), or "
                         f"(T, Z, Y, X) labels over a (T, Z, Y, X) image, its planes side by side; "
                         f"{image.get('name')!r} has shape {np.shape(video)} and {labelled.get('name')!r} "
                         f"{np.shape(ids)} (to save these layers as they are, pick another file type in the save "
                         "dialog, such as napari's Save to Folder)")
    if np.shape(ids) != tuple(np.shape(video)[:3]):
        raise ValueError(f"the labels layer {labelled.get('name')!r} is {np.shape(ids)} but the image layer "
                         f"{image.get('name')!r} is {tuple(np.shape(video)[:3])} frames of (Y, X): select an image "
                         "and the labels propagated on it")
    lo, hi = (float(v) for v in image.get("contrast_limits") or (0.0, 255.0))
    gamma = float(image.get("gamma", 1.0))
    colormap = None if rgb else shown_colours(image.get("colormap"))
    fps = playback_rate(image.get("scale"), image.get("units"))
    return path, {"video": video, "labels": ids, "fps": fps, "intensity": (lo, hi), "gamma": gamma, "colormap": colormap,
                  "white": white}


def _planes_side_by_side(video: Any, ids: Any, labelled: dict[str, Any]) -> tuple[Any, Any, np.ndarray]:
    """A (T, Z, Y, X) labels layer over its (T, Z, Y, X[, C]) image as one (T, Y, X) montage of the planes
    (`plane_montage`), and the lines between them: the planes its record says were run (every painted Z plane),
    else those holding labels, else all."""
    from napari_vos.data.label_types import painted_planes
    from napari_vos.data.plane_montage import montage_gaps, plane_montage

    times, depth = (int(n) for n in np.shape(ids)[:2])
    record = (labelled.get("metadata") or {}).get("napari_vos") or {}
    planes = [int(z) for z in record.get("z_planes_run") or [] if 0 <= int(z) < depth] or \
        painted_planes(ids)[0] or list(range(depth))
    shown = plane_montage(lambda t, z: video[t, z], times, planes, fill_median=True)
    drawn = plane_montage(lambda t, z: ids[t, z], times, planes, fill_median=False)
    return shown, drawn, montage_gaps(len(planes), tuple(np.shape(ids)[2:4]))


def _run_plane_of(video: Any, image: dict[str, Any], ids: Any, labelled: dict[str, Any]
                  ) -> tuple[Any, Any, dict[str, Any]]:
    """For the output of a run through one Z plane, that plane of the (T, Z, Y, X) image, its plane's labels
    and the image's state with its (T, Y, X) scale and units (an error where the image is not the run's
    shape); the three as they are for other labels."""
    from napari_vos._widgets.plane_outputs import image_plane, run_plane, without_z

    volume = tuple(np.shape(ids))
    ids, z = run_plane(ids, labelled.get("metadata"), labelled.get("name", "labels"), "the overlay draws the run's "
                       "plane only")
    if z is None:
        return video, ids, image
    plane = image_plane(video, image, volume, z, labelled.get("name", "labels"), "select the (T, Z, Y, X) image and "
                        "the output of the run through its plane")
    return plane, ids, {**image, "multiscale": False, "scale": without_z(image.get("scale")),
                        "units": without_z(image.get("units"))}


def shown_colours(colormap: Any, n: int = 256) -> np.ndarray | None:
    """The colours a grey image layer's ``colormap`` (its layer data's: a napari Colormap, its dict or
    name) shows from the low contrast limit to the high one, ``n`` of them as (n, 3) RGB in [0, 1],
    each over the black canvas by its alpha; None for no colormap (grey)."""
    if colormap is None:
        return None
    from napari.utils.colormaps import ensure_colormap

    rgba = np.asarray(ensure_colormap(colormap).map(np.linspace(0.0, 1.0, n)), np.float32)
    return rgba[:, :3] * rgba[:, 3:4]


def playback_rate(scale: Any, units: Any) -> float:
    """Frames per second for a (T, Y, X) layer's time scale and units: `playback_fps`'s rule, a video's
    own rate where its frames are at most a second apart (1 / the interval), else `TIME_LAPSE_FPS`
    (a time-lapse, or no time calibration)."""
    return playback_fps(calibration_from_scale(np.ravel(scale) if scale is not None else None, units))
