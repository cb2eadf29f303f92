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

__all__ = ["PartialLabels", "partial_path"]

#: what the partial file's record says about its frames: it is rewritten only when the run ends
UNFINISHED = "unknown: the run writing this file did not finish; frames it had not reached are empty (0)"
#: the parts of a run's record that only its end knows (timings, counts): left out until then
_END_ONLY = ("fps", "seconds", "frames_done", "start_seconds")
#: the record's mark on a file the system would not delete when its run ended (Windows deletes no
#: memory-mapped file): a spare copy of labels the output holds, which the next run removes
SPARE = "spare_copy"


def partial_path(output: str | Path) -> Path:
    """Where the labels wait: ``run.tif`` -> ``run.partial.tif`` beside it; a PNG folder ``results``
    -> ``results/labels.partial.tif`` (the folder the run writes to)."""
    output = Path(output)
    if output.suffix.lower() in (".tif", ".tiff"):
        return output.with_name(output.stem + ".partial.tif")
    return output / "labels.partial.tif"


class PartialLabels:
    """A zeroed (T, Y, X) label stack on disk for a Session's ``out``, ids up to ``max_id``.

    record: the provenance the file carries from the start (``complete: false``); `describe` puts
    the Session's own in once it exists.
    """

    def __init__(self, output: str | Path, shape: tuple[int, int, int], max_id: int,
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
            raise ValueError(f"{self.path} holds the labels of an earlier run that did not write its output (it was "
                             "killed, or writing the output failed; its record says which frames it holds); move "
                             "or delete it, then run again") from None
        try:
            self._lock = lock_handle(claim)  # held while this run lives: a second run writing here is told so
            self.labels: np.ndarray = open_tiff_labels(self.path, shape, label_dtype(max_id), calibration,
                                                       {**record, "complete": False, "frames_segmented": UNFINISHED})
        except BaseException:  # a stub left here would block every later run as "an earlier run's labels"
            self.path.unlink(missing_ok=True)
            claim.close()
            raise

    def describe(self, provenance: dict[str, Any]) -> None:
        """Give the file the run's record (method, checkpoint, options), still marked unfinished."""
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
