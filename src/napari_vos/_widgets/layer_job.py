"""One propagation over napari layers: check them, make the output layers, fill them, record provenance.

This is what the Propagate button and `console.propagate_layers` share; it holds no Qt code.
The split follows the threads: `LayerJob(...)` (GUI thread) validates the layers with numpy
only, copies the painted frames and adds the empty output Labels layer; `steps()` builds the
engine `Session` and yields frames (the widget runs it in a napari `thread_worker`, the console
in a plain loop); `show(frame)` (GUI thread) writes a finished frame and its maps into the layers;
`finish()` stores `Result.provenance()` in ``layer.metadata["napari_vos"]``.
With no labels layer (``labels=None``) the method must be a zero-shot one (COSNet): every frame
is segmented from ``frame`` (default 0) and the output is named after the image.
The frames a one-way run (forward/backward) does not reach keep what a (T, Y, X) labels layer holds
there, so re-propagating an earlier output from a corrected frame gives the whole video.
Grey image layers named in ``channel_layers`` (napari's one layer per channel) are read with the
image as one (T, Y, X, C) video (`data.channel_stack.ChannelStack`).
A multiscale image is propagated on one level (`data.pyramid`): the one the labels layer matches,
or with no labels the coarsest at the working size; the output layers have that level's pixels
(a (T, Z, Y, X) pyramid: a level that keeps every Z plane, through the plane on screen).
The session and the method's network are built only by `steps()` (in the worker), so building a
job never blocks the viewer on loading weights. A method that fine-tunes before its first frame
(``reports_finetune``: OSVOS-AT, and RGMP with its online fine-tuning add-on) is given
``on_finetune``/``cancel_event`` hooks: its progress is kept in ``finetune`` for the widget to
show, and ``cancel()`` stops the fine-tuning too.
Both guard the process against triton's crash next to Mesa's OpenGL (see gl_guard.py).
"""
from __future__ import annotations

import copy
import itertools
import re
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from napari_vos.advice import method_advice
from napari_vos.checks import frame_ranges, objects_missing_at_start, painted_ids, unreached_frames
from napari_vos.data.channel_stack import MAX_CHANNELS, ChannelStack
from napari_vos.data.frames import DEFAULT_MAX_SIDE
from napari_vos.data.label_types import check_id_range, label_dtype_for, painted_frames, painted_planes
from napari_vos.data.map_geometry import GUESS, map_placement
from napari_vos.data.plane_view import plane_of
from napari_vos.data.pyramid import frame_shapes, level_for_labels, level_for_side, level_scale
from napari_vos._widgets.frame_edits import CHECKSUMS, checksum_record, edited_frames, frame_checksum
from napari_vos._widgets.plane_outputs import empty_planes, planes_run, without_z
from napari_vos.gl_guard import guard_triton

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Image, Labels, Layer

    from napari_vos.session import FrameResult, Result, Session

__all__ = ["LayerJob", "get_layer", "current_frame", "current_plane", "volume_shape", "level_volumes",
           "level_layer_shapes",
           "read_annotations", "image_levels", "is_output", "is_unfinished_output", "labels_level", "DIRECTIONS"]

DIRECTIONS = ("both", "forward", "backward")
#: a map with more channels (objects) than this becomes one layer with the objects on its first axis:
#: adding 70 layers, one per cell, would stall the viewer for seconds and bury the layer list
MAX_MAP_LAYERS = 8
#: a map is not shown when its layer(s) would take more than this share of the memory free when its
#: first frame comes (RGMP's object probabilities for 70 cells at a 1024-pixel working size are
#: 18 MB a frame, 5.5 GB over 300 frames): the run goes on, and the status line says where to get it
MAP_MEMORY_SHARE = 0.5


def _free_memory() -> int:
    """Bytes of memory available now (psutil, which napari itself requires)."""
    import psutil

    return int(psutil.virtual_memory().available)


#: the metadata key that marks a napari-vos map layer (its map, channel and object): maps are shown
#: over the image, never offered as a video to propagate through
MAP_MARKER = "napari_vos_map"
# between an output's name and its map's: no ':' (napari's Save All takes layer names as file names,
# and Windows refuses ':' in them)
MAP_SEPARATOR = " - "
# what a run appends to its labels layer's name; an earlier output re-propagated keeps its base name
_RUN_SUFFIX = re.compile(r"( (?:propagated|segmented) \([^()]*\))+( \[\d+\])?$")


def output_name(viewer: "napari.Viewer", wanted: str) -> str:
    """``wanted``, or ``wanted [n]`` with the smallest free n, such that no layer holds that name nor
    a map name made from it: a map kept from a deleted output is never taken for a new output's map."""
    taken = [layer.name for layer in viewer.layers]

    def free(name: str) -> bool:
        return not any(t == name or t.startswith(name + MAP_SEPARATOR) for t in taken)

    n = 0
    name = wanted
    while not free(name):
        n += 1
        name = f"{wanted} [{n}]"
    return name


def default_output_name(viewer: "napari.Viewer", image: "Image", labels: "Labels | None", run: str) -> str:
    """An output's name when none is given: "<labels> propagated (<run>)", or with no labels layer
    "<image> segmented (<run>)" (``run``: the method, and the Z plane(s) of a 3D + time image), made
    free in ``viewer`` (`output_name`)."""
    return output_name(viewer, f"{base_name(labels)} propagated ({run})" if labels is not None
                       else f"{image.name} segmented ({run})")


def base_name(labels: "Labels") -> str:
    """The labels layer's name without what earlier runs appended (an output re-propagated after a
    correction is named after the painted layer once, not once per round)."""
    if not is_output(labels):  # an output opened again from a file carries only its record
        return labels.name
    return _RUN_SUFFIX.sub("", labels.name) or labels.name


def is_output(layer: "Layer") -> bool:
    """A labels layer napari-vos made (finished, with provenance, or still being filled)."""
    return "napari_vos" in layer.metadata or "napari_vos_output" in layer.metadata


def is_unfinished_output(layer: "Layer") -> bool:
    """An output layer a run is still filling (its provenance comes when the run ends): no annotation yet."""
    return "napari_vos_output" in layer.metadata and "napari_vos" not in layer.metadata


def is_map_layer(layer: "Layer") -> bool:
    """Whether ``layer`` is one of the map layers a run added."""
    return MAP_MARKER in layer.metadata


def get_layer(viewer: "napari.Viewer", layer: "str | Layer", kind: str) -> "Layer":
    """The layer named ``layer`` (or the layer itself), checked to be an 'image' or 'labels' layer."""
    from napari.layers import Image, Labels, Layer

    wanted = {"image": Image, "labels": Labels}[kind]
    if isinstance(layer, str):
        if layer not in viewer.layers:
            names = [lyr.name for lyr in viewer.layers if isinstance(lyr, wanted) and not is_map_layer(lyr)]
            raise ValueError(f"no layer named {layer!r} in the viewer; {kind} layers: {names or 'none'}")
        layer = viewer.layers[layer]
    if not isinstance(layer, Layer):  # data (an array), not a layer: propagate() takes arrays
        raise ValueError(f"the {kind} is a {type(layer).__name__}, not a layer: give a layer's name or the layer "
                         f"(viewer.layers[...]); for arrays use napari_vos.propagate(video, labels)")
    if not isinstance(layer, wanted):
        found = type(layer).__name__
        raise ValueError(f"layer {layer.name!r} is {_article(found)} {found} layer, not {_article(kind)} {kind} layer")
    return layer


def _article(word: str) -> str:
    """"a" or "an" before ``word`` (an Image layer, a Labels layer)."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def volume_shape(image: "Image") -> tuple[int, int, int, int] | None:
    """The (T, Z, Y, X) of a (T, Z, Y, X[, C]) image layer (3D + time, or one plane kept as an axis, as
    OME files keep it; a multiscale one's finest level), which napari-vos propagates one plane at a
    time: the shape its labels and channel layers have (`level_volumes`: at each level); None for any
    other layer: a time-lapse, a (T, Y, X, C) stack whose last axis holds its channels, or one whose
    axis names say its second axis holds channels."""
    shape = tuple(int(n) for n in (image.data[0] if image.multiscale else image.data).shape)
    spatial = shape[:-1] if image.rgb else shape
    if len(spatial) != 4 or 0 in shape:
        return None
    if not image.rgb and shape[-1] <= 4 < min(shape[1:3]):  # channels last: napari shows them as X
        return None
    names = [str(v).lower() for v in getattr(image, "axis_labels", None) or ()]  # napari >= 0.6
    if len(names) == len(shape) and names[1].startswith("c"):
        return None
    return spatial  # type: ignore[return-value]


def level_volumes(image: "Image") -> list[tuple[int, int, int, int] | None]:
    """Each level's (T, Z, Y, X) of a (T, Z, Y, X[, C]) image layer (`volume_shape`; a plain layer has
    one level), None for a level whose T or Z is not the finest level's (a pyramid that halves Z too:
    its planes are not the slider's); [] for any other layer."""
    whole = volume_shape(image)
    if whole is None:
        return []
    levels = list(image.data) if image.multiscale else [image.data]
    shapes = [tuple(int(n) for n in level.shape[:4]) for level in levels]
    return [shape if len(shape) == 4 and shape[:2] == whole[:2] else None for shape in shapes]  # type: ignore[misc]


