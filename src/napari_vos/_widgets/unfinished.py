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
    """`napari_vos.stopped_runs.stopped_run_note` for a labels layer ``name`` with this ``metadata``, whose
    run record is ``metadata["napari_vos"]``: what the menus say of a stopped run's output, as the
    command line says it; None for any other layer."""
    from napari_vos.stopped_runs import stopped_run_note as note

    return note((metadata or {}).get("napari_vos"), repr(name), where)
