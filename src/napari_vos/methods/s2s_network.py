"""The S2S++ network (seed 004 on top of S2S, Xu et al. ECCV 2018): initializer, encoder, ConvLSTMs, decoder.

S2S (eq. 1-4):  h_0, c_0 = Initializer(x_0, y_0);  x~_t = Encoder(x_t);
                h_t, c_t = RNN1(x~_t, h_{t-1}, c_{t-1});  y^_t = Decoder(h_t).
S2S++ adds
- skip-memory: two more ConvLSTMs (RNN2) on extra skip connections at strides 16 and 8, the one
  at the higher resolution with a larger kernel (5x5) to follow larger displacements; their
  initial states come from the initializer's bottleneck through upsampling + convolutions, in the
  decoder's fashion. The plain skip connections stay; at every decoder level the branches
  (decoder path, plain skip, skip-memory) are merged by a weighted average with learnable weights;
- the border-distance task: a convolution maps the last decoder features to the distance
  classes (softmax), and those class probabilities are merged into the segmentation branch,
  whose 1x1 convolution gives the mask logits.
The decoder has five steps, each a bilinear x2 upsampling followed by a 5x5 convolution.
The encoder depends on the frame only, so one frame's pyramid is shared by all objects; the
initializer, the memories and the decoder run once per object (objects are batch entries).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from napari_vos.methods.s2s_distance import BorderClasses
from napari_vos.methods.s2s_encoders import make_pyramid
from napari_vos.nn.backbone_freeze import FreezableBatchNorm
from napari_vos.nn.convlstm import ConvLSTMCell, State

# decoder levels, from the bottleneck up: strides of the pyramid maps they merge
LEVEL_STRIDES = (32, 16, 8, 4, 2)


@dataclass
class S2SConfig:
    """One S2S++ configuration. ``widths`` are the decoder's channels at strides 32, 16, 8, 4, 2, 1.

    RNN1 has widths[0] channels; the skip-memory ConvLSTMs at strides 16 and 8 have widths[1] and
    widths[2] (``skip_memory`` = how many of them: 0 is plain S2S with skip connections).
    """

    encoder: str = "resnet18"
    widths: tuple[int, ...] = (256, 128, 64, 32, 32, 32)
    memory_kernels: tuple[int, int, int] = (3, 3, 5)  # RNN1, RNN2 at stride 16, RNN2 at stride 8
    skip_memory: int = 2
    decoder_kernel: int = 5
    distance_task: bool = True
    border: int = 20
    bin_size: int = 1

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        self.memory_kernels = tuple(int(k) for k in self.memory_kernels)  # type: ignore[assignment]
        if len(self.widths) != 6:
            raise ValueError(f"widths needs 6 entries (strides 32, 16, 8, 4, 2, 1), got {self.widths}")
        if not 0 <= self.skip_memory <= 2:
            raise ValueError(f"skip_memory must be 0, 1 or 2, got {self.skip_memory}")

    @property
    def border_classes(self) -> BorderClasses:
        return BorderClasses(self.border, self.bin_size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "S2SConfig":
        return cls(**d)


CONFIGS: dict[str, S2SConfig] = {
    # the paper's: VGG-16, ConvLSTMs 512 (3x3), 512 (3x3), 256 (5x5); decoder convs 512, 256, 128, 64, 64
    "paper": S2SConfig(encoder="vgg16", widths=(512, 512, 256, 128, 64, 64)),
    # light (CPU): ResNet-18, every width halved or less
    "light": S2SConfig(encoder="resnet18", widths=(256, 128, 64, 32, 32, 32)),
}


class BranchMerge(nn.Module):
    """Weighted average of same-width branches with learnable weights, then a 1x1 convolution + ReLU.

    The weights are per branch and channel, softmax-normalised over the branches (starting equal),
    so the network chooses how much each branch contributes without any branch being cut off.
    Branches may have batch 1 (a frame's features shared by all objects) or the objects' batch.
    """

    def __init__(self, n_branches: int, channels: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(n_branches, channels))
        self.mix = nn.Conv2d(channels, channels, 1)
        nn.init.xavier_uniform_(self.mix.weight)
        nn.init.zeros_(self.mix.bias)

    def forward(self, branches: list[torch.Tensor]) -> torch.Tensor:
        if len(branches) != self.weights.shape[0]:
            raise ValueError(f"expected {self.weights.shape[0]} branches, got {len(branches)}")
        w = torch.softmax(self.weights, 0)
        avg = sum(w[i].view(1, -1, 1, 1) * b for i, b in enumerate(branches))
        return F.relu(self.mix(avg))


class UpStep(nn.Module):
    """Bilinear x2 upsampling followed by a k x k convolution + ReLU (one decoder step)."""

    def __init__(self, in_ch: int, out_ch: int, k: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, k, padding=k // 2)
        nn.init.xavier_uniform_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return F.relu(self.conv(x))


def _conv(in_ch: int, out_ch: int, k: int = 1) -> nn.Conv2d:
    conv = nn.Conv2d(in_ch, out_ch, k, padding=k // 2)
    nn.init.xavier_uniform_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class StateHead(nn.Module):
    """Two 1x1 convolutions giving a ConvLSTM's initial state: h_0 = tanh(conv(f)), c_0 = conv(f)."""

    def __init__(self, in_ch: int, hidden_ch: int) -> None:
        super().__init__()
        self.h = _conv(in_ch, hidden_ch)
        self.c = _conv(in_ch, hidden_ch)

    def forward(self, f: torch.Tensor) -> State:
        return torch.tanh(self.h(f)), self.c(f)


class Initializer(nn.Module):
    """RGB + mask -> initial (h, c) of RNN1 and of each skip-memory ConvLSTM."""

    def __init__(self, cfg: S2SConfig, backbone_weights: str | None = None) -> None:
        super().__init__()
        self.pyramid = make_pyramid(cfg.encoder, in_channels=4, weights=backbone_weights)
        ch, w = self.pyramid.channels, cfg.widths
        self.fc = _conv(ch[4], w[0])  # the fully connected layer made a 1x1 convolution
        self.heads = nn.ModuleList([StateHead(w[0], w[0])])
        self.ups = nn.ModuleList()
        self.skips = nn.ModuleList()
        self.merges = nn.ModuleList()
        for j in range(cfg.skip_memory):  # level 1 (stride 16), level 2 (stride 8)
            self.ups.append(UpStep(w[j], w[j + 1], cfg.decoder_kernel))
            self.skips.append(_conv(ch[3 - j], w[j + 1]))
            self.merges.append(BranchMerge(2, w[j + 1]))
            self.heads.append(StateHead(w[j + 1], w[j + 1]))

    def forward(self, image: torch.Tensor, masks: torch.Tensor) -> list[State]:
        """image (N or 1, 3, H, W), masks (N, H, W) -> [(h, c) of RNN1, of RNN2 at stride 16, at 8]."""
        if image.shape[0] != masks.shape[0]:
            image = image.expand(masks.shape[0], -1, -1, -1)
        p = self.pyramid(torch.cat([image, masks[:, None].to(image.dtype)], 1))
        f = F.relu(self.fc(p[4]))
        states = [self.heads[0](f)]
        for j in range(len(self.ups)):
            f = self.merges[j]([self.ups[j](f), self.skips[j](p[3 - j])])
            states.append(self.heads[j + 1](f))
        return states


class Decoder(nn.Module):
    """Five levels (strides 32..2): merge [decoder path or h_1, plain skip, (skip-memory)], then upsample + 5x5 conv."""

    def __init__(self, cfg: S2SConfig, pyramid_channels: tuple[int, ...]) -> None:
        super().__init__()
        w = cfg.widths
        self.skips = nn.ModuleList([_conv(pyramid_channels[4 - i], w[i]) for i in range(5)])
        self.merges = nn.ModuleList([BranchMerge(3 if 1 <= i <= cfg.skip_memory else 2, w[i]) for i in range(5)])
        self.ups = nn.ModuleList([UpStep(w[i], w[i + 1], cfg.decoder_kernel) for i in range(5)])

    def forward(self, pyramid: list[torch.Tensor], hidden: list[torch.Tensor]) -> torch.Tensor:
        """pyramid: strides 2..32 (batch 1 or N); hidden: h of RNN1 and of the skip-memories (batch N)."""
        z = hidden[0]
        for i in range(5):
            branches = [z, self.skips[i](pyramid[4 - i])]
            if 1 <= i < len(hidden):
                branches.append(hidden[i])
            z = self.ups[i](self.merges[i](branches))
        return z


class OutputHeads(nn.Module):
    """Distance classes (conv + softmax) merged into the segmentation branch; a 1x1 conv gives the mask logits."""

    def __init__(self, cfg: S2SConfig) -> None:
        super().__init__()
        n = cfg.border_classes.num_classes
        self.distance_task = cfg.distance_task
        self.segmentation = _conv(cfg.widths[5], n, 3)
        self.distance = _conv(cfg.widths[5], n, 3) if cfg.distance_task else None
        self.merge = _conv(2 * n if cfg.distance_task else n, 1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """z (N, C, H, W) -> mask logits (N, H, W), distance class logits (N, classes, H, W) or None."""
        seg = F.relu(self.segmentation(z))
        if self.distance is None:
            return self.merge(seg)[:, 0], None
        dist_logits = self.distance(z)
        logits = self.merge(torch.cat([seg, torch.softmax(dist_logits, 1)], 1))[:, 0]
        return logits, dist_logits


class S2SNetwork(FreezableBatchNorm, nn.Module):
    """Initializer + encoder + RNN1 + skip-memory + decoder + output heads."""

    def __init__(self, config: S2SConfig, backbone_weights: str | None = None) -> None:
        super().__init__()
        self.config = config
        w = config.widths
        self.initializer = Initializer(config, backbone_weights)
        self.encoder = make_pyramid(config.encoder, in_channels=3, weights=backbone_weights)
        ch = self.encoder.channels
        self.fc = _conv(ch[4], w[0])
        k = config.memory_kernels
        self.memory = nn.ModuleList([ConvLSTMCell(w[0], w[0], k[0])])  # RNN1 on the encoder's bottleneck
        for j in range(config.skip_memory):  # RNN2 on the stride-16 and stride-8 encoder maps
            self.memory.append(ConvLSTMCell(ch[3 - j], w[j + 1], k[j + 1]))
        self.decoder = Decoder(config, ch)
        self.heads = OutputHeads(config)

    def encode(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Frames (N, 3, H, W) in [0, 1], H and W multiples of 32 -> pyramid (strides 2..32)."""
        return self.encoder(images)

    def initial_states(self, image: torch.Tensor, masks: torch.Tensor) -> list[State]:
        return self.initializer(image, masks)

    def step(self, pyramid: list[torch.Tensor], states: list[State]
             ) -> tuple[torch.Tensor, torch.Tensor | None, list[State]]:
        """One frame: update every ConvLSTM, decode. Returns mask logits, distance logits, new states."""
        x = F.relu(self.fc(pyramid[4]))
        inputs = [x] + [pyramid[3 - j] for j in range(len(self.memory) - 1)]
        states = [cell(inp, state) for cell, inp, state in zip(self.memory, inputs, states)]
        z = self.decoder(pyramid, [h for h, _ in states])
        logits, dist_logits = self.heads(z)
        return logits, dist_logits, states

    def forward(self, frames: torch.Tensor, first_masks: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A clip, for training by backpropagation through time.

        frames (B, T, 3, H, W), first_masks (B, H, W) of frame 0 -> mask logits (B, T-1, H, W) and
        distance logits (B, T-1, classes, H, W) (or None) for frames 1..T-1.
        """
        b, t = frames.shape[:2]
        states = self.initial_states(frames[:, 0], first_masks)
        pyramids = self.encode(frames[:, 1:].flatten(0, 1))  # no recurrence in the encoder: all frames at once
        pyramids = [p.unflatten(0, (b, t - 1)) for p in pyramids]
        logits, dists = [], []
        for i in range(t - 1):
            lg, dl, states = self.step([p[:, i] for p in pyramids], states)
            logits.append(lg)
            dists.append(dl)
        dist = torch.stack(dists, 1) if self.config.distance_task else None
        return torch.stack(logits, 1), dist
