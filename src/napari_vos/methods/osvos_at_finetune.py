"""OSVOS-AT's online training: fine-tune the parent network on the annotated frame(s) (section III-C).

Only the teacher stream has a ground truth at test time, so the test network is obtained by
minimising the class-balanced cross-entropy (eq. 5) of the teacher stream on the annotated
frame(s), as OSVOS does; the student stream then uses the same (copied) parameters.

For speed on a CPU two options shape each iteration:

- ``frozen_stages``: the leading backbone stages are kept fixed (OSVOS fine-tunes all of them:
  0, the paper configuration). Their outputs are computed once per augmented view and reused, so
  an iteration runs only the later stages and the heads, forward and backward.
- ``crop``: each iteration sees a random window of this side (aligned to the coarsest stride,
  centred on the object 70 % of the time) instead of the whole frame. Eq. 5's beta is the window's
  own, except for an object with no pixel in the window, which takes the whole frame's: with its
  own (beta = 1) the window's false positives would cost nothing.

Augmented views (as OSVOS augments the first frame): the frame, its mirror image and two
rescaled copies (x0.8, x1.2). The loss is reported per iteration through ``progress(step, total,
loss)``; a set ``cancel_event`` stops the fine-tuning after the current iteration.
"""
from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from napari_vos.methods.osvos_at_net import N_STAGES, OSVOSATNetwork, balanced_bce
from napari_vos.nn.losses import balance_weights
from napari_vos.nn.padding import pad_to_multiple
from napari_vos.nn.precision import full_precision

ProgressFn = Callable[[int, int, float], None]


