"""FRTM's training-sample memory: features, labels and decaying sample weights (section 3.4).

A new sample gets weight gamma_i = gamma_{i-1} / (1 - eta) (gamma_0 = eta), the weights are
normalised to sum to one, and once ``capacity`` (K_max) samples are stored the lowest-weight
sample is evicted. Weights are kept as logarithms so very long stacks never overflow.
Samples live in preallocated slots (grown by doubling up to ``capacity``) and a new sample
overwrites the evicted one's slot, so adding one costs one sample's copy, not the whole memory's
(at capacity, re-concatenating 80 stride-16 feature maps of 854x480 frames cost ~0.1 s a frame).
The samples' order is therefore not their age; the fit sums over them, so order does not matter.
"""
from __future__ import annotations

import math

import torch


def _is_channels_last(features: torch.Tensor) -> bool:
    """Whether a (C, h, w) map is one sample of a channels-last batch (channels innermost)."""
    return features.ndim == 3 and features.shape[0] > 1 and features.stride(0) == 1 and features.stride(-1) > 1


class SampleMemory:
    """Fixed-capacity store of (features, labels, weight) triples on one device."""

    def __init__(self, capacity: int = 80, eta: float = 0.1) -> None:
        if capacity < 1:
            raise ValueError("memory capacity must be at least 1")
        if not 0.0 < eta < 1.0:
            raise ValueError("update rate eta must be in (0, 1)")
        self.capacity = capacity
        self.eta = eta
        self._features: torch.Tensor | None = None  # (slots, C, h, w); the first len(self) are filled
        self._labels: torch.Tensor | None = None  # (slots, K, hl, wl)
        self._log_weights: list[float] = []  # one per filled slot
        self._next_log_weight = math.log(eta)
        self._last_log_weight: float | None = None  # the most recently added sample's

    def __len__(self) -> int:
        return len(self._log_weights)

    def add(self, features: torch.Tensor, labels: torch.Tensor, same_weight: bool = False) -> None:
        """Add one sample (C, h, w) / (K, hl, wl); ``same_weight`` keeps the previous sample's weight.

        ``same_weight`` is used for the augmented copies of the annotated frame, which all
        describe the same moment of the video and so share gamma_0. The stored dtype is the
        first sample's (bfloat16 features under a bf16 session halve the memory).
        """
        if same_weight and self._last_log_weight is not None:
            log_w = self._last_log_weight
        else:
            log_w = self._next_log_weight
            self._next_log_weight = log_w - math.log(1.0 - self.eta)
        n = len(self)
        if n < self.capacity:
            self._reserve(n + 1, features, labels)
            slot = n
            self._log_weights.append(log_w)
        else:
            slot = min(range(n), key=self._log_weights.__getitem__)  # the lowest weight is evicted
            self._log_weights[slot] = log_w
        self._features[slot] = features
        self._labels[slot] = labels
        self._last_log_weight = log_w

    def _reserve(self, needed: int, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Slots for ``needed`` samples: allocate (8, then doubling, at most ``capacity``) and keep the filled ones."""
        have = 0 if self._features is None else self._features.shape[0]
        if needed <= have:
            return
        slots = min(self.capacity, max(8, 2 * have))
        like_f = features if self._features is None else self._features
        like_y = labels if self._labels is None else self._labels
        # the slots keep the features' layout: channels-last maps (the networks' own, see
        # nn.memory_format) stay channels-last, or every refit's convolutions would run on NCHW
        layout = torch.channels_last if _is_channels_last(features) else torch.contiguous_format
        grown_f = torch.empty((slots, *features.shape), dtype=like_f.dtype, device=like_f.device,
                              memory_format=layout)
        grown_y = like_y.new_empty((slots, *labels.shape))
        if self._features is not None:
            grown_f[:have] = self._features
            grown_y[:have] = self._labels
        self._features, self._labels = grown_f, grown_y

    @property
    def features(self) -> torch.Tensor:
        if self._features is None:
            raise RuntimeError("the sample memory is empty")
        return self._features[:len(self)]

    @property
    def labels(self) -> torch.Tensor:
        if self._labels is None:
            raise RuntimeError("the sample memory is empty")
        return self._labels[:len(self)]

    @property
    def weights(self) -> torch.Tensor:
        """Normalised sample weights gamma (M,), summing to one, in the order of ``features``."""
        lw = torch.tensor(self._log_weights, dtype=torch.float64)
        return torch.softmax(lw, 0).to(torch.float32).to(self.features.device)
