"""A Propagate output that a run is still filling: the writers and exports refuse it, since the frames
the run has not reached are empty and would be saved as "no object"."""
from __future__ import annotations

from typing import Any

__all__ = ["refuse_unfinished"]


def refuse_unfinished(metadata: dict[str, Any] | None, name: Any, what: str) -> None:
    """A ValueError saying to ``what`` (e.g. "save the overlay") when the run is done, where the labels
    layer ``name`` with this ``metadata`` is a Propagate output whose run has not ended (its record,
    ``metadata["napari_vos"]``, is stored when the run ends)."""
    metadata = metadata or {}
    if "napari_vos_output" in metadata and "napari_vos" not in metadata:
        raise ValueError(f"the labels layer {name!r} is still being filled by a Propagate run (the frames it has not "
                         f"reached are empty): {what} when the run is done, or after Cancel")
