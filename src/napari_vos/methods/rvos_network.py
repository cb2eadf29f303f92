"""The RVOS network (seed 003, slides on Ventura et al., CVPR 2019): encoder, decoder recurrent over objects and frames.

Encoder: a ResNet (``nn/backbones.py``) whose conv5..conv2 maps (strides 32, 16, 8, 4) are reduced
by 3x3 convolutions to fixed widths: the skip features f'_{t,k}, k = 0..3.

Decoder (RSIS's hierarchy of ConvLSTMs with RVOS's temporal recurrence): for object i at frame t,

    h_{t,i,k} = ConvLSTM_k([B2(h_{t,i,k-1}) | f'_{t,k} | S_{t-1,i}], [h_{t,i-1,k} | h_{t-1,i,k}])

with B2 a bilinear x2 upsampling (level 0 has no B2 term), S_{t-1,i} the object's mask of the
previous frame resized to the level (one-shot only) and the state input merged from the previous
object's state at the same frame (spatial recurrence; zeros for the first object) and the same
object's state at the previous frame (temporal recurrence; zeros on the first frame). The merge is
a learnable 1x1 convolution over the concatenation, separately for h and c, initialised to their
average, so ``nn/convlstm.py``'s cell is used as it is. A 3x3 convolution over the last level's
h gives the object's mask logits at stride 4; a linear layer over the global max-pools of every
level's h gives its stop / "object present" logit (RSIS), used in zero-shot mode.

The encoder sees the frame only, so one pass is shared by all objects; objects go through the
decoder one after the other (the spatial recurrence makes object i wait for object i-1).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from napari_vos.nn.aggregation import soft_aggregate
from napari_vos.nn.area_resize import area_resize
from napari_vos.nn.backbone_freeze import FreezableBatchNorm
from napari_vos.nn.backbones import ResNetFeatures, feature_channels
from napari_vos.nn.convlstm import ConvLSTMCell, State
from napari_vos.nn.precision import full_precision

STAGES = ("conv5", "conv4", "conv3", "conv2")  # decoder levels k = 0..3
LEVEL_STRIDES = (32, 16, 8, 4)

ObjectStates = list[State]  # one (h, c) per decoder level


@dataclass
class RVOSConfig:
    """One RVOS configuration.

    hidden: ConvLSTM_k widths (strides 32, 16, 8, 4); skip: widths of f'_{t,k}; zero_shot: no mask
    input (the unsupervised configuration); slots: how many objects zero-shot mode segments (N);
    spatial / temporal: the two recurrences of the state input (the slides' -S, -T, -ST ablation).
    """

    backbone: str = "resnet18"
    hidden: tuple[int, ...] = (128, 64, 32, 16)
    skip: tuple[int, ...] = (128, 128, 64, 32)
    kernel: int = 3
    zero_shot: bool = False
    slots: int = 10
    spatial: bool = True
    temporal: bool = True

    def __post_init__(self) -> None:
        self.hidden = tuple(int(w) for w in self.hidden)
        self.skip = tuple(int(w) for w in self.skip)
        if len(self.hidden) != len(STAGES) or len(self.skip) != len(STAGES):
            raise ValueError(f"hidden and skip need {len(STAGES)} widths (strides {LEVEL_STRIDES}), "
                             f"got {self.hidden} and {self.skip}")
        feature_channels(self.backbone)  # raises for an unknown backbone
        if self.slots < 1:
            raise ValueError(f"slots must be >= 1, got {self.slots}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RVOSConfig":
        return cls(**d)


CONFIGS: dict[str, RVOSConfig] = {
    # the paper's encoder (ResNet-101); decoder widths halving per level as in the RSIS/RVOS code family
    "paper": RVOSConfig(backbone="resnet101", hidden=(128, 64, 32, 16), skip=(128, 128, 64, 32), slots=10),
    # CPU: ResNet-18 (can start from FRTM's shipped backbone), same decoder, 5 zero-shot slots
    "light": RVOSConfig(backbone="resnet18", hidden=(128, 64, 32, 16), skip=(128, 128, 64, 32), slots=5),
}


def _xavier(conv: nn.Module) -> nn.Module:
    nn.init.xavier_uniform_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def resize_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) masks to ``size``: area averaging when shrinking, bilinear when growing."""
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    if size[0] <= masks.shape[-2] and size[1] <= masks.shape[-1]:
        return area_resize(masks, size)  # F.interpolate's "area", which MPS refuses for most sizes
    return F.interpolate(masks, size=size, mode="bilinear", align_corners=False)


class StateMerge(nn.Module):
    """[h_{t,i-1,k} | h_{t-1,i,k}] -> the ConvLSTM's state: 1x1 convolutions of the concatenated h and c.

    Starts as the average of the two states; a missing state (first object, first frame, or a
    recurrence switched off) is zeros.
    """

    def __init__(self, hidden: int, spatial: bool = True, temporal: bool = True) -> None:
        super().__init__()
        self.spatial, self.temporal = spatial, temporal
        self.h = nn.Conv2d(2 * hidden, hidden, 1)
        self.c = nn.Conv2d(2 * hidden, hidden, 1)
        eye = torch.eye(hidden).view(hidden, hidden, 1, 1)
        with torch.no_grad():
            for conv in (self.h, self.c):
                conv.weight.copy_(0.5 * torch.cat([eye, eye], 1))
                conv.bias.zero_()

    def forward(self, spatial: State | None, temporal: State | None, zeros: torch.Tensor) -> State:
        """zeros: (N, hidden, H, W) standing in for a missing state."""
        spatial = spatial if self.spatial else None
        temporal = temporal if self.temporal else None
        s = spatial or (zeros, zeros)
        t = temporal or (zeros, zeros)
        with full_precision(zeros):  # the cell state stays float32 under autocast, as the ConvLSTM keeps it
            c = F.conv2d(torch.cat([s[1], t[1]], 1).float(), self.c.weight.float(), self.c.bias.float())
        return self.h(torch.cat([s[0], t[0]], 1)), c


class RecurrentDecoder(nn.Module):
    """The ConvLSTM hierarchy of one object at one frame, its mask head and its stop head."""

    def __init__(self, config: RVOSConfig) -> None:
        super().__init__()
        self.config = config
        mask_ch = 0 if config.zero_shot else 1
        hid, skip = config.hidden, config.skip
        self.cells = nn.ModuleList()
        self.merges = nn.ModuleList()
        for k in range(len(STAGES)):
            in_ch = skip[k] + mask_ch + (hid[k - 1] if k else 0)
            self.cells.append(ConvLSTMCell(in_ch, hid[k], config.kernel))
            self.merges.append(StateMerge(hid[k], config.spatial, config.temporal))
        self.mask_head = _xavier(nn.Conv2d(hid[-1], 1, 3, padding=1))
        self.stop_head = nn.Linear(sum(hid), 1)

    def forward(self, feats: list[torch.Tensor], mask: torch.Tensor | None, spatial: ObjectStates | None,
                temporal: ObjectStates | None) -> tuple[torch.Tensor, torch.Tensor, ObjectStates]:
        """One object at one frame.

        feats: f'_{t,k}, (N or 1, skip_k, H_k, W_k); mask: S_{t-1,i} (N, 1, H, W) at the input size,
        None in zero-shot mode; spatial: object i-1's states at this frame; temporal: object i's
        states at frame t-1. Returns mask logits (N, H_3, W_3) at stride 4, stop logits (N,), states.
        """
        if (mask is None) != self.config.zero_shot:
            raise ValueError("a one-shot RVOS decoder needs the previous mask S_{t-1,i}; a zero-shot one takes none")
        n = max(f.shape[0] for f in feats) if mask is None else mask.shape[0]
        states: ObjectStates = []
        for k, (cell, merge) in enumerate(zip(self.cells, self.merges)):
            f = feats[k].expand(n, -1, -1, -1)
            parts = [f]
            if k:
                parts.insert(0, F.interpolate(states[-1][0], size=f.shape[-2:], mode="bilinear", align_corners=False))
            if mask is not None:
                parts.append(resize_masks(mask.to(f.dtype), tuple(f.shape[-2:])))
            x = torch.cat(parts, 1)
            zeros = x.new_zeros(n, cell.hidden_ch, *f.shape[-2:])
            state = merge(spatial[k] if spatial else None, temporal[k] if temporal else None, zeros)
            states.append(cell(x, state))
        logits = self.mask_head(states[-1][0])[:, 0]
        pooled = torch.cat([h.amax(dim=(-2, -1)) for h, _ in states], 1)
        return logits, self.stop_head(pooled)[:, 0], states


@dataclass
class FrameOutput:
    """Every object's (or slot's) output at one frame; logits at stride 4, objects in order."""

    logits: torch.Tensor  # (N, K, H/4, W/4)
    stop: torch.Tensor  # (N, K)
    states: list[ObjectStates]  # per object: (h, c) per level
    features: torch.Tensor  # (N, K, hidden[-1], H/4, W/4): each object's last ConvLSTM output


class RVOSNetwork(FreezableBatchNorm, nn.Module):
    """Encoder (ResNet + skip reductions) and the recurrent decoder shared by all objects."""

    def __init__(self, config: RVOSConfig, backbone_weights: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = ResNetFeatures(config.backbone, weights=backbone_weights)
        channels = dict(zip(("conv2", "conv3", "conv4", "conv5"), feature_channels(config.backbone)))
        self.skips = nn.ModuleList([_xavier(nn.Conv2d(channels[s], w, 3, padding=1))
                                    for s, w in zip(STAGES, config.skip)])
        self.decoder = RecurrentDecoder(config)

    def encode(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Frames (N, 3, H, W) in [0, 1], sides multiples of 32 -> f'_{t,k} for k = 0..3 (strides 32..4)."""
        maps = self.backbone(images)
        return [F.relu(conv(maps[s])) for conv, s in zip(self.skips, STAGES)]

    def frame(self, feats: list[torch.Tensor], masks: torch.Tensor | None, temporal: list[ObjectStates] | None,
              n_objects: int | None = None) -> FrameOutput:
        """Every object at one frame, in order, each one's state input taking the previous object's states.

        masks: S_{t-1,i} (N, K, H, W) (one-shot) or None (zero-shot: ``n_objects`` slots, default
        the configuration's); temporal: the previous frame's states per object, or None.
        """
        k_objects = masks.shape[1] if masks is not None else (n_objects or self.config.slots)
        logits, stops, states, outputs = [], [], [], []
        spatial: ObjectStates | None = None
        for i in range(k_objects):
            mask = masks[:, i:i + 1] if masks is not None else None
            lg, st, spatial = self.decoder(feats, mask, spatial, temporal[i] if temporal else None)
            logits.append(lg)
            stops.append(st)
            states.append(spatial)
            outputs.append(spatial[-1][0])
        return FrameOutput(torch.stack(logits, 1), torch.stack(stops, 1), states, torch.stack(outputs, 1))

    def forward(self, frames: torch.Tensor, masks: torch.Tensor | None = None, valid: torch.Tensor | None = None,
                previous: str = "truth") -> tuple[torch.Tensor, torch.Tensor]:
        """A clip, for training by backpropagation through time.

        frames (B, T, 3, H, W); masks (B, T, K, H, W) of the K objects (one-shot; None in zero-shot
        mode); valid (B, K): which objects exist (padding objects are False).
        One-shot: frame 0 is read with its own masks as S (as the method's ``start`` does with the
        annotated frame) and frames 1..T-1 are segmented with S_{t-1} = the ground truth
        (``previous="truth"``, teacher forcing) or the previous prediction, aggregated over the
        objects as the engine does and without gradient (``"predicted"``). Returns mask logits
        (B, T-1, K, H, W) at the input size and stop logits (B, T-1, K).
        Zero-shot: every frame is segmented into the configuration's slots; logits (B, T, N, H, W)
        and stop logits (B, T, N).
        """
        if previous not in ("truth", "predicted"):
            raise ValueError(f"previous must be 'truth' or 'predicted', got {previous!r}")
        b, t = frames.shape[:2]
        size = tuple(frames.shape[-2:])
        feats_all = [f.unflatten(0, (b, t)) for f in self.encode(frames.flatten(0, 1))]
        feats = lambda i: [f[:, i] for f in feats_all]  # noqa: E731
        logits, stops = [], []
        if self.config.zero_shot:
            temporal = None
            for i in range(t):
                out = self.frame(feats(i), None, temporal)
                temporal = out.states
                logits.append(out.logits)
                stops.append(out.stop)
        else:
            if masks is None:
                raise ValueError("one-shot RVOS training needs the objects' masks")
            keep = torch.ones(masks.shape[:1] + masks.shape[2:3], dtype=torch.bool, device=masks.device) \
                if valid is None else valid.bool()
            out = self.frame(feats(0), masks[:, 0], None)
            prev = masks[:, 0]
            for i in range(1, t):
                out = self.frame(feats(i), prev if previous == "predicted" else masks[:, i - 1], out.states)
                logits.append(out.logits)
                stops.append(out.stop)
                if previous == "predicted":
                    prev = _aggregated(out.logits.detach(), size, keep)
        up = torch.stack(logits, 1)
        up = F.interpolate(up.flatten(0, 2)[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        return up.unflatten(0, (b, len(logits), -1)), torch.stack(stops, 1)


def _aggregated(logits: torch.Tensor, size: tuple[int, int], valid: torch.Tensor) -> torch.Tensor:
    """The engine's view of a prediction: per-object probabilities (B, K, h, w) -> aggregated (B, K, H, W).

    Padding objects get probability 0 before the aggregation (RGMP eq. 1) and 0 after it.
    """
    probs = torch.sigmoid(F.interpolate(logits, size=size, mode="bilinear", align_corners=False))
    probs = probs * valid[:, :, None, None].to(probs.dtype)
    out = torch.stack([soft_aggregate(p)[1:] for p in probs.float()]).to(probs.dtype)
    return out * valid[:, :, None, None].to(out.dtype)
