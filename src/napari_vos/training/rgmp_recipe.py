"""RGMP's two-stage training (seed 002, sections 3.2 and 3.4), as a recipe for the shared loop.

- ``stage="pretrain"``: pairs simulated from still images with masks (methods.rgmp_pairs),
  strategy 1 or strategy 2 with equal probability, the guidance a randomly deformed copy of the
  target mask, each image cropped to 256x256 around at least half of its object. The stills are
  single frames of any image/mask folder readable by ``data.readers.open_dataset`` (e.g. the
  DAVIS 2016 train sequences) and of the project's synthetic natural-like videos. The paper cuts
  foregrounds from saliency datasets and backgrounds from Pascal VOC; neither exists on these
  machines, so foregrounds and backgrounds both come from this pool, and a background's own
  objects are its occluders.
- ``stage="video"``: fine-tuning on video clips with the recurrence unrolled: a reference frame
  at a random time, then ``recurrence`` (5) target frames from a random time with random frame
  skips (1..``max_skip``); the first guidance is the ground truth of the frame before the first
  target, each later one the previous step's softmax output, not binarised and not detached, so
  the loss of every step is back-propagated through time (BPTT). Crops are 256x512.
- ``stage="windows"`` (this project's, for many small objects): the video stage's clips as RGMP's
  windows show them at inference (``window="objects"``): the object scaled to 48-96 px across, the
  reference a square around it, the target frames one square around its box on the frame before
  the first target (the first guidance), zeros outside the frame. Crops are 160x160.

Run the stages one after the other, the second starting from the first's export::

    napari-vos train rgmp --config light:pretrain ... --export rgmp-pretrain.safetensors
    napari-vos train rgmp --config light:video --init rgmp-pretrain.safetensors ...

``--init`` also accepts another method's checkpoint whose ``backbone.*`` tensors fit the encoder
(the project's FRTM ResNet-18), which is how the light configuration starts its backbone.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from napari_vos.methods.checkpoint import load_fitting
from napari_vos.methods.rgmp_network import (CONFIGS, RGMPNetwork, load_backbone_from, mask_loss,
                                             object_probability)
from napari_vos.methods.rgmp_pairs import (PairSettings, colour_perturbation, crop_window, strategy1,
                                           strategy2)
from napari_vos.methods.rgmp_windows import centre_of, crop_square, square_at
from napari_vos.nn.backbone_freeze import freeze_leading, named_stages
from napari_vos.nn.warp import affine
from napari_vos.training.clips import VideoMix
from napari_vos.training.loop import export_tensors

STAGES = ("pretrain", "video", "windows")
_STAGE_DEFAULTS = {"pretrain": {"size": (256, 256), "batch_size": 8}, "video": {"size": (256, 512), "batch_size": 4},
                   "windows": {"size": (160, 160), "batch_size": 8}}
# "windows": the object's equivalent diameter is drawn from this range (pixels), as RGMP's 64 px
# working-size rule and its per-object windows show objects at inference (methods.rgmp_windows)
_WINDOW_DIAMETERS = (48.0, 96.0)


@dataclass
class VideoSample:
    """Reference (3,h,w)/(1,h,w) and N+1 consecutive-with-skips target frames (N+1,3,h,w)/(N+1,h,w)."""

    ref_image: torch.Tensor
    ref_mask: torch.Tensor
    frames: torch.Tensor
    masks: torch.Tensor


@dataclass
class RGMPRecipe(VideoMix):
    """Draws simulated pairs (pre-training) or recurrent clips (video fine-tuning)."""

    #: Adam's rate without --lr, per stage: the documented runs' (the paper's fixed 1e-5 starts from
    #: ImageNet weights; here the decoder starts random on the FRTM backbone, so pre-training takes 1e-4)
    STAGE_LR: ClassVar[dict[str, float]] = {"pretrain": 1e-4, "video": 2e-5, "windows": 2e-5}

    config: str = "light"
    stage: str = "pretrain"
    size: tuple[int, int] | None = None
    batch_size: int | None = None
    recurrence: int = 5
    max_skip: int = 3
    min_area: float = 0.003
    real_dirs: list[str] = field(default_factory=list)
    synthetic_fraction: float = 0.5
    synthetic_source: str | None = None
    backbone_weights: str | None = None
    init_checkpoint: str | None = None
    train_backbone_from: str | None = "stem"  # first trained backbone stage; None freezes it (mask filters still train)
    pairs: PairSettings = field(default_factory=PairSettings)
    name: str = "rgmp"

    def __post_init__(self) -> None:
        if self.config not in CONFIGS:
            raise ValueError(f"unknown RGMP configuration {self.config!r}; choose one of {sorted(CONFIGS)}")
        if self.stage not in STAGES:
            raise ValueError(f"unknown RGMP training stage {self.stage!r}; choose one of {STAGES}")
        defaults = _STAGE_DEFAULTS[self.stage]
        self.size = tuple(self.size) if self.size is not None else defaults["size"]
        self.batch_size = self.batch_size or defaults["batch_size"]
        if self.stage == "windows" and self.size[0] != self.size[1]:  # it crops squares of the height's side
            raise ValueError(f"RGMP's windows stage trains on square windows: give --size NxN, not "
                             f"{self.size[1]}x{self.size[0]}")
        if self.size[0] % 32 or self.size[1] % 32:  # inference pads to 32: the refinement modules' grids line up
            raise ValueError(f"RGMP training size must be a multiple of 32, got {self.size[1]}x{self.size[0]} "
                             f"(e.g. {32 * round(self.size[1] / 32)}x{32 * round(self.size[0] / 32)})")
        h = round(self.size[0] * 1.25)
        self._bank_size = (h, max(round(self.size[1] * 1.25), round(h * 16 / 9)))
        self._init_videos()
        self._device = torch.device("cpu")  # where samples are simulated: the training device (set by build)

    @property
    def default_lr(self) -> float:
        """Adam's rate when the run names none: the stage's (`STAGE_LR`)."""
        return self.STAGE_LR[self.stage]

    @classmethod
    def from_options(cls, config: str | None = None, train_backbone_from: str | None = None,
                     **kwargs: Any) -> "RGMPRecipe":
        """Build from `napari-vos train` options; ``config`` is ``ARCH`` or ``ARCH:STAGE`` (e.g. ``light:video``)."""
        arch, _, stage = (config or "light").partition(":")
        if train_backbone_from is not None:
            kwargs["train_backbone_from"] = None if train_backbone_from == "none" else train_backbone_from
        return cls(config=arch or "light", stage=stage or "pretrain", **kwargs)

    # -- model ---------------------------------------------------------------------------
    def build(self, device: torch.device) -> RGMPNetwork:
        net = RGMPNetwork(CONFIGS[self.config], backbone_weights=self.backbone_weights)
        if self.init_checkpoint:
            from napari_vos import weights

            state, meta, name, _ = weights.load_checkpoint(self.init_checkpoint)
            if meta.get("method") == "rgmp":
                load_fitting(net, state, f"{name} does not fit the {self.config} RGMP network")
            else:
                load_backbone_from(net, state)
        # fixed stages keep training-mode batch norm, as in FRTM
        freeze_leading(named_stages(net.encoder.backbone), self.train_backbone_from)
        # video fine-tuning runs batches of a few clips one frame at a time: batch statistics of 2-4
        # images are noise, so keep the pre-trained statistics (measured: with training-mode batch norm
        # 100 steps of batch 2 took the built-in sample from J&F 0.451 to 0.179)
        net.freeze_batchnorm = self.stage in ("video", "windows")
        self._device = torch.device(device)
        return net.to(device)

    # -- data ----------------------------------------------------------------------------
    @property
    def _sample_device(self) -> torch.device:
        """Where a batch is simulated: the training device in the training process, the CPU in a
        DataLoader worker (forked after CUDA started in the parent, a worker cannot use CUDA;
        `loss` moves the batch to the training device)."""
        return torch.device("cpu") if torch.utils.data.get_worker_info() is not None else self._device

    def _real_size(self) -> tuple[int, int]:
        return self._bank_size

    def _synthetic_size(self) -> tuple[int, int]:
        return self._bank_size  # whole videos, cropped by the samples

    def _pick_object(self, labels: np.ndarray, rng: np.random.Generator) -> int | None:
        ids, counts = np.unique(labels, return_counts=True)
        keep = [int(i) for i, c in zip(ids, counts) if i != 0 and c >= self.min_area * labels.size]
        return int(rng.choice(keep)) if keep else None

    def _still(self, rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
        """One frame (3,H,W) float and its labels, from a random real or synthetic video."""
        frames, labels = self._video(rng)
        t = int(rng.integers(len(frames)))
        return torch.from_numpy(frames[t]).to(self._sample_device).permute(2, 0, 1).float() / 255, labels[t]

    def simulated_pair(self, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        """Pre-training sample: (ref image, ref mask, image, guidance, mask), strategy 1 or 2 at random."""
        g = torch.Generator().manual_seed(int(rng.integers(2**62)))
        size = tuple(self.size)
        for _ in range(100):
            image, labels = self._still(rng)
            obj = self._pick_object(labels, rng)
            if obj is None:
                continue
            mask = torch.from_numpy(labels == obj).to(self._sample_device).float()
            if rng.random() < 0.5:
                pair = strategy1(image, mask, size, g, self.pairs)
            else:
                background, bg_labels = self._still(rng)
                bg_objects = torch.from_numpy(bg_labels.astype(np.int64)).to(self._sample_device)
                pair = strategy2(image, mask, background, bg_objects, size, g, self.pairs)
            if pair is not None:
                return pair.ref_image, pair.ref_mask, pair.image, pair.guidance, pair.mask[0]
        raise RuntimeError("could not simulate a training pair in 100 tries: are the training masks empty?")

    def _clip_frames(self) -> int:
        return 1 if self.stage == "pretrain" else self.recurrence + 1

    def _min_object_area(self) -> float:
        return self.min_area

    def _frame_indices(self, n_frames: int, rng: np.random.Generator) -> list[int] | None:
        n = self.recurrence + 1
        if n_frames < n:
            return None
        skips = rng.integers(1, self.max_skip + 1, size=n - 1)
        while skips.sum() > n_frames - 1:
            skips = np.maximum(skips - 1, 1)
        start = int(rng.integers(0, n_frames - int(skips.sum())))
        idx = [start] + list(start + np.cumsum(skips))
        return [int(i) for i in (idx[::-1] if rng.random() < 0.5 else idx)]

    def _crop_stack(self, frames: torch.Tensor, masks: torch.Tensor, anchor: torch.Tensor, g: torch.Generator,
                    zoom: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
        """One random scale and one window (holding >= half of ``anchor``'s object) for a whole stack."""
        h, w = self.size
        H, W = frames.shape[-2:]
        s = max(h / H, w / W) * (zoom[0] + (zoom[1] - zoom[0]) * float(torch.rand((), generator=g)))
        out = (max(h, int(np.ceil(H * s))), max(w, int(np.ceil(W * s))))
        frames = F.interpolate(frames, size=out, mode="bilinear", align_corners=False, antialias=True)
        masks = F.interpolate(masks[:, None], size=out, mode="bilinear", align_corners=False)[:, 0]
        anchor = F.interpolate(anchor[None, None], size=out, mode="bilinear", align_corners=False)[0, 0]
        y0, x0 = crop_window(anchor > 0.5, (h, w), g, self.pairs.min_visible)
        return frames[..., y0:y0 + h, x0:x0 + w], (masks[..., y0:y0 + h, x0:x0 + w] > 0.5).float()

    def _window_crops(self, stack: torch.Tensor, masks: torch.Tensor,
                      rng: np.random.Generator) -> tuple[torch.Tensor, ...] | None:
        """Windows as at inference: the reference square around the reference object (stack[0]), one
        square for the target frames around the first target's object (its mask is the first
        guidance), both scaled so the object is 48-96 px across; None for an empty object."""
        side = self.size[0]
        first = centre_of(masks[1])
        ref_centre = centre_of(masks[0])  # None for an empty reference object: no area to scale by
        if first is None or ref_centre is None:
            return None
        area = float(masks[0].sum())
        scale = float(rng.uniform(*_WINDOW_DIAMETERS)) / (2.0 * np.sqrt(area / np.pi))
        source_side = max(1, int(round(side / scale)))

        def window(images: torch.Tensor, centre: tuple[int, int]) -> torch.Tensor:
            crop = crop_square(images, square_at(centre, source_side))
            return F.interpolate(crop, size=(side, side), mode="bilinear", align_corners=False,
                                 antialias=source_side > side)

        ref_image = window(stack[:1], ref_centre)
        ref_mask = (window(masks[:1, None], ref_centre)[:, 0] > 0.5).float()
        tgt = window(stack[1:], first)
        tgt_masks = (window(masks[1:, None], first)[:, 0] > 0.5).float()
        return ref_image, ref_mask, tgt, tgt_masks

    def video_sample(self, rng: np.random.Generator) -> VideoSample:
        """Fine-tuning sample: a reference at a random time, N+1 frames with random skips, one object."""
        g = torch.Generator().manual_seed(int(rng.integers(2**62)))
        for _ in range(100):
            sample = self._video_sample_once(rng, g)
            if sample is not None:
                return sample
        raise RuntimeError("could not draw a video clip in 100 tries: are the videos too short or the masks empty?")

    def _video_sample_once(self, rng: np.random.Generator, g: torch.Generator) -> VideoSample | None:
        """One try at `video_sample` from one drawn video; None where it gives no usable clip."""
        p = self.pairs
        frames, labels = self._video(rng)
        idx = self._frame_indices(len(frames), rng)
        if idx is None:
            return None
        obj = self._pick_object(labels[idx[0]], rng)
        if obj is None:
            return None
        present = [t for t in range(len(frames)) if (labels[t] == obj).mean() >= self.min_area]
        ref = int(rng.choice(present))
        stack = torch.from_numpy(frames[[ref] + idx]).to(self._sample_device).permute(0, 3, 1, 2).float() / 255
        masks = torch.from_numpy(labels[[ref] + idx] == obj).to(self._sample_device).float()
        if rng.random() < 0.5:
            stack, masks = stack.flip(-1), masks.flip(-1)
        if self.stage == "windows":
            cropped = self._window_crops(stack, masks, rng)
            if cropped is None:
                return None
            ref_image, ref_mask, tgt, tgt_masks = cropped
        else:
            ref_image, ref_mask = self._crop_stack(stack[:1], masks[:1], masks[0], g, (1.0, 1.3))
            tgt, tgt_masks = self._crop_stack(stack[1:], masks[1:], masks[1], g, (1.0, 1.3))
        # one mild random affine for the reference and one for the whole target run
        views = []
        for imgs, ms in ((ref_image, ref_mask), (tgt, tgt_masks)):
            u = torch.rand(4, generator=g)
            params = (float(u[0] * 2 - 1) * p.rotation * 0.5,
                      (float(u[1] * 2 - 1) * 0.05 * self.size[1], float(u[2] * 2 - 1) * 0.05 * self.size[0]),
                      0.9 + 0.2 * float(u[3]))
            views.append((colour_perturbation(affine(imgs, *params), g, p.colour),
                          (affine(ms[:, None], *params)[:, 0] > 0.5).float()))
        (ref_image, ref_mask), (tgt, tgt_masks) = views
        if float(ref_mask.sum()) < p.min_pixels or float(tgt_masks[0].sum()) < p.min_pixels:
            return None
        return VideoSample(ref_image[0], ref_mask, tgt, tgt_masks)

    def batch(self, rng: np.random.Generator) -> Any:
        if self.stage == "pretrain":
            return [self.simulated_pair(rng) for _ in range(self.batch_size)]
        return [self.video_sample(rng) for _ in range(self.batch_size)]  # video and windows

    # -- loss ------------------------------------------------------------------------------
    def loss(self, model: RGMPNetwork, batch: Any, device: torch.device) -> tuple[torch.Tensor, dict[str, float]]:
        if self.stage == "pretrain":
            ref_image, ref_mask, image, guidance, mask = (torch.stack(x).to(device) for x in zip(*batch))
            logits = model(ref_image, ref_mask, image, guidance)
            loss = mask_loss(logits, mask)
            return loss, {"iou": _iou(logits, mask), "guide_iou": _iou_masks(guidance[:, 0] > 0.5, mask)}
        ref_image = torch.stack([s.ref_image for s in batch]).to(device)
        ref_mask = torch.stack([s.ref_mask for s in batch]).to(device)
        frames = torch.stack([s.frames for s in batch]).to(device)  # B, N+1, 3, h, w
        masks = torch.stack([s.masks for s in batch]).to(device)  # B, N+1, h, w
        reference = model.encode_reference(ref_image, ref_mask)  # encoded once for the whole unrolled run
        guidance = masks[:, :1]
        losses, ious = [], []
        for t in range(1, frames.shape[1]):
            logits = model.segment(reference, frames[:, t], guidance)
            losses.append(mask_loss(logits, masks[:, t]))
            ious.append(_iou(logits, masks[:, t]))
            guidance = object_probability(logits, tuple(masks.shape[-2:]))[:, None]  # soft, kept in the graph (BPTT)
        return torch.stack(losses).mean(), {"iou": float(np.mean(ious)), "last_iou": ious[-1]}

    def export_tensors(self, model: RGMPNetwork) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """fp16 state dict and metadata for a shipped safetensors checkpoint."""
        return export_tensors(model, "rgmp", self.config, stage=self.stage,
                              train_size=f"{self.size[1]}x{self.size[0]}")


def _iou_masks(pred: torch.Tensor, target: torch.Tensor) -> float:
    t = target > 0.5
    inter = (pred & t).flatten(1).sum(1).float()
    union = (pred | t).flatten(1).sum(1).float().clamp_min(1)
    return float((inter / union).mean())


@torch.no_grad()
def _iou(logits: torch.Tensor, target: torch.Tensor) -> float:
    return _iou_masks(object_probability(logits, tuple(target.shape[-2:])) > 0.5, target)
