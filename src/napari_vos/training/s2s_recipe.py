"""S2S++'s offline training (seed 004, sections III and IV), as a recipe for the shared loop.

Each batch holds ``batch_size`` sequences, each one object of a different video (section IV-E:
several objects of one sequence in a batch hurt), of 5 to 10 consecutive frames with one random
flip and affine transform per sequence. The initializer sees the first frame and its mask; the
rest go through encoder, ConvLSTMs and decoder in order, and the loss is backpropagated through
time over the whole sequence (eq. 7, summed over the frames):

    L = sum_t [ L_seg(t) + lambda * L_dist(t) ]

L_seg is the balanced binary cross-entropy of eq. (5) (OSVOS's: positives weighted by the
background fraction beta, negatives by 1 - beta, averaged over pixels), L_dist the cross-entropy
over the border-distance classes. Videos: real sequences (DAVIS-style folders) mixed with the
project's synthetic natural-like videos.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from napari_vos.nn import losses
from napari_vos.methods.s2s_network import CONFIGS, S2SNetwork
from napari_vos.training.clips import VideoMix
from napari_vos.training.loop import export_tensors
from napari_vos.training.ordered_clips import FlipAffine, sample_ordered_clip


def balanced_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. (5) (nn/losses.py) with |Y+| and |Y-| counted over each clip's frames together:
    logits, target (B, T, H, W) -> (B, T) losses per frame, averaged over pixels.

    Counted per frame, a frame where the object is occluded or has left (|Y+| = 0) would get
    beta = 1 and so no weight on any pixel: its false positives would cost nothing, though handling
    lost objects is what the skip-memory is for. The S2S++ authors' code balances over its whole
    batch likewise.
    """
    b, t = target.shape[:2]
    per_frame = losses.balanced_bce(logits.float().flatten(0, 1)[:, None], target.flatten(0, 1)[:, None], images_per_beta=t)
    return per_frame.view(b, t)


def load_initial_weights(net: S2SNetwork, state: dict[str, torch.Tensor]) -> str:
    """Start from an S2S checkpoint (all tensors) or from another method's ``backbone.*`` (e.g. FRTM's).

    A backbone goes into both the encoder and the initializer (its RGB slice). Returns what was loaded.
    """
    try:
        if any(k.startswith("encoder.") for k in state):
            net.load_state_dict(state, strict=True)
            return "s2s"
        backbone = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        if not backbone:
            raise ValueError("the init checkpoint holds neither an S2S network nor backbone.* tensors")
        if net.config.encoder == "vgg16":
            raise ValueError("backbone.* tensors are a ResNet's; the 'paper' (VGG-16) configuration cannot use them")
        net.encoder.load_rgb_state_dict(backbone)
        net.initializer.pyramid.load_rgb_state_dict(backbone)
    except KeyError as err:  # a backbone that stops early (A-GAME's and COSNet's light ones end at conv4)
        raise ValueError(f"the init checkpoint's backbone lacks tensors S2S needs ({err.args[0] if err.args else err}); "
                         "start S2S from FRTM's checkpoint (a whole ResNet-18) instead") from None
    except RuntimeError as err:  # torch's size-mismatch listing: say what it means
        first = str(err).strip().splitlines()[-1].strip()
        raise ValueError("the init checkpoint's tensors do not fit this S2S configuration (another method's "
                         f"network, e.g. RGMP's 4-channel backbone, or another --config's): {first}") from None
    return "backbone"


