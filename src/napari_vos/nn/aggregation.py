"""Soft aggregation of K per-object probabilities into one distribution (RGMP eq. 1).

Each object's foreground probability p_k is turned into odds and renormalised together with
the background, so the objects compete for every pixel instead of being thresholded one by one.
The softmax over log-odds of eq. (1) is computed as odds / sum of odds (the same numbers without
a log and an exp per element). With many small objects (a field of cells) each object's
probability is zero almost everywhere: there the per-object work is done inside the object's
support box only, which makes the aggregation of 70 cells at 1024 x 1024 several times cheaper;
the result is the same up to float rounding (`_sparse_aggregate`).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

_EPS = 1e-7
#: the box-wise path is used on the CPU from this many objects on, when their boxes cover at most
#: ``_SPARSE_MAX_COVER`` of the K x H x W maps (otherwise the dense tensor ops are as fast)
_SPARSE_MIN_OBJECTS = 8
_SPARSE_MAX_COVER = 0.5


def _boxwise(objects: int, tensor: torch.Tensor) -> bool:
    """Whether ``objects`` objects in ``tensor`` take the box-wise path (enough of them, on the CPU)."""
    return objects >= _SPARSE_MIN_OBJECTS and tensor.device.type == "cpu"


def soft_aggregate(probs: torch.Tensor, out: torch.Tensor | None = None,
                   background: torch.Tensor | None = None) -> torch.Tensor:
    """Aggregate per-object probabilities (K, H, W) into (K + 1, H, W), background first.

    RGMP eq. (1): p_{i,m} = sigma(logit(p_hat_{i,m})) normalised over i, with the background
    probability p_hat_{0,m} = prod_k (1 - p_hat_{k,m}); probabilities are clamped to
    [1e-7, 1 - 1e-7]. ``background``: an (H, W) background probability to use instead of the product
    (RGMP's network output of the merged foreground, subtracted from 1). Differentiable (the dense
    path is taken whenever a gradient is needed).
    ``out``: a (K + 1, H, W) tensor the box-wise path writes into (the engine passes memory it
    reuses: a new 60 x 1024 x 1024 stack costs ~55 ms of page faults on the CPU); other paths
    return a new tensor.
    """
    if probs.ndim != 3:
        raise ValueError(f"expected probs of shape (K, H, W), got {tuple(probs.shape)}")
    if background is not None and tuple(background.shape) != tuple(probs.shape[1:]):
        raise ValueError(f"expected a background of shape {tuple(probs.shape[1:])}, got {tuple(background.shape)}")
    if uses_boxwise_output(probs) and probs.numel() > 0:
        boxes = _support_boxes(probs, _EPS)
        area = sum((y1 - y0) * (x1 - x0) for _, y0, y1, x0, x1 in boxes)
        if area <= _SPARSE_MAX_COVER * probs.numel():
            return _sparse_aggregate(probs, boxes, out, background)
    return _dense_aggregate(probs, background)


def uses_boxwise_output(probs: torch.Tensor) -> bool:
    """Whether `soft_aggregate` of these probabilities may write into an ``out`` tensor."""
    return probs.ndim == 3 and _boxwise(probs.shape[0], probs) and not probs.requires_grad


def _dense_aggregate(probs: torch.Tensor, given: torch.Tensor | None = None) -> torch.Tensor:
    p = probs.clamp(_EPS, 1.0 - _EPS)
    background = (torch.prod(1.0 - p, dim=0, keepdim=True) if given is None
                  else given.to(p.dtype)[None]).clamp(_EPS, 1.0 - _EPS)
    odds = torch.cat([background, p], dim=0)
    odds = odds / (1.0 - odds)
    return odds / odds.sum(dim=0, keepdim=True)


def _support_boxes(probs: torch.Tensor, eps: float) -> list[tuple[int, int, int, int, int]]:
    """(k, y0, y1, x0, x1) of the box holding every pixel where object k's probability exceeds
    ``eps``; objects with no such pixel are left out."""
    rows = probs.amax(dim=2) > eps  # (K, H): one pass over the stack
    boxes = []
    for k in torch.nonzero(rows.any(dim=1)).flatten().tolist():
        r = torch.nonzero(rows[k]).flatten()
        y0, y1 = int(r[0]), int(r[-1]) + 1
        c = torch.nonzero(probs[k, y0:y1].amax(dim=0) > eps).flatten()  # columns within the object's rows only
        boxes.append((k, y0, y1, int(c[0]), int(c[-1]) + 1))
    return boxes


def _sparse_aggregate(probs: torch.Tensor, boxes: list[tuple[int, int, int, int, int]],
                      out: torch.Tensor | None = None, given: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. (1) with each object's odds and its factor of the background product added only inside
    its support box; outside it the object holds the clamped 1e-7, whose share is written for all
    objects at once. Why not a library: none aggregates sparse per-object maps."""
    k, h, w = probs.shape
    eps_odds = _EPS / (1.0 - _EPS)
    log_keep_eps = math.log1p(-_EPS)
    odds_sum = torch.full((h, w), k * eps_odds, dtype=probs.dtype)
    # the product of the complements, accumulated only when the method gave no background of its own
    log_background = None if given is not None else torch.full((h, w), k * log_keep_eps, dtype=probs.dtype)
    box_odds = []
    for i, y0, y1, x0, x1 in boxes:
        p = probs[i, y0:y1, x0:x1].clamp(_EPS, 1.0 - _EPS)
        odds = p / (1.0 - p)
        odds_sum[y0:y1, x0:x1] += odds - eps_odds
        if log_background is not None:
            log_background[y0:y1, x0:x1] += torch.log1p(-p) - log_keep_eps
        box_odds.append(odds)
    background = (torch.exp(log_background) if log_background is not None
                  else given.to(probs.dtype).clone()).clamp_(_EPS, 1.0 - _EPS)
    background_odds = background / (1.0 - background)
    total = background_odds + odds_sum
    if out is None or out.shape != (k + 1, h, w) or out.dtype != probs.dtype or out.device != probs.device:
        out = torch.empty((k + 1, h, w), dtype=probs.dtype)
    out[0] = background_odds / total
    out[1:] = (eps_odds / total)[None]
    for (i, y0, y1, x0, x1), odds in zip(boxes, box_odds):
        out[i + 1, y0:y1, x0:x1] = odds / total[y0:y1, x0:x1]
    return out


