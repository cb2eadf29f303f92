"""Small checks of user-given values shared by the engine, the frame source and the methods (numpy only)."""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import PurePath
from typing import Any

import numpy as np

__all__ = ["SEED_LIMIT", "seed_problem", "whole_number", "frame_count", "not_an_array", "painted_ids",
           "labels_look_like_an_image", "objects_missing_at_start"]


#: seeds are below this: torch's generators take 64-bit ones, and methods and batch draws add frame
#: numbers and steps to them
SEED_LIMIT = 2 ** 62


def seed_problem(seed: Any) -> str | None:
    """Why ``seed`` cannot seed a run (None where it can), the engine's and training's message."""
    if whole_number(seed) and 0 <= seed < SEED_LIMIT:
        return None
    return f"seed must be a whole number from 0 to 2**62 - 1 (the same seed repeats the random draws), got {seed!r}"


def whole_number(value: Any) -> bool:
    """A Python or numpy integer, and not a bool (True would pass as 1): a frame number, a size in
    pixels, a channel index. Floats such as 2.0 and strings such as "2" are not."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def frame_count(stack: Any) -> int:
    """The length of a stack's first axis: its ``shape[0]`` where it has a shape (a zarr 3 array has no
    ``len()``), else ``len()`` (a list, a pims-style reader)."""
    shape = getattr(stack, "shape", None)
    return int(shape[0]) if shape is not None and len(shape) else len(stack)


def not_an_array(value: Any, what: str) -> str | None:
    """Why ``value`` is not a stack or image napari-vos can index (a napari layer, its name, a file
    path, a generator), as a sentence naming ``what`` and what to pass instead; None when it may be
    one. Without it such values reach numpy as 0-d arrays and fail with a message about shape ()."""
    verb = _verb(what)
    if value is None:  # a reader or a variable that gave nothing: numpy's 0-d object array, "shape ()"
        return f"{what} {verb} None: give an array (numpy, dask, zarr, a tifffile memmap, a torch tensor)"
    if type(value).__module__.split(".")[0] == "napari" and hasattr(value, "data"):
        return (f"{what} {verb} a napari {type(value).__name__} layer ({getattr(value, 'name', '')!r}): pass its "
                "data (layer.data), or use napari_vos.propagate_layers(viewer, image, labels), which takes layers")
    if type(value).__name__ == "MultiScaleData" and type(value).__module__.split(".")[0] == "napari":
        return (f"{what} {verb} a multiscale (pyramid) layer's data, whose items are its levels, not frames: pass "
                "one level (layer.data[0] is the full size), or use napari_vos.propagate_layers(viewer, image, "
                "labels), which picks the level the labels match")
    if isinstance(value, str) and looks_like_a_layer_name(value):
        return (f"{what} {verb} the string {value!r}, not an array: pass the layer's data "
                f"(viewer.layers[{value!r}].data), or give layer names to napari_vos.propagate_layers(viewer, "
                "image, labels), which takes them")
    if isinstance(value, (str, bytes, os.PathLike)):
        from napari_vos.data.animated_images import is_animated_image
        from napari_vos.data.video_files import is_video_file

        missing = "" if os.path.exists(value) else ", which does not exist here"
        if is_video_file(os.fsdecode(value)):
            reader = "napari_vos.data.video_files.read_video_file, which decodes a movie"
        elif is_animated_image(os.fsdecode(value)):
            reader = "napari_vos.data.animated_images.read_animated_image, which reads a GIF's frames"
        else:
            reader = "tifffile.imread or tifffile.memmap"
        return (f"{what} {verb} a file path ({os.fsdecode(value)}{missing}): read it first ({reader}), or run "
                "`napari-vos propagate VIDEO LABELS -o OUT`, which reads files")
    zarr_problem = _zarr_container(value, what, verb)
    if zarr_problem:
        return zarr_problem
    if isinstance(value, Iterator) or (hasattr(value, "__iter__") and not hasattr(value, "__getitem__")):
        return (f"{what} {verb} a {type(value).__name__}, which cannot be read by index: give an array, or a list "
                "of frames (list(...))")
    return None


def _zarr_container(value: Any, what: str, verb: str) -> str | None:
    """Why a zarr store (tifffile's ``imread(path, aszarr=True)``) or a zarr group (an OME-Zarr image's
    levels) is not an array, and what to pass; None for anything else. Both have no shape: numpy made a
    0-d array of a store (a message about shape ()), and zarr refused a group's integer index."""
    top = type(value).__module__.split(".")[0]
    if top not in ("zarr", "tifffile") or hasattr(value, "shape"):
        return None
    name = type(value).__name__
    if name == "Group" and hasattr(value, "array_keys"):
        try:
            keys = sorted(str(k) for k in value.array_keys())
        except Exception:  # a group that cannot list its arrays: the message without them
            keys = []
        listed = f"whose arrays are {', '.join(repr(k) for k in keys)}" if keys else "which holds no array"
        first = keys[0] if keys else "0"
        return (f"{what} {verb} a zarr group, {listed}, not an array: pass one of them, e.g. group[{first!r}] "
                "(an OME-Zarr image's or a pyramid's full-size level is usually '0')")
    if name.endswith("Store"):
        return (f"{what} {verb} a zarr store ({name}; tifffile.imread(path, aszarr=True) gives one), not an array: "
                "open it as one, zarr.open(store, mode='r') (a pyramid's full-size level: zarr.open(store, "
                "mode='r')['0']), or read the file with tifffile.memmap(path) or "
                "napari_vos.data.readers.open_tiff_frames(path)")
    return None


