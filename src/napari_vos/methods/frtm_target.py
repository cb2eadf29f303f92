"""FRTM's discriminative target model D(x) = w2 * (w1 * x) and its loss (seed 001, eqs. 2 and 4).

One target model per object, all K solved together: w1 is (K, c, C) (1x1 conv C -> c), w2 is
(K, c, 3, 3) (3x3 conv c -> 1). The loss is the weighted least-squares regression of the
(upsampled) scores to the labels with the pixel weighting v of eq. (4) plus L2 regularisation;
it is minimised by Gauss-Newton + CG (nn.gauss_newton). Scores and fits run in float32 even
under a session's reduced-precision autocast: the least-squares sums leave the float16 range.

D is linear in x, so its two layers compose into one 3x3 filter per object,
f[k, C, o] = sum_d w2[k, d, o] w1[k, d, C], and D(x) = f * x: 9 instead of c = 96 products per
input channel and pixel. The fit keeps the paper's two factors (and their regularisers) and
differentiates through the composition by hand (`_TargetProblem`): J v is one convolution with
the filter's derivative f(v1, w2) + f(w1, v2), J^T u one filter gradient pushed back to w1 and w2.
The same Gauss-Newton steps as autograd over the two layers, with 1/10 of the arithmetic.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from napari_vos.nn.gauss_newton import Linearisation, gauss_newton
from napari_vos.nn.precision import at_least_float32, full_precision


def _autograd_ready(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """Detached tensors usable by autograd (inference-mode tensors are cloned outside inference mode),
    half-precision ones (a bf16/fp16 memory) widened to float32."""
    with torch.inference_mode(False):
        return [t.clone() if t.is_inference() else t.detach() for t in map(at_least_float32, tensors)]


def pixel_weights(labels: torch.Tensor, kappa_min: float = 0.1) -> torch.Tensor:
    """Eq. (4): v = kappa / kappa_hat on target pixels, (1 - kappa) / (1 - kappa_hat) elsewhere.

    labels: (..., H, W) in [0, 1]; eq. 4 is defined on binary labels, so the target pixels are those
    above 0.5 (soft labels, the engine's aggregated probabilities, stay the regression targets) and
    kappa_hat is their fraction of each label map, kappa = max(kappa_min, kappa_hat). Taking
    kappa_hat from the soft mass instead let one faint leftover cell (p = 0.05 after the object left)
    weigh 643 against 0.9 everywhere else (session 36). A map with no target pixel weighs every
    pixel 1 - kappa. The target pixels then carry a share kappa of the summed weights.
    """
    target = labels > 0.5
    kappa_hat = target.flatten(-2).to(labels.dtype).mean(-1)[..., None, None]
    kappa = torch.clamp(kappa_hat, min=kappa_min)
    w_fg = kappa / kappa_hat.clamp_min(1e-12)
    w_bg = (1 - kappa) / (1 - kappa_hat).clamp_min(1e-12)
    return torch.where(target, w_fg, w_bg)


def residual_pixel_weights(labels: torch.Tensor, kappa_min: float = 0.1) -> torch.Tensor:
    """sqrt(v): the weight of each pixel's residual, so that its squared error is weighted by eq. (4)'s v
    and the target's share of the loss is kappa, as eq. (4) intends (and the authors' code does);
    v itself inside eq. (2)'s norm gave a 0.1 %-of-the-frame object 93 % of the loss."""
    return pixel_weights(labels, kappa_min).sqrt()


def residual_weights(labels: torch.Tensor, weights: torch.Tensor, kappa_min: float) -> torch.Tensor:
    """sqrt(gamma) sqrt(v), the weights of eq. (2)'s data residual: (M, K, hl, wl)."""
    return weights.sqrt().view(-1, 1, 1, 1) * residual_pixel_weights(labels, kappa_min)