def labels_from_aggregate(aggregated: torch.Tensor) -> torch.Tensor:
    """Integer labels (H, W) from an aggregated (K + 1, H, W) map: 0 background, k object k.

    ``max(dim=0).indices`` is argmax (ties go to the lower index, as with argmax), but torch's CPU
    argmax over the leading dimension of a (K + 1, H, W) tensor is ~10x slower (69 ms against 7 ms
    at 854x480, two channels): 13 % of an FRTM frame on a 2-core CPU. From 8 objects on (CPU),
    each object is compared only inside the box where it could win (`_boxwise_argmax`).
    """
    if _boxwise(aggregated.shape[0] - 1, aggregated):
        return _boxwise_argmax(aggregated)
    return aggregated.max(dim=0).indices


def _boxwise_argmax(aggregated: torch.Tensor) -> torch.Tensor:
    """Argmax over the classes of a per-pixel distribution (each pixel's K + 1 values sum to 1).

    The winner of a pixel holds at least 1 / (K + 1), so object k can only win inside the box of
    its pixels above that share (a little below it, for rounding); objects are visited in order and
    take a pixel only when strictly better, so ties go to the lower index as with argmax.
    """
    k = aggregated.shape[0] - 1
    share = 0.99 / (k + 1)
    best = aggregated[0].clone()
    labels = torch.zeros(aggregated.shape[1:], dtype=torch.int64)
    for i, y0, y1, x0, x1 in _support_boxes(aggregated[1:], share):
        window = (slice(y0, y1), slice(x0, x1))
        _claim(best, labels, window, aggregated[i + 1][window], i + 1)
    return labels


def _claim(best: torch.Tensor, labels: torch.Tensor, window: tuple[slice, slice], value: torch.Tensor,
           label: int) -> None:
    """Give ``label`` the pixels of ``window`` where ``value`` beats the best so far (strictly, so
    that of equal values the one visited first, the lower index, keeps the pixel)."""
    best_here = best[window]
    better = value > best_here
    best_here[better] = value[better]
    labels[window][better] = label