@dataclass
class FinetuneSettings:
    """OSVOS-AT's online fine-tuning on the annotated frame: iterations, optimiser, crop and frozen stages."""

    iterations: int = 100
    lr: float = 1e-4
    crop: int | None = 256
    frozen_stages: int = 3
    optimizer: str = "adam"  # "adam" or "sgd" (momentum 0.9, as the paper's SGD)
    augment: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.iterations < 0:
            raise ValueError(f"finetune_iterations must be >= 0, got {self.iterations}")
        if not 0 < self.lr < float("inf"):  # (nan too)
            raise ValueError(f"finetune_lr must be a finite number > 0, got {self.lr}")
        if not 0 <= self.frozen_stages <= N_STAGES:
            raise ValueError(f"finetune_frozen_stages must be in 0..{N_STAGES} (5: heads only), "
                             f"got {self.frozen_stages}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"finetune_optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.crop is not None and self.crop < 32:
            raise ValueError(f"finetune_crop must be None or at least 32 pixels, got {self.crop}")


@dataclass
class FinetuneReport:
    """What a fine-tuning did: its losses, whether it was cancelled, how long it took."""

    losses: list[float] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0

    @property
    def iterations(self) -> int:
        return len(self.losses)


@dataclass
class _View:
    image: torch.Tensor  # (1, 3, H, W), padded
    mask: torch.Tensor  # (1, K, H, W)
    frozen: list[torch.Tensor]  # outputs of the frozen stages, (1, C, h, w) each
    weights: tuple[torch.Tensor, torch.Tensor]  # eq. 5's (beta, 1 - beta) of the whole view, (1, K) each:
    # a window's objects that it does not hold take these (see _crop_weights)


def augmented_views(image: torch.Tensor, objects: torch.Tensor, augment: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The annotated frame (3, H, W) / (K, H, W) and, with ``augment``, a mirror and two rescaled copies."""
    views = [(image, objects)]
    if not augment:
        return views
    views.append((image.flip(-1), objects.flip(-1)))
    h, w = image.shape[-2:]
    for scale, flip in ((0.8, False), (1.2, True)):
        size = (max(32, round(h * scale)), max(32, round(w * scale)))
        img = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
        obj = (F.interpolate(objects[None], size=size, mode="bilinear", align_corners=False)[0] > 0.5).float()
        views.append((img.flip(-1), obj.flip(-1)) if flip else (img, obj))
    return views


def _crop_window(mask: torch.Tensor, crop: int | None, multiple: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(y0, x0, h, w) aligned to ``multiple``; centred on a random object pixel 70 % of the time."""
    _, _, h, w = mask.shape
    if crop is None:
        return 0, 0, h, w
    side = max(multiple, crop // multiple * multiple)
    ch, cw = min(side, h), min(side, w)
    fg = torch.nonzero(mask[0].amax(0) > 0.5)
    if len(fg) and rng.random() < 0.7:
        cy, cx = (int(v) for v in fg[int(rng.integers(len(fg)))])
    else:
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0 = int(np.clip(cy - ch // 2, 0, h - ch)) // multiple * multiple
    x0 = int(np.clip(cx - cw // 2, 0, w - cw)) // multiple * multiple
    return y0, x0, ch, cw


def _crop_weights(target: torch.Tensor, frame: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 5's (beta, 1 - beta) for a crop's target (1, K, h, w): the crop's own, except for an object
    with no pixel in it or filling it, which takes the whole view's (its own beta would be 1 or 0:
    one class weighted 0, a zero loss)."""
    w_pos, w_neg = balance_weights(target)
    one_class = (w_pos == 0) | (w_neg == 0)
    return torch.where(one_class, frame[0], w_pos), torch.where(one_class, frame[1], w_neg)


def _pooled_weights(views: list[_View]) -> None:
    """A view where an object has one class only (absent from a correction frame, or filling the
    frame) takes the beta of all the views together, or 1/2 where every view has one class only:
    its own beta would weigh the class it holds 0, and the view would train nothing for it."""
    positive = sum((v.mask > 0.5).flatten(-2).sum(-1).float() for v in views)
    total = float(sum(v.mask.shape[-2] * v.mask.shape[-1] for v in views))
    pooled = (total - positive) / total
    pooled = torch.where((pooled == 0) | (pooled == 1), torch.full_like(pooled, 0.5), pooled)
    for v in views:
        bad = (v.weights[0] == 0) | (v.weights[1] == 0)
        v.weights = (torch.where(bad, pooled, v.weights[0]), torch.where(bad, 1 - pooled, v.weights[1]))


def _stream_on_window(network: OSVOSATNetwork, view: _View, frozen: int,
                      window: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-stream logits and the target inside a window of one view."""
    y0, x0, ch, cw = window
    strides = network.backbone.stage_strides
    if frozen:
        outs = [f[..., y0 // s:(y0 + ch) // s, x0 // s:(x0 + cw) // s] for f, s in zip(view.frozen, strides)]
        outs += network.backbone.run(outs[-1], frozen, N_STAGES)
    else:
        outs = network.backbone.run(view.image[..., y0:y0 + ch, x0:x0 + cw])
    out = network.stream(outs[1:], (ch, cw))
    return out.logits, view.mask[..., y0:y0 + ch, x0:x0 + cw]


def finetune(network: OSVOSATNetwork, images: Sequence[torch.Tensor], objects: Sequence[torch.Tensor],
             settings: FinetuneSettings, progress: ProgressFn | None = None,
             cancel_event: threading.Event | None = None) -> FinetuneReport:
    """Fine-tune ``network`` in place on annotated frames (3, H, W) with masks (K, H, W).

    Runs with autograd on even when called inside ``torch.inference_mode`` (as the engine calls
    ``start``), and in float32 (autocast off). Batch-norm statistics stay fixed (eval mode).
    """
    report = FinetuneReport()
    device = next(network.parameters()).device
    with ExitStack() as stack:
        stack.enter_context(torch.inference_mode(False))
        stack.enter_context(torch.enable_grad())
        stack.enter_context(full_precision(device))  # MPS too: the session's autocast stays off here
        return _finetune(network, images, objects, settings, progress, cancel_event, report, device)


def _finetune(network: OSVOSATNetwork, images: Sequence[torch.Tensor], objects: Sequence[torch.Tensor],
              settings: FinetuneSettings, progress: ProgressFn | None, cancel_event: threading.Event | None,
              report: FinetuneReport, device: torch.device) -> FinetuneReport:
    tic = time.perf_counter()
    rng = np.random.default_rng(settings.seed)
    network.eval()
    frozen = settings.frozen_stages
    multiple = network.multiple
    views: list[_View] = []
    with torch.no_grad():
        for image, masks in zip(images, objects):
            image = image.detach().clone().float().to(device)  # a normal tensor, also from inference mode
            masks = masks.detach().clone().float().to(device)
            for img, obj in augmented_views(image, masks, settings.augment):
                img_p, _ = pad_to_multiple(img[None], multiple)
                obj_p, _ = pad_to_multiple(obj[None], multiple)
                feats = network.backbone.run(img_p, 0, frozen) if frozen else []
                views.append(_View(img_p, obj_p, feats, balance_weights(obj[None])))
        _pooled_weights(views)
    fixed = [p for i in range(frozen) for p in network.backbone.stage(i).parameters()]
    saved = [p.requires_grad for p in fixed]
    for p in fixed:
        p.requires_grad_(False)
    params = [p for p in network.parameters() if p.requires_grad]
    if settings.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=settings.lr)
    else:
        opt = torch.optim.SGD(params, lr=settings.lr, momentum=0.9)
    try:
        for step in range(1, settings.iterations + 1):
            if cancel_event is not None and cancel_event.is_set():
                report.cancelled = True
                break
            view = views[int(rng.integers(len(views)))]
            window = _crop_window(view.mask, settings.crop, multiple, rng)
            logits, target = _stream_on_window(network, view, frozen, window)
            loss = balanced_bce(logits, target, weights=_crop_weights(target, view.weights))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = float(loss.detach())
            report.losses.append(value)
            if progress is not None:
                progress(step, settings.iterations, value)
    finally:
        for p, flag in zip(fixed, saved):
            p.requires_grad_(flag)
        network.zero_grad(set_to_none=True)
        report.seconds = time.perf_counter() - tic
    return report


@torch.no_grad()
def frame_loss(network: OSVOSATNetwork, image: torch.Tensor, objects: torch.Tensor) -> float:
    """Eq. (5) of the teacher stream on one whole frame (3, H, W) / (K, H, W)."""
    img, size = pad_to_multiple(image[None].float(), network.multiple)
    logits = network(img).logits[..., :size[0], :size[1]]
    return float(balanced_bce(logits, objects[None].float()))
