"""A review of session 33's own changes: --out checked up front, stopped re-runs beside earlier outputs,
kept frames of stopped runs, COSNet's projection under inference mode."""
from __future__ import annotations


import numpy as np
import pytest
import tifffile

from _layers import sliding_square

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _video(tmp_path):
    frames, truth = sliding_square(6, (64, 64))
    tifffile.imwrite(tmp_path / "video.tif", frames, photometric="minisblack")
    return truth


# 1. eval --out that cannot be a folder: refused only after the first sequence was propagated
def test_eval_refuses_an_unusable_out_before_propagating_anything(tmp_path, monkeypatch, capsys):
    import napari_vos.session as session
    from napari_vos.cli import main
    from napari_vos.data.synthetic import write_synthetic_set

    write_synthetic_set(tmp_path / "data", 2, n_frames=4, size=(64, 96))
    (tmp_path / "notafolder").write_text("x")
    calls = []
    real = session.propagate
    monkeypatch.setattr(session, "propagate", lambda *a, **k: calls.append(1) or real(*a, **k))
    code = main(["eval", "--method", "flow", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "notafolder"),
                 "-q", "--no-plot", "--device", "cpu"])
    assert code == 2
    assert calls == [], "a sequence was propagated (work thrown away) before --out was found unusable"


# 2. a stopped re-run writes out.stopped.tif over the labels input of that name
def test_a_stopped_rerun_never_writes_over_its_labels_input(tmp_path, monkeypatch, capsys):
    from conftest import interrupt_reading_frame
    from napari_vos.cli import main

    truth = _video(tmp_path)
    out, labels = tmp_path / "out.tif", tmp_path / "out.stopped.tif"  # labels corrected from an earlier stopped run
    tifffile.imwrite(labels, truth[0].astype(np.uint8))
    tifffile.imwrite(out, truth.astype(np.uint8), photometric="minisblack")  # an earlier, complete output
    before = tifffile.imread(labels)
    interrupt_reading_frame(monkeypatch, 4)
    main(["propagate", str(tmp_path / "video.tif"), str(labels), "-o", str(out), "--method", "flow", "--device", "cpu"])
    after = tifffile.imread(labels)
    assert after.shape == before.shape and np.array_equal(after, before)


# 3. a stopped re-run into the current folder (-o .) holding an earlier PNG output crashes
def test_a_stopped_rerun_into_the_current_folder_writes_its_frames(tmp_path, monkeypatch, capsys):
    from conftest import interrupt_reading_frame
    from napari_vos.cli import main

    truth = _video(tmp_path)
    tifffile.imwrite(tmp_path / "labels.tif", truth[0])
    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.chdir(results)
    args = ["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", ".", "--method", "flow",
            "--device", "cpu"]
    assert main(args) == 0
    interrupt_reading_frame(monkeypatch, 3)
    code = main(args)
    err = capsys.readouterr().err
    assert "has an empty name" not in err
    assert code == 130


# 4. the earlier run's --maps are replaced by a stopped re-run that keeps the earlier labels
def test_a_stopped_rerun_keeps_the_earlier_maps_with_the_earlier_labels(tmp_path, monkeypatch, capsys):
    from conftest import interrupt_reading_frame
    from napari_vos.cli import main

    truth = _video(tmp_path)
    tifffile.imwrite(tmp_path / "labels.tif", truth[0])
    out, maps = tmp_path / "out.tif", tmp_path / "maps"
    args = ["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(out),
            "--method", "flow", "--device", "cpu", "--maps", str(maps)]
    assert main(args) == 0
    earlier_maps = tifffile.imread(maps / "flow_magnitude.tif")
    interrupt_reading_frame(monkeypatch, 3)
    assert main(args) == 130
    # out.tif is the earlier run's; the maps, written as the frames finish, are this run's: said so
    assert "is kept as it was (the --maps files are this run's)" in capsys.readouterr().err
    assert not np.array_equal(tifffile.imread(maps / "flow_magnitude.tif"), earlier_maps)


# 5. --keep-other-frames stopped part-way: frames after the stop hold the labels stack's frames, but the
#    message says "the others empty" and frames_kept_from_labels leaves them out
def test_keep_other_frames_stopped_says_what_the_unreached_frames_hold(tmp_path, monkeypatch, capsys):
    from conftest import interrupt_reading_frame
    from napari_vos.cli import main
    from napari_vos.data.writers import read_tiff_provenance

    truth = _video(tmp_path)
    tifffile.imwrite(tmp_path / "labels.tif", truth.astype(np.uint8) * 2, photometric="minisblack")
    out = tmp_path / "out.tif"
    interrupt_reading_frame(monkeypatch, 4)
    assert main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(out),
                 "--method", "flow", "--device", "cpu", "--frame", "2", "--direction", "forward",
                 "--keep-other-frames"]) == 130
    err = capsys.readouterr().err
    written = tifffile.imread(out)
    record = read_tiff_provenance(out)
    assert written[4].any() and written[5].any()  # what the file holds there: the labels stack's frames 4-5
    assert record["frames_kept_from_labels"] == "0-1"  # as a complete run records them
    assert record["frames_not_reached_kept_from_labels"] == "4-5"  # and the frames the stop left
    assert "the others as the labels stack has them" in err and "the others empty" not in err


# 6. COSNet's projection cache: a CoAttention made under torch.inference_mode() no longer runs there
def test_cosnet_coattention_built_in_inference_mode_runs():
    import torch

    from napari_vos.nn.coattention import CoAttention

    with torch.inference_mode():
        ca = CoAttention(16, "symmetric")
        ca(torch.randn(1, 16, 8, 8), torch.randn(1, 16, 8, 8))  # RuntimeError: inference tensors ... version counter
