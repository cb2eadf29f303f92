"""napari-vos: propagate a segmentation drawn on one frame through a whole time-lapse.

Quick start, for a (T, Y, X[, C]) stack ``video`` and the (Y, X) labels ``painted`` of its frame 0::

    from napari_vos import propagate
    result = propagate(video, painted, method="frtm")   # result.labels: (T, Y, X) object ids

In napari's console, ``napari_vos.propagate_layers(viewer, "image", "labels")`` takes layers or
their names; ``Session`` runs step by step (annotate, propagate, cancel); ``Result`` holds the
labels, maps and provenance; ``measure_objects`` and ``track_summary`` (``measure_layers`` in the
console) turn labels into per-object tables (area, position, speed, intensity). Files:
``napari_vos.data.readers`` (open_tiff_frames, open_dataset) and ``napari_vos.data.writers``. Methods and their options: ``napari_vos.methods.registry``. The
user guide (docs/user-guide.md, section 7) covers scripting.

The package import stays cheap: torch, napari and Qt are imported only when the engine,
a method or a widget is first used (the names above are resolved lazily).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Session", "propagate", "propagate_layers", "Result", "ChannelStack", "measure_objects", "track_summary",
           "measure_layers", "__version__"]

_LAZY = {
    "Session": ("napari_vos.session", "Session"),
    "propagate": ("napari_vos.session", "propagate"),
    "Result": ("napari_vos.session", "Result"),
    "propagate_layers": ("napari_vos.console", "propagate_layers"),
    "ChannelStack": ("napari_vos.data.channel_stack", "ChannelStack"),
    "measure_objects": ("napari_vos.object_table", "measure_objects"),
    "track_summary": ("napari_vos.object_table", "track_summary"),
    "measure_layers": ("napari_vos.console", "measure_layers"),
}

if TYPE_CHECKING:  # pragma: no cover
    from napari_vos.console import measure_layers, propagate_layers
    from napari_vos.object_table import measure_objects, track_summary
    from napari_vos.data.channel_stack import ChannelStack
    from napari_vos.session import Result, Session, propagate


def __dir__() -> list[str]:
    """The public names (for tab completion in napari's console), not yet imported ones too."""
    return sorted({*__all__, *(n for n in globals() if n.startswith("__"))})


def __getattr__(name: str) -> Any:
    """Import the public engine objects on first use (keeps `import napari_vos` light)."""
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        value = getattr(importlib.import_module(module_name), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'napari_vos' has no attribute {name!r}")
