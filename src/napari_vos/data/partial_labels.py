"""The CLI's labels kept in a memory-mapped TIFF beside the output while a run goes on.

`napari-vos propagate` writes its compressed TIFF or its PNGs when the run ends or is stopped
(Ctrl+C, SIGTERM, an error). A run killed outright (SIGKILL, the out-of-memory killer, a
cluster's hard time limit) never gets there; with its labels in ``<output>.partial.tif``, frame by
frame as they finish, such a run still leaves every finished frame on disk, and a long stack's
labels need not fit in memory. The partial file is removed once the output is written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_vos.data.calibration import Calibration
from napari_vos.data.file_locks import lock_handle, locked
from napari_vos.data.writers import label_dtype, open_tiff_labels, read_tiff_provenance, rewrite_tiff_provenance

__all__ = ["PartialLabels", "partial_path", "how_to_use"]

#: what the partial file's record says about its frames: it is rewritten only when the run ends
UNFINISHED = "unknown: the run writing this file did not finish; frames it had not reached are empty (0)"
#: the parts of a run's record that only its end knows (timings, counts): left out until then
_END_ONLY = ("fps", "seconds", "frames_done", "start_seconds")
#: the record's mark on a file the system would not delete when its run ended (Windows deletes no
#: memory-mapped file): a spare copy of labels the output holds, which the next run removes
SPARE = "spare_copy"


def how_to_use(output: str | Path) -> str:
    """What to do with a partial file to use it as ``output``: rename it, for a labels TIFF; for a
    PNG folder (the file lies in it) move it out as a labels TIFF of the folder's name."""
    output = Path(output)
    if output.suffix.lower() in (".tif", ".tiff"):
        return f"rename it to {output.name}"
    return f"move it out of {output.name} as {output.name}.tif (a labels TIFF, not PNGs)"


def partial_path(output: str | Path) -> Path:
    """Where the labels wait: ``run.tif`` -> ``run.partial.tif`` beside it; a PNG folder ``results``
    -> ``results/labels.partial.tif`` (the folder the run writes to)."""
    output = Path(output)
    if output.suffix.lower() in (".tif", ".tiff"):
        return output.with_name(output.stem + ".partial.tif")
    return output / "labels.partial.tif"


class PartialLabels:
    """A zeroed (T, Y, X) label stack on disk for a Session's ``out``, ids up to ``max_id`` ((T, Z, Y, X) for
    runs through several Z planes, each plane a Session's ``out``).

    record: the provenance the file carries from the start (``complete: false``); `describe` puts
    the Session's own in once it exists.
    """

    def __init__(self, output: str | Path, shape: tuple[int, ...], max_id: int,
                 calibration: Calibration, record: dict[str, Any]) -> None:
        self.path = partial_path(output)
        if self.path.exists() and not locked(self.path) and _is_spare(self.path):
            self.path.unlink(missing_ok=True)  # its run ended and wrote its output: nothing in it is lost
        try:  # made and locked by one run only: two runs started together both saw no file before
            claim = open(self.path, "xb")
        except FileExistsError:  # another run's frames: one writing now, or one killed; not ours to drop
            if locked(self.path) or self.path.stat().st_size == 0:  # in use, or being made this moment
                raise ValueError(f"another napari-vos run is writing {output} now ({self.path} is in use); wait for "
                                 "it to finish or give another output name") from None
            raise ValueError(_earlier_run_message(self.path, Path(output))) from None
        try:
            # held while this run lives: a second run writing here is told so; the wait outlasts that run's
            # `locked` probe, which holds the lock for a moment (the file is ours: we made it)
            self._lock = lock_handle(claim, wait=2.0)
            self.labels: np.ndarray = open_tiff_labels(self.path, shape, label_dtype(max_id), calibration,
                                                       {**record, "complete": False, "frames_segmented": UNFINISHED})
        except BaseException:  # a stub left here would block every later run as "an earlier run's labels"
            self.path.unlink(missing_ok=True)
            claim.close()
            raise

    def describe(self, provenance: dict[str, Any]) -> None:
        """Give the file the run's record (method, checkpoint, options; the CLI adds its inputs,
        direction and start frame, which a killed run's next run reads), still marked unfinished."""
        self.labels.flush()
        record = {k: v for k, v in provenance.items() if k not in _END_ONLY}
        rewrite_tiff_provenance(self.path, {**record, "complete": False, "frames_segmented": UNFINISHED})

    def close(self, provenance: dict[str, Any]) -> None:
        """Give the file the run's final record (which frames it holds), as the output gets it: if
        writing the output fails, this file is a complete answer in its place."""
        self.labels.flush()
        if self.path.exists():  # deleted by hand mid-run: the labels are still in the memory map
            rewrite_tiff_provenance(self.path, provenance)

    def remove(self) -> bool:
        """Delete the file: the output now holds the labels (or the run segmented nothing).

        False where the system refuses (Windows deletes no file that is still memory-mapped, and
        the run's result may still map it): the caller says so; the file is a spare copy by then.
        """
        if self.labels is not None:
            self.labels.flush()
        try:
            self.path.unlink(missing_ok=True)
            removed = True
        except PermissionError:
            removed = False
            try:  # marked, so that the next run to this output removes it rather than refusing to start
                rewrite_tiff_provenance(self.path, {**(read_tiff_provenance(self.path) or {}), SPARE: True})
            except (OSError, ValueError):
                pass
        self.release()
        return removed

    def release(self) -> None:
        """Let go of the file's lock, leaving the file where it is (the labels' copy the user keeps
        when the output could not be written)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _is_spare(path: Path) -> bool:
    """Whether ``path`` is marked as a spare copy of labels its run's output holds (`PartialLabels.remove`)."""
    try:
        return bool((read_tiff_provenance(path) or {}).get(SPARE))
    except Exception:  # noqa: BLE001 - unreadable: not known to be spare, so kept
        return False


