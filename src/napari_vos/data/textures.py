"""Procedural textures for the synthetic video generators (numpy + scipy.ndimage only).

Natural-looking enough for a demo and for training: multi-scale smoothed noise ("clouds"),
mapped through a random colour ramp, mixed with stripes/checks and a colour gradient. Noise
is drawn at low resolution and upsampled (`scipy.ndimage.zoom`, linear), which is both what
makes it smooth and what makes a 512x512 texture cost a few milliseconds.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["smooth_noise", "colour_ramp", "random_texture", "random_colours"]


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Zero-mean, unit-std smooth noise of `shape` whose features are about `scale` pixels wide."""
    h, w = shape
    gh, gw = max(2, int(np.ceil(h / scale)) + 2), max(2, int(np.ceil(w / scale)) + 2)
    g = rng.standard_normal((gh, gw)).astype(np.float32)
    up = ndi.zoom(g, (h / (gh - 2), w / (gw - 2)), order=3, mode="reflect", grid_mode=False)
    up = up[:h, :w]
    if up.shape != (h, w):  # zoom rounding: pad by edge
        up = np.pad(up, ((0, h - up.shape[0]), (0, w - up.shape[1])), mode="edge")
    up -= up.mean()
    s = up.std()
    return up / s if s > 0 else up


def random_colours(rng: np.random.Generator, n: int, saturation: float = 0.6) -> np.ndarray:
    """`n` random RGB colours in [0, 1] (n, 3), around a random hue with some spread."""
    base = rng.uniform(0, 1)
    hues = (base + rng.normal(0, 0.12, n)) % 1.0
    sat = np.clip(rng.normal(saturation, 0.2, n), 0.05, 1.0)
    val = np.clip(rng.uniform(0.25, 0.95, n), 0, 1)
    return _hsv_to_rgb(hues, sat, val)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack(
        [np.stack(x, -1) for x in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))]
    )
    return table[i, np.arange(len(h))].astype(np.float32)


def colour_ramp(values: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (H, W) through a piecewise-linear ramp of `colours` (n, 3) -> (H, W, 3)."""
    n = len(colours)
    x = np.clip(values, 0, 1) * (n - 1)
    i0 = np.clip(np.floor(x).astype(np.int32), 0, n - 2)
    f = (x - i0)[..., None]
    return (colours[i0] * (1 - f) + colours[i0 + 1] * f).astype(np.float32)


def random_texture(
    rng: np.random.Generator,
    shape: tuple[int, int],
    colours: np.ndarray | None = None,
    kind: str | None = None,
) -> np.ndarray:
    """A random RGB texture (H, W, 3) float32 in [0, 1].

    kind: "clouds" (multi-scale noise through a colour ramp), "stripes" (noisy oriented bands),
    "checks" (distorted checkerboard), "gradient" (smooth colour gradient with grain); random if None.
    """
    h, w = shape
    kind = kind or rng.choice(["clouds", "clouds", "stripes", "checks", "gradient"])
    if colours is None:
        colours = random_colours(rng, int(rng.integers(2, 5)))
    side = max(h, w)
    n = (
        0.6 * smooth_noise(rng, shape, side * rng.uniform(0.15, 0.4))
        + 0.3 * smooth_noise(rng, shape, side * rng.uniform(0.04, 0.1))
        + 0.1 * smooth_noise(rng, shape, rng.uniform(2, 5))
    )
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    along = (np.cos(theta) * xx + np.sin(theta) * yy) / side
    if kind == "clouds":
        v = 0.5 + 0.22 * n
    elif kind == "stripes":
        freq = rng.uniform(4, 14)
        v = 0.5 + 0.35 * np.sin(2 * np.pi * freq * along + 1.5 * n) + 0.08 * n
    elif kind == "checks":
        freq = rng.uniform(3, 9)
        across = (-np.sin(theta) * xx + np.cos(theta) * yy) / side
        v = 0.5 + 0.3 * np.sign(np.sin(2 * np.pi * freq * along + 0.6 * n) * np.sin(2 * np.pi * freq * across)) + 0.1 * n
    else:  # gradient
        v = along - along.min()
        v = v / max(float(v.max()), 1e-6) + 0.1 * n
    tex = colour_ramp(v.astype(np.float32), colours)
    grain = 0.03 * smooth_noise(rng, shape, 1.5)[..., None]
    return np.clip(tex + grain, 0, 1).astype(np.float32)
