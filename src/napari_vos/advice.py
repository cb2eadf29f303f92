"""Which shipped method suits the painted objects: a one-line tip when the chosen one is measured poor.

Most methods see the frame in 16-pixel cells and were trained mostly on natural video, so many
small objects (a field of cells) are what they do worst; one registered checkpoint was trained for
exactly that. The tip compares the measured scores the weights registry stores for the built-in
cells sample (``scores["demo_cells"]``), so it follows the checkpoints as they are retrained. numpy
only: the widget computes it on the GUI thread before any torch import.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from napari_vos import weights
from napari_vos.data.frames import median_equivalent_diameter

#: from this many small painted objects on, the tip is given: a handful of cells already (FRTM on five
#: real Usiigaci cells: IoU 0.02-0.28 against 0.73 for RGMP's cells checkpoint, session 24); one or
#: two small objects are as likely a ball or a bird in ordinary video, for which the tip is not meant
TIP_MIN_OBJECTS = 3
#: objects whose median equivalent diameter is below this fraction of the frame's shorter side
#: count as small: cells are 1/12-1/15 of it (the built-in sample's 21 px of 256, Usiigaci's 70 px
#: of 1022), a handful of people or cars in a video 1/5 or more
SMALL_OBJECT_FRACTION = 1 / 8
#: the registry score the tip compares: J&F on the built-in synthetic cells sample
CELLS_SCORE = "demo_cells"


@dataclass(frozen=True)
class MethodAdvice:
    """A better-measured choice: the method, its registered checkpoint, and the sentence saying why."""

    method: str
    checkpoint: str
    text: str

    def __str__(self) -> str:
        return self.text


def _cells_score(info: weights.CheckpointInfo) -> float | None:
    score = (info.scores or {}).get(CELLS_SCORE)
    return float(score["JF"]) if isinstance(score, dict) and "JF" in score else None


def _chosen_checkpoint(method: str, checkpoint: str | None) -> weights.CheckpointInfo | None:
    """The registry entry a run of ``method`` uses: the named one, else the method's default; None for
    a file of the user's own or a method without weights."""
    if checkpoint:
        return next((c for c in weights.list_checkpoints() if c.name == checkpoint), None)
    try:
        return weights.default_checkpoint(method)
    except weights.CheckpointError:
        return None


def method_advice(method: str, checkpoint: str | None, annotations: Iterable[np.ndarray]) -> MethodAdvice | None:
    """A tip naming a better-measured method and checkpoint for several small painted objects, or None.

    ``annotations``: the painted label images (each (Y, X), 0 = background). None when there are
    fewer than `TIP_MIN_OBJECTS` objects, they are not small for the frame (`SMALL_OBJECT_FRACTION`),
    or the chosen checkpoint is the best measured on cells (or has no cells score to compare).
    """
    frames = [np.asarray(a) for a in annotations]
    ids: set[int] = set()
    areas: list[float] = []
    for frame in frames:  # one pass per frame gives both the ids and the areas
        values, counts = np.unique(frame, return_counts=True)
        ids.update(int(i) for i in values if i)
        areas += [float(c) for i, c in zip(values, counts) if i]
    diameter = median_equivalent_diameter(areas)
    if len(ids) < TIP_MIN_OBJECTS or diameter is None or diameter >= SMALL_OBJECT_FRACTION * min(frames[0].shape[-2:]):
        return None
    chosen = _chosen_checkpoint(method, checkpoint)
    chosen_score = _cells_score(chosen) if chosen is not None else None
    scored = [(s, c) for c in weights.list_checkpoints() if (s := _cells_score(c)) is not None]
    if chosen is None or chosen_score is None or not scored:
        return None
    best_score, best = max(scored, key=lambda sc: sc[0])
    if best.name == chosen.name or best_score <= chosen_score:
        return None
    choice = best.method if best.default else f"{best.method} with checkpoint {best.name}"
    text = (f"tip: {len(ids)} small objects (median {diameter:.0f} px across): for cells, {choice} scored "
            f"J&F {best_score:.2f} on the built-in cells sample against {chosen_score:.2f} for {method}"
            f"{'' if chosen.default else f' with {chosen.name}'} (user guide, 'Which method?')")
    return MethodAdvice(best.method, best.name, text)