def level_layer_shapes(image: "Image") -> list[tuple[int, ...]]:
    """The shapes a labels or channel layer of ``image`` may have, one per level it can be propagated
    on: each level's (T, Z, Y, X) of a 3D + time image (`level_volumes`), else its (T, Y, X)."""
    return [s for s in (level_volumes(image) or image_levels(image)[1]) if s is not None]


def image_levels(image: "Image") -> tuple[list[Any], list[tuple[int, int, int] | None]]:
    """The arrays of an image layer's levels (one for a plain layer) and each level's (T, Y, X),
    None for a level that is not a time-lapse of the same length (see `data.pyramid`); for a
    (T, Z, Y, X[, C]) layer, the (T, Y, X) of one plane at each level (`level_volumes`)."""
    arrays = list(image.data) if image.multiscale else [image.data]
    volumes = level_volumes(image)
    if volumes:
        return arrays, [(v[0], v[2], v[3]) if v is not None else None for v in volumes]
    return arrays, frame_shapes([tuple(a.shape) for a in arrays], bool(image.rgb))


def video_problem(image: "Image", shapes: list[tuple[int, int, int] | None]) -> str | None:
    """What keeps the image layer (its levels' ``shapes``, `image_levels`) from being a (T, Y, X[, C])
    time-lapse, said for its shape (one 2-D image; an axis too many, such as Z or channels), or None
    when it is one."""
    shape = tuple(int(n) for n in (image.level_shapes[0] if image.multiscale else image.data.shape))
    if 0 in shape:  # an empty slice (data[10:5]) or an empty dask stack
        return f"image layer {image.name!r} {shape} is empty (an axis of length 0): nothing to propagate"
    if shapes[0] is not None:
        return None
    spatial = len(shape) - (1 if image.rgb else 0)
    head = f"image layer {image.name!r} {shape}"
    if spatial <= 2:
        return f"{head} is one 2-D image; napari-vos needs a time-lapse (T, Y, X), or (T, Y, X, C) shown as RGB"
    if spatial == 4:
        channels_last = shape[-1] <= 4 < min(shape[1:3])
        if channels_last and shape[-1] == 1:
            return (f"{head} has a last axis of 1 (T, Y, X, 1): add its one channel as a (T, Y, X) layer "
                    "(viewer.add_image(data[..., 0]))")
        if channels_last:  # napari shows the last two axes as Y, X: a (T, Y, X, C) stack wants a layer per channel
            return (f"{head} looks like (T, Y, X, C) with {shape[-1]} channels: add it as one layer per channel "
                    "(viewer.add_image(data, channel_axis=-1)), pick the first as the image and tick the others "
                    "under 'add channels'")
        return (f"{head} has one axis more than a time-lapse (T, Y, X) and its axis names say it holds channels: "
                "open it as one layer per channel (viewer.add_image(data, channel_axis=1)) and pick a channel's "
                "layer, ticking the others under 'add channels'")
    if spatial == 5:  # Fiji's (T, Z, C, Y, X) hyperstack, or bioio's and OME's (T, C, Z, Y, X)
        return (f"{head} has two axes more than a time-lapse (T, Y, X): add one Z plane z as one layer per channel "
                f"with {_five_axis_recipe(image)}; pick a channel's layer as the image and tick the others under 'add "
                "channels' (the command line's --z and --channels read such a TIFF directly)")
    return f"{head} is not a time-lapse: napari-vos needs (T, Y, X), or (T, Y, X, C) shown as RGB"


def _five_axis_recipe(image: "Image") -> str:
    """How to add one Z plane of a 5-D image layer as one layer per channel, for the axis order its
    names say (T, C, Z, Y, X or T, Z, C, Y, X), or for both where it has none; per level for a pyramid."""
    names = [str(v).lower()[:1] for v in getattr(image, "axis_labels", None) or ()]  # napari >= 0.6
    orders = {"tzc": "[:, z]", "tcz": "[:, :, z]"}
    named = "".join(names[:3]) if len(names) >= 5 else ""  # an RGB layer: 6 names

    def call(index: str) -> str:
        data = f"[level{index} for level in layer.data], multiscale=True" if image.multiscale else f"layer.data{index}"
        return f"viewer.add_image({data}, channel_axis=1)"

    if named in orders:
        return f"{call(orders[named])} (its axis names say {', '.join(named.upper())}, Y, X)"
    return (f"{call(orders['tzc'])} for (T, Z, C, Y, X), as Fiji saves a hyperstack, or {call(orders['tcz'])} "
            "for (T, C, Z, Y, X), as bioio, OME-TIFF and OME-Zarr order it")


def _check_video(image: "Image", shapes: list[tuple[int, int, int] | None]) -> None:
    """A ValueError saying what is expected when the image layer is not a (T, Y, X[, C]) time-lapse."""
    problem = video_problem(image, shapes)
    if problem:
        raise ValueError(problem)


def _transform_matrices(layer: "Layer") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A layer's rotate and shear as (ndim, ndim) matrices and its affine as (ndim + 1, ndim + 1)."""
    from napari.utils.transforms.transform_utils import shear_to_matrix

    shear = shear_to_matrix(layer.shear, ndim=layer.ndim)
    return (np.asarray(layer.rotate, dtype=float), np.asarray(shear, dtype=float),
            np.asarray(layer.affine.affine_matrix, dtype=float))


def orientation(layer: "Layer", ndim: int | None = None) -> dict[str, np.ndarray]:
    """A layer's rotate and shear (as matrices) and affine when any of them is not the identity,
    else {}: what a layer overlaying it needs besides scale and translate. ``ndim``: embedded for a
    layer with more, leading, axes (a map with its objects on a first axis)."""
    from napari.utils.transforms.transform_utils import embed_in_identity_matrix

    rotate, shear, affine = _transform_matrices(layer)
    if all(np.allclose(m, np.eye(len(m))) for m in (rotate, shear, affine)):
        return {}
    m = ndim or layer.ndim
    return {"rotate": embed_in_identity_matrix(rotate, m), "shear": embed_in_identity_matrix(shear, m),
            "affine": embed_in_identity_matrix(affine, m + 1)}


def _same_orientation(a: "Layer", b: "Layer") -> bool:
    """Whether two layers turn their Y, X plane alike (a (Y, X) labels layer beside a (T, Y, X) image
    too): the last two axes of rotate and shear, and of affine with its translation."""
    return all(np.allclose(m[-k:, -k:], n[-k:, -k:], atol=1e-6)
               for m, n, k in zip(_transform_matrices(a), _transform_matrices(b), (2, 2, 3)))


def unit_factors(units: Sequence[Any] | None, layer: "Layer") -> np.ndarray:
    """Per axis of ``layer``: how many of the layer's units one of ``units`` is (the two aligned on their
    last axes), so a length in ``units`` becomes one in the layer's. Where napari draws in the viewer's
    common units (``viewer.dims.units`` set: napari 0.7 on, every layer's units compatible), a layer's
    world_to_data and data_to_world still ignore them. 1 where the two do not convert (pixel against
    um) or either is unknown."""
    ours = getattr(layer, "units", None)
    factors = np.ones(layer.ndim)
    if not units or not ours:
        return factors
    m = min(len(units), layer.ndim)
    for k, (given, own) in enumerate(zip(tuple(units)[-m:], tuple(ours)[-m:]), start=layer.ndim - m):
        try:
            factors[k] = float((1 * given).to(own).magnitude)
        except Exception:  # noqa: BLE001 - pint's DimensionalityError, or units pint does not know
            pass
    return factors


def _units_differ(a: "Layer", b: "Layer", axes: slice) -> bool:
    """Whether two layers give their ``axes`` in other units (napari 0.5 on: layers have units)."""
    ours, theirs = getattr(a, "units", None), getattr(b, "units", None)
    return bool(ours and theirs) and tuple(map(str, ours[axes])) != tuple(map(str, theirs[axes]))


PAIRED_TOLERANCE = 1e-3  # of a pixel (or a frame): labels this close to the image's pixels overlay it


