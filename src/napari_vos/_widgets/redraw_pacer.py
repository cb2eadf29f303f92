"""When a running job redraws its layers: at every frame in 2D view; spaced out in 3D view.

In 3D, napari re-slices, colour-maps and uploads the whole (T, Y, X) output volume at each redraw,
in the GUI thread: 2 s per frame for 120 x 1024 x 1024 on a CPU renderer, so a redraw per frame
left the viewer frozen. The frames are written into the layers' arrays either way; only the
redraw waits. Qt-free: the widget reports when a redraw has settled (the event loop came back).
"""
from __future__ import annotations

import time
from typing import Callable

__all__ = ["RedrawPacer", "MIN_INTERVAL", "BUSY_SHARE"]

#: in 3D view, at most one redraw per this many seconds
MIN_INTERVAL = 1.0
#: and no more of the time than this spent redrawing (a 2 s redraw waits 10 s for the next)
BUSY_SHARE = 1 / 6


class RedrawPacer:
    """Says whether a finished frame is redrawn now, from the view (2D or 3D) and how long the
    last redraw kept the viewer busy (`started` when it is asked for, `settled` when it is done)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._began: float | None = None  # a redraw asked for and not settled yet
        self._ended: float | None = None  # when the last redraw settled
        self._cost = 0.0  # how long it kept the viewer busy, in seconds

    def due(self, volume: bool) -> bool:
        """Whether to redraw now: always in 2D view (``volume`` False); in 3D once the last redraw
        has settled and the wait it earned (`MIN_INTERVAL`, longer for a slow one) is over."""
        if not volume:
            return True
        if self._began is not None:
            return False
        if self._ended is None:
            return True
        wait = max(MIN_INTERVAL, self._cost * (1 - BUSY_SHARE) / BUSY_SHARE)
        return self._clock() - self._ended >= wait

    def started(self) -> None:
        """A redraw was asked for now."""
        self._began = self._clock()

    def settled(self) -> None:
        """The redraw asked for last is done (the viewer takes events again)."""
        if self._began is None:
            return
        self._ended = self._clock()
        self._cost = self._ended - self._began
        self._began = None
