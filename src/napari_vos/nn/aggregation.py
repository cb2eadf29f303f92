"""Soft aggregation of K per-object probabilities into one distribution (RGMP eq. 1).

Each object's foreground probability p_k is turned into odds and renormalised together with
the background, so the objects compete for every pixel instead of being thresholded one by one.
"""
from __future__ import annotations

import torch

_EPS = 1e-7


def soft_aggregate(probs: torch.Tensor) -> torch.Tensor:
    """Aggregate per-object probabilities (K, H, W) into (K + 1, H, W), background first.

    RGMP eq. (1): p_{i,m} = sigma(logit(p_hat_{i,m})) normalised over i, with the background
    probability p_hat_{0,m} = prod_k (1 - p_hat_{k,m}). Implemented as a softmax over logits.
    """
    if probs.ndim != 3:
        raise ValueError(f"expected probs of shape (K, H, W), got {tuple(probs.shape)}")
    p = probs.clamp(_EPS, 1.0 - _EPS)
    background = torch.prod(1.0 - p, dim=0, keepdim=True).clamp(_EPS, 1.0 - _EPS)
    stacked = torch.cat([background, p], dim=0)
    logits = torch.log(stacked / (1.0 - stacked))
    return torch.softmax(logits, dim=0)


def labels_from_aggregate(aggregated: torch.Tensor) -> torch.Tensor:
    """Integer labels (H, W) from an aggregated (K + 1, H, W) map: 0 background, k object k.

    ``max(dim=0).indices`` is argmax (ties go to the lower index, as with argmax), but torch's CPU
    argmax over the leading dimension of a (K + 1, H, W) tensor is ~10x slower (69 ms against 7 ms
    at 854x480, two channels): 13 % of an FRTM frame on a 2-core CPU.
    """
    return aggregated.max(dim=0).indices
