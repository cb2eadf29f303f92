"""Training clips: (frames, one object's masks) from real sequences and synthetic generators.

A clip source yields short lists of frames + binary masks of one object, cropped and resized to
the training size with shared random flip/scale/crop (the same transform for all frames of a
clip, so motion between frames is the video's own). Real sequences are cached in memory at
training size on first use (the 22 DAVIS 2016 train sequences outside the hold-out split: 0.9 GB held at
300x540 for 432x240 crops, labels in uint8).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable

import numpy as np
from skimage.transform import resize

from napari_vos.data.label_types import label_dtype_for
from napari_vos.training.photometric import photometric_change

HOLDOUT_DAVIS = ("bear", "bmx-bumps", "car-turn", "dance-jump", "hike", "paragliding", "rhino", "soccerball")


@dataclass
class Clip:
    """Frames of one sequence and one object's masks, for the training recipes."""

    frames: np.ndarray  # (T, H, W, 3) float32 in [0, 1]
    masks: np.ndarray  # (T, H, W) float32 {0, 1}


def held_out(name: str, excluded: Iterable[str]) -> bool:
    """Whether sequence ``name`` is one of ``excluded``, also as the last part of a collection's
    name ("davis2016-train/bear" when --data names the folder holding davis2016-train)."""
    excluded = set(excluded)
    return name in excluded or name.rsplit("/", 1)[-1] in excluded


class SequenceBank:
    """Real sequences held at a fixed working size: frames uint8 (T, h, w, 3), labels (T, h, w) in the
    smallest type that holds their ids (`label_dtype_for`)."""

    def __init__(self, folders: Iterable[str | Path], size: tuple[int, int], exclude: Iterable[str] = HOLDOUT_DAVIS,
                 max_sequences: int | None = None) -> None:
        from napari_vos.data.frames import FrameSource
        from napari_vos.data.readers import open_dataset

        self.videos: list[tuple[np.ndarray, np.ndarray]] = []
        self.names: list[str] = []
        excluded = set(exclude)
        for folder in distinct_folders(folders):
            for seq in open_dataset(folder):
                if held_out(seq.name, excluded):
                    seq.close()
                    continue
                frames, labels = [], []
                with seq:  # read once into the bank: a TIFF stack's files close afterwards
                    source = FrameSource(seq.frames)  # the engine's normalisation: training sees what inference sees
                    # the annotated frames, as consecutive ones (sparse annotation, every 5th frame, is
                    # trained as the video it samples, as VOS training sets are)
                    for i in seq.annotated:
                        img = resize(source[i], size, order=1, anti_aliasing=True)
                        frames.append(np.round(img * 255).astype(np.uint8))
                        labels.append(resize(seq.masks[i], size, order=0, preserve_range=True,
                                             anti_aliasing=False).astype(np.int32))
                if frames:  # too few for the recipe's clips: `keep_usable` leaves it out, naming it
                    ids = np.stack(labels)
                    # the smallest type for the ids (uint8 for DAVIS): int32 labels were over half the bank's memory
                    self.videos.append((np.stack(frames), ids.astype(label_dtype_for(int(ids.max())))))
                    self.names.append(seq.name)
                if max_sequences and len(self.videos) >= max_sequences:
                    return

    def __len__(self) -> int:
        return len(self.videos)

    def keep_usable(self, frames_needed: int, min_area: float, share: Callable[[np.ndarray], float],
                    starts: Callable[[int], range], recipe: str) -> None:
        """Drop the videos that can never give a clip: fewer annotated frames than a clip needs, or
        no target reaching ``min_area`` (``share(labels)``) on a frame a clip can start from
        (``starts(n_frames)``); warn which. Drawn and skipped for ever, they made a run train on
        synthetic videos alone (or wait for ever without them) while its record named --data."""
        import warnings

        kept, dropped = [], []
        for name, (frames, labels) in zip(self.names, self.videos):
            big = any(share(labels[t]) >= min_area for t in starts(len(labels)))
            (kept if len(frames) >= frames_needed and big else dropped).append((name, (frames, labels)))
        if dropped:
            warnings.warn(f"{len(dropped)} of {len(self.videos)} --data sequences cannot give {recipe}'s training "
                          f"clips ({_frames(frames_needed)}, a target over {min_area:.1%} of a frame a "
                          f"clip can start from) and are left out: {', '.join(n for n, _ in dropped[:8])}"
                          + (" ..." if len(dropped) > 8 else ""), stacklevel=3)
        self.names = [n for n, _ in kept]
        self.videos = [v for _, v in kept]


