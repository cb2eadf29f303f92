"""The record of runs through several Z planes into one (T, Z, Y, X) output, made from each plane's own.

Each plane of a (T, Z, Y, X) image is propagated by a run of its own (the methods are 2-D). The output
carries one record: the last plane's (method, options, checkpoint), with the planes asked for and run,
each plane's own entries (with the values of the options its method chose for that plane, such as
RGMP's scales), and the totals. The widget's "every painted Z plane" (`PlaneRuns`) and
`napari-vos propagate --z painted` write the same record, so either output opens and reads alike.
"""
from __future__ import annotations

from typing import Any

from napari_vos.checks import frame_ranges, frames_in_ranges

__all__ = ["CHOSEN", "PAINTED", "PER_PLANE", "planes_run_record"]

#: ``--z`` (the command line) and ``plane=`` (the console, the widget) for every Z plane the labels hold paint on
PAINTED = "painted"

#: a plane's entries of its run's record that differ between planes, kept per plane in ``plane_runs``
PER_PLANE = ("start_frame", "annotated_frames", "object_ids", "frames_segmented", "frames_kept_from_labels",
             "complete", "cancelled", "frames_total", "frames_done", "fps", "seconds", "start_seconds", "error",
             "maps_not_shown", "stopped_by")

#: a plane's entry in ``plane_runs`` holding the values of the options its method chose for that plane (its run
#: record's ``chosen_options``: RGMP's scales for the objects' size), which the runs' ``options`` hold for the
#: latest plane only
CHOSEN = "chosen"

#: one plane's entries that the runs' record leaves to ``plane_runs``
_ONE_PLANE = ("z_plane", "start_frame", "frames_total", "start_seconds", "frames_kept_from_labels", "stopped_by")


def planes_run_record(records: dict[int, dict[str, Any]], asked: list[int], latest: int | None = None) -> dict[str, Any]:
    """The record of the planes run (``records``: each finished or stopped plane's run record, by plane)
    of the planes ``asked`` for: ``z_planes_run``, ``z_planes_asked``, ``plane_runs`` (each plane's own
    entries), the frames holding labels on some plane, the objects, annotated frames and map layers of
    all, summed time and frames; ``complete`` only where every plane asked for ran to its end. The
    entries the planes share (method, options, inputs) are plane ``latest``'s (default: the last plane's;
    a resumed run's last plane run, where a plane kept from the earlier run lies after it)."""
    done = sorted(records)
    last = records[done[-1] if latest is None else latest]
    record = {k: v for k, v in last.items() if k not in _ONE_PLANE}
    record.update({"z_planes_run": done, "z_planes_asked": list(asked),
                   "plane_runs": {str(z): _plane_entries(records[z]) for z in done}})
    held = {t for z in done for key in ("frames_segmented", "frames_kept_from_labels")
            for t in frames_in_ranges(str(records[z].get(key) or ""))}
    record["frames_segmented"] = frame_ranges(sorted(held))
    record["object_ids"] = sorted({i for z in done for i in records[z].get("object_ids") or []})
    record["annotated_frames"] = sorted({t for z in done for t in records[z].get("annotated_frames") or []})
    if any("map_layers" in records[z] for z in done):  # the widget's (the CLI's map files are per plane)
        record["map_layers"] = [n for z in done for n in records[z].get("map_layers") or []]
    record["seconds"] = round(sum(float(records[z].get("seconds") or 0) for z in done), 3)
    record["frames_done"] = sum(int(records[z].get("frames_done") or 0) for z in done)
    record["fps"] = round(record["frames_done"] / record["seconds"], 3) if record["seconds"] else 0.0
    every = done == list(asked)
    record["complete"] = every and all(records[z].get("complete") is not False for z in done)
    record["cancelled"] = not every or any(records[z].get("cancelled") for z in done)
    record["started"] = records[done[0]].get("started")
    return record


def _plane_entries(record: dict[str, Any]) -> dict[str, Any]:
    """A plane's own entries of its run ``record``: `PER_PLANE`'s, and `CHOSEN`'s where its method chose options."""
    own = {k: record[k] for k in PER_PLANE if k in record}
    options = record.get("options") or {}
    chosen = {k: options[k] for k in record.get("chosen_options") or () if k in options}
    return {**own, CHOSEN: chosen} if chosen else own