def paired_offsets(image: "Image", labels: "Labels", scale: Sequence[float],
                   world_units: Sequence[Any] | None = None) -> np.ndarray:
    """For each corner pixel of the labels layer, where it lies in the viewer among the image's
    pixels (at the propagated level, whose pixels are ``scale`` in the image's world units) minus
    the image pixel it is paired with: (corners, labels.ndim), zero where the two overlay.

    In pixels, through both layers' whole data-to-world transforms (scale, translate, rotate, shear,
    affine), so large stage coordinates and transforms given another way alike are judged rightly;
    in each layer's units where napari draws in common units (``world_units``, the viewer's
    ``dims.units``; None: napari draws the numbers as they are, whatever their units)."""
    n = labels.ndim
    factors = np.asarray(scale, dtype=float) / np.asarray(image.scale, dtype=float)  # level pixels in level-0 ones
    in_image_units = unit_factors(getattr(labels, "units", None) if world_units else None, image)[-n:]
    offsets = []
    for corner in itertools.product(*[(0, max(int(side) - 1, 1)) for side in labels.data.shape[-n:]]):
        pixel = np.asarray(corner, dtype=float)
        at = np.zeros(image.ndim)
        at[-n:] = pixel
        world = np.asarray(image.data_to_world(at * factors), dtype=float)  # a 2-D labels layer: the image's time
        world[-n:] = np.asarray(labels.data_to_world(pixel), dtype=float) * in_image_units
        offsets.append(np.asarray(image.world_to_data(world), dtype=float)[-n:] / factors[-n:] - pixel)
    return np.asarray(offsets)


def placement_note(image: "Image", labels: "Labels", scale: Sequence[float], translate: Sequence[float],
                   world_units: Sequence[Any] | None = None) -> str:
    """A note when the labels layer is drawn elsewhere than the image (another scale or offset, as a
    mask file opened without the image's calibration is, in Y/X or in time): the two are paired pixel
    by pixel and frame by frame, so the output lands over the image, not where the labels were
    seen. "" when they overlay (`paired_offsets` under a thousandth of a pixel and of a frame).
    ``world_units``: the viewer's ``dims.units``, set where napari draws in common units."""
    offsets = np.abs(paired_offsets(image, labels, scale, world_units))
    off_in_space = bool(np.max(offsets[:, -2:]) >= PAIRED_TOLERANCE)
    off_in_time = labels.ndim == 3 and bool(np.max(offsets[:, 0]) >= PAIRED_TOLERANCE)
    if not (off_in_space or off_in_time):
        return ""
    ours = np.asarray([*labels.scale[-2:], *labels.translate[-2:]], dtype=float)
    theirs = np.asarray([*scale[-2:], *translate[-2:]], dtype=float)
    if off_in_space and not _same_orientation(labels, image):
        return (f"the labels layer {labels.name!r} is rotated, sheared or transformed (affine) otherwise than the "
                "image: their pixels are paired by index, so the output lies over the image (give the labels "
                "the image's transforms to see them where they act)")
    notes = []
    if off_in_time:  # a (T, Y, X) labels layer: its frames are paired by index too
        ours_t = (float(labels.scale[0]), float(labels.translate[0]))
        theirs_t = (float(scale[-3]), float(translate[-3]))
        in_time = bool(world_units) and _units_differ(labels, image, slice(-3, -2))
        if ours_t != theirs_t or in_time:
            def unit(layer: "Layer") -> str:  # named where the two differ (1 min against 60 s)
                return f" {layer.units[-3]:~}" if in_time else ""

            placed = f"is at time scale {ours_t[0]:.4g}{unit(labels)}, offset {ours_t[1]:.4g} but the image " \
                     f"at {theirs_t[0]:.4g}{unit(image)}, {theirs_t[1]:.4g}"
        else:  # the same numbers: an affine places one of them in time
            placed = "is placed in time otherwise than the image (by an affine transform)"
        notes.append(f"the labels layer {labels.name!r} {placed}: frames are paired by index, so labels frame i "
                     "annotates image frame i, not the image frame shown beside it (give the labels the image's "
                     "scale, translate and transforms)")
    if not off_in_space:
        return "; ".join(notes)

    named = bool(world_units) and _units_differ(labels, image, slice(-2, None))  # the same numbers in nm and um

    def pair(values: np.ndarray, layer: "Layer") -> str:
        units = [f" {u:~}" for u in layer.units[-2:]] if named else ["", ""]
        return "(" + ", ".join(f"{v:.4g}{u}" for v, u in zip(values, units)) + ")"

    notes.insert(0, f"the labels layer {labels.name!r} is drawn at scale {pair(ours[:2], labels)}, offset "
                    f"{pair(ours[2:], labels)} but the image at {pair(theirs[:2], image)}, {pair(theirs[2:], image)}: "
                    "their pixels are paired by index, so the "
                    "output lies over the image (give the labels the image's scale and translate to see them where "
                    "they act)")
    return "; ".join(notes)


def pairing_note(viewer: "napari.Viewer", image: "Image", labels: "Labels") -> str:
    """`placement_note` for a menu command that reads ``labels`` with ``image`` pixel by pixel (Measure's
    intensities, the overlay movie), at the level of the image the labels match; "" where the two overlay,
    or where their shapes match no level (refused by the command itself, saying so)."""
    try:
        level = labels_level(image, labels)
    except ValueError:
        return ""
    shapes = level_volumes(image) or image_levels(image)[1]
    scale = level_scale(image.scale, shapes[0], shapes[level])
    return placement_note(image, labels, scale, list(image.translate), getattr(viewer.dims, "units", None))


def channel_placement_note(image: "Image", channel: "Image", scale: Sequence[float], translate: Sequence[float],
                           world_units: Sequence[Any] | None = None) -> str:
    """A note when a channel layer read with the image (one of its own, from another file) is drawn
    elsewhere than the image: the channels are read pixel by pixel and frame by frame, so what is read
    together is not what napari shows together. "" when the two overlay (as napari's channel_axis split
    places them). ``scale``, ``translate``: the image's at the propagated level."""
    if float(np.max(np.abs(paired_offsets(image, channel, scale, world_units)))) < PAIRED_TOLERANCE:
        return ""
    ours = [float(v) for v in (*channel.scale[-2:], *channel.translate[-2:])]
    theirs = [float(v) for v in (*scale[-2:], *translate[-2:])]
    tail = (": their pixels are read together by index, so the run sees them aligned, not as napari shows them "
            "(give the channel the image's scale, translate and transforms to see what is read together)")
    if ours == theirs and float(channel.scale[0]) == float(scale[-3]) and float(channel.translate[0]) == float(translate[-3]):
        return (f"the channel layer {channel.name!r} is placed otherwise than the image {image.name!r} (in units, "
                f"time, or by rotate, shear or affine){tail}")

    def pair(values: Sequence[float]) -> str:
        return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"

    return (f"the channel layer {channel.name!r} is drawn at scale {pair(ours[:2])}, offset {pair(ours[2:])} but the "
            f"image {image.name!r} at {pair(theirs[:2])}, {pair(theirs[2:])}{tail}")


def uncalibrated_file_note(image: "Image") -> str:
    """A note when the image layer came from a calibrated TIFF but lies at scale 1 (napari's own TIFF
    reader leaves the pixel size and frame interval out): the outputs take the layer's scale, so the
    user learns what the file says and how to give it to the layer. "" otherwise."""
    from pathlib import Path

    path = getattr(getattr(image, "source", None), "path", None)
    if not path or not str(path).lower().endswith((".tif", ".tiff")) or not Path(path).is_file():
        return ""
    if image.ndim < 3 or any(float(v) != 1.0 for v in image.scale):
        return ""  # a layer the user scaled keeps its own scale, whatever the file says
    from napari_vos.data.calibration import read_tiff_calibration, scale_from_calibration

    try:
        calibration = read_tiff_calibration(path)
    except Exception:  # noqa: BLE001 - a file changed or gone since it was opened: nothing to say
        return ""
    if calibration.empty:
        return ""
    # a (T, Z, Y, X) layer's Z step too (it was given 1, and the frame interval put on its Z axis)
    scale, _ = scale_from_calibration(calibration, 4 if volume_shape(image) is not None else 3)
    numbers = ", ".join(f"{v:g}" for v in [1.0] * (image.ndim - len(scale)) + scale)
    return (f"the image layer {image.name!r} lies at scale 1 but its file {Path(path).name} gives "
            f"{calibration.describe()} (napari's TIFF reader leaves them out), so the outputs lie at scale 1 "
            f"too: to carry the calibration, set viewer.layers[{image.name!r}].scale = ({numbers}) before "
            "propagating, or open the file with File > IO Utilities > Open image TIFF (calibration)...")


