"""The widget under a user's hands while a run goes on: a deleted output stops fine-tuning at once,
a second dock never starts from an output still being filled, a refusal keeps the note saying why."""
from __future__ import annotations

import os
import sys
import time

import pytest
from _widget_run import click as _click
from _widget_run import setup_widget as _setup
from _widget_run import SCRIPT_STARTING_A_RUN
from _widget_run import wait_done as _wait_done

if os.environ.get("QT_QPA_PLATFORM") == "offscreen" or (
        sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))):
    pytest.skip("the napari widget tests need a display: run them under `xvfb-run -a`", allow_module_level=True)
pytest.importorskip("napari")

pytestmark = pytest.mark.gui


def test_deleting_the_output_during_finetuning_stops_the_finetuning(make_napari_viewer, qtbot, tmp_path):
    """Deleting the output layer stops the work (user guide §4), also while the method fine-tunes."""
    from test_widget import FINETUNE_OPTIONS, _random_checkpoint

    viewer, widget, _ = _setup(make_napari_viewer)
    widget.select_method("rgmp")
    widget.checkpoint_edit.setText(_random_checkpoint("rgmp", tmp_path))
    widget.options_edit.setText(FINETUNE_OPTIONS["rgmp"])  # 5000 steps: minutes on a CPU
    _click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: widget.status.text().startswith("fine-tuning"), timeout=60_000)
    job = widget.job
    viewer.layers.remove(job.output)
    _wait_done(qtbot, widget, timeout=20_000)  # today: the fine-tuning runs on to step 5000 first
    assert job.cancelled and job.finetune[0] < 5000
    assert widget.status.text().startswith("stopped: the output layer was removed")
    assert [lyr.name for lyr in viewer.layers] == ["video", "painted"]


def test_a_second_widget_never_picks_an_output_still_being_filled_as_its_labels(make_napari_viewer, qtbot, monkeypatch):
    """Two docks on one image: the first's output, still being written, is no annotation for the second."""
    from napari_vos._widgets.propagate_widget import PropagateWidget
    from napari_vos.methods.flow import FlowMethod

    viewer, first, _ = _setup(make_napari_viewer, n_frames=30)
    second = PropagateWidget(viewer)
    viewer.window.add_dock_widget(second, name="second")
    second.select_method("flow")
    step = FlowMethod.step

    def slow(self, image):
        time.sleep(0.3)
        return step(self, image)

    monkeypatch.setattr(FlowMethod, "step", slow)
    _click(qtbot, first.propagate_button)
    qtbot.waitUntil(lambda: first.progress.value() >= 1, timeout=30_000)
    running = first.job.output
    viewer.layers.remove("painted")  # the second dock's labels pick goes
    assert second.labels_combo.currentText() != running.name  # today: the half-built output is picked
    _click(qtbot, second.propagate_button)
    qtbot.waitUntil(lambda: second.worker is None, timeout=30_000)
    assert not any(lyr.metadata.get("napari_vos", {}).get("labels_layer") == running.name for lyr in viewer.layers)
    first.cancel()
    _wait_done(qtbot, first)


def test_a_refused_short_run_says_the_asked_for_frame_was_not_painted(make_napari_viewer, qtbot):
    """T=2, painted on frame 0, frame 1 asked for, backward: the refusal speaks of frame 0, so it
    must say why (the start moved to the painted frame)."""
    viewer, widget, _ = _setup(make_napari_viewer, n_frames=2)
    widget.direction_combo.setCurrentText("backward")
    widget.frame_spin.setValue(1)
    _click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: widget.status.text().startswith("error"), timeout=10_000)
    text = widget.status.text()
    assert "frame 1 is not painted; starting from painted frame 0" in text and "nothing to propagate" in text


EXIT_MID_RUN = SCRIPT_STARTING_A_RUN + """
if WAIT_FOR_THE_END:
    end = time.time() + 120
    while widget.worker is not None and time.time() < end:
        QApplication.processEvents()
        time.sleep(0.02)
viewer.window.remove_dock_widget(dock)
print("script ends", flush=True)
"""


@pytest.mark.parametrize("finished", [False, True])
def test_a_script_ending_mid_run_exits_cleanly(tmp_path, finished):
    """A script that starts a run and ends (the dock closed, the viewer left open) exits 0: the run is
    stopped and its thread waited for before Qt is torn down (it aborted, exit 134, its worker emitting
    into deleted Qt signals). A run that had ended is not announced as stopped."""
    import subprocess

    script = tmp_path / "ends_mid_run.py"
    script.write_text(f"WAIT_FOR_THE_END = {finished}\n" + EXIT_MID_RUN)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert "script ends" in done.stdout, done.stderr[-2000:]
    assert done.returncode == 0, done.stderr[-2000:]
    assert "has been deleted" not in done.stderr
    assert ("stopping 1 propagation run(s) first" in done.stderr) != finished
