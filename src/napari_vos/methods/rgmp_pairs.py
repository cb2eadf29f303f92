"""Training pairs simulated from one still image with a mask (RGMP, seed 002, section 3.2).

RGMP's encoder needs a reference frame and a target frame holding the same object. From still
images they are simulated in two ways, chosen with equal probability during pre-training:

- **strategy 1**: one image and its object mask, two different random transformations
  (rotation, scaling, colour perturbation): a static scene seen under other camera angles,
  zoom and illumination;
- **strategy 2**: a foreground object cut from one image and pasted on another image's
  background, with two different random transformations of the foreground; the background
  image's own objects are drawn in front of it, which simulates occlusions.

For both, the target's guidance mask (standing in for the previous frame's estimate) is the
target mask deformed by a random affine transform (plus a little dilation/erosion, as in the
MaskTrack deformations the paper follows), and each image is cropped at random to a window that
holds at least half of its object. Online fine-tuning on the annotated frame (section 4.3) uses
strategy 1 on that frame. Everything is torch on one device, images (3, H, W) in [0, 1], masks
(H, W) in {0, 1}.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from napari_vos.nn.warp import affine


@dataclass
class Pair:
    """One training sample: reference image + mask, target image + mask + guidance; (C, h, w) each."""

    ref_image: torch.Tensor
    ref_mask: torch.Tensor
    image: torch.Tensor
    mask: torch.Tensor
    guidance: torch.Tensor


@dataclass(frozen=True)
class PairSettings:
    """Ranges of the random transformations (per image of a pair unless said otherwise)."""

    rotation: float = 15.0  # degrees
    scale: tuple[float, float] = (0.85, 1.15)
    translate: float = 0.08  # fraction of the canvas side (strategy 1: the whole image moves)
    fg_translate: float = 0.2  # fraction of the crop side (strategy 2: the pasted foreground moves)
    fg_size: tuple[float, float] = (0.3, 0.8)  # pasted object's longer side, fraction of the crop's shorter side
    colour: float = 0.12  # per-channel gain/offset perturbation
    guide_rotation: float = 8.0
    guide_scale: tuple[float, float] = (0.92, 1.08)
    guide_translate: float = 0.08  # fraction of the object's bounding box
    guide_coarsen: int = 3  # largest dilation/erosion radius of the guidance mask, pixels
    min_visible: float = 0.5  # a crop holds at least this fraction of the object
    occlusion: float = 0.5  # probability that the background's objects occlude (strategy 2)
    min_pixels: int = 16  # pairs whose object is smaller than this in a crop are rejected


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """(C, H, W) -> (C, h, w)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    kw = {"align_corners": False, "antialias": True} if mode == "bilinear" else {}
    return F.interpolate(x[None], size=size, mode=mode, **kw)[0]


def colour_perturbation(image: torch.Tensor, g: torch.Generator, strength: float) -> torch.Tensor:
    """Illumination change of (..., 3, H, W): per-channel gain and offset, a global gamma, clipped to [0, 1]."""
    if strength <= 0:
        return image
    c = image.shape[-3]
    gain = 1 + (torch.rand(c, 1, 1, generator=g) * 2 - 1).to(image) * strength
    offset = (torch.rand(c, 1, 1, generator=g) * 2 - 1).to(image) * strength * 0.5
    gamma = math.exp(_uniform(g, -strength, strength))
    return (image.clamp(0, 1) ** gamma * gain + offset).clamp(0, 1)


