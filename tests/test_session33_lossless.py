"""Nothing lost (session 33 audit): earlier results, exports, kept frames' ids and complete outputs survive refused or stopped runs."""
from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest
import tifffile

from _layers import sliding_square

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# -- 1. eval/score --out: a refused run wipes the earlier run's CSVs before anything runs ------------------
def test_a_refused_eval_keeps_the_earlier_results_in_its_out_folder(tmp_path, capsys):
    from napari_vos.cli import main
    from napari_vos.data.synthetic import write_synthetic_set

    data, out = tmp_path / "data", tmp_path / "res"
    write_synthetic_set(data, 2, n_frames=4, size=(64, 96))
    assert main(["eval", "--method", "flow", "--data", str(data), "--out", str(out), "-q", "--no-plot",
                 "--device", "cpu"]) == 0
    earlier = _rows(out / "per_sequence.csv")
    assert len(earlier) == 2
    # a mistyped checkpoint: refused (exit 2) before any sequence is scored
    code = main(["eval", "--method", "frtm", "--checkpoint", str(tmp_path / "nope.safetensors"), "--data", str(data),
                 "--out", str(out), "-q", "--no-plot", "--device", "cpu"])
    assert code == 2
    # the earlier run's rows are still there (now: header only, beside the earlier summary.json)
    assert _rows(out / "per_sequence.csv") == earlier


def test_a_failed_score_keeps_the_earlier_results_in_its_out_folder(tmp_path, capsys):
    from napari_vos.cli import main
    from napari_vos.data.synthetic import write_synthetic_set

    data, out = tmp_path / "data", tmp_path / "res"
    write_synthetic_set(data, 2, n_frames=4, size=(64, 96))
    assert main(["eval", "--method", "flow", "--data", str(data), "--out", str(out), "-q", "--no-plot",
                 "--device", "cpu", "--save-predictions"]) == 0
    assert main(["score", "--pred", str(out / "predictions"), "--gt", str(data), "--out", str(out / "scored"),
                 "-q"]) == 0
    earlier = _rows(out / "scored" / "per_object.csv")
    # a wrong --pred folder: refused, nothing scored
    assert main(["score", "--pred", str(tmp_path / "empty"), "--gt", str(data), "--out", str(out / "scored"),
                 "-q"]) == 2
    assert _rows(out / "scored" / "per_object.csv") == earlier


# -- 2. train --export overwrites an existing weights file at a new run's first save ----------------------
def test_a_new_training_run_does_not_overwrite_an_existing_export(tmp_path, capsys):
    from napari_vos.cli import main
    from napari_vos.weights import save_checkpoint

    import torch

    good = tmp_path / "good.safetensors"
    save_checkpoint(good, {"w": torch.ones(3)}, {"note": "a checkpoint the user cares about"})
    before = _sha(good)
    main(["train", "agame", "--steps", "1", "--size", "64x64", "--batch-size", "1", "--threads", "1",
          "--out", str(tmp_path / "new_run"), "--export", str(good)])
    # a new run into a folder with last.pt is refused; its --export over an existing file is not (it is
    # replaced at step 1). Refusing (as --out does) or asking for --resume/--force would pass here.
    assert _sha(good) == before


