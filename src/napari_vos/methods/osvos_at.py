"""OSVOS-AT: one-shot video object segmentation using attention transfer (seed 000, Chanda & Wang).

A Siamese use of one network (methods.osvos_at_net): at ``start`` the parent network is
fine-tuned on the annotated frame (the teacher stream, methods.osvos_at_finetune) and the
fine-tuned teacher's attention maps A_t^i of that frame are kept; every other frame goes through
the student stream, which has the teacher's (copied) parameters and adds A_t^i to its own
attention maps before weighting its features (eq. 6). An optional dense CRF (nn.dense_crf)
smooths each object's mask. K objects share one backbone; each has its own attention and score
(the parent's single-object head copied K times and fine-tuned together).

Fine-tuning is the slow part, so it reports ``on_finetune(step, total, loss)`` and stops when
``cancel_event`` (a threading.Event) is set. The engine builds a fresh method for the forward
and the backward pass; the fine-tuned weights of the last annotated frame are kept in a small
cache (keyed by checkpoint, frame, masks and settings) so the second pass does not fine-tune again.
"""
from __future__ import annotations

import json
import threading
from dataclasses import replace
from typing import Any, Callable, ClassVar

import torch

from napari_vos.methods.base import MethodBase, Step
from napari_vos.methods import registry
from napari_vos.methods.checkpoint import build_method, checkpoint_config
# clear_finetune_cache: re-exported, as the method page names it here
from napari_vos.methods.finetune_cache import clear_finetune_cache, finetune_key, tune_once  # noqa: F401
from napari_vos.methods.osvos_at_finetune import FinetuneReport, FinetuneSettings, finetune
from napari_vos.methods.osvos_at_net import CONFIGS, OSVOSATConfig, OSVOSATNetwork
from napari_vos.nn.dense_crf import DenseCRFSettings, crf_foreground
from napari_vos.nn.memory_format import place_network, prefer_channels_last
from napari_vos.nn.padding import crop_to, pad_to_multiple


#: crf="auto" runs the DenseCRF below this many objects: it lifted the natural sample (2 objects) from
#: J&F 36.9 to 48.5 and 4 hold-out sequences from 70.4 to 74.4, but lowered the 25-cell sample from
#: 46.8 to 39.7 at a 27th of the speed (docs/benchmarks.md, session 36)
CRF_AUTO_MAX_OBJECTS = 8


