"""Fully connected CRF with Gaussian edge potentials (Krähenbühl & Koltun, NIPS 2011), mean field in torch.

Used by OSVOS-AT (seed 000, section III-C) to smooth the predicted masks. The energy is

    E(x) = sum_i psi_u(x_i) + sum_{i<j} mu(x_i, x_j) [ w1 exp(-|p_i-p_j|^2 / 2 theta_a^2 - |I_i-I_j|^2 / 2 theta_b^2)
                                                      + w2 exp(-|p_i-p_j|^2 / 2 theta_g^2) ]

with unaries psi_u = -log P (the network's probabilities) and the Potts compatibility mu. Mean-field
inference iterates Q_i(l) ∝ exp(-psi_u(l) + sum_m w_m (k_m * Q)(l)), as Krähenbühl's reference code
does (kernels symmetrically normalised, the default of densecrf / pydensecrf).

Why not a package: pydensecrf, pydensecrf2 and SimpleCRF publish no wheel for Python 3.11 on
PyPI (checked with pip; they would need a C++ toolchain to build), so the filtering is written
here in torch. The appearance (bilateral) kernel is a Gaussian in the 5-D space (x, y, r, g, b)
scaled by (theta_a, theta_b); as in Krähenbühl's code it is evaluated on the permutohedral
lattice (Adams, Baek & Davis, Eurographics 2010): each pixel is splatted with barycentric
weights onto the d + 1 = 6 vertices of its simplex, the occupied vertices are blurred with
[1/2 1 1/2] along the d + 1 lattice directions, and the result is sliced back with the same
weights. The spatial kernel is an exact separable Gaussian convolution.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F



@dataclass
class DenseCRFSettings:
    """Defaults as in pydensecrf's example (sxy=80, srgb=13, compat=10; sxy=3, compat=3; 5 iterations)."""

    iterations: int = 5
    bilateral_xy: float = 80.0  # theta_alpha, pixels
    bilateral_rgb: float = 13.0  # theta_beta, intensity units of 0..255 images
    bilateral_weight: float = 10.0  # w1
    gaussian_xy: float = 3.0  # theta_gamma, pixels
    gaussian_weight: float = 3.0  # w2

    def __post_init__(self) -> None:
        """Bandwidths finite and > 0 (0 divided the features: a crash at the first frame, or empty
        labels), weights finite and >= 0; each named by its crf_* option."""
        import numbers

        def number(value: object) -> bool:  # numpy scalars too (np.bool_ is no numbers.Real), not booleans
            return isinstance(value, numbers.Real) and not isinstance(value, bool)

        for name in ("bilateral_xy", "bilateral_rgb", "gaussian_xy"):
            value = getattr(self, name)
            if not number(value) or not math.isfinite(float(value)) or value <= 0:
                raise ValueError(f"crf_{name} is a kernel width and must be a finite number > 0, got {value!r}")
        for name in ("bilateral_weight", "gaussian_weight"):
            value = getattr(self, name)
            if not number(value) or not math.isfinite(float(value)) or value < 0:
                raise ValueError(f"crf_{name} is a kernel weight and must be a finite number >= 0, got {value!r}")
        if not (number(self.iterations) and isinstance(self.iterations, numbers.Integral)) or self.iterations < 0:
            raise ValueError(f"crf_iterations must be a whole number >= 0, got {self.iterations!r}")


