"""Stray parts dropped from a propagated frame: each object keeps the parts of its mask that follow its
mask on the frame before, so a score that flared up on a look-alike elsewhere (FRTM's target model on
other cells of a time-lapse) does not become part of the object.

A part follows when it comes within `REACH` pixels of the object's previous mask; where no part does
(the object moved further, or reappears), the largest part is kept, so an object is never lost by
this step. It works on the output labels only: the method's own memory and updates see its raw
output. Measured in docs/benchmarks.md ("Stray parts"); the Session's ``stray_parts="drop"``.
scipy's ``ndimage`` finds the parts; nothing packaged keeps the parts that follow, hence this module.
"""
from __future__ import annotations

import numpy as np

__all__ = ["drop_stray_parts", "REACH"]

#: how close (pixels, 8-connected steps) a part must come to the previous frame's mask to follow it
REACH = 3
_EIGHT = np.ones((3, 3), bool)


def drop_stray_parts(labels: np.ndarray, previous: np.ndarray, reach: int = REACH) -> np.ndarray:
    """``labels`` (one (Y, X) frame of object ids) with each object's parts that do not come within
    ``reach`` pixels of its mask in ``previous`` set to 0; an object none of whose parts does keeps its
    largest part. Returns a new array; ``labels`` is left as it is."""
    from scipy import ndimage

    from napari_vos.object_table import compact_ids

    out = np.array(labels, copy=True)
    compact, originals = compact_ids(out)  # one pass finds every object's box (ids of any size or sign)
    height, width = out.shape
    for k, found in enumerate(ndimage.find_objects(compact)):
        if found is None:
            continue
        i = originals[k] if originals is not None else k + 1
        window = (slice(max(found[0].start - reach, 0), min(found[0].stop + reach, height)),
                  slice(max(found[1].start - reach, 0), min(found[1].stop + reach, width)))
        parts, n = ndimage.label(compact[window] == k + 1, structure=_EIGHT)
        if n < 2:
            continue
        before = previous[window] == i
        near = ndimage.binary_dilation(before, structure=_EIGHT, iterations=reach) if before.any() else before
        touching = np.unique(parts[near & (parts > 0)])
        keep = touching if len(touching) else [int(np.argmax(np.bincount(parts.ravel())[1:])) + 1]
        stray = (parts > 0) & ~np.isin(parts, keep)
        out[window][stray] = 0
    return out
