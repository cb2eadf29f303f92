"""Divided cells given their own ids: a propagated labels stack relabelled with a lineage, as the Cell
Tracking Challenge keeps one.

Every method follows the painted objects only, so a cell that divides keeps its id over both
daughters (its mask falls into two parts). This pass finds such ids, frame by frame: where an id's
mask stays in two or more sizeable 8-connected parts for ``persist`` frames running, the parent id
ends on the frame before and each part gets a new id from that frame on, followed through the
later frames by overlap with the frame before (a part touching none goes to the nearest daughter).
Daughters divide again the same way. (T, Z, Y, X) labels are split the same way in 3D: a frame is a
volume, parts are 26-connected and lobes those of the 3D distance transform. It is a heuristic over
the labels, not part of any method's paper: an object cut in two by an occluder for ``persist``
frames is split as well, so it is a step to take on cells, where splitting is what a mask in two
parts means. scipy's ``ndimage``
gives the parts; no package does this bookkeeping, hence this module.

Daughters often touch for some frames after they divide, so their mask stays one 8-connected blob
with a neck. With ``necks`` (the default since session 41) a blob is cut at a neck too: where the
Euclidean distance transform of the mask has two or more domes, each peak at least ``neck_ratio``
of the highest and the saddle between them at most ``neck_ratio`` of the lower peak (the inscribed
radius at the neck against the lobe's), a watershed of the distance transform from those domes
(scikit-image) gives the lobes, kept as parts where two or more of them are sizeable. The same
``persist`` rule then applies, so a cell pinched on one frame only is not a division.

Since session 43 (measured on synthetic dividing cells with perfect and with flow-propagated labels,
docs/benchmarks.md), three more rules, each with a keyword that turns it off:

- ``follow``: an id's pixels are given to its daughters (and theirs) by where each was on the frame
  before: a part goes to the daughter it overlaps most, but a part that two or more of them each
  overlap with a sizeable share (sisters or cousins touching with no neck, or a lobe drawn over two
  cells) is cut between them by a watershed of its distance transform from their pixels of the frame
  before, less a one-pixel rim (the line between them is drawn again each frame). Before, such a
  part went whole to one of them, and the other "divided" from it again when they parted;
- ``back``: a division is dated back, up to ``back`` frames, to the frame where the daughters first
  show: while the frame before has a neck as shallow as ``loose_ratio`` (a lower bar than
  ``neck_ratio`` once the division is confirmed), or its mask is more like the daughters' next frame
  than the parent's frame before it (the mask changed shape most there), and the daughters' pixels of
  the next frame cut it into two sizeable shares. Before, the division was dated to the first frame
  with a deep neck, mostly a frame late;
- ``max_hidden``: no division where more than this share of the notches that make the neck (the
  mask's convex hull less the mask) is other objects: a cell wrapped around a neighbour or partly
  under it has two lobes, and they are no daughters.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Division", "DivisionResult", "split_divisions", "parents_from_record", "parents_from_lineage",
           "parents_from_metadata", "record_divisions"]


def _touching(ndim: int) -> np.ndarray:
    """The structure of pixels that touch: 8-connected in a (Y, X) frame, 26-connected in a (Z, Y, X) volume."""
    return np.ones((3,) * ndim, bool)


def _inner(ndim: int) -> tuple[slice, ...]:
    """The slice that takes a one-pixel pad off an array of ``ndim`` axes."""
    return (slice(1, -1),) * ndim


def _box(mask: np.ndarray) -> tuple[slice, ...]:
    """The bounding box of a mask that holds something, as slices."""
    return tuple(slice(int(c.min()), int(c.max()) + 1) for c in np.nonzero(mask))


def _offset(window: tuple[slice, ...]) -> np.ndarray:
    """Where ``window`` starts in its frame."""
    return np.array([w.start or 0 for w in window])


@dataclass(frozen=True)
class Division:
    """One division: ``parent`` is last seen on ``frame - 1``; ``daughters`` start on ``frame``."""

    parent: int
    frame: int
    daughters: tuple[int, ...]


@dataclass
class DivisionResult:
    """The relabelled stack, the divisions found, and the lineage: id -> (parent or 0, first, last frame)."""

    labels: np.ndarray
    divisions: list[Division] = field(default_factory=list)
    lineage: dict[int, tuple[int, int, int]] = field(default_factory=dict)

    def graph(self) -> dict[int, list[int]]:
        """Each daughter's parent, as napari's Tracks layer takes a lineage (``graph=``)."""
        return {daughter: [d.parent] for d in self.divisions for daughter in d.daughters}

    def inherit(self, earlier: dict[int, int]) -> None:
        """Keep an earlier pass's parents (daughter id -> parent id) for ids this pass found none for:
        a stack split twice (a corrected output split again) keeps its first lineage."""
        for i, (parent, first, last) in list(self.lineage.items()):
            if not parent and earlier.get(i):
                self.lineage[i] = (int(earlier[i]), first, last)

    def lineage_table(self) -> Any:
        """The lineage as an `ObjectTable` (label, first_frame, last_frame, parent; CTC's res_track.txt)."""
        from napari_vos.object_table import ObjectTable

        ids = sorted(self.lineage)
        return ObjectTable({"label": np.asarray(ids, np.int64),
                            "first_frame": np.asarray([self.lineage[i][1] for i in ids], np.int64),
                            "last_frame": np.asarray([self.lineage[i][2] for i in ids], np.int64),
                            "parent": np.asarray([self.lineage[i][0] for i in ids], np.int64)})


def parents_from_record(record: dict[str, Any] | None) -> dict[int, int] | None:
    """Each daughter's parent in a `napari-vos divisions` output's run record (its ``divisions_split``:
    [parent, frame, daughters] per division); None for a record of labels no split made."""
    split = (record or {}).get("divisions_split")
    if not isinstance(split, dict):
        return None
    return {int(daughter): int(parent) for parent, _, daughters in split.get("divisions", []) for daughter in daughters}


def parents_from_lineage(lineage: Any) -> dict[int, int] | None:
    """Each daughter's parent in a *Split divided cells* layer's lineage (``metadata["napari_vos_divisions"]
    ["lineage"]``: id -> [parent or 0, first frame, last frame]); None where there is none."""
    if not isinstance(lineage, dict):
        return None
    return {int(i): int(row[0]) for i, row in lineage.items() if int(row[0])}


def record_divisions(lineage: Any) -> list[list[Any]]:
    """A *Split divided cells* layer's lineage (id -> [parent or 0, first frame, last frame]) as a
    `napari-vos divisions` record lists its divisions: [parent, first frame of the daughters, [daughters]],
    by parent, so that a split layer saved as a labels TIFF opens again with its parents."""
    daughters: dict[int, list[tuple[int, int]]] = {}
    for i, row in (lineage or {}).items():
        if int(row[0]):
            daughters.setdefault(int(row[0]), []).append((int(row[1]), int(i)))
    return [[parent, min(first for first, _ in kids), sorted(i for _, i in kids)]
            for parent, kids in sorted(daughters.items())]


def parents_from_metadata(metadata: dict[str, Any] | None) -> dict[int, int] | None:
    """Each daughter's parent of labels whose divided cells were split, from a labels layer's metadata:
    a *Split divided cells* layer's lineage (``metadata["napari_vos_divisions"]``) or, for a `napari-vos
    divisions` TIFF opened in napari, its run record (``metadata["napari_vos"]``); None for other labels."""
    metadata = metadata or {}
    parents = parents_from_lineage((metadata.get("napari_vos_divisions") or {}).get("lineage"))
    record = metadata.get("napari_vos")
    return parents if parents is not None else parents_from_record(record if isinstance(record, dict) else None)


def _parts(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A mask's 8-connected parts (26-connected in a volume; 0 outside, 1.. inside) and each part's pixel
    count (index 0: none)."""
    from scipy import ndimage

    parts, n = ndimage.label(mask, structure=_touching(mask.ndim))
    return parts, np.bincount(parts.ravel(), minlength=n + 1)


def _lobes(mask: np.ndarray, ratio: float, min_peak: float = 2.0, peak_ratio: float | None = None
           ) -> tuple[np.ndarray, int]:
    """A mask's lobes (0 outside, 1.. inside; 0 lobes where it has no neck): a watershed of its Euclidean
    distance transform from its h-domes, the domes of log(distance) deeper than -log(``ratio``), so
    that a saddle at most ``ratio`` of the lower peak's distance parts two lobes whatever the cell's
    size (skimage's reconstruction by dilation gives the domes; their tops are the plateaus of the
    reconstruction, not h_maxima's pixels, which a ragged ridge of the transform leaves apart).
    A lobe's peak is ``min_peak`` pixels from the background or more, and ``ratio`` of the highest
    peak or more (a lobe is a daughter's size, not a bump), which also rules most masks out before the
    reconstruction: the pixels at ``ratio`` of the peak or more must fall into two groups."""
    from scipy import ndimage
    from skimage.morphology import local_maxima, reconstruction
    from skimage.segmentation import watershed

    none = np.zeros(mask.shape, np.int32), 0
    touching, full = _touching(mask.ndim), mask.ndim  # every neighbour, in 2-D as in 3-D
    padded = np.pad(mask, 1)
    distance = ndimage.distance_transform_edt(padded)
    low = max((ratio if peak_ratio is None else peak_ratio) * distance.max(), min_peak)  # a lobe's lowest peak
    if ndimage.label(distance >= low, structure=touching)[1] < 2:
        return none
    height = np.log(np.maximum(distance, 0.5))
    domes = reconstruction(height + np.log(ratio), height, method="dilation")
    tops, n = ndimage.label(local_maxima(domes, connectivity=full) & (distance >= low), structure=touching)
    if n < 2:
        return none
    lobes = watershed(-distance, tops, mask=padded, connectivity=full)
    return lobes[_inner(mask.ndim)].astype(np.int32, copy=False), n


def _neck_parts(mask: np.ndarray, ratio: float, min_fraction: float, min_pixels: int,
                peak_ratio: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`_parts`, with each 8-connected part that has two or more sizeable lobes (`_lobes` on the part's
    bounding box; sizeable as `_sizeable` says, of the whole mask) cut into its lobes."""
    from scipy import ndimage

    parts, sizes = _parts(mask)
    least = max(min_pixels, min_fraction * sizes[1:].sum())
    out, next_part = None, len(sizes)
    for part, box in enumerate(ndimage.find_objects(parts), start=1):
        if box is None or sizes[part] < 2 * least:
            continue  # too small to hold two daughters
        lobes, n = _lobes(parts[box] == part, ratio, peak_ratio=peak_ratio)
        if n < 2 or np.count_nonzero(np.bincount(lobes.ravel(), minlength=n + 1)[1:] >= least) < 2:
            continue
        if out is None:
            out = parts.copy()
        within = out[box]
        for lobe in range(2, n + 1):  # lobe 1 keeps the part's number
            within[lobes == lobe] = next_part
            next_part += 1
    if out is None:
        return parts, sizes
    return out, np.bincount(out.ravel(), minlength=next_part)


def _hidden_share(mask: np.ndarray, frame: np.ndarray) -> float:
    """How much of the notches of ``mask`` (its convex hull less the mask) other objects of ``frame`` fill:
    about 0 for a cell pinched by a furrow in the open, near 1 for one wrapped around a neighbour or
    partly hidden under it, whose lobes are no daughters. 0 for a mask with no notch."""
    from skimage.morphology import convex_hull_image

    if not mask.any():
        return 0.0
    box = _box(mask)
    inside = mask[box]
    notch = convex_hull_image(inside) & ~inside
    count = int(np.count_nonzero(notch))
    return float(np.count_nonzero(notch & (frame[box] != 0))) / count if count else 0.0


def _sizeable(sizes: np.ndarray, min_fraction: float, min_pixels: int) -> np.ndarray:
    """The parts (1..) large enough to be a daughter: ``min_fraction`` of the whole and ``min_pixels``."""
    total = sizes[1:].sum()
    return np.flatnonzero((sizes >= max(min_pixels, min_fraction * total)) & (np.arange(len(sizes)) > 0))


def _centroid(mask: np.ndarray) -> np.ndarray:
    """The mask's (y, x) centre ((z, y, x) in a volume); inf for an empty one (never the nearest)."""
    where = np.nonzero(mask)
    return np.array([c.mean() for c in where]) if len(where[0]) else np.full(mask.ndim, np.inf)


def _assign(parts: np.ndarray, n_parts: int, previous: np.ndarray, candidates: list[int],
            window: tuple[slice, ...] | None = None,
            centre: Callable[[int], np.ndarray] | None = None) -> dict[int, int]:
    """Each part (1..n, in ``window`` of the frame) -> the candidate id it overlaps most in ``previous``
    (the whole frame before, relabelled); a part overlapping none goes to the candidate whose centre
    is nearest (a daughter that moved out of the window, or a newly split part). ``centre``: a
    candidate's last known centre (default: on ``previous``), so that an id back after frames without
    it keeps its daughters apart rather than giving every part to the first one."""
    window = window or tuple(slice(0, n) for n in parts.shape)
    before = previous[window]
    offset = _offset(window)
    assignment: dict[int, int] = {}
    centres: dict[int, np.ndarray] = {}
    for part in range(1, n_parts + 1):
        inside = parts == part
        under = before[inside]
        best_count, best = max((int(np.count_nonzero(under == c)), c) for c in candidates)
        if best_count == 0:
            if not centres:
                centres = {c: centre(c) if centre else _centroid(previous == c) for c in candidates}
            here = _centroid(inside) + offset
            best = min(candidates, key=lambda c: float(np.linalg.norm(centres[c] - here)))
        assignment[part] = int(best)
    return assignment


def _work_dtype(smallest: int, largest: int) -> np.dtype:
    """The relabelled stack's type: uint32 (4 billion ids), uint64 for larger ids (uint64 ids above
    2**63 did not fit int64), int64 where ids are negative."""
    if smallest < 0:
        return np.dtype(np.int64)
    return np.dtype(np.uint32) if largest < 2**31 else np.dtype(np.uint64)


def split_divisions(labels: Any, *, min_fraction: float = 0.2, min_pixels: int = 10, persist: int = 2,
                    necks: bool = True, neck_ratio: float = 0.8, follow: bool = True, back: int = 2,
                    loose_ratio: float = 0.9, max_hidden: float = 0.7,
                    progress: Callable[[int, int], None] | None = None) -> DivisionResult:
    """Give the daughters of each divided object ids of their own (see the module's text).

    labels: (T, Y, X) integer object ids, or (T, Z, Y, X) ones whose (Z, Y, X) volumes are split in 3D (parts
    26-connected, lobes of the 3D distance transform, pixel counts in voxels); read a frame at a time,
    the result held in memory.
    min_fraction, min_pixels: how large a part of an id's mask must be to count as a daughter
    (of the id's pixels on that frame; smaller parts, debris, stay with the nearest daughter).
    persist: for how many frames running the id must be in two or more such parts (1: at once).
    necks: cut a blob at a neck as well (two or more sizeable lobes of its distance transform, each
    peak at least ``neck_ratio`` of the highest, the saddle between them at most ``neck_ratio`` of the
    lower peak), so daughters that still touch count as parts; False: 8-connected parts only (the
    rule before session 41, which found divisions only once the daughters had parted).
    follow: cut a part between the daughters that share it (False: it goes whole to the one it
    overlaps most, the rule before session 43).
    back: date a division back up to this many frames (0: on the first frame in parts, as before
    session 43), through frames with a neck as shallow as ``loose_ratio`` (below 1; ``neck_ratio``
    where that is higher; with ``necks`` only) or where the mask changed shape most.
    max_hidden: the largest share of the neck's notches that other objects may fill (1: any).
    New ids start above the stack's largest. progress(done, total) after each frame.
    """
    shape = tuple(int(n) for n in np.shape(labels))
    if len(shape) not in (3, 4):
        raise ValueError(f"divisions happen over time: give (T, Y, X) or (T, Z, Y, X) labels, not shape {shape}")
    if shape[0] == 0:  # was an IndexError on frame 0
        raise ValueError(f"labels of shape {shape} hold no frame: give the (T, Y, X) labels of a run")
    first = np.asarray(labels[0])
    if first.dtype.kind not in "iub":
        raise ValueError(f"labels of type {first.dtype}: object ids are integers")
    if not 0 < min_fraction <= 0.5:
        raise ValueError(f"min_fraction {min_fraction}: a daughter is a fraction of its parent, above 0 and at "
                         "most 0.5 (two halves)")
    if persist < 1 or min_pixels < 1:
        raise ValueError(f"persist {persist} and min_pixels {min_pixels}: give 1 or more")
    if not 0 < neck_ratio < 1:
        raise ValueError(f"neck_ratio {neck_ratio}: a neck is narrower than the lobes it joins, give a ratio "
                         "above 0 and below 1")
    if back < 0 or not 0 < loose_ratio < 1:
        raise ValueError(f"back {back}, loose_ratio {loose_ratio}: give 0 frames or more, and a ratio above 0 and "
                         "below 1")
    if not 0 < max_hidden <= 1:
        raise ValueError(f"max_hidden {max_hidden}: give a share above 0 and at most 1")
    frames = shape[0]
    smallest, largest = _id_range(labels, frames)
    dtype = _work_dtype(smallest, largest)
    _check_fits(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize, shape)
    out = np.zeros(shape, dtype)
    state = _Splitter(out, largest + 1, min_fraction, min_pixels, persist, neck_ratio if necks else None,
                      follow=follow, back=back, loose_ratio=max(loose_ratio, neck_ratio) if necks else None,
                      max_hidden=max_hidden)
    for t in range(frames):
        state.frame(t, np.asarray(labels[t]))
        if progress is not None:
            progress(t + 1, frames)
    return DivisionResult(out, state.divisions, _lineage(out, state.divisions))


def _check_fits(needed: int, shape: tuple[int, ...]) -> None:
    """Refuse, before any frame is split, a relabelled stack (held whole) that would not fit in the memory
    free now: a (T, Z, Y, X) one is soon tens of GiB, and the out-of-memory killer would end the process
    (napari with it) part-way with nothing said."""
    import psutil

    free = int(psutil.virtual_memory().available)
    if needed > 0.8 * free:
        raise ValueError(f"splitting divided cells holds the relabelled labels {shape} in memory, {needed / 2**30:.2f} "
                         f"GiB, more than this machine has free ({free / 2**30:.2f} GiB): split a crop of the region "
                         "of interest or fewer frames")


def _id_range(labels: Any, frames: int) -> tuple[int, int]:
    """The smallest and largest id of the stack (0 counted), in one read of each frame."""
    smallest = largest = 0
    for t in range(frames):
        frame = np.asarray(labels[t])
        if frame.size:
            smallest, largest = min(smallest, int(frame.min())), max(largest, int(frame.max()))
    return smallest, largest


class _Splitter:
    """The pass's state: which current ids each input id stands for, and runs of frames in parts."""

    def __init__(self, out: np.ndarray, next_id: int, min_fraction: float, min_pixels: int, persist: int,
                 neck_ratio: float | None = None, *, follow: bool = False, back: int = 0,
                 loose_ratio: float | None = None, max_hidden: float = 1.0) -> None:
        self.out, self.next_id, self.neck_ratio, self.follow = out, next_id, neck_ratio, follow
        self.back, self.loose_ratio = back, loose_ratio  # dating back; a shallower neck dates a division back
        self.max_hidden = max_hidden
        self.min_fraction, self.min_pixels, self.persist = min_fraction, min_pixels, persist
        self.leaves: dict[int, list[int]] = {}  # input id -> the ids its pixels are given now
        self.runs: dict[int, tuple[int, int]] = {}  # current id -> (first frame, frames) of its run in parts
        self.seen: dict[int, tuple[int, int]] = {}  # current id -> the first and last frame it has pixels on
        self.divisions: list[Division] = []

    def frame(self, t: int, frame: np.ndarray) -> None:
        """Relabel frame ``t``, then split the ids whose run in parts is long enough."""
        from scipy import ndimage

        from napari_vos.object_table import compact_ids

        out = self.out[t]
        compact, originals = compact_ids(frame)
        on_frame: set[int] = set()
        for k, window in enumerate(ndimage.find_objects(compact)):
            if window is None:
                continue
            i = int(originals[k]) if originals is not None else k + 1
            leaves = self.leaves.setdefault(i, [i])
            mask = compact[window] == k + 1
            here = out[window]
            if len(leaves) == 1:
                here[mask] = leaves[0]
            elif self.follow:
                self._follow(t, mask, window, leaves)
            else:
                parts, sizes = self._parts(mask)
                assignment = _assign(parts, len(sizes) - 1, self.out[t - 1], leaves, window, self._last_centre)
                for part, leaf in self._sisters_apart(assignment, parts, sizes, window, leaves).items():
                    here[parts == part] = leaf
            for leaf in leaves:
                _, sizes = self._parts(here == leaf)
                if not sizes[1:].any():
                    continue  # not on this frame (which breaks its run, below)
                on_frame.add(leaf)
                self._seen_on(leaf, t)
                if len(_sizeable(sizes, self.min_fraction, self.min_pixels)) >= 2:
                    start, count = self.runs.get(leaf, (t, 0))
                    self.runs[leaf] = (start, count + 1)
                else:
                    self.runs.pop(leaf, None)
        for leaf, (start, count) in list(self.runs.items()):
            if leaf not in on_frame:  # a frame without it breaks the run
                del self.runs[leaf]
            elif count >= self.persist:
                if self.max_hidden < 1 and _hidden_share(self.out[start] == leaf, self.out[start]) > self.max_hidden:
                    del self.runs[leaf]  # pinched by its neighbours, not by a furrow: no division
                    continue
                self._split(leaf, start, t)

    def _follow(self, t: int, mask: np.ndarray, window: tuple[slice, ...], leaves: list[int],
                reference: int | None = None) -> None:
        """Give the pixels of ``mask`` (an input id's, in ``window`` of frame ``t``) to its ``leaves``: each
        part (`_parts`) goes to the leaf it overlaps most on the frame before, as `_assign` says, but a
        part that two or more leaves each overlap with a sizeable share of their pixels there (sisters or
        cousins touching with no neck between them, or a lobe the neck rule drew over two cells) is cut
        between them: a watershed of its distance transform from those leaves' pixels of the frame before.
        A leaf given nothing then takes back a sizeable part as `_sisters_apart` says."""
        from scipy import ndimage
        from skimage.segmentation import watershed

        reference = t - 1 if reference is None else reference
        parts, sizes = self._parts(mask)
        n = len(sizes) - 1
        before = self.out[reference][window]
        index = np.zeros(mask.shape, np.int64)
        for k, leaf in enumerate(leaves, start=1):
            index[before == leaf] = k
        width = len(leaves) + 1
        overlap = np.bincount((parts.astype(np.int64) * width + index)[mask], minlength=(n + 1) * width
                              ).reshape(n + 1, width)
        had = np.bincount(index.ravel(), minlength=width)  # each leaf's pixels in the window on the frame before
        least = np.maximum(self.min_pixels, self.min_fraction * had)
        assignment = _assign(parts, n, self.out[reference], leaves, window, self._last_centre)
        for part in range(1, n + 1):
            shared = [k for k in range(1, width) if overlap[part, k] >= least[k]]
            if len(shared) < 2:
                continue
            inside = parts == part
            seeds = np.zeros(mask.shape, np.int64)
            for k in shared:  # a leaf's pixels less its rim: the line between them is drawn again each frame
                had_here = inside & (index == k)
                core = ndimage.binary_erosion(had_here, _touching(mask.ndim))
                seeds[core if core.any() else had_here] = k
            distance = ndimage.distance_transform_edt(np.pad(inside, 1))[_inner(mask.ndim)]
            cut = watershed(-distance, seeds, mask=inside, connectivity=mask.ndim)
            for j, k in enumerate(shared):
                piece = cut == k
                if j == 0:
                    assignment[part] = leaves[k - 1]
                    continue
                n += 1
                parts[piece] = n
                assignment[n] = leaves[k - 1]
        sizes = np.bincount(parts.ravel(), minlength=n + 1)
        here = self.out[t][window]
        for part, leaf in self._sisters_apart(assignment, parts, sizes, window, leaves).items():
            here[parts == part] = leaf

    def _loose_parts(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The mask's parts with necks as shallow as ``loose_ratio`` (lobes' peaks as `_parts` wants them)."""
        return _neck_parts(mask, self.loose_ratio, self.min_fraction, self.min_pixels, peak_ratio=self.neck_ratio)

    def _loose(self, mask: np.ndarray) -> bool:
        """Whether the mask is in two or more sizeable parts with the loose neck rule."""
        if self.loose_ratio is None or self.neck_ratio is None:
            return False
        return len(_sizeable(self._loose_parts(mask)[1], self.min_fraction, self.min_pixels)) >= 2

    def _parts(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The mask's parts: 8-connected, and cut at necks where asked."""
        if self.neck_ratio is None:
            return _parts(mask)
        return _neck_parts(mask, self.neck_ratio, self.min_fraction, self.min_pixels)

    def _seen_on(self, leaf: int, t: int) -> None:
        """``leaf`` has pixels on frame ``t`` (the frames come in order)."""
        self.seen[leaf] = (self.seen.get(leaf, (t, t))[0], t)

    def _last_centre(self, leaf: int) -> np.ndarray:
        """Where ``leaf`` was last seen: its centre on the last frame it has pixels on."""
        if leaf not in self.seen:
            return np.full(self.out.ndim - 1, np.inf)
        return _centroid(self.out[self.seen[leaf][1]] == leaf)

    def _sisters_apart(self, assignment: dict[int, int], parts: np.ndarray, sizes: np.ndarray,
                       window: tuple[slice, ...], leaves: list[int]) -> dict[int, int]:
        """Sisters that touched and part again: each sizeable part goes to the id it overlaps, so once two
        daughters have touched (one blob, given to one of them) both parts overlap that one and the other
        would end while the first "divided" again. A daughter given no part here takes back the sizeable
        part nearest where it was last seen, where that part is nearer it than the id it went to (which
        got another sizeable part too) was last seen."""
        sizeable = set(_sizeable(sizes, self.min_fraction, self.min_pixels).tolist())
        offset = _offset(window)
        for missing in [c for c in leaves if c in self.seen and c not in assignment.values()]:
            last, best = self._last_centre(missing), None
            for part, owner in assignment.items():
                if part not in sizeable or sum(o == owner and p in sizeable for p, o in assignment.items()) < 2:
                    continue
                here = _centroid(parts == part) + offset
                to_missing = float(np.linalg.norm(last - here))
                if to_missing < float(np.linalg.norm(self._last_centre(owner) - here)) and (
                        best is None or to_missing < best[0]):
                    best = (to_missing, part)
            if best is not None:
                assignment[best[1]] = missing
        return assignment

    def _split(self, leaf: int, start: int, end: int) -> None:
        """``leaf`` divided on ``start``: new ids for its sizeable parts there, followed up to ``end``, and
        dated back (`_date_back`). An id in parts from its first frame (painted over two cells) has no
        earlier self to be their parent: its parts get ids of their own with no division recorded (a
        parent with no frame broke the lineage table and napari's Tracks ``graph``)."""
        parts, sizes = self._parts(self.out[start] == leaf)
        kept = _sizeable(sizes, self.min_fraction, self.min_pixels)
        top = int(np.iinfo(self.out.dtype).max)
        if self.next_id + len(kept) - 1 > top:  # was an OverflowError as the first daughter was written
            raise ValueError(f"the labels' ids go up to {self.next_id - 1}, which leaves no room above them for "
                             f"the daughters' new ids ({self.out.dtype} ends at {top}): number the objects "
                             "1, 2, ... first (skimage.segmentation.relabel_sequential)")
        daughters = list(range(self.next_id, self.next_id + len(kept)))
        self.next_id += len(kept)
        frame = self.out[start]
        for part, daughter in zip(kept, daughters):
            frame[parts == part] = daughter
        debris = [p for p in range(1, len(sizes)) if p not in set(kept.tolist())]
        if debris:  # small parts: to the nearest daughter
            nearest = _assign(np.where(np.isin(parts, debris), parts, 0), len(sizes) - 1, frame, daughters)
            for part in debris:
                frame[parts == part] = nearest[part]
        for daughter in daughters:
            self._seen_on(daughter, start)
        for t in range(start + 1, end + 1):
            if self.follow:
                self._follow_frame(t, leaf, daughters, t - 1)
                continue
            parts, sizes = self._parts(self.out[t] == leaf)
            for part, daughter in _assign(parts, len(sizes) - 1, self.out[t - 1], daughters).items():
                self.out[t][parts == part] = daughter
                self._seen_on(daughter, t)
        start = self._date_back(leaf, start, daughters)
        for source, leaves in self.leaves.items():
            if leaf in leaves:
                self.leaves[source] = [v for v in leaves if v != leaf] + daughters
        self.runs.pop(leaf, None)
        if self.seen[leaf][0] < start:
            self.divisions.append(Division(int(leaf), int(start), tuple(daughters)))

    def _follow_frame(self, t: int, leaf: int, leaves: list[int], reference: int) -> dict[int, int]:
        """`_follow` of ``leaf``'s pixels on frame ``t`` to ``leaves`` by where they are on ``reference``
        (the frame before, or after when dating back); each leaf's pixel count there."""
        mask = self.out[t] == leaf
        if not mask.any():
            return {}
        window = _box(mask)
        self._follow(t, mask[window], window, leaves, reference)
        given, counts = np.unique(self.out[t][window][mask[window]], return_counts=True)
        for daughter in given.tolist():
            if reference < t:
                self._seen_on(int(daughter), t)
            else:
                self.seen[int(daughter)] = (t, self.seen[int(daughter)][1])
        return dict(zip(given.tolist(), counts.tolist()))

    def _date_back(self, leaf: int, start: int, daughters: list[int]) -> int:
        """The first frame of ``leaf``'s division found on ``start``: up to ``back`` frames earlier, while
        the frame before is in two parts with the loose neck rule (``loose_ratio``), or its mask is more
        like the daughters' next frame than the parent's frame before it (the mask changed shape most
        there: the daughters appeared, with no neck yet), and the daughters' pixels on the next frame
        cut it into two sizeable shares. The parent keeps one frame at least."""
        for _ in range(self.back):
            t = start - 1
            if t - 1 < self.seen[leaf][0]:
                break
            mask = self.out[t] == leaf
            if not mask.any() or not (self._loose(mask) or self._jumped(leaf, t, daughters)):
                break
            counts = self._follow_frame(t, leaf, daughters, t + 1)
            least = max(self.min_pixels, self.min_fraction * int(np.count_nonzero(mask)))
            if sum(counts.get(d, 0) >= least for d in daughters) < 2:
                self.out[t][mask] = leaf  # not two daughters there: the parent's frame
                for d in daughters:
                    if self.seen[d][0] == t:
                        self.seen[d] = (start, self.seen[d][1])
                break
            start = t
        return start

    def _jumped(self, leaf: int, t: int, daughters: list[int]) -> bool:
        """``leaf``'s mask on ``t`` (not empty) overlaps the daughters' on ``t + 1`` more (IoU, the
        evaluation's J) than its own on ``t - 1``."""
        from napari_vos.evaluation.metrics import jaccard

        mask = self.out[t] == leaf
        return jaccard(mask, np.isin(self.out[t + 1], daughters)) > jaccard(mask, self.out[t - 1] == leaf)


def _lineage(out: np.ndarray, divisions: list[Division]) -> dict[int, tuple[int, int, int]]:
    """id -> (parent or 0, first frame, last frame) over the frames each id is on."""
    parent = {d: division.parent for division in divisions for d in division.daughters}
    seen: dict[int, list[int]] = {}
    for t in range(out.shape[0]):
        for i in np.unique(out[t]):
            if i != 0:
                seen.setdefault(int(i), []).append(t)
    return {i: (parent.get(i, 0), frames[0], frames[-1]) for i, frames in sorted(seen.items())}
