"""Session 37 (long runs): a hang-up, a second Ctrl-C, a killed run, continuing a stopped run with
--keep-other-frames, scoring a stopped output, progress written to a log. Each test failed on main at
d337bc4, before the fixes of that session.
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tifffile

from _layers import sliding_square
from _signalled_runs import SRC, propagate_signalled
from _signalled_runs import run_propagate as _run
from _signalled_runs import write_video as _video

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# 1. A second Ctrl+C (or a Ctrl+C or kill while the output is being written) says
#    "interrupted before the first frame was segmented; nothing was written" right after saying
#    where the labels are kept.
@pytest.mark.parametrize("stopped_first", [True, False], ids=["second-ctrl-c", "ctrl-c-while-writing"])
def test_an_interrupt_while_the_output_is_written_does_not_say_nothing_was_written(
        tmp_path, monkeypatch, capsys, stopped_first):
    import napari_vos.data.writers as writers
    from conftest import interrupt_reading_frame

    truth = _video(tmp_path)
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    if stopped_first:
        interrupt_reading_frame(monkeypatch, 4)

    def ctrl_c_while_writing(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(writers, "write_tiff_labels", ctrl_c_while_writing)
    code = _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "out.tif")
    err = capsys.readouterr().err
    partial = tmp_path / "out.partial.tif"
    assert code == 130 and partial.exists()  # the finished frames are kept (this part works)
    assert tifffile.imread(partial)[:4].any(axis=(1, 2)).all()
    assert "nothing was written" not in err, err


# 2. SIGHUP (the terminal or ssh connection of a long run closes) kills the run outright: no
#    output, only <out>.partial.tif marked "unknown", and the next run refuses to start.
def test_a_hangup_writes_the_finished_frames_as_kill_does(tmp_path):
    truth = _video(tmp_path)
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    done = propagate_signalled(tmp_path, 4, "SIGHUP")
    assert done.returncode != -signal.SIGHUP, "killed by SIGHUP: nothing but out.partial.tif was left"
    from napari_vos.data.writers import read_tiff_provenance

    assert (tmp_path / "out.tif").exists() and read_tiff_provenance(tmp_path / "out.tif")["complete"] is False


# 3. `napari-vos score` scored a stopped output (record "complete": false) as if complete: the
#    frames the run never reached counted as empty predictions, and nothing was said. Now it says so
#    (a warning naming the frames, and the summary's stopped_runs) and scores only the frames it holds.
def test_score_says_when_a_prediction_is_a_stopped_run(tmp_path):
    from napari_vos.cli import main
    from napari_vos.data.synthetic import write_synthetic_set
    from napari_vos.data.writers import write_tiff_labels
    from PIL import Image

    (name,) = write_synthetic_set(tmp_path / "gt", 1, n_frames=8, size=(64, 96))
    truth = np.stack([np.array(Image.open(p)) for p in sorted((tmp_path / "gt" / "Annotations" / name).glob("*.png"))])
    pred = truth.astype(np.uint16)
    pred[4:] = 0  # stopped after frame 3, as `propagate` writes it
    (tmp_path / "pred").mkdir()
    write_tiff_labels(tmp_path / "pred" / f"{name}.tif", pred,
                      provenance={"method": "flow", "complete": False, "stopped_by": "interrupt",
                                  "frames_segmented": "0-3"})
    with pytest.warns(UserWarning, match=r"stopped run \(frames 0-3 of 8"):
        assert main(["score", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "-q",
                     "--json", str(tmp_path / "s.json")]) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert "0-3" in summary["stopped_runs"][name], summary
    assert summary["sequences"][name]["evaluated_frames"] == 3  # frames 1-3: the unreached ones are not scored
    assert summary["JF_mean"] == pytest.approx(1.0)  # as the truth itself: not 50 % for the empty frames


def test_score_of_a_stopped_png_folder_zero_shot(tmp_path):
    """The same for a PNG folder's record and foreground (zero-shot) scoring."""
    from napari_vos.cli import main
    from napari_vos.data.synthetic import write_synthetic_set
    from napari_vos.data.writers import PNG_RECORD, write_png_labels
    from PIL import Image

    (name,) = write_synthetic_set(tmp_path / "gt", 1, n_frames=8, size=(64, 96))
    truth = np.stack([np.array(Image.open(p)) for p in sorted((tmp_path / "gt" / "Annotations" / name).glob("*.png"))])
    pred = (truth > 0).astype(np.uint8)
    pred[5:] = 0
    write_png_labels(tmp_path / "pred" / name, pred)
    (tmp_path / "pred" / name / PNG_RECORD).write_text(json.dumps(
        {"method": "cosnet", "complete": False, "stopped_by": "interrupt", "frames_segmented": "0-4"}))
    with pytest.warns(UserWarning, match="stopped run"):
        main(["score", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "-q", "--annotation", "none",
              "--json", str(tmp_path / "s.json")])
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["sequences"][name]["evaluated_frames"] == 4 and summary["JF_mean"] == pytest.approx(1.0)


