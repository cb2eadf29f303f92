"""RGMP: Fast Video Object Segmentation by Reference-Guided Mask Propagation (seed 002).

A Siamese encoder-decoder (methods.rgmp_network) sees the annotated reference frame with its
mask and the current frame with a guidance mask, the previous frame's soft probability, so it
both *detects* the object by matching the reference and *tracks* the previous mask. Nothing is
learned at test time (section 3.3):

- the reference stream is encoded once per video (once per test scale) in ``start``;
- each frame is segmented at several input scales (0.5, 0.75, 1 by default) and the object
  probabilities are averaged; unless ``scales`` is given, a scale at which the median annotated
  object would be under ``min_object_side`` pixels across is left out (the project's rule, fixed at
  the first ``start``: the paper's scales assume DAVIS-sized objects; docs/benchmarks.md, session 14);
- K objects run as a batch of K through the same network; the engine aggregates their
  probabilities with eq. (1) and hands the aggregated maps back through ``update``: they are the
  next frame's guidance masks, not binarised.

Add-on (section 4.3), off by default: online fine-tuning of the whole network on the annotated
frame with strategy-1 pairs (methods.rgmp_pairs), Adam. The paper's 1000 iterations at 1e-7 move
no weight by more than ~1e-4 with Adam; the defaults here, 100 iterations at 1e-4, are what the
project's hold-out split measured best (docs/benchmarks.md). Like OSVOS-AT's, the fine-tuning
reports ``on_finetune(step, total, loss)`` and stops when ``cancel_event`` is set.
"""
from __future__ import annotations

import copy
import threading
from typing import Any, Callable, ClassVar, Sequence

import torch
import torch.nn.functional as F

from napari_vos.data.frames import median_equivalent_diameter
from napari_vos.methods.base import MethodBase, Step
from napari_vos.methods.checkpoint import build_method, stored_config
from napari_vos.methods.rgmp_network import CONFIGS, RGMPConfig, RGMPNetwork, mask_loss, object_probability
from napari_vos.methods.rgmp_pairs import strategy1
from napari_vos.nn.padding import pad_to_multiple

_STRIDE = 32  # conv5 of the ResNet encoder


def _scaled(x: torch.Tensor, scale: float, mode: str = "bilinear") -> torch.Tensor:
    """(C, H, W) resized by ``scale`` (at least one stride), then padded to a multiple of the stride."""
    h, w = x.shape[-2:]
    size = (max(_STRIDE, round(h * scale)), max(_STRIDE, round(w * scale)))
    if size != (h, w):
        x = F.interpolate(x[None], size=size, mode=mode, align_corners=False, antialias=True)[0]
    return pad_to_multiple(x, _STRIDE)[0]


