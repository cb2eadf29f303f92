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

Not in the paper: with ``window="objects"`` each object's streams run in a square around it
(methods.rgmp_windows), far cheaper with many small objects such as cells; the default ``"auto"``
does so from WINDOW_MIN_OBJECTS objects on, or always for a network trained on windows (the cells
checkpoint), and runs the paper's whole frame below that.

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
from napari_vos.methods.checkpoint import build_method, checkpoint_config
from napari_vos.methods.finetune_cache import finetune_key, tune_once
from napari_vos.methods.rgmp_network import CONFIGS, RGMPConfig, RGMPNetwork, mask_loss, object_probability
from napari_vos.methods.rgmp_pairs import strategy1
from napari_vos.methods.rgmp_windows import (Square, centre_of, crop_square, groups_by_side, paste_square,
                                             square_at, window_side)
from napari_vos.nn.area_resize import area_resize
from napari_vos.nn.memory_format import place_network
from napari_vos.nn.padding import pad_to_multiple
from napari_vos.nn.precision import full_precision

_STRIDE = 32  # conv5 of the ResNet encoder
# window="auto" runs each object in its own window from this many objects on (many small objects such
# as cells: level scores at 30-40x the speed on the cells sample, docs/benchmarks.md session 16), and on
# the whole frame below it; a network trained on windows (the recipe's stage "windows", as the
# rgmp-resnet18-cells checkpoint) runs in windows whatever the number of objects
WINDOW_MIN_OBJECTS = 8
WINDOW_BATCH = 16  # windows of one side run in batches of at most this many objects (bounds memory)
MERGED = -1  # the merged foreground's group in the references (the objects' groups count from 0)


def _batch(images: torch.Tensor, n: int) -> torch.Tensor:
    """n images: a shared (3, H, W) frame repeated (a view), or an (n, 3, H, W) batch as it is."""
    return images[None].expand(n, -1, -1, -1) if images.ndim == 3 else images


def _scaled(x: torch.Tensor, scale: float, mode: str = "bilinear") -> torch.Tensor:
    """(C, H, W) or (N, C, H, W) resized by ``scale`` (at least one stride), then padded to a multiple of the stride."""
    h, w = x.shape[-2:]
    size = (max(_STRIDE, round(h * scale)), max(_STRIDE, round(w * scale)))
    if size != (h, w):
        batch = x if x.ndim == 4 else x[None]
        batch = F.interpolate(batch, size=size, mode=mode, align_corners=False, antialias=True)
        x = batch if x.ndim == 4 else batch[0]
    return pad_to_multiple(x, _STRIDE)[0]