# 4. The stop message says which frames were written, not how to go on from them (the way that
#    works, `--frame <last> --direction forward|backward --keep-other-frames`, is documented only
#    for correcting an output; stopped runs are not mentioned there).
def test_the_stop_message_says_how_to_continue(tmp_path, monkeypatch, capsys):
    from conftest import interrupt_reading_frame

    truth = _video(tmp_path)
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    interrupt_reading_frame(monkeypatch, 4)
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "out.tif") == 130
    err = capsys.readouterr().err
    assert "--keep-other-frames" in err, f"the stop message does not say how to continue: {err}"


# 5. Continuing a stopped run that had several painted frames: the stopped output holds only the
#    frames it reached, so continuing from it (--keep-other-frames, the one way there is) follows
#    the last finished frame over the later correction, which the stopped record still names
#    (annotated_frames, inputs.labels).
def test_continuing_a_stopped_run_keeps_the_later_annotations(tmp_path, monkeypatch, capsys):
    from conftest import interrupt_reading_frame

    truth = _video(tmp_path, n_frames=10)
    painted = np.zeros_like(truth, dtype=np.uint8)
    painted[0] = truth[0]
    painted[7, 10:40, 30:60] = 1  # a correction at frame 7 (the user's outline, unlike any propagated frame)
    tifffile.imwrite(tmp_path / "labels.tif", painted, photometric="minisblack")
    interrupt_reading_frame(monkeypatch, 4)
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "out.tif", "--direction", "forward") == 130
    monkeypatch.undo()
    assert _run(tmp_path, tmp_path / "out.tif", "-o", tmp_path / "continued.tif", "--frame", 3,
                "--direction", "forward", "--keep-other-frames") == 0
    continued = tifffile.imread(tmp_path / "continued.tif")
    uninterrupted = tmp_path / "uninterrupted.tif"
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", uninterrupted, "--direction", "forward") == 0
    assert np.array_equal(tifffile.imread(uninterrupted)[7], painted[7])  # as a run that was not stopped
    assert np.array_equal(continued[7], painted[7]), "the painted correction at frame 7 was lost"


# 6. A Session stopped part-way (cancel, a broken-off generator, an exception) gives a Result whose
#    record looks like a complete run's: a script that saves it as the guide shows
#    (write_tiff_labels(..., provenance=result.provenance())) writes a file nothing marks as partial.
def test_a_cancelled_session_result_is_marked_as_partial():
    from napari_vos import Session

    frames, truth = sliding_square(8, (64, 64))
    s = Session(frames, method="flow", device="cpu")
    s.annotate(0, truth[0])
    for step in s.propagate("forward"):
        if step.index == 3:
            s.cancel()
    record = s.result().provenance()
    assert record.get("complete") is False or "frames_segmented" in record, record


# 7. A file size limit (ulimit -f, a cluster's) makes the partial file fail with a bare
#    "[Errno 27] File too large" that names neither the file nor the size it needs (a full disk
#    gets "not enough disk space for X: it takes N GB").
def test_a_file_size_limit_names_the_file_and_its_size(tmp_path):
    truth = _video(tmp_path, n_frames=40)
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    script = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {SRC!r})
        from napari_vos.cli import main
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))  # the partial file needs 40*64*64*2
        sys.exit(main(["propagate", {str(tmp_path / "video.tif")!r}, {str(tmp_path / "labels.tif")!r},
                       "-o", {str(tmp_path / "out.tif")!r}, "--method", "flow", "--device", "cpu"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "out.partial.tif" in done.stderr and re.search(r"needs \d+\.\d\d [MG]B", done.stderr), done.stderr
    assert "ulimit -f" in done.stderr, done.stderr  # the cause, not a bare "File too large"


# 8. A run killed outright (SIGKILL, the OOM killer) leaves <out>.partial.tif. The next run is told
#    "its record says which frames it holds" (it says "unknown") and not how to go on from it.
def test_the_refusal_after_a_killed_run_says_how_to_go_on(tmp_path, capsys):
    from napari_vos.data.calibration import Calibration
    from napari_vos.data.partial_labels import PartialLabels

    truth = _video(tmp_path)
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    partial = PartialLabels(tmp_path / "out.tif", truth.shape, 1, Calibration(), {"method": "flow"})
    partial.labels[:3] = truth[:3]  # frames 0-2 finished, then SIGKILL
    partial.labels.flush()
    partial.release()
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "out.tif") == 2
    err = capsys.readouterr().err
    assert "0-2" in err or "frame 2" in err, err  # where the killed run got to
    assert "--keep-other-frames" in err, err  # and how to continue from it


# 9. The commands the stop message gives are the ones that work: a `both` run stopped in its
#    forward pass, continued as told, gives the uninterrupted run's labels.
def test_the_commands_of_the_stop_message_give_the_uninterrupted_labels(tmp_path, monkeypatch, capsys):
    import shlex

    from conftest import interrupt_reading_frame

    truth = _video(tmp_path, n_frames=10)
    painted = np.zeros_like(truth, dtype=np.uint8)
    painted[4] = truth[4]
    tifffile.imwrite(tmp_path / "labels.tif", painted, photometric="minisblack")
    interrupt_reading_frame(monkeypatch, 7)
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "out.tif") == 130
    monkeypatch.undo()
    err = capsys.readouterr().err
    commands = err.split("run: ", 1)[1].strip().split(" and then ")
    assert len(commands) == 2, err  # forward from the last finished frame, then backward from the start
    from napari_vos.cli import main

    for command in commands:
        words = shlex.split(command)
        assert words[:2] == ["napari-vos", "propagate"]
        assert "--method" in words and "flow" in words  # the run's options are repeated
        assert main(words[1:]) == 0
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "whole.tif") == 0
    assert np.array_equal(tifffile.imread(tmp_path / "out.continued.tif"), tifffile.imread(tmp_path / "whole.tif"))


