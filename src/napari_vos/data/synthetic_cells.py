"""Microscopy-like synthetic time-lapses: many cells with instance masks and lineage.

Cells are textured, slightly irregular ellipses (a nucleus inside, granular texture) that move
by a persistent random walk with soft repulsion (so they crowd and touch but rarely pile up),
grow, round up and divide into two daughters, and enter or leave through the frame border.
Rendering follows the two common modalities:

- ``"phase"``: phase contrast: dark cell bodies on a grey background with the bright halo around
  each cell (a blurred-mask difference), uneven illumination and Gaussian camera noise;
- ``"fluorescence"``: bright cells on a dark background, blurred by a Gaussian PSF, photobleaching
  (exponential intensity decay over time), Poisson shot noise plus read noise.

Output is 8- or 16-bit like a camera. The simulation (positions, sizes, divisions) is drawn once
from the seed; `render(t)` draws frame t alone, so long stacks can be streamed. Labels are exact
(each pixel belongs to the topmost cell whose anti-aliased coverage >= 0.5); ids are never reused,
daughters get new ids, and `lineage` maps id -> (parent id or 0, first frame, last frame) seen,
the Cell Tracking Challenge convention.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from napari_vos.data.synthetic_types import SyntheticVideo, render_all
from napari_vos.data.textures import smooth_noise

__all__ = ["CellScene", "cell_scene", "cell_video", "lineage_from_labels", "under_root_ids"]

_TEX = 128  # side of the shared static texture field cells sample from


@dataclass
class _Track:
    """One cell's simulated life: state per frame from `start` to `end` (inclusive)."""

    id: int
    parent: int
    start: int
    pos: list[np.ndarray] = field(default_factory=list)  # (2,) yx per frame
    radius: list[float] = field(default_factory=list)
    aspect: list[float] = field(default_factory=list)
    angle: list[float] = field(default_factory=list)
    roundness: list[float] = field(default_factory=list)  # 1 = normal shape, 0 = round (mitosis)
    harmonics: np.ndarray = field(default_factory=lambda: np.zeros((3, 2)))  # (k, [amp, phase])
    brightness: float = 1.0
    tex_offset: tuple[int, int] = (0, 0)
    nucleus: tuple[float, float] = (0.0, 0.0)


