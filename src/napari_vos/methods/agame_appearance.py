"""A-GAME's appearance module: a generative Gaussian mixture of target and background features.

Seed 003 (Johnander et al., CVPR 2019). The stride-16 deep features are projected by a 1x1 conv
(2048 -> 512 for ResNet-101); each projected feature vector x_p is modelled by a mixture of four
diagonal Gaussians with a uniform prior: k = 0 background and k = 1 target (the base components),
k = 2 background and k = 3 target (the distractor components, fitted to what the base components
get wrong). Parameters come from soft assignments alpha (the annotated mask on the first frame,
the segmentation afterwards) and follow a running update with rate lambda. The module outputs the
four log-probabilities log p(z=k) p(x|z=k), up to a constant shared by all components; they are
fed to the fusion module. Learning the mixture needs no gradient descent at test time: it is a
closed-form fit, differentiable so the whole network trains end to end through it.

Everything here runs in float32 (outside autocast): the log-probabilities are sums over hundreds of
channels of squared, variance-normalised distances and overflow fp16.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from napari_vos.nn.precision import full_precision

#: pseudo-count added to each component's mass (as in the authors' code): an empty component (no
#: assigned pixel) falls back to a zero mean with the regulariser as variance instead of dividing by
#: zero; a component of n pixels has its mean scaled by n / (n + 1), which a few-cell object feels.
MASS_PRIOR = 1.0

#: components of the paper's mixture: 0, 2 background; 1, 3 target.
N_SLOTS = 4


@dataclass
class MixtureParams:
    """Per-object mixture parameters: means and diagonal variances, (K, n_slots, D) each."""

    means: torch.Tensor
    variances: torch.Tensor

    def detach(self) -> "MixtureParams":
        return MixtureParams(self.means.detach(), self.variances.detach())


def fit_gaussians(x: torch.Tensor, alpha: torch.Tensor, reg: torch.Tensor,
                  mass_prior: float = MASS_PRIOR) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean and diagonal variance of features per component (the paper's mu~, Sigma~).

    x (K, D, h, w) features; alpha (K, M, h, w) soft assignments in [0, 1]; reg (M, D) > 0 the
    variance regulariser r_m. Returns means and variances (K, M, D):
    mu~_m = sum_p alpha_pm x_p / (sum_p alpha_pm + c),
    Sigma~_m = r_m + sum_p alpha_pm (x_p - mu~_m)^2 / (sum_p alpha_pm + c), c = ``mass_prior``.
    """
    xf = x.flatten(2)  # K, D, N
    af = alpha.flatten(2)  # K, M, N
    mass = af.sum(-1, keepdim=True) + mass_prior  # K, M, 1
    means = torch.einsum("kmn,kdn->kmd", af, xf) / mass
    centred = xf[:, None] - means[..., None]  # K, M, D, N (centred, not E[x^2] - mu^2: no cancellation)
    variances = (af[:, :, None] * centred * centred).sum(-1) / mass + reg[None]
    return means, variances


