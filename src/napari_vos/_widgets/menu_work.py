"""A Layers-menu command's work off napari's GUI thread, with a progress bar the user can cancel.

Splitting the divided cells of 200 frames of 512x512 takes about 9 s, and a longer stack longer:
on the GUI thread the viewer froze for all of it. `start_layer_work` runs the work in a napari
worker thread and shows a `cancelable_progress` bar in napari's activity dock (its Cancel button,
or removing the source layer, stops the work at the next frame); the result is added on the GUI
thread when the work ends, unless it was stopped. Labels painted during the run are said to have
been read as they were, so a stale result is never taken for a fresh one.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from napari.qt.threading import create_worker
from napari.utils import cancelable_progress
from napari.utils.notifications import notification_manager, show_error, show_info, show_warning
from superqt.utils import ensure_main_thread

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Layer
    from superqt.utils import FunctionWorker

__all__ = ["start_layer_work", "running_work"]

#: the works in flight, kept from garbage collection until they end (and counted by the tests)
_RUNNING: set[Any] = set()


class _Stopped(Exception):
    """The work was cancelled, or its source layer left the viewer."""


@dataclass(frozen=True)
class _Refused:
    """The work's ValueError: what it was given cannot be done (said, not raised again)."""

    message: str


def running_work() -> int:
    """How many Layers-menu works are in flight (the tests wait for 0)."""
    return len(_RUNNING)


def start_layer_work(viewer: "napari.Viewer", source: "Layer", description: str, total: int,
                     work: Callable[[Callable[[int, int], None]], Any],
                     deliver: Callable[[Any], None], nothing: str = "nothing added",
                     writes: bool = False) -> "FunctionWorker":
    """Run ``work(progress)`` in a worker thread, ``progress(done, total)`` moving a cancelable bar named
    ``description`` in the activity dock, then ``deliver(result)`` on the GUI thread. A cancel, or
    ``source`` removed from the viewer, stops the work at its next ``progress`` call and delivers nothing
    (said with ``nothing``). One that comes after the work's last ``progress`` call is too late to stop it:
    a work that ``writes`` files has written them by then, so its result is delivered and that said; any
    other (a layer to add) delivers nothing, as the user asked. A ValueError is shown as an
    error notification, any other error (in ``deliver`` too, a SystemExit as well) with its traceback, a
    warning as napari shows one; an edit of ``source`` during the run is said."""
    bar = cancelable_progress(total=max(int(total), 1), desc=description)
    state = {"edited": False, "removed": False}

    def edited(event: Any = None) -> None:
        state["edited"] = True

    def removed(event: Any) -> None:
        if event.value == source:  # napari injects a proxy of the layer: equal to it, not the same object
            state["removed"] = True
            bar.cancel()

    @ensure_main_thread
    def show_progress(done: int) -> None:
        if not bar.is_canceled and done > bar.n:
            bar.update(done - bar.n)

    shown = [0.0]  # when the bar was last moved: at most ten redraws a second, the GUI thread's time

    def progress(done: int, of: int) -> None:  # worker thread: never touches Qt itself
        if bar.is_canceled:
            raise _Stopped
        now = time.monotonic()
        if now - shown[0] >= 0.1 or done >= of:
            shown[0] = now
            show_progress(int(done))

    def run() -> Any:
        try:
            return work(progress)
        except _Stopped:
            return _Stopped
        except ValueError as error:  # what the work refuses (no object to track): said as a command's error
            return _Refused(str(error))
        except BaseException as error:
            if isinstance(error, Exception):
                raise  # shown by `errored`
            # SystemExit, KeyboardInterrupt: superqt's worker catches Exception only, so the work never
            # finished (counted as running for ever, its bar left open); napari's error hook would quit the
            # viewer on a KeyboardInterrupt, hence an error that names it
            raise RuntimeError(f"{description} stopped on {type(error).__name__}: {error}") from error

    def returned(result: Any) -> None:
        if isinstance(result, _Refused):
            show_error(f"{description}: {result.message}")
            return
        what = "its labels layer was removed" if state["removed"] else "cancelled"
        if result is _Stopped or (bar.is_canceled and not writes):
            show_info(f"{description}: {what}; {nothing}")
            return
        # the work ran to its end: a cancel after its last step came too late to stop it, and what it wrote
        # is written (a CTC folder being checked, a movie being closed), so it is said, never "nothing written"
        try:
            deliver(result)
        except Exception as error:  # napari refusing the layer: shown as the work's errors are
            errored(error)
            return
        if bar.is_canceled:
            show_info(f"{description}: {what} after the work had ended, too late to stop it")
        if state["edited"]:
            show_warning(f"{description}: {source.name!r} was edited during the run, so some frames were read "
                         "before the edit: run it again for the edited labels")

    def errored(error: BaseException) -> None:  # any other error: shown with its traceback, as napari shows one
        notification_manager.receive_error(type(error), error, error.__traceback__)

    def warned(args: tuple) -> None:  # a warning of the work (a stopped run's output measured): shown
        notification_manager.receive_warning(*args)

    def finished() -> None:
        for event, callback in connections:
            event.disconnect(callback)
        bar.close()
        _RUNNING.discard(worker)

    connections = [(viewer.layers.events.removed, removed)]
    for name in ("paint", "labels_update", "data"):  # a stroke or fill; an undo (redrawn part); data replaced
        event = getattr(source.events, name, None)
        if event is not None:
            connections.append((event, edited))
    for event, callback in connections:
        event.connect(callback)
    # napari 0.9.2's worker showed no error or warning itself (its notifying mixin is never initialised)
    worker = create_worker(run, _start_thread=False, _ignore_errors=True,
                           _connect={"returned": returned, "errored": errored, "warned": warned,
                                     "finished": finished})
    _RUNNING.add(worker)
    worker.start()
    return worker

