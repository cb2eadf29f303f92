"""eval --resume and the dataset's files: a stop in the first sequence's rows resumes, a dataset
changed since the stop is refused, the same files at another folder resume, and a summary written
before fingerprints were recorded resumes as before (flow method, CPU, tiny datasets)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")

from napari_vos.cli import main  # noqa: E402
from napari_vos.data.readers import open_dataset  # noqa: E402
from napari_vos.data.sequence import Sequence  # noqa: E402
from napari_vos.evaluation.fingerprints import sequence_files, sequence_fingerprint  # noqa: E402
from test_eval_resume import (OVERALL, _count_propagate, _eval, _files, _rows,  # noqa: E402
                              _stopped_after_the_first, three)  # noqa: F401 - the module's fixture
from test_session44_resume_review import _stop_while_writing_per_frame_csv  # noqa: E402


def _copy(root, to):
    """A copy of the fixture's dataset that a test may change (the fixture's is shared)."""
    shutil.copytree(root, to)
    return to


def _assert_as_the_whole_run(out, whole, whole_dir, names) -> None:
    """The summary and per_frame.csv in ``out`` are those of the uninterrupted run."""
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True and list(summary["sequences"]) == names
    for key in OVERALL:
        assert summary[key] == pytest.approx(whole[key], abs=1e-5), key
    assert [(r["sequence"], r["object"], r["frame"], r["J"], r["F"]) for r in _rows(out / "per_frame.csv")] == [
        (r["sequence"], r["object"], r["frame"], r["J"], r["F"]) for r in _rows(whole_dir / "per_frame.csv")]
    assert [r["sequence"] for r in _rows(out / "per_sequence.csv")] == names


def test_a_stop_in_the_first_sequences_rows_resumes_every_sequence_as_one_run(three, tmp_path, monkeypatch,
                                                                             capsys):
    """Stopped while the first sequence's rows were written, the run left rows and no summary, and
    --resume refused it ("no summary"): now its summary (no sequences) is written with the files."""
    from napari_vos.evaluation.runner import check_same_evaluation
    from napari_vos.evaluation.scoring import read_earlier_run, read_summary

    root, names, whole, whole_dir = three
    out = tmp_path / "ev"
    _stop_while_writing_per_frame_csv(monkeypatch, names[0])
    assert main(_eval(root, out)) == 130
    monkeypatch.undo()
    assert [r["sequence"] for r in _rows(out / "per_object.csv")] == names[:1]  # a stray row of the first
    summary = read_summary(out / "summary.json")
    assert summary is not None and summary["complete"] is False and summary["sequences"] == {}
    assert summary["J_mean"] is None and summary["JF_mean"] is None  # NaN means, as JSON holds them
    earlier = read_earlier_run(out)
    assert earlier is not None and earlier.sequences == []
    check_same_evaluation(earlier.summary, dict(earlier.summary), "the earlier run")  # nothing differs
    calls = _count_propagate(monkeypatch)
    capsys.readouterr()
    assert main(_eval(root, out, "--resume")) == 0
    assert calls["n"] == 3 and "scored no sequence: evaluating every sequence" in capsys.readouterr().err
    _assert_as_the_whole_run(out, whole, whole_dir, names)


def test_a_run_killed_in_its_first_sequences_rows_leaves_a_summary_beside_them(three, tmp_path, monkeypatch):
    """A kill (no Ctrl-C handler runs: here an exception the runner does not catch) after the CSVs
    were started still leaves a summary beside them, so the run resumes."""
    import napari_vos.evaluation.scoring as scoring
    from napari_vos.evaluation.runner import evaluate_method

    root, names, whole, whole_dir = three
    out = tmp_path / "ev"
    real = scoring.csv.writer

    class Killed:
        """csv.writer, killed at the first sequence's first per_frame.csv row (5 fields)."""

        def __init__(self, f, *args, **kwargs):
            self.inner = real(f, *args, **kwargs)

        def writerow(self, row):
            row = list(row)
            if len(row) == 5 and row[0] == names[0]:
                raise SystemExit("killed")
            return self.inner.writerow(row)

        def writerows(self, rows):
            return self.inner.writerows(rows)

    monkeypatch.setattr(scoring.csv, "writer", Killed)
    with pytest.raises(SystemExit):
        evaluate_method("flow", root, device="cpu", out_dir=out, plot=False, progress=False)
    monkeypatch.undo()
    assert [r["sequence"] for r in _rows(out / "per_sequence.csv")] == names[:1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["sequences"] == {}
    calls = _count_propagate(monkeypatch)
    assert main(_eval(root, out, "--resume")) == 0
    assert calls["n"] == 3
    _assert_as_the_whole_run(out, whole, whole_dir, names)


def _rewrite_one_pixel(path) -> None:
    """Rewrite an image file (a frame or a palette annotation) with one pixel changed, same format."""
    from PIL import Image

    with Image.open(path) as im:
        changed = im.copy()
    pixels = changed.load()
    value = pixels[0, 0]
    pixels[0, 0] = (value + 1) % 2 if isinstance(value, int) else tuple((c + 1) % 256 for c in value)
    changed.save(path)


@pytest.mark.parametrize("change", ["frame", "annotation", "annotation removed", "frame added"])
def test_a_file_of_a_kept_sequence_changed_since_the_stop_is_refused_naming_it(three, tmp_path, monkeypatch, capsys,
                                                                              change):
    root, names, _, _ = three
    data = _copy(root, tmp_path / "data")
    out = tmp_path / "ev"
    _stopped_after_the_first(data, out, monkeypatch)
    first = names[0]
    if change == "frame":
        _rewrite_one_pixel(data / "JPEGImages" / first / "00003.png")
    elif change == "annotation":
        _rewrite_one_pixel(data / "Annotations" / first / "00002.png")
    elif change == "annotation removed":
        (data / "Annotations" / first / "00004.png").unlink()
    else:
        shutil.copy(data / "JPEGImages" / first / "00005.png", data / "JPEGImages" / first / "00006.png")
    before = _files(out)
    calls = _count_propagate(monkeypatch)
    capsys.readouterr()
    assert main(_eval(data, out, "--resume")) == 2
    err = capsys.readouterr().err
    assert f"scored {first} from files that have changed since" in err and "without --resume" in err
    assert calls["n"] == 0 and _files(out) == before  # refused before anything ran or was written


def test_a_changed_sequence_that_was_not_kept_is_simply_run(three, tmp_path, monkeypatch):
    """Only the kept sequences' scores come from the earlier files: the others are run on the present ones."""
    root, names, _, _ = three
    data = _copy(root, tmp_path / "data")
    out = tmp_path / "ev"
    _stopped_after_the_first(data, out, monkeypatch)
    _rewrite_one_pixel(data / "JPEGImages" / names[2] / "00003.png")
    calls = _count_propagate(monkeypatch)
    assert main(_eval(data, out, "--resume")) == 0
    assert calls["n"] == 2
    entries = json.loads((out / "summary.json").read_text())["sequences"]
    assert entries[names[2]]["files_sha256"] == sequence_fingerprint(open_dataset(data, [names[2]])[0])


def test_the_same_dataset_at_another_folder_resumes_and_says_so(three, tmp_path, monkeypatch, capsys):
    """The dataset copied elsewhere (a GPU machine, another checkout): refused as another dataset by
    its path; now the same files (their sha256) go on, saying so."""
    root, names, whole, whole_dir = three
    here = _copy(root, tmp_path / "here" / "davis")
    out = tmp_path / "ev"
    _stopped_after_the_first(here, out, monkeypatch)
    there = tmp_path / "there" / "copy-of-davis"
    shutil.move(here, there)  # nothing is read from the earlier folder: it is gone
    calls = _count_propagate(monkeypatch)
    capsys.readouterr()
    assert main(_eval(there, out, "--resume")) == 0
    err = capsys.readouterr().err
    assert "another folder" in err and "the same (sha256)" in err and str(there) in err
    assert calls["n"] == 2
    _assert_as_the_whole_run(out, whole, whole_dir, names)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset_path"] == str(there.resolve())
    assert summary["resumed"][0]["dataset_path_before"] == str(here.resolve())
    assert all(len(entry["files_sha256"]) == 64 for entry in summary["sequences"].values())


def test_another_folder_whose_files_differ_or_that_records_no_fingerprints_is_refused(three, tmp_path, monkeypatch,
                                                                                      capsys):
    root, names, _, _ = three
    here = _copy(root, tmp_path / "here")
    out = tmp_path / "ev"
    _stopped_after_the_first(here, out, monkeypatch)
    there = _copy(here, tmp_path / "there")
    _rewrite_one_pixel(there / "Annotations" / names[0] / "00001.png")
    before = _files(out)
    calls = _count_propagate(monkeypatch)
    capsys.readouterr()
    assert main(_eval(there, out, "--resume")) == 2
    err = capsys.readouterr().err
    assert "another evaluation (dataset: earlier" in err and f"the files of {names[0]} differ" in err
    assert calls["n"] == 0 and _files(out) == before
    # a summary without fingerprints (written before they were): the folder's path decides, as before
    same = _copy(here, tmp_path / "same")
    summary = json.loads((out / "summary.json").read_text())
    for entry in summary["sequences"].values():
        del entry["files_sha256"]
    (out / "summary.json").write_text(json.dumps(summary))
    before = _files(out)
    assert main(_eval(same, out, "--resume")) == 2
    err = capsys.readouterr().err
    assert "another evaluation (dataset: earlier" in err and "differ" not in err
    assert calls["n"] == 0 and _files(out) == before


def test_a_summary_without_fingerprints_still_resumes(three, tmp_path, monkeypatch):
    """An earlier run of the previous version recorded no files_sha256: it resumes as before (its kept
    sequences are not compared), and the sequences run now record theirs."""
    root, names, whole, whole_dir = three
    out = tmp_path / "ev"
    _stopped_after_the_first(root, out, monkeypatch)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["sequences"]) == {names[0]}
    del summary["sequences"][names[0]]["files_sha256"]
    (out / "summary.json").write_text(json.dumps(summary))
    calls = _count_propagate(monkeypatch)
    assert main(_eval(root, out, "--resume")) == 0
    assert calls["n"] == 2
    _assert_as_the_whole_run(out, whole, whole_dir, names)
    entries = json.loads((out / "summary.json").read_text())["sequences"]
    assert "files_sha256" not in entries[names[0]] and all("files_sha256" in entries[n] for n in names[1:])


