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
