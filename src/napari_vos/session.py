"""The engine: a Session holds one video, its annotations and a method's memory; propagate() is the one-call form.

Modelled on SAM 2's video predictor: annotate any frame, then iterate a generator that yields
each finished frame. The engine owns everything shared by the methods: lazy frame reading and
normalisation (data.frames), the working resolution and resizing back, K objects from one
integer labels image, soft aggregation (RGMP eq. 1), forward and backward passes, corrected
frames as new references, device/precision choice, timing and cancellation.
Zero-shot methods (``needs_annotation = False``, e.g. COSNet) run without any ``annotate`` call:
every frame is segmented, from ``start`` (default frame 0) forward and then backward, and the
output ids are 1..K for the K channels the method outputs (1 = the primary object's foreground).
No napari import here: the widgets and the console helper sit on top of this module.
"""
from __future__ import annotations

import os
import shutil
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.profiler import record_function

from napari_vos import __version__
from napari_vos.checks import (frame_ranges, from_torch, labels_look_like_an_image, not_an_array,
                               objects_missing_at_start, painted_ids, seed_problem, whole_number)
from napari_vos.data.frames import DEFAULT_MAX_SIDE, FrameSource, object_scale, working_size
from napari_vos.data.label_types import check_id_range, label_dtype_for, painted_frames
from napari_vos.gl_guard import guard_triton
from napari_vos.methods import registry
from napari_vos.methods.base import VideoFrames
from napari_vos.nn.aggregation import labels_at_size, object_masks, soft_aggregate, uses_boxwise_output
from napari_vos.nn.memory_format import channels_last_on
from napari_vos.nn.precision import autocast_for, resolve_precision
from napari_vos.stray_parts import drop_stray_parts


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; anything else (a torch.device too) is checked to exist."""
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    unknown = ValueError(f"device {device!r} is not one napari-vos knows; use 'auto' (cuda, then mps, then cpu), "
                         "'cpu', 'cuda', 'cuda:1' or 'mps'")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):  # "gpu", "GPU0", a typo: torch lists its internal device types
        raise unknown from None
    if dev.type not in ("cpu", "cuda", "mps"):  # "meta", "xpu", ...: torch's, but nothing runs there
        raise unknown
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU here; use device='cpu' or 'auto'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(f"device {device!r} asked for, but torch sees {count} CUDA GPU{'s' if count != 1 else ''} "
                         f"here (cuda:0{f' to cuda:{count - 1}' if count > 1 else ''}); use 'cuda' or one of those")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r} asked for, but MPS is not available; use device='cpu' or 'auto'")
    return dev


def check_labels(labels: Any, frame_shape: tuple[int, int], what: str = "labels") -> np.ndarray:
    """Validate an annotation: 2-D, the frame's shape, integer ids >= 0; returns int32."""
    problem = not_an_array(labels, what)
    if problem:
        raise ValueError(problem)
    arr = np.asarray(from_torch(labels))
    if arr.ndim != 2:
        trailing = arr.ndim > 2 and arr.shape[-1] == 1  # a channel axis of 1 (napari's labels saved as (T, Y, X, 1))
        raise ValueError(f"{what} must be a 2-D (Y, X) image for one frame, got shape {arr.shape}"
                         + ("; labels for several frames are one (T, Y, X) stack" if arr.ndim > 2 else "")
                         + ("; for a trailing axis of 1, pass labels[..., 0]" if trailing else ""))
    if arr.shape != tuple(frame_shape):
        raise ValueError(f"{what} have shape {arr.shape} but the video frames are {tuple(frame_shape)}; "
                         "the labels must match the image (same Y, X size)")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.int32)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or not np.all(arr == np.round(arr)):
            raise ValueError(f"{what} must hold integer object ids (0 = background); got non-integer float values")
    elif not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must be an integer labels image, got dtype {arr.dtype}")
    check_id_range(arr.min(), arr.max(), what)
    return arr.astype(np.int32)


@dataclass
class FrameResult:
    """One propagated frame: its index, labels at the original size, and the method's maps."""

    index: int
    labels: np.ndarray
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    annotated: bool = False
    seconds: float = 0.0


@dataclass(repr=False)
class Result:
    """The whole stack's output plus provenance.

    labels: (T, Y, X) integer ids at the video's size (0 = background); uint8, widened to uint16
    or int32 when an id needs it, or the caller's ``out=`` array. maps: name -> (T, K, h, w)
    float32 stack on the working grid (``options["work_size"]``, downsampled by the map's stride;
    `napari_vos.data.map_geometry.map_placement` places it over the image); channel k is object
    ``object_ids[k]`` when K equals the number of objects (flow's and COSNet's single-channel maps
    excepted); frames the run did not segment (the annotated ones, those a one-way run did not
    reach) are zeros. ``labels`` and ``maps`` are the Session's own arrays (or the caller's): a
    later run of the same Session writes into them, so copy them to keep one run's output.
    method, device: as run ("cpu", "cuda:0", ...). checkpoint, checkpoint_sha256: the name (or path)
    of the weights loaded and the SHA-256 of their file (None for a method without weights).
    annotated_frames, object_ids: the Session's annotations and the ids the run followed.
    options: the working-size rules, the precision and the method options as used.
    frames_done: the frames the method stepped to, which leaves out each pass's annotated start
    frame (a finished "both" run over 6 frames from frame 0 has frames_done 5; frames_segmented
    lists 6). seconds: the time those frames took; fps: frames_done / seconds, both without
    ``start_seconds`` (building the method, its fit or fine-tuning on the annotated frame).
    complete: whether the last propagation ran to its end (False once it was cancelled, broken off
    or stopped by an error); frames_segmented: the frames it wrote, the start frame included, so a
    saved stopped run says which of its frames hold labels. version: napari-vos's.
    """

    labels: np.ndarray
    maps: dict[str, np.ndarray]
    method: str
    checkpoint: str | None
    checkpoint_sha256: str | None
    annotated_frames: list[int]
    object_ids: list[int]
    options: dict[str, Any]
    fps: float
    seconds: float
    frames_done: int
    device: str
    # building the method and its start on the annotated frame (FRTM's first fit, OSVOS-AT's
    # fine-tuning), summed over the passes: the wait before the first frame, not in ``fps``
    start_seconds: float = 0.0
    complete: bool = False
    frames_segmented: list[int] = field(default_factory=list)
    # the entries of ``options`` the method picked itself at its start (MethodBase.chosen_options), which
    # may differ between runs given the same options (RGMP's scales follow the objects' size)
    chosen_options: list[str] = field(default_factory=list)
    version: str = __version__

    def __repr__(self) -> str:
        maps = {name: tuple(stack.shape) for name, stack in self.maps.items()}
        return (f"Result(method={self.method!r}, labels={tuple(self.labels.shape)} {self.labels.dtype}, "
                f"object_ids={self.object_ids}, annotated_frames={self.annotated_frames}, "
                f"frames_done={self.frames_done}, fps={self.fps:.2f}, device={self.device!r}, maps={maps})")

    def provenance(self) -> dict[str, Any]:
        """The record of how the labels were made, JSON-serialisable: options that are not plain
        values (a fine-tuning progress callback, a cancel event) are left out."""
        plain = {k: _plain(v) for k, v in self.options.items()}
        options = {k: v for k, v in plain.items() if _is_plain(v)}
        return {"method": self.method, "checkpoint": self.checkpoint, "checkpoint_sha256": self.checkpoint_sha256,
                "options": options, "annotated_frames": self.annotated_frames, "object_ids": self.object_ids,
                "fps": round(self.fps, 3), "seconds": round(self.seconds, 3), "frames_done": self.frames_done,
                "start_seconds": round(self.start_seconds, 3), "device": self.device,
                # a stopped run's file says so, and which frames hold labels ("0-615")
                "complete": self.complete, "frames_segmented": frame_ranges(self.frames_segmented),
                **({"chosen_options": self.chosen_options} if self.chosen_options else {}),
                # what else decides the last bits of fp32 labels: the torch build and the networks' layout
                "torch_version": torch.__version__, "channels_last": channels_last_on(self.device),
                "napari_vos_version": self.version}