def _bbox(mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    ys = torch.nonzero(mask.any(1)).flatten()
    xs = torch.nonzero(mask.any(0)).flatten()
    if len(ys) == 0:
        return None
    return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1


def _centroid(mask: torch.Tensor) -> tuple[float, float]:
    """(x, y) centre of mass of a (H, W) mask (the image centre when empty)."""
    total = float(mask.sum())
    h, w = mask.shape
    if total <= 0:
        return (w - 1) / 2, (h - 1) / 2
    ys = torch.arange(h, dtype=mask.dtype, device=mask.device)
    xs = torch.arange(w, dtype=mask.dtype, device=mask.device)
    return float((mask.sum(0) * xs).sum() / total), float((mask.sum(1) * ys).sum() / total)


def crop_window(mask: torch.Tensor, size: tuple[int, int], g: torch.Generator, min_visible: float = 0.5,
                tries: int = 25) -> tuple[int, int]:
    """Top-left (y, x) of a random (h, w) window of a (H, W) mask holding >= min_visible of the object.

    Falls back to the window centred on the object when no random one does (an object much
    larger than the window).
    """
    H, W = mask.shape
    h, w = size
    if H < h or W < w:
        raise ValueError(f"cannot crop {size} from a {(H, W)} image")
    total = float(mask.sum())
    if total > 0:
        integral = F.pad(mask.float().cumsum(0).cumsum(1), (1, 0, 1, 0))
        for _ in range(tries):
            y0 = int(torch.randint(0, H - h + 1, (), generator=g))
            x0 = int(torch.randint(0, W - w + 1, (), generator=g))
            inside = float(integral[y0 + h, x0 + w] - integral[y0, x0 + w] - integral[y0 + h, x0] + integral[y0, x0])
            if inside >= min_visible * total:
                return y0, x0
    cx, cy = _centroid(mask.float())
    return int(min(max(round(cy - h / 2), 0), H - h)), int(min(max(round(cx - w / 2), 0), W - w))


def _crop(x: torch.Tensor, y0: int, x0: int, size: tuple[int, int]) -> torch.Tensor:
    return x[..., y0:y0 + size[0], x0:x0 + size[1]]


def _coarsen(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Dilate (radius > 0) or erode (radius < 0) a (1, H, W) mask with a square element."""
    if radius == 0:
        return mask
    k = 2 * abs(radius) + 1
    if radius > 0:
        return F.max_pool2d(mask[None], k, stride=1, padding=abs(radius))[0]
    return -F.max_pool2d(-mask[None], k, stride=1, padding=abs(radius))[0]


def deform_mask(mask: torch.Tensor, g: torch.Generator, settings: PairSettings = PairSettings()) -> torch.Tensor:
    """The simulated guidance: a random affine deformation of a (1, H, W) mask about its centre (+ coarsening)."""
    box = _bbox(mask[0] > 0.5)
    if box is None:
        return mask.clone()
    bh, bw = box[1] - box[0], box[3] - box[2]
    s = settings
    out = affine(mask, _uniform(g, -s.guide_rotation, s.guide_rotation),
                 (_uniform(g, -1, 1) * s.guide_translate * bw, _uniform(g, -1, 1) * s.guide_translate * bh),
                 _uniform(g, *s.guide_scale), center=_centroid(mask[0]))
    out = (out > 0.5).to(mask.dtype)
    if s.guide_coarsen > 0:
        out = _coarsen(out, int(torch.randint(-s.guide_coarsen, s.guide_coarsen + 1, (), generator=g)))
    return out


def fit_canvas(image: torch.Tensor, mask: torch.Tensor, size: tuple[int, int], g: torch.Generator,
               zoom: tuple[float, float] = (1.0, 1.5)) -> tuple[torch.Tensor, torch.Tensor]:
    """Rescale (image (C,H,W), mask (1,H,W)) so it covers a (h, w) crop and its object can fit in one.

    The scale is drawn in ``zoom`` times the smallest covering scale, reduced (not below it)
    when the object would become larger than the crop.
    """
    H, W = image.shape[-2:]
    h, w = size
    s_cover = max(h / H, w / W)
    s = s_cover * _uniform(g, *zoom)
    box = _bbox(mask[0] > 0.5)
    if box is not None:
        s_object = 0.9 * min(h / (box[1] - box[0]), w / (box[3] - box[2]))
        s = max(s_cover, min(s, s_object))
    out = (max(h, math.ceil(H * s)), max(w, math.ceil(W * s)))
    return _resize(image, out), (_resize(mask, out) > 0.5).to(mask.dtype)


def _view(image: torch.Tensor, mask: torch.Tensor, g: torch.Generator, s: PairSettings,
          translate: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One random camera view of a whole canvas: rotation, scaling, translation (same for image and mask)."""
    H, W = image.shape[-2:]
    params = (_uniform(g, -s.rotation, s.rotation),
              (_uniform(g, -1, 1) * translate * W, _uniform(g, -1, 1) * translate * H), _uniform(g, *s.scale))
    return affine(image, *params), (affine(mask, *params) > 0.5).to(mask.dtype)


def _finish(ref_image: torch.Tensor, ref_mask: torch.Tensor, image: torch.Tensor, mask: torch.Tensor,
            size: tuple[int, int], g: torch.Generator, s: PairSettings) -> Pair | None:
    """Guidance from the target mask, independent crops holding >= half the object, colour changes."""
    guidance = deform_mask(mask, g, s)
    ry, rx = crop_window(ref_mask[0], size, g, s.min_visible)
    ty, tx = crop_window(mask[0], size, g, s.min_visible)
    pair = Pair(colour_perturbation(_crop(ref_image, ry, rx, size), g, s.colour), _crop(ref_mask, ry, rx, size),
                colour_perturbation(_crop(image, ty, tx, size), g, s.colour), _crop(mask, ty, tx, size),
                _crop(guidance, ty, tx, size))
    if float(pair.ref_mask.sum()) < s.min_pixels or float(pair.mask.sum()) < s.min_pixels:
        return None
    return pair


def strategy1(image: torch.Tensor, mask: torch.Tensor, size: tuple[int, int], g: torch.Generator,
              settings: PairSettings = PairSettings()) -> Pair | None:
    """Two random transformations of one image (3,H,W) with its object mask (H,W); None if the object is lost."""
    canvas, cmask = fit_canvas(image, mask[None].float(), size, g)
    ref_image, ref_mask = _view(canvas, cmask, g, settings, settings.translate)
    tgt_image, tgt_mask = _view(canvas, cmask, g, settings, settings.translate)
    return _finish(ref_image, ref_mask, tgt_image, tgt_mask, size, g, settings)


def _place_foreground(image: torch.Tensor, mask: torch.Tensor, canvas_size: tuple[int, int], crop: tuple[int, int],
                      g: torch.Generator, s: PairSettings) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Cut the object out of (image, mask), scale it and place it on an empty canvas: (3,H,W), (1,H,W)."""
    box = _bbox(mask > 0.5)
    if box is None:
        return None
    y0, y1, x0, x1 = box
    obj_img, obj_mask = image[:, y0:y1, x0:x1], mask[None, y0:y1, x0:x1].float()
    side = _uniform(g, *s.fg_size) * min(crop)
    scale = side / max(y1 - y0, x1 - x0)
    oh, ow = max(2, round((y1 - y0) * scale)), max(2, round((x1 - x0) * scale))
    H, W = canvas_size
    oh, ow = min(oh, H), min(ow, W)
    obj_img, obj_mask = _resize(obj_img, (oh, ow)), _resize(obj_mask, (oh, ow))
    py = int(torch.randint(0, H - oh + 1, (), generator=g))
    px = int(torch.randint(0, W - ow + 1, (), generator=g))
    layer = torch.zeros(3, H, W, dtype=image.dtype, device=image.device)
    alpha = torch.zeros(1, H, W, dtype=image.dtype, device=image.device)
    layer[:, py:py + oh, px:px + ow] = obj_img
    alpha[:, py:py + oh, px:px + ow] = obj_mask
    return layer, alpha


def strategy2(fg_image: torch.Tensor, fg_mask: torch.Tensor, bg_image: torch.Tensor, bg_objects: torch.Tensor | None,
              size: tuple[int, int], g: torch.Generator, settings: PairSettings = PairSettings()) -> Pair | None:
    """A foreground object pasted on another image with two random transformations; the background's
    objects ``bg_objects`` (H,W, any object > 0) occlude it with probability ``settings.occlusion``."""
    s = settings
    occluders = torch.zeros_like(bg_image[:1]) if bg_objects is None else (bg_objects[None] > 0).to(bg_image.dtype)
    background, occluders = fit_canvas(bg_image, occluders, size, g, zoom=(1.0, 1.3))
    occluders = (occluders > 0.5).to(background.dtype)
    placed = _place_foreground(fg_image, fg_mask, tuple(background.shape[-2:]), size, g, s)
    if placed is None:
        return None
    layer, alpha = placed
    center = _centroid(alpha[0])
    views = []
    for _ in range(2):
        params = (_uniform(g, -s.rotation, s.rotation),
                  (_uniform(g, -1, 1) * s.fg_translate * size[1], _uniform(g, -1, 1) * s.fg_translate * size[0]),
                  _uniform(g, *s.scale))
        a = affine(alpha, *params, center=center).clamp(0, 1)
        composite = affine(layer, *params, center=center) * a + background * (1 - a)
        m = (a > 0.5).to(background.dtype)
        if float(torch.rand((), generator=g)) < s.occlusion and float(occluders.sum()) > 0:
            composite = torch.where(occluders > 0, background, composite)
            m = m * (1 - occluders)
        views.append((composite, m))
    (ref_image, ref_mask), (tgt_image, tgt_mask) = views
    return _finish(ref_image, ref_mask, tgt_image, tgt_mask, size, g, s)
