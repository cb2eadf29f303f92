"""FRTM's training-sample memory: features, labels and decaying sample weights (section 3.4).

A new sample gets weight gamma_i = gamma_{i-1} / (1 - eta) (gamma_0 = eta), the weights are
normalised to sum to one, and once ``capacity`` (K_max) samples are stored the lowest-weight
sample is evicted. Weights are kept as logarithms so very long stacks never overflow.
"""
from __future__ import annotations

import math

import torch


class SampleMemory:
    """Fixed-capacity store of (features, labels, weight) triples on one device."""

    def __init__(self, capacity: int = 80, eta: float = 0.1) -> None:
        if capacity < 1:
            raise ValueError("memory capacity must be at least 1")
        if not 0.0 < eta < 1.0:
            raise ValueError("update rate eta must be in (0, 1)")
        self.capacity = capacity
        self.eta = eta
        self._features: torch.Tensor | None = None  # (M, C, h, w)
        self._labels: torch.Tensor | None = None  # (M, K, hl, wl)
        self._log_weights: list[float] = []
        self._next_log_weight = math.log(eta)

    def __len__(self) -> int:
        return len(self._log_weights)

    def add(self, features: torch.Tensor, labels: torch.Tensor, same_weight: bool = False) -> None:
        """Add one sample (C, h, w) / (K, hl, wl); ``same_weight`` keeps the previous sample's weight.

        ``same_weight`` is used for the augmented copies of the annotated frame, which all
        describe the same moment of the video and so share gamma_0.
        """
        if same_weight and self._log_weights:
            log_w = self._log_weights[-1]
        else:
            log_w = self._next_log_weight
            self._next_log_weight = log_w - math.log(1.0 - self.eta)
        f, y = features.unsqueeze(0), labels.unsqueeze(0)
        if len(self) >= self.capacity:
            drop = min(range(len(self._log_weights)), key=self._log_weights.__getitem__)
            keep = [i for i in range(len(self)) if i != drop]
            self._features = self._features[keep]
            self._labels = self._labels[keep]
            del self._log_weights[drop]
        if self._features is None:
            self._features, self._labels = f, y
        else:
            self._features = torch.cat([self._features, f.to(self._features)], 0)
            self._labels = torch.cat([self._labels, y.to(self._labels)], 0)
        self._log_weights.append(log_w)

    @property
    def features(self) -> torch.Tensor:
        if self._features is None:
            raise RuntimeError("the sample memory is empty")
        return self._features

    @property
    def labels(self) -> torch.Tensor:
        if self._labels is None:
            raise RuntimeError("the sample memory is empty")
        return self._labels

    @property
    def weights(self) -> torch.Tensor:
        """Normalised sample weights gamma (M,), summing to one."""
        lw = torch.tensor(self._log_weights, dtype=torch.float64)
        return torch.softmax(lw, 0).to(torch.float32).to(self.features.device)
