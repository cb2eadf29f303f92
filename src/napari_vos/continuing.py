"""How a stopped `napari-vos propagate` run goes on from the frames it finished.

A stopped run's labels TIFF, given back as the labels of a one-way run from its last finished
frame with ``--keep-other-frames``, gives what the uninterrupted run would have given: the frames
before that one are kept, the others propagated. A ``both`` run stopped in its forward pass takes
two such runs (forward from where it stopped, then backward from its start frame). These helpers
find that frame and write the commands the stop message and the killed-run refusal show.
"""
from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["continue_steps", "continue_commands", "last_labelled", "frames_with_labels", "last_reached"]


def last_labelled(labels: Any, frames_in_run_order: Sequence[int]) -> int | None:
    """The last of a run's finished frames that holds labels (an object lost or gone out of the
    field leaves empty frames, and an empty frame is no annotation to continue from); None if none does."""
    for t in reversed(frames_in_run_order):
        if np.asarray(labels[t]).any():
            return int(t)
    return None


def frames_with_labels(labels: Any) -> list[int]:
    """The frames of a (T, Y, X) stack that hold labels, read one frame at a time (a memory-mapped
    file's frames are never loaded together)."""
    return [t for t in range(len(labels)) if np.asarray(labels[t]).any()]


def last_reached(direction: str, start: int, labelled: Sequence[int]) -> int:
    """Where a run that was killed got to, from the frames that hold labels: the furthest from
    ``start`` in its direction (for ``both``, in its backward pass once any frame before ``start``
    holds labels)."""
    before = [t for t in labelled if t < start]
    if direction == "backward" or (direction == "both" and before):
        return min(before or [start])
    return max([t for t in labelled if t >= start] or [start])


def continue_steps(direction: str, start: int, last: int, n_frames: int) -> list[tuple[int, str]]:
    """The (frame, direction) of each ``--keep-other-frames`` run that continues a run in
    ``direction`` from ``start`` whose last finished frame is ``last``; none when nothing is left."""
    if direction == "forward" or (direction == "both" and last >= start):  # a both run's forward pass
        steps = [(last, "forward")] if last < n_frames - 1 else []
        if direction == "both" and start > 0:  # then its backward pass, from the start frame
            steps.append((start, "backward"))
        return steps
    return [(last, "backward")] if last > 0 else []


def continue_commands(video: str | Path, stopped: str | Path, steps: Sequence[tuple[int, str]],
                      output: str | Path, options: Sequence[str] = ()) -> list[str]:
    """The `napari-vos propagate` command lines that carry out ``steps`` on the ``stopped`` labels
    TIFF, the last one writing ``output`` (an earlier one, ``<output>.<direction>.tif`` beside it);
    ``options``: the stopped run's own (method, checkpoint, sizes), repeated in each."""
    output = Path(output)
    commands, labels = [], Path(stopped)
    for n, (frame, direction) in enumerate(steps, start=1):
        written = output if n == len(steps) else output.with_name(f"{output.stem}.{direction}.tif")
        words = ["napari-vos", "propagate", str(video), str(labels), "-o", str(written), *options, "--frame",
                 str(frame), "--direction", direction, "--keep-other-frames"]
        commands.append(" ".join(shlex.quote(w) for w in words))
        labels = written
    return commands
