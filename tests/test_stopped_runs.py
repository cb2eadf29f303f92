"""One sentence for a stopped run's output, wherever its labels are read (session 43): the command line's
measure/ctc/divisions and the napari menus said it in two wordings with two tests of "stopped", and
named only the segmented frames, so a run that kept frames from its labels stack was said to have
no objects on frames that hold them."""
import subprocess
import sys

import numpy as np

from napari_vos.stopped_runs import held_frames, is_stopped, stopped_run_note


def test_only_a_record_saying_incomplete_is_a_stopped_run():
    for record in (None, {}, {"complete": True}, '{"complete": false}', {"complete": 0}, ["complete"]):
        assert not is_stopped(record) and stopped_run_note(record, "x", "anywhere") is None
    assert is_stopped({"complete": False})


def test_the_frames_kept_from_the_labels_stack_are_held_too():
    record = {"complete": False, "frames_segmented": "4-6", "frames_kept_from_labels": "0-3",
              "frames_not_reached_kept_from_labels": "9"}
    assert held_frames(record) == [0, 1, 2, 3, 4, 5, 6, 9]
    note = stopped_run_note(record, "out.tif", "in the tables as well")
    assert "frames 0-6, 9 only" in note and note.endswith("in the tables as well")


def test_a_record_that_cannot_tell_its_frames_says_so():
    record = {"complete": False, "frames_segmented": "unknown: saved while the run was going"}
    assert held_frames(record) is None
    note = stopped_run_note(record, "'layer'", "so the tracks end where the run stopped")
    assert "does not say which frames" in note and "frames 0" not in note


def test_how_the_run_stopped_is_said_when_recorded():
    note = stopped_run_note({"complete": False, "frames_segmented": "0-2", "stopped_by": "interrupt"}, "a", "x")
    assert note.startswith("a is the output of a stopped run (interrupt): it holds labels on frames 0-2 only")
    assert "frames none only" in stopped_run_note({"complete": False, "frames_segmented": ""}, "a", "x")


def test_the_commands_say_the_kept_frames_hold_labels(tmp_path, capsys):
    from napari_vos.cli import main
    from napari_vos.data.writers import write_tiff_labels

    labels = np.zeros((6, 20, 20), np.uint8)
    labels[:, 5:12, 5:12] = 1
    labels[3] = 0  # the frame the run never reached
    source = write_tiff_labels(tmp_path / "out.tif", labels, provenance={
        "method": "flow", "complete": False, "frames_segmented": "0-2", "frames_kept_from_labels": "4-5"})
    for command in (["measure", str(source), "-o", str(tmp_path / "m.csv")],
                    ["divisions", str(source), "-o", str(tmp_path / "d.tif")],
                    ["ctc", str(source), "-o", str(tmp_path / "01_RES")]):
        assert main(command) == 0
        err = capsys.readouterr().err
        assert "output of a stopped run: it holds labels on frames 0-2, 4-5 only" in err, (command, err)


def test_the_module_imports_no_torch_napari_or_qt():
    code = ("import sys, napari_vos.stopped_runs; "
            "print([m for m in ('torch', 'napari', 'qtpy', 'PyQt5', 'PyQt6') if m in sys.modules])")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_the_score_table_marks_a_stopped_runs_sequence():
    """`napari-vos score`'s table gave a stopped run's prediction its sequence's frame count with nothing
    beside it, though only the frames it holds were scored (the warning and the JSON said so)."""
    from napari_vos.evaluation.scoring import format_table

    row = {"objects": 1, "frames": 150, "J_mean": 0.9, "F_mean": 0.8, "JF_mean": 0.85}
    summary = {"sequences": {"a": dict(row), "b": dict(row)}, "J_mean": 0.9, "F_mean": 0.8, "JF_mean": 0.85,
               "stopped_runs": {"a": "a.tif is the output of a stopped run (frames 0-32 of 150 hold its labels)"}}
    table = format_table(summary).splitlines()
    assert [line.split()[2] for line in table if line.startswith(("a ", "b "))] == ["150*", "150"]
    assert table[-1].startswith("* a stopped run's prediction: scored on the frames it holds only")
    del summary["stopped_runs"]
    assert "*" not in format_table(summary)
