"""eval --resume, reviewed as a hostile user would use it: summaries of other kinds, other working
folders, a --json elsewhere, hand-edited entries, a stop while a sequence's files are written, and
--save-predictions differing between the runs (flow method, CPU, tiny datasets)."""
from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("torch")

from napari_vos.cli import main  # noqa: E402
from napari_vos.data.synthetic import write_synthetic_set  # noqa: E402
from test_eval_cli import interrupt_the_second_sequence  # noqa: E402
from test_eval_resume import (_count_propagate, _eval, _files, _rows, _stopped_after_the_first,  # noqa: E402
                              three)  # noqa: F401 - the module's fixture: three sequences, one whole eval


def test_a_score_summary_is_not_resumed_as_an_eval(three, tmp_path, capsys):
    """`napari-vos score --out OUT --json OUT/summary.json` writes no method: its scores are of
    predictions made by anything, and were taken as the method's."""
    root, names, _, _ = three
    preds = tmp_path / "p"
    assert main(_eval(root, preds, "--save-predictions")) == 0
    out = tmp_path / "sc"
    assert main(["score", "--pred", str(preds / "predictions"), "--gt", str(root), "--out", str(out), "--json",
                 str(out / "summary.json"), "-q", "--sequences", names[0]]) == 0
    before = _files(out)
    capsys.readouterr()
    assert main(_eval(root, out, "--resume")) == 2
    err = capsys.readouterr().err
    assert "records no method" in err and "score" in err
    assert _files(out) == before


