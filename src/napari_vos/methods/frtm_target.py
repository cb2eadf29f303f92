"""FRTM's discriminative target model D(x) = w2 * (w1 * x) and its loss (seed 001, eqs. 2 and 4).

One target model per object, all K solved together: w1 is (K, c, C) (1x1 conv C -> c), w2 is
(K, c, 3, 3) (3x3 conv c -> 1). The loss is the weighted least-squares regression of the
(upsampled) scores to the labels with the pixel weighting v of eq. (4) plus L2 regularisation;
it is minimised by Gauss-Newton + CG (nn.gauss_newton). Scores and fits run in float32 even
under a session's reduced-precision autocast: the least-squares sums leave the float16 range.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from napari_vos.nn.gauss_newton import gauss_newton
from napari_vos.nn.precision import at_least_float32, full_precision


def _autograd_ready(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """Detached tensors usable by autograd (inference-mode tensors are cloned outside inference mode),
    half-precision ones (a bf16/fp16 memory) widened to float32."""
    with torch.inference_mode(False):
        return [t.clone() if t.is_inference() else t.detach() for t in map(at_least_float32, tensors)]


def pixel_weights(labels: torch.Tensor, kappa_min: float = 0.1) -> torch.Tensor:
    """Eq. (4): v = kappa / kappa_hat on target pixels, (1 - kappa) / (1 - kappa_hat) elsewhere.

    labels: (..., H, W) in [0, 1]; kappa_hat is the target fraction of each label map and
    kappa = max(kappa_min, kappa_hat). Soft labels interpolate between the two weights.
    """
    kappa_hat = labels.flatten(-2).mean(-1).clamp(1e-6, 1 - 1e-6)[..., None, None]
    kappa = torch.maximum(kappa_hat, torch.full_like(kappa_hat, kappa_min))
    w_fg = kappa / kappa_hat
    w_bg = (1 - kappa) / (1 - kappa_hat)
    return labels * w_fg + (1 - labels) * w_bg


def apply_w1(w1: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """First layer for all objects: (K, c, C) on (M, C, h, w) -> (M, K*c, h, w).

    Features shared by the K problems are (M, C, h, w) (one video, K objects); per-problem
    features are (K, M, C, h, w) (training: K different sequences solved in one batch).
    """
    k, c, C = w1.shape
    if features.ndim == 5:
        _, m, _, h, w = features.shape
        return torch.einsum("kdc,kmchw->mkdhw", w1, features).reshape(m, k * c, h, w)
    # shared features: one 1x1 convolution with the K stacked filters (oneDNN/cuDNN run it in the
    # features' channels-last layout; as an einsum it was a permuting bmm, 2x slower on the CPU)
    return F.conv2d(features, w1.reshape(k * c, C, 1, 1))


def apply_w2(w2: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """Second layer, grouped per object: (K, c, 3, 3) on (M, K*c, h, w) -> (M, K, h, w)."""
    k = w2.shape[0]
    return F.conv2d(hidden, w2, padding=w2.shape[-1] // 2, groups=k)


def target_scores(w1: torch.Tensor, w2: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """D(x): (M, C, h, w) or per-problem (K, M, C, h, w) features -> (M, K, h, w) coarse target scores."""
    return apply_w2(w2, apply_w1(w1, features))


@dataclass
class TargetModelSettings:
    """Sizes and optimiser iteration counts (section 3.5)."""

    channels: int = 96
    kernel: int = 3
    n_gn: int = 4
    n_cg_init: int = 5
    n_cg: int = 10
    n_cg_update: int = 5
    reg_w1: float = 1e-2
    reg_w2: float = 1e-2
    kappa_min: float = 0.1
    objects_per_solve: int = 8  # objects solved together; bounds memory with many objects (cells)


class TargetModel:
    """Holds w1, w2 for K objects and fits them to a (features, labels, weights) memory."""

    def __init__(self, settings: TargetModelSettings, in_channels: int, n_objects: int,
                 device: torch.device, generator: torch.Generator | None = None) -> None:
        self.settings = settings
        c = settings.channels
        std1 = (1.0 / in_channels) ** 0.5
        std2 = (1.0 / (c * settings.kernel**2)) ** 0.5
        self.w1 = (torch.randn(n_objects, c, in_channels, generator=generator) * std1).to(device)
        self.w2 = (torch.randn(n_objects, c, settings.kernel, settings.kernel, generator=generator) * std2).to(device)

    def _chunks(self) -> list[slice]:
        k, n = self.w1.shape[0], max(1, self.settings.objects_per_solve)
        return [slice(i, min(i + n, k)) for i in range(0, k, n)]

    @staticmethod
    def _features_of(features: torch.Tensor, chunk: slice) -> torch.Tensor:
        return features[chunk] if features.ndim == 5 else features

    def scores(self, features: torch.Tensor) -> torch.Tensor:
        """D(x) for every object, in float32: (M, K, h, w)."""
        with full_precision(features):
            features = at_least_float32(features)
            return torch.cat([target_scores(self.w1[c], self.w2[c], self._features_of(features, c))
                              for c in self._chunks()], dim=1)

    def _data_residual(self, scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """sqrt(gamma) v (y - U(D(x))), returned object-first: (K, M, hl, wl)."""
        up = F.interpolate(scores, size=labels.shape[-2:], mode="bilinear", align_corners=False)
        v = pixel_weights(labels, self.settings.kappa_min)
        r = weights.sqrt().view(-1, 1, 1, 1) * v * (labels - up)
        return r.transpose(0, 1)

    def fit(self, features: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, initial: bool) -> None:
        """Gauss-Newton on both layers (initial: N_CGi then N_CG per step) over the memory.

        The objects are independent problems; they are solved ``objects_per_solve`` at a time.
        """
        s = self.settings
        iters = [s.n_cg_init] + [s.n_cg] * (s.n_gn - 1) if initial else [s.n_cg] * s.n_gn
        features, labels, weights = _autograd_ready(features, labels, weights)
        w1, w2 = self.w1.clone(), self.w2.clone()
        with full_precision(features):
            for c in self._chunks():
                feats, y = self._features_of(features, c), labels[:, c]

                def residuals(a: torch.Tensor, b: torch.Tensor, feats=feats, y=y) -> list[torch.Tensor]:
                    data = self._data_residual(target_scores(a, b, feats), y, weights)
                    return [data, (s.reg_w1**0.5) * a, (s.reg_w2**0.5) * b]

                w1[c], w2[c] = gauss_newton(residuals, [self.w1[c], self.w2[c]], iters)
        self.w1, self.w2 = w1, w2

    def update(self, features: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, n_gn: int = 1) -> None:
        """The every-t_s update: w1 fixed, w2 refit with N_CGu CG iterations per GN step."""
        s = self.settings
        features, labels, weights = _autograd_ready(features, labels, weights)
        w2 = self.w2.clone()
        with full_precision(features):
            for c in self._chunks():
                hidden = apply_w1(self.w1[c], self._features_of(features, c))
                y = labels[:, c]

                def residuals(b: torch.Tensor, hidden=hidden, y=y) -> list[torch.Tensor]:
                    data = self._data_residual(apply_w2(b, hidden), y, weights)
                    return [data, (s.reg_w2**0.5) * b]

                (w2[c],) = gauss_newton(residuals, [self.w2[c]], [s.n_cg_update] * n_gn)
        self.w2 = w2

    def loss(self, features: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Eq. (2) per object (K,), for monitoring and tests."""
        s = self.settings
        data = self._data_residual(self.scores(features), labels, weights)
        return 0.5 * (data.flatten(1).pow(2).sum(1) + s.reg_w1 * self.w1.flatten(1).pow(2).sum(1)
                      + s.reg_w2 * self.w2.flatten(1).pow(2).sum(1))
