"""Where RGMP looks for each object: a square window that follows it, not the whole frame.

RGMP runs its Siamese encoder and decoder once per object over the whole frame, so 25 cells cost 25
full-frame passes, and the working size is enlarged until the cells are 64 px across (the cells
sample: 23 s a frame at 773x773 on a 2-core CPU). In a window (``window="objects"``, or ``"auto"`` with 8 or more
objects: methods.rgmp) each object gets one square side, fixed
on its annotated frame (its mask box's longer side plus a margin each side, rounded up to the
encoder's 32-pixel stride): the reference stream sees that square around the annotated object, and
on every next frame the target stream sees the same-sized square centred on the box of the
object's guidance (the previous aggregated probability, above 0.5; where that is empty, the last
centre). Outside its window an object's probability is 0. Objects whose square would cover more
than half the frame (DAVIS-sized objects) keep the whole frame.

An inference-time approximation, not part of the paper: the global convolution sees less context
around the object. Window areas outside the frame are filled with zeros before normalisation,
i.e. black, the same border RGMP's training windows have (not the encoder's zero padding, which
is applied to normalised features).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from napari_vos.methods.frtm_windows import ALIGN, box_of


@dataclass(frozen=True)
class Square:
    """A side x side window of the frame whose top-left corner is (y0, x0); it may reach outside the frame."""

    y0: int
    x0: int
    side: int


def window_side(mask: torch.Tensor, margin: int, full_fraction: float = 0.5) -> int | None:
    """The square side for an object's (H, W) mask: its box's longer side + 2 margins, rounded up to ALIGN.

    None (the whole frame) when the object is empty or its square would cover more than
    ``full_fraction`` of the frame.
    """
    box = box_of(mask > 0.5)
    if box is None:
        return None
    longer = max(box[1] - box[0], box[3] - box[2])
    side = -(-(longer + 2 * margin) // ALIGN) * ALIGN
    h, w = mask.shape[-2:]
    return None if side * side > full_fraction * h * w else side


def centre_of(mask: torch.Tensor) -> tuple[int, int] | None:
    """The centre (y, x) of the box of a (H, W) mask's cells above 0.5; None when there are none."""
    box = box_of(mask > 0.5)
    if box is None:
        return None
    return (box[0] + box[1]) // 2, (box[2] + box[3]) // 2


def square_at(centre: tuple[int, int], side: int) -> Square:
    return Square(centre[0] - side // 2, centre[1] - side // 2, side)


def _overlap(square: Square, size: tuple[int, int]) -> tuple[slice, slice, slice, slice] | None:
    """(frame rows, frame cols, window rows, window cols) of the part of ``square`` inside the frame."""
    ys, ye = max(0, square.y0), min(size[0], square.y0 + square.side)
    xs, xe = max(0, square.x0), min(size[1], square.x0 + square.side)
    if ys >= ye or xs >= xe:
        return None
    return (slice(ys, ye), slice(xs, xe),
            slice(ys - square.y0, ye - square.y0), slice(xs - square.x0, xe - square.x0))


def crop_square(x: torch.Tensor, square: Square) -> torch.Tensor:
    """The (..., side, side) window of a (..., H, W) tensor, zeros where it leaves the frame."""
    out = x.new_zeros((*x.shape[:-2], square.side, square.side))
    parts = _overlap(square, tuple(x.shape[-2:]))
    if parts is not None:
        fy, fx, wy, wx = parts
        out[..., wy, wx] = x[..., fy, fx]
    return out


def paste_square(target: torch.Tensor, window: torch.Tensor, square: Square) -> None:
    """Write a (..., side, side) window into a (..., H, W) tensor where it lies inside the frame."""
    parts = _overlap(square, tuple(target.shape[-2:]))
    if parts is not None:
        fy, fx, wy, wx = parts
        target[..., fy, fx] = window[..., wy, wx]


def groups_by_side(sides: list[int | None], batch: int | None = None) -> list[tuple[int | None, list[int]]]:
    """Object indices grouped by window side (None: the whole frame), each group one batch of at most
    ``batch`` objects; full-frame objects stay one batch, as RGMP always ran them."""
    by_side: dict[int | None, list[int]] = {}
    for k, side in enumerate(sides):
        by_side.setdefault(side, []).append(k)
    groups = []
    for side, members in by_side.items():
        step = len(members) if side is None or not batch else batch
        groups += [(side, members[i:i + step]) for i in range(0, len(members), step)]
    return groups
