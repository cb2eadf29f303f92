"""Tiny videos for the tests: a textured square sliding over a textured background, coloured disks, DAVIS-layout folders."""
from __future__ import annotations

from typing import Any

import numpy as np


def sliding_square(n_frames: int = 6, size: tuple[int, int] = (64, 64), side: int = 20,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Grey uint8 frames (T, Y, X) and the square's true labels (id 1); it moves 2 px/frame, bouncing."""
    rng = np.random.default_rng(seed)
    h, w = size
    background = (rng.random((h, w)) * 80).astype(np.uint8)
    texture = (150 + rng.random((side, side)) * 100).astype(np.uint8)
    span = w - side - 8
    frames = np.empty((n_frames, h, w), np.uint8)
    truth = np.zeros((n_frames, h, w), np.int32)
    for t in range(n_frames):
        x = (2 * t) % (2 * span)
        x0 = 4 + (x if x <= span else 2 * span - x)
        y0 = (h - side) // 2
        frames[t] = background
        frames[t, y0:y0 + side, x0:x0 + side] = texture
        truth[t, y0:y0 + side, x0:x0 + side] = 1
    return frames, truth


def first_frame_only(truth: np.ndarray, frame: int = 0) -> np.ndarray:
    out = np.zeros_like(truth)
    out[frame] = truth[frame]
    return out


def disc(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    """A (Y, X) boolean disc: the pixels whose centres lie within ``radius`` of ``centre``."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def two_channel_video(n_frames: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two (T, Y, X) channels and the truth: channel 0 (uint8) the same smooth ramp every frame, so
    nothing moves in it; channel 1 (uint16) a sliding square, the only place the object shows."""
    square, truth = sliding_square(n_frames, (64, 64), seed=1)
    ramp = np.linspace(0, 255, 64).astype(np.uint8)[None, :].repeat(64, axis=0)
    still = np.broadcast_to(ramp, square.shape).copy()
    return still, square.astype(np.uint16) * 200, truth


def viewer_with_a_nan_frame(n_frames: int, size: tuple[int, int], nan_at: int) -> Any:
    """A Qt-free napari ViewerModel with the sliding square as "video" (float32, frame ``nan_at``
    holding one NaN pixel, found only when a run reaches it) and frame 0's truth as "painted"."""
    from napari.components import ViewerModel

    frames, truth = sliding_square(n_frames, size)
    frames = frames.astype(np.float32)
    frames[nan_at, 0, 0] = np.nan
    viewer = ViewerModel()
    viewer.add_image(frames, name="video")
    viewer.add_labels(first_frame_only(truth), name="painted")
    return viewer


def coloured_disks(T: int, H: int, W: int, centers: list[tuple[int, int]], r: int = 9,
                   move: tuple[int, int] = (0, 0), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 frames (T, H, W, 3) of coloured disks on noise, moving ``move`` px a frame, and their
    labels (ids 1..len(centers))."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    vid = np.zeros((T, H, W, 3), np.uint8)
    gt = np.zeros((T, H, W), np.uint8)
    cols = [(230, 40, 40), (40, 60, 230), (40, 220, 60)]
    for t in range(T):
        img = rng.normal(110, 12, (H, W, 3)).clip(0, 255)
        for k, (cy, cx) in enumerate(centers):
            m = (yy - cy - move[0] * t) ** 2 + (xx - cx - move[1] * t) ** 2 <= r * r
            img[m] = cols[k % 3]
            gt[t][m] = k + 1
        vid[t] = img.astype(np.uint8)
    return vid, gt


def two_disks(T: int = 6, H: int = 48, W: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Grey uint8 frames (T, H, W) of two disks of radius 5 moving down 1 px a frame, and their labels 1, 2."""
    yy, xx = np.mgrid[:H, :W]
    vid = np.zeros((T, H, W), np.uint8)
    gt = np.zeros((T, H, W), np.uint8)
    for t in range(T):
        for k, (cy, cx) in enumerate([(12, 12), (12, 32)]):
            m = (yy - cy - t) ** 2 + (xx - cx) ** 2 <= 25
            vid[t][m] = 100 + 80 * k
            gt[t][m] = k + 1
    return vid, gt


def davis_sequence(root: Any, name: str, label_fn: Any, frames: int = 12, size: tuple[int, int] = (120, 80)) -> None:
    """One DAVIS-layout sequence (JPEGImages/480p/NAME, Annotations/480p/NAME) under ``root``, every
    frame annotated with ``label_fn(t, (H, W))`` and its objects painted red on a noisy background;
    ``size`` is (W, H)."""
    from PIL import Image

    (root / "JPEGImages" / "480p" / name).mkdir(parents=True)
    (root / "Annotations" / "480p" / name).mkdir(parents=True)
    base = np.random.default_rng(0).integers(40, 200, (size[1], size[0], 3)).astype(np.uint8)
    for t in range(frames):
        labels = label_fn(t, (size[1], size[0]))
        img = base.copy()
        img[labels > 0] = (230, 60, 60)
        Image.fromarray(img).save(root / "JPEGImages" / "480p" / name / f"{t:05d}.jpg")
        mask = Image.fromarray(labels.astype(np.uint8), mode="P")
        mask.putpalette([0, 0, 0] + [128, 0, 0] * 255)
        mask.save(root / "Annotations" / "480p" / name / f"{t:05d}.png")


def dividing_cell(n_frames: int = 6, split_at: int = 2, width: int = 44, dtype: Any = np.uint8) -> np.ndarray:
    """(T, 30, width) labels: id 3 one 10x10 cell until ``split_at``, then two 10x4 halves moving apart
    1 px a frame (a division kept under one id); id 1 a still 5x5 cell."""
    labels = np.zeros((n_frames, 30, width), dtype)
    for t in range(n_frames):
        if t < split_at:
            labels[t, 5:15, 15:25] = 3
        else:
            gap = t - split_at
            labels[t, 5:15, 15 - gap:19 - gap] = 3
            labels[t, 5:15, 21 + gap:25 + gap] = 3
        labels[t, 20:25, 2:7] = 1
    return labels


#: `dividing_ball`'s (Z, Y, X) volume, and the distance between its daughters' centres on each frame (0: one cell)
DIVIDING_SHAPE = (20, 40, 64)
DIVIDING_GAPS = [0, 0, 0, 12, 16, 20, 24, 28]


def ball(centre: tuple[float, float, float], radius: float, shape: tuple[int, int, int] = DIVIDING_SHAPE) -> np.ndarray:
    """A ball's mask in a (Z, Y, X) volume."""
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius ** 2


def dividing_ball() -> np.ndarray:
    """(8, 20, 40, 64) uint16 labels: cell 1 a ball on frames 0-2, two balls joined by a neck on frame 3
    (centres 12 apart, radius 7: a waist of radius 3.6), apart from frame 4 on and moving apart along X;
    cell 2 a ball that never divides."""
    labels = np.zeros((len(DIVIDING_GAPS), *DIVIDING_SHAPE), np.uint16)
    for t, gap in enumerate(DIVIDING_GAPS):
        labels[t][ball((10, 20, 24), 8) if gap == 0 else
                  ball((10, 20, 24 - gap / 2), 7) | ball((10, 20, 24 + gap / 2), 7)] = 1
        labels[t][ball((10, 20, 56), 5)] = 2
    return labels
