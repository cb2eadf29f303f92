"""A Propagate output that a run is still filling: the writers and exports refuse it, since the frames
the run has not reached are empty and would be saved as "no object"."""
from __future__ import annotations

from typing import Any

__all__ = ["refuse_unfinished", "stopped_run_note"]


def refuse_unfinished(metadata: dict[str, Any] | None, name: Any, what: str) -> None:
    """A ValueError saying to ``what`` (e.g. "save the overlay") when the run is done, where the labels
    layer ``name`` with this ``metadata`` is a Propagate output whose run has not ended (its record,
    ``metadata["napari_vos"]``, is stored when the run ends)."""
    metadata = metadata or {}
    if "napari_vos_output" in metadata and "napari_vos" not in metadata:
        raise ValueError(f"the labels layer {name!r} is still being filled by a Propagate run (the frames it has not "
                         f"reached are empty): {what} when the run is done, or after Cancel")


def stopped_run_note(metadata: dict[str, Any] | None, name: Any, where: str) -> str | None:
    """What to say of a stopped run's output (its record says ``complete: false``): the frames it holds
    segmented, and that objects are missing from the others ``where`` (e.g. "in the tables as well");
    None for any other layer (a record that is no dict, a reader's JSON text, counts as none)."""
    record = (metadata or {}).get("napari_vos")
    if not isinstance(record, dict) or record.get("complete") is not False:
        return None
    return (f"{name!r} is a stopped run's output: it holds the frames {record.get('frames_segmented', '?')} "
            f"segmented; objects are missing from the others, {where}")
