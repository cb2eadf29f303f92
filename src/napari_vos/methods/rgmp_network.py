"""RGMP's network (seed 002, section 3.1): Siamese 4-channel encoder, global convolution, decoder.

- **Encoder**: a ResNet whose first convolution takes RGB + one mask channel: the mask's extra
  filters (``mask_conv``) are added to the RGB filters' response before the first batch norm,
  which is exactly a 4-channel first layer whose RGB part keeps the backbone's weights. The same
  encoder (shared parameters) runs the reference stream (annotated frame + its mask) and the
  target stream (current frame + guidance mask = previous frame's soft probability).
- **Global convolution block**: the two streams' conv5 features concatenated, global
  convolution (k = 7) + residual block, no batch norm (nn.global_conv).
- **Decoder**: three refinement modules with skips from the target stream's conv4, conv3, conv2
  (nn.refinement), a final 3x3 convolution giving two channels (background, object) at 1/4 of
  the input size; softmax over the two channels gives the object probability.

The ResNet is kept as ``backbone`` (nn.backbones.ResNetFeatures), so the backbone tensors of the
project's FRTM checkpoint (``backbone.*``) load into it unchanged.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from napari_vos.nn.backbone_freeze import FreezableBatchNorm
from napari_vos.nn.backbones import ResNetFeatures, feature_channels
from napari_vos.nn.global_conv import GlobalConvBlock
from napari_vos.nn.refinement import RefinementModule


@dataclass
class RGMPConfig:
    """One RGMP configuration: backbone, decoder width, global-convolution kernel, test scales."""

    backbone: str = "resnet18"
    channels: int = 256
    gc_kernel: int = 7
    scales: tuple[float, ...] = (0.5, 0.75, 1.0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["scales"] = list(self.scales)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RGMPConfig":
        d = dict(d)
        if "scales" in d:
            d["scales"] = tuple(float(s) for s in d["scales"])
        return cls(**d)


CONFIGS: dict[str, RGMPConfig] = {
    # the paper: ResNet-50 encoder, 256-channel global convolution and decoder
    "paper": RGMPConfig(backbone="resnet50", channels=256),
    # CPU-friendly: ResNet-18 encoder (the project's shared backbone), 128-channel decoder
    "light": RGMPConfig(backbone="resnet18", channels=128),
}


class SiameseEncoder(nn.Module):
    """(image (N,3,H,W) in [0,1], mask (N,1,H,W) in [0,1]) -> conv2..conv5 features (strides 4..32)."""

    def __init__(self, backbone: str = "resnet18", backbone_weights: str | None = None) -> None:
        super().__init__()
        self.backbone = ResNetFeatures(backbone, weights=backbone_weights)
        first = self.backbone.stem[0]
        # the extra single-channel filters of the 4-channel first layer (initialised randomly, as in
        # the paper); their response is added to that of the RGB filters
        self.mask_conv = nn.Conv2d(1, first.out_channels, first.kernel_size, stride=first.stride,
                                   padding=first.padding, bias=False)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        bb = self.backbone
        conv1, bn1, relu, maxpool = bb.stem
        x = conv1((image - bb.mean) / bb.std) + self.mask_conv(mask)
        x = maxpool(relu(bn1(x)))
        out: dict[str, torch.Tensor] = {}
        for name in ("conv2", "conv3", "conv4", "conv5"):
            x = getattr(bb, name)(x)
            out[name] = x
        return out


class RGMPDecoder(nn.Module):
    """Global convolution on [reference conv5, target conv5], then three refinement modules -> 2 logits at 1/4."""

    def __init__(self, feature_ch: tuple[int, int, int, int], channels: int = 256, k: int = 7) -> None:
        super().__init__()
        c2, c3, c4, c5 = feature_ch
        self.gc = GlobalConvBlock(2 * c5, channels, k)
        self.refine4 = RefinementModule(c4, channels)  # 1/32 -> 1/16
        self.refine3 = RefinementModule(c3, channels)  # 1/16 -> 1/8
        self.refine2 = RefinementModule(c2, channels)  # 1/8 -> 1/4
        self.predict = nn.Conv2d(channels, 2, 3, padding=1)

    def forward(self, reference_conv5: torch.Tensor, target: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.gc(torch.cat([reference_conv5, target["conv5"]], dim=1))
        x = self.refine4(target["conv4"], x)
        x = self.refine3(target["conv3"], x)
        x = self.refine2(target["conv2"], x)
        return self.predict(F.relu(x))


class RGMPNetwork(FreezableBatchNorm, nn.Module):
    """The whole Siamese encoder-decoder. ``forward`` returns the 2-channel logits at 1/4 resolution."""

    def __init__(self, config: RGMPConfig, backbone_weights: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.encoder = SiameseEncoder(config.backbone, backbone_weights)
        self.decoder = RGMPDecoder(feature_channels(config.backbone), config.channels, config.gc_kernel)

    def encode(self, image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """One stream of the Siamese encoder (the same weights for reference and target)."""
        return self.encoder(image, mask)

    def encode_reference(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The reference stream: only its conv5 features enter the global convolution block."""
        return self.encode(image, mask)["conv5"]

    def segment(self, reference_conv5: torch.Tensor, image: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        """Target stream + decoder: logits (N, 2, H/4, W/4) for image (N,3,H,W) and guidance (N,1,H,W)."""
        return self.decoder(reference_conv5, self.encode(image, guidance))

    def forward(self, ref_image: torch.Tensor, ref_mask: torch.Tensor, image: torch.Tensor,
                guidance: torch.Tensor) -> torch.Tensor:
        return self.segment(self.encode_reference(ref_image, ref_mask), image, guidance)


def object_probability(logits: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Softmax over (background, object) logits (N, 2, h, w) -> object probability (N, h, w).

    With ``size`` the logits are upsampled bilinearly first (the mask output is at 1/4 of the input).
    In float32 whatever the autocast: a bf16 probability near 1 is rounded to 1 - 1/256, which
    changes the odds the engine's soft aggregation weighs neighbouring objects by.
    """
    logits = logits.float()
    if size is not None and tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return torch.softmax(logits, dim=1)[:, 1]


def load_backbone_from(network: RGMPNetwork, state: dict[str, torch.Tensor]) -> int:
    """Copy ``backbone.*`` tensors of another method's checkpoint (e.g. FRTM's) into the encoder.

    Returns how many tensors were copied; raises ValueError when none fits (other backbone).
    """
    own = network.encoder.backbone.state_dict()
    fitting = {k[len("backbone."):]: v for k, v in state.items()
               if k.startswith("backbone.") and k[len("backbone."):] in own
               and tuple(own[k[len("backbone."):]].shape) == tuple(v.shape)}
    if not fitting:
        raise ValueError(f"no backbone tensor of the checkpoint fits the {network.config.backbone} encoder")
    network.encoder.backbone.load_state_dict(fitting, strict=False)
    return len(fitting)


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the 2-channel logits (N, 2, h, w), upsampled to the mask size, against (N, H, W) {0, 1}."""
    if tuple(logits.shape[-2:]) != tuple(target.shape[-2:]):
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits.float(), (target > 0.5).long())
