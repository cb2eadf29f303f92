"""Review of session 32's own fixes: the exit guard lets go of runs whose viewer closed, the binary
prediction rule holds for per-frame files, device_train.sh continues a run given more steps, a
zero-shot prediction of another length is refused with the length message."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from _widget_run import SCRIPT_STARTING_A_RUN  # noqa: E402


# -- finding 1: exit_guard keeps every run whose viewer was closed mid-run -------------------------
LEAK_SCRIPT = SCRIPT_STARTING_A_RUN + r"""
import gc, weakref
from qtpy.QtCore import QThreadPool
from napari_vos._widgets import exit_guard
job = weakref.ref(widget.job)
viewer.close()            # the user closes the viewer while the run goes on
del viewer, widget, dock
QThreadPool.globalInstance().waitForDone(60000)
for _ in range(50):
    QApplication.processEvents()
    time.sleep(0.02)
gc.collect()
print("TRACKED", len(exit_guard._runs), "ALIVE", job() is not None, flush=True)
exit_guard._runs.clear()  # keep this script's own exit quiet
"""


NO_DISPLAY = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@pytest.mark.skipif(NO_DISPLAY, reason="napari in a subprocess needs a display: run under `xvfb-run -a`")
def test_1_a_run_whose_viewer_was_closed_is_not_kept_forever_by_the_exit_guard(tmp_path):
    """exit_guard.untrack runs only in PropagateWidget._on_finished, a slot of the widget: when the
    viewer (and so the widget) is closed mid-run, Qt never delivers ``finished`` to it, so the job
    stays in exit_guard._runs for the life of the process, holding the viewer's layers, the Session,
    the video and the output."""
    script = tmp_path / "leak.py"
    script.write_text(LEAK_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("TRACKED")), None)
    assert line is not None, done.stderr[-2000:]
    assert line == "TRACKED 0 ALIVE False", line


# -- finding 2: the binary-prediction rule is applied to TIFF stacks only -------------------------
def _square(t: int) -> np.ndarray:
    m = np.zeros((48, 64), np.uint8)
    m[10:20, 2 + 4 * t:12 + 4 * t] = 1
    return m


def _gt_sequence(root: Path, masks: list[np.ndarray]) -> Path:
    from PIL import Image

    seq = root / "cells"
    (seq / "images").mkdir(parents=True)
    (seq / "masks").mkdir()
    for t, m in enumerate(masks):
        Image.fromarray(np.full((48, 64), 100, np.uint8)).save(seq / "images" / f"{t:05d}.png")
        Image.fromarray(m).save(seq / "masks" / f"{t:05d}.png")
    return seq


@pytest.mark.parametrize("kind,truth_id", [("tif", 1), ("png", 2), ("tif", 2)])
def test_2_a_binary_per_frame_prediction_is_the_one_object_as_a_stack_is(tmp_path, kind, truth_id):
    """docs/measurement.md: "Against a sequence of one object, a binary 8-bit prediction (0 and 255,
    ImageJ's mask convention, or 0 and 1) is that object whatever the truth's id". The same 0/255
    frames score J = 1 as a TIFF stack but J = 0 as per-frame TIFFs (or as PNGs against id 2):
    PredictionFolder._binary_as_the_object checks ``raw.dtype`` and read_mask hands it int32."""
    import tifffile
    from PIL import Image

    from napari_vos.evaluation.scoring import score_dataset

    masks = [_square(t) for t in range(5)]
    seq = _gt_sequence(tmp_path / "gt", [m * truth_id for m in masks])
    pred = tmp_path / "pred" / "cells"
    pred.mkdir(parents=True)
    for t, m in enumerate(masks):
        if kind == "tif":
            tifffile.imwrite(pred / f"{t:05d}.tif", m * 255)
        else:
            Image.fromarray(m * 255).save(pred / f"{t:05d}.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = score_dataset(tmp_path / "pred", seq, progress=False)
    assert summary["J_mean"] == pytest.approx(1.0)


# -- finding 5: score_foreground of a longer prediction is an IndexError --------------------------
def test_5_a_longer_zero_shot_prediction_is_refused_with_the_length_message():
    """evaluate_sequence now refuses a prediction of another length, but evaluate_foreground indexes
    gt[t] for every predicted frame first: one frame too many is an IndexError, not the message."""
    from napari_vos.evaluation.unsupervised import score_foreground

    gt = np.zeros((10, 40, 40), np.int32)
    for t in range(10):
        gt[t, 5 + t:15 + t, 5:15] = 1
    with pytest.raises(ValueError, match="12 predicted frames for 10 ground-truth frames"):
        score_foreground(np.concatenate([gt, gt[:2]]), gt)