def _frames(n: int) -> str:
    """``"1 annotated frame"``, ``"8 annotated frames"``."""
    return f"{n} annotated frame{'' if n == 1 else 's'}"


def distinct_folders(folders: Iterable[str | Path]) -> list[str | Path]:
    """``folders`` with each folder once (the same one named twice, or by another path to it, would
    count its sequences twice, as would a dataset inside a named folder of datasets, which reads it
    too); a warning names those left out."""
    import warnings

    folders = list(folders)
    keys = [Path(folder).expanduser().resolve() for folder in folders]
    seen: dict[Path, str | Path] = {}
    repeated = []
    for folder, key in zip(folders, keys):
        outer = next((f for f, k in zip(folders, keys) if _reads_inside(k, key)), None)
        if key in seen:
            repeated.append(f"{folder} (the same folder as {seen[key]})")
        elif outer is not None:
            repeated.append(f"{folder} (read already as part of {outer})")
        else:
            seen[key] = folder
    if repeated:
        warnings.warn(f"--data names a folder more than once; its sequences are loaded once: {', '.join(repeated)}",
                      stacklevel=3)
    return list(seen.values())


def _reads_inside(outer: Path, inner: Path) -> bool:
    """Whether `open_dataset(outer)` reads the dataset ``inner`` below it: ``outer`` and every folder
    between them are folders of datasets, each of which reads every dataset below it."""
    from napari_vos.data.readers import detect_layout

    if outer not in inner.parents:
        return False
    for folder in [inner.parent, *inner.parent.parents]:
        try:
            if detect_layout(folder) != "collection":
                return False
        except (ValueError, OSError):
            return False
        if folder == outer:
            return True
    return False


def union_share(labels: np.ndarray) -> float:
    """The share of the frame all its objects cover together."""
    return float((labels > 0).mean())


def _largest_share(labels: np.ndarray) -> float:
    """The share of the frame its largest object covers (0 without one)."""
    _, counts = np.unique(labels[labels > 0], return_counts=True)  # not bincount: ids may be large
    return float(counts.max()) / labels.size if len(counts) else 0.0


def sample_clip_from(frames: np.ndarray, labels: np.ndarray, n: int, max_gap: int, rng: np.random.Generator,
                     out_size: tuple[int, int], min_area: float = 0.002,
                     zoom: tuple[float, float] = (1.0, 1.5)) -> Clip | None:
    """Pick a reference frame and n-1 other frames within ``max_gap`` of it, one object, a shared random crop/flip.

    The other frames (FRTM's validation frames) are never the reference and differ from each other
    where the window has room; a window with fewer frames than asked repeats some.
    """
    t = len(frames)
    ref = int(rng.integers(t))
    ids = [i for i in np.unique(labels[ref]) if i != 0]
    if not ids:
        return None
    obj = int(rng.choice(ids))
    lo, hi = max(0, ref - max_gap), min(t, ref + max_gap + 1)
    window = [i for i in range(lo, hi) if i != ref]
    if not window:  # a one-frame video: nothing but the reference to validate on
        window = [ref]
    others = [int(i) for i in rng.choice(window, size=n - 1, replace=len(window) < n - 1)]
    idx = [ref] + others
    f = frames[idx].astype(np.float32) / 255.0
    m = (labels[idx] == obj).astype(np.float32)
    if m[0].mean() < min_area:
        return None
    f, m = crop_flip_resize(f, m, rng, out_size, min_crop=8, zoom=zoom)
    if m[0].mean() < min_area:
        return None
    return Clip(f, m.astype(np.float32))


