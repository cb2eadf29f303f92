"""Where FRTM's segmentation network runs for each object: a window around the object, not the frame.

S costs the same per object whatever the object's size, so a frame with 40 cells costs 40 full-frame
decoder passes. Each object's window is the box of its mask on the last frame and of the region
around its strongest coarse target score on this one, widened by a margin and aligned to the
backbone's 32-pixel stride so that every feature level crops exactly. Outside its window an object's probability is 0. Objects whose windows
cover most of the frame (DAVIS-sized objects) decode the whole frame.

An inference-time approximation, not part of the paper, so it is opt-in (``decode_window="objects"``;
the default ``"full"`` is the paper's S on the whole frame): S's channel-attention blocks pool over
the whole map they see, so a window changes their weights and the masks move (the built-in cells
sample: J&F 44.0 windowed against 43.6 whole-frame with the shipped v3, 30.4 against 31.0 with v2;
but on a toy of four 24-px squares that fill much of their windows, v3's mean IoU falls from 0.81 to
0.60; docs/benchmarks.md). It pays with many small objects: 40 cells at 512x512 run 0.43 frames/s
instead of 0.20 on a 2-core CPU.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

ALIGN = 32  # the deepest feature stride: a window on this grid crops every level exactly


@dataclass(frozen=True)
class Window:
    """Rows y0:y1 and columns x0:x1 of the padded frame (multiples of ALIGN)."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def size(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0


def box_of(mask: torch.Tensor, scale: int = 1) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of the True cells of a (h, w) mask, in pixels of a grid ``scale`` times finer."""
    rows = torch.nonzero(mask.any(1)).flatten()
    if rows.numel() == 0:
        return None
    cols = torch.nonzero(mask.any(0)).flatten()
    return (int(rows[0]) * scale, (int(rows[-1]) + 1) * scale, int(cols[0]) * scale, (int(cols[-1]) + 1) * scale)


def union(a: tuple[int, int, int, int] | None, b: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
    if a is None or b is None:
        return a if b is None else b
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def window_around(box: tuple[int, int, int, int] | None, frame: tuple[int, int], margin: int) -> Window:
    """The box widened by ``margin`` and snapped outwards to ALIGN, inside the (padded) frame; no box: the frame."""
    h, w = frame
    if box is None:
        return Window(0, h, 0, w)
    y0, y1, x0, x1 = box
    snap_down = lambda v: max(0, (v - margin) // ALIGN * ALIGN)  # noqa: E731
    snap_up = lambda v, top: min(top, -(-(v + margin) // ALIGN) * ALIGN)  # noqa: E731
    return Window(snap_down(y0), snap_up(y1, h), snap_down(x0), snap_up(x1, w))


def common_windows(windows: list[Window], frame: tuple[int, int]) -> list[Window]:
    """Grow windows to one shared size (the largest), staying inside the frame, so they batch together."""
    hh = max(wd.size[0] for wd in windows)
    ww = max(wd.size[1] for wd in windows)
    out = []
    for wd in windows:
        y0 = min(max(0, wd.y0 - (hh - wd.size[0]) // 2 // ALIGN * ALIGN), frame[0] - hh)
        x0 = min(max(0, wd.x0 - (ww - wd.size[1]) // 2 // ALIGN * ALIGN), frame[1] - ww)
        out.append(Window(y0, y0 + hh, x0, x0 + ww))
    return out


def mask_boxes(masks: torch.Tensor) -> list[tuple[int, int, int, int] | None]:
    """Each object's box (y0, y1, x0, x1) in a (K, H, W) mask stack (None where it is empty)."""
    return [box_of(m > 0.5 if m.is_floating_point() else m > 0) for m in masks]


def peak_box(scores: torch.Tensor, scale: int, fraction: float = 0.5,
             floor: float = 0.25) -> tuple[int, int, int, int] | None:
    """Box of the connected region around the highest score (cells above ``fraction`` of it).

    Look-alike objects (cells) give a target model responses all over the frame; only the strongest
    one's region counts. None when even the highest score is below ``floor``.
    """
    peak = float(scores.max())
    if peak < floor:
        return None
    regions, _ = ndimage.label((scores >= fraction * peak).cpu().numpy(), structure=np.ones((3, 3)))
    y, x = np.unravel_index(int(torch.argmax(scores)), tuple(scores.shape))
    return box_of(torch.from_numpy(regions == regions[y, x]), scale)


def object_windows(scores: torch.Tensor, frame: tuple[int, int], score_stride: int, margin: int,
                   previous_boxes: list | None = None, full_fraction: float = 0.5) -> list[Window]:
    """One window per object: its last mask box and its strongest score region (``peak_box``), widened.

    An object with neither gets the whole frame; so does one whose window would cover more than
    ``full_fraction`` of it.
    """
    windows = []
    area = frame[0] * frame[1]
    for k in range(scores.shape[0]):
        box = peak_box(scores[k], score_stride)
        if previous_boxes is not None:
            box = union(box, previous_boxes[k])
        wd = window_around(box, frame, margin)
        if wd.size[0] * wd.size[1] > full_fraction * area:
            wd = Window(0, frame[0], 0, frame[1])
        windows.append(wd)
    return windows
