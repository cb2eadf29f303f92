"""Gated co-attention between two frames' features (COSNet, Lu et al., CVPR 2019; seed 003).

Features V_a (query frame) and V_b (reference frame), (B, C, h, w), are flattened to C x N. The
weighted affinity S = V_b^T W V_a (N_b x N_a; S_ij: location i of F_b against location j of F_a)
takes one of three forms of W, the slides' "constraints on W":

- ``vanilla``: W a full learned C x C matrix;
- ``symmetric`` (the paper's best, the default): W = P^T D P with P orthogonal and D diagonal, so
  S = (P V_b)^T D (P V_a) compares both frames in one orthogonal common space and S = S^T when
  V_a = V_b. P = exp(A - A^T) (the exponential of a skew-symmetric matrix is orthogonal), so P
  stays exactly orthogonal under training and in an fp16 checkpoint;
- ``channel``: W = D diagonal, per-channel weights.

S is normalised by softmax column-wise, S^c = softmax over i (each column sums to 1), and for the
reference frame row-wise, S^r = softmax(S^T) over j. The attention summaries are
Z_a = V_b S^c (each location of F_a: a weighted average of V_b's locations) and Z_b = V_a S^r.
The gate f_g(Z) = sigmoid(w_f Z + b_f), a 1x1 convolution to one channel shared by both frames,
decides how much of each location's summary is kept: Z <- Z * f_g(Z); the segmentation module then
reads X = [Z, V] (2C channels).

Departure: S is scaled by 1/sqrt(C) before the softmax (as in dot-product attention) so the
softmax of randomly initialised features does not saturate; the slides have no scale, which a
learned D or W can absorb either way.

S, its softmaxes and the summaries are computed in float32 under any autocast (the gate and the
segmentation module run in the session's precision).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from napari_vos.nn.precision import full_precision

VARIANTS = ("vanilla", "symmetric", "channel")

__all__ = ["VARIANTS", "CoAttention", "CoAttentionOutput", "normalise_affinity", "attention_summary"]


def normalise_affinity(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(S^c, S^r) of an affinity S (B, N_b, N_a).

    S^c (B, N_b, N_a) = softmax of S over its rows' index i (dim 1): each column sums to 1.
    S^r (B, N_a, N_b) = softmax of S^T over j (dim 1): each column sums to 1.
    """
    return torch.softmax(s, dim=1), torch.softmax(s.transpose(1, 2), dim=1)


