"""FRTM: Learning Fast and Robust Target Models for video object segmentation (seed 001).

A light discriminative target model D, learned at test time by Gauss-Newton + CG on a memory of
past frames (methods.frtm_target, nn.sample_memory), gives coarse target scores on conv4_x
features; an offline-trained, target-agnostic segmentation network S (methods.frtm_segnet)
refines them into a mask. Algorithm 1: fit D on 5 augmented copies of the annotated frame; for
every next frame predict scores, segment, add the frame to the memory; every t_s frames refit
w2 with w1 fixed. K objects use K target models solved together on shared features.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch
from torch.profiler import record_function
from torch import nn
import torch.nn.functional as F

from napari_vos.checks import whole_number
from napari_vos.methods.base import MethodBase, Step
from napari_vos.methods.checkpoint import build_method, checkpoint_config
from napari_vos.methods.frtm_segnet import SegmentationNetwork
from napari_vos.methods.frtm_target import TargetModel, TargetModelSettings
from napari_vos.methods.frtm_windows import Window, common_windows, mask_boxes, object_windows
from napari_vos.nn.backbones import ResNetFeatures, feature_channels
from napari_vos.nn.memory_format import place_network
from napari_vos.nn.warp import affine, gaussian_blur
from napari_vos.nn.padding import crop_to, pad_to_multiple
from napari_vos.nn.sample_memory import SampleMemory


@dataclass
class FRTMConfig:
    """One FRTM configuration; ``fast`` and ``full`` mirror the paper's Ours-fast and Ours."""

    backbone: str = "resnet18"
    seg_channels: int = 64
    target: TargetModelSettings = field(default_factory=TargetModelSettings)
    update_interval: int = 8  # t_s
    memory_capacity: int = 80  # K_max
    eta: float = 0.1
    n_augmented: int = 5
    label_stride: int = 8  # labels stored at stride 8; U upsamples the stride-16 scores x2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FRTMConfig":
        d = dict(d)
        d["target"] = TargetModelSettings(**d.get("target", {}))
        return cls(**d)


CONFIGS: dict[str, FRTMConfig] = {
    # Ours-fast: ResNet-18, N_GN=4, N_CGi=5, N_CG=10, N_CGu=5
    "fast": FRTMConfig(backbone="resnet18", target=TargetModelSettings(n_gn=4, n_cg_init=5, n_cg=10, n_cg_update=5)),
    # Ours: ResNet-101, N_GN=5, N_CGi=5, N_CG=10, N_CGu=10
    "full": FRTMConfig(backbone="resnet101", target=TargetModelSettings(n_gn=5, n_cg_init=5, n_cg=10, n_cg_update=10)),
}


