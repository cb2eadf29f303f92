"""Class-balanced binary cross-entropy (OSVOS's eq. 5, which OSVOS-AT and S2S++ both use), written once.

L = -(1/|Y|) [ beta sum_{Y+} log P(y=1) + (1 - beta) sum_{Y-} log P(y=0) ],  beta = |Y-| / |Y|,
so each class carries the same total weight whatever the object's size. COSNet's weighted loss
(training/cosnet_recipe.py) has the same weights but another normalisation, and stays with its recipe.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["balance_weights", "balanced_bce"]


def balance_weights(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The weights (beta, 1 - beta) of the positive and negative pixels of each (..., H, W) target.

    target in {0, 1}; returns two (...) tensors: beta = |Y-| / |Y| (so (1 - beta) / beta = |Y+| / |Y-|).
    """
    positive = (target > 0.5).float().sum((-2, -1))
    total = float(target.shape[-2] * target.shape[-1])
    beta = (total - positive) / total
    return beta, 1.0 - beta


def balanced_bce(logits: torch.Tensor, target: torch.Tensor, images_per_beta: int = 1,
                 weights: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Eq. (5) per image and object, averaged over the pixels: logits, target (N, K, H, W) -> (N, K).

    ``images_per_beta``: each run of that many consecutive images shares one beta per object (the
    frames of one clip or video), so an image where the object is absent (|Y+| = 0) still pays for
    its false positives, which with its own beta (= 1) would cost nothing. 1 gives one beta per image.
    ``weights``: (beta, 1 - beta), each (N, K), given by the caller instead, e.g. a fine-tuning crop
    taking the whole frame's beta for an object it does not hold, for the same reason.
    """
    positive = target > 0.5
    n = target.shape[0]
    if weights is not None:
        w_pos, w_neg = weights
    else:
        if n % images_per_beta:
            raise ValueError(f"{n} images do not split into runs of {images_per_beta}")
        # (runs, K, images_per_beta, H * W): |Y+| counted over each run's images
        pooled = target.unflatten(0, (n // images_per_beta, images_per_beta)).transpose(1, 2).flatten(-2)
        w_pos, w_neg = (w.repeat_interleave(images_per_beta, 0) for w in balance_weights(pooled))
    log_p1 = F.logsigmoid(logits)
    log_p0 = F.logsigmoid(-logits)
    terms = torch.where(positive, w_pos[..., None, None] * log_p1, w_neg[..., None, None] * log_p0)
    return -terms.mean((-2, -1))
