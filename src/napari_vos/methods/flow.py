"""The weight-free floor: propagate the labels by dense optical flow (``--method flow``).

Every table in this project needs the classical baseline a learned method has to beat: no
appearance model, no memory, just "move the last mask along the motion". For each new frame
the backward flow (new frame -> previous frame) is estimated on the grey image at a reduced size
(`flow_side`, default 256 px on the longer side) with scikit-image's iterative Lucas-Kanade
(`optical_flow_ilk`, default) or TV-L1 (`optical_flow_tvl1`); it is upsampled to the working
resolution and each object's previous mask is pulled along it (`scipy.ndimage.map_coordinates`,
bilinear, only inside the region the object can reach, so many small cells stay cheap). The
engine aggregates the objects and hands the result back through `update`, which keeps the
winning labels as one crisp label image (not K soft maps: repeated bilinear warps would blur
them away, and K full-size maps cost K times the memory).

Intermediate map: ``flow_magnitude`` (1, h, w), the motion in working-resolution pixels.
numpy/scikit-image do the work; torch is only the engine's tensor interface.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from scipy import ndimage as ndi

from napari_vos.checks import whole_number
from napari_vos.methods.base import MethodBase, Step

__all__ = ["FlowMethod", "estimate_flow", "warp_labels", "winners"]


def _grey(image: torch.Tensor) -> np.ndarray:
    return image.detach().float().mean(0).cpu().numpy().astype(np.float32)


def estimate_flow(reference: np.ndarray, moving: np.ndarray, algorithm: str = "ilk",
                  num_warp: int = 3) -> np.ndarray:
    """Flow (2, H, W) (rows, cols) with reference[r, c] ~ moving[r + v, c + u] (skimage convention)."""
    from skimage.registration import optical_flow_ilk, optical_flow_tvl1

    if algorithm not in ("tvl1", "ilk"):
        raise ValueError(f"flow algorithm must be 'tvl1' or 'ilk', got {algorithm!r}")
    if min(reference.shape) < 2:  # a one-pixel side has no gradient to follow (numpy's gradient refuses it)
        return np.zeros((2, *reference.shape), dtype=np.float32)
    if algorithm == "tvl1":
        return optical_flow_tvl1(reference, moving, num_warp=num_warp)
    return optical_flow_ilk(reference, moving, radius=7, num_warp=num_warp)


def _boxes(labels: np.ndarray, k: int) -> list[tuple[slice, slice] | None]:
    """Bounding box of each id 1..k in a label image (None where absent)."""
    found = ndi.find_objects(labels, max_label=k)
    return list(found) + [None] * (k - len(found))


def warp_labels(labels: np.ndarray, n_objects: int, flow: np.ndarray) -> np.ndarray:
    """Pull each object of a label image (ids 1..K) along `flow` (2, H, W) -> (K, H, W) float32.

    out[k-1, r, c] = mask_k[r + v, c + u] (bilinear). Each object is warped only inside its box
    grown by the largest displacement, so hundreds of small cells cost little; the rest is 0.
    """
    h, w = labels.shape
    out = np.zeros((n_objects, h, w), dtype=np.float32)
    reach = int(np.ceil(np.abs(flow).max())) + 2 if flow.size else 2
    rows = np.arange(h, dtype=np.float32)[:, None]
    cols = np.arange(w, dtype=np.float32)[None, :]
    for k, box in enumerate(_boxes(labels, n_objects), start=1):
        if box is None:
            continue
        y0, y1 = max(0, box[0].start - reach), min(h, box[0].stop + reach)
        x0, x1 = max(0, box[1].start - reach), min(w, box[1].stop + reach)
        # the source window: wherever the flow in the destination window can point to
        sy0, sy1 = max(0, y0 - reach), min(h, y1 + reach)
        sx0, sx1 = max(0, x0 - reach), min(w, x1 + reach)
        src = (labels[sy0:sy1, sx0:sx1] == k).astype(np.float32)
        coords = np.stack([
            rows[y0:y1] + flow[0, y0:y1, x0:x1] - sy0,
            cols[:, x0:x1] + flow[1, y0:y1, x0:x1] - sx0,
        ])
        out[k - 1, y0:y1, x0:x1] = ndi.map_coordinates(src, coords, order=1, mode="constant", cval=0.0)
    return out


def winners(probs: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """Label image of the most probable class per pixel, background = 1 - sum(probs).

    Same as argmax over [background, probs] but visits each object only inside the box where its
    probability exceeds `eps`, which for many small objects is far cheaper than a full argmax.
    """
    k, h, w = probs.shape
    best = 1.0 - probs.sum(0)
    labels = np.zeros((h, w), dtype=np.int32)
    for i in range(k):
        rows = np.flatnonzero((probs[i] > eps).any(1))
        if rows.size == 0:
            continue
        cols = np.flatnonzero((probs[i, rows[0] : rows[-1] + 1] > eps).any(0))
        window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        sub = probs[i][window]
        b = best[window]
        better = sub > b
        b[better] = sub[better]
        labels[window][better] = i + 1
    return labels


class FlowMethod(MethodBase):
    """Optical-flow label propagation (weight-free baseline).

    Options: flow ("ilk" | "tvl1"), flow_side (longer side, px, of the flow computation),
    num_warp (warping iterations per pyramid level). The defaults were chosen on generated
    natural videos, see docs/benchmarks.md ("flow: choice of defaults").
    """

    name: ClassVar[str] = "flow"
    needs_checkpoint: ClassVar[bool] = False
    runs_network: ClassVar[bool] = False
    map_names: ClassVar[tuple[str, ...]] = ("flow_magnitude",)
    map_grids: ClassVar[dict[str, int | None]] = {"flow_magnitude": None}
    global_maps: ClassVar[tuple[str, ...]] = ("flow_magnitude",)

    def __init__(self, device: torch.device | str = "cpu", flow: str = "ilk", flow_side: int = 256,
                 num_warp: int = 3, seed: int = 0, **options: Any) -> None:
        super().__init__(device, seed=seed, **options)
        self.check_option_values({"flow": flow, "flow_side": flow_side, "num_warp": num_warp})
        self.flow = flow
        self.flow_side = int(flow_side)
        self.num_warp = int(num_warp)
        self._grey: np.ndarray | None = None
        self._labels: np.ndarray | None = None  # previous frame's objects as ids 1..K
        self._k = 0

    @classmethod
    def check_option_values(cls, options: dict[str, Any]) -> None:
        """The values a type cannot judge, checked when a Session is made (not at the first frame)."""
        flow = options.get("flow", "ilk")
        if flow not in ("tvl1", "ilk"):
            raise ValueError(f"flow must be 'tvl1' or 'ilk', got {flow!r}")
        side = options.get("flow_side", 256)
        if not whole_number(side) or side < 8:
            raise ValueError(f"flow_side must be a whole number of pixels >= 8, got {side!r}")
        warps = options.get("num_warp", 3)
        if not whole_number(warps) or warps < 1:  # 0 warps: no flow at all, the first mask on every frame
            raise ValueError(f"num_warp must be a whole number >= 1 (the flow's warping steps), got {warps!r}")

    def _small(self, grey: np.ndarray) -> np.ndarray:
        h, w = grey.shape
        s = min(1.0, self.flow_side / max(h, w))
        if s >= 1.0:
            return grey
        # a short side is shrunk to no fewer than 8 pixels: one factor made a 3 x 800 strip 1 x 256,
        # where no flow can be estimated
        factors = tuple(max(s, min(1.0, 8 / n)) for n in (h, w))
        return ndi.zoom(grey, factors, order=1, grid_mode=True, mode="nearest")

    def start(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        self._grey = self._small(_grey(image))
        obj = objects.detach().float().cpu().numpy()
        self._k = obj.shape[0]
        self._labels = winners(obj)

    def remember(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        self.start(image, objects)

    def step(self, image: torch.Tensor) -> Step:
        if self._grey is None or self._labels is None:
            raise RuntimeError("FlowMethod.step called before start()")
        grey = self._small(_grey(image))
        small = estimate_flow(grey, self._grey, self.flow, self.num_warp)  # current -> previous
        h, w = image.shape[-2:]
        sy, sx = h / grey.shape[0], w / grey.shape[1]
        if (sy, sx) != (1.0, 1.0):
            flow = np.stack([
                ndi.zoom(small[0], (sy, sx), order=1, grid_mode=True, mode="nearest")[:h, :w] * sy,
                ndi.zoom(small[1], (sy, sx), order=1, grid_mode=True, mode="nearest")[:h, :w] * sx,
            ])
            if flow.shape[1:] != (h, w):  # zoom rounding
                flow = np.pad(flow, ((0, 0), (0, h - flow.shape[1]), (0, w - flow.shape[2])), mode="edge")
        else:
            flow = small
        probs = warp_labels(self._labels, self._k, flow)
        self._grey = grey
        self._labels = winners(probs)  # replaced by the engine's aggregate in update()
        magnitude = np.hypot(flow[0], flow[1]).astype(np.float32)[None]
        return Step(
            probs=torch.from_numpy(probs).to(image.device),
            maps={"flow_magnitude": torch.from_numpy(magnitude).to(image.device)},
        )

    def update(self, probs: torch.Tensor) -> None:
        """Keep the aggregated winner of every pixel as crisp labels for the next warp."""
        p = probs.detach().float().cpu().numpy()
        if p.shape[0]:
            self._labels = winners(p)