def test_the_same_dataset_from_another_working_folder_resumes_and_another_one_is_refused(three, tmp_path,
                                                                                          monkeypatch, capsys):
    """A relative --data is the folder it names from where the run was started, not its spelling."""
    root, names, whole, _ = three
    out = tmp_path / "ev"
    monkeypatch.chdir(root.parent)
    interrupted_argv = _eval(root.name, out)
    interrupt_the_second_sequence(monkeypatch)
    assert main(interrupted_argv) == 130
    monkeypatch.undo()
    # another folder, its relative path spelled as before: another dataset with the same sequence names
    other = tmp_path / "elsewhere" / root.name
    assert write_synthetic_set(other, 3, "natural", seed=21, n_frames=6, size=(40, 56), n_objects=2) == names
    before = _files(out)
    monkeypatch.chdir(other.parent)
    calls = _count_propagate(monkeypatch)
    capsys.readouterr()
    assert main(_eval(root.name, out, "--resume")) == 2
    assert "dataset" in capsys.readouterr().err and calls["n"] == 0 and _files(out) == before
    # the same folder given from elsewhere (relative to another working folder)
    monkeypatch.chdir(tmp_path)
    assert main(_eval(os.path.relpath(root, tmp_path), out, "--resume")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert calls["n"] == 2 and summary["JF_mean"] == pytest.approx(whole["JF_mean"], abs=1e-5)


def test_resume_with_the_summary_elsewhere_than_the_earlier_run_put_it_is_refused(three, tmp_path, monkeypatch,
                                                                                 capsys):
    """The earlier run wrote its summary to --json elsewhere; resumed without that --json it was taken
    for no run at all and its scored sequences were run again, their files started afresh."""
    root, names, whole, _ = three
    out = tmp_path / "ev"
    summary = tmp_path / "elsewhere.json"
    _stopped_after_the_first(root, out, monkeypatch, "--json", str(summary))
    before = {name: (out / name).read_bytes() for name in ("per_sequence.csv", "per_object.csv", "per_frame.csv")}
    calls = _count_propagate(monkeypatch)
    capsys.readouterr()
    assert main(_eval(root, out, "--resume")) == 2
    err = capsys.readouterr().err
    assert "--json" in err and "per_sequence.csv" in err and calls["n"] == 0
    assert before == {name: (out / name).read_bytes() for name in before}
    assert main(_eval(root, out, "--resume", "--json", str(summary))) == 0  # with it: resumed
    assert calls["n"] == 2
    assert json.loads(summary.read_text())["JF_mean"] == pytest.approx(whole["JF_mean"], abs=1e-5)


@pytest.mark.parametrize("entry, says", [
    (5, "its entry of sequence"),
    ({"seconds": "x"}, "its entry of sequence"),
])
def test_a_hand_edited_summary_entry_is_named_not_a_traceback(three, tmp_path, monkeypatch, capsys, entry, says):
    root, names, _, _ = three
    out = tmp_path / "ev"
    _stopped_after_the_first(root, out, monkeypatch)
    summary = json.loads((out / "summary.json").read_text())
    if isinstance(entry, dict):
        summary["sequences"][names[0]].update(entry)
    else:
        summary["sequences"][names[0]] = entry
    (out / "summary.json").write_text(json.dumps(summary))
    capsys.readouterr()
    assert main(_eval(root, out, "--resume")) == 2
    err = capsys.readouterr().err
    assert says in err and "summary.json" in err and "without --resume" in err


def _stop_while_writing_per_frame_csv(monkeypatch, sequence: str) -> None:
    """Ctrl-C while the per_frame.csv rows of ``sequence`` are being written (after its first row)."""
    import napari_vos.evaluation.scoring as scoring

    real = scoring.csv.writer

    class Stopping:
        def __init__(self, f, *args, **kwargs):
            self.inner, self.rows = real(f, *args, **kwargs), 0

        def writerow(self, row):
            row = list(row)
            if row and row[0] == sequence and self.rows:
                raise KeyboardInterrupt
            self.rows += 1
            return self.inner.writerow(row)

        def writerows(self, rows):
            return self.inner.writerows(rows)

    monkeypatch.setattr(scoring.csv, "writer", Stopping)


def test_a_stop_while_a_sequences_rows_are_written_leaves_a_run_that_resumes(three, tmp_path, monkeypatch):
    """The summary listed a sequence whose per_frame.csv rows were half written: resuming refused it
    as damaged ("start afresh"), losing every scored sequence."""
    root, names, whole, _ = three
    out = tmp_path / "ev"
    _stop_while_writing_per_frame_csv(monkeypatch, names[1])
    assert main(_eval(root, out)) == 130
    monkeypatch.undo()
    assert list(json.loads((out / "summary.json").read_text())["sequences"]) == names[:1]
    calls = _count_propagate(monkeypatch)
    assert main(_eval(root, out, "--resume")) == 0
    assert calls["n"] == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["JF_mean"] == pytest.approx(whole["JF_mean"], abs=1e-5)
    assert len(_rows(out / "per_frame.csv")) == 6 * 4


def test_a_stop_while_a_prediction_is_saved_runs_that_sequence_again(three, tmp_path, monkeypatch):
    """Stopped while a sequence's prediction was being written (after its scores), the sequence was
    kept with half a prediction, which a resumed run never rewrote."""
    import napari_vos.evaluation.runner as runner

    root, names, _, _ = three
    out = tmp_path / "ev"
    real = runner.save_prediction

    def stopping(folder, name, labels):
        if name == names[1]:
            real(folder, name, labels[:2])  # two frames written, then Ctrl-C
            raise KeyboardInterrupt
        return real(folder, name, labels)

    monkeypatch.setattr(runner, "save_prediction", stopping)
    assert main(_eval(root, out, "--save-predictions")) == 130
    monkeypatch.undo()
    assert list(json.loads((out / "summary.json").read_text())["sequences"]) == names[:1]
    assert main(_eval(root, out, "--resume", "--save-predictions")) == 0
    assert all(len(list((out / "predictions" / name).glob("*.png"))) == 6 for name in names)


def test_resume_says_which_kept_sequences_have_no_saved_prediction(three, tmp_path, monkeypatch, capsys):
    """--save-predictions now but not before (or the other way round): OUT/predictions lacks some
    sequences, which `score` would later miss; said, naming them, before anything runs."""
    root, names, _, _ = three
    out = tmp_path / "ev"
    _stopped_after_the_first(root, out, monkeypatch)
    with pytest.warns(UserWarning, match=rf"{names[0]}.*no prediction.*--save-predictions"):
        assert main(_eval(root, out, "--resume", "--save-predictions")) == 0
    assert all((out / "predictions" / name).is_dir() for name in names[1:])

    out2 = tmp_path / "ev2"
    _stopped_after_the_first(root, out2, monkeypatch, "--save-predictions")
    with pytest.warns(UserWarning, match=rf"predictions.*{names[0]}.*without --save-predictions"):
        assert main(_eval(root, out2, "--resume")) == 0


def test_a_resume_on_another_device_says_the_fps_mixes_them(three, tmp_path, monkeypatch):
    """The scores go on whatever the device, but the overall fps counts both devices' seconds: said."""
    root, names, whole, _ = three
    out = tmp_path / "ev"
    _stopped_after_the_first(root, out, monkeypatch)
    summary = json.loads((out / "summary.json").read_text())
    summary["device"] = "cuda:0"  # as an earlier run on a GPU records it
    (out / "summary.json").write_text(json.dumps(summary))
    with pytest.warns(UserWarning, match=r"ran on cuda:0, this resume on cpu.*fps mixes"):
        assert main(_eval(root, out, "--resume")) == 0
    resumed = json.loads((out / "summary.json").read_text())
    assert resumed["complete"] and resumed["JF_mean"] == pytest.approx(whole["JF_mean"], abs=1e-5)


def test_no_plot_removes_an_earlier_runs_plot_that_the_summary_no_longer_matches(three, tmp_path, monkeypatch):
    """A resume (or any run into a reused --out) with --no-plot left the stopped run's plot, of its
    sequences only, beside a summary of all of them."""
    root, names, _, _ = three
    out = tmp_path / "ev"
    interrupt_the_second_sequence(monkeypatch)
    assert main([arg for arg in _eval(root, out) if arg != "--no-plot"]) == 130
    monkeypatch.undo()
    assert (out / "jf_over_time.png").is_file()  # of the first sequence only
    assert main(_eval(root, out, "--resume")) == 0
    assert not (out / "jf_over_time.png").exists()
    assert set(json.loads((out / "summary.json").read_text())["sequences"]) == set(names)
