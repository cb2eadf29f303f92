"""The method protocol every segmentation method implements, and the per-frame Step result.

The engine (session.py) owns frame reading, normalisation, resizing, object bookkeeping and
the soft aggregation of objects; a method only holds its paper: how to start from an annotated
frame, how to segment the next frame, and how to learn from the aggregated result.

Zero-shot methods (``needs_annotation = False``, e.g. COSNet) are given no annotated frame: the
engine hands them the whole video first (``set_video``) and then steps every frame; the number of
objects is the number of channels of their ``Step.probs``. Such a method may still take
annotations (``accepts_annotation``), which then arrive through ``start`` as for the others.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Protocol, runtime_checkable

import torch


@dataclass
class Step:
    """One frame's output: per-object foreground probabilities and optional intermediate maps.

    probs: (K, H, W) at the working resolution, before aggregation.
    maps: name -> (K, h, w) tensor (e.g. FRTM's coarse target scores), any resolution; or a
    zero-argument function returning one, which the engine calls only when maps are wanted (for a
    map that costs a pass over K full frames, such as RGMP's with many cells).
    background: (H, W) background probability from the method's own pass, used by the aggregation
    in place of prod_k (1 - p_k) (RGMP's "merged foreground subtracted from 1"); None: the product.
    """

    probs: torch.Tensor
    maps: dict[str, torch.Tensor | Callable[[], torch.Tensor]] = field(default_factory=dict)
    background: torch.Tensor | None = None


@dataclass(frozen=True)
class VideoFrames:
    """The whole video as a method sees it: ``video[t]`` is frame t, (3, H, W) in [0, 1] at the
    working resolution on the method's device, read (and normalised) only when asked for.

    Given to every method through ``set_video`` before a pass; zero-shot methods use it to look
    at frames other than the one being segmented (COSNet's reference frames). ``memo`` is one dict
    for all passes of one propagation: what a method worked out from the whole video (COSNet's
    embedded references) is kept there for the run's other pass instead of being read and computed again.
    """

    n_frames: int
    read: Callable[[int], torch.Tensor]
    memo: dict[Any, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.n_frames

    def __getitem__(self, index: int) -> torch.Tensor:
        index = int(index)
        if not 0 <= index < self.n_frames:
            raise IndexError(f"frame {index} is outside the video (frames 0..{self.n_frames - 1})")
        return self.read(index)


@runtime_checkable
class Method(Protocol):
    """What the engine calls. Images are (3, H, W) float in [0, 1]; objects (K, H, W) in {0, 1}."""

    name: ClassVar[str]
    needs_checkpoint: ClassVar[bool]
    needs_annotation: ClassVar[bool]  # False: zero-shot, the engine steps every frame without start()
    accepts_annotation: ClassVar[bool]  # False: annotations are refused (COSNet: the primary object only)

    def set_video(self, video: VideoFrames) -> None:
        """The whole video, given once per pass before ``start``/``step``."""

    def start(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        """Learn the objects from the annotated frame (test-time learning happens here)."""

    def step(self, image: torch.Tensor) -> Step:
        """Segment the next frame: per-object probabilities (K, H, W) and the method's maps."""

    def update(self, probs: torch.Tensor) -> None:
        """Receive the aggregated per-object probabilities (K, H, W) of the last stepped frame.

        The tensor stays valid through the next ``step`` and ``update`` only: with many objects the
        engine writes every other frame's aggregate into the same memory; copy it to keep it longer."""

    def remember(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        """Add a (corrected) annotated frame as a new reference."""

    def chosen_options(self) -> dict[str, Any]:
        """Settings the method picked itself at ``start``, for the run's provenance."""


class MethodBase:
    """Convenience base: stores options and device; ``set_video``/``update`` default to no-ops,
    ``remember`` restarts from the corrected frame."""

    name: ClassVar[str] = "base"
    needs_checkpoint: ClassVar[bool] = True
    needs_annotation: ClassVar[bool] = True
    accepts_annotation: ClassVar[bool] = True
    # True: start() may run long (OSVOS-AT's fine-tuning, RGMP's online fine-tuning add-on) and takes the options
    # on_finetune(step, total, loss) and cancel_event (threading.Event), as progress and Cancel hooks
    reports_finetune: ClassVar[bool] = False
    # False: no network passes (flow), so the precision setting has nothing to act on and fp32 is recorded
    runs_network: ClassVar[bool] = True

    @classmethod
    def annotation_needed(cls, options: Mapping[str, Any]) -> bool:
        """Whether a method built with these options needs an annotated frame (default: the class flag)."""
        return cls.needs_annotation
    # the intermediate maps step() returns, by name (tests/test_map_names.py holds each method to it)
    map_names: ClassVar[tuple[str, ...]] = ()
    # each map's grid over the working frame: a padded network stride (FRTM's scores: 16), or None for
    # a grid fitted to the frame (data/map_geometry.py places the maps with it)
    map_grids: ClassVar[dict[str, int | None]] = {}
    # maps of the whole frame, not one channel per object (flow's magnitude, COSNet's gate): a re-run with
    # other objects keeps them as they are
    global_maps: ClassVar[tuple[str, ...]] = ()
    # shorter side (pixels) the engine enlarges smaller videos to by default (Session(min_side="auto"))
    min_working_side: ClassVar[int | None] = None
    # median annotated-object diameter (pixels) the engine enlarges small objects to by default
    # (Session(min_object_side="auto"); data/frames.py: object_scale)
    min_object_side: ClassVar[int | None] = None

    def __init__(self, device: torch.device | str = "cpu", seed: int = 0, **options: Any) -> None:
        self.device = torch.device(device)
        self.seed = seed  # the Session passes one to every method (`Session(seed=)`), random or not
        self.options = options
        self.run_memo: dict[Any, Any] | None = None  # VideoFrames.memo of the propagation this method serves

    def set_video(self, video: VideoFrames) -> None:
        """Keep the propagation's memo (what one pass of a run leaves for its other pass)."""
        self.run_memo = video.memo

    def update(self, probs: torch.Tensor) -> None:  # noqa: D401 - protocol default
        return None

    def remember(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        """Default: restart from the corrected frame, as if it were the annotated one."""
        self.start(image, objects)

    def chosen_options(self) -> dict[str, Any]:
        """Settings the method picked itself at ``start`` (e.g. RGMP's scales for small objects), for the
        run's provenance; none by default."""
        return {}