def looks_like_a_layer_name(text: str) -> bool:
    """Whether ``text`` reads as a napari layer's name ("natural video", "Labels [1]") rather than a
    file path: no existing file or folder, no folder separator or ``~``, and no file suffix (".tif")."""
    if not text.strip() or os.path.exists(text) or text.startswith("~"):
        return False
    if any(sep and sep in text for sep in ("/", os.sep, os.altsep)):
        return False
    suffix = PurePath(text).suffix[1:]
    return not (suffix.isalnum() and not suffix.isdigit())


def _verb(what: str) -> str:
    """ "are" for labels ("the labels", "labels of frame 3"), "is" for anything else ("the video")."""
    head = what.split(" of ")[0].split()
    return "are" if head and head[-1] == "labels" else "is"


def from_torch(value: Any) -> Any:
    """A torch tensor as a numpy array (detached, on the CPU; bfloat16, which numpy lacks, as
    float32); anything else as given. numpy only: torch is not imported here."""
    if type(value).__module__.split(".")[0] != "torch" or not hasattr(value, "detach"):
        return value
    value = value.detach().cpu()
    if str(value.dtype) == "torch.bfloat16":
        value = value.float()
    return value.numpy()


def painted_ids(labels: Any) -> list[int]:
    """The object ids a labels image holds, ascending (0 is the background)."""
    return [int(i) for i in np.unique(labels) if i]


#: an image given as labels: from this many ids, nearly every pixel painted (`IMAGE_LIKE_PAINTED`), and
#: objects of under `IMAGE_LIKE_AREA` pixels on average or scattered in `IMAGE_LIKE_PIECES` pieces per id
IMAGE_LIKE_IDS = 32
IMAGE_LIKE_PAINTED = 0.9
IMAGE_LIKE_AREA = 4.0
IMAGE_LIKE_PIECES = 3


def labels_look_like_an_image(labels: np.ndarray, ids: Sequence[int], frame: int) -> str | None:
    """Why ``labels`` (one frame, its ``ids``) look like an intensity image rather than objects: every
    pixel painted, with many ids of a few pixels each or each id scattered in pieces (every grey level
    an object), which would run with hundreds or thousands of objects and gigabytes per object stack;
    None for labels (objects on a background however small, confluent cells of one piece each)."""
    if len(ids) < IMAGE_LIKE_IDS:
        return None
    painted = np.count_nonzero(labels)
    if painted < IMAGE_LIKE_PAINTED * labels.size:  # objects on a background, however small (seeds, tiny cells)
        return None
    area = painted / len(ids)
    if area >= IMAGE_LIKE_AREA:  # every pixel painted: an image's grey levels each lie scattered in many pieces
        from skimage.measure import label

        if int(label(labels, background=0, connectivity=1).max()) < IMAGE_LIKE_PIECES * len(ids):
            return None  # confluent labels: one piece per id
    return (f"the labels of frame {frame} hold {len(ids)} ids of {area:.1f} pixels each on average: an image rather "
            "than labels (every intensity an object)? Labels hold one integer per object, 0 for the background; "
            "give the painted labels, not the video's frame")


def objects_missing_at_start(annotations: dict[int, np.ndarray], start: int, all_painted_hint: str = "",
                             direction: str = "both") -> str | None:
    """Why propagation cannot start at ``start``: the object ids painted on other annotated frames but
    not on it, each with the frames that hold it and the ways out; None when every object is there.
    (Every object needs its start mask: the methods learn each one from the frame they start on.)"""
    here = set(painted_ids(annotations[start]))
    where: dict[int, list[int]] = {}
    reached = {"forward": lambda f: f >= start, "backward": lambda f: f <= start}.get(direction, lambda f: True)
    for f in sorted(annotations):
        if not reached(f):
            continue
        for i in set(painted_ids(annotations[f])) - here:
            where.setdefault(i, []).append(f)
    if not where:
        return None
    held = "; ".join(f"{i} on frame{'s' if len(fs) > 1 else ''} {', '.join(map(str, fs))}"
                     for i, fs in sorted(where.items()))
    later = all(f > start for fs in where.values() for f in fs)
    newcomers = ("; for objects that appear later (a cell's daughters after a division), correct the output "
                 "on that frame and propagate forward from it alone") if later else ""
    return (f"object id(s) {sorted(where)} are not on the start frame {start} ({held}): every object must be "
            f"painted on the frame propagation starts from; paint it there too, erase it where it is, or "
            f"{all_painted_hint or 'annotate the start frame alone'}{newcomers}")


def unreached_frames(direction: str, start: int, n_frames: int) -> range:
    """The frames a run in ``direction`` from ``start`` does not reach (none for "both"): those a
    re-run of a corrected labels stack keeps as they are."""
    return {"both": range(0), "forward": range(0, start), "backward": range(start + 1, n_frames)}[direction]


def frame_ranges(frames: Sequence[int]) -> str:
    """Frame numbers as runs, e.g. "0-94" or "0-3, 7-9"."""
    runs: list[list[int]] = []
    for f in sorted(frames):
        if runs and f == runs[-1][1] + 1:
            runs[-1][1] = f
        else:
            runs.append([f, f])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def frames_in_ranges(text: str) -> list[int]:
    """The frame numbers `frame_ranges` wrote ("0-3, 7-9" -> [0, 1, 2, 3, 7, 8, 9]); a ValueError for
    text that is not such ranges (a killed run's "unknown: ...")."""
    frames: list[int] = []
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        first, _, last = part.partition("-")
        if not first.strip().isdigit() or (last and not last.strip().isdigit()):
            raise ValueError(f"not frame ranges such as '0-3, 7': {text!r}")
        frames.extend(range(int(first), int(last or first) + 1))
    return frames