@dataclass
class CellScene:
    """The simulated cells of one time-lapse; `render(t)` draws frame t (image, labels)."""

    n_frames: int
    size: tuple[int, int]
    tracks: list[_Track]
    modality: str
    bit_depth: int
    texture: np.ndarray  # (_TEX, _TEX) float32 static granular texture
    illumination: np.ndarray  # (H, W) float32 multiplicative field
    bleach_tau: float
    photons: float
    seed: int
    by_frame: list[list[int]] = field(default_factory=list)  # track indices alive per frame

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self.size

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint16 if self.bit_depth == 16 else np.uint8)

    def _coverage(self, tr: _Track, t: int) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray, np.ndarray] | None:
        """Bounding box, anti-aliased coverage, normalised radius and texture of cell `tr` at t."""
        h, w = self.size
        i = t - tr.start
        cy, cx = tr.pos[i]
        r, asp, ang, rnd = tr.radius[i], tr.aspect[i], tr.angle[i], tr.roundness[i]
        a, b = r * asp, r / asp  # semi-axes, same area as a circle of radius r
        reach = max(a, b) * (1 + np.abs(tr.harmonics[:, 0]).sum()) + 2
        y0, y1 = int(max(0, np.floor(cy - reach))), int(min(h, np.ceil(cy + reach) + 1))
        x0, x1 = int(max(0, np.floor(cx - reach))), int(min(w, np.ceil(cx + reach) + 1))
        if y1 <= y0 or x1 <= x0:
            return None
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dy, dx = yy - cy, xx - cx
        c, s = np.cos(ang), np.sin(ang)
        u, v = c * dx + s * dy, -s * dx + c * dy
        rho = np.hypot(u, v)
        theta = np.arctan2(v, u)
        a_eff, b_eff = a * rnd + r * (1 - rnd), b * rnd + r * (1 - rnd)
        radius = a_eff * b_eff / np.sqrt((b_eff * np.cos(theta)) ** 2 + (a_eff * np.sin(theta)) ** 2)
        wobble = np.ones_like(rho)
        for k, (amp, phase) in enumerate(tr.harmonics, start=2):
            wobble += rnd * amp * np.cos(k * theta + phase + 0.05 * t)
        radius = radius * wobble
        cover = np.clip(radius - rho + 0.5, 0, 1)
        ty = (np.rint(v).astype(np.int64) + tr.tex_offset[0]) % _TEX
        tx = (np.rint(u).astype(np.int64) + tr.tex_offset[1]) % _TEX
        tex = self.texture[ty, tx]
        nuc = np.hypot(u - tr.nucleus[1] * r, v - tr.nucleus[0] * r) / (0.45 * r)
        tex = tex + 0.6 * np.clip(1.2 - nuc, 0, 1)  # nucleus: a denser (darker/brighter) disc
        return (y0, y1, x0, x1), cover.astype(np.float32), (rho / np.maximum(radius, 1e-3)).astype(np.float32), tex.astype(np.float32)

    def render(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.size
        labels = np.zeros((h, w), dtype=np.int32)
        mass = np.zeros((h, w), dtype=np.float32)  # union coverage (phase) / dye amount (fluo)
        body = np.zeros((h, w), dtype=np.float32)  # optical density inside cells
        for k in self.by_frame[t]:
            tr = self.tracks[k]
            got = self._coverage(tr, t)
            if got is None:
                continue
            (y0, y1, x0, x1), cover, rnorm, tex = got
            m = mass[y0:y1, x0:x1]
            np.maximum(m, cover, out=m)
            dens = cover * (0.55 + 0.35 * tex + 0.25 * np.sqrt(np.clip(1 - rnorm**2, 0, 1))) * tr.brightness
            bd = body[y0:y1, x0:x1]
            np.maximum(bd, dens, out=bd)
            labels[y0:y1, x0:x1][cover >= 0.5] = tr.id
        rng = np.random.default_rng((self.seed, 7919, t))
        if self.modality == "phase":
            halo = np.clip(ndi.gaussian_filter(mass, 2.5) - mass, 0, 1)
            img = 0.55 - 0.35 * body + 0.9 * halo
            img = ndi.gaussian_filter(img, 0.7) * self.illumination
            img += rng.standard_normal((h, w), dtype=np.float32) * 0.015
            img = 0.05 + img / 1.8  # camera range: no clipping of the halo or the darkest cell
            full = 4095 * 16 if self.bit_depth == 16 else 255  # 12-bit sensor stored in 16 bits
            return (np.clip(img, 0, 1) * full + 0.5).astype(self.dtype), labels
        # fluorescence
        bleach = np.exp(-t / self.bleach_tau)
        signal = ndi.gaussian_filter(body * bleach, 1.2) * self.illumination
        expected = self.photons * (signal + 0.02)  # + autofluorescence background
        counts = rng.poisson(np.maximum(expected, 0)).astype(np.float32)
        counts += rng.standard_normal((h, w), dtype=np.float32) * 2.0  # read noise (e-)
        if self.bit_depth == 16:
            return np.clip(counts + 100, 0, 65535).astype(np.uint16), labels  # camera offset 100
        scale = 255.0 / (self.photons * 1.1)
        return np.clip(counts * scale, 0, 255).astype(np.uint8), labels


def cell_scene(
    n_frames: int = 40,
    size: tuple[int, int] = (256, 256),
    n_cells: int = 30,
    seed: int = 0,
    modality: str = "phase",
    bit_depth: int = 16,
    radius: tuple[float, float] = (8.0, 14.0),
    speed: float = 1.0,
    division_rate: float = 0.004,
    enter_rate: float = 0.05,
    bleach_tau: float | None = None,
    photons: float = 400.0,
) -> CellScene:
    """Simulate cells for `n_frames` frames (nothing rendered yet).

    speed: random-walk step std (px/frame); division_rate: chance per cell per frame (after a
    minimum age); enter_rate: expected new cells entering through the border per frame.
    bleach_tau: fluorescence decay constant in frames (default 3 x n_frames).
    """
    if modality not in ("phase", "fluorescence"):
        raise ValueError(f"modality must be 'phase' or 'fluorescence', got {modality!r}")
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    rng = np.random.default_rng(seed)
    h, w = size
    margin = 2 * radius[1]
    lo, hi = np.array([-margin, -margin]), np.array([h + margin, w + margin])
    tracks: list[_Track] = []
    velocity: dict[int, np.ndarray] = {}
    age: dict[int, int] = {}
    alive: list[int] = []

    def new_track(t: int, parent: int, pos: np.ndarray, r: float, vel: np.ndarray) -> int:
        tr = _Track(
            id=len(tracks) + 1, parent=parent, start=t,
            harmonics=np.stack([rng.uniform(0, 0.12, 3), rng.uniform(0, 2 * np.pi, 3)], axis=1),
            brightness=float(rng.uniform(0.6, 1.2)),
            tex_offset=(int(rng.integers(_TEX)), int(rng.integers(_TEX))),
            nucleus=(float(rng.uniform(-0.2, 0.2)), float(rng.uniform(-0.2, 0.2))),
        )
        tr.pos.append(np.asarray(pos, dtype=np.float64))
        tr.radius.append(float(r))
        tr.aspect.append(float(rng.uniform(1.0, 1.5)))
        tr.angle.append(float(rng.uniform(0, np.pi)))
        tr.roundness.append(1.0)
        tracks.append(tr)
        velocity[tr.id] = np.asarray(vel, dtype=np.float64)
        age[tr.id] = 0 if parent else int(rng.integers(0, 60))
        return len(tracks) - 1

    for _ in range(n_cells):
        new_track(0, 0, rng.uniform([0, 0], [h, w]), rng.uniform(*radius), rng.normal(0, speed, 2))
        alive.append(len(tracks) - 1)
    # relax the initial placement a little so cells touch but do not pile up
    by_frame: list[list[int]] = []
    for t in range(n_frames):
        if t > 0:
            nxt: list[int] = []
            pos = np.array([tracks[k].pos[-1] for k in alive]) if alive else np.zeros((0, 2))
            rad = np.array([tracks[k].radius[-1] for k in alive])
            push = np.zeros_like(pos)
            if len(alive) > 1:
                d = pos[:, None, :] - pos[None, :, :]
                dist = np.hypot(d[..., 0], d[..., 1]) + np.eye(len(alive))
                overlap = np.clip(0.9 * (rad[:, None] + rad[None, :]) - dist, 0, None)
                np.fill_diagonal(overlap, 0)
                push = (d / dist[..., None] * overlap[..., None]).sum(1) * 0.3
            for j, k in enumerate(alive):
                tr = tracks[k]
                v = 0.85 * velocity[tr.id] + rng.normal(0, speed * 0.55, 2)
                velocity[tr.id] = v
                p = tr.pos[-1] + v + push[j]
                age[tr.id] += 1
                if np.any(p < lo) or np.any(p > hi):
                    continue  # left the field: the track ends
                if age[tr.id] > 15 and rng.random() < division_rate:
                    axis = tr.angle[-1]
                    off = 0.5 * tr.radius[-1] * np.array([np.sin(axis), np.cos(axis)])
                    r_d = tr.radius[-1] / np.sqrt(2) * 1.1
                    for sign in (1, -1):
                        nxt.append(new_track(t, tr.id, p + sign * off, r_d, sign * off / 4))
                    continue
                ang = tr.angle[-1] + rng.normal(0, 0.05)
                r_new = min(tr.radius[-1] * (1 + rng.uniform(0, 0.004)), radius[1] * 1.3)
                tr.pos.append(p)
                tr.radius.append(r_new)
                tr.aspect.append(float(np.clip(tr.aspect[-1] + rng.normal(0, 0.02), 1.0, 1.7)))
                tr.angle.append(float(ang))
                tr.roundness.append(1.0)
                nxt.append(k)
            for _ in range(rng.poisson(enter_rate)):
                side = int(rng.integers(4))
                along = rng.uniform(0, 1)
                start = [(-margin / 2, along * w), (h + margin / 2, along * w),
                         (along * h, -margin / 2), (along * h, w + margin / 2)][side]
                inward = [(1, 0), (-1, 0), (0, 1), (0, -1)][side]
                nxt.append(new_track(t, 0, np.array(start), rng.uniform(*radius),
                                     np.array(inward) * speed * 1.5 + rng.normal(0, 0.3, 2)))
            alive = nxt
        by_frame.append(list(alive))
    # cells round up in the few frames before they divide
    parents = {tr.parent for tr in tracks if tr.parent}
    for tr in tracks:
        if tr.id in parents:
            n = len(tr.roundness)
            for i in range(max(0, n - 4), n):
                tr.roundness[i] = (n - 1 - i) / 4
    trng = np.random.default_rng((seed, 17))
    texture = (0.6 * smooth_noise(trng, (_TEX, _TEX), 6) + 0.4 * smooth_noise(trng, (_TEX, _TEX), 1.8)) * 0.5
    illumination = (1 + 0.12 * smooth_noise(trng, (h, w), max(h, w) / 1.5)).astype(np.float32)
    return CellScene(
        n_frames=n_frames, size=(h, w), tracks=tracks, modality=modality, bit_depth=bit_depth,
        texture=texture.astype(np.float32), illumination=illumination,
        bleach_tau=float(bleach_tau if bleach_tau is not None else 3 * max(n_frames, 1)),
        photons=photons, seed=seed, by_frame=by_frame,
    )


def lineage_from_labels(labels: np.ndarray, scene: CellScene) -> dict[int, tuple[int, int, int]]:
    """id -> (parent id or 0, first frame, last frame) over the frames where the id is visible."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for t in range(labels.shape[0]):
        for i in np.unique(labels[t]):
            if i == 0:
                continue
            first.setdefault(int(i), t)
            last[int(i)] = t
    parent = {tr.id: tr.parent for tr in scene.tracks}
    return {i: (parent.get(i, 0), first[i], last[i]) for i in sorted(first)}


def cell_video(
    n_frames: int = 40,
    size: tuple[int, int] = (256, 256),
    n_cells: int = 30,
    seed: int = 0,
    modality: str = "phase",
    bit_depth: int = 16,
    **options: float | tuple[float, float],
) -> SyntheticVideo:
    """Render a microscopy-like time-lapse: frames (T, H, W) uint16/uint8, labels, lineage."""
    scene = cell_scene(n_frames, size, n_cells, seed, modality, bit_depth, **options)  # type: ignore[arg-type]
    frames, labels = render_all(scene)
    return SyntheticVideo(
        name=f"cells-{modality}-{seed:04d}", frames=frames, labels=labels,
        lineage=lineage_from_labels(labels, scene),
        info={"kind": "cells", "modality": modality, "bit_depth": bit_depth, "seed": seed},
    )


def under_root_ids(labels: np.ndarray, lineage: dict[int, tuple[int, int, int]]) -> np.ndarray:
    """The labels with every daughter under its root cell's id (the id of its first ancestor in
    ``lineage``): what a method that follows each painted cell without error gives, a division kept
    under one id, which `napari_vos.divisions.split_divisions` takes apart again."""
    labels = np.asarray(labels)
    lut = np.arange(int(labels.max(initial=0)) + 1, dtype=labels.dtype)
    for i in lineage:
        root = i
        while lineage.get(root, (0,))[0]:
            root = lineage[root][0]
        if i < len(lut):
            lut[i] = root
    return lut[labels]
