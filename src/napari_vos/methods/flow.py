"""The weight-free floor: propagate the labels by dense optical flow (``--method flow``).

Every table in this project needs the classical baseline a learned method has to beat: no
appearance model, no memory, just "move the last mask along the motion". For each new frame
the backward flow (new frame -> previous frame) is estimated on the grey image at a reduced size
(`flow_side`, default 256 px on the longer side) with scikit-image's iterative Lucas-Kanade
(`optical_flow_ilk`, default) or TV-L1 (`optical_flow_tvl1`); it is upsampled to the working
resolution and each object's previous mask is pulled along it (`scipy.ndimage.map_coordinates`,
bilinear, only inside the region the object can reach, so many small cells stay cheap). The
engine aggregates the objects and hands the result back through `update`, which keeps the
winning labels as crisp one-hot masks so repeated bilinear warps do not blur them away.

Intermediate map: ``flow_magnitude`` (1, h, w), the motion in working-resolution pixels.
numpy/scikit-image do the work; torch is only the engine's tensor interface.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from scipy import ndimage as ndi

from napari_vos.methods.base import MethodBase, Step

__all__ = ["FlowMethod", "estimate_flow", "warp_masks"]


def _grey(image: torch.Tensor) -> np.ndarray:
    return image.detach().float().mean(0).cpu().numpy().astype(np.float32)


def estimate_flow(reference: np.ndarray, moving: np.ndarray, algorithm: str = "ilk",
                  num_warp: int = 3) -> np.ndarray:
    """Flow (2, H, W) (rows, cols) with reference[r, c] ~ moving[r + v, c + u] (skimage convention)."""
    from skimage.registration import optical_flow_ilk, optical_flow_tvl1

    if algorithm == "tvl1":
        return optical_flow_tvl1(reference, moving, num_warp=num_warp)
    if algorithm == "ilk":
        return optical_flow_ilk(reference, moving, radius=7, num_warp=num_warp)
    raise ValueError(f"flow algorithm must be 'tvl1' or 'ilk', got {algorithm!r}")


def warp_masks(masks: np.ndarray, flow: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    """Pull each (K, H, W) mask along `flow` (2, H, W): out[k, r, c] = masks[k, r + v, c + u].

    Work is restricted per object to its support grown by the largest displacement.
    """
    k, h, w = masks.shape
    out = np.zeros_like(masks, dtype=np.float32)
    reach = int(np.ceil(np.abs(flow).max())) + 2 if flow.size else 2
    rows = np.arange(h, dtype=np.float32)[:, None]
    cols = np.arange(w, dtype=np.float32)[None, :]
    for i in range(k):
        support = masks[i] > threshold
        if not support.any():
            continue
        r_idx = np.nonzero(support.any(1))[0]
        c_idx = np.nonzero(support.any(0))[0]
        y0, y1 = max(0, r_idx[0] - reach), min(h, r_idx[-1] + 1 + reach)
        x0, x1 = max(0, c_idx[0] - reach), min(w, c_idx[-1] + 1 + reach)
        coords = np.stack([
            rows[y0:y1] + flow[0, y0:y1, x0:x1],
            cols[:, x0:x1] + flow[1, y0:y1, x0:x1],
        ])
        out[i, y0:y1, x0:x1] = ndi.map_coordinates(masks[i], coords, order=1, mode="constant", cval=0.0)
    return out


class FlowMethod(MethodBase):
    """Optical-flow label propagation (weight-free baseline).

    Options: flow ("ilk" | "tvl1"), flow_side (longer side, px, of the flow computation),
    num_warp (warping iterations per pyramid level). The defaults were chosen on generated
    natural videos, see docs/benchmarks.md ("flow: choice of defaults").
    """

    name: ClassVar[str] = "flow"
    needs_checkpoint: ClassVar[bool] = False
    map_names: ClassVar[tuple[str, ...]] = ("flow_magnitude",)

    def __init__(self, device: torch.device | str = "cpu", flow: str = "ilk", flow_side: int = 256,
                 num_warp: int = 3, seed: int = 0, **options: Any) -> None:
        super().__init__(device, **options)
        if flow not in ("tvl1", "ilk"):
            raise ValueError(f"flow must be 'tvl1' or 'ilk', got {flow!r}")
        self.flow = flow
        self.flow_side = int(flow_side)
        self.num_warp = int(num_warp)
        self._grey: np.ndarray | None = None
        self._masks: np.ndarray | None = None

    def _small(self, grey: np.ndarray) -> np.ndarray:
        h, w = grey.shape
        s = min(1.0, self.flow_side / max(h, w))
        if s >= 1.0:
            return grey
        return ndi.zoom(grey, s, order=1, grid_mode=True, mode="nearest")

    def start(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        self._grey = self._small(_grey(image))
        self._masks = objects.detach().float().cpu().numpy().astype(np.float32)

    def remember(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        self.start(image, objects)

    def step(self, image: torch.Tensor) -> Step:
        if self._grey is None or self._masks is None:
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
        probs = warp_masks(self._masks, flow)
        self._grey = grey
        self._masks = (probs > 0.5).astype(np.float32)  # replaced by the aggregate in update()
        magnitude = np.hypot(flow[0], flow[1]).astype(np.float32)[None]
        return Step(
            probs=torch.from_numpy(np.clip(probs, 0.0, 1.0)).to(image.device),
            maps={"flow_magnitude": torch.from_numpy(magnitude).to(image.device)},
        )

    def update(self, probs: torch.Tensor) -> None:
        """Keep the aggregated winner of every pixel as crisp one-hot masks for the next warp."""
        p = probs.detach().float().cpu().numpy()
        if p.shape[0] == 0:
            return
        background = 1.0 - p.sum(0)
        winner = np.argmax(np.concatenate([background[None], p]), axis=0)
        self._masks = np.stack([(winner == k + 1) for k in range(p.shape[0])]).astype(np.float32)