def movie_file_note(image: "Image") -> str:
    """A note when the image layer came from a movie file, read by napari's own reader, which leaves out
    what the command line takes from it: its frame interval (the outputs lie at scale 1 unless the layer
    has a time scale) and a phone's display rotation (the frames are shown, and the outputs made, as
    stored, sideways against the upright frames the command line reads) and an HDR movie's tone mapping
    (shown as stored: flat and dark). An animated GIF, APNG or WebP gets the frame-interval note too (no
    rotation or HDR there). "" otherwise."""
    from pathlib import Path

    from napari_vos.data.animated_images import animated_image_calibration, is_animated_image
    from napari_vos.data.video_files import is_video_file

    path = getattr(getattr(image, "source", None), "path", None)
    if not path or not Path(path).is_file() or image.ndim < 3:
        return ""
    try:
        if is_video_file(path):
            from napari_vos.data.video_files import display_rotation, hdr_transfer_name, video_file_calibration

            kind, rotation, interval = "movie", display_rotation(path), video_file_calibration(path).frame_interval
            hdr = hdr_transfer_name(path)
        elif is_animated_image(path):
            kind, rotation, interval, hdr = "animation", 0, animated_image_calibration(path).frame_interval, None
        else:
            return ""
    except Exception:  # noqa: BLE001 - no PyAV, or a file changed or gone since it was opened: nothing to say
        return ""
    notes = []
    if interval and interval != 1.0 and float(image.scale[-3]) == 1.0:  # (1 s apart: scale 1 says it already)
        numbers = ", ".join(["1"] * (image.ndim - 3) + [f"{interval:g}", "1", "1"])
        notes.append(f"the image layer {image.name!r} lies at scale 1 but its {kind} {Path(path).name} has "
                     f"{interval:g} s between frames (napari's reader leaves it out), so the outputs have no "
                     f"frame interval: to carry it, set viewer.layers[{image.name!r}].scale = ({numbers}) before "
                     "propagating")
    if rotation:
        notes.append(f"napari shows the movie {Path(path).name} as stored, turned from how players show it (a display "
                     f"rotation of {rotation} degrees), and the outputs are of these frames, but napari-vos propagate "
                     "and overlay read the movie upright: turn labels saved here upright for them, e.g. "
                     f"np.rot90(labels, {rotation // 90}, axes=(-2, -1))")
    if hdr:
        notes.append(f"the movie {Path(path).name} is HDR video ({hdr} transfer): napari's reader shows its frames as "
                     "stored, flatter and darker than a player shows them, which weakens the propagation; napari-vos "
                     "propagate reads it tone-mapped to standard range, and so does, from napari's console, "
                     "from napari_vos.data.video_files import read_video_file; "
                     f"viewer.add_image(read_video_file({str(path)!r}), name={Path(path).stem!r})")
    return "; ".join(notes)


def multiscale_labels_problem(labels: "Labels", shapes: Sequence[tuple[int, int, int] | None],
                              image: str = "the image") -> str:
    """Why a multiscale labels layer (an OME-Zarr label image) is refused, with the line that adds its
    level matching ``image`` (its levels' ``shapes``) as a plain labels layer, or saying none matches."""
    levels = [tuple(int(n) for n in shape) for shape in labels.level_shapes]
    head = (f"labels layer {labels.name!r} is multiscale ({len(levels)} levels: "
            f"{', '.join(str(shape) for shape in levels)}), but the annotation must be a plain labels layer")
    match = next((k for k, shape in enumerate(levels) if level_for_labels(shape, shapes) is not None), None)
    if match is None:
        options = " or ".join(f"{s} / {s[1:]}" for s in shapes if s is not None)
        return f"{head}, and none of its levels matches {image}: (T, Y, X) or one frame (Y, X) = {options}"
    scale = level_scale(labels.scale, levels[0], levels[match])
    placed = f", scale=({', '.join(f'{v:g}' for v in scale)})" if any(v != 1 for v in scale) else ""
    return (f"{head}: add its level {match} {levels[match]}, which matches {image}, as one with "
            f"viewer.add_labels(np.asarray(viewer.layers[{labels.name!r}].data[{match}]){placed}) and pick that layer")


def labels_level(image: "Image", labels: "Labels") -> int:
    """The level of ``image`` that the labels layer matches, (T, Y, X) or one frame (Y, X); a
    ValueError naming the shapes that would match when none does."""
    _, shapes = image_levels(image)
    _check_video(image, shapes)
    if labels.multiscale:
        raise ValueError(multiscale_labels_problem(labels, shapes, f"image {image.name!r}"))
    volumes = level_volumes(image)
    if volumes:  # (T, Z, Y, X): painted in a layer of its shape (at one level), or one (Y, X) frame
        painted = tuple(labels.data.shape)
        level = next((k for k, v in enumerate(volumes) if v is not None and painted in (v, v[2:])), None)
        if level is None:
            fits = [v for v in volumes if v is not None]
            shapes_said = (f"(T, Z, Y, X) or one frame (Y, X) = {' or '.join(f'{v} / {v[2:]}' for v in fits)}"
                           if image.multiscale else f"(T, Z, Y, X) = {fits[0]} or one frame (Y, X) = {fits[0][2:]}")
            where = "one level of the multiscale image" if image.multiscale else "the image layer"
            raise ValueError(f"labels layer {labels.name!r} has shape {painted} but the labels layer must match "
                             f"{where} {image.name!r}: {shapes_said}")
        return level
    level = level_for_labels(tuple(labels.data.shape), shapes)
    if level is None:
        options = " or ".join(f"{s} / {s[1:]}" for s in shapes if s is not None)
        where = "one level of the multiscale image" if image.multiscale else "the image layer"
        raise ValueError(f"labels layer {labels.name!r} has shape {tuple(labels.data.shape)} but the labels layer "
                         f"must match {where} {image.name!r}: (T, Y, X) or one frame (Y, X) = {options}")
    return level


def current_frame(viewer: "napari.Viewer", layer: "Layer") -> int:
    """The image frame under the viewer's time slider (data index of the layer's first axis)."""
    return _index_on_screen(viewer, layer, 0)


def current_plane(viewer: "napari.Viewer", layer: "Layer") -> int:
    """The Z plane under the viewer's Z slider (data index of a (T, Z, Y, X) layer's second axis)."""
    return _index_on_screen(viewer, layer, 1)


def _index_on_screen(viewer: "napari.Viewer", layer: "Layer", axis: int) -> int:
    """The layer's data index along ``axis`` at the viewer's sliders, within the layer."""
    point = np.asarray(viewer.dims.point, dtype=float)[-layer.ndim:]
    point = point * unit_factors(getattr(viewer.dims, "units", None), layer)  # the slider's units in the layer's
    index = int(round(float(layer.world_to_data(point)[axis])))
    n = int(layer.data.shape[axis])
    return min(max(index, 0), n - 1)