def test_a_hand_edited_fingerprint_is_named(three, tmp_path, monkeypatch, capsys):
    root, names, _, _ = three
    out = tmp_path / "ev"
    _stopped_after_the_first(root, out, monkeypatch)
    summary = json.loads((out / "summary.json").read_text())
    summary["sequences"][names[0]]["files_sha256"] = 12
    (out / "summary.json").write_text(json.dumps(summary))
    capsys.readouterr()
    assert main(_eval(root, out, "--resume")) == 2
    err = capsys.readouterr().err
    assert "files_sha256 12, not a sha256" in err and "without --resume" in err


# the fingerprint of each layout's files: the same at another folder, another after any change


def _write_layout(root, layout: str) -> tuple:
    """A one-sequence dataset of ``layout`` under ``root``: (a frame file, a truth file) of it."""
    import tifffile
    from PIL import Image

    rng = np.random.default_rng(3)
    frames = rng.integers(0, 255, (3, 8, 10), dtype=np.uint8)
    labels = np.zeros((3, 8, 10), np.uint8)
    labels[:, 2:5, 3:7] = 1
    if layout in ("davis", "davis 480p", "images_masks"):
        res = "480p" if layout == "davis 480p" else ""
        image_dir, mask_dir = ((root / "JPEGImages" / res / "seq", root / "Annotations" / res / "seq")
                               if layout != "images_masks" else (root / "images", root / "masks"))
        image_dir.mkdir(parents=True)
        mask_dir.mkdir(parents=True)
        for t in range(3):
            Image.fromarray(frames[t]).save(image_dir / f"{t:05d}.png")
            Image.fromarray(labels[t]).save(mask_dir / f"{t:05d}.png")
        return image_dir / "00001.png", mask_dir / "00000.png"
    if layout == "ctc":
        (root / "01").mkdir(parents=True)
        (root / "01_GT" / "SEG").mkdir(parents=True)
        for t in range(3):
            tifffile.imwrite(root / "01" / f"t{t:03d}.tif", frames[t])
        tifffile.imwrite(root / "01_GT" / "SEG" / "man_seg000.tif", labels[0].astype(np.uint16))
        return root / "01" / "t002.tif", root / "01_GT" / "SEG" / "man_seg000.tif"
    root.mkdir(parents=True)
    tifffile.imwrite(root / "movie.tif", frames)
    tifffile.imwrite(root / "movie_labels.tif", labels)
    return root / "movie.tif", root / "movie_labels.tif"


