"""S2S++: sequence-to-sequence VOS with skip-memory and a border-distance task (seed 004, on S2S, ECCV 2018).

Test-time behaviour: the initializer turns the annotated frame and one object's mask into the
initial states of the bottleneck ConvLSTM and of the skip-memory ConvLSTMs; for every next frame
the encoder's features update those states and the decoder reads the mask (and the border
distance classes) off them. Nothing else is kept: the memory of a 10^4-frame stack is the same
few state tensors as after one frame. No previous mask is fed back (the ConvLSTMs carry the
object), so ``update`` does nothing. Each object is tracked on its own (objects are batch
entries of the initializer, the memories and the decoder, sharing one encoder pass per frame);
the engine merges them (RGMP eq. 1, whose argmax picks the most probable object per pixel).
A corrected frame re-initialises the states from it, as the annotated frame did.

Frames are resized to the network's input size: by default the area of the paper's 256 x 448
with the frame's aspect ratio, sides multiples of 32 (``input_size=(H, W)`` overrides), and the
probabilities are resized back.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from napari_vos.methods.base import MethodBase, Step
from napari_vos.methods.checkpoint import build_method, checkpoint_config
from napari_vos.methods.s2s_network import CONFIGS, S2SConfig, S2SNetwork
from napari_vos.nn.aggregation import masks_keeping_objects
from napari_vos.nn.convlstm import State
from napari_vos.nn.memory_format import place_network

PAPER_INPUT = (256, 448)


def check_input_options(options: dict[str, Any]) -> None:
    """``input_size`` sides and ``input_area`` large enough to mean a size (0 ran at 32 x 32 without a
    word), ``object_chunk`` at least 1; checked when a Session is made (S2S's and RVOS's)."""
    size = options.get("input_size")
    if size is not None and (len(size) != 2 or any(isinstance(v, bool) or int(v) < 32 for v in size)):
        raise ValueError(f"input_size is the network input's (height, width), each at least 32 pixels; got {size!r}")
    area = options.get("input_area")
    if area is not None and (isinstance(area, bool) or int(area) < 32 * 32):
        raise ValueError(f"input_area is the network input's area in pixels, at least 32 x 32 = 1024; got {area!r}")
    chunk = options.get("object_chunk")
    if chunk is not None and (isinstance(chunk, bool) or int(chunk) < 1):
        raise ValueError(f"object_chunk is how many objects run through the network at once, at least 1; got {chunk!r}")


def network_size(frame_size: tuple[int, int], input_size: tuple[int, int] | None = None,
                 input_area: int = PAPER_INPUT[0] * PAPER_INPUT[1]) -> tuple[int, int]:
    """The network's input (H, W): ``input_size`` rounded to multiples of 32, or the frame's aspect at ``input_area``."""
    def round32(v: float) -> int:
        return max(32, int(round(v / 32)) * 32)

    if input_size is not None:
        return round32(input_size[0]), round32(input_size[1])
    h, w = frame_size
    scale = math.sqrt(input_area / float(h * w))
    return round32(h * scale), round32(w * scale)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (N, C, H, W), antialiased when shrinking."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


class S2S(MethodBase):
    """S2S++ over a trained S2SNetwork; per-object probabilities, states carried from frame to frame."""

    name: ClassVar[str] = "s2s"
    needs_checkpoint: ClassVar[bool] = True
    map_names: ClassVar[tuple[str, ...]] = ("border_distance", "memory_activity")
    map_grids: ClassVar[dict[str, int | None]] = {"border_distance": None, "memory_activity": None}

    @classmethod
    def check_option_values(cls, options: dict[str, Any]) -> None:
        """The values a type cannot judge, checked when a Session is made."""
        check_input_options(options)

    def __init__(self, network: S2SNetwork, device: torch.device | str = "cpu",
                 input_size: tuple[int, int] | None = None, input_area: int = PAPER_INPUT[0] * PAPER_INPUT[1],
                 object_chunk: int = 8, seed: int = 0, **options: Any) -> None:
        super().__init__(device, seed=seed, **options)
        self.network = place_network(network, self.device)
        check_input_options({"input_size": input_size, "input_area": input_area, "object_chunk": object_chunk})
        self.input_size = tuple(input_size) if input_size is not None else None
        self.input_area = int(input_area)
        self.object_chunk = int(object_chunk)
        self.seed = seed
        self.classes = network.config.border_classes
        self.states: list[State] | None = None
        self._work_size: tuple[int, int] | None = None
        self._net_size: tuple[int, int] | None = None

    def _chunks(self, n: int) -> list[slice]:
        return [slice(a, min(a + self.object_chunk, n)) for a in range(0, n, self.object_chunk)]

    # -- protocol ------------------------------------------------------------------------
    @torch.no_grad()
    def start(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        """Initial states of every memory from the annotated frame and each object's mask."""
        self._work_size = (int(image.shape[-2]), int(image.shape[-1]))
        self._net_size = network_size(self._work_size, self.input_size, self.input_area)
        img = _resize(image.to(self.device).float()[None], self._net_size)
        masks = masks_keeping_objects(_resize(objects.to(self.device).float()[None], self._net_size)[0])
        parts = [self.network.initial_states(img, masks[s]) for s in self._chunks(masks.shape[0])]
        self.states = [(torch.cat([p[i][0] for p in parts]), torch.cat([p[i][1] for p in parts]))
                       for i in range(len(parts[0]))]

    @torch.no_grad()
    def step(self, image: torch.Tensor) -> Step:
        """Encode the frame once, step every object's memories, decode masks and distance classes."""
        if self.states is None:
            raise RuntimeError("S2S.step called before start()")
        img = _resize(image.to(self.device).float()[None], self._net_size)
        pyramid = self.network.encode(img)
        n = self.states[0][0].shape[0]
        logits, dists, new_parts = [], [], []
        for s in self._chunks(n):
            lg, dl, st = self.network.step(pyramid, [(h[s], c[s]) for h, c in self.states])
            logits.append(lg)
            dists.append(dl)
            new_parts.append(st)
        self.states = [(torch.cat([p[i][0] for p in new_parts]), torch.cat([p[i][1] for p in new_parts]))
                       for i in range(len(self.states))]
        probs = _resize(torch.sigmoid(torch.cat(logits).float())[None], self._work_size)[0]
        maps = {"memory_activity": self.states[0][0].abs().mean(1)}
        if dists[0] is not None:
            maps["border_distance"] = self.classes.expected_distance(torch.softmax(torch.cat(dists).float(), 1))
        return Step(probs=probs.clamp(0.0, 1.0), maps=maps)

    # update(): nothing to learn from the aggregated mask (MethodBase's no-op); the ConvLSTMs carry the object.
    # remember(): MethodBase re-runs start() on the corrected frame, re-initialising the memories from it.

    # -- construction from a checkpoint ----------------------------------------------------
    @classmethod
    def build(cls, device: torch.device | str = "cpu", checkpoint: str | None = None, **options: Any) -> "S2S":
        """Load the network from a registered name or a safetensors path (default: the shipped one)."""
        return build_method(cls, device, checkpoint, options, "s2s", "S2S", _network, accept_unnamed=True)


def _network(meta: dict[str, str]) -> S2SNetwork:
    """The network of the configuration stored in a checkpoint's metadata."""
    return S2SNetwork(checkpoint_config(meta, "s2s", S2SConfig, CONFIGS, "light"))