class OSVOSAT(MethodBase):
    """The OSVOS-AT test network: fine-tuned teacher, attention-transferred student."""

    name: ClassVar[str] = "osvos_at"
    needs_checkpoint: ClassVar[bool] = True
    reports_finetune: ClassVar[bool] = True
    map_names: ClassVar[tuple[str, ...]] = ("attention_1", "attention_2", "attention_3", "attention_4")
    #: the light (ResNet-18) configuration's strides; an instance declares its own network's (VGG-16: 2 to 16)
    map_grids: ClassVar[dict[str, int | None]] = {"attention_1": 4, "attention_2": 8, "attention_3": 16, "attention_4": 32}
    # DAVIS 480p, as FRTM and A-GAME: on the 384x256 natural sample the session-6 parent scores J&F
    # 33.1 enlarged to 720x480 against 18.2 at its own size (docs/benchmarks.md)
    min_working_side: ClassVar[int | None] = 480

    def __init__(self, network: OSVOSATNetwork, device: torch.device | str = "cpu", seed: int = 0, *,
                 finetune_iterations: int | None = None, finetune_lr: float | None = None,
                 finetune_crop: int | None | str = "default", finetune_frozen_stages: int | None = None,
                 finetune_optimizer: str = "adam", finetune_augment: bool = True,
                 remember_iterations: int | None = None, attention_transfer: bool = True, crf: bool | str = "auto",
                 crf_iterations: int = 5, crf_bilateral_xy: float = 80.0, crf_bilateral_rgb: float = 13.0,
                 crf_bilateral_weight: float = 10.0, crf_gaussian_xy: float = 3.0, crf_gaussian_weight: float = 3.0,
                 on_finetune: Callable[[int, int, float], None] | None = None,
                 cancel_event: threading.Event | None = None, reuse_finetune: bool = True, **options: Any) -> None:
        if options:  # left over after the keywords above: names OSVOS-AT does not take
            registry.check_options(self.name, options)
        super().__init__(device, seed=seed)
        cfg: OSVOSATConfig = network.config
        self.finetune_settings = FinetuneSettings(
            iterations=cfg.finetune_iterations if finetune_iterations is None else int(finetune_iterations),
            lr=cfg.finetune_lr if finetune_lr is None else float(finetune_lr),
            crop=cfg.finetune_crop if finetune_crop == "default" else finetune_crop,
            frozen_stages=cfg.finetune_frozen_stages if finetune_frozen_stages is None else int(finetune_frozen_stages),
            optimizer=finetune_optimizer, augment=bool(finetune_augment), seed=seed)
        self.remember_iterations = (self.finetune_settings.iterations // 2 if remember_iterations is None
                                    else int(remember_iterations))
        self.attention_transfer = attention_transfer
        self.check_option_values({"crf": crf})
        self.crf_setting = crf  # True, False or "auto" (decided at start by the number of objects)
        self.crf_settings = DenseCRFSettings(crf_iterations, crf_bilateral_xy, crf_bilateral_rgb, crf_bilateral_weight,
                                             crf_gaussian_xy, crf_gaussian_weight)
        self.crf: DenseCRFSettings | None = self.crf_settings if crf is True else None
        self.on_finetune = on_finetune
        self.cancel_event = cancel_event
        self.reuse_finetune = reuse_finetune
        self.network = place_network(network, self.device)
        self.map_grids = dict(zip(self.map_names, self.network.strides))  # type: ignore[misc]
        self.parent_heads = self.network.heads
        self.teacher_attention: list[torch.Tensor] | None = None
        self.annotated: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.reports: list[FinetuneReport] = []
        self.checkpoint_name: str | None = None
        self.checkpoint_sha256: str | None = None

    @classmethod
    def check_option_values(cls, options: dict[str, Any]) -> None:
        """The fine-tuning values a type cannot judge, checked when a Session is made (the types:
        option_types): FinetuneSettings' own checks, with the configuration's values for the rest."""
        crf_choice = options.get("crf", "auto")
        if not (crf_choice is True or crf_choice is False or crf_choice == "auto"):
            raise ValueError(f"crf takes True, False or 'auto' (on below {CRF_AUTO_MAX_OBJECTS} objects); got {crf_choice!r}")
        crop = options.get("finetune_crop", "default")
        if isinstance(crop, str) and crop != "default":
            raise ValueError(f"finetune_crop takes a side in pixels (at least 32), None for whole frames, or "
                             f"'default' for the configuration's; got {crop!r}")
        given = {"iterations": options.get("finetune_iterations"), "lr": options.get("finetune_lr"),
                 "crop": crop, "frozen_stages": options.get("finetune_frozen_stages"),
                 "optimizer": options.get("finetune_optimizer")}
        # crop None (whole frames) is a value here, the others' None is "the configuration's"
        FinetuneSettings(**{k: v for k, v in given.items() if (v is not None or k == "crop") and v != "default"})
        crf = {f: options[f"crf_{f}"] for f in DenseCRFSettings.__dataclass_fields__ if f"crf_{f}" in options}
        DenseCRFSettings(**crf)  # checked whether or not crf is on: a value given is a value meant

    # -- fine-tuning and the teacher stream ----------------------------------------------
    def _cache_key(self, image: torch.Tensor, objects: torch.Tensor) -> str | None:
        if not self.reuse_finetune:
            return None
        # the device too, as RGMP's: weights tuned on a GPU differ in their last digits from a CPU's
        settings = json.dumps(self.network.config.to_dict(), sort_keys=True) + repr(self.finetune_settings) + \
            str(self.device)
        return finetune_key(self.name, self.checkpoint_sha256, settings, (image, objects))

    def _finetune(self, iterations: int) -> FinetuneReport:
        # the seed follows the annotated frames seen (0 at start, 1 at the first correction, ...), not the
        # fine-tunings run: a start whose fine-tuning came from the cache must not shift later seeds
        settings = replace(self.finetune_settings, iterations=iterations,
                           seed=self.finetune_settings.seed + len(self.annotated) - 1)
        images = [img for img, _ in self.annotated]
        masks = [obj for _, obj in self.annotated]
        report = finetune(self.network, images, masks, settings, self.on_finetune, self.cancel_event)
        self.reports.append(report)
        return report

    def _teacher(self, image: torch.Tensor) -> None:
        """A_t^i: the fine-tuned teacher's attention maps of the annotated frame."""
        with torch.inference_mode(False), torch.no_grad():
            img, _ = pad_to_multiple(image.detach().clone().float()[None], self.network.multiple)
            self.teacher_attention = self.network.heads.attention_maps(self.network.features(img))

    # -- protocol ------------------------------------------------------------------------
    def start(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        """Fine-tune the parent on the annotated frame (online training), then compute A_t^i."""
        image, objects = image.to(self.device), objects.to(self.device).float()
        if self.crf_setting == "auto":  # the paper's post-processing where it pays (docs/methods/osvos_at.md)
            self.crf = self.crf_settings if objects.shape[0] < CRF_AUTO_MAX_OBJECTS else None
        with torch.inference_mode(False):
            self.network.heads = prefer_channels_last(self.parent_heads.expanded(objects.shape[0]), self.device)
            image_c, objects_c = image.detach().clone(), objects.detach().clone()
        self.annotated = [(image_c, objects_c)]
        tune_once(self._cache_key(image_c, objects_c), self.network,
                  lambda: not self._finetune(self.finetune_settings.iterations).cancelled, self.run_memo)
        self._teacher(image_c)

    @torch.no_grad()
    def step(self, image: torch.Tensor) -> Step:
        """The student stream: own attention + transferred teacher attention (eq. 6), then the mask."""
        if self.teacher_attention is None:
            raise RuntimeError("OSVOSAT.step called before start()")
        img, size = pad_to_multiple(image.to(self.device).float()[None], self.network.multiple)
        teacher = self.teacher_attention if self.attention_transfer else None
        out = self.network(img, teacher_attention=teacher)
        probs = crop_to(torch.sigmoid(out.logits[0].float()), size)  # float32 probabilities under any autocast
        if self.crf is not None:
            probs = crf_foreground(image.to(self.device).float(), probs, self.crf)
        maps = {}
        for i, (a, s) in enumerate(zip(out.attention_used, self.network.strides)):
            maps[f"attention_{i + 1}"] = a[0, :, : -(-size[0] // s), : -(-size[1] // s)]
        return Step(probs=probs, maps=maps)

    def chosen_options(self) -> dict[str, Any]:
        """Whether the DenseCRF ran ("auto" decides by the number of objects): the record says which."""
        return {"crf": self.crf is not None}

    def remember(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        """A corrected frame: fine-tune further on all annotated frames; it becomes the teacher."""
        if self.teacher_attention is None:
            self.start(image, objects)
            return
        with torch.inference_mode(False):
            self.annotated.append((image.to(self.device).detach().clone(),
                                   objects.to(self.device).float().detach().clone()))
        if self.remember_iterations > 0:
            self._finetune(self.remember_iterations)
        self._teacher(self.annotated[-1][0])

    # -- construction from a checkpoint ----------------------------------------------------
    @classmethod
    def build(cls, device: torch.device | str = "cpu", checkpoint: str | None = None, **options: Any) -> "OSVOSAT":
        """Load the parent network from a registered name or a safetensors path (default: the shipped one)."""
        return build_method(cls, device, checkpoint, options, "osvos_at", "OSVOS-AT", _network)


def _network(meta: dict[str, str]) -> OSVOSATNetwork:
    """The network of the configuration stored in a checkpoint's metadata."""
    return OSVOSATNetwork(checkpoint_config(meta, "osvos_at", OSVOSATConfig, CONFIGS, "light"))
