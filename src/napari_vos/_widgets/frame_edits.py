"""Which frames of an output layer the user changed after its run: a checksum of every frame as the
run left it, kept in the layer's metadata, so that a re-run from a corrected output names the edited
frames it replaces rather than dropping the corrections without a word."""
from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from napari.layers import Labels

#: layer.metadata key: {"dtype": str, "crc": [int | None per frame], and for a (T, Z, Y, X) output "plane": int};
#: for the output of runs through several Z planes {"dtype": str, "planes": {"z": [int | None per frame]}}
CHECKSUMS = "napari_vos_frame_checksums"


def frame_checksum(frame: np.ndarray) -> int:
    """crc32 of a labels frame's bytes (a view of the layer's C-ordered data: no copy)."""
    return zlib.crc32(np.ascontiguousarray(frame))


def checksum_record(dtype: Any, checksums: dict[int, int], n_frames: int, plane: int | None = None) -> dict[str, Any]:
    """The metadata entry for an output of ``n_frames``: None for a frame the run never wrote (left empty).
    ``plane``: the Z plane a run through a (T, Z, Y, X) image filled, whose frames the checksums are of."""
    record = {"dtype": np.dtype(dtype).str, "crc": [checksums.get(i) for i in range(n_frames)]}
    if plane is not None:
        record["plane"] = int(plane)
    return record


def planes_record(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The metadata entry for one output filled by runs through several Z planes, from each run's
    `checksum_record` (all of one type: they wrote into the same layer)."""
    return {"dtype": records[0]["dtype"], "planes": {str(r["plane"]): list(r["crc"]) for r in records}}


def edited_frames(layer: "Labels", frames: Iterable[int], plane: int | None = None) -> list[int]:
    """Those of ``frames`` that differ from what the run left in ``layer`` (none when the layer
    carries no checksums: not an output, or one opened again from a file). A layer widened to a
    larger integer type since is compared in the type the run wrote. For the output of runs through
    Z planes, the frames of the run's plane (painting on the other planes changes none of the run's):
    ``plane``, where given, must be one the runs went through (else none is said to be edited)."""
    record = layer.metadata.get(CHECKSUMS)
    data = layer.data
    if not isinstance(record, dict):
        return []
    by_plane = record.get("planes")
    if isinstance(by_plane, dict):  # several planes: the one asked for
        if plane is None or str(int(plane)) not in by_plane:
            return []
        record = {"dtype": record["dtype"], "crc": by_plane[str(int(plane))], "plane": int(plane)}
    if len(record.get("crc", ())) != int(data.shape[0]):
        return []
    run_plane = record.get("plane")
    if run_plane is not None:
        if data.ndim != 4 or not 0 <= int(run_plane) < int(data.shape[1]) \
                or (plane is not None and int(plane) != int(run_plane)):
            return []
        data = data[:, int(run_plane)]
    dtype = np.dtype(record["dtype"])
    edited = []
    for i in frames:
        frame = np.asarray(data[i])
        wanted = record["crc"][i]
        if wanted is None:  # never written by the run: anything there was painted since
            changed = bool(frame.any())
        elif frame.dtype != dtype:
            fits = frame.size == 0 or (int(frame.min()) >= 0 and int(frame.max()) <= np.iinfo(dtype).max)
            changed = not fits or frame_checksum(frame.astype(dtype)) != wanted
        else:
            changed = frame_checksum(frame) != wanted
        if changed:
            edited.append(i)
    return edited