class RGMP(MethodBase):
    """Reference-guided mask propagation over a trained RGMPNetwork."""

    name: ClassVar[str] = "rgmp"
    needs_checkpoint: ClassVar[bool] = True
    map_names: ClassVar[tuple[str, ...]] = ("object_probs",)
    reports_finetune: ClassVar[bool] = True  # the online fine-tuning add-on reports its steps
    # the stride-32 encoder loses objects a few cells wide (the cells sample's 21-px cells, one scale:
    # J&F 0.34 on the first 10 frames at their own size; 0.52, 0.69, 0.78 on all 40 enlarged 1.5x, 2x, 3x):
    # the engine enlarges the frames until the median annotated object is this many pixels (two
    # stride-32 cells) across (docs/benchmarks.md, session 13)
    min_object_side: ClassVar[int | None] = 64

    def __init__(self, network: RGMPNetwork, device: torch.device | str = "cpu", seed: int = 0,
                 scales: Sequence[float] | None = None, online_finetune: bool = False, online_steps: int = 100,
                 online_lr: float = 1e-4, online_size: Sequence[int] = (256, 256),
                 on_finetune: Callable[[int, int, float], None] | None = None,
                 cancel_event: threading.Event | None = None, **options: Any) -> None:
        super().__init__(device, **options)
        self.scales = tuple(float(s) for s in (scales if scales is not None else network.config.scales))
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ValueError(f"scales must be positive numbers, got {scales!r}")
        self._pick_scales = scales is None  # the configured scales, thinned for small objects at the first start
        self.online_finetune = bool(online_finetune)
        self.online_steps = int(online_steps)
        self.online_lr = float(online_lr)
        self.online_size = (int(online_size[0]), int(online_size[1]))
        self.seed = seed
        self.on_finetune = on_finetune
        self.cancel_event = cancel_event
        # fine-tuning changes the weights: work on a copy so other videos keep the trained network
        self.network = (copy.deepcopy(network) if self.online_finetune else network).to(self.device).eval()
        self._references: dict[float, torch.Tensor] = {}
        self._guidance: torch.Tensor | None = None

    # -- protocol ------------------------------------------------------------------------
    @torch.no_grad()
    def start(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        """Encode the reference stream (annotated frame + each object's mask) once per scale."""
        image = image.to(self.device)
        objects = objects.to(self.device).float()
        if self._pick_scales:
            self.scales = self.scales_for(objects)
            self._pick_scales = False
        if self.online_finetune and self.online_steps > 0:
            self.finetune(image, objects)
        k = objects.shape[0]
        self._references = {}
        for s in self.scales:
            img = _scaled(image, s)
            masks = _scaled(objects, s)
            self._references[s] = self.network.encode_reference(img[None].expand(k, -1, -1, -1), masks[:, None])
        self._guidance = objects

    @torch.no_grad()
    def step(self, image: torch.Tensor) -> Step:
        """Segment one frame at every scale with the previous frame's probabilities as guidance; average."""
        if self._guidance is None:
            raise RuntimeError("RGMP.step called before start()")
        image = image.to(self.device)
        h, w = image.shape[-2:]
        guidance = self._guidance.to(self.device).float()
        k = guidance.shape[0]
        total = None
        for s in self.scales:
            img = _scaled(image, s)
            guide = _scaled(guidance, s)
            logits = self.network.segment(self._references[s], img[None].expand(k, -1, -1, -1), guide[:, None])
            sh, sw = max(_STRIDE, round(h * s)), max(_STRIDE, round(w * s))
            probs = object_probability(logits, tuple(img.shape[-2:]))[:, :sh, :sw].float()
            if (sh, sw) != (h, w):
                probs = F.interpolate(probs[None], size=(h, w), mode="bilinear", align_corners=False)[0]
            total = probs if total is None else total + probs
        probs = (total / len(self.scales)).clamp(0, 1)
        self._guidance = probs  # replaced by the aggregated probabilities in update()
        coarse = F.adaptive_avg_pool2d(probs[None], (max(1, h // 4), max(1, w // 4)))[0]
        return Step(probs=probs, maps={"object_probs": coarse})

    def scales_for(self, objects: torch.Tensor) -> tuple[float, ...]:
        """The scales at which the median object of ``objects`` (K, H, W) stays ``min_object_side`` pixels
        across (its equivalent diameter, 2 sqrt(area / pi)); the largest scale is always kept."""
        if not self.min_object_side:
            return self.scales
        # the engine's own measure (data/frames.py), so the scales and the working size agree on "median object"
        diameter = median_equivalent_diameter(objects.flatten(1).gt(0.5).sum(1).tolist())
        if diameter is None:
            return self.scales
        kept = tuple(s for s in self.scales if s * diameter >= self.min_object_side)
        return kept or (max(self.scales),)

    def chosen_options(self) -> dict[str, Any]:
        return {"scales": list(self.scales)}

    def update(self, probs: torch.Tensor) -> None:
        """The aggregated (eq. 1) probabilities of the last frame become the next guidance masks."""
        self._guidance = probs.detach().float()

    def remember(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        """A corrected frame becomes the new reference and guidance (without fine-tuning again)."""
        finetune, self.online_finetune = self.online_finetune, False
        try:
            self.start(image, objects)
        finally:
            self.online_finetune = finetune

    # -- add-on: online fine-tuning (section 4.3) ----------------------------------------------
    def finetune(self, image: torch.Tensor, objects: torch.Tensor) -> list[float]:
        """Fine-tune the network on strategy-1 pairs made from the annotated frame; returns the losses.

        One pair per iteration, of a randomly chosen object; batch norm statistics stay fixed
        (a single pair is no batch). Runs with gradients even inside the engine's inference mode.
        Each iteration is reported to ``on_finetune``; a set ``cancel_event`` stops after the current one.
        """
        net = self.network
        gen = torch.Generator().manual_seed(self.seed)
        losses: list[float] = []
        with torch.inference_mode(False), torch.enable_grad(), torch.autocast(self.device.type, enabled=False):
            img = image.detach().clone().float()  # a normal tensor: the engine's may be an inference tensor
            objs = objects.detach().clone().float()
            params = [p for p in net.parameters() if p.requires_grad]
            opt = torch.optim.Adam(params, lr=self.online_lr)
            net.eval()
            misses = 0
            while len(losses) < self.online_steps and misses < 10 * self.online_steps + 10:
                if self.cancel_event is not None and self.cancel_event.is_set():
                    break
                obj = int(torch.randint(0, objs.shape[0], (), generator=gen))
                pair = strategy1(img, objs[obj], self.online_size, gen)
                if pair is None:
                    misses += 1
                    continue
                logits = net(pair.ref_image[None], pair.ref_mask[None], pair.image[None], pair.guidance[None])
                loss = mask_loss(logits, pair.mask)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                if self.on_finetune is not None:
                    self.on_finetune(len(losses), self.online_steps, losses[-1])
        return losses

    # -- construction from a checkpoint ----------------------------------------------------
    @classmethod
    def build(cls, device: torch.device | str = "cpu", checkpoint: str | None = None, **options: Any) -> "RGMP":
        """Load the network from a registered name or a safetensors path (default: the shipped one)."""
        return build_method(cls, device, checkpoint, options, "rgmp", "RGMP", _network, accept_unnamed=True)


def _network(meta: dict[str, str]) -> RGMPNetwork:
    """The network of the configuration stored in a checkpoint's metadata."""
    return RGMPNetwork(stored_config(meta, "rgmp", RGMPConfig) or CONFIGS[meta.get("config", "light")])
