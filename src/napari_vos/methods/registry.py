"""Method registry: name -> implementing class (imported lazily), with a one-line description.

``create(name, device=..., checkpoint=..., **options)`` builds a ready method: classes with a
``build`` classmethod load their checkpoint through napari_vos.weights; weight-free ones are
constructed directly.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Any

METHODS: dict[str, str] = {
    "frtm": "napari_vos.methods.frtm:FRTM",
    "flow": "napari_vos.methods.flow:FlowMethod",
    "agame": "napari_vos.methods.agame:AGAME",
    "rgmp": "napari_vos.methods.rgmp:RGMP",
    "s2s": "napari_vos.methods.s2s:S2S",
    "osvos_at": "napari_vos.methods.osvos_at:OSVOSAT",
    "rvos": "napari_vos.methods.rvos:RVOS",
    "cosnet": "napari_vos.methods.cosnet:COSNet",
}

DESCRIPTIONS: dict[str, str] = {
    "frtm": "FRTM: fast target model learned at test time (Gauss-Newton) + segmentation network",
    "flow": "Optical-flow warping of the annotated labels (weight-free baseline)",
    "agame": "A-GAME: generative appearance model (Gaussian mixture, running update) + mask propagation",
    "rgmp": "RGMP: Siamese reference + previous-mask encoder-decoder, multi-scale, no test-time learning",
    "s2s": "S2S++: ConvLSTM sequence-to-sequence with skip-memory and border-distance classes",
    "osvos_at": "OSVOS-AT: network fine-tuned on the annotated frame, its attention maps transferred to other frames",
    "rvos": "RVOS: ConvLSTM decoder recurrent over objects and frames; one-shot, or zero-shot (zero_shot=True)",
    "cosnet": "COSNet: zero-shot primary object (no annotation), co-attention with N frames sampled from the video",
}


def available_methods(include_untrained: bool = False) -> list[str]:
    """Methods a user can run now: importable, and with a registered checkpoint when they need one.

    Methods whose networks are implemented but not trained and shipped yet are left out unless
    ``include_untrained`` (they still run with an explicit ``checkpoint=PATH``).
    """
    from napari_vos import weights

    names = []
    for name, target in METHODS.items():
        module = target.split(":")[0]
        if importlib.util.find_spec(module) is None:
            continue
        if not include_untrained and getattr(method_class(name), "needs_checkpoint", False) \
                and not weights.list_checkpoints(name):
            continue
        names.append(name)
    return names


def method_class(name: str) -> type:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; registered: {', '.join(METHODS)}")
    module_name, cls_name = METHODS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ValueError(f"method {name!r} is registered but its module {module_name} is missing: {err}") from err
    return getattr(module, cls_name)


def needs_annotation(name: str, **options: Any) -> bool:
    """Whether method ``name`` with these options needs an annotated frame (False for zero-shot
    methods, e.g. COSNet, or RVOS with ``zero_shot=True``)."""
    cls = method_class(name)
    ask = getattr(cls, "annotation_needed", None)
    return bool(ask(options)) if callable(ask) else bool(getattr(cls, "needs_annotation", True))


def accepts_annotation(name: str) -> bool:
    """Whether method ``name`` takes annotated frames at all (a zero-shot method may refuse them)."""
    return bool(getattr(method_class(name), "accepts_annotation", True))


def create(name: str, device: Any = "cpu", checkpoint: str | None = None, **options: Any) -> Any:
    """Instantiate a method, loading its checkpoint (the registry default when None)."""
    cls = method_class(name)
    if hasattr(cls, "build"):
        return cls.build(device=device, checkpoint=checkpoint, **options)
    if checkpoint is not None:
        raise ValueError(f"method {name!r} uses no checkpoint, but checkpoint={checkpoint!r} was given")
    return cls(device=device, **options)