# -- 3. frames a one-way run does not reach are copied from the labels with their ids altered --------------
@pytest.mark.parametrize("odd_id, dtype", [(-3, np.int32), (2**31 + 5, np.uint32)])
def test_frames_kept_from_the_labels_layer_keep_their_ids(make_napari_viewer, qtbot, odd_id, dtype):
    from _widget_run import click, setup_widget, wait_done

    viewer, widget, truth = setup_widget(make_napari_viewer, n_frames=6)
    labels = truth.astype(dtype)
    labels[0:2][labels[0:2] == 1] = odd_id  # frames before the corrected one hold an id the run does not follow
    video = viewer.layers["video"]
    viewer.add_labels(labels, name="earlier", scale=video.scale, translate=video.translate)
    widget.labels_combo.setCurrentText("earlier")
    widget.all_painted.setChecked(False)
    widget.direction_combo.setCurrentText("forward")
    widget.frame_spin.setValue(3)
    click(qtbot, widget.propagate_button)
    wait_done(qtbot, widget)
    out = [lyr for lyr in viewer.layers if lyr.name.startswith("earlier propagated")]
    if out:  # kept exactly (or, with a fix that refuses such ids, no output and an error in the status line)
        kept = np.asarray(out[0].data[0:3]).astype(np.int64)
        assert np.array_equal(kept, labels[0:3].astype(np.int64)), np.unique(kept).tolist()
    else:
        assert "error" in widget.status.text()


def test_keep_other_frames_keeps_the_stacks_ids(tmp_path, capsys):
    from napari_vos.cli import main

    frames, truth = sliding_square(6, (64, 64))
    labels = truth.astype(np.int32)
    labels[0:2][labels[0:2] == 1] = -3
    tifffile.imwrite(tmp_path / "video.tif", frames, photometric="minisblack")
    tifffile.imwrite(tmp_path / "labels.tif", labels, photometric="minisblack")
    out = tmp_path / "out.tif"
    code = main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(out),
                 "--method", "flow", "--device", "cpu", "--frame", "3", "--direction", "forward",
                 "--keep-other-frames"])
    if code == 0:  # now: written with -3 as 65533 on frames 0-1
        written = tifffile.imread(out)
        assert np.array_equal(written[0:3].astype(np.int64), labels[0:3].astype(np.int64)), np.unique(written[0:2])
    else:
        assert code == 2 and not out.exists()


# -- 4. a stopped re-run replaces a complete earlier output with a mostly empty one -------------------------
def test_a_stopped_rerun_keeps_the_complete_earlier_output(tmp_path, monkeypatch, capsys):
    from conftest import interrupt_reading_frame
    from napari_vos.cli import main
    from napari_vos.data.writers import read_tiff_provenance

    frames, truth = sliding_square(6, (64, 64))
    tifffile.imwrite(tmp_path / "video.tif", frames, photometric="minisblack")
    tifffile.imwrite(tmp_path / "labels.tif", truth[0])
    out = tmp_path / "out.tif"
    args = ["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(out),
            "--method", "flow", "--device", "cpu"]
    assert main(args) == 0
    complete = tifffile.imread(out)
    assert complete.any(axis=(1, 2)).all()
    interrupt_reading_frame(monkeypatch, 3)  # Ctrl+C three frames into the same command run again
    assert main(args) == 130
    # the finished frames should be kept somewhere (out.partial.tif, say), not over the complete result
    assert np.array_equal(tifffile.imread(out), complete)
    assert read_tiff_provenance(out).get("complete", True) is not False
    stopped = tmp_path / "out.stopped.tif"  # the stopped run's frames, beside it
    assert read_tiff_provenance(stopped)["complete"] is False
    assert tifffile.imread(stopped)[0].any() and not tifffile.imread(stopped)[-1].any()
    assert "out.tif from an earlier run is kept as it was" in capsys.readouterr().err


def test_a_new_run_keeps_an_earlier_log_without_last_pt(tmp_path):
    """A folder whose run never saved (or whose last.pt was moved away) keeps that run's log aside."""
    from napari_vos.cli import main

    out = tmp_path / "run"
    out.mkdir()
    (out / "log.jsonl").write_text('{"step": 7, "loss": 0.5}\n')
    assert main(["train", "frtm", "--steps", "1", "--size", "64x48", "--batch-size", "1", "--synthetic-fraction", "1",
                 "--device", "cpu", "--log-every", "1", "--out", str(out)]) == 0
    assert (out / "log.earlier-1.jsonl").read_text() == '{"step": 7, "loss": 0.5}\n'
    assert '"step": 1' in (out / "log.jsonl").read_text()
