"""A-GAME: A Generative Appearance Model for end-to-end video object segmentation (seed 003).

Johnander, Danelljan, Brissman, Khan, Felsberg, CVPR 2019. The network (methods.agame_network)
learns, in one shot and without gradient descent at test time, a Gaussian mixture of target and
background features (methods.agame_appearance): fitted on the annotated frame, used to score
every next frame, and updated with a running average from each new soft segmentation. Its
log-probabilities are fused with an RGMP-like mask-propagation module into a coarse segmentation,
refined by an upsampling module. K objects are K passes on shared backbone features; the engine
aggregates them (softmax aggregation) and the aggregated soft segmentations replace each object's
coarse mask in the recurrence (``update``).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import torch

from napari_vos.methods.agame_appearance import mixture_posteriors
from napari_vos.methods.agame_network import (CONFIGS, STRIDE, AGAMEConfig, AGAMENetwork, AGAMEState, Prediction,
                                              seg_at_stride)
from napari_vos.methods.base import MethodBase, Step
from napari_vos.methods.checkpoint import build_method, checkpoint_config
from napari_vos.methods.checkpoint import load_network as shared_load_network
from napari_vos.nn.memory_format import place_network
from napari_vos.nn.padding import crop_to, pad_to_multiple

RECURRENCES = ("aggregated", "coarse")


class AGAME(MethodBase):
    """The A-GAME method over a trained AGAMENetwork.

    Options: ``update_rate`` (lambda of the running mixture update, default the checkpoint's, 0.1;
    0 keeps the first frame's mixture), ``n_components`` (4: base + distractor components, the
    paper; 2: base components only), ``recurrence`` ("aggregated": the engine's aggregated
    segmentation, pooled to stride 16, feeds the mixture update and the mask propagation, as the
    paper does at test time; "coarse": the coarse predictor's own soft output, as in training),
    ``remember_rate`` (the weight a corrected frame gets in the mixture's running update, 0.5: at
    the per-frame 0.1 a correction wore off within 3-5 frames; 1 refits the mixture on it alone).
    """

    name: ClassVar[str] = "agame"
    needs_checkpoint: ClassVar[bool] = True
    map_names: ClassVar[tuple[str, ...]] = ("target_posterior", "distractor_posterior", "coarse_segmentation")
    map_grids: ClassVar[dict[str, int | None]] = {"target_posterior": 16, "distractor_posterior": 16, "coarse_segmentation": 16}
    # the paper evaluates at DAVIS 480p; the mixture and the coarse predictor work at stride 16, so a
    # smaller video leaves an object too few cells (the CPU checkpoint: J&F 0.15 -> 0.32 on the demo)
    min_working_side: ClassVar[int | None] = 480

    def __init__(self, network: AGAMENetwork, device: torch.device | str = "cpu", *,
                 update_rate: float | None = None, n_components: int | None = None,
                 recurrence: str = "aggregated", remember_rate: float = 0.5, seed: int = 0) -> None:
        super().__init__(device, update_rate=update_rate, n_components=n_components, recurrence=recurrence,
                         remember_rate=remember_rate)
        cfg = network.config
        rate = cfg.update_rate if update_rate is None else float(update_rate)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"update_rate (lambda) must be in [0, 1], got {update_rate!r}")
        if not 0.0 < float(remember_rate) <= 1.0:
            raise ValueError(f"remember_rate (a correction's weight in the mixture) must be in (0, 1], "
                             f"got {remember_rate!r}")
        self.remember_rate = float(remember_rate)
        components = cfg.n_components if n_components is None else n_components
        if components not in (2, 4):
            raise ValueError(f"n_components must be 4 (base + distractor components, the paper) or 2 "
                             f"(base components only), got {n_components!r}")
        if recurrence not in RECURRENCES:
            raise ValueError(f"recurrence must be one of {RECURRENCES}, got {recurrence!r}")
        self.config: AGAMEConfig = replace(cfg, update_rate=rate, n_components=int(components))
        self.recurrence = recurrence
        self.network = place_network(network, self.device)
        self.state: AGAMEState | None = None
        self._last: Prediction | None = None
        self.seed = seed  # A-GAME is deterministic; kept for the engine's common signature

    @classmethod
    def check_option_values(cls, options: dict[str, Any]) -> None:
        """The values a type cannot judge, checked when a Session is made (not at the first frame)."""
        rate = options.get("update_rate")
        if rate is not None and not 0.0 <= float(rate) <= 1.0:
            raise ValueError(f"update_rate (lambda) must be in [0, 1], got {rate!r}")
        if "remember_rate" in options and not 0.0 < float(options["remember_rate"]) <= 1.0:
            raise ValueError(f"remember_rate (a correction's weight in the mixture) must be in (0, 1], "
                             f"got {options['remember_rate']!r}")
        if options.get("n_components") not in (None, 2, 4):
            raise ValueError(f"n_components must be 4 (base + distractor components, the paper) or 2 "
                             f"(base components only), got {options['n_components']!r}")
        if options.get("recurrence", "aggregated") not in RECURRENCES:
            raise ValueError(f"recurrence must be one of {RECURRENCES}, got {options['recurrence']!r}")

    # -- helpers -------------------------------------------------------------------------
    def _features(self, image: torch.Tensor) -> tuple[dict[str, torch.Tensor], tuple[int, int]]:
        img, size = pad_to_multiple(image.to(self.device), STRIDE)
        return self.network.features(img[None]), size

    def _seg(self, masks: torch.Tensor) -> torch.Tensor:
        padded, _ = pad_to_multiple(masks.to(self.device).float(), STRIDE)
        return seg_at_stride(padded)

    # -- protocol ------------------------------------------------------------------------
    @torch.no_grad()
    def start(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        """Fit the mixture on the annotated frame; it is also the reference of the mask propagation."""
        feats, _ = self._features(image)
        self.state = self.network.init_state(feats, self._seg(objects), self.config.n_components)
        self._last = None

    @torch.no_grad()
    def step(self, image: torch.Tensor) -> Step:
        if self.state is None:
            raise RuntimeError("AGAME.step called before start()")
        feats, size = self._features(image)
        pred = self.network.predict(feats, self.state)
        self._last = pred
        probs = crop_to(torch.softmax(pred.logits.float(), dim=1)[:, 1], size)
        posteriors = mixture_posteriors(pred.log_probs, self.config.n_components)
        coarse = torch.softmax(pred.coarse_logits.float(), dim=1)[:, 1]
        maps = {"target_posterior": posteriors[:, 1], "distractor_posterior": posteriors[:, 2],
                "coarse_segmentation": coarse}
        return Step(probs=probs, maps=maps)

    @torch.no_grad()
    def update(self, probs: torch.Tensor) -> None:
        """Running update of the mixture and the next frame's y_{t-1} from the aggregated probabilities."""
        if self._last is None or self.state is None:
            return
        if self.recurrence == "aggregated":
            seg = self._seg(probs)
        else:
            seg = torch.softmax(self._last.coarse_logits.float(), dim=1)
        self.state = self.network.update_state(self.state, self._last.appearance_features, seg,
                                               self.config.n_components, self.config.update_rate)
        self._last = None

    @torch.no_grad()
    def remember(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        """A corrected frame: its mask updates the mixture at ``remember_rate`` and becomes y_{t-1}.

        The paper has no corrections; the annotated first frame stays the propagation reference
        (taking the correction as the reference instead barely helped: IoU 0.60 falling to 0.06
        after a change of colour, against about 0.90 with the mixture updated at 0.5).
        """
        if self.state is None:
            self.start(image, objects)
            return
        feats, _ = self._features(image)
        x = self.network.appearance.features(feats["s16"])
        self.state = self.network.update_state(self.state, x, self._seg(objects), self.config.n_components,
                                               self.remember_rate)
        self._last = None

    # -- construction from a checkpoint ----------------------------------------------------
    @classmethod
    def build(cls, device: torch.device | str = "cpu", checkpoint: str | None = None, **options: Any) -> "AGAME":
        """Load the network from a registered name or a safetensors path (default: the shipped one)."""
        return build_method(cls, device, checkpoint, options, "agame", "A-GAME", _network)


def load_network(checkpoint: str) -> tuple[AGAMENetwork, str, str]:
    """An AGAMENetwork from an A-GAME checkpoint; returns (network, checkpoint name, sha256)."""
    return shared_load_network(checkpoint, "agame", "A-GAME", _network)


def _network(meta: dict[str, str]) -> AGAMENetwork:
    """The network of the configuration stored in a checkpoint's metadata."""
    return AGAMENetwork(checkpoint_config(meta, "agame", AGAMEConfig, CONFIGS, "light"))


__all__ = ["AGAME", "AGAMENetwork", "AGAMEConfig", "CONFIGS", "load_network"]