def _check_checkpoint(method: str, checkpoint: str | None) -> None:
    """The checkpoint a Session will load is there (a registered default or name whose file is in the
    package or the cache, or a file), checked without reading it; the same errors the method's build
    gives (CheckpointError, or a ValueError for a weight-free method given one)."""
    traits = registry.traits(method)
    if not traits.uses_checkpoint:
        if checkpoint is not None:
            raise ValueError(f"method {method!r} uses no checkpoint, but checkpoint={checkpoint!r} was given")
        return
    from napari_vos import weights

    if checkpoint is not None or traits.needs_checkpoint:
        weights.check_present(checkpoint, method)


def _frame_index(frame: Any, what: str) -> int:
    """A frame number as an int; a ValueError for anything that is not a whole number (2.0, "1", 1.5)."""
    if not whole_number(frame):
        raise ValueError(f"{what} must be a whole frame number, got {frame!r}")
    return int(frame)


MIN_PIXELS = 8  # the smallest working-size rule that leaves a method a frame to work on


def _pixels(name: str, value: Any, otherwise: str) -> int | None:
    """A working-size setting: None (or 0, as the widget's spin box says "off"), or a whole number
    of pixels >= MIN_PIXELS; a ValueError naming ``name`` otherwise, before any frame is read,
    instead of a failure deep inside a method."""
    if value is None or (whole_number(value) and value == 0):
        return None
    if not whole_number(value) or value < MIN_PIXELS:
        raise ValueError(f"{name} must be a whole number of pixels >= {MIN_PIXELS}, or {otherwise}; got {value!r}")
    return int(value)


def _plain(value: Any) -> Any:
    """numpy scalars (a size taken from an array's shape, a spin box's value) as Python numbers,
    also inside lists, tuples and dicts."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _is_plain(value: Any) -> bool:
    """A value JSON can hold: None, bool, number, string, or a list/tuple/dict of them."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


#: the keywords a Session takes itself: what a mistyped option is compared with beside the method's own
SESSION_KEYWORDS = ("device", "checkpoint", "max_side", "min_side", "min_object_side", "channels", "rgb", "maps",
                    "keep_maps", "maps_out", "out", "seed", "precision", "work_size", "stray_parts")


class MethodDiverged(ValueError):
    """A method's probabilities became NaN or inf part-way (its test-time learning diverged: a learning
    rate set too high): the run stops there, as for a NaN frame, with the frames before kept."""


class NothingToPropagate(UserWarning):
    """A propagation whose direction leaves no frame to segment (backward from frame 0, forward
    from the last frame, a one-frame video): the CLI makes it an error."""


class ObjectsUnderAPixel(UserWarning):
    """Annotated objects too small to survive the resize to the working size: each is kept as the
    one pixel over its centre (`object_masks`), which a method may well lose."""


class DarkVideo(UserWarning):
    """An 8-bit video that uses only the bottom half of 0-255, which is therefore stretched by its
    percentiles: read as 0-255, it reached the methods dark."""


class SlowChunks(UserWarning):
    """A dask or zarr stack whose chunks span many frames and are too large to keep: each frame read
    decodes a whole chunk row."""


#: enlarging (min_side, min_object_side) past this many working pixels, with max_side not capping it, is
#: refused: RGMP's 64 px object rule took a 512 x 512 video of 3 x 3 spots to 9680 x 9680
ENLARGED_PIXELS_MAX = 4096 * 4096
#: a network method whose working shorter side max_side holds under this many pixels (or half the
#: method's min_side) gets a SmallWorkingSize note
SMALL_WORKING_SIDE = 64


class SmallWorkingSize(UserWarning):
    """``max_side`` keeps a video's shorter side at a few cells of a network's coarse maps (a tall,
    thin channel of 1000 x 60 pixels at 1024 x 61): objects may be lost."""


class ObjectsNotFollowed(UserWarning):
    """Objects of an annotation added while a run went on that its start frame did not hold."""


class CheckpointPreparedOtherwise(UserWarning):
    """The checkpoint was trained on frames prepared otherwise than this version prepares them."""