def crop_flip_resize(frames: np.ndarray, masks: np.ndarray, rng: np.random.Generator, out_size: tuple[int, int],
                     min_crop: int, zoom: tuple[float, float] = (1.0, 1.5)) -> tuple[np.ndarray, np.ndarray]:
    """One random zoom (default 1x-1.5x) crop near the first mask's object and one random flip for all frames, then resize.

    frames (T, H, W, 3) float in [0, 1], masks (T, H, W) {0, 1} with the object on the first ->
    frames (T, h, w, 3) float32 and masks (T, h, w) bool at ``out_size``; crops are at least
    ``min_crop`` pixels a side.
    """
    h, w = frames.shape[1:3]
    scale = rng.uniform(*zoom)
    ch, cw = max(min_crop, int(h / scale)), max(min_crop, int(w / scale))
    ys, xs = np.nonzero(masks[0])
    cy, cx = ys.mean(), xs.mean()
    y0 = int(np.clip(cy - ch / 2 + rng.uniform(-0.25, 0.25) * ch, 0, h - ch))
    x0 = int(np.clip(cx - cw / 2 + rng.uniform(-0.25, 0.25) * cw, 0, w - cw))
    f = frames[:, y0:y0 + ch, x0:x0 + cw]
    m = masks[:, y0:y0 + ch, x0:x0 + cw]
    if rng.random() < 0.5:
        f, m = f[:, :, ::-1], m[:, :, ::-1]
    return resize_bilinear(f, out_size), resize_bilinear(m, out_size) > 0.5


def resize_bilinear(stack: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """(T, H, W[, C]) -> (T, h, w[, C]) float32, bilinear with pixel centres aligned (skimage's order=1).

    torch's interpolate rather than skimage.transform.resize: the same result (to float rounding)
    about ten times faster, and batch drawing is what keeps a GPU waiting.
    """
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))
    x = x.permute(0, 3, 1, 2) if x.ndim == 4 else x[:, None]
    y = F.interpolate(x, size=tuple(out_size), mode="bilinear", align_corners=False)
    y = y.permute(0, 2, 3, 1) if stack.ndim == 4 else y[:, 0]
    return y.contiguous().numpy()


#: the samplers' smallest object, as a share of the frame: a video whose objects never reach it gives no clip
_MIN_OBJECT_AREA = 0.002