def _earlier_run_message(path: Path, output: Path) -> str:
    """Why a run to ``output`` does not start over ``path``, an earlier run's partial labels, and
    what to do: a killed run's frames are found (its record cannot say) and the commands that go on
    from them given; a run whose output failed to write is a finished answer to rename."""
    try:
        record = read_tiff_provenance(path) or {}
    except (OSError, ValueError):
        record = {}
    said = f"{path} holds the labels of an earlier run to {output} that did not write its output"
    if record.get("frames_segmented") not in (None, UNFINISHED):  # its run ended; writing the output failed
        what = "all its frames" if record.get("complete", True) else f"frames {record['frames_segmented']}"
        return (f"{said} (writing it failed), {what}: {how_to_use(output)} to use it, or delete it to run "
                "again")
    # beside the output: a PNG folder's partial file lies in the folder, which the last command writes
    # to and which must then hold no other file
    moved = output.with_name(f"{output.stem if output.suffix.lower() in ('.tif', '.tiff') else output.name}.killed.tif")
    killed = f"{said} (it was killed: SIGKILL, out of memory, a hard time limit)"
    return killed + _how_to_go_on(path, record, moved, output)


def _planes_held(path: Path, record: dict[str, Any], moved: Path) -> str:
    """The part of `_earlier_run_message` on a killed run through several Z planes: the planes its record
    says finished (it names each as it ends) and how to go on from them (the command given again, with
    --resume: one with other settings is refused); for a record naming none (killed in its first plane),
    which planes hold labels."""
    import tifffile

    from napari_vos.checks import frame_ranges
    from napari_vos.plane_resume import finished_planes

    planes = [int(z) for z in record["z_planes_asked"]]
    finished = finished_planes(record)
    if finished:
        return (f"; of the Z planes it was to run through ({frame_ranges(planes)}), {frame_ranges(finished)} "
                f"finished: move it to {moved.name} and go on from them by giving this command again with "
                f"--resume {moved}, or delete it to run again")
    stack = tifffile.memmap(path, mode="r")
    held = [z for z in planes if 0 <= z < stack.shape[1] and np.asarray(stack[:, z]).any()]
    del stack
    left = [z for z in planes if z not in held[:-1]]  # the last plane holding labels may be half-done
    return (f"; of the Z planes it was to run through ({frame_ranges(planes)}), {frame_ranges(held)} hold its labels (the "
            f"last may be half-done): move it to {moved.name} to keep them (a (T, Z, Y, X) labels TIFF) and run "
            f"the planes left with --z {','.join(map(str, left))} into another file, or delete it to run again")


def _how_to_go_on(path: Path, record: dict[str, Any], moved: Path, output: Path) -> str:
    """The part of `_earlier_run_message` on a killed run's frames: which hold labels, and the
    command(s) that continue from the one before the last (the last may be half-written)."""
    import tifffile

    from napari_vos.checks import frame_ranges
    from napari_vos.continuing import continue_commands, continue_steps, frames_with_labels, last_reached

    try:
        labelled = frames_with_labels(tifffile.memmap(path, mode="r"))
    except (OSError, ValueError):
        return "; move or delete it, then run again"
    if not labelled:
        return " before any of its frames held labels: delete it, then run again"
    if record.get("z_planes_asked"):  # runs through several Z planes (propagate --z painted)
        return _planes_held(path, record, moved)
    held = f"; frames {frame_ranges(labelled)} hold its labels"
    inputs = record.get("inputs") or {}
    if record.get("labels_stack_copied") or (record.get("inputs") and not inputs.get("labels")):
        # begun as a copy of its labels stack, or a zero-shot run: where it got to is not known
        return f"{held}: move it to keep them, or delete it to run again"
    direction = record.get("direction") or "forward"
    start = record.get("start_frame")
    start = int(start) if start is not None else (max(labelled) if direction == "backward" else min(labelled))
    # the Session writes every painted frame into the file at the start: a later one (a correction
    # ahead of the run) holds labels without having been reached
    painted = {int(t) for t in record.get("annotated_frames") or []} - {start}
    reached = [t for t in labelled if t not in painted] or [start]
    last = last_reached(direction, start, reached)
    if last != start:  # the frame being written when the run was killed may be half-written: the one before
        last += -1 if last > start else 1
    with tifffile.TiffFile(path) as tif:
        n_frames = len(tif.series[0])
    # a both run whose backward pass had begun: its forward pass is done, even where the frame
    # before the last reached is the start frame itself
    backward = direction == "both" and any(t < start for t in reached)
    steps = continue_steps("backward" if backward else direction, start, last, n_frames)
    if not steps:
        return f"{held}: move it to keep them, or delete it to run again"
    method = [w for key in ("method", "checkpoint") if record.get(key) for w in (f"--{key}", str(record[key]))]
    commands = continue_commands(inputs.get("video") or "VIDEO", moved, steps, output, method)
    return (f"{held} (the last may be half-written). To go on from frame {last}, move it to "
            f"{moved.name if moved.parent == path.parent else moved} and run: "
            + " and then ".join(commands) + " (with the killed run's other options"
            + ("" if record.get("direction") else "; --direction backward if it went backward") + ")"
            + "; or delete it to run again")
