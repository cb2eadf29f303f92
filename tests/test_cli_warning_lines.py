"""The command line's own warnings are one line each (session 43): Python's form, "FILE:LINE: UserWarning:
..." followed by the source line that raised it, buried the message under a path into the package."""
import subprocess
import sys
import warnings

import numpy as np


def _dataset(root, frames: int = 6, predicted: int = 4):
    from PIL import Image

    for t in range(frames):
        mask = np.zeros((32, 48), np.uint8)
        mask[8:20, 8 + t:20 + t] = 1
        (root / "d" / "a" / "masks").mkdir(parents=True, exist_ok=True)
        (root / "d" / "a" / "images").mkdir(parents=True, exist_ok=True)
        (root / "pred" / "a").mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(root / "d" / "a" / "masks" / f"{t:05d}.png")
        Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(root / "d" / "a" / "images" / f"{t:05d}.png")
        if t < predicted:
            Image.fromarray(mask).save(root / "pred" / "a" / f"{t:05d}.png")


def test_a_commands_warning_is_one_line_naming_the_command(tmp_path):
    _dataset(tmp_path)
    done = subprocess.run([sys.executable, "-m", "napari_vos", "score", "--pred", "pred", "--gt", "d"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "napari-vos score: warning: a: 2 of 6 frames have no prediction file" in done.stderr, done.stderr
    assert "UserWarning" not in done.stderr and "warnings.warn" not in done.stderr


def test_warnings_are_recorded_as_before_and_the_format_is_given_back(tmp_path, monkeypatch):
    """Only the printed form changes: a script or test catching the warnings gets them, and Python's
    formatting is back once the command returns."""
    from napari_vos.cli import main

    _dataset(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = warnings.formatwarning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["score", "--pred", "pred", "--gt", "d"]) == 0
    assert any("2 of 6 frames have no prediction file" in str(w.message) for w in caught)
    assert warnings.formatwarning is before


def _screen(written: bytes) -> list[str]:
    """The lines a terminal shows for ``written``: a carriage return goes back to the start of the line,
    and what follows overwrites what was there."""
    lines: list[list[str]] = [[]]
    col = 0
    for ch in written.decode():
        if ch == "\n":
            lines.append([])
            col = 0
        elif ch == "\r":
            col = 0
        else:
            line = lines[-1]
            line[col:col + 1] = [ch]
            col += 1
    return ["".join(line).rstrip() for line in lines]


_WARN_DURING_BARS = """
import sys, warnings
from napari_vos import cli_terminal as cli

cli.is_terminal = lambda stream: stream_is_terminal  # a bar, as on a terminal, or the lines of a log
with cli.warnings_as_lines("propagate"), cli.progress_bar("propagating", 4) as progress:
    progress(1, 4)
    warnings.warn_explicit("frame 2 is dark", UserWarning, cli.__file__, 1)
    warnings.warn_explicit("deprecated thing", UserWarning, "/elsewhere/other.py", 7)
    progress(4, 4)
"""


def _run_with_bars(terminal: bool) -> list[str]:
    done = subprocess.run([sys.executable, "-c", f"stream_is_terminal = {terminal}\n{_WARN_DURING_BARS}"],
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    return _screen(done.stderr)


def test_a_warning_during_a_progress_bar_is_on_a_line_of_its_own():
    """The warning was written on from where the bar's line ended: "propagating: 25%|##  | 1/4 ...napari-vos
    propagate: warning: ..."; napari-vos's own and other packages' warnings alike now start a line."""
    screen = _run_with_bars(terminal=True)
    assert "napari-vos propagate: warning: frame 2 is dark" in screen, screen
    assert "/elsewhere/other.py:7: UserWarning: deprecated thing" in screen, screen


def test_a_warning_between_the_progress_lines_of_a_log_is_a_line_as_they_are():
    """Where stderr is no terminal, progress is lines (cli_terminal.ProgressLines): the warnings come between them."""
    screen = _run_with_bars(terminal=False)
    assert screen[:4] == ["propagating: 1/4 frames (25 %)", "napari-vos propagate: warning: frame 2 is dark",
                          "/elsewhere/other.py:7: UserWarning: deprecated thing",
                          "propagating: 4/4 frames (100 %)"], screen


def test_a_warning_during_a_bar_is_recorded_as_before(capsys):
    """pytest.warns (warnings.catch_warnings(record=True)) around the command still gets the warning, and
    Python's own showwarning is back once the command returns."""
    import pytest
    from tqdm import tqdm

    from napari_vos import cli_terminal as cli

    before = warnings.showwarning
    with pytest.warns(UserWarning, match="frame 2 is dark"):
        with cli.warnings_as_lines("propagate"), tqdm(total=4, file=sys.stderr, leave=False) as bar:
            bar.update(1)
            warnings.warn_explicit("frame 2 is dark", UserWarning, cli.__file__, 1)
    assert warnings.showwarning is before
    assert "frame 2 is dark" not in capsys.readouterr().err