class VideoMix:
    """A recipe's training videos: real sequences mixed with the project's synthetic videos.

    For a recipe dataclass with ``size``, ``real_dirs``, ``synthetic_fraction`` and
    ``synthetic_source`` (read when first needed, so options set after construction count).
    Real sequences are held at ``_real_size()`` (default 1.25 x ``size``, room for crops);
    synthetic videos of ``_synthetic_frames()`` frames at ``_synthetic_size()`` are kept in a
    rolling pool of 24 (once full, each draw first replaces a random one with probability 1/4), as
    generating a video costs more than drawing a clip from one. ``synthetic_cells`` (default 0) is
    the share of the synthetic videos that are microscopy time-lapses (`SyntheticCellSource`),
    drawn from a pool of their own; the rest are natural-like. ``photometric`` (default 0) is the
    chance that a drawn video goes through a per-video intensity change (`photometric_change`).
    """

    size: tuple[int, int]
    real_dirs: list[str]
    synthetic_fraction: float
    synthetic_source: str | None
    batch_size: int
    _synthetic_cells: float = 0.0
    _photometric: float = 0.0
    #: the field `napari-vos train --clip-frames` sets, for a recipe trained on clips of a fixed
    #: length (None: the option does not apply)
    clip_frames_field: ClassVar[str | None] = None

    @classmethod
    def from_options(cls, train_backbone_from: str | None = None, **kwargs: Any) -> Any:
        """The recipe from `napari-vos train`'s options (`recipes.make_recipe`): the fields every
        recipe takes (``real_dirs``, ``synthetic_fraction``, ``backbone_weights``,
        ``init_checkpoint``, and ``size``, ``batch_size``, ``config`` when given);
        ``train_backbone_from`` "none" keeps the whole backbone fixed."""
        if train_backbone_from is not None:
            kwargs["train_backbone_from"] = None if train_backbone_from == "none" else train_backbone_from
        return cls(**kwargs)

    @property
    def synthetic_cells(self) -> float:
        return self._synthetic_cells

    @synthetic_cells.setter
    def synthetic_cells(self, share: float) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"synthetic_cells is a share of the synthetic videos in [0, 1], got {share}")
        self._synthetic_cells = float(share)

    @property
    def photometric(self) -> float:
        return self._photometric

    @photometric.setter
    def photometric(self, chance: float) -> None:
        if not 0.0 <= chance <= 1.0:
            raise ValueError(f"photometric is the chance that a training video's intensities are changed, in [0, 1], "
                             f"got {chance}")
        self._photometric = float(chance)

    def _init_videos(self) -> None:
        self._bank: SequenceBank | None = None
        self._pools: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"natural": [], "cells": []}
        self._draws: dict[str, Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]] = {}

    def __getstate__(self) -> dict[str, Any]:
        """The recipe without its loaded videos, for ``spawn`` worker processes (macOS, Windows).

        Such a worker loads its own real sequences and fills its own synthetic pool, as it would
        have to anyway: a pickled bank would be copied through a pipe into every worker, one
        after another. ``fork`` workers (Linux) are not pickled and share the parent's pages.
        """
        state = dict(self.__dict__)
        if "_bank" in state:
            state["_bank"] = None
            state["_pools"] = {kind: [] for kind in state["_pools"]}
        return state

    def _real_size(self) -> tuple[int, int]:
        return (int(self.size[0] * 1.25), int(self.size[1] * 1.25))

    def _synthetic_size(self) -> tuple[int, int]:
        return self.size

    def _synthetic_frames(self) -> int:
        return 12

    def _clip_frames(self) -> int:
        """Annotated frames a video needs to give one of this recipe's clips (the recipes with longer
        or shorter clips say so)."""
        return 3

    #: a resumed run's saved answer to `starts_from_weights` (None: not resumed, or saved by an older version)
    _resumed_from_weights: bool | None = None

    def starts_from_weights(self) -> bool:
        """Whether the network starts from trained weights (--init, --backbone-weights): then batch norm
        keeps their statistics (S2S, RVOS) and "auto" trains only the deep backbone stage (A-GAME,
        COSNet). A resumed run keeps the saved run's answer, whether or not --init is given again."""
        if self._resumed_from_weights is not None:
            return self._resumed_from_weights
        return bool(getattr(self, "init_checkpoint", None) or getattr(self, "backbone_weights", None))

    def resume_regime(self, regime: dict[str, Any]) -> None:
        """Take a resumed run's saved regime (`loop._regime`) before `build`, so the network trains as it did."""
        if regime.get("from_weights") is not None:
            self._resumed_from_weights = bool(regime["from_weights"])

    def _object_share(self, labels: np.ndarray) -> float:
        """The share of a frame the recipe's target covers there: its largest object (recipes that
        train on the union of the objects, COSNet and OSVOS-AT's parent, say so)."""
        return _largest_share(labels)

    def _min_object_area(self) -> float:
        """The smallest target, as a share of the frame, the recipe's sampler takes."""
        return _MIN_OBJECT_AREA

    def _start_frames(self, n_frames: int) -> range:
        """The frames of an ``n_frames`` video the target must show on one of for a clip: any (a
        reference frame anywhere, clips played backward too); the forward-only recipes say less."""
        return range(n_frames)

    def _real(self) -> SequenceBank | None:
        if self._bank is None and self.real_dirs:
            self._bank = SequenceBank(self.real_dirs, self._real_size())
            self._bank.keep_usable(self._clip_frames(), self._min_object_area(), self._object_share,
                                   self._start_frames, getattr(self, "name", "this recipe"))
            if not len(self._bank):  # training on synthetic videos alone would go unnoticed
                raise ValueError(f"--data {', '.join(map(str, self.real_dirs))}: no usable training sequence (the "
                                 f"project's hold-out sequences {', '.join(HOLDOUT_DAVIS)} are left out, and a "
                                 f"sequence needs {_frames(self._clip_frames())} and an object "
                                 f"over {self._min_object_area():.1%} of a frame a clip can start from for "
                                 f"{getattr(self, 'name', 'its')} clips)")
        return self._bank if self._bank and len(self._bank) else None

    def _synthetic(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        kind = "cells" if self.synthetic_cells > 0 and rng.random() < self.synthetic_cells else "natural"
        if kind not in self._draws:
            size = tuple(self._synthetic_size())
            self._draws[kind] = (SyntheticCellSource(size, n_frames=self._synthetic_frames()) if kind == "cells" else
                                 SyntheticNaturalSource(size, source_dir=self.synthetic_source,
                                                        n_frames=self._synthetic_frames()))
        pool, draw = self._pools[kind], self._draws[kind]
        if len(pool) < 24:
            pool.append(draw(rng))
        elif rng.random() < 0.25:
            pool[int(rng.integers(len(pool)))] = draw(rng)
        return pool[int(rng.integers(len(pool)))]

    def _video(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One video (frames uint8, labels): synthetic with probability ``synthetic_fraction``, or without real ones."""
        bank = self._real()
        if bank is None or rng.random() < self.synthetic_fraction:
            frames, labels = self._synthetic(rng)
        else:
            frames, labels = bank.videos[int(rng.integers(len(bank)))]
        return self._changed(frames, rng), labels

    def _changed(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``frames``, or with chance ``photometric`` the same frames seen through `photometric_change`'s
        tables (applied to the frames a clip takes). Nothing is drawn from ``rng`` when the chance is 0,
        so runs without the change keep their data stream."""
        if self.photometric > 0 and rng.random() < self.photometric:
            return photometric_change(frames, rng)
        return frames

    def _clips(self, rng: np.random.Generator, sample: Callable[[np.ndarray, np.ndarray], Clip | None]) -> list[Clip]:
        """``batch_size`` clips ``sample(frames, labels)``, each from a new video; videos giving None are
        skipped (the bank holds only videos that can give one: `_real`); a batch not filled in 100
        draws per clip is an error."""
        clips: list[Clip] = []
        for _ in range(100 * self.batch_size):
            if len(clips) == self.batch_size:
                return clips
            clip = sample(*self._video(rng))
            if clip is not None:
                clips.append(clip)
        if len(clips) == self.batch_size:
            return clips
        raise RuntimeError(f"could not draw {self.batch_size} training clips in {100 * self.batch_size} tries: are "
                           "the videos too short or their objects too small for the clips?")


@dataclass(frozen=True)
class SyntheticNaturalSource:
    """Draws whole synthetic natural-like videos (frames uint8, labels) from the project's generator.

    A module-level class rather than a closure so that a recipe holding one can be pickled into
    ``spawn`` worker processes (macOS and Windows start DataLoader workers that way).
    """

    size: tuple[int, int]
    source_dir: str | Path | None = None
    n_frames: int = 12

    def __call__(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        from napari_vos.data.synthetic import natural_video

        video = natural_video(n_frames=self.n_frames, size=self.size, n_objects=int(rng.integers(1, 4)),
                              seed=int(rng.integers(2**31)), source_dir=self.source_dir)
        return np.asarray(video.frames), np.asarray(video.labels)


@dataclass(frozen=True)
class SyntheticCellSource:
    """Draws whole synthetic microscopy time-lapses (frames uint8 RGB, labels) from the project's cell generator.

    Each video draws its own look and scale: phase contrast or fluorescence, 8 or 16 bits, cell
    radius 5-25 pixels, 8-30 % of the field covered, slow to fast motion. The frames pass through
    the engine's normalisation (`FrameSource`: percentiles for 16 bits, grey to three channels),
    so training sees a time-lapse as propagation does. A module-level class rather than a closure,
    so that it pickles into ``spawn`` worker processes.
    """

    size: tuple[int, int]
    n_frames: int = 12

    def __call__(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        from napari_vos.data.frames import FrameSource
        from napari_vos.data.synthetic import cell_video

        h, w = self.size
        r_min = float(rng.uniform(5.0, 14.0))
        radius = (r_min, r_min * float(rng.uniform(1.2, 1.8)))
        cell_area = np.pi * (0.5 * sum(radius)) ** 2 * 1.25  # mean aspect ratio 1.25
        n_cells = max(3, int(rng.uniform(0.08, 0.3) * h * w / cell_area))
        video = cell_video(n_frames=self.n_frames, size=self.size, n_cells=n_cells, seed=int(rng.integers(2**31)),
                           modality=str(rng.choice(["phase", "fluorescence"])), bit_depth=int(rng.choice([8, 16])),
                           radius=radius, speed=float(rng.uniform(0.5, 3.0)))
        source = FrameSource(np.asarray(video.frames))
        frames = np.stack([np.round(source[i] * 255).astype(np.uint8) for i in range(len(source))])
        return frames, np.asarray(video.labels)
