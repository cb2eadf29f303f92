"""Session 37 review1: defects found in 861f01a..08f7bba (each test failed before its fix)."""
from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest
import tifffile

from _signalled_runs import propagate_signalled
from _signalled_runs import run_propagate as _run
from _signalled_runs import write_video as _video

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _killed_run(tmp_path, at_frame, *extra):
    """`propagate` of labels.tif to out.tif, SIGKILLed as it reads ``at_frame``."""
    assert propagate_signalled(tmp_path, at_frame, extra=extra).returncode == -signal.SIGKILL


# 1. A killed run whose labels stack has a later painted frame (a correction at frame 7 of a run
#    killed at frame 4): the Session writes every annotation into the partial file up front, so
#    frame 7 holds labels and the refusal took it for where the run got to ("go on from frame 6",
#    an empty frame that --keep-other-frames then refuses); and continuing from the killed file took
#    frame 7 for reached, so its painting was propagated over instead of kept as an annotation.
def test_a_killed_run_with_a_later_painted_frame_is_continued_from_where_it_got_to(tmp_path, capsys):
    import shlex

    truth = _video(tmp_path, n_frames=10)
    painted = np.zeros_like(truth, dtype=np.uint8)
    painted[0] = truth[0]
    painted[7, 10:40, 30:60] = 1  # the user's correction, unlike any propagated frame
    tifffile.imwrite(tmp_path / "labels.tif", painted, photometric="minisblack")
    _killed_run(tmp_path, 4, "--direction", "forward")
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "out.tif", "--direction", "forward") == 2
    err = capsys.readouterr().err
    assert "To go on from frame 2," in err, err  # frames 0-3 reached; 3 may be half-written
    (tmp_path / "out.partial.tif").rename(tmp_path / "out.killed.tif")
    from napari_vos.cli import main

    for command in err.split("run: ", 1)[1].split(" (with the killed run's")[0].split(" and then "):
        assert main([*shlex.split(command)[1:], "--device", "cpu"]) == 0
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "whole.tif", "--direction", "forward") == 0
    continued = tifffile.imread(tmp_path / "out.tif")
    assert np.array_equal(continued[7], painted[7]), "the painted correction at frame 7 was propagated over"
    assert np.array_equal(continued, tifffile.imread(tmp_path / "whole.tif"))


# 2. A `both` run killed early in its backward pass (its forward pass done): going back one frame
#    from the last one reached lands on the start frame, which continue_steps reads as a forward
#    pass not begun, so the refusal told to run the whole forward pass again before going backward.
def test_a_both_run_killed_in_its_backward_pass_is_not_told_to_redo_its_forward_pass(tmp_path, capsys):
    import shlex

    truth = _video(tmp_path, n_frames=10)
    painted = np.zeros_like(truth, dtype=np.uint8)
    painted[4] = truth[4]
    tifffile.imwrite(tmp_path / "labels.tif", painted, photometric="minisblack")
    _killed_run(tmp_path, 2)  # forward 5-9 done, then frame 3 of the backward pass
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "out.tif") == 2
    err = capsys.readouterr().err
    assert "frames 3-9 hold its labels" in err, err
    commands = err.split("run: ", 1)[1].split(" (with the killed run's")[0].split(" and then ")
    assert len(commands) == 1 and "--direction backward" in commands[0], commands  # the forward pass is done
    (tmp_path / "out.partial.tif").rename(tmp_path / "out.killed.tif")
    from napari_vos.cli import main

    assert main([*shlex.split(commands[0])[1:], "--device", "cpu"]) == 0
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "whole.tif") == 0
    assert np.array_equal(tifffile.imread(tmp_path / "out.tif"), tifffile.imread(tmp_path / "whole.tif"))


# 3. A PNG-folder output interrupted while its PNGs are written: the message (and the next run's
#    refusal) said to rename the partial TIFF, results/labels.partial.tif, "to results", the folder
#    it lies in; it is a labels TIFF to move out of the folder.
def test_an_interrupted_png_output_is_not_told_to_rename_its_tiff_to_the_folder(tmp_path, monkeypatch, capsys):
    import napari_vos.data.writers as writers

    truth = _video(tmp_path)
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))

    def ctrl_c_while_writing(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(writers, "write_png_labels", ctrl_c_while_writing)
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "results") == 130
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert (tmp_path / "results" / "labels.partial.tif").is_file(), err
    assert "rename it to results " not in err, err
    assert "results.tif" in err, err
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "results") == 2
    err = capsys.readouterr().err
    assert "rename it to results " not in err and "results.tif" in err, err


