"""Which level of a multiscale (pyramid) time-lapse to propagate on, and where that level lies.

A multiscale image (napari's list of arrays, e.g. an OME-Zarr pyramid) holds the same frames at
several resolutions, finest first. The engine propagates on one level: the one the painted labels
match (so the output overlays them pixel for pixel), or, with no labels, the coarsest level that
still has the working resolution (reading a finer one would only be downsampled again). napari
draws level i with its pixel j at level-0 coordinate j * (shape_0 / shape_i), no offset; the
output layers use the same rule, so they overlay the image at every zoom.
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["frame_shapes", "level_for_labels", "level_for_side", "level_scale"]


def frame_shapes(level_shapes: Sequence[Sequence[int]], rgb: bool) -> list[tuple[int, int, int] | None]:
    """(T, Y, X) of each level, or None for a level that is not a time-lapse of the first's length.

    ``level_shapes``: each level's array shape, with a trailing colour axis when ``rgb``.
    """
    out: list[tuple[int, int, int] | None] = []
    for shape in level_shapes:
        spatial = tuple(int(s) for s in (shape[:-1] if rgb else shape))
        ok = len(spatial) == 3 and (not out or out[0] is None or spatial[0] == out[0][0])
        out.append(spatial if ok else None)  # type: ignore[arg-type]
    return out


def level_for_labels(labels_shape: Sequence[int], shapes: Sequence[tuple[int, int, int] | None]) -> int | None:
    """The finest level whose (T, Y, X), or whose one frame (Y, X), is ``labels_shape``; None if none is."""
    wanted = tuple(int(s) for s in labels_shape)
    for i, shape in enumerate(shapes):
        if shape is not None and wanted in (shape, shape[1:]):
            return i
    return None


def level_for_side(shapes: Sequence[tuple[int, int, int] | None], max_side: int | None) -> int:
    """The coarsest level whose longer side is at least ``max_side`` (capped at level 0's), so the
    frames are read no finer than the working resolution needs; level 0 when ``max_side`` is None."""
    if not max_side or shapes[0] is None:
        return 0
    wanted = min(int(max_side), max(shapes[0][1:]))
    best = 0
    for i, shape in enumerate(shapes):
        if shape is not None and max(shape[1:]) >= wanted:
            best = i
    return best


def level_scale(scale: Sequence[float], shape0: Sequence[int], shape: Sequence[int]) -> list[float]:
    """World scale of a level's pixels: the layer's (level-0) ``scale`` times the level's
    downsampling ``shape0 / shape`` along each of the last ``len(shape)`` axes."""
    out = [float(s) for s in scale]
    n = len(shape)
    for k in range(1, n + 1):
        out[-k] = out[-k] * float(shape0[-k]) / float(shape[-k])
    return out