def read_annotations(labels: "Labels", n_frames: int, frame_shape: tuple[int, int], frame: int | None,
                     all_painted: bool = True, direction: str = "both", frame_from_slider: bool = False,
                     plane: int | None = None) -> tuple[dict[int, np.ndarray], int | None, str]:
    """Copy the annotation frames out of a labels layer that must match the image.

    Returns (frame -> (Y, X) labels, start frame or None for the engine's default, note).
    A (Y, X) layer annotates ``frame`` (default 0). A (T, Y, X) layer: with ``all_painted`` every
    painted frame is an annotation and propagation starts at ``frame`` if it is painted, else at
    the painted frame nearest to it whose run reaches ``frame`` (forward: at or before it;
    backward: at or after it; the note says so); without, only ``frame`` is used.
    ``plane``: a (T, Z, Y, X) layer is read at that Z plane, as a (T, Y, X) one.
    """
    if labels.multiscale:
        raise ValueError(multiscale_labels_problem(labels, [(n_frames, *frame_shape)]))
    in_plane = plane is not None and labels.data.ndim == 4
    data = plane_of(labels.data, plane) if in_plane else labels.data
    at = f" at Z plane {plane}" if in_plane else ""  # where the messages below look
    shape = tuple(data.shape)
    if shape == tuple(frame_shape):
        f = 0 if frame is None else frame
        if not 0 <= f < n_frames:
            raise ValueError(f"annotated frame {f} is outside the stack (frames 0..{n_frames - 1})")
        # a one-frame layer has no frame of its own: a mask file opened over a stack (napari puts the
        # slider mid-stack) would silently be frame N's; the command line takes it as frame 0's
        note = "" if f == 0 or not frame_from_slider else (f"the one-frame labels layer {labels.name!r} is taken as frame {f}'s, the frame "
                                  "under the time slider: if it was drawn on another frame (a mask file of frame 0), "
                                  "move the slider there or set the annotated frame")
        return {f: np.array(data, copy=True)}, f, note
    if shape != (n_frames, *frame_shape):
        raise ValueError(f"labels layer {labels.name!r} has shape {shape} but the image is {n_frames} frames of "
                         f"{tuple(frame_shape)}: the labels layer must match the image layer, either (T, Y, X) = "
                         f"{(n_frames, *frame_shape)} or one frame (Y, X) = {tuple(frame_shape)}")
    if frame is not None and not 0 <= frame < n_frames:
        raise ValueError(f"annotated frame {frame} is outside the stack (frames 0..{n_frames - 1})")
    if is_unfinished_output(labels):  # its frames not reached yet are empty, not results or annotations
        raise ValueError(f"the labels layer {labels.name!r} is the output of a run still going on: wait for it to "
                         "finish (or cancel it) before starting from it")
    if not all_painted:
        f = 0 if frame is None else frame
        arr = np.array(data[f], copy=True)
        if not arr.any():
            raise ValueError(f"the labels layer {labels.name!r} is empty on frame {f}{at}: paint the objects on that "
                             "frame, or move the slider to the painted frame")
        return {f: arr}, f, ""
    painted = painted_frames(data)[0]
    if not painted:
        others = painted_planes(labels.data)[0] if at else []
        raise ValueError(f"the labels layer {labels.name!r} is empty on every frame{at}: paint at least one object"
                         + (f" there, or move the Z slider to a painted plane ({frame_ranges(others)})" if others
                            else " there" if at else ""))
    if len(painted) > 1 and is_output(labels):
        # an earlier run's output (a cancelled or partly erased one too): its propagated frames are
        # results, not annotations; taken as such they overrode the correction and undid an erasure
        raise ValueError(f"the labels layer {labels.name!r} is an earlier napari-vos output: with 'use every "
                         f"painted frame' its {len(painted)} painted frames would all be annotations, and a correction "
                         "on one of them would reach no other frame; untick 'use every painted frame' and pick "
                         "direction 'forward' to start from the corrected frame alone and keep the frames before it, "
                         "or paint corrections into the layer you first painted")
    annotations = {i: np.array(data[i], copy=True) for i in painted}
    if frame is None or frame in annotations:
        start = frame
        note = ""
    else:
        # a painted frame whose run reaches the asked-for frame, if there is one
        reaching = {"forward": [i for i in painted if i <= frame],
                    "backward": [i for i in painted if i >= frame]}.get(direction, painted) or painted
        start = min(reaching, key=lambda i: (abs(i - frame), i))
        note = f"frame {frame} is not painted; starting from painted frame {start}"
    first = start if start is not None else (painted[-1] if direction == "backward" else painted[0])
    reached = {"forward": range(first, n_frames), "backward": range(0, first + 1)}.get(direction, range(n_frames))
    missing = objects_missing_at_start(annotations, first, "untick 'use every painted frame' to start from it alone",
                                       direction=direction)
    if missing:
        raise ValueError(f"{note}; {missing}" if note else missing)
    if len(reached) > 1 and all(i in annotations for i in reached):  # (a one-frame run: the engine's own message)
        where = "every frame of" if len(painted) == n_frames else f"every frame a {direction} run from {first} reaches in"
        raise ValueError(f"{where} the labels layer {labels.name!r} is painted (an earlier output?), so every frame "
                         "would be an annotation and nothing is left to propagate: untick 'use every painted frame' "
                         "to start from the annotated frame alone, or paint corrections into the layer you first "
                         "painted")
    return annotations, start, note


#: Session keywords the job sets itself, and why a caller's would not be used
SET_BY_THE_JOB = {
    "out": "the labels go into the new output layer",
    "rgb": "the image layer's own rgb flag says whether its last axis is colour (give channel_layers "
           "to read separate layers as channels)",
    "keep_maps": "with maps=True the map layers hold the maps",
    "maps_out": "with maps=True the map layers hold the maps",
}