# 4. A run into a PNG folder killed part-way: the refusal said to move results/labels.partial.tif to
#    results.killed.tif in the same folder, and the last command it gives, writing that folder, was
#    then refused ("holds files napari-vos did not write (results.killed.tif ...)").
def test_a_killed_png_folder_run_continued_as_told_writes_its_folder(tmp_path, capsys):
    import shlex

    truth = _video(tmp_path, n_frames=10)
    painted = np.zeros_like(truth, dtype=np.uint8)
    painted[4] = truth[4]
    tifffile.imwrite(tmp_path / "labels.tif", painted, photometric="minisblack")
    assert propagate_signalled(tmp_path, 7, output="results").returncode == -signal.SIGKILL
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "results") == 2
    err = capsys.readouterr().err
    moved = err.split("move it to ", 1)[1].split(" and run:")[0]
    moved = Path(moved) if Path(moved).is_absolute() else tmp_path / "results" / moved
    (tmp_path / "results" / "labels.partial.tif").rename(moved)
    from napari_vos.cli import main

    for command in err.split("run: ", 1)[1].split(" (with the killed run's")[0].split(" and then "):
        assert main([*shlex.split(command)[1:], "--device", "cpu"]) == 0, capsys.readouterr().err
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "whole") == 0
    from PIL import Image

    def pngs(folder):
        return np.stack([np.array(Image.open(p)) for p in sorted(folder.glob("*.png"))])

    assert np.array_equal(pngs(tmp_path / "results"), pngs(tmp_path / "whole"))


# 5. A forward run from --frame 6 of a stack also painted at frame 2, stopped at frame 8: the stop
#    message's command (--frame 7 --keep-other-frames) read frame 2 back as an annotation, and the
#    continuation started from the session's earliest annotation, frame 2, not from --frame 7: it
#    propagated over frames 3-6, the user's painted frame 6 included.
def test_a_continuation_starts_from_its_frame_not_from_a_recovered_earlier_painting(tmp_path, monkeypatch, capsys):
    import shlex

    from conftest import interrupt_reading_frame

    truth = _video(tmp_path, n_frames=10)
    painted = np.zeros_like(truth, dtype=np.uint8)
    painted[6] = truth[6]
    painted[2, 10:40, 30:60] = 1
    tifffile.imwrite(tmp_path / "labels.tif", painted, photometric="minisblack")
    interrupt_reading_frame(monkeypatch, 8)
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "out.tif", "--frame", 6,
                "--direction", "forward") == 130
    monkeypatch.undo()
    err = capsys.readouterr().err
    (command,) = err.split("run: ", 1)[1].strip().split(" and then ")
    from napari_vos.cli import main
    from napari_vos.data.writers import read_tiff_provenance

    assert main([*shlex.split(command)[1:], "--device", "cpu"]) == 0
    assert read_tiff_provenance(tmp_path / "out.continued.tif")["start_frame"] == 7
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "whole.tif", "--frame", 6,
                "--direction", "forward") == 0
    continued = tifffile.imread(tmp_path / "out.continued.tif")
    assert np.array_equal(continued[6], painted[6]), "the painted frame 6 was propagated over"
    assert np.array_equal(continued, tifffile.imread(tmp_path / "whole.tif"))


# 6. A `both` run from --frame 6 with a painted frame 2 on its backward side, stopped in its forward
#    pass: the stop message's second command (backward from 6, on the first command's complete output)
#    took frame 2 for a kept frame, not an annotation, and propagated over the painting there.
def test_a_both_run_continued_as_told_keeps_a_painted_frame_on_its_backward_side(tmp_path, monkeypatch, capsys):
    import shlex

    from conftest import interrupt_reading_frame

    truth = _video(tmp_path, n_frames=10)
    painted = np.zeros_like(truth, dtype=np.uint8)
    painted[6] = truth[6]
    painted[2, 10:40, 30:60] = 1  # the user's correction, unlike any propagated frame
    tifffile.imwrite(tmp_path / "labels.tif", painted, photometric="minisblack")
    interrupt_reading_frame(monkeypatch, 8)
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "out.tif", "--frame", 6) == 130
    monkeypatch.undo()
    err = capsys.readouterr().err
    from napari_vos.cli import main

    for command in err.split("run: ", 1)[1].strip().split(" and then "):
        assert main([*shlex.split(command)[1:], "--device", "cpu"]) == 0
    assert _run(tmp_path, tmp_path / "labels.tif", "-o", tmp_path / "whole.tif", "--frame", 6) == 0
    whole, continued = tifffile.imread(tmp_path / "whole.tif"), tifffile.imread(tmp_path / "out.continued.tif")
    assert np.array_equal(whole[2], painted[2])  # the uninterrupted run keeps the painting
    assert np.array_equal(continued[2], painted[2]), "the painted frame 2 was propagated over"
    assert np.array_equal(continued, whole)


# 7. A full disk for a small partial file said "it takes 0.00 GB" (the size in GB to two places),
#    while the file size limit's message beside it uses MB below a GB.
def test_a_full_disk_message_gives_a_small_files_size_in_mb():
    import errno

    from napari_vos.data.writers import _named_write_error

    err = _named_write_error(OSError(errno.ENOSPC, "No space left on device"), Path("out.partial.tif"), 330_000)
    assert "0.00 GB" not in str(err) and "0.33 MB" in str(err), str(err)
