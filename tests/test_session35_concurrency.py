"""Session 35, several things at once: two runs to one output started together, two runs sharing a
--maps folder, two training runs or two evaluations into one folder, and a Session propagated again
while its cancelled run is still fine-tuning."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import napari_vos

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SRC = Path(napari_vos.__file__).resolve().parents[1]  # the napari_vos under test, for the subprocess


# -- 1. two `propagate` runs to the same -o starting together ------------------------------------------

def test_two_runs_to_one_output_starting_together_one_is_told_and_the_other_keeps_its_partial_file(
        tmp_path, monkeypatch):
    """Both runs pass the 'is a partial file there?' check before either has made and locked it
    (two jobs of an array, started by the same scheduler tick). The loser must get the one-line
    'another napari-vos run is writing' ValueError, and the winner's partial file must stay.
    Now: the loser gets BlockingIOError ([Errno 11]) and its clean-up unlinks the winner's file
    (with real processes the winner then dies on the missing file too: both runs fail)."""
    import napari_vos.data.partial_labels as pl
    from napari_vos.data.calibration import Calibration

    real = pl.open_tiff_labels
    started = threading.Barrier(2, timeout=20)

    def slow(*args, **kwargs):  # a disk reserving the file's space: the other run arrives meanwhile
        time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(pl, "open_tiff_labels", slow)
    out = tmp_path / "out.tif"
    got: dict[str, object] = {}

    def run(name: str) -> None:
        started.wait()  # both start together, as two jobs of an array do
        try:
            got[name] = pl.PartialLabels(out, (4, 16, 16), 3, Calibration(), {"method": "flow"})
        except BaseException as err:  # noqa: BLE001 - what each run gets is the point
            got[name] = err

    threads = [threading.Thread(target=run, args=(n,)) for n in "AB"]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    winners = [v for v in got.values() if isinstance(v, pl.PartialLabels)]
    losers = [v for v in got.values() if isinstance(v, BaseException)]
    assert len(winners) == 1 and len(losers) == 1, got
    assert isinstance(losers[0], ValueError) and "another napari-vos run is writing" in str(losers[0]), \
        f"the second run got {type(losers[0]).__name__}: {losers[0]}"
    assert pl.partial_path(out).exists(), "the losing run deleted the winning run's partial file"
    winners[0].remove()


# -- 2. two runs sharing one --maps folder ------------------------------------------------------------

def test_a_second_run_making_the_same_map_file_does_not_crash_the_first(tmp_path):
    """Run A writes DIR/target_scores.tif through a memory map; run B (another -o, a shorter video,
    the same --maps DIR) makes DIR/target_scores.tif again. tifffile truncates the file A has mapped,
    and A's next frame is a SIGBUS: the CLI run dies with exit 135, no message, no output written,
    its out.partial.tif left to block the next run. Either B is refused or A's file is left alone."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(SRC)!r})
        from pathlib import Path
        from napari_vos.data.writers import open_tiff_map
        p = Path({str(tmp_path)!r}) / "target_scores.tif"
        a = open_tiff_map(p, (50, 64, 64))       # run A's map file
        a[0] = 1.0
        try:
            open_tiff_map(p, (10, 64, 64))       # run B: same folder, shorter video
        except ValueError as err:
            print("B refused:", err)
        a[49] = 2.0                               # run A's next frame
        a.flush()
        print("A went on", float(a[0].max()))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"run A died (returncode {done.returncode}: -7 is SIGBUS) {done.stderr[-500:]}"
    assert "A went on 1.0" in done.stdout


# -- 3. two `train` runs into one --out ---------------------------------------------------------------

class _BlockingRecipe:
    """A two-weight model; with ``hold`` set, its first batch waits until ``release`` is set."""

    name = "tiny"

    def __init__(self, hold: threading.Event | None = None, release: threading.Event | None = None, hold_at: int = 1):
        self.hold, self.release, self.calls, self.hold_at = hold, release, 0, hold_at

    def build(self, device):
        torch.manual_seed(0)
        return torch.nn.Linear(2, 1).to(device)

    def batch(self, rng):
        self.calls += 1
        if self.hold is not None and self.calls == self.hold_at:
            self.hold.set()
            assert self.release.wait(30)
        return torch.tensor(rng.normal(size=(4, 2)), dtype=torch.float32)

    def loss(self, model, batch, device):
        return (model(batch) - 1.0).pow(2).mean(), {}

    def export_tensors(self, model):
        return {k: v.detach().half() for k, v in model.state_dict().items()}, {"method": "tiny"}


