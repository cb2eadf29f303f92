"""Real-data audit (session 32), rebuilt on synthetic inputs: a one-frame labels layer taken as the
slider's frame is said; score takes a prediction file named after its sequence."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest


def _needs_display():
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen" or (
            sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))):
        pytest.skip("needs a display: run under xvfb-run -a")
    pytest.importorskip("napari")


# --- 1. a (Y, X) mask file opened over a stack is silently attached to napari's mid-stack frame ----------
def test_a_one_frame_labels_layer_is_not_silently_taken_as_the_mid_stack_frame(make_napari_viewer, qtbot):
    """A microscopist opens the time-lapse, then the first frame's masks (a (Y, X) TIFF) and clicks
    Propagate without touching the slider. napari puts the slider in the middle of a new stack
    (frame 4 of 9), the annotated frame follows it, and the frame-0 masks are propagated as frame 4's:
    every frame is wrong (IoU 0.35-0.5 on a sliding square that flow follows at > 0.9), and only
    "propagating with flow from frame 4" hints at it. `napari-vos propagate video.tif mask0.tif`
    takes the same (Y, X) mask as frame 0's (its --frame default).

    Fixed when either the run starts at frame 0 (as the CLI does) or the status line says, before or
    at the start, that the one-frame labels layer is taken as frame 4's, the frame under the slider."""
    _needs_display()
    from _layers import iou, sliding_square
    from _widget_run import click, wait_done

    from napari_vos._widgets.propagate_widget import PropagateWidget

    viewer = make_napari_viewer()
    frames, truth = sliding_square(9, (64, 96))
    viewer.add_image(frames, name="video")
    viewer.add_labels(truth[0], name="mask0")  # frame 0's masks, as opened from a (Y, X) labels file
    widget = PropagateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.select_method("flow")
    widget.device_combo.setCurrentText("cpu")
    before = widget.status.text()
    click(qtbot, widget.propagate_button)
    started = widget.status.text()
    wait_done(qtbot, widget)
    out = viewer.layers["mask0 propagated (flow)"].data
    mean_iou = float(np.mean([iou(out[t] == 1, truth[t] == 1) for t in range(1, 9)]))
    told = any("slider" in s and "mask0" in s for s in (before, started))
    assert mean_iou > 0.8 or told, (mean_iou, before, started)


# --- 2. score: a prediction file named after the sequence is refused, the same file in a folder is not ---
def test_score_takes_a_prediction_file_named_after_the_sequence(tmp_path):
    """`napari-vos score --pred RUN/usiigaci-t98g.tif --gt usiigaci-t98g/` was refused ("holds the labels
    of .../cells_full.tif, not of sequence 'usiigaci-t98g'; give ... usiigaci-t98g.tif") because the
    record names the stack the user assembled from that sequence's frames; `--pred RUN/` (the folder
    holding the very same file) scored it. The file's own name is the user's statement of which
    sequence it is, as it is for a file found in a folder."""
    import imageio.v3 as iio

    from napari_vos.data.writers import write_tiff_labels
    from napari_vos.evaluation.scoring import score_dataset

    seq = tmp_path / "myseq"
    (seq / "images").mkdir(parents=True)
    (seq / "masks").mkdir()
    truth = np.zeros((4, 32, 32), np.uint8)
    for t in range(4):
        truth[t, 8:20, 4 + 2 * t:16 + 2 * t] = 1
        iio.imwrite(seq / "images" / f"{t:05d}.png", (truth[t] * 200 + 20).astype(np.uint8))
        iio.imwrite(seq / "masks" / f"{t:05d}.png", truth[t])
    run = tmp_path / "run"
    run.mkdir()
    pred = run / "myseq.tif"
    write_tiff_labels(pred, truth, provenance={"method": "flow", "inputs": {"video": str(tmp_path / "stack.tif")}})
    by_folder = score_dataset(run, seq, progress=False)  # accepted
    by_file = score_dataset(pred, seq, progress=False)  # refused today
    assert by_file["JF_mean"] == pytest.approx(by_folder["JF_mean"])