def upsample_scores(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """U: the stride-16 scores bilinearly resized to the labels' resolution."""
    return F.interpolate(scores, size=labels.shape[-2:], mode="bilinear", align_corners=False)


def composite_filter(w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """The two layers as one filter: (K, c, C) and (K, c, kh, kw) -> (K, C, kh, kw)."""
    return torch.einsum("kdyx,kdc->kcyx", w2, w1)


def filter_scores(filters: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Each object's (C, kh, kw) filter on shared (M, C, h, w) or its own (K, M, C, h, w)
    features -> (M, K, h, w), zero-padded like the second layer."""
    k, pad = filters.shape[0], filters.shape[-1] // 2
    if features.ndim == 5:
        _, m, c, h, w = features.shape
        return F.conv2d(features.transpose(0, 1).reshape(m, k * c, h, w), filters, padding=pad, groups=k)
    return F.conv2d(features, filters, padding=pad)


def target_scores(w1: torch.Tensor, w2: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """D(x) = w2 * (w1 * x): (M, C, h, w) or per-problem (K, M, C, h, w) features -> (M, K, h, w)
    coarse target scores, computed as the composite filter's one convolution."""
    return filter_scores(composite_filter(w1, w2), features)


class _TargetProblem:
    """Eq. (2) for a group of objects, linearised by hand through the composite filter.

    Parameters are [w1, w2], or [w2] alone with ``w1`` given (the every-t_s update). The data
    residual sqrt(gamma) v (y - U(D(x))) is linear in the scores, whose Jacobian with respect to
    the filter is x itself: J v = -L(f' * x), J^T u = the filter gradient of L^T u, pushed to the
    factors by the product rule. Only the cheap score-level map L (upsampling, weights) goes
    through autograd.
    """

    def __init__(self, settings: "TargetModelSettings", features: torch.Tensor, labels: torch.Tensor,
                 weights: torch.Tensor, w1: torch.Tensor | None = None) -> None:
        self.features, self.labels, self.fixed_w1 = features, labels, w1
        self.scale = residual_weights(labels, weights, settings.kappa_min)
        self.reg1, self.reg2 = settings.reg_w1 ** 0.5, settings.reg_w2 ** 0.5

    def linearise(self, w: list[torch.Tensor]) -> Linearisation:
        w1, w2 = (w[0], w[1]) if self.fixed_w1 is None else (self.fixed_w1, w[0])
        filters = composite_filter(w1, w2).requires_grad_(True)
        scores = filter_scores(filters, self.features)  # the graph to the filter, for J^T
        z = scores.detach().requires_grad_(True)
        up = upsample_scores(z, self.labels)  # the graph of U, for L^T
        data = (self.scale * (self.labels - up.detach())).transpose(0, 1)
        regs = [self.reg2 * w2] if self.fixed_w1 is not None else [self.reg1 * w1, self.reg2 * w2]

        def jacobian(v: list[torch.Tensor]) -> list[torch.Tensor]:
            if self.fixed_w1 is None:
                v1, v2 = v
                d_filter = composite_filter(v1, w2) + composite_filter(w1, v2)
                d_regs = [self.reg1 * v1, self.reg2 * v2]
            else:
                (v2,) = v
                d_filter, d_regs = composite_filter(w1, v2), [self.reg2 * v2]
            d_scores = filter_scores(d_filter, self.features)
            d_data = -(self.scale * upsample_scores(d_scores, self.labels)).transpose(0, 1)
            return [d_data, *d_regs]

        def transposed(u: list[torch.Tensor]) -> list[torch.Tensor]:
            (g_scores,) = torch.autograd.grad(up, z, -(self.scale * u[0].transpose(0, 1)), retain_graph=True)
            (g_filter,) = torch.autograd.grad(scores, filters, g_scores, retain_graph=True)
            g_w2 = torch.einsum("kdc,kcyx->kdyx", w1, g_filter) + self.reg2 * u[-1]
            if self.fixed_w1 is not None:
                return [g_w2]
            g_w1 = torch.einsum("kdyx,kcyx->kdc", w2, g_filter) + self.reg1 * u[1]
            return [g_w1, g_w2]

        return [data.detach(), *[r.detach() for r in regs]], jacobian, transposed


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
        scale = residual_weights(labels, weights, self.settings.kappa_min)
        return (scale * (labels - upsample_scores(scores, labels))).transpose(0, 1)

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
                problem = _TargetProblem(s, self._features_of(features, c), labels[:, c], weights)
                w1[c], w2[c] = gauss_newton(None, [self.w1[c], self.w2[c]], iters, linearise=problem.linearise)
        self.w1, self.w2 = w1, w2

    def update(self, features: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, n_gn: int = 1) -> None:
        """The every-t_s update: w1 fixed, w2 refit with N_CGu CG iterations per GN step."""
        s = self.settings
        features, labels, weights = _autograd_ready(features, labels, weights)
        w2 = self.w2.clone()
        with full_precision(features):
            for c in self._chunks():
                problem = _TargetProblem(s, self._features_of(features, c), labels[:, c], weights, w1=self.w1[c])
                (w2[c],) = gauss_newton(None, [self.w2[c]], [s.n_cg_update] * n_gn, linearise=problem.linearise)
        self.w2 = w2

    def loss(self, features: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Eq. (2) per object (K,), for monitoring and tests."""
        s = self.settings
        data = self._data_residual(self.scores(features), labels, weights)
        return 0.5 * (data.flatten(1).pow(2).sum(1) + s.reg_w1 * self.w1.flatten(1).pow(2).sum(1)
                      + s.reg_w2 * self.w2.flatten(1).pow(2).sum(1))
