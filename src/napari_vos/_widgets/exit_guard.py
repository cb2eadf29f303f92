"""Python exiting while a Propagate run still works in its thread (a script that ends, a console
closed): stop the run and wait for its thread before Qt objects are torn down; then close the viewers
the Propagate widgets live in and delete the widgets a script still holds, so that PyQt's own clean-up
at exit has nothing of ours left to delete.

Without this the worker thread, finishing after interpreter shutdown has deleted its Qt signals,
emits into a deleted object and Qt aborts the process (exit code 134). napari waits for its
workers only when its own event loop quits (`napari.run()`), which a script need not call.
"""
from __future__ import annotations

import atexit
import sys
import threading
import weakref
from typing import Any

EXIT_WAIT_MS = 60_000  # a stopped run ends within one frame or one fine-tuning step
_runs: dict[int, Any] = {}  # id(job) -> job, for every run whose engine work has not ended
_widgets: "weakref.WeakSet[Any]" = weakref.WeakSet()  # the Propagate widgets alive, for `_delete_closed_widgets`
_lock = threading.Lock()
_registered = False


def _register() -> None:
    global _registered
    if not _registered:
        # registered after Qt was imported, so it runs before Qt's own clean-up (atexit is LIFO)
        atexit.register(stop_runs_at_exit)
        _registered = True


def track(job: Any) -> None:
    """Remember a run started in a worker thread (``job`` has ``cancel()``)."""
    with _lock:
        _register()
        _runs[id(job)] = job


def track_widget(widget: Any) -> None:
    """Remember a Propagate widget, so that one out of any window at exit is deleted first."""
    with _lock:
        _register()
        _widgets.add(widget)


def _close_viewers() -> None:
    """Close the napari viewers the Propagate widgets live in, while Python is still whole. Left open,
    their windows are deleted inside PyQt's clean-up at exit, which walks its list of wrappers: the
    Python objects that deletion frees broke the walk (a segfault, exit 139, in about 1 run of 17 of a
    script that ends without viewer.close(); 0 of 4 under gdb once the script closed its viewer, 4 of
    4 when it did not)."""
    viewers = {id(v): v for w in list(_widgets) if _alive(w) and (v := getattr(w, "viewer", None)) is not None}
    for viewer in viewers.values():
        try:
            viewer.close()  # a viewer closed already is left as it is (napari's close is idempotent)
        except Exception as exc:  # noqa: BLE001 - at exit one viewer's failure must not stop the rest
            print(f"napari-vos: closing a viewer at exit failed: {type(exc).__name__}: {exc}", file=sys.stderr)


def _delete_closed_widgets() -> None:
    """Delete the Propagate widgets a script still holds after closing their docks: left to PyQt's
    own clean-up at exit they made it touch a freed wrapper (a segfault, exit 139, about half the
    time after another dock had run)."""
    from qtpy.QtCore import QCoreApplication, QEvent

    closed = [w for w in list(_widgets) if _alive(w) and w.parent() is None]
    for widget in closed:
        widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)  # also the windows just closed


def _alive(widget: Any) -> bool:
    try:
        widget.parent()
    except RuntimeError:  # its C++ object is gone already
        return False
    return True


def untrack(job: Any) -> None:
    """The run's engine work ended (called from its worker thread, when the generator ends)."""
    with _lock:
        _runs.pop(id(job), None)


def stop_runs_at_exit(wait_ms: int = EXIT_WAIT_MS) -> bool:
    """Cancel every run still going and wait up to ``wait_ms`` for Qt's thread pool to drain (also
    for a worker that has just finished its work and is still emitting its last signals); True when
    nothing is left running."""
    with _lock:
        jobs = list(_runs.values())
        _runs.clear()
    for job in jobs:
        job.cancel()
    from qtpy.QtCore import QThreadPool

    if jobs:
        print(f"napari-vos: Python is exiting; stopping {len(jobs)} propagation run(s) first", file=sys.stderr)
    # with none of ours running, only the last signals of one that has just ended are waited for
    # (briefly: other plugins' workers in the same pool may run on)
    done = bool(QThreadPool.globalInstance().waitForDone(wait_ms if jobs else min(wait_ms, 2000)))
    if jobs and not done:
        print(f"napari-vos: a run did not stop within {wait_ms / 1000:.0f} s", file=sys.stderr)
    _close_viewers()
    _delete_closed_widgets()
    return done