def labels_at_size(aggregated: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Labels (H, W) of an aggregated (K + 1, h, w) map resized to ``size``: the argmax of its
    bilinear resize (``F.interpolate``, ``align_corners=False``). From 8 objects on (CPU) only each
    object's box is resized (`_boxwise_resized_argmax`): 70 cells from 1024 to 2048 px would
    otherwise resize 71 full maps (1.2 GB) for one label image."""
    size = (int(size[0]), int(size[1]))
    if tuple(aggregated.shape[-2:]) == size:
        return labels_from_aggregate(aggregated)
    if _boxwise(aggregated.shape[0] - 1, aggregated):
        return _boxwise_resized_argmax(aggregated.float(), size)
    resized = F.interpolate(aggregated[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    return labels_from_aggregate(resized)


def _taps(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source rows (first, second) and the second's weight of each of ``n_out`` output rows, as
    torch's bilinear resize with ``align_corners=False`` picks them."""
    scale = torch.tensor(n_in / n_out, dtype=torch.float32)
    src = ((torch.arange(n_out, dtype=torch.float32) + 0.5) * scale - 0.5).clamp_(min=0.0)
    first = src.long().clamp_(max=n_in - 1)
    second = (first + 1).clamp_(max=n_in - 1)
    return first, second, src - first


def _outputs_touching(taps: tuple[torch.Tensor, torch.Tensor, torch.Tensor], start: int, stop: int) -> tuple[int, int]:
    """The output rows [a, b) whose first tap is in [start - 1, stop - 1], so that one of their two
    taps lies in the source rows [start, stop): the only rows a box's values reach."""
    a = int(torch.searchsorted(taps[0], start - 1, right=False))
    b = int(torch.searchsorted(taps[0], stop - 1, right=True))
    return a, b


def _resample(channel: torch.Tensor, rows: tuple, cols: tuple) -> torch.Tensor:
    """Bilinear samples of a (h, w) map at the given (first, second, weight) taps of rows and cols."""
    r0, r1, wy = rows
    c0, c1, wx = cols
    wy, wx = wy[:, None], wx[None, :]
    top, bottom = channel[r0], channel[r1]
    top = top[:, c0] * (1 - wx) + top[:, c1] * wx
    bottom = bottom[:, c0] * (1 - wx) + bottom[:, c1] * wx
    return top * (1 - wy) + bottom * wy


def _boxwise_resized_argmax(aggregated: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`labels_at_size` box by box: a resized value is a weighted mean of 2 x 2 source values, so an
    object can win an output pixel (holding at least 1 / (K + 1) there) only where one of its
    source taps lies in its box of such values; only those output pixels are computed for it."""
    k = aggregated.shape[0] - 1
    (h, w), (out_h, out_w) = aggregated.shape[-2:], size
    ty, tx = _taps(h, out_h), _taps(w, out_w)
    best = _resample(aggregated[0], ty, tx)
    labels = torch.zeros(size, dtype=torch.int64)
    for i, y0, y1, x0, x1 in _support_boxes(aggregated[1:], 0.99 / (k + 1)):
        a, b = _outputs_touching(ty, y0, y1)
        c, d = _outputs_touching(tx, x0, x1)
        if a >= b or c >= d:
            continue
        value = _resample(aggregated[i + 1], tuple(t[a:b] for t in ty), tuple(t[c:d] for t in tx))
        _claim(best, labels, (slice(a, b), slice(c, d)), value, i + 1)
    return labels


def masks_keeping_objects(resized: torch.Tensor) -> torch.Tensor:
    """{0, 1} masks of resized object masks (..., K, h, w), by the rule of `object_masks`: values above
    0.5 kept; an object the strict threshold would mostly drop (a 2-pixel line averaged to exactly 0.5
    by a halving) also keeps its values of exactly 0.5, except where another object holds the pixel;
    and an object the threshold would empty keeps its pixels of peak value, so that a method resizing
    the engine's masks once more (to its network's input size) is not told a thin or tiny painted
    object is nowhere, while an ordinary object keeps its strict mask and touching objects stay apart."""
    kept = resized > 0.5
    area = resized.flatten(-2).sum(-1)[..., None, None]  # the object's area at this size
    thin = (area >= 2) & (kept.flatten(-2).sum(-1)[..., None, None] < 0.5 * area)
    ties = (resized == 0.5) & thin
    if resized.ndim >= 3 and bool(ties.any()):  # a tie another object holds outright is that object's
        held = kept.sum(-3, keepdim=True) - kept.to(torch.int64)
        ties = ties & (held == 0)
    kept = kept | ties
    peak = resized.flatten(-2).amax(-1)[..., None, None]
    lost = ~kept.flatten(-2).any(-1)[..., None, None] & (peak > 0)
    return (kept | (lost & (resized == peak))).to(resized.dtype)


def object_masks(labels: ArrayLike, ids: list[int], size: tuple[int, int],
                 rescued: list[int] | None = None) -> torch.Tensor:
    """The (K, h, w) float {0, 1} masks of objects ``ids`` of a (H, W) integer labels image at
    ``size``: each object's mask bilinearly resized (``align_corners=False``) and thresholded at
    0.5, as resizing the full one-hot stack would give them, but computed inside each object's box
    only: 144 cells of a 2048 x 2048 frame took 8.7 s and 2.9 GB as one full-size stack. A thin
    object the strict threshold would mostly drop (a 1-pixel line halved exactly, every value 0.5)
    keeps its values of exactly 0.5. An object the threshold would empty (smaller than about one
    pixel at ``size``: a spot painted with a 1-pixel brush in a 2048-pixel frame run at 1024) keeps
    the output pixel over its own pixel nearest its centroid, so the method is given something of
    it to follow rather than an empty mask; their ids are appended to ``rescued`` when given (the
    Session warns of them).
    """
    import numpy as np
    from scipy import ndimage as ndi

    labels = np.asarray(labels)
    (height, width), (out_h, out_w) = labels.shape, (int(size[0]), int(size[1]))
    out = torch.zeros((len(ids), out_h, out_w), dtype=torch.float32)
    if not ids:
        return out
    ordered = np.asarray(ids)
    position = np.searchsorted(ordered, labels).clip(0, len(ids) - 1)
    index = np.where(ordered[position] == labels, position + 1, 0)  # id -> 1..K, others 0
    boxes = ndi.find_objects(index, max_label=len(ids))
    same = (height, width) == (out_h, out_w)
    ty, tx = (None, None) if same else (_taps(height, out_h), _taps(width, out_w))
    ties: list[tuple[int, int, int, int, int, torch.Tensor]] = []  # (k, a, b, c, d, pixels kept as ties)
    for k, box in enumerate(boxes):
        if box is None:
            continue
        (y0, y1), (x0, x1) = (box[0].start, box[0].stop), (box[1].start, box[1].stop)
        if same:
            out[k, y0:y1, x0:x1] = torch.from_numpy(index[y0:y1, x0:x1] == k + 1)
            continue
        # sampled from the box plus a one-pixel margin, so both taps of every output pixel lie in the crop
        a, b = _outputs_touching(ty, y0, y1)
        c, d = _outputs_touching(tx, x0, x1)
        if a < b and c < d:
            cy0, cx0 = max(y0 - 1, 0), max(x0 - 1, 0)
            crop = torch.from_numpy(index[cy0:min(y1 + 1, height), cx0:min(x1 + 1, width)] == k + 1).float()
            rows = (ty[0][a:b] - cy0, ty[1][a:b] - cy0, ty[2][a:b])
            cols = (tx[0][c:d] - cx0, tx[1][c:d] - cx0, tx[2][c:d])
            values = _resample(crop, rows, cols)
            kept = values > 0.5
            # a thin object (a 1-pixel line halved exactly: every value 0.5) that the strict threshold
            # would mostly drop keeps its ties, so it stays a line rather than one rescued pixel
            area = float(crop.sum()) * (out_h * out_w) / (height * width)
            if area >= 2 and float(kept.sum()) < 0.5 * area:
                ties.append((k, a, b, c, d, (values >= 0.5) & ~kept))
                kept = values >= 0.5
            out[k, a:b, c:d] = kept.float()
    # a tie pixel another object claims too (two 1-pixel lines side by side) is taken from the object
    # that holds it only as a tie: two objects with one mask cannot be told apart; where both hold it
    # as ties, the earlier one gives it up first, and an object left empty is rescued (and warned of)
    for k, a, b, c, d, tied in ties:
        others = out[:, a:b, c:d].sum(0) - out[k, a:b, c:d]
        out[k, a:b, c:d][tied & (others > 0)] = 0.0
    for k, box in enumerate(boxes):
        if box is None or bool(out[k].any()):
            continue
        # too small to survive the resize: one output pixel over one of its own
        if rescued is not None:
            rescued.append(int(ids[k]))
        (y0, y1), (x0, x1) = (box[0].start, box[0].stop), (box[1].start, box[1].stop)
        ys, xs = np.nonzero(index[y0:y1, x0:x1] == k + 1)
        mid = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))  # nearest its centroid
        out[k, min(int((y0 + ys[mid] + 0.5) * out_h / height), out_h - 1),
            min(int((x0 + xs[mid] + 0.5) * out_w / width), out_w - 1)] = 1.0
    return out
