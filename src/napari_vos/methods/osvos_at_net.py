"""OSVOS-AT's network: the OSVOS foreground FCN with one attention layer per side output (seed 000).

Chanda & Wang build on the foreground FCN of OSVOS (Caelles et al., CVPR 2017): a backbone in
five stages whose stages 2..5 give four feature maps X^1..X^4 at four scales. After each one an
attention layer F (eq. 1: a convolution from C channels to one map, then a sigmoid) gives A^i,
and the attention-weighted features Z^i = A^i * X^i (eq. 2) are upsampled to the input size,
concatenated and fused by a final convolution into the mask score. In the student stream the
teacher's attention maps are added to the student's own before Z^i is formed (eq. 6):
A_new^i = A_s^i + A_t^i. Training minimises the class-balanced cross-entropy of eq. (5).

Backbones: ``vgg16`` (the paper's: VGG-16 stages conv1..conv5, X^i at strides 2, 4, 8, 16) and
``resnet18`` (the light CPU configuration: stem, conv2_x..conv5_x, X^i at strides 4..32, whose
weights can start from the project's FRTM-trained ResNet-18).

Several objects share one backbone pass: the attention layers and the fusion have one output per
object (the parent network's single-object weights copied K times, see ``AttentionHeads.expanded``),
so each object gets its own attention maps and its own mask score.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple, Sequence

import torch
from torch import nn
import torch.nn.functional as F

from napari_vos.nn.backbones import IMAGENET_MEAN, IMAGENET_STD, ResNetFeatures
from napari_vos.nn.vgg import vgg16_features
from napari_vos.nn import losses

N_STAGES = 5


@dataclass
class OSVOSATConfig:
    """One configuration: the backbone and the defaults of the online fine-tuning for it."""

    backbone: str = "resnet18"
    side_channels: int = 16  # OSVOS's side-output preparation width
    # light defaults from a sweep on the project's hold-out split (docs/benchmarks.md): tuning only the
    # heads (side outputs, attention layers, fusion) for 800 steps at 1e-3 beat tuning conv5_x too
    finetune_iterations: int = 800
    finetune_lr: float = 1e-3
    finetune_crop: int | None = 256  # random crops of this side during fine-tuning (None: whole frame)
    finetune_frozen_stages: int = 5  # leading backbone stages kept fixed during fine-tuning (5: heads only)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "OSVOSATConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


CONFIGS: dict[str, OSVOSATConfig] = {
    # The paper's: OSVOS's VGG-16 foreground FCN, every layer fine-tuned on the whole frame.
    "paper": OSVOSATConfig(backbone="vgg16", finetune_iterations=500, finetune_lr=1e-5, finetune_crop=None,
                           finetune_frozen_stages=0),
    # Light CPU configuration: ResNet-18, the whole backbone fixed while fine-tuning, 256-pixel crops.
    "light": OSVOSATConfig(),
}


class _Normalise(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return (image - self.mean) / self.std


class VGG16Stages(nn.Module):
    """VGG-16's convolutional part in five stages; a stage starts with the pooling before it."""

    channels = (128, 256, 512, 512)  # X^1..X^4 = conv2_2, conv3_3, conv4_3, conv5_3
    stage_strides = (1, 2, 4, 8, 16)
    multiple = 16

    def __init__(self, weights: str | None = None) -> None:
        super().__init__()
        layers = vgg16_features(weights)
        cuts = (0, 4, 9, 16, 23, 30)  # conv1_x | pool conv2_x | pool conv3_x | pool conv4_x | pool conv5_x
        self.stages = nn.ModuleList(nn.Sequential(*layers[a:b]) for a, b in zip(cuts[:-1], cuts[1:]))
        self.normalise = _Normalise()

    def stage(self, index: int) -> nn.Module:
        return self.stages[index]

    def run(self, x: torch.Tensor, start: int = 0, stop: int = N_STAGES) -> list[torch.Tensor]:
        """Outputs of stages start..stop-1; x is the image when start == 0, else stage start-1's output."""
        if start == 0:
            x = self.normalise(x)
        outs = []
        for i in range(start, stop):
            x = self.stages[i](x)
            outs.append(x)
        return outs


class ResNetStages(ResNetFeatures):
    """ResNet stem + conv2_x..conv5_x as five stages (parameter names as in the FRTM backbone)."""

    stage_strides = (4, 4, 8, 16, 32)
    multiple = 32
    _names = ("stem", "conv2", "conv3", "conv4", "conv5")

    def stage(self, index: int) -> nn.Module:
        return getattr(self, self._names[index])

    def run(self, x: torch.Tensor, start: int = 0, stop: int = N_STAGES) -> list[torch.Tensor]:
        if start == 0:
            x = (x - self.mean) / self.std
        outs = []
        for i in range(start, stop):
            x = getattr(self, self._names[i])(x)
            outs.append(x)
        return outs


def make_backbone(name: str, weights: str | None = None) -> nn.Module:
    if name == "vgg16":
        return VGG16Stages(weights)
    if name in ("resnet18", "resnet34"):
        return ResNetStages(name, weights=weights)
    raise ValueError(f"unknown OSVOS-AT backbone {name!r}; choose 'vgg16' (paper) or 'resnet18' (light)")


