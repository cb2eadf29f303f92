"""Method registry: name -> implementing class (imported lazily), with a one-line description.

``create(name, device=..., checkpoint=..., **options)`` builds a ready method: classes with a
``build`` classmethod load their checkpoint through napari_vos.weights; weight-free ones are
constructed directly.
"""
from __future__ import annotations

import importlib
from typing import Any

METHODS: dict[str, str] = {
    "frtm": "napari_vos.methods.frtm:FRTM",
    "flow": "napari_vos.methods.flow:FlowMethod",
}

DESCRIPTIONS: dict[str, str] = {
    "frtm": "FRTM: fast target model learned at test time (Gauss-Newton) + segmentation network",
    "flow": "Optical-flow warping of the annotated labels (weight-free baseline)",
}


def available_methods() -> list[str]:
    """Registered method names whose module can be imported."""
    names = []
    for name, target in METHODS.items():
        module = target.split(":")[0]
        if importlib.util.find_spec(module) is not None:
            names.append(name)
    return names


def method_class(name: str) -> type:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(available_methods())}")
    module_name, cls_name = METHODS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ValueError(f"method {name!r} is registered but its module {module_name} is missing: {err}") from err
    return getattr(module, cls_name)


def create(name: str, device: Any = "cpu", checkpoint: str | None = None, **options: Any) -> Any:
    """Instantiate a method, loading its checkpoint (the registry default when None)."""
    cls = method_class(name)
    if hasattr(cls, "build"):
        return cls.build(device=device, checkpoint=checkpoint, **options)
    if checkpoint is not None:
        raise ValueError(f"method {name!r} uses no checkpoint, but checkpoint={checkpoint!r} was given")
    return cls(device=device, **options)
