"""What `napari-vos propagate --z ... --resume FILE` keeps of a stopped or killed run through several Z planes.

A run through the Z planes of a (T, Z, Y, X) stack (`cli_planes`) writes each plane's record into its file
as that plane ends: a stopped run's output carries it, and so does a killed run's partial file. Going
on from such a file keeps the planes it holds finished (labels and records), and runs the others; a
plane that stopped part-way is run again from its start, since its run's test-time memory is gone. The
result is the file the uninterrupted run would have written, its record naming the file the kept
planes came from.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_vos.checks import frame_ranges
from napari_vos.plane_records import CHOSEN, PER_PLANE

__all__ = ["ARITHMETIC_ONLY", "KeptPlanes", "check_same_run", "finished_planes", "kept_planes", "kept_runs",
           "planes_and_left", "planes_note", "resumable_runs"]

#: the runs' record entries that describe them all, not one plane: left out of a kept plane's own record
_RUNS_ONLY = ("z_planes_run", "z_planes_asked", "plane_runs", "resumed_from")


@dataclass
class KeptPlanes:
    """The finished planes of an earlier run's (T, Z, Y, X) labels TIFF ``path``: each one's run record
    (the file's shared entries with the plane's own), the planes it stopped part-way, its largest id."""

    path: Path
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    part_way: list[int] = field(default_factory=list)
    top: int = 0

    def copy_into(self, labels: Any) -> None:
        """Each kept plane's labels into the (T, Z, Y, X) array ``labels`` (a memory map), one plane of one
        frame read at a time."""
        from napari_vos.data.readers import open_tiff_volume_frames

        planes = open_tiff_volume_frames(self.path)
        try:
            depth = planes.volume[1]
            for z in self.records:
                for t in range(planes.volume[0]):
                    labels[t, z] = planes[t * depth + z]
        finally:
            planes.close()

    def check_same_run(self, provenance: dict[str, Any], direction: str) -> None:
        """`check_same_run` of the kept planes and the run going on."""
        check_same_run(self.records, provenance, direction, str(self.path))


#: options that change only the last bits of the arithmetic, not the method's labels: kept planes may differ
#: in them from the run going on, as they may in the device
ARITHMETIC_ONLY = ("precision",)


def check_same_run(kept: dict[int, dict[str, Any]], provenance: dict[str, Any], direction: str, where: str) -> None:
    """A ValueError where the run going on (its Session's ``provenance``, its ``direction``) is not the ``kept``
    planes' (their records, from ``where``) method with the same weights, options (working size, method
    options; all but `ARITHMETIC_ONLY` and those the method chose) and direction: one output's planes would
    come from two runs; none where no plane was kept (every plane of the earlier run stopped part-way)."""
    if not kept:  # nothing of the earlier run stays in the output: nothing to match
        return
    earlier = next(iter(kept.values()))
    for key, what in (("method", "method"), ("checkpoint_sha256", "checkpoint (its sha256)")):
        if earlier.get(key) != provenance.get(key):
            raise ValueError(f"the planes kept from {where} were made with {what} {earlier.get(key)!r}, this run's "
                             f"is {provenance.get(key)!r}: give the earlier run's method and checkpoint, or run every "
                             "plane again")
    # as the file holds them: a tuple read back from JSON is a list
    theirs, ours = (json.loads(json.dumps(r.get("options") or {})) for r in (earlier, provenance))
    # what a method picked itself (RGMP's scales for the objects' size) may differ between planes
    chosen = {*earlier.get("chosen_options", ()), *provenance.get("chosen_options", ())}
    differ = sorted(k for k in set(theirs) | set(ours)
                    if k not in ARITHMETIC_ONLY and k not in chosen and theirs.get(k) != ours.get(k))
    if earlier.get("direction", direction) != direction:
        theirs["direction"], ours["direction"] = earlier["direction"], direction
        differ.append("direction")
    if differ:
        raise ValueError(f"the planes kept from {where} were made with {_settings(theirs, differ)}, this run's are "
                         f"{_settings(ours, differ)}: give the earlier run's settings, or run every plane again")


def _settings(options: dict[str, Any], names: list[str]) -> str:
    """``names`` of ``options`` as name=value (``not set`` for one missing), for a message."""
    return ", ".join(f"{k}={options[k]!r}" if k in options else f"{k} not set" for k in names)


def kept_runs(record: dict[str, Any]) -> tuple[dict[int, dict[str, Any]], list[int]]:
    """The planes a record of runs through Z planes (`planes_run_record`'s) names finished, each with its run
    record rebuilt (the runs' shared entries with the plane's own, its options with the values its method chose
    for it), and the planes it names stopped part-way."""
    shared = {k: v for k, v in record.items() if k not in _RUNS_ONLY and k not in PER_PLANE}
    finished, part_way = {}, []
    for plane, own in sorted((record.get("plane_runs") or {}).items(), key=lambda item: int(item[0])):
        if own.get("complete") is False or own.get("cancelled"):
            part_way.append(int(plane))
            continue
        own = dict(own)
        chosen = own.pop(CHOSEN, None)
        finished[int(plane)] = {**shared, **own, "z_plane": int(plane)}
        if chosen:  # an earlier record (session 52's) has none: the latest plane's values stand for all
            finished[int(plane)].update(options={**(shared.get("options") or {}), **chosen},
                                        chosen_options=sorted(chosen))
    return finished, part_way


def resumable_runs(record: Any, method: str, what: str) -> tuple[dict[int, dict[str, Any]], list[int]]:
    """`kept_runs` of ``record``, checked to be the record of runs through several Z planes of ``method``; a
    ValueError naming ``what`` (the file, the layer) otherwise."""
    if not isinstance(record, dict) or not isinstance(record.get("plane_runs"), dict):
        raise ValueError(f"{what}: its record names no runs through Z planes, so it is no output of runs through "
                         "several Z planes (--z painted or a list of planes; 'every painted Z plane') that stopped: "
                         "give one, or run every plane")
    if record.get("method") != method:
        raise ValueError(f"{what} holds planes made with the method {record.get('method')}, not {method}: give "
                         f"{record.get('method')} to go on with them")
    return kept_runs(record)


def kept_planes(path: str | Path, shape: tuple[int, ...], method: str) -> KeptPlanes:
    """The planes ``path`` holds finished (its record's ``plane_runs``), checked to be a (T, Z, Y, X) labels
    TIFF of ``shape`` from runs of ``method``; a ValueError naming the problem otherwise."""
    import tifffile

    from napari_vos.data.damaged_files import reading
    from napari_vos.data.writers import tiff_record

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--resume {path} {'is not a file' if path.exists() else 'does not exist'}: give the labels "
                         "TIFF a stopped run through several Z planes wrote (or a killed run's partial file)")
    with reading(path, "a TIFF"), tifffile.TiffFile(path) as tif:
        record = tiff_record(tif) or {}
        found = tuple(int(n) for n in tif.series[0].shape)
    if found != tuple(shape):
        raise ValueError(f"--resume {path} holds labels of shape {found}, but the labels to propagate are "
                         f"{tuple(shape)} (T, Z, Y, X): give the file a run over this video wrote")
    finished, part_way = resumable_runs(record, method, f"--resume {path}")
    top = max([0, *(i for r in finished.values() for i in r.get("object_ids") or [])])
    return KeptPlanes(path, finished, part_way, top)


def finished_planes(record: dict[str, Any]) -> list[int]:
    """The planes a run's record (`planes_run_record`'s) says ran to their end."""
    return sorted(kept_runs(record)[0])


def planes_note(kept: KeptPlanes, asked: list[int]) -> str:
    """What the run keeps of ``kept`` and runs again, for the terminal."""
    again = [z for z in kept.part_way if z in asked]
    dropped = [z for z in kept.part_way if z not in asked]
    note = f"kept Z plane(s) {frame_ranges(sorted(kept.records)) or 'none'} from {kept.path}"
    if again:
        note += f"; Z plane(s) {frame_ranges(again)} stopped part-way there and run again from the start"
    if dropped:
        note += f"; Z plane(s) {frame_ranges(dropped)} stopped part-way there and not asked for (--z): left empty"
    return note


def planes_and_left(asked: list[int], kept: dict[int, dict[str, Any]], what: str) -> tuple[list[int], list[int]]:
    """The planes of the output (those ``asked`` for and those ``kept``, in order) and those of ``asked`` to run
    (not kept); a ValueError naming ``what`` (the file, the layer) where none is left."""
    left = [z for z in asked if z not in kept]
    if not left:
        raise ValueError(f"{what} holds every Z plane asked for ({frame_ranges(asked)}) finished: nothing is left "
                         "to run")
    return sorted(set(asked) | set(kept)), left