class AttentionHeads(nn.Module):
    """Eq. (1), (2), (6) and OSVOS's fusion, with one attention map and one score per object.

    attention conv  F_i: X^i (C_i channels) -> K maps, sigmoid           (eq. 1)
    side conv       P_i: Z^i (C_i) -> side_channels, 3x3 (OSVOS side-output preparation)
    fusion          1x1 conv over the concatenated upsampled P_i(Z^i), per object
    """

    def __init__(self, channels: Sequence[int], side_channels: int = 16, n_objects: int = 1) -> None:
        super().__init__()
        self.channels = tuple(channels)
        self.side_channels = side_channels
        self.n_objects = n_objects
        self.attention = nn.ModuleList(nn.Conv2d(c, n_objects, 1) for c in channels)
        self.side = nn.ModuleList(nn.Conv2d(c, side_channels, 3, padding=1) for c in channels)
        bound = (len(channels) * side_channels) ** -0.5  # nn.Conv2d's default init for a 1x1 conv
        self.fuse_weight = nn.Parameter(torch.empty(n_objects, len(channels) * side_channels).uniform_(-bound, bound))
        self.fuse_bias = nn.Parameter(torch.zeros(n_objects))

    def expanded(self, n_objects: int) -> "AttentionHeads":
        """A copy for K objects: every object starts from this (single-object) head's weights."""
        if self.n_objects != 1:
            raise ValueError("only a single-object (parent) head can be expanded to several objects")
        with torch.device("meta"):  # no initial values: every one is copied below (and the global RNG is not drawn)
            out = AttentionHeads(self.channels, self.side_channels, n_objects)
        out = out.to_empty(device=self.fuse_bias.device)
        with torch.no_grad():
            for src, dst in zip(self.attention, out.attention):
                dst.weight.copy_(src.weight.expand_as(dst.weight))
                dst.bias.copy_(src.bias.expand_as(dst.bias))
            out.side.load_state_dict(self.side.state_dict())
            out.fuse_weight.copy_(self.fuse_weight.expand_as(out.fuse_weight))
            out.fuse_bias.copy_(self.fuse_bias.expand_as(out.fuse_bias))
        return out

    def attention_maps(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """A^i = sigmoid(conv(X^i)) in [0, 1]: (N, K, h_i, w_i) per level (eq. 1)."""
        return [torch.sigmoid(conv(x)) for conv, x in zip(self.attention, features)]

    def segment(self, features: Sequence[torch.Tensor], attention: Sequence[torch.Tensor],
                size: tuple[int, int]) -> torch.Tensor:
        """Mask scores (N, K, H, W) from the features and the attention maps to weight them with.

        Z^i = A^i * X^i (eq. 2) for each object; the fusion of the upsampled, concatenated side
        outputs is computed level by level at low resolution and then upsampled, which is the
        same linear map (bilinear upsampling commutes with a 1x1 convolution) at a fraction of
        the memory.
        """
        s = self.side_channels
        out = None
        for i, (x, a) in enumerate(zip(features, attention)):
            n, c, h, w = x.shape
            k = a.shape[1]
            z = a.unsqueeze(2) * x.unsqueeze(1)  # (N, K, C, h, w)   eq. (2)
            p = self.side[i](z.reshape(n * k, c, h, w)).view(n, k, s, h, w)
            weight = self.fuse_weight[:, i * s:(i + 1) * s].view(1, k, s, 1, 1)
            level = (p * weight).sum(2)  # (N, K, h, w)
            level = F.interpolate(level, size=size, mode="bilinear", align_corners=False)
            out = level if out is None else out + level
        return out + self.fuse_bias.view(1, -1, 1, 1)


class StreamOutput(NamedTuple):
    """One stream's output: scores, its own attention A^i, and the attention used to weight X^i."""

    logits: torch.Tensor  # (N, K, H, W)
    attention: list[torch.Tensor]  # A^i (own), (N, K, h_i, w_i)
    attention_used: list[torch.Tensor]  # A_new^i = A^i + A_t^i in the student stream, else A^i


class OSVOSATNetwork(nn.Module):
    """Backbone + attention heads; one module serves both streams of the Siamese network."""

    def __init__(self, config: OSVOSATConfig, backbone_weights: str | None = None, n_objects: int = 1) -> None:
        super().__init__()
        self.config = config
        self.backbone = make_backbone(config.backbone, backbone_weights)
        self.heads = AttentionHeads(self.backbone.channels, config.side_channels, n_objects)

    @property
    def multiple(self) -> int:
        return self.backbone.multiple

    @property
    def strides(self) -> tuple[int, ...]:
        """Strides of X^1..X^4."""
        return tuple(self.backbone.stage_strides[1:])

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """X^1..X^4 of an image batch (N, 3, H, W), H and W multiples of ``multiple``."""
        return self.backbone.run(image)[1:]

    def stream(self, features: Sequence[torch.Tensor], size: tuple[int, int],
               teacher_attention: Sequence[torch.Tensor] | None = None) -> StreamOutput:
        """One stream from its features; with ``teacher_attention`` it is the student (eq. 6)."""
        own = self.heads.attention_maps(features)
        used = own if teacher_attention is None else [a_s + a_t for a_s, a_t in zip(own, teacher_attention)]
        return StreamOutput(self.heads.segment(features, used, size), own, used)

    def forward(self, image: torch.Tensor, teacher_attention: Sequence[torch.Tensor] | None = None) -> StreamOutput:
        return self.stream(self.features(image), tuple(image.shape[-2:]), teacher_attention)


def balanced_bce(logits: torch.Tensor, target: torch.Tensor, images_per_beta: int = 1,
                 weights: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """OSVOS-AT's loss, eq. (5) (nn/losses.py): logits, target (N, K, H, W), summed over the K
    objects and averaged over the N images. ``images_per_beta`` > 1 lets the parent training's
    student frames of one video share beta; 1 (one image, as OSVOS) for the fine-tuning, whose
    crops pass their ``weights`` (the whole frame's beta for an object a crop does not hold).
    """
    return losses.balanced_bce(logits, target, images_per_beta, weights).sum(-1).mean()