class RGMP(MethodBase):
    """Reference-guided mask propagation over a trained RGMPNetwork."""

    name: ClassVar[str] = "rgmp"
    needs_checkpoint: ClassVar[bool] = True
    map_names: ClassVar[tuple[str, ...]] = ("object_probs",)
    map_grids: ClassVar[dict[str, int | None]] = {"object_probs": None}
    reports_finetune: ClassVar[bool] = True  # the online fine-tuning add-on reports its steps
    # the stride-32 encoder loses objects a few cells wide (the cells sample's 21-px cells, one scale:
    # J&F 0.34 on the first 10 frames at their own size; 0.52, 0.69, 0.78 on all 40 enlarged 1.5x, 2x, 3x):
    # the engine enlarges the frames until the median annotated object is this many pixels (two
    # stride-32 cells) across (docs/benchmarks.md, session 13)
    min_object_side: ClassVar[int | None] = 64

    def __init__(self, network: RGMPNetwork, device: torch.device | str = "cpu", seed: int = 0,
                 scales: Sequence[float] | None = None, online_finetune: bool = False, online_steps: int = 100,
                 online_lr: float = 1e-4, online_size: tuple[int, int] = (256, 256),
                 on_finetune: Callable[[int, int, float], None] | None = None,
                 cancel_event: threading.Event | None = None, window: str = "auto", window_margin: int = 32,
                 reuse_finetune: bool = True, background: str = "product", **options: Any) -> None:
        super().__init__(device, **options)
        self.check_option_values({"scales": scales, "online_lr": online_lr, "online_size": online_size,
                                  "window": window, "window_margin": window_margin, "background": background})
        self.background = background
        self._merged = False  # whether this pass runs the merged-foreground pass (set by start)
        self.scales = tuple(float(s) for s in (scales if scales is not None else network.config.scales))
        self._pick_scales = scales is None  # the configured scales, thinned for small objects at the first start
        self.online_finetune = bool(online_finetune)
        self.online_steps = int(online_steps)
        self.online_lr = float(online_lr)
        self.online_size = (int(online_size[0]), int(online_size[1]))
        self.seed = seed
        self.on_finetune = on_finetune
        self.cancel_event = cancel_event
        self.reuse_finetune = reuse_finetune  # the backward pass takes the forward pass's tuned weights
        # fine-tuning changes the weights: work on a copy so other videos keep the trained network
        self.network = place_network(copy.deepcopy(network) if self.online_finetune else network, self.device)
        self.window = window
        self.window_margin = int(window_margin)
        # the objects in batches: (window side, or None for the whole frame; object indices)
        self._groups: list[tuple[int | None, list[int]]] = []
        self._references: dict[tuple[int, float], torch.Tensor] = {}  # conv5 per (batch or MERGED, scale)
        self._centres: list[tuple[int, int] | None] = []  # each object's window centre (working pixels)
        self._guidance: torch.Tensor | None = None
        self._probs_buffer: torch.Tensor | None = None  # step's (K, H, W) output, reused frame after frame

    @classmethod
    def check_option_values(cls, options: dict[str, Any]) -> None:
        """The values a type cannot judge, checked when a Session is made (the types: option_types)."""
        scales = options.get("scales")
        if scales is not None and (len(scales) == 0 or any(not 0 < float(s) <= 1 for s in scales)):
            # fractions of the working size (the paper's 0.5, 0.75, 1): a scale of 100 asked a 64 px video
            # for 17300 x 17300 inputs, past max_side and into the out-of-memory killer
            raise ValueError(f"scales are fractions of the working size in (0, 1], such as [0.5, 0.75, 1.0]; "
                             f"got {scales!r} (max_side sets the working size)")
        if "online_lr" in options and not 0 < float(options["online_lr"]) < float("inf"):
            raise ValueError(f"online_lr must be a finite number > 0, got {options['online_lr']!r}")
        size = options.get("online_size")
        if size is not None and (len(size) != 2 or any(int(v) < 32 for v in size)):
            raise ValueError(f"online_size is the fine-tuning crop's (height, width), each at least 32 pixels; got {size!r}")
        if options.get("window", "auto") not in ("auto", "full", "objects"):
            raise ValueError(f"window must be 'auto', 'full' or 'objects', got {options['window']!r}")
        if options.get("background", "product") not in ("merged", "product"):
            raise ValueError(f"background must be 'merged' or 'product', got {options['background']!r}")
        if int(options.get("window_margin", 0)) < 0:
            raise ValueError(f"window_margin must be >= 0 pixels, got {options['window_margin']}")

    # -- protocol ------------------------------------------------------------------------
    @torch.no_grad()
    def start(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        """Encode the reference stream (annotated frame + each object's mask) once per scale.

        With ``window="objects"`` each object's reference is the square around its annotated mask
        (methods.rgmp_windows); objects sharing a square side are encoded as one batch.
        """
        image = image.to(self.device)
        objects = objects.to(self.device).float()
        if self._pick_scales:
            self.scales = self.scales_for(objects)
            self._pick_scales = False
        if self.online_finetune and self.online_steps > 0:
            self._finetune_once(image, objects)
        k = objects.shape[0]
        if self.window == "auto":  # fixed at the first start, like the scales
            trained_on_windows = getattr(self.network, "trained_stage", None) == "windows"
            self.window = "objects" if k >= WINDOW_MIN_OBJECTS or trained_on_windows else "full"
        sides = [window_side(objects[i], self.window_margin) if self.window == "objects" else None
                 for i in range(k)]
        self._groups = groups_by_side(sides, WINDOW_BATCH)
        self._centres = [centre_of(objects[i]) for i in range(k)]
        self._references = {}
        for g, (side, members) in enumerate(self._groups):
            if side is None:
                images, masks = image, objects[members]
            else:
                images, masks, _ = self._windows(side, members, image, objects)
            for s in self.scales:
                self._references[g, s] = self.network.encode_reference(
                    _batch(_scaled(images, s), len(members)), _scaled(masks, s)[:, None])
        # background="merged", eq. (1)'s as the paper computes it: "the network output of the merged
        # foreground" subtracted from 1, from a reference of the objects' union (one more pass a frame;
        # with one object it is the object's own). Not the default: with the shipped checkpoint it
        # scored 53.7 against the product's 57.2 on 3-object videos (docs/methods/rgmp.md)
        self._merged = self.background == "merged" and k >= 2 and self.window == "full"
        if self._merged:
            union = objects.amax(0, keepdim=True)
            for s in self.scales:
                self._references[MERGED, s] = self.network.encode_reference(_batch(_scaled(image, s), 1),
                                                                            _scaled(union, s)[:, None])
        self._guidance = objects

    @torch.no_grad()
    def step(self, image: torch.Tensor) -> Step:
        """Segment one frame at every scale with the previous frame's probabilities as guidance; average."""
        if self._guidance is None:
            raise RuntimeError("RGMP.step called before start()")
        image = image.to(self.device)
        h, w = image.shape[-2:]
        guidance = self._guidance.to(self.device).float()
        probs = self._zeroed_probs(guidance)
        for g, (side, members) in enumerate(self._groups):
            if side is None:
                probs[members] = self._segment(g, image, guidance[members]).clamp_(0, 1)
                continue
            for i in members:  # the window follows the object's guidance; a lost object keeps its last place
                self._centres[i] = self._guidance_centre(guidance[i], side, self._centres[i])
            images, guides, squares = self._windows(side, members, image, guidance)
            inside = self._segment(g, images, guides).clamp_(0, 1)
            for j, (i, sq) in enumerate(zip(members, squares)):
                paste_square(probs[i], inside[j], sq)
        background = None
        if self._merged:  # the previous frame's merged foreground guides the merged pass
            union = guidance.sum(0, keepdim=True).clamp_(0, 1)
            background = 1 - self._segment(MERGED, image, union).clamp_(0, 1)[0]
        self._guidance = probs  # replaced by the aggregated probabilities in update()
        # the map is a pass over K full frames (60 cells at 1024 px: 50 ms): made only when shown
        size = (max(1, h // 4), max(1, w // 4))
        return Step(probs=probs, background=background,
                    maps={"object_probs": lambda: area_resize(probs[None], size)[0]})

    def _zeroed_probs(self, guidance: torch.Tensor) -> torch.Tensor:
        """A zeroed (K, H, W) tensor for this frame's probabilities: last frame's, once the engine has
        replaced it by the aggregate (``update``). Zeroing memory in use is ~7x cheaper than a new
        allocation's page faults (60 cells at 1024 px: 9 against 60 ms)."""
        buffer = self._probs_buffer
        if (buffer is None or buffer is guidance or buffer.shape != guidance.shape
                or buffer.dtype != guidance.dtype or buffer.device != guidance.device):
            buffer = guidance.new_zeros(guidance.shape)
        else:
            buffer.zero_()
        self._probs_buffer = buffer
        return buffer

    @staticmethod
    def _guidance_centre(guidance: torch.Tensor, side: int, last: tuple[int, int]) -> tuple[int, int]:
        """The centre of an object's guidance above 0.5, searched in its last window: outside it the
        object's probability was 0 (and its aggregated share tiny), so the result is that of the whole
        frame, at a window's cost. The last centre when the object is lost."""
        square = square_at(last, side)
        found = centre_of(crop_square(guidance, square))
        return last if found is None else (square.y0 + found[0], square.x0 + found[1])

    def _windows(self, side: int, members: list[int], image: torch.Tensor,
                 masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[Square]]:
        """Each member's square (at its current centre) cut from the frame (n, 3, s, s) and from its own
        (K, H, W) mask or guidance (n, s, s), and the squares."""
        squares = [square_at(self._centres[i], side) for i in members]
        return (torch.stack([crop_square(image, sq) for sq in squares]),
                torch.stack([crop_square(masks[i], sq) for i, sq in zip(members, squares)]), squares)

    def _segment(self, group: int, images: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        """Object probabilities (n, H, W) of group ``group``: images (3, H, W) shared or (n, 3, H, W), guidance (n, H, W);
        the mean over the test scales, each upsampled back to (H, W)."""
        n = guidance.shape[0]
        h, w = guidance.shape[-2:]
        total = None
        for s in self.scales:
            img = _batch(_scaled(images, s), n)
            logits = self.network.segment(self._references[group, s], img, _scaled(guidance, s)[:, None])
            sh, sw = max(_STRIDE, round(h * s)), max(_STRIDE, round(w * s))
            probs = object_probability(logits, tuple(img.shape[-2:]))[:, :sh, :sw].float()
            if (sh, sw) != (h, w):
                probs = F.interpolate(probs[None], size=(h, w), mode="bilinear", align_corners=False)[0]
            total = probs if total is None else total + probs
        return total / len(self.scales)

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
        chosen: dict[str, Any] = {"scales": list(self.scales), "window": self.window}
        if self.background == "merged":  # windows take the product: a window holds one object (recorded as run)
            chosen["background"] = "merged" if self.window == "full" else "product"
        return chosen

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
    def _finetune_once(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        """Fine-tune, or take the tuned weights a pass of this run (or an earlier run) already made
        from the same frame, masks, checkpoint and settings (methods.finetune_cache)."""
        key = None
        if self.reuse_finetune:
            settings = repr((self.network.config, self.online_steps, self.online_lr, self.online_size, self.seed,
                             str(self.device)))
            key = finetune_key(self.name, getattr(self, "checkpoint_sha256", None), settings, (image, objects))
        # finished: not cancelled (nor short of pairs)
        tune_once(key, self.network, lambda: len(self.finetune(image, objects)) == self.online_steps, self.run_memo)

    def finetune(self, image: torch.Tensor, objects: torch.Tensor) -> list[float]:
        """Fine-tune the network on strategy-1 pairs made from the annotated frame; returns the losses.

        One pair per iteration, of a randomly chosen object; batch norm statistics stay fixed
        (a single pair is no batch). Runs with gradients even inside the engine's inference mode.
        Each iteration is reported to ``on_finetune``; a set ``cancel_event`` stops after the current one.
        """
        net = self.network
        gen = torch.Generator().manual_seed(self.seed)
        losses: list[float] = []
        with torch.inference_mode(False), torch.enable_grad(), full_precision(self.device):
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
    """The network of the configuration stored in a checkpoint's metadata, with the training stage
    it was exported from (``trained_stage``: a "windows" network runs in per-object windows)."""
    network = RGMPNetwork(checkpoint_config(meta, "rgmp", RGMPConfig, CONFIGS, "light"))
    network.trained_stage = meta.get("stage")
    return network
