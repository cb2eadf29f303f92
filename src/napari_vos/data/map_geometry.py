"""Where a method's maps sit over the image: the labels keep the image's grid, maps overlay it.

A method's intermediate maps (``Step.maps``) are (K, h, w) at their own, usually coarse,
resolution of the *working* frame (the frame scaled so its longer side is at most max_side).
To overlay them on the image (a napari layer, or a TIFF's pixel size), a map gets a scale and
translate such that each map pixel covers the image pixels it was computed from. Two layouts occur:

- a network grid: the working frame padded at the bottom/right to a multiple of the network's
  stride, then sampled every ``s`` pixels, ``s`` a power of two (FRTM's target scores: stride 16);
- a fitted grid: the working frame resized to (h, w) exactly (the flow baseline's reduced size).

Each method declares its maps' grids (``map_grids``: a padded stride, or None for a fitted grid),
which `map_placement` is given. The shape alone does not say which (an S2S memory map of a 480 x 854
frame reads as a stride-64 grid; an FRTM score map of a 40-pixel-wide channel as a fitted one), so
`map_stride`'s guess (a power-of-two stride whose grid overshoots the working frame by less than two
map pixels is a padded network grid, anything else a fitted grid) is left for a map no method
declares. numpy only.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["map_stride", "map_placement", "GUESS"]

GUESS = "guess"  # a map whose grid no method declares


def map_stride(work: int, size: int) -> float:
    """Working-frame pixels per map pixel along one axis (see the module docstring)."""
    if size <= 0 or work <= 0:
        raise ValueError(f"sizes must be positive, got work={work}, map={size}")
    ratio = work / size
    power = 2.0 ** round(np.log2(ratio))
    if power >= 1 and 0 <= size * power - work < 2 * power:
        return float(power)
    return float(ratio)


def map_placement(
    map_shape: tuple[int, int],
    work_size: tuple[int, int],
    frame_shape: tuple[int, int],
    scale: Sequence[float],
    translate: Sequence[float],
    grid: int | None | str = GUESS,
) -> tuple[list[float], list[float]]:
    """Scale and translate for a (T, h, w) map layer so it overlays a (T, Y, X) image layer.

    scale/translate: the image layer's (T, Y, X) values. grid: the map's declared grid (a padded
    network stride, or None for a grid fitted to the working frame; `GUESS`: `map_stride`'s guess).
    Pixel centres line up: map pixel i covers original pixels [i * f - 0.5, (i + 1) * f - 0.5) with
    f the map-to-frame factor.
    """
    out_scale = [float(scale[0])]
    out_translate = [float(translate[0])]
    for axis in range(2):
        if grid == GUESS:
            stride = map_stride(work_size[axis], map_shape[axis])
        elif grid is None:
            stride = work_size[axis] / map_shape[axis]
        else:
            stride = float(grid)
        factor = stride * frame_shape[axis] / work_size[axis]
        s, t = float(scale[axis + 1]), float(translate[axis + 1])
        out_scale.append(s * factor)
        out_translate.append(t + s * (factor - 1.0) / 2.0)
    return out_scale, out_translate