@dataclass
class S2SRecipe(VideoMix):
    """Draws ordered sequences from real and synthetic videos; BPTT over each sequence."""

    default_lr: ClassVar[float] = 1e-4  # Adam's rate without --lr: the documented run's (the authors' 1e-5 starts from ImageNet weights)

    @classmethod
    def from_options(cls, train_backbone_from: str | None = None, **kwargs: Any) -> "S2SRecipe":
        """As `VideoMix.from_options`; S2S has no backbone to train in part."""
        if train_backbone_from is not None:
            raise ValueError("s2s trains its encoder and initializer end to end; --train-backbone-from does not apply")
        return cls(**kwargs)

    config: str = "light"
    size: tuple[int, int] = (256, 448)
    batch_size: int = 4
    min_length: int = 5  # frames per sequence, the annotated first one included
    max_length: int = 10
    max_stride: int = 3  # temporal stride 1..3 (DAVIS is 24 fps; YouTube-VOS's training labels are at 6 fps)
    distance_weight: float = 1.0 / 3.0  # lambda of eq. (7)
    real_dirs: list[str] = field(default_factory=list)
    synthetic_fraction: float = 0.5
    synthetic_source: str | None = None
    backbone_weights: str | None = None
    init_checkpoint: str | None = None
    name: str = "s2s"

    def __post_init__(self) -> None:
        if self.config not in CONFIGS:
            raise ValueError(f"unknown s2s configuration {self.config!r}; choose one of {', '.join(CONFIGS)}")
        if not 2 <= self.min_length <= self.max_length:
            raise ValueError(f"need 2 <= min_length <= max_length, got {self.min_length}, {self.max_length}")
        if self.size[0] % 32 or self.size[1] % 32:  # the decoder adds the encoder's stride-32 skips
            raise ValueError(f"S2S training size must be a multiple of 32, got {self.size[1]}x{self.size[0]}")
        self.classes = CONFIGS[self.config].border_classes
        self._init_videos()

    def build(self, device: torch.device) -> S2SNetwork:
        net = S2SNetwork(CONFIGS[self.config], backbone_weights=self.backbone_weights)
        if self.init_checkpoint:
            from napari_vos.weights import load_state_dict_file

            load_initial_weights(net, load_state_dict_file(self.init_checkpoint))
        # small batches: keep a pretrained backbone's batch-norm statistics
        net.freeze_batchnorm = self.starts_from_weights()
        return net.to(device)

    def _synthetic_frames(self) -> int:
        return 2 * self.max_length

    def _clip_frames(self) -> int:
        return self.min_length

    def _start_frames(self, n_frames: int) -> range:
        return range(max(n_frames - self.min_length + 1, 0))  # clips played forward only

    def batch(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """frames (B, T, 3, H, W), masks (B, T, H, W), distance classes (B, T, H, W); one length T per batch."""
        bank = self._real()
        # no longer than the longest --data video (7-frame sequences could not give 9-frame batches)
        longest = max(len(v[0]) for v in bank.videos) if bank is not None else self.max_length
        length = int(rng.integers(self.min_length, max(min(self.max_length, longest), self.min_length) + 1))
        used: set[int] = set()
        used_synthetic: set[int] = set()
        frames, masks = [], []
        for _ in range(100 * self.batch_size):
            if len(frames) == self.batch_size:
                break
            if bank is None or rng.random() < self.synthetic_fraction:
                video = self._synthetic(rng)
                if id(video[0]) in used_synthetic:
                    continue  # the pool hands out its videos at random: one of each per batch too
                used_synthetic.add(id(video[0]))
            else:
                i = int(rng.integers(len(bank)))
                if i in used and len(used) < len(bank):
                    continue  # one object per video in a batch
                used.add(i)
                video = bank.videos[i]
            clip = sample_ordered_clip(self._changed(video[0], rng), video[1], length, rng, self.size,
                                       max_step=self.max_stride, backward=False, augment=FlipAffine(),
                                       visible_only=True)
            if clip is not None:
                frames.append(clip.frames)
                masks.append(clip.masks)
        if len(frames) < self.batch_size:
            raise RuntimeError(f"could not draw {self.batch_size} sequences of {length} frames with a visible object")
        f = torch.from_numpy(np.stack(frames)).permute(0, 1, 4, 2, 3).contiguous()
        m = np.stack(masks)
        d = np.stack([[self.classes.classes(x) for x in seq] for seq in m])
        return {"frames": f, "masks": torch.from_numpy(m), "distance": torch.from_numpy(d)}

    def loss(self, model: S2SNetwork, batch: dict[str, torch.Tensor], device: torch.device
             ) -> tuple[torch.Tensor, dict[str, Any]]:
        frames = batch["frames"].to(device)
        masks = batch["masks"].to(device)
        logits, dist_logits = model(frames, masks[:, 0])
        target = masks[:, 1:]
        seg = balanced_bce(logits, target).sum(1).mean()
        loss = seg
        stats: dict[str, Any] = {"seg": float(seg.detach())}
        if dist_logits is not None:
            classes = batch["distance"][:, 1:].to(device)
            dist = F.cross_entropy(dist_logits.flatten(0, 1).float(), classes.flatten(0, 1), reduction="none")
            dist = dist.flatten(1).mean(1).unflatten(0, classes.shape[:2]).sum(1).mean()
            loss = loss + self.distance_weight * dist
            stats["dist"] = float(dist.detach())
        with torch.no_grad():
            pred = logits > 0
            truth = target > 0.5
            inter = (pred & truth).flatten(2).sum(2).float()
            union = (pred | truth).flatten(2).sum(2).float()
            iou = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
        stats["iou"] = float(iou.mean())
        stats["iou_last"] = float(iou[:, -1].mean())
        return loss, stats

    def export_tensors(self, model: S2SNetwork) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """fp16 state dict and metadata for a shipped safetensors checkpoint."""
        return export_tensors(model, "s2s", self.config, train_size=f"{self.size[1]}x{self.size[0]}")
