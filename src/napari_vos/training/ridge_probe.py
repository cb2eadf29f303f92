"""A differentiable stand-in for FRTM's target model, used only as an auxiliary training loss.

The paper trains its segmentation network over a frozen ImageNet backbone, whose conv4 features
already separate objects well enough for a linear target model. Here the backbone starts from
random weights, and the Gauss-Newton fit (treated as constant, as in the paper) passes the
backbone no signal about what makes a linear target model work. This probe closes that gap:
a weighted ridge regression fitted in closed form on each reference frame's features (the
same least-squares objective as eq. 2, with eq. 4's pixel weights, 1x1 instead of 1x1+3x3)
predicts the labels of the validation frames; its error is back-propagated through both frames'
features (as learned-optimiser trackers do). Inference never uses it.
"""
from __future__ import annotations

import torch

from napari_vos.methods.frtm_target import residual_pixel_weights
from napari_vos.nn.precision import at_least_float32, full_precision


def ridge_probe_scores(ref_features: torch.Tensor, ref_labels: torch.Tensor, val_features: torch.Tensor,
                       kappa_min: float = 0.1, reg: float = 0.1) -> torch.Tensor:
    """Scores on validation frames of a linear model fitted in closed form on each sample's reference.

    ref_features (B, C, h, w), ref_labels (B, h, w) in [0, 1], val_features (B, M, C, h, w)
    -> (B, M, h, w). w solves the ridge problem on the eq.-4-weighted rows in whichever of the
    dual (N = h*w unknowns) and primal (C unknowns) forms is smaller; lam = ``reg`` times the mean
    squared row norm, so the solution does not depend on the feature scale. Float32 even under
    bf16 autocast: a Gram matrix rounded to bf16 is no longer positive definite.
    """
    with full_precision(ref_features):
        return _ridge_probe_scores(at_least_float32(ref_features), at_least_float32(ref_labels),
                                   at_least_float32(val_features), kappa_min, reg)


def _ridge_probe_scores(ref_features: torch.Tensor, ref_labels: torch.Tensor, val_features: torch.Tensor,
                        kappa_min: float, reg: float) -> torch.Tensor:
    x = ref_features.flatten(2).transpose(1, 2)  # (B, N, C)
    n, c = x.shape[1:]
    v = residual_pixel_weights(ref_labels, kappa_min).flatten(1)  # (B, N): squared, eq. 4's weights
    xv = x * v[..., None]
    yv = ref_labels.flatten(1) * v
    lam = reg * xv.pow(2).sum(-1).mean(1).clamp_min(1e-6)  # reg x mean squared row norm
    if n <= c:  # dual: w = X^T (X X^T + lam I)^-1 y, an N x N system
        gram = xv @ xv.transpose(1, 2)
        alpha = _solve_spd(gram, lam, yv[..., None])  # (B, N, 1)
        weights = (xv.transpose(1, 2) @ alpha)[..., 0]  # (B, C)
    else:  # primal: w = (X^T X + lam I)^-1 X^T y, a C x C system (the same w)
        gram = xv.transpose(1, 2) @ xv
        weights = _solve_spd(gram, lam, xv.transpose(1, 2) @ yv[..., None])[..., 0]
    return torch.einsum("bc,bmchw->bmhw", weights, val_features)


def _solve_spd(gram: torch.Tensor, lam: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """(gram + lam I)^-1 rhs by Cholesky: the matrix is symmetric positive definite.

    Not torch.linalg.solve: its LU path fails inside MKL ("pivots given to lu_solve") for
    batched systems of a few hundred unknowns when the input requires grad (torch 2.14.1, CPU).
    """
    eye = torch.eye(gram.shape[-1], device=gram.device, dtype=gram.dtype)
    return torch.cholesky_solve(rhs, torch.linalg.cholesky(gram + lam[:, None, None] * eye))


def ridge_probe_loss(scores: torch.Tensor, labels: torch.Tensor, kappa_min: float = 0.1) -> torch.Tensor:
    """Eq.-4-weighted mean squared error of probe scores (B, M, h, w) against labels in [0, 1]."""
    return (residual_pixel_weights(labels, kappa_min) * (scores - labels)).pow(2).mean()