class LayerJob:
    """Propagate ``labels`` through ``image`` into a new Labels layer of ``viewer`` (see module doc)."""

    def __init__(self, viewer: "napari.Viewer", image: "str | Image", labels: "str | Labels | None",
                 method: str = "frtm", frame: int | None = None, *, device: str = "auto",
                 direction: str = "both", maps: bool = False, all_painted: bool = True,
                 name: str | None = None, channel_layers: "Sequence[str | Image]" = (),
                 defer_map_layers: bool = False, frame_from_slider: bool = False, plane: int | None = None,
                 into: "Labels | None" = None, ids_up_to: int = 0, name_maps_by_plane: bool = False,
                 **session_options: Any) -> None:
        guard_triton()
        from napari_vos.methods import registry

        for key in session_options.keys() & SET_BY_THE_JOB.keys():  # before any layer is made
            raise ValueError(f"{key} is not taken here: {SET_BY_THE_JOB[key]}")
        self.started = datetime.now().astimezone().isoformat(timespec="seconds")  # tells same-named runs apart
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        self.viewer = viewer
        self.image = get_layer(viewer, image, "image")
        levels, shapes = image_levels(self.image)
        _check_video(self.image, shapes)
        volumes = level_volumes(self.image)  # a (T, Z, Y, X) image's levels; [] for a time-lapse
        # a (T, Z, Y, X) image: the Z plane to propagate through time (default: the one on screen)
        self.planes = volumes[0][1] if volumes else None
        self.plane = self._plane(plane)
        if labels is None:
            if registry.needs_annotation(method, **session_options):
                raise ValueError(f"method {method!r} needs a labels layer with the objects painted on one frame; "
                                 f"only zero-shot methods (e.g. cosnet) run without one{registry.zero_shot_hint(method)}")
            # the coarsest level that still has the working resolution
            self.level = level_for_side(shapes, session_options.get("max_side", DEFAULT_MAX_SIDE))
        else:
            if not registry.accepts_annotation(method):
                raise ValueError(f"method {method!r} segments the video without an annotation and takes none: "
                                 "choose no labels layer")
            labels = get_layer(viewer, labels, "labels")
            self.level = labels_level(self.image, labels)  # the level the painted labels match
        self.video = self.frames_of(levels[self.level])  # what the engine reads (a multiscale image: one level)
        shape = shapes[self.level]
        assert shape is not None
        # further image layers whose frames become channels 2 and 3 of the video (one layer per channel)
        self.channel_layers = self._channel_layers(channel_layers, volumes[self.level] if volumes else shape)
        if self.channel_layers:
            self.video = ChannelStack([self.video, *(self.frames_of(lyr.data) for lyr in self.channel_layers)],
                                      names=[f"image layer {lyr.name!r}" for lyr in (self.image, *self.channel_layers)])
        self.n_frames, self.frame_shape = shape[0], (shape[1], shape[2])
        self._level_shapes = (volumes[0], volumes[self.level]) if volumes else (shapes[0], shape)
        self.labels = labels
        placed = self._placement()  # the output layers' placement: the image's, at the propagated level
        self._placed = copy.deepcopy(placed)  # the maps' too, even if the image moves while the run goes on
        if labels is None:
            if frame is not None and not 0 <= frame < self.n_frames:
                raise ValueError(f"start frame {frame} is outside the stack (frames 0..{self.n_frames - 1})")
            self.annotations, self.start, self.note = {}, frame, ""
        else:
            self.annotations, self.start, self.note = read_annotations(
                labels, self.n_frames, self.frame_shape, frame, all_painted, direction, frame_from_slider, self.plane)
            self.add_note(placement_note(self.image, labels, placed["scale"], placed["translate"],
                                          getattr(self.viewer.dims, "units", None)))
        for layer in self.channel_layers:  # read pixel by pixel with the image, wherever napari shows them
            self.add_note(channel_placement_note(self.image, layer, placed["scale"], placed["translate"],
                                                  getattr(self.viewer.dims, "units", None)))
        self.add_note(uncalibrated_file_note(self.image))
        self.add_note(movie_file_note(self.image))
        self.method = method
        self.device = device
        self.direction = direction
        self.want_maps = maps
        # a method that fine-tunes before its first frame reports each step here and stops when asked
        self.finetune: tuple[int, int] | None = None  # (step, total) of the fine-tuning in progress
        self._stop = threading.Event()
        if registry.traits(method).reports_finetune:
            session_options = {"on_finetune": self._finetune_step, "cancel_event": self._stop, **session_options}
        self.session_options = session_options
        self.session: Session | None = None
        #: the Session's ``check_method``: called once its method is built, before it starts; raises to refuse
        #: the weights or settings (`PlaneRuns`'s resumed runs check that the kept planes' are this run's)
        self.check_session: Callable[[Session], None] | None = None
        self._written_over: dict[int, np.ndarray] = {}  # with check_session: the frames before the annotations
        self.map_layers: dict[tuple[str, int], Image] = {}  # (map, channel or -1 for all)
        # maps whose layer is not in the viewer yet: (data, add_image's arguments), filled like a layer's
        # data. With ``defer_map_layers`` the widget adds them one per event-loop turn
        # (`add_next_map_layer`): napari takes 0.1-0.3 s to add an image layer, and 8 objects' maps
        # added in the first frame's turn froze the viewer for 2-4 s
        self.defer_map_layers = defer_map_layers
        self._pending_maps: dict[tuple[str, int], tuple[np.ndarray, dict[str, Any]]] = {}
        self.maps_not_shown: dict[str, int] = {}  # map name -> the bytes its layers would have taken
        # the run's maps together stay under MAP_MEMORY_SHARE of the memory free at its first map (each
        # map's array is committed only as its frames are written, so the free memory read later does
        # not see the maps made before)
        self._map_budget: float | None = None
        self._map_bytes = 0
        self.frames_shown = 0
        self.frames_computed = 0  # shown frames the method segmented (not annotations)
        self.lowest_shown: int | None = None  # the lowest frame index shown: has a both-way run gone backward?
        self.error: BaseException | None = None  # set by a runner that caught the engine's error
        # the output layer's array was replaced mid-run (layer.data = ...; set by the widget, which stops
        # the run): the frames no longer go there, and the layer, holding the user's array, is kept
        self.output_replaced = False
        self._cancel = False
        if self.start is None:  # the engine's default start
            if self.annotations:
                self.start = max(self.annotations) if direction == "backward" else min(self.annotations)
            else:
                self.start = self.n_frames - 1 if direction == "backward" else 0
        # zero-shot: the ids are the method's output channels, known once it ran (``_ids``)
        self.object_ids = painted_ids(self.annotations[self.start]) \
            if self.annotations else []
        # a tip when the method is measured poor for what was painted (many small objects: cells)
        self.advice = method_advice(method, session_options.get("checkpoint"),
                                    [self.annotations[self.start]]) if self.annotations else None
        self.total = {"both": self.n_frames, "forward": self.n_frames - self.start,
                      "backward": self.start + 1}[direction]
        if self.annotations and self.total == 1:  # checked before an output layer is added
            where = "a one-frame video" if self.n_frames == 1 else \
                f"{direction} from frame {self.start}, the {'first' if direction == 'backward' else 'last'} frame"
            # with the note saying why the start is not the frame asked for ("frame 1 is not painted; ...")
            refusal = f"nothing to propagate: {where}; pick another direction or start frame"
            raise ValueError(f"{self.note}; {refusal}" if self.note else refusal)
        self._ranges: dict[tuple[str, int], tuple[float, float]] = {}
        self._stale_maps: set[tuple[str, int]] = set()  # map layers written since the last redraw()
        # the smallest type for the painted ids (zero-shot: the method's few output ids): 4x less memory than int32;
        # ``ids_up_to``: the largest id of other runs sharing the output (`plane_runs`: the other planes')
        top = max([int(a.max()) for a in self.annotations.values()] + [int(ids_up_to)])
        # frames this run does not reach (forward: those before the start; backward: those after it)
        # keep what the labels layer holds there, so that re-propagating an earlier output forward
        # from a corrected frame gives the whole video, not its second half
        self.kept = self._kept_frames()
        # read once (a view of an in-memory layer; one read of a zarr/dask one), for the ids and the copy
        kept_labels = np.asarray(self.frames_of(self.labels.data)[self.kept.start:self.kept.stop]) if self.kept else None
        if kept_labels is not None:  # copied as they are: ids the output cannot hold are refused (-3 became 253)
            check_id_range(kept_labels.min(), kept_labels.max(),
                           f"frames {self.kept.start}-{self.kept.stop - 1} of {self.labels.name!r}, which this run "
                           "does not reach and keeps as they are,")
            top = max(top, int(kept_labels.max()))
        # a (T, Z, Y, X) image's output has its shape, the run's plane filled (the other planes cost nothing);
        # ``into``: the output of a run through other planes of the image, whose layer this run's plane joins
        if into is not None:
            out = self._joined_output(into, top)
        else:
            out = empty_planes(self._output_shape, label_dtype_for(top)) if self.planes else \
                np.zeros(self._output_shape, dtype=label_dtype_for(top))
        # each frame's checksum as the run leaves it, so a later run from this output can tell the edits
        self._checksums: dict[int, int] = {}
        if kept_labels is not None:
            self.frames_of(out)[self.kept.start:self.kept.stop] = kept_labels
            self._checksums.update((i, frame_checksum(self.frames_of(out)[i])) for i in self.kept)
        if labels is not None and not all_painted and is_output(labels):
            self.add_note(self._replaced_frames_note(labels))
        if labels is not None and not is_output(labels):
            self.add_note(self._corrected_outputs_note(labels))
        # the map layers of runs sharing an output say which plane they are of
        self._map_tag = f" Z plane {self.plane}" if into is not None or name_maps_by_plane else ""
        self._owns_output = into is None  # discard() leaves a shared output to the run that added it
        if into is not None:
            self.output = into
            return
        run = f"{method}, Z plane {self.plane}" if self.planes else method
        default_name = default_output_name(viewer, self.image, self.labels, run)
        # each object in the colour the painted layer shows it in (a shuffled or custom colormap too)
        colours = {}
        if self.labels is not None:
            painted_cmap = self.labels.colormap
            cmap = copy.deepcopy(getattr(painted_cmap, "__wrapped__", painted_cmap))  # napari's plugin proxy
            if getattr(cmap, "use_selection", False):
                cmap.use_selection = False  # the painted layer's 'show selected' is its own
            colours = {"colormap": cmap}
        self.output: Labels = viewer.add_labels(out, name=name or default_name, **placed, **colours)
        # marks an output from the start (the provenance comes at the end): the widget lists it last
        self.output.metadata["napari_vos_output"] = True

    def _plane(self, plane: int | None) -> int | None:
        """The Z plane the run goes through: ``plane``, else the one on screen, for a (T, Z, Y, X) image;
        None for a time-lapse (a ``plane`` given for one is an error)."""
        if self.planes is None:
            if plane is not None:
                raise ValueError(f"plane={plane} picks a Z plane of a (T, Z, Y, X) image layer; image layer "
                                 f"{self.image.name!r} {tuple(self.image.data.shape)} has none")
            return None
        if plane is None:
            return current_plane(self.viewer, self.image)
        if not 0 <= int(plane) < self.planes:
            raise ValueError(f"Z plane {plane} is outside image layer {self.image.name!r}'s planes "
                             f"0..{self.planes - 1}")
        return int(plane)

    def _joined_output(self, into: "Labels", top: int) -> np.ndarray:
        """The array of ``into``, the output of a run through other Z planes of this image, that this run's
        plane joins; a ValueError where it is not one (another shape, or a type too small for the ids)."""
        data = into.data
        if not self.planes or not isinstance(data, np.ndarray) or tuple(data.shape) != self._output_shape:
            raise ValueError(f"labels layer {into.name!r} {tuple(np.shape(data))} cannot take the output of a run "
                             f"through a Z plane of {self.image.name!r}: it must be a (T, Z, Y, X) output of "
                             f"{self._output_shape}")
        if top > np.iinfo(data.dtype).max:
            raise ValueError(f"labels layer {into.name!r} ({data.dtype}) cannot hold id {top}")
        return data

    def frames_of(self, stack: Any) -> Any:
        """A layer's (T, Y, X[, C]) frames for this run: its plane's of a (T, Z, ...) stack, else the stack."""
        return plane_of(stack, self.plane) if self.plane is not None else stack

    @property
    def _output_shape(self) -> tuple[int, ...]:
        """The output labels layer's shape: the image's, less any colour axis."""
        return (self.n_frames, *((self.planes,) if self.planes else ()), *self.frame_shape)

    def add_note(self, note: str) -> None:
        """Join ``note`` to what the status line says at the start ("" adds nothing)."""
        self.note = "; ".join(part for part in (self.note, note) if part)

    def _replaced_frames_note(self, labels: "Labels") -> str:
        """For a re-run from one corrected frame of an earlier output: what of that output this run
        does not keep (the frames before the start in a both-way run; frames edited since its run)."""
        if tuple(labels.data.shape) != self._output_shape:
            return ""
        notes = []
        if self.direction == "both" and self.start:
            notes.append(f"frames 0-{self.start - 1} of {labels.name!r} are propagated again, backward from frame "
                         f"{self.start}, not kept as they are: pick direction 'forward' to keep them")
        replaced = [i for i in range(self.n_frames) if i != self.start and i not in self.kept]
        edited = edited_frames(labels, replaced, self.plane)
        if edited:
            notes.append(f"frame{'s' if len(edited) > 1 else ''} {frame_ranges(edited)} of {labels.name!r} "
                         f"{'were' if len(edited) > 1 else 'was'} changed after its run and this run replaces them "
                         f"(it reads frame {self.start} alone): propagate again from each afterwards, or paint the "
                         "corrections into the layer you first painted with 'use every painted frame'")
        return "; ".join(notes)

    def _corrected_outputs_note(self, labels: "Labels") -> str:
        """For a run from a painted layer: the earlier outputs of that layer over this image whose frames
        were changed after their run (a correction painted into the output), which this run leaves out."""
        from napari.layers import Labels

        notes = []
        for layer in self.viewer.layers:
            record = layer.metadata.get("napari_vos")
            if not isinstance(layer, Labels) or layer == labels or not isinstance(record, dict) \
                    or record.get("labels_layer") != labels.name or record.get("image_layer") != self.image.name \
                    or self.plane not in planes_run(record) or tuple(layer.data.shape) != self._output_shape:
                continue
            edited = edited_frames(layer, range(self.n_frames), self.plane)
            if not edited:
                continue
            many = len(edited) > 1
            notes.append(f"frame{'s' if many else ''} {frame_ranges(edited)} of {layer.name!r} {'were' if many else 'was'} "
                         f"changed after its run, but this run reads {labels.name!r} and leaves "
                         f"{'those corrections' if many else 'that correction'} out: to propagate from "
                         f"{'the first' if many else 'it'}, pick {layer.name!r} as labels, untick 'use every painted "
                         f"frame' and run 'forward' from frame {edited[0]} (or paint the correction into "
                         f"{labels.name!r} too)")
        return "; ".join(notes)

    def _kept_frames(self) -> range:
        """The frames outside this run's range, copied from a (T, Y, X) labels layer, or from the run's
        plane of a (T, Z, Y, X) one (else none)."""
        if self.labels is None or tuple(self.labels.data.shape) != self._output_shape:
            return range(0)
        return unreached_frames(self.direction, self.start, self.n_frames)

    def _channel_layers(self, layers: "Sequence[str | Image]", shape: tuple[int, int, int]) -> "list[Image]":
        """The extra channel layers, checked: plain grey (T, Y, X) image layers of the propagated
        level's shape, none of them the image itself, at most MAX_CHANNELS channels in all."""
        if isinstance(layers, str):
            layers = [layers]
        found = [get_layer(self.viewer, lyr, "image") for lyr in layers]
        if not found:
            return []
        if self.image.rgb:
            raise ValueError(f"image layer {self.image.name!r} is RGB and already has its channels; extra channel "
                             "layers go with a grey (T, Y, X) image layer")
        if len(found) + 1 > MAX_CHANNELS:
            raise ValueError(f"pick at most {MAX_CHANNELS - 1} channel layers besides the image "
                             f"({MAX_CHANNELS} channels in all), got {len(found)}")
        names = [lyr.name for lyr in found]
        for lyr in found:
            if lyr == self.image or names.count(lyr.name) > 1:
                raise ValueError(f"image layer {lyr.name!r} is picked twice as a channel")
            if lyr.multiscale or lyr.rgb:
                raise ValueError(f"channel layer {lyr.name!r} must be a plain grey (T, Y, X) image layer "
                                 f"({'multiscale' if lyr.multiscale else 'RGB'} layers cannot be combined)")
            if tuple(lyr.data.shape) != tuple(shape):
                where = f" (level {self.level} of {self.image.name!r})" if self.image.multiscale else ""
                raise ValueError(f"channel layer {lyr.name!r} has shape {tuple(lyr.data.shape)} but the image "
                                 f"is {tuple(shape)}{where}: channel layers must have the same frames and size")
        return found

    # -- where layers go ---------------------------------------------------------------------
    def _placement(self) -> dict[str, Any]:
        """The image layer's world placement for a (T, Y, X) (or (T, Z, Y, X)) output layer at the
        propagated level."""
        scale = level_scale(self.image.scale, *self._level_shapes)  # a plain layer: its own scale
        kw: dict[str, Any] = {"scale": scale, "translate": list(self.image.translate)}
        units = getattr(self.image, "units", None)
        if units is not None:
            kw["units"] = list(units)
        axis_labels = getattr(self.image, "axis_labels", None)  # napari >= 0.6 (e.g. "t", "y", "x")
        if axis_labels is not None and len(axis_labels) == len(scale):
            kw["axis_labels"] = list(axis_labels)
        kw.update(orientation(self.image))  # a rotated, sheared or affine image: the same for its outputs
        return kw

    # -- worker side ---------------------------------------------------------------------
    def build_session(self) -> "Session":
        """Make the engine session and add the annotations (imports torch; any thread)."""
        guard_triton()
        from napari_vos.session import Session

        rgb = bool(self.image.rgb) if len(self.video.shape) == 4 else None
        if self.channel_layers:  # the image and its channel layers: every channel, unless picked
            rgb = None
        # the map layers hold the maps (show()); the session keeps no second copy of them
        session = Session(self.video, method=self.method, device=self.device, maps=self.want_maps,
                          keep_maps=False, out=self.frames_of(self.output.data), rgb=rgb, **self.session_options)
        session.check_method = self.check_session
        if self.check_session is not None:  # a refusal puts back the frames its annotations are written over
            self._written_over = {index: np.array(self.frames_of(self.output.data)[index]) for index in self.annotations}
        for index, arr in sorted(self.annotations.items()):
            session.annotate(index, arr)
            self._checksums[index] = frame_checksum(self.frames_of(self.output.data)[index])  # written by the run
        self.session = session
        if self._cancel:
            session.cancel()
        return session

    def steps(self) -> Iterator["FrameResult"]:
        """Build the session (if needed) and yield each finished frame; stops early after `cancel()`."""
        session = self.session or self.build_session()
        frames = session.propagate(self.direction, start=self.start)  # from here a session.cancel() holds
        if self._cancel:
            return
        for frame in frames:
            # what the engine warned of (objects lost at the working size) joins the status line's note
            for note in session.notes:
                if note not in self.note:
                    self.add_note(note)
            yield frame

    def _finetune_step(self, step: int, total: int, loss: float) -> None:
        """The method's fine-tuning progress (worker thread; the widget polls ``finetune``)."""
        self.finetune = (int(step), int(total))

    def cancel(self) -> None:
        """Ask the engine to stop after the frame it is on (safe from the GUI thread); a method
        still fine-tuning stops after its current iteration."""
        self._cancel = True
        self._stop.set()
        if self.session is not None:
            self.session.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel

    @property
    def output_removed(self) -> bool:
        """The user deleted the output layer (mid-run there is then nowhere to show the frames)."""
        return self.output not in self.viewer.layers

    # -- GUI side ------------------------------------------------------------------------
    def show(self, frame: "FrameResult", redraw: bool = True) -> None:
        """Write one finished frame (and its maps) into the output layers and, with ``redraw``,
        redraw them; without, they are redrawn by a later `redraw()` (the widget spaces the redraws
        in 3D view, where napari re-slices and uploads the whole (T, Y, X) volume each time)."""
        frames = self.frames_of(self.output.data)
        frames[frame.index] = frame.labels
        self._checksums[frame.index] = frame_checksum(frames[frame.index])
        for name, value in frame.maps.items():
            if value.shape[0] > MAX_MAP_LAYERS:  # many objects: one layer, objects on its first axis
                self._show_map(name, None, value, frame.index)
            else:
                for k in range(value.shape[0]):
                    self._show_map(name, k, value, frame.index)
        self.frames_shown += 1
        self.frames_computed += not frame.annotated
        self.lowest_shown = frame.index if self.lowest_shown is None else min(self.lowest_shown, frame.index)
        if redraw:
            self.redraw()

    def redraw(self) -> None:
        """Show what the frames written since the last redraw put in the output and map layers."""
        self.output.refresh()
        stale, self._stale_maps = self._stale_maps, set()
        for key in stale:
            layer = self.map_layers.get(key)
            if layer is not None and layer in self.viewer.layers:
                layer.contrast_limits = self._contrast(key)
                layer.refresh()

    def unreached_backward(self) -> str:
        """For a both-way run that stopped before its backward half: the sentence saying so, else ''."""
        if self.direction != "both" or not self.start or (self.lowest_shown is not None
                                                            and self.lowest_shown < self.start):
            return ""
        return f"frames 0-{self.start - 1} were not reached: run 'backward' from frame {self.start} for them"

    def _show_map(self, name: str, k: int | None, value: np.ndarray, index: int) -> None:
        """Write channel ``k`` of a (K, h, w) map (all channels when ``k`` is None) into its layer."""
        key = (name, -1 if k is None else k)
        if name in self.maps_not_shown:
            return
        layer = self.map_layers.get(key)
        if layer is not None:
            data = layer.data
        elif key in self._pending_maps:
            data = self._pending_maps[key][0]
        else:
            data = self._new_map(name, k, value.shape[0], value.shape[-2:])
            if data is None:  # too large for the memory left
                return
        if data.shape[-2:] != value.shape[-2:]:
            return  # a method whose map changes size mid-run: keep the first size only
        part = value if k is None else value[k]
        held = part[..., None, :, :] if self.planes else part  # a (T, 1, h, w) map at the run's Z plane
        if k is None:
            data[:, index] = held
        else:
            data[index] = held
        vmin, vmax = float(part.min()), float(part.max())
        lo, hi = self._ranges.get(key, (vmin, vmax))
        self._ranges[key] = (min(lo, vmin), max(hi, vmax))
        if layer is not None:
            self._stale_maps.add(key)  # its contrast and pixels are updated by redraw()
        elif not self.defer_map_layers:  # a new map's layer comes at once, holding this frame
            self._add_map_layer(key)

    def _contrast(self, key: tuple[str, int]) -> tuple[float, float]:
        """The contrast limits of a map layer: the range of every frame shown so far, from 0 when the
        map has positive values: a score map's negative background (FRTM's target scores reach -1)
        would otherwise sit mid-colormap and veil the whole frame."""
        lo, hi = self._ranges[key]
        low = 0.0 if lo < 0 < hi else lo
        return low, hi if hi > low else low + 1e-6

    def _new_map(self, name: str, k: int | None, n_channels: int, map_shape: tuple[int, int]) -> np.ndarray | None:
        """The data of a new map layer over the image: channel ``k`` as (T, h, w), or with ``k`` None
        all channels as (K, T, h, w), the objects on a new first axis (a slider) so that T still meets
        the image's T, waiting for its layer (`_add_map_layer`: at once in `_show_map`, or with
        ``defer_map_layers`` one per `add_next_map_layer`).
        None (and the map in `maps_not_shown`) when the map's layers would take more than
        `MAP_MEMORY_SHARE` of the free memory."""
        need = self.n_frames * n_channels * int(np.prod(map_shape)) * np.dtype(np.float32).itemsize
        if self._map_budget is None:
            self._map_budget = MAP_MEMORY_SHARE * _free_memory()
        if self._map_bytes + need > self._map_budget:
            self.maps_not_shown[name] = need
            return None
        self._map_bytes += need
        ids = self.object_ids or (self.session.object_ids if self.session is not None else [])
        per_object = n_channels == len(ids)
        if k is None:
            suffix = f" ({n_channels} {'objects' if per_object else 'channels'} on the first axis)"
        elif per_object and n_channels > 1:
            suffix = f" object {ids[k]}"
        elif n_channels > 1:
            suffix = f" channel {k}"
        else:
            suffix = ""
        work = self.session.work_size if self.session is not None else self.frame_shape
        place = copy.deepcopy(self._placed)  # where the output went at the start, not where the image is now
        image_translate = np.asarray(place["translate"], dtype=float)
        from napari_vos.methods import registry

        grids = self.session.map_grids if self.session is not None else registry.method_class(self.method).map_grids
        grid = grids.get(name, GUESS)  # the built method's declared grid
        if self.planes:  # placed as a (T, Y, X) map, then given the run's plane: one plane deep, at its Z
            z_scale, z_at = float(place["scale"][1]), float(place["translate"][1]) + self.plane * float(place["scale"][1])
            place["scale"], place["translate"] = (without_z(place[key]) for key in ("scale", "translate"))
        place["scale"], place["translate"] = map_placement(tuple(map_shape), tuple(work), self.frame_shape,
                                                           place["scale"], place["translate"], grid)
        if self.planes:
            place["scale"].insert(1, z_scale)
            place["translate"].insert(1, z_at)
        if "rotate" in place:  # napari translates after rotating: the shift to the map pixels' centres turns too
            turn = place["rotate"] @ place["shear"]
            shift = np.asarray(place["translate"], dtype=float) - image_translate
            place["translate"] = list(image_translate + turn @ shift)
        shape: tuple[int, ...] = (self.n_frames, *((1,) if self.planes else ()), *map_shape)
        if k is None:
            shape = (n_channels, *shape)
            place["scale"], place["translate"] = [1.0, *place["scale"]], [0.0, *place["translate"]]
            place.update(orientation(self.image, ndim=len(shape)))
            if "units" in place:
                place["units"] = ["pixel", *place["units"]]
            if "axis_labels" in place:  # the extra slider picks the object
                place["axis_labels"] = ["object", *place["axis_labels"]]
        if k is None:
            marker = {"map": name, "channel": None, "object_ids": list(ids) if per_object else None}
        else:
            marker = {"map": name, "channel": k, "object_id": ids[k] if per_object else None}
        # marked as a map from the start: the widget's layer lists, refilled when a layer is inserted,
        # must not offer it as an image to propagate
        key = (name, -1 if k is None else k)
        data = np.zeros(shape, dtype=np.float32)
        # rgb=False: a map 3 or 4 pixels wide is not a colour image (napari 0.5 guessed it was)
        self._pending_maps[key] = (data, {"name": f"{self.output.name}{MAP_SEPARATOR}{name}{suffix}{self._map_tag}", "colormap": "magma",
                                          "blending": "additive", "opacity": 0.6, "rgb": False,
                                          "metadata": {MAP_MARKER: marker}, **place})
        return data

    def _add_map_layer(self, key: tuple[str, int]) -> None:
        """Add the pending map ``key`` to the viewer, with the contrast of what it holds so far."""
        data, arguments = self._pending_maps.pop(key)
        if key in self._ranges:
            arguments["contrast_limits"] = self._contrast(key)
        self.map_layers[key] = self.viewer.add_image(data, **arguments)

    @property
    def pending_map_layers(self) -> int:
        """How many maps wait for their layer (only with ``defer_map_layers``)."""
        return len(self._pending_maps)

    def add_next_map_layer(self) -> bool:
        """Add the first map still waiting for its layer; True while more wait. The widget calls it
        once per event-loop turn, so the viewer redraws and takes clicks between two layers."""
        lost = self.output_removed or self.output_replaced
        if self._pending_maps and not lost:
            self._add_map_layer(next(iter(self._pending_maps)))
        return bool(self._pending_maps) and not lost

    def finish(self, error: BaseException | None = None) -> "Result | None":
        """Store provenance in the output layers' metadata (with ``error``, the message of the error
        that ended the run early); returns the engine Result (None if never built)."""
        if self.session is None:
            return None
        while self._pending_maps:  # the maps whose layers the run's end came before
            self._add_map_layer(next(iter(self._pending_maps)))
        result = self.session.result()
        prov = result.provenance()
        labels_layer = self.labels.name if self.labels is not None else None
        if self.image.multiscale:
            prov["image_level"] = self.level
        if self.planes:  # which plane of the (T, Z, Y, X) output the run filled
            prov.update({"z_plane": self.plane, "z_planes": self.planes})
        if self.channel_layers:
            prov["channel_layers"] = [lyr.name for lyr in self.channel_layers]
        if self.kept:  # the frames copied from the labels layer, inclusive as frames_segmented ("0-29")
            prov["frames_kept_from_labels"] = frame_ranges(self.kept)
        prov.update({"output_layer": self.output.name, "started": self.started,
                     "image_layer": self.image.name, "labels_layer": labels_layer, "direction": self.direction,
                     "start_frame": self.start,
                     # a Cancel that came after the last frame cancelled nothing
                     "cancelled": self._cancel and self.frames_shown < self.total, "frames_total": self.total,
                     # those the user has not deleted meanwhile
                     "map_layers": [layer.name for layer in self.maps_in_viewer()]})
        if self.maps_not_shown:
            prov["maps_not_shown"] = dict(self.maps_not_shown)
        if error is not None:
            prov["error"] = f"{type(error).__name__}: {error}"
        self.output.metadata["napari_vos"] = prov
        self.output.metadata[CHECKSUMS] = checksum_record(self.output.data.dtype, self._checksums, self.n_frames,
                                                          self.plane)
        self.redraw()  # the frames whose redraw was left for later (3D view) too
        for layer in self.maps_in_viewer():
            layer.metadata["napari_vos"] = {**prov, **layer.metadata[MAP_MARKER]}
        return result

    def maps_in_viewer(self) -> "list[Image]":
        """The run's map layers the user has not deleted."""
        return [layer for layer in self.map_layers.values() if layer in self.viewer.layers]

    def maps_not_shown_text(self) -> str:
        """What the status line says of the maps too large to show, or "" when every map was shown."""
        if not self.maps_not_shown:
            return ""
        sizes = ", ".join(f"{name} ({need / 2**30:.1f} GiB)" for name, need in self.maps_not_shown.items())
        return (f"map(s) not shown, more than half the free memory for {self.n_frames} frames: {sizes}; "
                "`napari-vos propagate --maps DIR` or Session(maps_out=...) writes them to disk")

    def disown(self) -> None:
        """The output layer holds the user's array now (its data was replaced mid-run): no longer marked
        as a run's output, so it is offered and read as any labels layer."""
        self.output.metadata.pop("napari_vos_output", None)

    def discard(self) -> None:
        """Remove the output layers (used when the run failed before the method segmented a frame); an
        output this run only joined (``into``: other planes' runs fill it too) stays."""
        self._pending_maps.clear()
        if not self._owns_output and self.frames_computed == 0:  # the joined output as it was before this run
            frames = self.frames_of(self.output.data)
            for index, before in self._written_over.items():
                frames[index] = before
        for layer in [*([self.output] if self._owns_output else []), *self.map_layers.values()]:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