def attention_summary(v: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Z = V weights: V (B, C, N_v), weights (B, N_v, N_z) column-normalised -> Z (B, C, N_z)."""
    return torch.bmm(v, weights)


@dataclass
class CoAttentionOutput:
    """Gated summaries of one frame pair; the Z are already multiplied by their gates.

    z_a, z_b: (B, C, h_a, w_a) and (B, C, h_b, w_b) (z_b None when only the query side was asked);
    gate_a, gate_b: (B, 1, h, w) in (0, 1); affinity: S (B, N_b, N_a) before normalisation.
    """

    z_a: torch.Tensor
    gate_a: torch.Tensor
    affinity: torch.Tensor
    z_b: torch.Tensor | None = None
    gate_b: torch.Tensor | None = None


def _matrix_exp(x: torch.Tensor) -> torch.Tensor:
    """torch.linalg.matrix_exp, computed on the CPU for an MPS tensor (no MPS kernel: pytorch#136692)."""
    if x.device.type == "mps":
        return torch.linalg.matrix_exp(x.cpu()).to(x.device)
    return torch.linalg.matrix_exp(x)


class CoAttention(nn.Module):
    """S = V_b^T W V_a with W vanilla, symmetric (P^T D P) or channel-wise (D); softmax summaries; gate."""

    def __init__(self, channels: int, variant: str = "symmetric", scale: bool = True) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"co-attention variant must be one of {VARIANTS}, got {variant!r}")
        self.channels = channels
        self.variant = variant
        self.scale = channels ** -0.5 if scale else 1.0
        if variant == "vanilla":
            # W starts near the identity (plain dot-product affinity) and learns any linear map
            self.weight = nn.Parameter(torch.eye(channels) + 0.01 * torch.randn(channels, channels))
        else:
            self.diagonal = nn.Parameter(torch.ones(channels))
            if variant == "symmetric":
                self.skew = nn.Parameter(0.01 * torch.randn(channels, channels))
        self.gate = nn.Conv2d(channels, 1, 1)  # f_g: w_f, b_f shared by both frames

    # -- W ---------------------------------------------------------------------------------
    def projection(self) -> torch.Tensor:
        """P = exp(A - A^T), orthogonal (symmetric variant). Without gradients (inference: the
        weights are fixed) it is computed once per weights and device rather than for every
        reference frame; on MPS, which has no matrix exponential kernel, on the CPU."""
        a = self.skew.float()
        # with gradients, or on weights made under torch.inference_mode (no version counter to key on)
        if (torch.is_grad_enabled() and a.requires_grad) or self.skew.is_inference():
            return _matrix_exp(a - a.T)
        key = (a.device, self.skew._version, self.skew.data_ptr())
        cached = getattr(self, "_projection", None)
        if cached is None or cached[0] != key:
            cached = (key, _matrix_exp(a - a.T).detach())
            self._projection = cached
        return cached[1]

    def matrix(self) -> torch.Tensor:
        """The C x C weight matrix W of the variant (for tests and inspection)."""
        if self.variant == "vanilla":
            return self.weight.float()
        d = torch.diag(self.diagonal.float())
        if self.variant == "channel":
            return d
        p = self.projection()
        return p.T @ d @ p

    def affinity(self, v_a: torch.Tensor, v_b: torch.Tensor) -> torch.Tensor:
        """S = V_b^T W V_a: v_a (B, C, h_a, w_a), v_b (B, C, h_b, w_b) -> (B, N_b, N_a), scaled.

        Float32 arithmetic whatever the run's autocast (which would cast the matmuls' inputs back
        to half precision): S feeds a softmax, where a bf16 logit error of 0.27 scales a weight by 1.3."""
        with full_precision(v_a):
            a = v_a.flatten(2).float()
            b = v_b.flatten(2).float()
            if self.variant == "vanilla":
                left, right = b, torch.matmul(self.weight.float(), a)
            elif self.variant == "channel":
                left, right = b, self.diagonal.float()[:, None] * a
            else:  # (P V_b)^T D (P V_a)
                p = self.projection()
                left, right = torch.matmul(p, b), self.diagonal.float()[:, None] * torch.matmul(p, a)
            return torch.bmm(left.transpose(1, 2), right) * self.scale

    def gated(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Z * f_g(Z), f_g(Z)) for Z (B, C, h, w)."""
        g = torch.sigmoid(self.gate(z))
        return z * g, g

    # -- forward ---------------------------------------------------------------------------
    def forward(self, v_a: torch.Tensor, v_b: torch.Tensor, both: bool = True) -> CoAttentionOutput:
        """Gated summaries of F_a in light of F_b (and, with ``both``, of F_b in light of F_a)."""
        s = self.affinity(v_a, v_b)
        dtype = v_a.dtype
        with full_precision(v_a):  # the softmaxes and summaries in float32 too (see `affinity`)
            s_c, s_r = normalise_affinity(s)
            z_a = attention_summary(v_b.flatten(2).float(), s_c).view(v_a.shape[0], -1, *v_a.shape[-2:]).to(dtype)
            z_b = (attention_summary(v_a.flatten(2).float(), s_r).view(v_b.shape[0], -1, *v_b.shape[-2:]).to(dtype)
                   if both else None)
        z_a, gate_a = self.gated(z_a)
        out = CoAttentionOutput(z_a, gate_a, s)
        if z_b is not None:
            out.z_b, out.gate_b = self.gated(z_b)
        return out

    @staticmethod
    def fuse(z: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """X = [Z, V] along channels (2C), the segmentation module's input."""
        return torch.cat([z, v], dim=1)