class PermutohedralLattice:
    """Gaussian filtering of per-point values over a point cloud in feature space (unit sigma).

    A vectorised version of the splat / blur / slice of Adams et al. (2010) as written in
    Krähenbühl's densecrf: elevate the d-dimensional features onto the hyperplane of Z^{d+1}
    orthogonal to (1, ..., 1), find the enclosing simplex (closest remainder-0 point and the
    rank of each coordinate), and keep its d + 1 vertices and barycentric weights.
    """

    def __init__(self, features: torch.Tensor) -> None:
        """features (N, d): positions already divided by the kernel's standard deviations."""
        n, d = features.shape
        dev = features.device
        f = features.float()
        i1 = torch.arange(1, d + 1, device=dev, dtype=torch.float32)
        cf = f * ((d + 1) * math.sqrt(2.0 / 3.0) / torch.sqrt(i1 * (i1 + 1)))
        tail = torch.flip(torch.cumsum(torch.flip(cf, [1]), 1), [1])  # tail[:, k] = sum_{m >= k} cf[:, m]
        elevated = torch.empty(n, d + 1, device=dev)
        elevated[:, 0] = tail[:, 0]
        elevated[:, 1:] = torch.cat([tail[:, 1:], torch.zeros(n, 1, device=dev)], 1) - i1 * cf
        rounded = torch.round(elevated / (d + 1))
        rem0 = rounded * (d + 1)
        excess = rounded.sum(1).long()[:, None]
        diff = elevated - rem0
        rank = torch.zeros(n, d + 1, dtype=torch.long, device=dev)
        for i in range(d + 1):
            for j in range(i + 1, d + 1):
                smaller = (diff[:, i] < diff[:, j]).long()
                rank[:, i] += smaller
                rank[:, j] += 1 - smaller
        high = rank >= d + 1 - excess  # when the coordinates sum above zero, step the largest down
        low = rank < -excess  # and the smallest up when below
        pos, neg = excess > 0, excess < 0
        rem0 = torch.where(pos & high, rem0 - (d + 1), torch.where(neg & low, rem0 + (d + 1), rem0))
        rank = torch.where(pos & high, rank + excess - (d + 1),
                           torch.where(neg & low, rank + (d + 1) + excess, rank + excess))
        v = (elevated - rem0) / (d + 1)
        bary = torch.zeros(n, d + 2, device=dev)
        bary.scatter_add_(1, d - rank, v)
        bary.scatter_add_(1, d - rank + 1, -v)
        bary[:, 0] += 1.0 + bary[:, d + 1]
        r = torch.arange(d + 1, device=dev)[None, :, None]
        coords = rem0.long()[:, None, :d] + torch.where(rank[:, None, :d] <= d - r, r, r - (d + 1))  # (N, d+1, d)
        flat = coords.reshape(-1, d)
        flat = flat - flat.min(0).values + (d + 1)  # margin: neighbours never wrap across an axis
        dims = flat.max(0).values + (d + 2)
        strides = torch.ones(d, dtype=torch.long, device=dev)
        for j in range(d - 2, -1, -1):
            strides[j] = strides[j + 1] * dims[j + 1]
        unique, inverse = torch.unique((flat * strides).sum(-1), return_inverse=True)
        self.n_vertices = len(unique)
        self.index = inverse.view(n, d + 1).t().contiguous()  # (d+1, N): vertex of each simplex corner
        self.weight = bary[:, :d + 1].t().contiguous()  # (d+1, N): barycentric weights
        self.neighbours = []
        all_ones = strides.sum()
        for j in range(d + 1):  # lattice direction j: every coordinate -1 except +d on axis j
            offset = -all_ones + ((d + 1) * strides[j] if j < d else 0)
            pair = []
            for sign in (1, -1):
                key = unique + sign * offset
                idx = torch.searchsorted(unique, key).clamp_max(self.n_vertices - 1)
                pair.append(torch.where(unique[idx] == key, idx, torch.full_like(idx, self.n_vertices)))
            self.neighbours.append(pair)

    def filter(self, values: torch.Tensor) -> torch.Tensor:
        """sum_j k(f_i, f_j) v_j (up to a roughly constant factor) for values (N, L)."""
        grid = values.new_zeros(self.n_vertices + 1, values.shape[1])  # last row: an empty vertex
        for c in range(self.index.shape[0]):
            grid.index_add_(0, self.index[c], values * self.weight[c, :, None])
        for forward, backward in self.neighbours:
            blurred = grid[:-1] + 0.5 * (grid[forward] + grid[backward])
            grid = torch.cat([blurred, grid.new_zeros(1, grid.shape[1])])
        out = torch.zeros_like(values)
        for c in range(self.index.shape[0]):
            out += grid[self.index[c]] * self.weight[c, :, None]
        return out


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (L, H, W) with zero padding (truncated at 4 sigma)."""
    r = max(1, int(math.ceil(4 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    x = x[:, None]
    x = F.conv2d(x, k.view(1, 1, 1, -1), padding=(0, r))
    x = F.conv2d(x, k.view(1, 1, -1, 1), padding=(r, 0))
    return x[:, 0]


def _symmetric_norm(filtered_ones: torch.Tensor) -> torch.Tensor:
    return 1.0 / torch.sqrt(filtered_ones + 1e-20)


def mean_field(image: torch.Tensor, unary: torch.Tensor, groups: int, settings: DenseCRFSettings) -> torch.Tensor:
    """Mean-field inference; unary (L, H, W) = -log P, labels in ``groups`` independent equal-size sets.

    Returns Q (L, H, W), normalised within each group. Independent groups (e.g. one
    background/foreground pair per object) share the filtering of each iteration.
    """
    n_labels, h, w = unary.shape
    dev = unary.device
    ys, xs = torch.meshgrid(torch.arange(h, device=dev, dtype=torch.float32),
                            torch.arange(w, device=dev, dtype=torch.float32), indexing="ij")
    rgb = image.float().reshape(3, -1).t() * 255.0 / settings.bilateral_rgb
    feats = torch.cat([xs.reshape(-1, 1) / settings.bilateral_xy, ys.reshape(-1, 1) / settings.bilateral_xy, rgb], 1)
    grid = PermutohedralLattice(feats)
    norm_b = _symmetric_norm(grid.filter(torch.ones(h * w, 1, device=dev)))  # (N, 1)
    norm_g = _symmetric_norm(_gaussian_blur(torch.ones(1, h, w, device=dev), settings.gaussian_xy))  # (1, H, W)

    def normalise(energy: torch.Tensor) -> torch.Tensor:
        return torch.softmax(energy.view(groups, n_labels // groups, h, w), 1).view(n_labels, h, w)

    q = normalise(-unary)
    for _ in range(settings.iterations):
        msg_b = norm_b * grid.filter(norm_b * q.reshape(n_labels, -1).t())  # (N, L)
        msg_g = norm_g * _gaussian_blur(norm_g * q, settings.gaussian_xy)
        energy = (-unary + settings.bilateral_weight * msg_b.t().reshape(n_labels, h, w)
                  + settings.gaussian_weight * msg_g)
        q = normalise(energy)
    return q


def crf_foreground(image: torch.Tensor, probs: torch.Tensor, settings: DenseCRFSettings | None = None) -> torch.Tensor:
    """Refine K per-object foreground probabilities (K, H, W) with one binary dense CRF per object.

    image (3, H, W) in [0, 1]. Returns the mean-field foreground marginals (K, H, W).
    """
    settings = settings or DenseCRFSettings()
    p = probs.float().clamp(1e-5, 1.0 - 1e-5)
    unary = -torch.log(torch.stack([1.0 - p, p], 1).reshape(-1, *p.shape[-2:]))  # (2K, H, W): bg, fg per object
    q = mean_field(image, unary, groups=p.shape[0], settings=settings)
    return q.view(p.shape[0], 2, *p.shape[-2:])[:, 1]