def test_continuing_from_an_empty_frame_names_the_last_painted_one(tmp_path, capsys):
    """A stopped run whose last frames are empty (the object was lost): --frame <last> is refused
    with the frame to give instead."""
    truth = _video(tmp_path)
    stopped = np.zeros_like(truth, dtype=np.uint8)
    stopped[:3] = truth[:3]  # frames 3-5 finished but empty
    tifffile.imwrite(tmp_path / "stopped.tif", stopped, photometric="minisblack")
    assert _run(tmp_path, tmp_path / "stopped.tif", "-o", tmp_path / "o.tif", "--frame", 5, "--direction", "forward",
                "--keep-other-frames") == 2
    err = capsys.readouterr().err
    assert "the nearest painted frame before it is 2: give --frame 2" in err, err


def test_a_complete_session_result_says_so():
    """The other side of the cancelled Result: a run to the end is complete, with every frame."""
    from napari_vos import Session

    frames, truth = sliding_square(6, (64, 64))
    s = Session(frames, method="flow", device="cpu")
    s.annotate(2, truth[2])
    record = s.run("forward").provenance()
    assert record["complete"] is True and record["frames_segmented"] == "2-5", record
    for step in s.propagate("both"):
        break  # broken off: not complete
    assert s.result().provenance()["complete"] is False and s.result().provenance()["frames_segmented"] == "2"


# 10. A batch job's progress in a log file: plain lines, not one line of carriage-return updates.
def test_the_progress_in_a_log_file_is_plain_lines(tmp_path, capsys):
    truth = _video(tmp_path, n_frames=40)
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "out.tif") == 0
    err = capsys.readouterr().err
    assert "\r" not in err, repr(err)
    lines = [line for line in err.splitlines() if line.startswith("propagating")]
    assert 5 <= len(lines) <= 21 and lines[-1].startswith("propagating: 40/40 frames (100 %)"), err


def test_a_log_line_gives_no_pace_before_a_second_has_passed():
    """The annotated frame comes at once: a pace measured on it read '84976 frames/s'."""
    from napari_vos.cli_terminal import ProgressLines

    lines = ProgressLines("propagating", 20)
    assert lines._pace(1, 0.001) == ""
    assert lines._pace(10, 30.0).startswith(", 0.33 frames/s"), lines._pace(10, 30.0)


def test_nohup_keeps_a_hang_up_ignored():
    """`nohup` sets SIGHUP to be ignored so that a run goes on after the terminal closes: the run
    does not turn it back into a stop."""
    from napari_vos.cli_terminal import stops_as_interrupt

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stops_as_interrupt():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_killed_run_continued_as_told_gives_the_uninterrupted_labels(tmp_path, capsys):
    """SIGKILL part-way: the next run names the frames the partial file holds and the commands that
    go on from them; followed, they give what an uninterrupted run gives."""
    import shlex

    truth = _video(tmp_path, n_frames=10)
    painted = np.zeros_like(truth, dtype=np.uint8)
    painted[4] = truth[4]
    tifffile.imwrite(tmp_path / "labels.tif", painted, photometric="minisblack")
    assert propagate_signalled(tmp_path, 7).returncode == -signal.SIGKILL
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "out.tif") == 2
    err = capsys.readouterr().err
    assert "frames 4-6 hold its labels" in err and "move it to out.killed.tif" in err, err
    (tmp_path / "out.partial.tif").rename(tmp_path / "out.killed.tif")
    from napari_vos.cli import main

    for command in err.split("run: ", 1)[1].split(" (with the killed run's")[0].split(" and then "):
        assert main([*shlex.split(command)[1:], "--device", "cpu"]) == 0
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "whole.tif") == 0
    assert np.array_equal(tifffile.imread(tmp_path / "out.tif"), tifffile.imread(tmp_path / "whole.tif"))
