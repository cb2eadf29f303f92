"""S2S++'s border-distance representation (seed 004, section III-B, after Bischke et al., ICIP 2019).

Every pixel gets its distance to the object's edge, truncated at the border size R and signed
(positive inside the object, negative outside; eq. 6), then quantised with a bin size b into
R/b inner and R/b outer classes plus one "inside, farther than R" and one "outside, farther
than R" class: 2 R/b + 2 classes (42 for the paper's R = 20, b = 1). The decoder predicts these
classes with a softmax beside the mask, and the class probabilities are merged back into the
segmentation branch; the expected signed distance under those probabilities is the method's
"border_distance" map.

Distances are measured from pixel centres to the edge, which runs halfway between an object
pixel and its nearest background pixel: the Euclidean distance transform minus half a pixel.
Class index grows with the signed distance: 0 = far outside, R/b = just outside the edge,
R/b + 1 = just inside, 2 R/b + 1 = deep inside.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class BorderClasses:
    """The quantisation of the truncated signed edge distance into classes."""

    border: int = 20  # R, in pixels of the network's input
    bin_size: int = 1  # b

    def __post_init__(self) -> None:
        if self.border <= 0 or self.bin_size <= 0 or self.border % self.bin_size:
            raise ValueError(f"border ({self.border}) must be a positive multiple of bin_size ({self.bin_size})")

    @property
    def n_bins(self) -> int:
        """Classes on each side of the edge."""
        return self.border // self.bin_size

    @property
    def num_classes(self) -> int:
        return 2 * self.n_bins + 2

    def edge_distances(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance of each pixel centre to the object edge: (inside, outside), each 0 on the other side.

        An empty mask has no edge: every pixel is infinitely far outside (and a full mask inside).
        """
        from scipy import ndimage

        m = np.asarray(mask) > 0.5
        inside = np.zeros(m.shape, np.float32)
        outside = np.zeros(m.shape, np.float32)
        if not m.any():
            outside[:] = np.inf
        elif m.all():
            inside[:] = np.inf
        else:
            inside[m] = ndimage.distance_transform_edt(m)[m] - 0.5
            outside[~m] = ndimage.distance_transform_edt(~m)[~m] - 0.5
        return inside, outside

    def signed_distance(self, mask: np.ndarray) -> np.ndarray:
        """Eq. (6): the edge distance truncated at R, positive inside the object, negative outside."""
        inside, outside = self.edge_distances(mask)
        return np.where(np.asarray(mask) > 0.5, np.minimum(inside, self.border),
                        -np.minimum(outside, self.border)).astype(np.float32)

    def classes(self, mask: np.ndarray) -> np.ndarray:
        """Distance class of every pixel (int64, values 0 .. num_classes - 1)."""
        n, b = self.n_bins, self.bin_size
        inside, outside = self.edge_distances(mask)
        m = np.asarray(mask) > 0.5
        k_in = np.minimum(np.floor(np.minimum(inside, self.border) / b), n).astype(np.int64)
        k_out = np.minimum(np.floor(np.minimum(outside, self.border) / b), n).astype(np.int64)
        # inside: bins 0..n-1 -> classes n+1..2n, beyond R -> 2n+1; outside: bins 0..n-1 -> n..1, beyond -> 0
        return np.where(m, n + 1 + k_in, n - k_out)

    def centers(self) -> np.ndarray:
        """Signed distance represented by each class: bin centres, and +-R for the two "beyond" classes."""
        n, b = self.n_bins, self.bin_size
        outer = [-(k + 0.5) * b for k in range(n - 1, -1, -1)]  # classes 1..n
        inner = [(k + 0.5) * b for k in range(n)]  # classes n+1..2n
        return np.array([-self.border, *outer, *inner, self.border], np.float32)

    def expected_distance(self, probs: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """Expected signed edge distance (pixels) under class probabilities along ``dim``."""
        shape = [1] * probs.ndim
        shape[dim] = self.num_classes
        centers = torch.from_numpy(self.centers()).to(probs.device, probs.dtype).view(shape)
        return (probs * centers).sum(dim)
