"""The file a layer is read from, so that no save replaces it: napari's File > Open keeps it in
``layer.source.path``; the layers napari-vos opens (File > IO Utilities > Open image TIFF) are read
from their file a frame at a time and keep it in their metadata. A save over that file (the save
dialog's overwrite question is easily answered Yes) would replace the image the layer shows."""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["SOURCE_KEY", "source_path", "refuse_a_source", "viewer_images"]

#: the metadata key of the file a napari-vos reader opened the layer from
SOURCE_KEY = "napari_vos_source"


def source_path(layer: Any) -> Path | None:
    """The file ``layer`` was opened from, where it says (napari's source, or napari-vos's metadata)."""
    source = getattr(getattr(layer, "source", None), "path", None) or \
        (getattr(layer, "metadata", None) or {}).get(SOURCE_KEY)
    return Path(source) if source else None


def refuse_a_source(path: str | Path, layers: Any, what: str) -> None:
    """A ValueError where ``path`` is the file one of ``layers`` was opened from; ``what``: what the save
    writes ("the overlay", "the labels")."""
    target = Path(path)
    for layer in layers:
        source = source_path(layer)
        if source is not None and source.exists() and target.exists() and source.resolve() == target.resolve():
            raise ValueError(f"{target.name} is the file {layer.name!r} was opened from: {what} would replace it; "
                             "give another name")


def viewer_images() -> list[Any]:
    """The Image layers of napari's current viewer (none where there is no viewer)."""
    try:
        import napari
        from napari.layers import Image
    except ImportError:
        return []
    viewer = napari.current_viewer()
    return [] if viewer is None else [layer for layer in viewer.layers if isinstance(layer, Image)]
