"""What a stopped run's output holds, said alike by every tool that reads one (the command line's
measure, divisions and ctc, the napari menus, the scoring): its record says ``complete: false`` and
which frames hold labels; the others are empty, so objects seem to end where the run stopped."""
from __future__ import annotations

from typing import Any

from napari_vos.checks import frame_ranges, frames_in_ranges

__all__ = ["HELD_KEYS", "held_frames", "is_stopped", "stopped_run_note"]

# the record's entries naming frames that hold labels: segmented, or copied from the run's labels stack
HELD_KEYS = ("frames_segmented", "frames_kept_from_labels", "frames_not_reached_kept_from_labels")


def is_stopped(record: Any) -> bool:
    """The record (a dict) of a run that did not finish; False for any other value (no record, a
    reader's JSON text, a finished run's)."""
    return isinstance(record, dict) and record.get("complete") is False


def held_frames(record: dict[str, Any]) -> list[int] | None:
    """The frames a run's output holds labels on, from its record (segmented or kept from its labels);
    None where the record cannot tell (a killed run's, or a layer saved while its run was going)."""
    try:
        return sorted({t for key in HELD_KEYS for t in frames_in_ranges(str(record.get(key) or ""))})
    except ValueError:
        return None


def stopped_run_note(record: Any, name: str, where: str) -> str | None:
    """What to say of a stopped run's output called ``name``: which frames hold labels, and that objects
    are missing from the others ``where`` (e.g. "in the tables as well"); None for any other record."""
    if not is_stopped(record):
        return None
    how = f" ({record['stopped_by']})" if record.get("stopped_by") else ""
    held = held_frames(record)
    if held is None:
        return (f"{name} is the output of a run that did not finish{how}, and its record does not say which frames "
                f"it reached: objects are missing from the frames it never reached, {where}")
    return (f"{name} is the output of a stopped run{how}: it holds labels on frames {frame_ranges(held) or 'none'} "
            f"only; objects are missing from the others, {where}")
