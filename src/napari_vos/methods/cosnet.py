"""COSNet: zero-shot video object segmentation with co-attention Siamese networks (seed 003, slides).

Lu, Wang, Ma, Shen, Shao, Porikli, "See More, Know More", CVPR 2019. Nobody annotates anything:
the method segments the video's primary object, the one that is salient in each frame and
appears consistently throughout the video. At test time (the slides' "COSNet: Testing") each
query frame F_a is compared with N reference frames {F_b1..F_bN} sampled from the whole video
(global uniform sampling, N = 5 by default), and the gated attention summaries are averaged:
Z_a = 1/N sum_n Z_an * f_g(Z_an); the segmentation module reads [Z_a, V_a] and gives one
foreground probability map. The intermediate map is that gate, averaged over the references
(stride 16). The slides' CRF refinement step is not applied.

Engine side: ``needs_annotation = False`` and ``accepts_annotation = False``; the engine passes
the whole video through ``set_video`` (the references are embedded once per pass) and steps
every frame; the output labels are 1 where the foreground probability wins (> 0.5).
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from napari_vos.methods.base import MethodBase, Step, VideoFrames
from napari_vos.methods.checkpoint import build_method, checkpoint_config
from napari_vos.methods.checkpoint import load_network as shared_load_network
from napari_vos.methods.cosnet_network import CONFIGS, STRIDE, COSNetConfig, COSNetNetwork, Embedding
from napari_vos.nn.memory_format import place_network
from napari_vos.nn.padding import crop_to, pad_to_multiple

SAMPLING = ("uniform", "random")

__all__ = ["COSNet", "COSNetNetwork", "COSNetConfig", "CONFIGS", "reference_frames", "load_network"]


def reference_frames(n_frames: int, n: int, sampling: str = "uniform", seed: int = 0) -> list[int]:
    """Indices of the N reference frames: evenly spread over the whole video ("uniform", the paper's
    default) or drawn at random from it without repetition ("random"); fewer when the video is shorter."""
    if n < 1:
        raise ValueError(f"COSNet needs at least one reference frame, got n_references={n}")
    if sampling not in SAMPLING:
        raise ValueError(f"reference sampling must be one of {SAMPLING}, got {sampling!r}")
    n = min(n, n_frames)
    if sampling == "uniform":
        return sorted({int(round(x)) for x in np.linspace(0, n_frames - 1, n)})
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(n_frames, size=n, replace=False))


class COSNet(MethodBase):
    """The COSNet method over a trained COSNetNetwork.

    Options: ``n_references`` (N, default 5), ``sampling`` ("uniform": global uniform, the
    paper's default; "random": global random with ``seed``).
    """

    name: ClassVar[str] = "cosnet"
    needs_checkpoint: ClassVar[bool] = True
    needs_annotation: ClassVar[bool] = False
    accepts_annotation: ClassVar[bool] = False
    map_names: ClassVar[tuple[str, ...]] = ("coattention_gate",)
    map_grids: ClassVar[dict[str, int | None]] = {"coattention_gate": 16}
    global_maps: ClassVar[tuple[str, ...]] = ("coattention_gate",)

    def __init__(self, network: COSNetNetwork, device: torch.device | str = "cpu", *, n_references: int = 5,
                 sampling: str = "uniform", seed: int = 0) -> None:
        super().__init__(device, n_references=n_references, sampling=sampling)
        self.check_option_values({"n_references": n_references, "sampling": sampling})
        self.n_references = int(n_references)
        self.sampling = sampling
        self.seed = seed
        self.network = place_network(network, self.device)
        self.config: COSNetConfig = network.config
        self.references: list[torch.Tensor] = []  # V_bn (1, C, h, w)
        self.reference_indices: list[int] = []

    @classmethod
    def check_option_values(cls, options: dict[str, Any]) -> None:
        """The values a type cannot judge, checked when a Session is made (not at the first frame)."""
        n = options.get("n_references", 5)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n_references (N) must be a whole number >= 1, got {n!r}")
        if options.get("sampling", "uniform") not in SAMPLING:
            raise ValueError(f"sampling must be one of {SAMPLING}, got {options['sampling']!r}")

    def _embed(self, image: torch.Tensor) -> tuple[Embedding, tuple[int, int]]:
        padded, size = pad_to_multiple(image.to(self.device), STRIDE)
        return self.network.embed(padded[None]), size

    # -- protocol ------------------------------------------------------------------------
    @torch.no_grad()
    def set_video(self, video: VideoFrames) -> None:
        """Sample the N reference frames from the whole video and embed them once per propagation
        (a "both" run's second pass takes them from ``video.memo``)."""
        self.reference_indices = reference_frames(len(video), self.n_references, self.sampling, self.seed)
        key = ("cosnet_references", getattr(self, "checkpoint_sha256", None) or id(self.network),
               tuple(self.reference_indices))
        if key not in video.memo:
            video.memo[key] = [self._embed(video[i])[0].v for i in self.reference_indices]
        self.references = video.memo[key]

    def start(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        raise ValueError("COSNet segments the video's primary object without an annotation; it takes none")

    @torch.no_grad()
    def step(self, image: torch.Tensor) -> Step:
        if not self.references:
            raise RuntimeError("COSNet.step called before set_video(): it needs the video's reference frames")
        query, size = self._embed(image)
        z_sum = gate_sum = None
        for v_b in self.references:
            att = self.network.coattention(query.v, v_b, both=False)
            z_sum = att.z_a if z_sum is None else z_sum + att.z_a
            gate_sum = att.gate_a if gate_sum is None else gate_sum + att.gate_a
        n = len(self.references)
        padded = (query.v.shape[-2] * STRIDE, query.v.shape[-1] * STRIDE)
        logits = self.network.segment(z_sum / n, query, padded)
        probs = crop_to(torch.sigmoid(logits.float())[0], size)  # (1, H, W)
        gate = (gate_sum / n).float()[0]  # (1, h, w) at stride 16 (of the padded frame)
        h, w = (size[0] + STRIDE - 1) // STRIDE, (size[1] + STRIDE - 1) // STRIDE
        return Step(probs=probs, maps={"coattention_gate": gate[:, :h, :w]})

    # -- construction from a checkpoint ----------------------------------------------------
    @classmethod
    def build(cls, device: torch.device | str = "cpu", checkpoint: str | None = None, **options: Any) -> "COSNet":
        """Load the network from a registered name or a safetensors path (default: the shipped one)."""
        return build_method(cls, device, checkpoint, options, "cosnet", "COSNet", _network)


def load_network(checkpoint: str) -> tuple[COSNetNetwork, str, str]:
    """A COSNetNetwork from a COSNet checkpoint; returns (network, checkpoint name, sha256)."""
    return shared_load_network(checkpoint, "cosnet", "COSNet", _network)


def _network(meta: dict[str, str]) -> COSNetNetwork:
    """The network of the configuration stored in a checkpoint's metadata."""
    return COSNetNetwork(checkpoint_config(meta, "cosnet", COSNetConfig, CONFIGS, "light"))
