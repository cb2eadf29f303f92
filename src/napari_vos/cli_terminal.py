"""What the `napari-vos` commands show on the terminal while they run, and how a signal stops them:
progress bars (or plain lines in a log), lines that cannot end a run, warnings as one line each, and
`kill` or a hang-up taken as Ctrl+C."""
from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["progress_bar", "ProgressLines", "is_terminal", "say", "STOP_SIGNALS", "stops_as_interrupt",
           "warnings_as_lines", "shown_between_bars"]


@contextmanager
def progress_bar(desc: str, total: int) -> Iterator[Callable[[int, int], None]]:
    """A frame progress bar on stderr, yielding the engine's ``progress`` callback; the bar is
    closed on the way out, also on an error, so the error message starts on a clean line. Where
    stderr is no terminal (a log file, a batch job), plain lines instead (`ProgressLines`)."""
    if not is_terminal(sys.stderr):
        yield ProgressLines(desc, total)
        return
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, leave=False)

    def update(done: int, _total: int) -> None:
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        try:
            bar.close()
        except OSError:  # the terminal is gone (a hang-up): the run's stop is what matters, not the bar
            pass


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal (a closed or odd stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class ProgressLines:
    """The progress of a run whose stderr is a file: one line every 5 % of the frames (and at least
    every 10 minutes), as a log keeps them, not a bar's carriage-return updates (one line of
    megabytes over a day-long run)."""

    STEP_PERCENT = 5
    MAX_SILENT_SECONDS = 600.0

    def __init__(self, desc: str, total: int) -> None:
        import time

        self.desc, self.total = desc, max(total, 1)
        self.started = self.said_at = time.monotonic()
        self.said_percent = 0

    def __call__(self, done: int, _total: int) -> None:
        import time

        now = time.monotonic()
        percent = 100 * done // self.total
        if percent < self.said_percent + self.STEP_PERCENT and now - self.said_at < self.MAX_SILENT_SECONDS \
                and done < self.total:
            return
        self.said_percent, self.said_at = percent - percent % self.STEP_PERCENT, now
        say(f"{self.desc}: {done}/{self.total} frames ({percent} %){self._pace(done, now - self.started)}")

    def _pace(self, done: int, seconds: float) -> str:
        """", 12.3 frames/s, about 0:19:05 left" once a frame is done."""
        from tqdm import tqdm

        if done <= 1 or seconds < 1:  # the annotated frame comes at once: no pace to tell from it
            return ""
        rate = done / seconds
        return f", {rate:.2f} frames/s, about {tqdm.format_interval((self.total - done) / rate)} left"


def say(text: str) -> None:
    """A line on stderr that cannot end the run: after a hang-up the terminal is gone and writing
    to it fails (EIO), while the labels are already written."""
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass


#: the signals that end a run as Ctrl+C does: `kill` (a cluster's time limit) and a hang-up (the
#: terminal or ssh connection of the run closes); Windows has no SIGHUP
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextmanager
def stops_as_interrupt() -> Iterator[None]:
    """`kill` (SIGTERM) and a hang-up (SIGHUP) end the block as Ctrl+C does, so what is done can be
    kept; a signal set to be ignored stays ignored (`nohup` ignores SIGHUP so that the run goes
    on). Only the main thread can take signals, so elsewhere this does nothing."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    for number, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(number, _interrupt)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextmanager
def warnings_as_lines(command: str) -> Iterator[None]:
    """napari-vos's own warnings printed as one line each, "napari-vos COMMAND: warning: ...", instead of
    Python's "FILE:LINE: UserWarning: ..." followed by the line of source that raised it (which buried
    the message); other packages' warnings keep Python's form, whose file says where they come from.
    Every warning is written on a line of its own, off a progress bar's (`shown_between_bars`).
    Only the printing changes: a warning recorded (warnings.catch_warnings, pytest.warns) is as before."""
    import warnings

    package = str(Path(__file__).resolve().parent)
    python_form = warnings.formatwarning

    def formatted(message: Any, category: type[Warning], filename: str, lineno: int, line: str | None = None) -> str:
        if not str(Path(filename).resolve()).startswith(package):
            return python_form(message, category, filename, lineno, line)
        return f"napari-vos {command}: warning: {message}\n"

    python_show = warnings.showwarning
    warnings.formatwarning = formatted
    warnings.showwarning = shown_between_bars(python_show)
    try:
        yield
    finally:
        warnings.formatwarning, warnings.showwarning = python_form, python_show


def shown_between_bars(show: Callable[..., None]) -> Callable[..., None]:
    """``show`` (a `warnings.showwarning`) with any tqdm progress bar on its stream lifted off the line
    while it writes and drawn again below: the warning had been glued to the end of the bar's line.
    ``show`` still does the showing, so a warning recorded (warnings.catch_warnings) stays recorded."""

    def shown(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
              line: str | None = None) -> None:
        bars = sys.modules.get("tqdm")  # not imported: no bar can be on screen
        if bars is None:
            show(message, category, filename, lineno, file, line)
            return
        with bars.tqdm.external_write_mode(file=file if file is not None else sys.stderr):
            show(message, category, filename, lineno, file, line)

    return shown
