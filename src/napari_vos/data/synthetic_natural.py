"""Natural-like synthetic videos with exact masks (numpy + scipy only).

Follows the synthetic-video recipes of RGMP (seed 002: objects cut from images with masks,
random transforms, pasted on other images as backgrounds, occlusion by other objects) and
A-GAME's SynthVOS (seed 003: 1-5 salient objects moved across a background image), extended
to smooth video: every object follows a smooth affine trajectory (translation with bounces,
rotation, scale change) plus a smooth non-rigid deformation; depth orders drift so objects
pass in front of each other (occlusion and re-appearance); similar-looking distractors
(same source object, or same colours) move among the targets; the camera pans/zooms/rolls and
the lighting changes over time.

Foregrounds and backgrounds come from a folder of real frames with masks (`source_dir`, any
layout `open_dataset` reads, e.g. DAVIS-2016 train), or, without one, from procedural textures
(`textures.py`) so the built-in demo and tests need no data.

Labels are exact: they are the pixels where each object's own warped alpha >= 0.5 after depth
compositing, so occluded parts are removed. A distractor is background (0) but hides what is
behind it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.transform import warp

from napari_vos.data.frames import FrameSource
from napari_vos.data.synthetic_types import SyntheticVideo, render_all
from napari_vos.data.textures import random_colours, random_texture, smooth_noise

__all__ = ["NaturalScene", "natural_scene", "natural_video"]


def _rot(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s], [s, c]], dtype=np.float64)


@dataclass
class _Sprite:
    rgb: np.ndarray  # (h, w, 3) float32 in [0, 1]
    alpha: np.ndarray  # (h, w) float32 in [0, 1]
    label: int  # object id, 0 for a distractor
    pos0: np.ndarray  # (2,) xy world position at t=0
    vel: np.ndarray  # (2,) xy pixels/frame
    lo: np.ndarray  # (2,) xy bounce box
    hi: np.ndarray
    angle0: float
    spin: float  # rad/frame
    wobble: float  # rad amplitude
    scale_amp: float
    scale_freq: float
    phase: np.ndarray  # (4,) random phases
    deform_amp: float  # pixels (sprite coords)
    deform_k: np.ndarray  # (2, 2) spatial frequency vectors for dx, dy
    deform_w: float  # rad/frame
    depth0: float
    depth_amp: float
    depth_freq: float

    def pose(self, t: int) -> tuple[np.ndarray, float, float]:
        """World position (xy), angle and scale at frame t (closed form, so frames are independent)."""
        span = self.hi - self.lo
        raw = self.pos0 - self.lo + self.vel * t
        tri = np.mod(raw, 2 * span)
        pos = self.lo + np.where(tri > span, 2 * span - tri, tri)  # bounce inside [lo, hi]
        angle = self.angle0 + self.spin * t + self.wobble * np.sin(0.07 * t + self.phase[0])
        scale = float(np.exp(self.scale_amp * (np.sin(self.scale_freq * t + self.phase[1]) - np.sin(self.phase[1]))))
        return pos, float(angle), scale

    def depth(self, t: int) -> float:
        return self.depth0 + self.depth_amp * np.sin(self.depth_freq * t + self.phase[2])


@dataclass
class NaturalScene:
    """All random choices of one natural-like video; `render(t)` draws frame t from them."""

    n_frames: int
    size: tuple[int, int]
    background: np.ndarray  # (Hc, Wc, 3) float32 canvas, larger than the frame
    sprites: list[_Sprite]
    cam_amp: np.ndarray  # (2,) pan amplitude (px)
    cam_freq: np.ndarray  # (2,)
    zoom_amp: float
    roll_amp: float
    light_amp: float
    light_grad: float
    noise: float
    phase: np.ndarray  # (6,)
    seed: int

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (*self.size, 3)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8)

    def _camera(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Affine frame(xy) -> world(xy): w = M p + b."""
        h, w = self.size
        c = self.cam_amp * (np.sin(self.cam_freq * t + self.phase[:2]) - np.sin(self.phase[:2]))
        z = np.exp(self.zoom_amp * (np.sin(0.05 * t + self.phase[2]) - np.sin(self.phase[2])))
        r = self.roll_amp * (np.sin(0.04 * t + self.phase[3]) - np.sin(self.phase[3]))
        centre = np.array([w / 2, h / 2])
        m = _rot(-r) / z
        b = centre + c - m @ centre
        return m, b

    def render(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame t as (H, W, 3) uint8 and its (H, W) int32 labels."""
        h, w = self.size
        m_c, b_c = self._camera(t)
        hc, wc = self.background.shape[:2]
        off = np.array([(wc - w) / 2, (hc - h) / 2])
        # background: skimage's affine fast path takes the output(xy) -> input(xy) matrix
        inverse = np.eye(3)
        inverse[:2, :2] = m_c
        inverse[:2, 2] = b_c + off
        img = np.empty((h, w, 3), dtype=np.float32)
        for ch in range(3):
            img[..., ch] = warp(
                self.background[..., ch], inverse, output_shape=(h, w), order=1,
                mode="reflect", preserve_range=True,
            )
        labels = np.zeros((h, w), dtype=np.int32)
        for sp in sorted(self.sprites, key=lambda s: s.depth(t)):
            self._paste(sp, t, m_c, b_c, img, labels)
        img = self._light(t, img)
        return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), labels

    def _paste(self, sp: _Sprite, t: int, m_c: np.ndarray, b_c: np.ndarray, img: np.ndarray, labels: np.ndarray) -> None:
        h, w = self.size
        pos, angle, scale = sp.pose(t)
        # frame p -> sprite coords u' (centred): u' = R(-a)/s (M_c p + b_c - pos)
        r_inv = _rot(-angle) / scale
        m_o = r_inv @ m_c
        b_o = r_inv @ (b_c - pos)
        sh, sw = sp.alpha.shape
        margin = sp.deform_amp + 2
        corners = np.array(
            [[-sw / 2 - margin, -sh / 2 - margin], [sw / 2 + margin, -sh / 2 - margin],
             [-sw / 2 - margin, sh / 2 + margin], [sw / 2 + margin, sh / 2 + margin]]
        )
        m_inv = np.linalg.inv(m_o)
        fc = (corners - b_o) @ m_inv.T
        x0, y0 = np.floor(fc.min(0)).astype(int)
        x1, y1 = np.ceil(fc.max(0)).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 <= x0 or y1 <= y0:
            return
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        ux = m_o[0, 0] * xx + m_o[0, 1] * yy + b_o[0]
        uy = m_o[1, 0] * xx + m_o[1, 1] * yy + b_o[1]
        if sp.deform_amp > 0:
            ph = sp.deform_w * t
            kx, ky = sp.deform_k
            dx = sp.deform_amp * np.sin(kx[0] * ux + kx[1] * uy + ph + sp.phase[3])
            dy = sp.deform_amp * np.sin(ky[0] * ux + ky[1] * uy + 1.3 * ph + sp.phase[0])
            ux = ux - dx
            uy = uy - dy
        coords = np.stack([uy + (sh - 1) / 2, ux + (sw - 1) / 2])
        a = ndi.map_coordinates(sp.alpha, coords, order=1, mode="constant", cval=0.0)
        inside = a > 1e-3
        if not inside.any():
            return
        region = img[y0:y1, x0:x1]
        for ch in range(3):
            col = ndi.map_coordinates(sp.rgb[..., ch], coords, order=1, mode="nearest")
            region[..., ch] += a * (col - region[..., ch])
        lab = labels[y0:y1, x0:x1]
        lab[a >= 0.5] = sp.label

    def _light(self, t: int, img: np.ndarray) -> np.ndarray:
        h, w = self.size
        gain = 1 + self.light_amp * np.sin(0.06 * t + self.phase[4])
        ang = self.phase[5] + 0.02 * t
        yy = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
        xx = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
        ramp = 1 + self.light_grad * (np.cos(ang) * xx + np.sin(ang) * yy)
        img *= (gain * ramp)[..., None]
        if self.noise > 0:
            rng = np.random.default_rng((self.seed, t))
            img += self.noise * rng.standard_normal((h, w, 1), dtype=np.float32)
        return img


# ----------------------------------------------------------------------------------- sprites


def _blob_sprite(rng: np.random.Generator, side: int, colours: np.ndarray | None = None,
                 kind: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A procedural object: a smooth star-shaped blob with a shaded texture."""
    aspect = rng.uniform(0.5, 1.0)
    sh, sw = (side, max(8, int(side * aspect))) if rng.random() < 0.5 else (max(8, int(side * aspect)), side)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    cy, cx = (sh - 1) / 2, (sw - 1) / 2
    ny, nx = (yy - cy) / (sh / 2), (xx - cx) / (sw / 2)
    rho = np.hypot(nx, ny)
    theta = np.arctan2(ny, nx)
    radius = np.full_like(rho, 0.82)
    for k in range(2, 6):
        radius += rng.uniform(0, 0.22 / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    radius += 0.04 * smooth_noise(rng, (sh, sw), side / 3)
    px = side / 2
    alpha = np.clip((radius - rho) * px + 0.5, 0, 1).astype(np.float32)
    tex = random_texture(rng, (sh, sw), colours=colours, kind=kind)
    depth = np.sqrt(np.clip(1 - (rho / np.maximum(radius, 1e-3)) ** 2, 0, 1))
    light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6)])
    shade = 0.65 + 0.35 * depth + 0.25 * (light[0] * nx + light[1] * ny) * depth
    rgb = np.clip(tex * shade[..., None], 0, 1).astype(np.float32)
    return rgb, alpha


