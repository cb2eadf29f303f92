"""RVOS: end-to-end recurrent network for multi-object VOS (seed 003, slides on Ventura et al., CVPR 2019).

Test-time behaviour. Each frame is encoded once; the objects then go through the ConvLSTM
decoder in the engine's id order, object i's state input merging object i-1's states at this frame
(spatial recurrence) with its own states at the previous frame (temporal recurrence). What is
carried from frame to frame is those states (and, one-shot, the previous masks), so memory does not
grow with the stack.

- **One-shot** (the default; the slides' semi-supervised configuration): the object's mask of the
  previous frame S_{t-1,i} is one more input channel at every decoder level. ``start`` reads the
  annotated frame with its own masks as S, which fills the temporal states; every next frame uses
  the engine's aggregated result of the previous one (``update``). A corrected frame
  (``remember``) is read the same way, keeping the temporal states.
- **Zero-shot** (``zero_shot=True``, a network trained with ``--config light:zero``): no mask
  input; the decoder segments N slots, each with an "object present" (stop) score. With an
  annotated frame, ``start`` matches the slots to the annotated objects on that frame (Hungarian,
  by IoU) and every next frame outputs the matched slots in the objects' order. Without any
  annotation (``step`` called without ``start``, as the engine's zero-shot path does), the objects
  are the slots before the first whose score on the first frame is below 0.5 (RIS's stopping
  rule), output as ids 1..K; a backward pass is a fresh run, whose slots need not carry the same
  ids. The engine asks ``annotation_needed(options)``: one-shot (the default) needs the annotation,
  ``Session(video, method="rvos", zero_shot=True)`` runs with or without one.

Frames are resized to the network's input size (the paper's 256 x 448 area at the frame's aspect
ratio, sides multiples of 32; ``input_size=(H, W)`` overrides) and the probabilities back.
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping

import torch
import torch.nn.functional as F

from napari_vos.methods.base import MethodBase, Step
from napari_vos.methods.checkpoint import build_method, checkpoint_config
from napari_vos.methods.rvos_matching import count_objects, match_slots
from napari_vos.methods.rvos_network import CONFIGS, ObjectStates, RVOSConfig, RVOSNetwork, resize_masks
from napari_vos.methods.s2s import PAPER_INPUT, check_input_options, network_size
from napari_vos.nn.aggregation import masks_keeping_objects
from napari_vos.nn.memory_format import place_network


class RVOS(MethodBase):
    """RVOS over a trained RVOSNetwork: one-shot (previous masks fed back) or zero-shot (slots)."""

    name: ClassVar[str] = "rvos"
    needs_checkpoint: ClassVar[bool] = True
    # one-shot (the default) needs the annotation; zero_shot=True does not (annotation_needed)
    needs_annotation: ClassVar[bool] = True
    accepts_annotation: ClassVar[bool] = True

    @classmethod
    def annotation_needed(cls, options: Mapping[str, Any]) -> bool:
        """One-shot needs the annotated frame; ``zero_shot=True`` runs without one (or matches to it)."""
        return not options.get("zero_shot")
    map_names: ClassVar[tuple[str, ...]] = ("convlstm_output",)
    map_grids: ClassVar[dict[str, int | None]] = {"convlstm_output": None}

    @classmethod
    def check_option_values(cls, options: dict[str, Any]) -> None:
        """The values a type cannot judge, checked when a Session is made."""
        check_input_options(options)

    def __init__(self, network: RVOSNetwork, device: torch.device | str = "cpu", zero_shot: bool | None = None,
                 input_size: tuple[int, int] | None = None, input_area: int = PAPER_INPUT[0] * PAPER_INPUT[1],
                 seed: int = 0, **options: Any) -> None:
        super().__init__(device, seed=seed, **options)
        if zero_shot is not None and bool(zero_shot) != network.config.zero_shot:
            kind = "zero-shot" if network.config.zero_shot else "one-shot"
            raise ValueError(f"zero_shot={bool(zero_shot)} asked for, but this checkpoint holds a {kind} RVOS "
                             f"network; train a {'zero-shot' if zero_shot else 'one-shot'} one "
                             f"(`napari-vos train rvos --config light:{'zero' if zero_shot else 'teacher'}`)")
        check_input_options({"input_size": input_size, "input_area": input_area})
        self.network = place_network(network, self.device)
        self.zero_shot = network.config.zero_shot
        self.input_size = tuple(input_size) if input_size is not None else None
        self.input_area = int(input_area)
        self.seed = seed
        self.temporal: list[ObjectStates] | None = None
        self.previous: torch.Tensor | None = None  # one-shot: S_{t-1} (1, K, h, w) at the network's size
        self.slots: list[int] | None = None  # zero-shot: the slot output for each object
        self.object_scores: torch.Tensor | None = None  # zero-shot: the last frame's "object present" scores (N,)
        self._work_size: tuple[int, int] | None = None
        self._net_size: tuple[int, int] | None = None

    # -- helpers -------------------------------------------------------------------------
    def _features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The frame at the network's size, encoded (sets the sizes on the first frame)."""
        if self._work_size is None:
            self._work_size = (int(image.shape[-2]), int(image.shape[-1]))
            self._net_size = network_size(self._work_size, self.input_size, self.input_area)
        img = image.to(self.device).float()[None]
        if tuple(img.shape[-2:]) != self._net_size:
            shrink = self._net_size[0] < img.shape[-2]
            img = F.interpolate(img, size=self._net_size, mode="bilinear", align_corners=False, antialias=shrink)
        return self.network.encode(img)

    def _masks(self, objects: torch.Tensor) -> torch.Tensor:
        """(K, H, W) masks or probabilities -> (1, K, h, w) at the network's size."""
        return resize_masks(objects.to(self.device).float()[None], self._net_size)

    def _read(self, feats: list[torch.Tensor], masks: torch.Tensor | None) -> Any:
        out = self.network.frame(feats, masks, self.temporal)
        self.temporal = out.states
        return out

    def _slot_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, h/4, w/4) logits -> (N, h, w) probabilities at the network's size."""
        return torch.sigmoid(F.interpolate(logits[None].float(), size=self._net_size, mode="bilinear",
                                           align_corners=False)[0])

    def _prime(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        """Read an annotated frame: one-shot with its masks as S; zero-shot matching the slots to its objects."""
        feats = self._features(image)
        if self.zero_shot:
            out = self._read(feats, None)
            self.object_scores = torch.sigmoid(out.stop[0].float())
            self.slots = match_slots(self._slot_probs(out.logits[0]), masks_keeping_objects(self._masks(objects)[0]))
        else:
            masks = masks_keeping_objects(self._masks(objects))
            self._read(feats, masks)
            self.previous = masks

    # -- protocol ------------------------------------------------------------------------
    @torch.no_grad()
    def start(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        """Begin a pass at an annotated frame (objects (K, H, W) in the engine's id order)."""
        self.temporal, self.previous, self.slots = None, None, None
        self._work_size = None
        self._prime(image, objects)

    @torch.no_grad()
    def step(self, image: torch.Tensor) -> Step:
        """Segment the next frame: per-object probabilities (K, H, W) and each object's last ConvLSTM output."""
        if not self.zero_shot and self.previous is None:
            raise ValueError("RVOS in one-shot mode needs an annotated frame: paint the objects on one frame, "
                             "or run the zero-shot configuration (zero_shot=True) with a zero-shot checkpoint")
        feats = self._features(image)
        out = self._read(feats, None if self.zero_shot else self.previous)
        if self.zero_shot:
            self.object_scores = torch.sigmoid(out.stop[0].float())
            if self.slots is None:  # no annotation: the objects found on this first frame
                self.slots = list(range(count_objects(self.object_scores)))
            index = torch.tensor(self.slots, dtype=torch.long, device=out.logits.device)
        else:
            index = torch.arange(out.logits.shape[1], device=out.logits.device)
        if not len(index):  # zero-shot, no annotation, no slot holding an object: all background
            none = image.new_zeros((0, *out.logits.shape[-2:]))
            return Step(probs=image.new_zeros((0, *self._work_size)), maps={"convlstm_output": none})
        logits = out.logits[0].index_select(0, index).float()
        probs = F.interpolate(logits[None], size=self._work_size, mode="bilinear", align_corners=False)[0]
        h = out.features[0].index_select(0, index).float()
        activity = h.norm(dim=1) / h.shape[1] ** 0.5  # (K, h/4, w/4): RMS over the channels
        return Step(probs=torch.sigmoid(probs), maps={"convlstm_output": activity})

    @torch.no_grad()
    def update(self, probs: torch.Tensor) -> None:
        """One-shot: the aggregated (K, H, W) result becomes S_{t-1} of the next frame. Zero-shot: nothing."""
        if not self.zero_shot:
            self.previous = self._masks(probs)

    @torch.no_grad()
    def remember(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        """A corrected frame: read with its masks (one-shot) or re-match the slots on it (zero-shot)."""
        self._prime(image, objects)

    # -- construction from a checkpoint ----------------------------------------------------
    @classmethod
    def build(cls, device: torch.device | str = "cpu", checkpoint: str | None = None, zero_shot: bool | None = None,
              **options: Any) -> "RVOS":
        """Load the network from a registered name or a safetensors path.

        Default: the registered RVOS checkpoint of the asked mode (``zero_shot``: entries whose
        config names the ``zero`` stage, e.g. ``light:zero``; None: the default entry).
        """
        name = checkpoint or default_checkpoint_name(zero_shot)
        return build_method(cls, device, name, {"zero_shot": zero_shot, **options}, "rvos", "RVOS", _network)


def default_checkpoint_name(zero_shot: bool | None) -> str:
    """The registered RVOS checkpoint for a mode: zero-shot ones have a config ending in ``:zero``."""
    from napari_vos import weights

    if zero_shot is None:
        return weights.default_checkpoint("rvos").name
    entries = [e for e in weights.list_checkpoints("rvos") if e.config.endswith(":zero") == bool(zero_shot)]
    if not entries:
        mode = "zero-shot" if zero_shot else "one-shot"
        stage = "zero" if zero_shot else "teacher"
        raise weights.CheckpointError(f"no {mode} RVOS checkpoint is registered; train one with "
                                      f"`napari-vos train rvos --config light:{stage}` and give its file: {weights.GIVE_CHECKPOINT}")
    return sorted(entries, key=lambda e: not e.default)[0].name


def _network(meta: dict[str, str]) -> RVOSNetwork:
    """The network of the configuration stored in a checkpoint's metadata."""
    return RVOSNetwork(checkpoint_config(meta, "rvos", RVOSConfig, CONFIGS, "light"))