def gaussian_log_probs(x: torch.Tensor, means: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    """s_k = -1/2 sum_d (log Sigma_kd + (x_d - mu_kd)^2 / Sigma_kd): (K, D, h, w) -> (K, M, h, w).

    s_k = log p(z=k) p(x|z=k) - c with c = log(1/M) - D/2 log(2 pi), a constant common to all
    components (uniform prior), so the posteriors p(z=k|x) are a softmax over s.
    """
    k, _, h, w = x.shape
    xf = x.flatten(2)  # K, D, N
    # one component at a time: a (K, D, N) temporary instead of (K, M, D, N)
    quad = torch.stack([(((xf - means[:, m, :, None]) ** 2) / variances[:, m, :, None]).sum(1)
                        for m in range(means.shape[1])], dim=1)  # K, M, N
    logdet = torch.log(variances).sum(-1, keepdim=True)  # K, M, 1
    return (-0.5 * (logdet + quad)).view(k, -1, h, w)


def distractor_weights(alpha_base: torch.Tensor, base_posteriors: torch.Tensor) -> torch.Tensor:
    """alpha_2 = max(0, alpha_0 - p(z=0|x)), alpha_3 = max(0, alpha_1 - p(z=1|x)).

    alpha_base (K, 2, h, w) = (background, target) assignments; base_posteriors (K, 2, h, w) the
    posteriors of the two base components alone. What the base components get wrong.
    """
    return F.relu(alpha_base - base_posteriors)


def running_update(old: torch.Tensor, new: torch.Tensor, rate: float) -> torch.Tensor:
    """theta_t = (1 - lambda) theta_{t-1} + lambda theta~_t."""
    return (1.0 - rate) * old + rate * new


class AppearanceModule(nn.Module):
    """1x1 projection + the four-component Gaussian mixture (fit, running update, log-probabilities).

    ``n_components`` is 4 (the paper) or 2 (base components only: a test-time switch on a network
    trained with four, not the paper's "unimodal appearance" ablation, which trains without them): with 2, the distractor slots hold copies of the base components, so the
    fusion module always receives four log-probabilities and one trained network runs either way.
    """

    def __init__(self, in_channels: int, channels: int = 512, cov_reg_init: float = -2.0) -> None:
        super().__init__()
        self.project = nn.Conv2d(in_channels, channels, 1)
        nn.init.kaiming_uniform_(self.project.weight)
        nn.init.zeros_(self.project.bias)
        # r_k = softplus(rho_k), one per component and channel, trained end to end
        self.cov_reg = nn.Parameter(torch.full((N_SLOTS, channels), float(cov_reg_init)))

    def regulariser(self) -> torch.Tensor:
        return F.softplus(self.cov_reg.float())

    def features(self, deep: torch.Tensor) -> torch.Tensor:
        """Project the stride-16 features: (N, C, h, w) -> (N, D, h, w), float32."""
        with full_precision(deep):
            return self.project(deep.float())

    def fit(self, x: torch.Tensor, alpha_base: torch.Tensor, n_components: int = 4,
            previous: MixtureParams | None = None, rate: float = 1.0) -> MixtureParams:
        """Fit (``previous`` None: the first frame) or update the mixture from assignments.

        x (K, D, h, w) projected features; alpha_base (K, 2, h, w) = (1 - y, y). The base
        components are fitted and updated first; the distractor assignments use the posteriors of
        the updated base components (the slides' p(z=0|x, mu_0^t, Sigma_0^t)), then the distractor
        components are fitted and updated with the same rate.
        """
        _check_components(n_components)
        with full_precision(x):
            x, alpha_base = x.float(), alpha_base.float()
            if x.shape[0] != alpha_base.shape[0]:
                x = x.expand(alpha_base.shape[0], -1, -1, -1)
            reg = self.regulariser()
            means, variances = fit_gaussians(x, alpha_base, reg[:2])
            if previous is not None:
                means = running_update(previous.means[:, :2], means, rate)
                variances = running_update(previous.variances[:, :2], variances, rate)
            if n_components == 2:
                return MixtureParams(means.repeat(1, 2, 1), variances.repeat(1, 2, 1))
            posteriors = torch.softmax(gaussian_log_probs(x, means, variances), dim=1)
            alpha_extra = distractor_weights(alpha_base, posteriors)
            d_means, d_vars = fit_gaussians(x, alpha_extra, reg[2:])
            if previous is not None:
                d_means = running_update(previous.means[:, 2:], d_means, rate)
                d_vars = running_update(previous.variances[:, 2:], d_vars, rate)
            return MixtureParams(torch.cat([means, d_means], 1), torch.cat([variances, d_vars], 1))

    def forward(self, x: torch.Tensor, params: MixtureParams) -> torch.Tensor:
        """The four log-probabilities (K, 4, h, w) of projected features x (K or 1, D, h, w)."""
        with full_precision(x):
            k = params.means.shape[0]
            x = x.float()
            if x.shape[0] != k:
                x = x.expand(k, -1, -1, -1)
            return gaussian_log_probs(x, params.means, params.variances)


def mixture_posteriors(log_probs: torch.Tensor, n_components: int = 4) -> torch.Tensor:
    """p(z=k|x) over the model's real components: (K, 4, h, w) -> (K, 4, h, w).

    With 2 components the distractor slots are copies of the base ones; their posterior is 0.
    """
    _check_components(n_components)
    if n_components == 4:
        return torch.softmax(log_probs, dim=1)
    base = torch.softmax(log_probs[:, :2], dim=1)
    return torch.cat([base, torch.zeros_like(base)], dim=1)


def _check_components(n: int) -> None:
    if n not in (2, 4):
        raise ValueError(f"n_components must be 4 (base + distractor components, the paper) or 2 (base only), "
                         f"got {n!r}")