def _resize(img: np.ndarray, shape: tuple[int, int], order: int = 1) -> np.ndarray:
    factors = (shape[0] / img.shape[0], shape[1] / img.shape[1]) + (1,) * (img.ndim - 2)
    out = ndi.zoom(img, factors, order=order, mode="nearest", grid_mode=True)
    return out[: shape[0], : shape[1]]


class _Source:
    """Real frames with masks from a dataset folder: object cut-outs and backgrounds."""

    def __init__(self, source_dir: str | Path) -> None:
        from napari_vos.data.readers import open_dataset

        self.seqs = [s for s in open_dataset(source_dir) if s.annotated]
        if not self.seqs:
            raise ValueError(f"{source_dir}: no sequence with masks to cut objects from")
        self._sources = [FrameSource(s.frames) for s in self.seqs]

    def _frame(self, seq_index: int, t: int) -> np.ndarray:
        """Frame t of a source sequence, normalised as the engine does (data/frames.FrameSource)."""
        return self._sources[seq_index][t]

    def cutout(self, rng: np.random.Generator, side: int, seq_index: int | None = None,
               ) -> tuple[np.ndarray, np.ndarray, int]:
        for _ in range(20):
            si = int(rng.integers(len(self.seqs))) if seq_index is None else seq_index
            seq = self.seqs[si]
            t = int(rng.choice(seq.annotated))
            mask = seq.masks[t]
            ids = np.unique(mask)
            ids = ids[ids > 0]
            if ids.size == 0:
                continue
            obj = mask == int(rng.choice(ids))
            if obj.sum() < 64:
                continue
            rows, cols = np.nonzero(obj)
            y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
            image = self._frame(si, t)[y0:y1, x0:x1]
            alpha = ndi.gaussian_filter(obj[y0:y1, x0:x1].astype(np.float32), 0.6)
            k = side / max(y1 - y0, x1 - x0)
            shape = (max(4, round((y1 - y0) * k)), max(4, round((x1 - x0) * k)))
            rgb = np.clip(_resize(image, shape), 0, 1).astype(np.float32)
            return rgb, np.clip(_resize(alpha, shape), 0, 1).astype(np.float32), si
        raise ValueError("could not find a usable object mask in the source folder")

    def background(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        si = int(rng.integers(len(self.seqs)))
        img = self._frame(si, int(rng.integers(len(self.seqs[si]))))
        if rng.random() < 0.5:
            img = img[:, ::-1]
        h, w = img.shape[:2]
        k = max(shape[0] / h, shape[1] / w)
        return _resize(img, (max(shape[0], round(h * k)), max(shape[1], round(w * k))))[: shape[0], : shape[1]]


@lru_cache(maxsize=8)
def _source_for(path: str) -> _Source:
    """One `_Source` per folder: training draws thousands of clips from the same folder."""
    return _Source(path)


def _procedural_background(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Textured backdrop: a large-scale texture with a horizon-like gradient and a few patches."""
    h, w = shape
    base = random_texture(rng, shape, kind=str(rng.choice(["clouds", "gradient", "stripes", "clouds"])))
    sky = random_colours(rng, 2, saturation=0.35)
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    horizon = rng.uniform(0.2, 0.6)
    mix = np.clip((horizon - yy) * 4, 0, 1) * rng.uniform(0.3, 0.9)
    bg = base * (1 - mix) + (sky[0] * (1 - yy) + sky[1] * yy) * mix
    for _ in range(int(rng.integers(2, 6))):  # static background "things" (texture patches)
        side = int(min(h, w) * rng.uniform(0.1, 0.3))
        rgb, alpha = _blob_sprite(rng, side)
        y = int(rng.integers(0, max(1, h - rgb.shape[0])))
        x = int(rng.integers(0, max(1, w - rgb.shape[1])))
        a = alpha[..., None] * rng.uniform(0.6, 1.0)
        sl = bg[y : y + rgb.shape[0], x : x + rgb.shape[1]]
        sl += a[: sl.shape[0], : sl.shape[1]] * (rgb[: sl.shape[0], : sl.shape[1]] - sl)
    return np.clip(bg, 0, 1).astype(np.float32)


# ------------------------------------------------------------------------------------ scene


def natural_scene(
    n_frames: int = 40,
    size: tuple[int, int] = (240, 320),
    n_objects: int = 1,
    seed: int = 0,
    source_dir: str | Path | None = None,
    distractors: bool | int = True,
    object_size: tuple[float, float] = (0.25, 0.5),
    speed: tuple[float, float] = (0.004, 0.02),
    deform: float = 0.05,
    camera: bool = True,
    lighting: bool = True,
    noise: float = 0.01,
) -> NaturalScene:
    """Draw every random choice of a natural-like video (nothing is rendered yet).

    object_size: object's longest side as a fraction of min(H, W); speed: pixels per frame as a
    fraction of max(H, W); deform: non-rigid amplitude as a fraction of the object size.
    distractors: True for 1..2 similar-looking distractors, an int for that many, False for none.
    """
    if n_objects < 1:
        raise ValueError("n_objects must be >= 1")
    rng = np.random.default_rng(seed)
    h, w = size
    source = _source_for(str(Path(source_dir).resolve())) if source_dir is not None else None
    canvas = (int(h * 1.5) + 2, int(w * 1.5) + 2)
    background = source.background(rng, canvas) if source else _procedural_background(rng, canvas)
    n_dis = (int(rng.integers(1, 3)) if distractors is True else int(distractors)) if distractors else 0
    side0 = min(h, w)
    sprites_art: list[tuple[np.ndarray, np.ndarray, int]] = []
    looks: list[tuple[np.ndarray, str, int]] = []
    for k in range(n_objects):
        side = int(side0 * rng.uniform(*object_size) / np.sqrt(max(1, n_objects) / 2 + 0.5))
        side = max(side, 12)
        if source:
            rgb, alpha, si = source.cutout(rng, side)
            looks.append((np.empty(0), "", si))
        else:
            colours = random_colours(rng, int(rng.integers(2, 4)), saturation=0.7)
            kind = str(rng.choice(["clouds", "stripes", "checks", "gradient"]))
            rgb, alpha = _blob_sprite(rng, side, colours, kind)
            looks.append((colours, kind, -1))
        sprites_art.append((rgb, alpha, k + 1))
    for _ in range(n_dis):
        colours, kind, si = looks[int(rng.integers(len(looks)))]
        side = max(12, int(side0 * rng.uniform(*object_size) / np.sqrt(max(1, n_objects) / 2 + 0.5)))
        if source:
            rgb, alpha, _ = source.cutout(rng, side, seq_index=si)  # same object, other frame
        else:
            jitter = np.clip(colours + rng.normal(0, 0.06, colours.shape), 0, 1).astype(np.float32)
            rgb, alpha = _blob_sprite(rng, side, jitter, kind)
        sprites_art.append((rgb, alpha, 0))

    best: NaturalScene | None = None
    for attempt in range(20):  # re-draw motion until every target is visible in frame 0
        sprites = []
        n_all = len(sprites_art)
        depth_order = rng.permutation(n_all)
        for i, (rgb, alpha, label) in enumerate(sprites_art):
            sh, sw = alpha.shape
            radius = 0.35 * max(sh, sw)
            lo = np.array([radius * 0.3, radius * 0.3])
            hi = np.array([w - radius * 0.3, h - radius * 0.3])
            lo, hi = np.minimum(lo, hi - 1), np.maximum(hi, lo + 1)
            direction = rng.uniform(0, 2 * np.pi)
            v = rng.uniform(*speed) * max(h, w)
            kmag = 2 * np.pi / (max(sh, sw) * rng.uniform(0.6, 1.4))
            dirs = rng.uniform(0, 2 * np.pi, 2)
            sprites.append(
                _Sprite(
                    rgb=rgb, alpha=alpha, label=label,
                    pos0=rng.uniform(lo + 0.15 * (hi - lo), hi - 0.15 * (hi - lo)),
                    vel=v * np.array([np.cos(direction), np.sin(direction)]),
                    lo=lo, hi=hi,
                    angle0=rng.uniform(-0.3, 0.3), spin=rng.normal(0, 0.008), wobble=rng.uniform(0, 0.15),
                    scale_amp=rng.uniform(0.05, 0.3), scale_freq=rng.uniform(0.02, 0.08),
                    phase=rng.uniform(0, 2 * np.pi, 4),
                    deform_amp=deform * max(sh, sw) * rng.uniform(0.3, 1.0),
                    deform_k=np.stack([kmag * np.array([np.cos(d), np.sin(d)]) for d in dirs]),
                    deform_w=rng.uniform(0.05, 0.2),
                    depth0=float(depth_order[i]), depth_amp=rng.uniform(0.3, 1.5) if n_all > 1 else 0.0,
                    depth_freq=rng.uniform(0.02, 0.1),
                )
            )
        scene = NaturalScene(
            n_frames=n_frames, size=(h, w), background=background, sprites=sprites,
            cam_amp=rng.uniform(0, 0.12, 2) * np.array([w, h]) if camera else np.zeros(2),
            cam_freq=rng.uniform(0.01, 0.05, 2),
            zoom_amp=rng.uniform(0, 0.12) if camera else 0.0,
            roll_amp=rng.uniform(0, 0.06) if camera else 0.0,
            light_amp=rng.uniform(0.05, 0.2) if lighting else 0.0,
            light_grad=rng.uniform(0, 0.3) if lighting else 0.0,
            noise=noise, phase=rng.uniform(0, 2 * np.pi, 6), seed=seed,
        )
        best = scene
        _, lab0 = scene.render(0)
        counts = np.bincount(lab0.ravel(), minlength=n_objects + 1)
        full = [float((s.alpha >= 0.5).sum()) * s.pose(0)[2] ** 2 for s in sprites if s.label > 0]
        if all(counts[k + 1] >= 0.5 * full[k] for k in range(n_objects)):
            break
    assert best is not None
    return best


def natural_video(
    n_frames: int = 40,
    size: tuple[int, int] = (240, 320),
    n_objects: int = 1,
    seed: int = 0,
    source_dir: str | Path | None = None,
    distractors: bool | int = True,
    **options: float | bool | tuple[float, float],
) -> SyntheticVideo:
    """Render a natural-like video: frames (T, H, W, 3) uint8, labels (T, H, W) int32 (ids 1..K).

    Same arguments as `natural_scene`; the same seed always gives the same video.
    """
    scene = natural_scene(n_frames, size, n_objects, seed, source_dir, distractors, **options)  # type: ignore[arg-type]
    frames, labels = render_all(scene)
    return SyntheticVideo(
        name=f"natural-{seed:04d}", frames=frames, labels=labels,
        info={"kind": "natural", "seed": seed, "n_objects": n_objects,
              "source": str(source_dir) if source_dir else "procedural"},
    )
