"""eval --resume: a stopped evaluation continues in its --out folder (flow method, CPU, tiny datasets)."""
from __future__ import annotations

import csv
import json

import pytest

pytest.importorskip("torch")

from napari_vos.cli import main  # noqa: E402
from napari_vos.data.synthetic import write_synthetic_set  # noqa: E402
from test_eval_cli import interrupt_the_second_sequence  # noqa: E402

OVERALL = ("J_mean", "F_mean", "JF_mean", "J_recall", "J_decay", "F_recall", "F_decay")


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """Three tiny sequences of two objects, the summary of one uninterrupted eval of them, and its folder."""
    root = tmp_path_factory.mktemp("three")
    names = write_synthetic_set(root, 3, "natural", seed=21, n_frames=6, size=(48, 64), n_objects=2)
    whole = tmp_path_factory.mktemp("whole")
    assert main(_eval(root, whole)) == 0
    return root, names, json.loads((whole / "summary.json").read_text()), whole


def _eval(root, out, *more: str) -> list[str]:
    """The argv of one eval of the flow method into ``out``."""
    return ["eval", "--method", "flow", "--data", str(root), "--device", "cpu", "--out", str(out), "-q", "--no-plot",
            *more]


def _count_propagate(monkeypatch) -> dict[str, int]:
    """Count the engine's propagate calls (one per sequence run) from now on."""
    import napari_vos.session as session

    real = session.propagate
    calls = {"n": 0}

    def counted(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(session, "propagate", counted)
    return calls


def _stopped_after_the_first(root, out, monkeypatch, *more: str) -> None:
    """An eval into ``out`` stopped by Ctrl-C in its second sequence (exit 130), the patch then undone."""
    interrupt_the_second_sequence(monkeypatch)
    assert main(_eval(root, out, *more)) == 130
    monkeypatch.undo()


def _files(out) -> dict[str, bytes]:
    """The bytes of every file an eval writes into ``out``."""
    return {name: (out / name).read_bytes() for name in ("summary.json", "per_sequence.csv", "per_object.csv",
                                                         "per_frame.csv")}


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_resume_runs_only_the_sequences_left_and_scores_as_one_uninterrupted_run(three, tmp_path, monkeypatch,
                                                                                    capsys):
    root, names, whole, whole_dir = three
    out = tmp_path / "ev"
    _stopped_after_the_first(root, out, monkeypatch)
    err = capsys.readouterr().err
    assert "--resume" in err and f"--sequences {','.join(names[1:])}" in err  # the hint names both ways on
    calls = _count_propagate(monkeypatch)
    assert main(_eval(root, out, "--resume")) == 0
    assert calls["n"] == 2  # the first sequence was kept, not run again
    captured = capsys.readouterr()
    assert "scored 1 sequence(s); evaluating the rest" in captured.err
    assert all(name in captured.out for name in names)  # the table covers every sequence
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True and list(summary["sequences"]) == names
    assert "not_evaluated" not in summary and summary["resumed"][0]["kept"] == 1
    for key in OVERALL:
        assert summary[key] == pytest.approx(whole[key], abs=1e-5), key
    assert summary["objects"] == whole["objects"] == 6
    for name in names:
        assert summary["sequences"][name]["JF_mean"] == pytest.approx(whole["sequences"][name]["JF_mean"], abs=1e-5)
    entries = summary["sequences"].values()
    assert summary["fps"] == pytest.approx(sum(e["frames_done"] for e in entries) / sum(e["seconds"] for e in entries))
    # the files hold each sequence once, as one run's
    assert [r["sequence"] for r in _rows(out / "per_sequence.csv")] == names
    assert len(_rows(out / "per_object.csv")) == 6
    frames = _rows(out / "per_frame.csv")
    assert len(frames) == 6 * 4
    assert [(r["sequence"], r["frame"], r["J"]) for r in frames] == [
        (r["sequence"], r["frame"], r["J"]) for r in _rows(whole_dir / "per_frame.csv")]


def test_resume_of_another_evaluation_is_refused_naming_what_differs(three, tmp_path, monkeypatch, capsys):
    root, names, _, _ = three
    out = tmp_path / "ev"
    _stopped_after_the_first(root, out, monkeypatch)
    before = _files(out)
    calls = _count_propagate(monkeypatch)
    capsys.readouterr()
    assert main(_eval(root, out, "--resume", "--max-side", "48")) == 2
    assert "max_side: earlier None, now 48" in capsys.readouterr().err
    assert main(_eval(root, out, "--resume", "--sequences", ",".join(names[:2]))) == 2
    assert "selection: earlier None, now" in capsys.readouterr().err
    assert calls["n"] == 0 and _files(out) == before  # refused before anything ran or was written

    from napari_vos.evaluation.runner import evaluate_method

    with pytest.raises(ValueError, match=r"method: earlier 'flow', now 'frtm'"):
        evaluate_method("frtm", root, device="cpu", out_dir=out, plot=False, progress=False, resume=True)
    assert _files(out) == before


def test_resume_refuses_a_run_whose_method_resolved_another_precision_before_writing(three, tmp_path, monkeypatch,
                                                                                      capsys):
    root, _, _, _ = three
    out = tmp_path / "ev"
    _stopped_after_the_first(root, out, monkeypatch)
    summary = json.loads((out / "summary.json").read_text())
    summary["precision"] = "elsewhere"
    (out / "summary.json").write_text(json.dumps(summary))
    before = _files(out)
    capsys.readouterr()
    assert main(_eval(root, out, "--resume")) == 2
    assert "precision: earlier 'elsewhere', now" in capsys.readouterr().err
    assert _files(out) == before


def test_resume_of_a_complete_run_runs_nothing(three, tmp_path, monkeypatch, capsys):
    root, names, _, _ = three
    out = tmp_path / "ev"
    assert main(_eval(root, out)) == 0
    before = _files(out)
    calls = _count_propagate(monkeypatch)
    capsys.readouterr()
    assert main(_eval(root, out, "--resume")) == 0
    captured = capsys.readouterr()
    assert calls["n"] == 0 and "nothing is left" in captured.err
    assert all(name in captured.out for name in names)
    assert _files(out) == before


def test_resume_without_an_earlier_run_runs_everything_and_without_out_is_refused(three, tmp_path, monkeypatch,
                                                                                  capsys):
    root, names, whole, _ = three
    calls = _count_propagate(monkeypatch)
    out = tmp_path / "new"
    assert main(_eval(root, out, "--resume")) == 0
    assert calls["n"] == 3 and "no earlier run" in capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["JF_mean"] == pytest.approx(whole["JF_mean"], abs=1e-9)

    assert main(["eval", "--method", "flow", "--data", str(root), "--device", "cpu", "-q", "--resume"]) == 2
    assert "--resume continues the run whose files are in --out" in capsys.readouterr().err
    from napari_vos.evaluation.runner import evaluate_method

    with pytest.raises(ValueError, match="give that --out"):
        evaluate_method("flow", root, device="cpu", json_path=tmp_path / "s.json", progress=False, resume=True)
    assert calls["n"] == 3


@pytest.mark.parametrize("damage, says", [
    ("missing", "per_frame.csv: it is missing"),
    ("short", "per_frame.csv: it holds 3 frames of object"),
    ("garbled", "per_frame.csv: a row of sequence"),
])
def test_resume_from_a_damaged_per_frame_csv_names_it_and_says_start_afresh(three, tmp_path, monkeypatch, capsys,
                                                                            damage, says):
    root, _, _, _ = three
    out = tmp_path / "ev"
    _stopped_after_the_first(root, out, monkeypatch)
    lines = (out / "per_frame.csv").read_text().splitlines(keepends=True)
    if damage == "missing":
        (out / "per_frame.csv").unlink()
    elif damage == "short":
        (out / "per_frame.csv").write_text("".join(lines[:-1]))
    else:
        (out / "per_frame.csv").write_text("".join([*lines[:-1], lines[-1].replace(".", ",")]))
    calls = _count_propagate(monkeypatch)
    capsys.readouterr()
    assert main(_eval(root, out, "--resume")) == 2
    err = capsys.readouterr().err
    assert says in err and "without --resume" in err and calls["n"] == 0


def test_resume_keeps_saved_predictions_and_drops_rows_of_a_sequence_the_summary_does_not_list(
        three, tmp_path, monkeypatch):
    """A run killed between a sequence's CSV rows and its summary: the sequence is run again, once."""
    root, names, whole, _ = three
    out = tmp_path / "ev"
    _stopped_after_the_first(root, out, monkeypatch, "--save-predictions")
    kept = out / "predictions" / names[0] / "00000.png"
    stamp = kept.stat().st_mtime_ns
    with open(out / "per_frame.csv", "a", newline="") as f:
        csv.writer(f).writerow([names[1], 1, 1, "0.5", "0.5"])  # a half-written second sequence
    with open(out / "per_sequence.csv", "a", newline="") as f:
        f.write(f"{names[1]},2,6\n")
    summary = json.loads((out / "summary.json").read_text())
    for entry in summary["sequences"].values():  # written before frames_done and seconds were kept
        del entry["frames_done"], entry["seconds"]
    (out / "summary.json").write_text(json.dumps(summary))
    calls = _count_propagate(monkeypatch)
    assert main(_eval(root, out, "--resume", "--save-predictions")) == 0
    assert calls["n"] == 2 and kept.stat().st_mtime_ns == stamp
    assert all((out / "predictions" / name / "00005.png").is_file() for name in names)
    frames = _rows(out / "per_frame.csv")
    assert len(frames) == 6 * 4 and sum(r["sequence"] == names[1] for r in frames) == 2 * 4
    assert [r["sequence"] for r in _rows(out / "per_sequence.csv")] == names
    resumed = json.loads((out / "summary.json").read_text())
    assert resumed["JF_mean"] == pytest.approx(whole["JF_mean"], abs=1e-5) and resumed["fps"] > 0
