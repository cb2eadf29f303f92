"""A-GAME's network: backbone, appearance, mask-propagation, fusion and upsampling modules (seed 003).

Per frame, with the state of one object (its mixture, the annotated frame's features and mask,
the previous soft segmentation):

- backbone: ResNet features at strides 16 (the deep features), 8 and 4;
- appearance module (methods.agame_appearance): four log-probabilities of the Gaussian mixture;
- mask-propagation module: [current deep features, annotated-frame deep features, previous soft
  segmentation, annotated-frame segmentation] -> 1x1 conv -> dilated 3x3 pyramid (1, 3, 6) -> 3x3 conv;
- fusion module: [4 log-probabilities, propagation features] -> two 3x3 convs -> coarse predictor
  (2 channels, background/target) whose soft output feeds the recurrence;
- upsampling module: the fused features blended with projected stride-8 and stride-4 features,
  a final predictor, bilinear x4.

K objects are K batch entries on shared backbone features ("one pass per object").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from napari_vos.methods.agame_appearance import AppearanceModule, MixtureParams
from napari_vos.nn.backbone_freeze import FrozenStagesKeepStatistics
from napari_vos.nn.backbones import feature_channels
from napari_vos.nn.blocks import conv, conv_over_shared_and_own
from napari_vos.nn.precision import full_precision

STRIDE = 16


@dataclass
class AGAMEConfig:
    """One A-GAME configuration; ``full`` is the paper's, ``light`` the CPU one."""

    backbone: str = "resnet18"
    deep_layer: str = "conv4"  # the stride-16 features: "conv5" (dilated, the paper) or "conv4"
    appearance_channels: int = 128  # D, the 1x1 projection of the deep features
    propagation_channels: int = 128
    fusion_channels: tuple[int, int] = (128, 64)
    upsample_channels: int = 64
    dilations: tuple[int, ...] = (1, 3, 6)
    n_components: int = 4
    update_rate: float = 0.1  # lambda
    cov_reg_init: float = -2.0  # softplus(-2) = 0.127

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AGAMEConfig":
        d = dict(d)
        for key in ("fusion_channels", "dilations"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


CONFIGS: dict[str, AGAMEConfig] = {
    # the paper: ResNet-101, last block dilated (stride 16), 2048 -> 512 projection, 512-channel heads
    "full": AGAMEConfig(backbone="resnet101", deep_layer="conv5", appearance_channels=512, propagation_channels=512,
                        fusion_channels=(512, 128), upsample_channels=128),
    # CPU: ResNet-18 up to conv4_x (stride 16 without dilation, no conv5_x), heads at a quarter width
    "light": AGAMEConfig(),
}


def make_config(name: str, **overrides: Any) -> AGAMEConfig:
    if name not in CONFIGS:
        raise ValueError(f"unknown A-GAME configuration {name!r}; choose one of {sorted(CONFIGS)}")
    return replace(CONFIGS[name], **overrides)


def conv_relu(in_ch: int, out_ch: int, k: int = 3, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(conv(in_ch, out_ch, k, dilation=dilation), nn.ReLU(inplace=True))


class DilationPyramid(nn.Module):
    """Parallel 3x3 convs with different dilations, concatenated, ReLU."""

    def __init__(self, in_ch: int, out_ch: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(conv(in_ch, out_ch, 3, dilation=d) for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(torch.cat([c(x) for c in self.convs], 1))


class MaskPropagation(nn.Module):
    """[x_t, x_0, y_{t-1}, y_0] -> 1x1 conv -> dilated pyramid -> 3x3 conv (RGMP-like, ref. [16])."""

    def __init__(self, deep_ch: int, ch: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.layers = nn.Sequential(conv_relu(2 * deep_ch + 4, ch, 1), DilationPyramid(ch, ch, dilations),
                                    conv_relu(len(dilations) * ch, ch, 3))

    def forward(self, current: torch.Tensor, reference: torch.Tensor, previous_seg: torch.Tensor,
                reference_seg: torch.Tensor) -> torch.Tensor:
        """current/reference: (1 or K, C, h, w), shared by the K objects when 1; the masks (K, 2, h, w)."""
        if current.shape[0] == reference.shape[0] == 1 < previous_seg.shape[0]:
            head = conv_over_shared_and_own(self.layers[0][0], torch.cat([current, reference], 1),
                                             torch.cat([previous_seg, reference_seg], 1))
            return self.layers[2:](self.layers[1](F.relu(head, inplace=True)))
        k = previous_seg.shape[0]
        return self.layers(torch.cat([_expand(current, k), _expand(reference, k), previous_seg, reference_seg], 1))


class Fusion(nn.Module):
    """[4 log-probabilities, propagation features] -> two 3x3 convs -> coarse predictor (2 channels)."""

    def __init__(self, n_slots: int, prop_ch: int, channels: tuple[int, int]) -> None:
        super().__init__()
        self.layers = nn.Sequential(conv_relu(n_slots + prop_ch, channels[0]), conv_relu(channels[0], channels[1]))
        self.predictor = conv(channels[1], 2, 1)

    def forward(self, log_probs: torch.Tensor, propagation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # float32 even under autocast: log-probabilities of outlying features exceed the fp16 range
        with full_precision(propagation):
            h = self.layers(torch.cat([log_probs.float(), propagation.float()], 1))
            return h, self.predictor(h)


class Upsampling(nn.Module):
    """Blend the fused features with projected stride-8 then stride-4 features; predictor; x4."""

    def __init__(self, fused_ch: int, s8_ch: int, s4_ch: int, ch: int) -> None:
        super().__init__()
        self.project_s8 = conv_relu(s8_ch, ch, 1)
        self.blend_s8 = conv_relu(ch + fused_ch, ch, 3)
        self.project_s4 = conv_relu(s4_ch, ch, 1)
        self.blend_s4 = conv_relu(2 * ch, ch, 3)
        self.predictor = conv(ch, 2, 3)

    def forward(self, s8: torch.Tensor, s4: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(fused, size=s8.shape[-2:], mode="bilinear", align_corners=False)
        h = F.relu(conv_over_shared_and_own(self.blend_s8[0], self.project_s8(s8), h), inplace=True)
        h = F.interpolate(h, size=s4.shape[-2:], mode="bilinear", align_corners=False)
        h = F.relu(conv_over_shared_and_own(self.blend_s4[0], self.project_s4(s4), h), inplace=True)
        logits = self.predictor(h)
        return F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)


@dataclass
class AGAMEState:
    """What A-GAME carries from frame to frame for K objects."""

    mixture: MixtureParams
    reference_features: torch.Tensor  # (1 or K, C, h, w) deep features of the annotated frame
    reference_seg: torch.Tensor  # (K, 2, h, w) its (background, target) mask at stride 16
    previous_seg: torch.Tensor  # (K, 2, h, w) the last soft segmentation at stride 16


@dataclass
class Prediction:
    """One frame's outputs for K objects."""

    logits: torch.Tensor  # (K, 2, H, W) final (background, target) scores
    coarse_logits: torch.Tensor  # (K, 2, h, w) at stride 16
    log_probs: torch.Tensor  # (K, 4, h, w) appearance module output
    appearance_features: torch.Tensor  # (1 or K, D, h, w) projected deep features, for the update
    extra: dict[str, torch.Tensor] = field(default_factory=dict)


class AGAMENetwork(FrozenStagesKeepStatistics, nn.Module):
    """All trained parts of A-GAME, with the per-frame recurrence as methods."""

    def __init__(self, config: AGAMEConfig, backbone_weights: str | None = None) -> None:
        super().__init__()
        self.config = config
        deep_ch = self._make_stride16_backbone(config, backbone_weights)
        c2, c3, _, _ = feature_channels(config.backbone)
        self.appearance = AppearanceModule(deep_ch, config.appearance_channels, config.cov_reg_init)
        self.propagation = MaskPropagation(deep_ch, config.propagation_channels, config.dilations)
        self.fusion = Fusion(4, config.propagation_channels, config.fusion_channels)
        self.upsample = Upsampling(config.fusion_channels[1], c3, c2, config.upsample_channels)

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, H, W) in [0, 1], H and W multiples of 16 -> {"s16", "s8", "s4"}."""
        f = self.backbone(images, upto=self.config.deep_layer)
        return {"s16": f[self.config.deep_layer], "s8": f["conv3"], "s4": f["conv2"]}

    def init_state(self, feats: dict[str, torch.Tensor], seg: torch.Tensor,
                   n_components: int | None = None) -> AGAMEState:
        """Start from the annotated frame: seg (K, 2, h, w) = (1 - y, y) at stride 16."""
        x = self.appearance.features(feats["s16"])
        mixture = self.appearance.fit(x, seg, n_components or self.config.n_components)
        return AGAMEState(mixture, feats["s16"], seg, seg)

    def predict(self, feats: dict[str, torch.Tensor], state: AGAMEState) -> Prediction:
        x = self.appearance.features(feats["s16"])
        log_probs = self.appearance(x, state.mixture)
        current = feats["s16"]  # shared by the K objects (batch 1) at test time
        prop = self.propagation(current, state.reference_features, state.previous_seg.to(current.dtype),
                                state.reference_seg.to(current.dtype))
        fused, coarse = self.fusion(log_probs, prop)
        logits = self.upsample(feats["s8"], feats["s4"], fused)
        return Prediction(logits, coarse, log_probs, x)

    def update_state(self, state: AGAMEState, appearance_features: torch.Tensor, seg: torch.Tensor,
                     n_components: int | None = None, rate: float | None = None) -> AGAMEState:
        """Running update of the mixture with soft assignments seg (K, 2, h, w), which also becomes y_{t-1}.

        appearance_features: the frame's projected deep features (``Prediction.appearance_features``).
        """
        rate = self.config.update_rate if rate is None else rate
        mixture = self.appearance.fit(appearance_features, seg, n_components or self.config.n_components,
                                      previous=state.mixture, rate=rate)
        return AGAMEState(mixture, state.reference_features, state.reference_seg, seg)


def seg_at_stride(masks: torch.Tensor) -> torch.Tensor:
    """(K, H, W) target probabilities (H, W multiples of 16) -> (K, 2, h, w) = (1 - y, y) averaged per cell."""
    y = F.avg_pool2d(masks.float()[:, None], STRIDE)
    return torch.cat([1.0 - y, y], 1)


def _expand(x: torch.Tensor, k: int) -> torch.Tensor:
    return x if x.shape[0] == k else x.expand(k, -1, -1, -1)