class Session:
    """One video, its annotations and a method; `propagate` is a generator of `FrameResult`.

    video: (T, Y, X) grey or (T, Y, X, C) with C <= 4 channels (RGB, RGBA or up to 3 picked by
    ``channels``), any integer, bool or float dtype, from numpy, dask, zarr, a tifffile memmap, a
    torch tensor or a list of frames; frames are read one at a time and normalised by the stack's
    intensity range (8-bit ones: read as 0-255 unless dim, see the user guide's §3). method: a name
    from ``napari_vos.methods.registry.METHODS`` (frtm, agame, rgmp, osvos_at, cosnet, rvos, s2s,
    flow). device: "auto" (cuda, then mps, then cpu) or a torch
    device. checkpoint: a registered checkpoint name or a .safetensors path, str or Path (None or "":
    the method's shipped default). max_side / min_side: the working size's longest side cap (default 1024;
    None: never scale down) and shortest side floor ("auto": the method's own, 480 for frtm, agame
    and osvos_at; None: none); min_object_side: enlarge so the median object is this many pixels
    across ("auto": the method's). channels: which channels of a (T, Y, X, C) stack to use; rgb:
    force (True) or refuse (False) reading a 3- or 4-channel last axis as colour (None: guess).
    maps / keep_maps / maps_out: compute the method's intermediate maps / keep them in
    ``Result.maps`` / ``maps_out(name, shape) -> writable array`` to keep them in (a memmap, zarr).
    out: a writable (T, Y, X) integer array to write the labels into. seed: the methods' random
    augmentations (0 to 2**62 - 1). precision: "auto", "fp32", "bf16" or "fp16". work_size: the one
    an earlier run's record holds, checked (not set), so ``Result.options`` can be given back whole to
    repeat a run.
    stray_parts: "keep" (the method's labels as they are) or "drop": each object keeps only the parts
    of its mask that follow its mask on the frame before (`napari_vos.stray_parts`; the output
    labels only, the method sees its own). Other keywords are the method's
    options (``registry.option_names(method)``: FRTM's update_interval, OSVOS-AT's
    finetune_iterations, ...); a misspelt one is a ValueError naming the closest.

    `annotate` frames, then iterate `propagate` (or call `run`); `cancel` (from any thread) stops
    the run after the current frame, and a method's fine-tuning at once.
    """

    def __init__(self, video: Any, method: str = "frtm", device: str | torch.device = "auto", *,
                 checkpoint: str | os.PathLike[str] | None = None, max_side: int | None = DEFAULT_MAX_SIDE,
                 min_side: int | None | str = "auto", min_object_side: int | None | str = "auto",
                 channels: Sequence[int] | np.ndarray | None = None,
                 rgb: bool | None = None, maps: bool = False, keep_maps: bool = True,
                 maps_out: Callable[[str, tuple[int, ...]], Any] | None = None,
                 out: Any = None, seed: int = 0, precision: str = "auto", work_size: Sequence[int] | None = None,
                 stray_parts: str = "keep", **method_options: Any) -> None:
        for name, value in (("maps", maps), ("keep_maps", keep_maps), ("rgb", rgb)):  # "no" turned maps on
            if not isinstance(value, (bool, np.bool_)) and not (name == "rgb" and value is None):
                raise ValueError(f"{name} is on or off: it takes True or False{' (or None)' if name == 'rgb' else ''}, "
                                 f"got {value!r}")
        self.source = FrameSource(video, channels=channels, rgb=rgb)
        # an earlier run's record (Result.options) holds the working size it ran at: given back with the
        # record's other options, it is checked when the run starts (it follows from them, it sets nothing)
        self._recorded_work_size = None if work_size is None else tuple(int(v) for v in work_size)
        self._channels_given = channels is not None
        self.method_name = method
        self.method_class = registry.method_class(method)
        #: where each map sits (`data/map_geometry.py`): the class's declaration, then the built method's
        #: own (OSVOS-AT's VGG-16 configuration has other strides than its light one)
        self.map_grids: dict[str, int | None] = dict(getattr(self.method_class, "map_grids", {}))
        registry.check_options(method, method_options, SESSION_KEYWORDS)  # a typo or bad value fails here, not frames later
        self.needs_annotation = registry.needs_annotation(method, **method_options)
        self.accepts_annotation = bool(getattr(self.method_class, "accepts_annotation", True))
        self.device = resolve_device(device)
        # the forward passes' autocast dtype ("auto": fp16 on CUDA, bf16 on CPUs with it, else fp32; nn.precision)
        # (checked for every method; a method without a network, flow, computes in fp32 whatever is asked)
        self.precision = resolve_precision(precision, self.device)
        if not getattr(self.method_class, "runs_network", True):
            self.precision = "fp32"
        if isinstance(checkpoint, (bytes, os.PathLike)):  # a pathlib.Path, a bytes path
            checkpoint = os.fsdecode(checkpoint)
        if checkpoint is not None and not isinstance(checkpoint, str):
            raise ValueError(f"checkpoint must be a registered checkpoint name or a .safetensors path (a str or a "
                             f"Path), got a {type(checkpoint).__name__}: {checkpoint!r}")
        if isinstance(checkpoint, str) and not checkpoint.strip():
            checkpoint = None  # an empty field: the method's shipped checkpoint, as its build reads it
        self.checkpoint = checkpoint
        _check_checkpoint(method, self.checkpoint)  # a missing one (or a missing file) fails here, not at the first frame
        self.max_side = _pixels("max_side", max_side, "None (never scale down)")
        # "auto": the method's own preference (FRTM: the paper's 480p; RGMP: objects 64 px across)
        self.min_side = self._size_rule("min_side", min_side, "min_working_side")
        self.min_object_side = self._size_rule("min_object_side", min_object_side, "min_object_side")
        if stray_parts not in ("keep", "drop"):
            raise ValueError(f"stray_parts must be 'keep' (the method's labels as they are) or 'drop' (each object "
                             f"only the parts that follow its previous mask), got {stray_parts!r}")
        self.stray_parts = stray_parts
        self._work_size: tuple[int, int] | None = None  # fixed when the first propagation starts
        self.want_maps = maps
        # False: each frame's maps only in its FrameResult, for a caller that stores them itself (the
        # widget's map layers), so that a long video's maps are not held twice
        self.keep_maps = keep_maps
        # where each kept map's (T, K, h, w) float32 stack goes: called with the map's name and shape
        # when its first frame is ready, it returns a writable array (a memmap, a zarr array, a
        # memory-mapped TIFF: the CLI's --maps), so a long video's maps need not fit in memory;
        # None: numpy arrays in memory
        self.maps_out = maps_out
        self._check_maps_out()
        problem = seed_problem(seed)
        if problem:
            raise ValueError(problem)
        self.seed = int(seed)
        self.method_options = method_options
        t, (h, w) = self.source.n_frames, self.source.frame_shape
        self._own_labels = out is None  # our array is widened as ids need; a caller's `out` must hold them
        if out is None:
            out = np.zeros((t, h, w), dtype=np.uint8)
        elif not (hasattr(out, "shape") and hasattr(out, "dtype") and hasattr(out, "__setitem__")) or \
                _numpy_dtype(out.dtype) is None:  # a torch tensor has all three, but no numpy dtype
            raise ValueError(f"out must be a writable (T, Y, X) integer array (numpy, memmap, zarr), got a "
                             f"{type(out).__name__}")
        elif tuple(out.shape) != (t, h, w):
            raise ValueError(f"out has shape {tuple(out.shape)}, expected {(t, h, w)}")
        elif not np.issubdtype(out.dtype, np.integer):
            raise ValueError(f"out must be an integer labels array, got dtype {out.dtype}")
        elif getattr(getattr(out, "flags", None), "writeable", True) is False:
            raise ValueError("out is read-only (a memmap opened with mode='r'?): give a writable array, e.g. "
                             "np.lib.format.open_memmap(path, mode='w+', ...) or a zarr array opened for writing")
        self.labels = out
        self._written: set[int] = set()  # frames of our own labels stack written so far (for _hold_ids)
        self.maps: dict[str, np.ndarray] = {}
        self._map_ids: dict[str, list[int]] = {}  # the object ids of each map stack's channels
        self.annotations: dict[int, np.ndarray] = {}
        self._cancelled = False
        # set by cancel(): a method that fine-tunes before its first frame (OSVOS-AT, RGMP's online
        # fine-tuning) stops at its next iteration, not after tens of seconds
        self._stop = threading.Event()
        self._given_cancel_set = False
        self._planned = 0
        self._run = 0  # which propagate() call is current: an older generator resumed later must not write
        self._seconds = 0.0
        self._start_seconds = 0.0
        self._frames_done = 0
        self._segmented: list[int] = []  # the frames the last propagation yielded, in its order
        self._complete = False  # whether the last propagation ran to its end
        self._checkpoint_info: tuple[str | None, str | None] = (None, None)
        #: called with the Session each time its method is built (its checkpoint and sha256 known), before the
        #: method starts: raises to refuse the weights or settings (a resumed run's kept planes were made by others)
        self.check_method: Callable[[Session], None] | None = None
        self._found_ids: list[int] = []  # a zero-shot run's output ids (1..K)
        self._followed_ids: list[int] | None = None  # the start frame's ids of the last annotated run
        self._chosen: dict[str, Any] = {}  # what the method picked at start (MethodBase.chosen_options)
        self._video_memo: dict[Any, Any] = {}  # shared by one run's passes (VideoFrames.memo)
        # what this propagation warned of, for a caller that shows no Python warnings (the widget)
        self.notes: list[str] = []

    def _size_rule(self, name: str, value: int | None | str, attribute: str) -> int | None:
        """A working-size rule: ``"auto"`` takes the method class's ``attribute``, a number or None
        is kept, any other string is a ValueError naming the option."""
        if isinstance(value, str) and value == "auto":
            value = getattr(self.method_class, attribute, None)
        return _pixels(name, value, "None or 'auto'")

    # -- annotations ---------------------------------------------------------------------
    def annotate(self, frame: int, labels: Any) -> None:
        """Add (or replace) the labels of one frame: 0 = background, k > 0 = object k."""
        if not self.accepts_annotation:
            raise ValueError(f"method {self.method_name!r} segments the video without an annotation and takes "
                             "none: propagate without labels")
        t = self.source.n_frames
        frame = _frame_index(frame, "annotated frame")
        if not 0 <= frame < t:
            raise ValueError(f"annotated frame {frame} is outside the stack (frames 0..{t - 1})")
        arr = check_labels(labels, self.source.frame_shape, f"labels of frame {frame}")
        if not arr.any():
            raise ValueError(f"the labels of frame {frame} are empty: paint at least one object (ids > 0)")
        self._hold_ids(int(arr.max()))
        self.annotations[int(frame)] = arr
        self.labels[int(frame)] = arr
        self._written.add(int(frame))

    def _hold_ids(self, max_id: int) -> None:
        """Make the labels array able to hold ids up to ``max_id``: widen our own (uint8 -> uint16 ->
        int32); a caller's ``out`` that cannot hold them is a ValueError, not a silent wrap-around."""
        if max_id <= np.iinfo(self.labels.dtype).max:
            return
        if not self._own_labels:
            raise ValueError(f"out has dtype {self.labels.dtype}, which cannot hold object id {max_id}; "
                             f"give an array of {label_dtype_for(max_id)} or wider")
        # a fresh zeroed stack and only the frames written so far: np.zeros maps its pages as they are
        # written, where astype would commit the whole (T, Y, X) stack at once (16 GiB for 2000 frames of 2048^2)
        wider = np.zeros(self.labels.shape, label_dtype_for(max_id))
        for t in sorted(self._written):
            wider[t] = self.labels[t]
        self.labels = wider

    def annotate_stack(self, labels: Any, painted: Sequence[int] | None = None) -> list[int]:
        """Take every frame of a (T, Y, X) labels stack that holds any object as an annotation.

        ``painted``: those frames, when the caller has found them already (`painted_frames`), so a
        lazily read stack is not scanned twice.
        """
        shape = tuple(getattr(labels, "shape", np.shape(labels)))
        expected = (self.source.n_frames, *self.source.frame_shape)
        if shape != expected:
            single = len(shape) == 3 and shape[2] == 1 and shape[:2] == expected[1:]  # a (Y, X, 1) image
            one_frame = len(shape) == 3 and shape[0] == 1 and shape[1:] == expected[1:]  # a (1, Y, X) stack
            raise ValueError(f"labels stack has shape {shape} but the video is {expected[0]} frames of "
                             f"{expected[1:]}: the labels must match the image, one frame each"
                             + ("; for one frame's labels with a trailing axis of 1, pass labels[..., 0]"
                                if single else "")
                             + ("; for one frame's labels saved as a one-frame stack, pass labels[0] (and "
                                "frame=N for the frame it was painted on)" if one_frame else ""))
        labels = from_torch(labels)
        frames = painted_frames(labels)[0] if painted is None else [int(i) for i in painted]
        if not frames:
            raise ValueError("the labels are empty on every frame: paint at least one object on one frame")
        if len(frames) == shape[0] > 1:
            raise ValueError("every frame of the labels stack is painted (an earlier output?), so every frame "
                             "would be an annotation and nothing is left to propagate: give the labels of the "
                             "frame(s) to start from, e.g. only the first frame's (to re-run a corrected output from "
                             "its frame, keeping the others: the command line's --keep-other-frames with --frame)")
        for i in frames:
            self.annotate(i, labels[i])
        return frames

    @property
    def work_size(self) -> tuple[int, int]:
        """(height, width) the method runs at: the frame size within ``min_side``/``max_side``,
        enlarged so the median annotated object is ``min_object_side`` pixels across. Fixed when the
        first propagation starts, so every pass and map of the session has the same geometry."""
        if self._work_size is not None:
            return self._work_size
        scale = object_scale(self.annotations.values(), self.min_object_side)
        return working_size(self.source.frame_shape, self.max_side, self.min_side, scale)

    def _check_enlargement(self, size: tuple[int, int]) -> None:
        """Refuse a working size that the enlarging rules made larger than the frame and than
        `ENLARGED_PIXELS_MAX`, with nothing capping it (max_side None): tens of GB, then the
        out-of-memory killer, with nothing said."""
        fh, fw = self.source.frame_shape
        h, w = size
        if self.max_side is None and h * w > max(fh * fw, ENLARGED_PIXELS_MAX):
            raise ValueError(
                f"the working size would be {w}x{h} pixels ({h * w / 1e6:.0f} MP): min_side={self.min_side} and "
                f"min_object_side={self.min_object_side} enlarge this {fw}x{fh} video {h / fh:.1f}x, "
                f"and max_side={self.max_side} caps nothing; set max_side (e.g. 2048) or "
                "min_object_side=None / min_side=None (the command line: --max-side, --min-side 0)")

    def _note_small_working_size(self) -> None:
        """Note (`SmallWorkingSize`) a network method's working size whose shorter side max_side holds
        under `SMALL_WORKING_SIDE` or half the method's min_side."""
        if not getattr(self.method_class, "runs_network", True) or not self.max_side:
            return
        h, w = self._work_size
        scale = object_scale(self.annotations.values(), self.min_object_side)
        free = working_size(self.source.frame_shape, None, self.min_side, scale)
        floor = max(SMALL_WORKING_SIDE, (self.min_side or 0) // 2)
        if min(h, w) < floor and min(free) > min(h, w):
            fh, fw = self.source.frame_shape
            self._note(f"max_side={self.max_side} runs this {fw}x{fh} video at {w}x{h}: its shorter side of "
                       f"{min(h, w)} px is a few cells of {self.method_name}'s coarse maps"
                       + (f" (it works at {self.min_side} px)" if self.min_side else "")
                       + ", so objects may be lost; raise max_side (None: no cap) or crop the video to the "
                       "region of interest", SmallWorkingSize)

    @property
    def object_ids(self) -> list[int]:
        """The annotated object ids, or (zero-shot, no annotation) the ids the method's output got."""
        if not self.annotations:
            return list(self._found_ids)
        ids: set[int] = set()
        for a in self.annotations.values():
            ids.update(painted_ids(a))
        return sorted(ids)

    def cancel(self) -> None:
        """Stop the running propagation after the current frame (a method's fine-tuning before its
        first frame at its next iteration); also sets a ``cancel_event`` given as a method option.
        A cancel between calling `propagate` and its first frame counts too."""
        self._cancelled = True
        self._stop.set()
        given = self.method_options.get("cancel_event")
        if given is not None:
            self._given_cancel_set = self._given_cancel_set or not given.is_set()
            given.set()

    @property
    def planned_frames(self) -> int:
        """How many frames the last `propagate` call yields if it runs to the end (the start frame
        included): a progress bar's total for a one-way run."""
        return self._planned

    def __repr__(self) -> str:
        return (f"Session(method={self.method_name!r}, video={(self.source.n_frames, *self.source.frame_shape)}, "
                f"annotated_frames={sorted(self.annotations)}, object_ids={self.object_ids}, device='{self.device}', "
                f"work_size={self.work_size}, frames_done={self._frames_done})")

    # -- running -------------------------------------------------------------------------
    def _make_method(self) -> Any:
        """Build the method on the Session's device with its checkpoint and options. Building a network
        can import torch._dynamo, and so triton, which crashes a process using Mesa's OpenGL (napari's
        console): `guard_triton` first, so scripts are as safe as the widget (see gl_guard.py)."""
        guard_triton()
        options = dict(self.method_options)
        if registry.traits(self.method_name).reports_finetune:
            options.setdefault("cancel_event", self._stop)
        with _global_rng_kept():  # building the network draws from torch's global generator
            method = registry.create(self.method_name, device=self.device, checkpoint=self.checkpoint,
                                     seed=self.seed, **options)
        if hasattr(method, "min_object_side"):  # a method's own size rule (RGMP's test scales) follows the Session's
            method.min_object_side = self.min_object_side
        self._checkpoint_info = (getattr(method, "checkpoint_name", None), getattr(method, "checkpoint_sha256", None))
        if self.check_method is not None:
            self.check_method(self)
        self.map_grids = dict(getattr(method, "map_grids", self.map_grids))
        for note in getattr(method, "checkpoint_notes", ()):
            self._note(note, CheckpointPreparedOtherwise)
        return method

    def _image(self, index: int) -> torch.Tensor:
        return self.source.tensor(index, self.device, self.work_size)

    def _objects(self, labels: np.ndarray, ids: list[int], frame: int) -> torch.Tensor:
        """(K, h, w) masks at the working size: each object's resized box (`object_masks`); objects
        too small for it are kept as one pixel each, with an `ObjectsUnderAPixel` warning."""
        rescued: list[int] = []
        masks = object_masks(labels, ids, self.work_size, rescued)
        if rescued:
            h, w = self.work_size
            note = (f"object{'s' if len(rescued) > 1 else ''} {', '.join(map(str, rescued))} of frame {frame} "
                    f"{'are' if len(rescued) > 1 else 'is'} smaller than a pixel at the {h}x{w} working size "
                    f"(max_side={self.max_side}) and kept as one pixel, which the method may lose: raise max_side "
                    "(None: the full frame size) to follow it")
            self._note(note, ObjectsUnderAPixel)
        return masks.to(self.device)

    def _note(self, note: str, category: type[Warning]) -> None:
        """Warn of ``note`` once per propagation, and keep it in `notes` (the widget shows no warnings)."""
        if note not in self.notes:
            self.notes.append(note)
            warnings.warn(note, category, stacklevel=3)

    def _to_labels(self, aggregated: torch.Tensor, ids: list[int]) -> np.ndarray:
        index = labels_at_size(aggregated, self.source.frame_shape).cpu().numpy()
        lut = np.array([0] + ids, dtype=np.int32)
        return lut[index]

    def _store_maps(self, index: int, maps: dict[str, torch.Tensor], ids: list[int]) -> dict[str, np.ndarray]:
        out = {}
        for name, value in maps.items():
            value = value() if callable(value) else value  # a lazy map: computed now that it is wanted
            arr = value.detach().float().cpu().numpy().astype(np.float32)
            out[name] = arr
            if not self.keep_maps or arr.size == 0:  # (a zero-shot run that found no object: nothing to keep)
                continue
            per_object = arr.shape[0] == len(ids) and name not in getattr(self.method_class, "global_maps", ())
            if name not in self.maps or tuple(self.maps[name].shape[1:]) != arr.shape or \
                    (per_object and self._map_ids.get(name) != list(ids)):  # other objects, even as many
                self._restack_map(name, arr.shape, ids)
            self.maps[name][index] = arr
        return out

    def _restack_map(self, name: str, shape: tuple[int, ...], ids: list[int]) -> None:
        """A new stack for map ``name`` (the first frame, or a re-run with other objects). A re-run
        keeps the frames it does not reach: per-object channels are carried over by object id (a
        correction at frame 30 re-run forward keeps frames 0-29's maps of the objects it still has)."""
        old, old_ids = self.maps.get(name), self._map_ids.get(name, [])
        pairs: list[tuple[int, int]] = []
        if old is not None and tuple(old.shape[2:]) == tuple(shape[1:]) and old.shape[1] == len(old_ids) \
                and shape[0] == len(ids):
            pairs = [(ids.index(i), old_ids.index(i)) for i in ids if i in old_ids]
        kept, folder = old, None
        try:
            if pairs and self.maps_out is not None:
                # maps_out may hand back the same file, truncated: the kept channels go to a temporary
                # file first, frame by frame (a maps_out stack is one that does not fit in memory)
                import tempfile

                folder = tempfile.mkdtemp(prefix="napari-vos-maps-")
                kept = np.lib.format.open_memmap(os.path.join(folder, "kept.npy"), mode="w+", dtype=np.float32,
                                                 shape=(old.shape[0], len(pairs), *old.shape[2:]))
                for t in range(old.shape[0]):
                    kept[t] = np.asarray(old[t])[[o for _, o in pairs]]
                pairs = [(new, n) for n, (new, _) in enumerate(pairs)]
            self.maps[name] = self._new_map_stack(name, (self.source.n_frames, *shape))
            self._map_ids[name] = list(ids)
            for t in range(self.source.n_frames if pairs else 0):
                for new, o in pairs:
                    self.maps[name][t, new] = kept[t, o]
        finally:
            if folder is not None:
                mapped = getattr(kept, "_mmap", None)
                del kept
                if mapped is not None:
                    mapped.close()  # (Windows deletes no mapped file)
                shutil.rmtree(folder, ignore_errors=True)

    def _new_map_stack(self, name: str, shape: tuple[int, ...]) -> Any:
        """The zeroed stack map ``name`` is kept in: numpy, or what ``maps_out`` gives (checked)."""
        if self.maps_out is None:
            return np.zeros(shape, dtype=np.float32)
        stack = self.maps_out(name, shape)
        if not (hasattr(stack, "shape") and hasattr(stack, "__setitem__")) or tuple(stack.shape) != shape:
            got = tuple(stack.shape) if hasattr(stack, "shape") else type(stack).__name__
            raise ValueError(f"maps_out must return a writable array of shape {shape} for map {name!r}, got {got}")
        if not np.issubdtype(np.dtype(getattr(stack, "dtype", np.float32)), np.floating):
            raise ValueError(f"maps_out must return a float array for map {name!r} (the maps are float32 scores "
                             f"and probabilities), got dtype {stack.dtype}")
        return stack

    def _check_maps_out(self) -> None:
        if self.maps_out is not None and not (self.want_maps and self.keep_maps):
            raise ValueError("maps_out is where the maps are kept: it needs maps=True and keep_maps=True")

    def _autocast(self) -> Any:
        return autocast_for(self.precision, self.device)

    @contextmanager
    def _compute(self) -> Iterator[None]:
        """Where the engine's torch work runs, whatever torch state the caller (a script, napari's
        console) set: normal tensors even inside ``torch.inference_mode()`` (the methods learn at
        test time: they turn autograd on where they need it), float32 networks under a float64
        default dtype, the run's autocast, and the caller's global random state left as it was
        (building a network draws from it; the methods draw from their own seeded generators)."""
        with _process_state(), torch.inference_mode(False), \
                torch.no_grad(), self._autocast():
            yield

    def _video(self) -> VideoFrames:
        return VideoFrames(self.source.n_frames, self._image, self._video_memo)

    def _pass(self, start: int, stop: int, stride: int, ids: list[int] | None, run: int) -> Iterator[FrameResult]:
        """Propagate from annotated frame ``start`` towards ``stop`` (exclusive).

        ids None: zero-shot, no annotation; ``start`` is segmented too and the ids are 1..K for
        the K channels of the method's output. A pass with no frame to segment (forward from the
        last frame, backward from the first) builds no method: FRTM's fit or OSVOS-AT's
        fine-tuning would be spent on nothing.
        """
        first = start + stride if ids is not None else start
        if ids is not None:  # the start frame is an annotation: no earlier run's map stays beside it
            for stack in self.maps.values():
                stack[start] = 0
        if not range(first, stop, stride):
            return
        tic = time.perf_counter()
        with self._compute():
            method = self._make_method()
            if hasattr(method, "set_video"):
                method.set_video(self._video())
            if ids is not None:
                method.start(self._image(start), self._objects(self.annotations[start], ids, start))
        if self.device.type == "cuda":  # the start's queued kernels count as the start, not as frame 1
            torch.cuda.synchronize(self.device)
        self._start_seconds += time.perf_counter() - tic
        self._chosen = getattr(method, "chosen_options", dict)()
        stacks: list[torch.Tensor] = []  # the aggregation's two alternating outputs (many objects)
        for t in range(first, stop, stride):
            if run != self._run:  # two propagations of one Session would mix their frames and counts
                raise RuntimeError("this propagation was replaced by a later propagate() call on the same Session; "
                                   "run one propagation at a time (or one Session per run)")
            if self._cancelled:
                return
            tic = time.perf_counter()
            with record_function("vos.read_frame"):
                image = self._image(t)
            if t in self.annotations:
                new = sorted(set(painted_ids(self.annotations[t])) - set(ids or []))
                if new:  # annotated mid-run (propagate() refuses them up front): this run cannot follow them
                    self._note(f"object{'s' if len(new) > 1 else ''} {', '.join(map(str, new))} of frame {t}, "
                               f"annotated during the run, {'were' if len(new) > 1 else 'was'} not on its start "
                               f"frame {start}: this run follows only the start frame's objects; propagate "
                               f"again from frame {t} for {'them' if len(new) > 1 else 'it'}", ObjectsNotFollowed)
                with self._compute():
                    method.remember(image, self._objects(self.annotations[t], ids, t))
                labels, maps = self.annotations[t].copy(), {}  # the caller's to change; the annotation stays
                for stack in self.maps.values():  # a corrected frame: no earlier run's map stays beside it
                    stack[t] = 0
                annotated = True
            else:
                with self._compute():
                    with record_function("vos.method_step"):
                        step = method.step(image)
                    if ids is not None and (step.probs.ndim != 3 or int(step.probs.shape[0]) != len(ids)):
                        # a method's bug named here, not as numpy's IndexError or an object silently dropped
                        raise RuntimeError(f"method {self.method_name!r} returned probabilities of shape "
                                           f"{tuple(step.probs.shape)} for {len(ids)} object(s): step() must "
                                           "give one (H, W) channel per object it was started with")
                    with record_function("vos.aggregate"):
                        probs = step.probs.float()
                        finite = torch.isfinite(probs).all()  # read once the labels reach the CPU: no sync of its own
                        aggregated = soft_aggregate(probs, out=_reused_stack(stacks, probs), background=step.background)
                    with record_function("vos.method_update"):
                        method.update(aggregated[1:])
                if ids is None:
                    ids = self._found_ids = list(range(1, int(step.probs.shape[0]) + 1))
                    self._hold_ids(len(ids))
                with record_function("vos.labels_out"):
                    labels = self._to_labels(aggregated, ids)
                    if not bool(finite):  # else empty labels, unsaid, on this frame and every one after it
                        raise MethodDiverged(
                            f"method {self.method_name!r} gave probabilities that are not finite (NaN or inf) on "
                            f"frame {t}: its state diverged, so the run stops here with the frames before kept; "
                            "check its options (a learning rate set too high, say), or try precision='fp32'")
                    if self.stray_parts == "drop" and (t - stride == start or t - stride in self._written):
                        labels = drop_stray_parts(labels, np.asarray(self.labels[t - stride]))
                with record_function("vos.maps_out"):
                    maps = self._store_maps(t, step.maps, ids) if self.want_maps else {}
                annotated = False
            self.labels[t] = labels
            self._written.add(t)
            labels = labels.astype(self.labels.dtype, copy=False)  # each frame of the type Result.labels has
            seconds = time.perf_counter() - tic
            self._seconds += seconds
            self._frames_done += 1
            yield FrameResult(t, labels, maps, annotated, seconds)

    def propagate(self, direction: str = "both", start: int | None = None) -> Iterator[FrameResult]:
        """Yield each frame as it is segmented: first the annotated start frame, then forward, then backward.

        direction: "forward", "backward" or "both". start: the annotated frame to start from
        (default: the earliest annotation for forward/both, the latest for backward). A zero-shot
        method with no annotation starts at ``start`` (default: frame 0, or the last frame for
        "backward"), segments it and goes on from there. Each FrameResult's ``labels`` is the
        caller's to change. The arguments are checked here, when called, and a `cancel` from now
        on stops the run, even one that comes before the first frame is asked for.
        """
        if direction not in ("forward", "backward", "both"):
            raise ValueError(f"direction must be 'forward', 'backward' or 'both', got {direction!r}")
        self._check_maps_out()  # set after construction too (the CLI's --maps)
        self._cancelled = False  # reset first: a cancel() arriving while this call reads frames holds
        # a fresh event, not the shared one cleared: a cancelled run still fine-tuning keeps its own, set
        self._stop = threading.Event()
        if self._given_cancel_set:  # the caller's cancel_event that our cancel() set
            self.method_options["cancel_event"].clear()
            self._given_cancel_set = False
        t = self.source.n_frames
        run = self._run + 1  # this call's number: a generator of an earlier call must not write
        if not self.annotations:
            if self.needs_annotation:
                raise ValueError(f"no annotation yet: method {self.method_name!r} needs one; call "
                                 f"annotate(frame, labels) first{registry.zero_shot_hint(self.method_name)}")
            if start is None:
                start = t - 1 if direction == "backward" else 0
            start = _frame_index(start, "start frame")
            if not 0 <= start < t:
                raise ValueError(f"start frame {start} is outside the stack (frames 0..{t - 1})")
            frames = self._propagate_zero_shot(direction, start, run)
        else:
            if start is None:
                start = max(self.annotations) if direction == "backward" else min(self.annotations)
            start = _frame_index(start, "start frame")
            if start not in self.annotations:
                raise ValueError(f"frame {start} is not annotated; annotated frames: {sorted(self.annotations)}")
            ids = painted_ids(self.annotations[start])
            missing = objects_missing_at_start(self.annotations, start, direction=direction) or \
                labels_look_like_an_image(self.annotations[start], ids, start)
            if missing:
                raise ValueError(missing)
            frames = self._propagate_annotated(direction, start, ids, run)
        self._followed_ids = ids if self.annotations else None  # the Result's object_ids: what this run follows
        self._run = run
        self._video_memo = {}  # a fresh one for this run's passes (VideoFrames.memo)
        if self._recorded_work_size is not None and tuple(self.work_size) != self._recorded_work_size:
            h, w = self._recorded_work_size
            raise ValueError(f"work_size {[h, w]} (a record's) is not the working size these settings give this video, "
                             f"{list(self.work_size)}: another video, other labels or other size options than the "
                             "recorded run's (work_size is checked, not set: max_side, min_side and min_object_side "
                             "set it)")
        self._check_enlargement(self.work_size)
        self._work_size = self.work_size
        # the timings and counts of the Result are this propagation's (a re-run after a new
        # annotation starts from zero rather than adding to the last run's)
        self._seconds = self._start_seconds = 0.0
        self._frames_done = 0
        self._segmented = []
        self._complete = False
        self.notes = []
        top = self.source.dark_8bit_top()
        if top is not None:
            self._note(f"the 8-bit video's 99.8th percentile is {top} of 0-255, so it is stretched by its "
                       "percentiles (1-99.8 %), as 16-bit and float data are, instead of read as 0-255 (dark "
                       "frames to the method)", DarkVideo)
        self._note_small_working_size()
        decoded = self.source.frames_decoded_per_frame()
        if decoded > 1:
            self._note(f"the stack's chunks span {decoded} frames each, too many to keep in memory, so every frame "
                       f"read decodes {decoded} frames: rechunk it to one frame per chunk (dask: "
                       "video.rechunk({0: 1}); zarr: write it with chunks such as (1, 512, 512))", SlowChunks)
        self._planned = {"both": t, "forward": t - start, "backward": start + 1}[direction]
        reached = {"both": range(t), "forward": range(start, t), "backward": range(start + 1)}[direction]
        if self.annotations and all(i in self.annotations for i in reached):
            why = ("leaves no frame to segment" if len(reached) == 1 else
                   f"reaches only annotated frames ({reached.start}-{reached.stop - 1}), which it keeps as painted")
            warnings.warn(f"nothing to propagate: {direction} from frame {start} of a {t}-frame stack {why}",
                          NothingToPropagate, stacklevel=2)
        return self._releasing(frames, run)

    def _releasing(self, frames: Iterator[FrameResult], run: int) -> Iterator[FrameResult]:
        """``frames``, then (however the run ends) what only the run read let go: the memo its passes
        shared (a stopped fine-tuning's weights, COSNet's references) and the last decoded chunk row
        of a dask or zarr stack, which a Session kept after its run (a console's, a notebook's) held.
        Notes the frames yielded, and whether the run reached its end (not cancelled, closed or failed)."""
        try:
            for step in frames:
                if run == self._run:
                    self._segmented.append(step.index)
                yield step
            if run == self._run:  # a cancel stops the passes early: complete only with every planned frame
                self._complete = len(self._segmented) == self._planned
        finally:
            frames.close()  # a run broken off: its passes let go of what they hold now, as `yield from` did
            if run == self._run:
                self._video_memo = {}
                self.source.release()

    def _propagate_annotated(self, direction: str, start: int, ids: list[int], run: int) -> Iterator[FrameResult]:
        """The annotated start frame, then the frames after it, then (both) those before it."""
        yield FrameResult(start, self.annotations[start].astype(self.labels.dtype), {}, True, 0.0)  # a copy
        t = self.source.n_frames
        if direction in ("forward", "both"):
            yield from self._pass(start, t, 1, ids, run)
        if direction in ("backward", "both") and not self._cancelled:
            yield from self._pass(start, -1, -1, ids, run)

    def _propagate_zero_shot(self, direction: str, start: int, run: int) -> Iterator[FrameResult]:
        """No annotation: segment ``start`` and every frame after it, then (both) every frame before it."""
        t = self.source.n_frames
        if direction in ("forward", "both"):
            yield from self._pass(start, t, 1, None, run)
        if direction == "backward":
            yield from self._pass(start, -1, -1, None, run)
        elif direction == "both" and start > 0 and not self._cancelled:
            yield from self._pass(start - 1, -1, -1, None, run)

    def run(self, direction: str = "both", progress: Callable[[int, int], None] | None = None,
            start: int | None = None) -> "Result":
        """Propagate to the end (or until cancelled) and return the Result; ``progress(done, total)``
        after each frame, ``total`` being the frames this run yields; ``start`` as `propagate` takes it."""
        _check_progress(progress)
        frames = self.propagate(direction, start=start)
        for done, _ in enumerate(frames, start=1):
            if progress is not None:
                progress(done, self.planned_frames)
        return self.result()

    def result(self) -> Result:
        """The labels, maps and record so far: after a run, or part-way (a run stopped by an error
        or Ctrl+C keeps the frames it finished here)."""
        name, sha = self._checkpoint_info
        fps = self._frames_done / self._seconds if self._seconds > 0 else 0.0
        return Result(labels=self.labels, maps=dict(self.maps), method=self.method_name, checkpoint=name,
                      checkpoint_sha256=sha, annotated_frames=sorted(self.annotations),
                      object_ids=self.object_ids if self._followed_ids is None else list(self._followed_ids),
                      options={"max_side": self.max_side, "min_side": self.min_side,
                               "min_object_side": self.min_object_side, "precision": self.precision,
                               **({"stray_parts": self.stray_parts} if self.stray_parts != "keep" else {}),
                               "seed": self.seed,  # the methods' random draws: another seed, other labels
                               "work_size": list(self.work_size),
                               **({"channels": list(self.source.channels or [0])} if self._channels_given else {}),  # grey: [0]
                               **self.method_options, **self._chosen},
                      fps=fps, seconds=self._seconds, frames_done=self._frames_done, device=str(self.device),
                      start_seconds=self._start_seconds, complete=self._complete,
                      frames_segmented=list(self._segmented), chosen_options=sorted(self._chosen))


class _SharedTorchState:
    """A piece of torch's process-wide state held for the engine's work and given back: the first
    thread in calls ``take`` (which sets what the engine needs and returns what to give back, or None
    for nothing), the last one out calls ``give_back`` with it. Counted, so Sessions running in several
    threads at once neither undo each other's setting nor leave one run's state behind."""

    def __init__(self, take: Callable[[], Any], give_back: Callable[[Any], None]) -> None:
        self._take, self._give_back = take, give_back
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: Any = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._saved = self._take()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._saved is not None:
                    self._give_back(self._saved)
                    self._saved = None


def _float32_default() -> torch.dtype | None:
    """float32 as torch's default dtype (float32 networks); the caller's other default, to give back.
    A float32 default is not touched, so other threads' torch work (napari's console while the widget
    runs) is left alone."""
    dtype = torch.get_default_dtype()
    if dtype == torch.float32:
        return None
    torch.set_default_dtype(torch.float32)
    return dtype


#: the default dtype for the engine's work (`Session._compute`)
_process_state = _SharedTorchState(_float32_default, torch.set_default_dtype).held
#: torch's CPU RNG state given back after building a network (which draws from the global generator; the
#: methods draw from their own seeded ones). Only around the build: around every frame it rewound the RNG
#: of other threads (napari's console) drawing while the widget ran
_global_rng_kept = _SharedTorchState(torch.random.get_rng_state, torch.random.set_rng_state).held


def _numpy_dtype(dtype: Any) -> np.dtype | None:
    """``dtype`` as numpy's, or None when it is none numpy knows (a torch dtype)."""
    try:
        return np.dtype(dtype)
    except TypeError:
        return None


def _reused_stack(stacks: list[torch.Tensor], probs: torch.Tensor) -> torch.Tensor | None:
    """The (K + 1, H, W) tensor this frame's aggregation writes into, for many objects on the CPU:
    two alternate, so the stack a method got in ``update`` stays intact through its next step while
    the next one is written (a new 244 MB stack for 60 cells at 1024 px page-faults for ~55 ms)."""
    if not uses_boxwise_output(probs):
        return None
    shape = (probs.shape[0] + 1, *probs.shape[1:])
    if stacks and (tuple(stacks[0].shape) != shape or stacks[0].dtype != probs.dtype):
        stacks.clear()
    if len(stacks) < 2:
        stacks.append(torch.empty(shape, dtype=probs.dtype, device=probs.device))
        return stacks[-1]
    stacks.append(stacks.pop(0))
    return stacks[-1]


def annotated_session(video: Any, labels: Any = None, method: str = "frtm", frame: int | None = None, *,
                      device: str | torch.device = "auto", painted: Sequence[int] | None = None,
                      **session_options: Any) -> tuple[Session, int | None]:
    """A Session holding ``labels`` as its annotations, as `propagate` takes them, and the frame its
    propagation starts from (None: the session's default). For callers that run the frames
    themselves, such as the CLI, which keeps the finished frames of a run that stops early.
    ``painted``: a labels stack's painted frames, when the caller has found them (`annotate_stack`)."""
    session = Session(video, method=method, device=device, **session_options)
    problem = None if labels is None else not_an_array(labels, "the labels")
    if problem:
        raise ValueError(problem)
    arr_ndim = 0 if labels is None else len(getattr(labels, "shape", np.shape(labels)))
    if labels is None:
        if session.needs_annotation:
            raise ValueError(f"method {method!r} needs labels: paint the objects on one frame (or pick a "
                             f"zero-shot method, which needs none){registry.zero_shot_hint(method)}")
    elif arr_ndim == 3:
        session.annotate_stack(labels, painted)
    else:
        session.annotate(0 if frame is None else frame, labels)
    return session, (frame if arr_ndim in (0, 3) else None)


def propagate(video: Any, labels: Any = None, method: str = "frtm", frame: int | None = None, *,
              device: str | torch.device = "auto", direction: str = "both",
              progress: Callable[[int, int], None] | None = None,
              **session_options: Any) -> Result:
    """One call: annotate ``labels`` and propagate through ``video``; returns the `Result`.

    video: a (T, Y, X[, C]) stack (see `Session`). labels: (Y, X) labels of ``frame`` (default 0),
    or a (T, Y, X) stack whose painted frames are all taken as annotations (``frame`` then picks
    the start frame), or None for a zero-shot method (e.g. ``method="cosnet"``), which then
    segments every frame (``frame``: where to start). method, device and ``session_options``
    (max_side, channels, maps, checkpoint, method options ...): as `Session` takes them.
    direction: "both", "forward" or "backward" from the start frame. progress: called as
    ``progress(done, total)`` after each frame. An error or Ctrl+C part-way loses the run here; a
    `Session` keeps the finished frames in ``session.result()``.
    """
    _check_progress(progress)  # before the method is built and the annotated frame segmented
    session, start = annotated_session(video, labels, method, frame, device=device, **session_options)
    return session.run(direction, progress, start=start)


def _check_progress(progress: Any) -> None:
    """A TypeError for a ``progress`` that cannot be called (a tqdm bar itself, a count), at once rather
    than after the first frame."""
    if progress is not None and not callable(progress):
        raise TypeError(f"progress is called as progress(done, total) after each frame: give a function, "
                        f"not {type(progress).__name__!r} (for a tqdm bar: lambda done, total: bar.update(1))")