class FRTMNetwork(nn.Module):
    """The offline-trained parts: backbone F and segmentation network S."""

    def __init__(self, config: FRTMConfig, backbone_weights: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = ResNetFeatures(config.backbone, weights=backbone_weights)
        self.seg = SegmentationNetwork(feature_channels(config.backbone), config.seg_channels)

    def features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.backbone(image)


def augment_annotated_frame(image: torch.Tensor, masks: torch.Tensor, n: int,
                            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The initial memory M_0: the frame itself plus n-1 augmented copies (flip, shift/scale/rotate, blur).

    image (3, H, W), masks (K, H, W) -> (n, 3, H, W), (n, K, H, W).
    """
    images, labels = [image], [masks]
    kinds = ["flip", "affine", "blur", "affine", "affine"]
    for i in range(n - 1):
        kind = kinds[i % len(kinds)]
        if kind == "flip":
            images.append(image.flip(-1))
            labels.append(masks.flip(-1))
        elif kind == "blur":
            images.append(gaussian_blur(image, sigma=1.5, kernel_size=5))
            labels.append(masks)
        else:
            r = torch.rand(4, generator=generator)
            h, w = image.shape[-2:]
            angle = float(r[0] * 20 - 10)
            tx, ty = int((r[1] - 0.5) * 0.15 * w), int((r[2] - 0.5) * 0.15 * h)
            scale = float(0.9 + r[3] * 0.2)
            images.append(affine(image, angle, (tx, ty), scale))
            labels.append(affine(masks, angle, (tx, ty), scale))
    return torch.stack(images), torch.stack(labels)


def with_options(config: FRTMConfig, options: dict[str, Any]) -> FRTMConfig:
    """``config`` with the test-time settings ``options`` holds (update_interval, n_cg_update, ...)."""
    overrides = {k: options[k] for k in ("update_interval", "memory_capacity", "eta", "n_augmented") if k in options}
    target_overrides = {k: options[k] for k in asdict(config.target) if k in options}
    return replace(config, target=replace(config.target, **target_overrides), **overrides)


#: the settings that are counts, each with its least value (on FRTMConfig or its target settings)
_COUNTS = {"update_interval": 1, "memory_capacity": 1, "n_augmented": 1, "kernel": 1, "n_gn": 1, "n_cg_init": 1,
           "n_cg": 1, "n_cg_update": 0, "objects_per_solve": 1}


def check_settings(config: FRTMConfig) -> None:
    """A ValueError naming the setting, before any frame, for values that would fail frames later
    (``update_interval=0`` divides by zero) or quietly do nothing (no Gauss-Newton step)."""
    target = config.target
    for name, least in _COUNTS.items():
        value = getattr(target if hasattr(target, name) else config, name)
        if not whole_number(value) or value < least:
            raise ValueError(f"{name} must be a whole number >= {least}, got {value!r}")
    if target.kernel % 2 == 0:
        raise ValueError(f"kernel must be odd (the target model's w2 is a kernel x kernel filter centred on each "
                         f"cell), got {target.kernel}")
    if config.n_augmented > config.memory_capacity:
        raise ValueError(f"n_augmented ({config.n_augmented}) cannot exceed memory_capacity "
                         f"({config.memory_capacity}): the initial samples must fit in the memory")
    for name, value, rule, ok in (
            ("eta", config.eta, "in (0, 1) (the memory's learning rate)", lambda v: 0 < v < 1),
            ("reg_w1", target.reg_w1, ">= 0 and finite", lambda v: 0 <= v < float("inf")),
            ("reg_w2", target.reg_w2, ">= 0 and finite", lambda v: 0 <= v < float("inf")),
            ("kappa_min", target.kappa_min, "in [0, 1]", lambda v: 0 <= v <= 1)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not ok(value):
            raise ValueError(f"{name} must be a number {rule}, got {value!r}")


def _check_decoding(options: dict[str, Any]) -> None:
    """decode_window 'objects' or 'full'; decode_margin a whole number of pixels >= 0 (2.5, True or
    "64" were turned into 2, 1 and 64 without a word)."""
    window = options.get("decode_window", "full")
    if window not in ("objects", "full"):
        raise ValueError(f"decode_window must be 'objects' or 'full', got {window!r}")
    margin = options.get("decode_margin", 64)
    if isinstance(margin, bool) or not isinstance(margin, (int, np.integer)) or margin < 0:
        raise ValueError(f"decode_margin must be a whole number of pixels >= 0, got {margin!r}")


class FRTM(MethodBase):
    """The FRTM method (Algorithm 1) over a trained FRTMNetwork."""

    name: ClassVar[str] = "frtm"
    needs_checkpoint: ClassVar[bool] = True
    map_names: ClassVar[tuple[str, ...]] = ("target_scores",)
    map_grids: ClassVar[dict[str, int | None]] = {"target_scores": 16}
    # the paper runs at DAVIS 480p; at stride 16 a smaller video leaves objects too few target-model cells
    min_working_side: ClassVar[int | None] = 480
    # options read from **options (the registry rejects any other name)
    extra_options: ClassVar[tuple[str, ...]] = ("update_interval", "memory_capacity", "eta", "n_augmented",
                                                "decode_window", "decode_margin",
                                                # the target model's width c stays the paper's 96: the
                                                # name "channels" is the engine's (which stack channels)
                                                *(f for f in TargetModelSettings.__dataclass_fields__
                                                  if f != "channels"))

    def __init__(self, network: FRTMNetwork, device: torch.device | str = "cpu", seed: int = 0, **options: Any) -> None:
        super().__init__(device, **options)
        self.config = with_options(network.config, options)
        check_settings(self.config)
        self.network = place_network(network, self.device)
        self.seed = seed
        self._frame = 0
        self._last_features: torch.Tensor | None = None
        self.memory: SampleMemory | None = None
        self.target: TargetModel | None = None
        _check_decoding(options)
        self.decode_window = options.get("decode_window", "full")
        self.decode_margin = int(options.get("decode_margin", 64))
        self._boxes: list | None = None  # each object's mask box on the last frame (decoder windows)

    # -- helpers -------------------------------------------------------------------------
    def _keep_boxes(self, masks: torch.Tensor) -> None:
        """Remember each object's mask box for the next frame's decoder window (windowed decoding only)."""
        if self.decode_window == "objects":
            self._boxes = mask_boxes(masks)

    def _labels_at_stride(self, masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        s = self.config.label_stride
        return F.adaptive_avg_pool2d(masks, (size[0] // s, size[1] // s))

    @torch.no_grad()
    def _add_annotated(self, image: torch.Tensor, objects: torch.Tensor, generator: torch.Generator) -> None:
        img, _ = pad_to_multiple(image.to(self.device), 32)
        obj, _ = pad_to_multiple(objects.to(self.device).float(), 32)
        images, masks = augment_annotated_frame(img, obj, self.config.n_augmented, generator)
        feats = self.network.backbone(images, upto="conv4")["conv4"]
        labels = self._labels_at_stride(masks, img.shape[-2:])
        for i in range(len(feats)):
            self.memory.add(feats[i], labels[i], same_weight=i > 0)

    # -- protocol ------------------------------------------------------------------------
    @torch.no_grad()
    def start(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        cfg = self.config
        gen = torch.Generator().manual_seed(self.seed)
        self.memory = SampleMemory(cfg.memory_capacity, cfg.eta)
        self._add_annotated(image, objects, gen)
        in_ch = self.memory.features.shape[1]
        self.target = TargetModel(cfg.target, in_ch, objects.shape[0], self.device, gen)
        self.target.fit(self.memory.features, self.memory.labels, self.memory.weights, initial=True)
        self._frame = 0
        self._keep_boxes(objects)

    @torch.no_grad()
    def step(self, image: torch.Tensor) -> Step:
        if self.target is None:
            raise RuntimeError("FRTM.step called before start()")
        img, size = pad_to_multiple(image.to(self.device), 32)
        with record_function("frtm.backbone"):
            feats = self.network.backbone(img[None])
        self._last_features = feats["conv4"][0]
        with record_function("frtm.target_scores"):
            scores = self.target.scores(feats["conv4"])[0]  # (K, h, w)
        with record_function("frtm.segmentation_network"):
            probs = self._segment(feats, scores, tuple(img.shape[-2:]))
        return Step(probs=crop_to(probs, size), maps={"target_scores": scores})

    def _segment(self, feats: dict[str, torch.Tensor], scores: torch.Tensor, frame: tuple[int, int]) -> torch.Tensor:
        """S for every object, ``objects_per_solve`` at a time (bounds memory), each in its window."""
        k = scores.shape[0]
        n = max(1, self.config.target.objects_per_solve)
        if self.decode_window == "full":
            return torch.cat([self._decode(feats, scores[i:i + n, None], frame) for i in range(0, k, n)])
        stride = frame[0] // scores.shape[-2]
        windows = object_windows(scores, frame, stride, self.decode_margin, previous_boxes=self._boxes)
        order = sorted(range(k), key=lambda i: windows[i].size[0] * windows[i].size[1])  # like sizes batch together
        probs = scores.new_zeros((k, *frame))  # float32, as _decode's probabilities
        for start in range(0, k, n):
            members = order[start:start + n]
            group = common_windows([windows[i] for i in members], frame)
            if group[0].size == frame:
                probs[members] = self._decode(feats, scores[members, None], frame)
                continue
            crops = {name: torch.cat([_crop(f, w, frame) for w in group]) for name, f in feats.items()}
            crop_scores = torch.stack([_crop(scores[i:i + 1], w, frame) for i, w in zip(members, group)])
            out = self._decode(crops, crop_scores, group[0].size)
            for j, (i, w) in enumerate(zip(members, group)):
                probs[i, w.y0:w.y1, w.x0:w.x1] = out[j]
        return probs

    def _decode(self, feats: dict[str, torch.Tensor], scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """S's object probabilities, in float32: S may run in bf16/fp16, its sigmoid does not (a bf16
        probability near 1 rounds to 1 - 1/256, which changes the aggregation's odds)."""
        return torch.sigmoid(self.network.seg(feats, scores, size).float())

    @torch.no_grad()
    def update(self, probs: torch.Tensor) -> None:
        """Extend the memory with this frame's aggregated mask; refit w2 every t_s frames."""
        if self._last_features is None:
            return
        self._keep_boxes(probs > 0.5)
        padded, _ = pad_to_multiple(probs.float(), 32)
        labels = self._labels_at_stride(padded[None], padded.shape[-2:])[0]
        self.memory.add(self._last_features, labels)
        self._frame += 1
        if self._frame % self.config.update_interval == 0:
            self.target.update(self.memory.features, self.memory.labels, self.memory.weights)
        self._last_features = None

    @torch.no_grad()
    def remember(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        """A corrected frame: add it (with its augmentations) as fresh samples and refit D."""
        if self.target is None:
            self.start(image, objects)
            return
        gen = torch.Generator().manual_seed(self.seed + 1 + self._frame)
        self._add_annotated(image, objects, gen)
        self.target.fit(self.memory.features, self.memory.labels, self.memory.weights, initial=False)
        self._keep_boxes(objects)

    # -- construction from a checkpoint ----------------------------------------------------
    @classmethod
    def check_option_values(cls, options: dict[str, Any]) -> None:
        """The settings' values checked when a Session is made, not when its first frame runs."""
        check_settings(with_options(CONFIGS["fast"], options))
        _check_decoding(options)

    @classmethod
    def build(cls, device: torch.device | str = "cpu", checkpoint: str | None = None, **options: Any) -> "FRTM":
        """Load the network from a registered name or a safetensors path (default: the shipped one)."""
        return build_method(cls, device, checkpoint, options, "frtm", "FRTM", _network, accept_unnamed=True)


def _crop(x: torch.Tensor, window: Window, frame: tuple[int, int]) -> torch.Tensor:
    """The part of a (1, C, h, w) map at any stride that lies under a window of the padded frame."""
    s = frame[0] // x.shape[-2]
    return x[..., window.y0 // s:window.y1 // s, window.x0 // s:window.x1 // s]


def _network(meta: dict[str, str]) -> FRTMNetwork:
    """The network of the configuration stored in a checkpoint's metadata."""
    return FRTMNetwork(checkpoint_config(meta, "frtm", FRTMConfig, CONFIGS, "fast"))