@pytest.mark.parametrize("layout", ["davis", "davis 480p", "images_masks", "ctc", "tiff"])
def test_a_fingerprint_covers_the_frames_and_the_truth_and_not_the_folder(tmp_path, layout):
    a = tmp_path / "a"
    frame, truth = _write_layout(a, layout)
    (seq,) = open_dataset(a)
    files = sequence_files(seq)
    assert files is not None
    assert {p.resolve() for _, p in files} >= {frame.resolve(), truth.resolve()}
    assert all(name.startswith(("frames/", "truth/")) and str(a) not in name for name, _ in files)
    digest = sequence_fingerprint(seq)
    assert digest is not None and len(digest) == 64
    b = _copy(a, tmp_path / "b")
    assert sequence_fingerprint(open_dataset(b)[0]) == digest  # the same files elsewhere
    for changed in (frame, truth):
        data = changed.read_bytes()
        changed.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        assert sequence_fingerprint(open_dataset(a)[0]) != digest, changed.name
        changed.write_bytes(data)
    assert sequence_fingerprint(open_dataset(a)[0]) == digest


def test_an_in_memory_sequence_has_no_fingerprint():
    seq = Sequence.from_arrays("arr", np.zeros((2, 4, 4), np.uint8), np.zeros((2, 4, 4), np.int32))
    assert sequence_files(seq) is None and sequence_fingerprint(seq) is None