@pytest.mark.parametrize("second_resumes", [False, True])
def test_a_second_training_run_into_a_folder_a_run_is_training_into_is_refused(tmp_path, second_resumes):
    """A run training into OUT (last.pt saved once, or not yet: the new-run case) and a second
    `napari-vos train ... --out OUT` (a re-submitted job; `--resume` from a requeue) must be refused,
    not train beside it: now both train, overwrite each other's last.pt (the one left is whichever
    saved last), share last.pt.tmp (both died on it when their saves met, exit 2 'No such file'),
    and the second moves the first's live log.jsonl aside as 'of an earlier run'."""
    from napari_vos.training.loop import TrainSettings, train

    out = tmp_path / "run"
    hold, release = threading.Event(), threading.Event()
    first_error: list[BaseException] = []

    def first() -> None:
        try:
            # a new run held before its first save (no last.pt yet); for a second --resume, after it
            train(_BlockingRecipe(hold, release, hold_at=2 if second_resumes else 1), out,
                  TrainSettings(steps=4, save_every=1), log=lambda s: None)
        except BaseException as err:  # noqa: BLE001
            first_error.append(err)

    t = threading.Thread(target=first)
    t.start()
    try:
        assert hold.wait(30)  # the first run is training
        with pytest.raises(ValueError, match="(?i)in use|now|running|is training"):
            train(_BlockingRecipe(), out, TrainSettings(steps=3, save_every=1, seed=5), log=lambda s: None,
                  resume=second_resumes)
    finally:
        release.set()
        t.join(30)
    assert not first_error, first_error
    assert torch.load(out / "last.pt", weights_only=False)["settings"]["seed"] == 0  # the first run's state


# -- 4. two `eval` runs into one --out ----------------------------------------------------------------

def test_a_second_eval_into_an_out_folder_an_eval_is_writing_is_refused(tmp_path, monkeypatch):
    """`napari-vos eval` twice into one --out (two methods compared, one folder given by mistake): the
    second truncates the first's CSVs and both append to them; per_sequence.csv held 18 rows for 10
    sequences, each sequence twice with different scores and no column saying which run, and
    summary.json was the last run's; both exited 0. The second should be refused while the first runs."""
    from napari_vos.data.synthetic import write_synthetic_set
    import napari_vos.session as session_module
    from napari_vos.evaluation import runner

    data = tmp_path / "data"
    write_synthetic_set(str(data), 2, kind="natural", seed=0, n_frames=4, size=(48, 64), n_objects=1)
    real = session_module.propagate
    inside, release = threading.Event(), threading.Event()
    first_thread: list[threading.Thread] = []

    def propagate(*args, **kwargs):
        if threading.current_thread() in first_thread:
            inside.set()
            assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(session_module, "propagate", propagate)  # runner imports it when it runs
    first_error: list[BaseException] = []

    def first() -> None:
        try:
            runner.evaluate_method("flow", data, device="cpu", out_dir=tmp_path / "ev", plot=False, progress=False)
        except BaseException as err:  # noqa: BLE001
            first_error.append(err)

    t = threading.Thread(target=first)
    first_thread.append(t)
    t.start()
    try:
        assert inside.wait(30)
        with pytest.raises(ValueError):
            runner.evaluate_method("flow", data, device="cpu", out_dir=tmp_path / "ev", plot=False,
                                   progress=False, max_side=32)
    finally:
        release.set()
        t.join(60)
    assert not first_error, first_error
    rows = (tmp_path / "ev" / "per_sequence.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2, rows  # a header and the first run's two sequences, once each


# -- 5. a Session propagated again while its cancelled run is still fine-tuning -----------------------

def test_a_new_propagate_does_not_undo_the_cancel_of_a_run_still_fine_tuning():
    """Session.cancel() during OSVOS-AT's fine-tuning, then (as a script re-running after Cancel does)
    propagate() again before the old thread has ended: propagate() clears the shared stop event, so the
    old run fine-tunes to its last step (400 of 400, minutes on a real frame) before it notices it was
    replaced. A cancel must stay a cancel for the run it was made for."""
    from napari_vos import Session

    frames = np.zeros((4, 64, 80, 3), np.uint8)
    frames[:, 20:44, 20:50] = 220
    labels = np.zeros((64, 80), np.uint8)
    labels[20:44, 20:50] = 1
    steps: list[int] = []
    s = Session(frames, method="osvos_at", device="cpu", max_side=80, min_side=None, finetune_iterations=3000,
                on_finetune=lambda i, n, loss: steps.append(i))
    s.annotate(0, labels)
    ended: list[BaseException | None] = []

    def old() -> None:
        try:
            s.run("forward")
            ended.append(None)
        except BaseException as err:  # noqa: BLE001
            ended.append(err)

    t = threading.Thread(target=old)
    t.start()
    deadline = time.time() + 60
    while len(steps) < 5 and time.time() < deadline:
        time.sleep(0.005)
    s.cancel()
    at = len(steps)
    s.propagate("forward")  # the re-run's generator, made at once
    t.join(120)
    assert max(steps) <= at + 2, f"cancelled at fine-tuning step {at}, the old run went on to step {max(steps)}"
