"""The engine's no-annotation path (zero-shot methods), with a tiny registered test method.

Session, propagate(), the CLI (propagate, demo, eval) run a method with ``needs_annotation = False``
without labels; methods that need labels still refuse to run without them.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from _layers import iou, sliding_square

pytest.importorskip("torch")

import _zero_shot_method as zsm  # noqa: E402
from napari_vos.cli import main  # noqa: E402
from napari_vos.evaluation.unsupervised import score_foreground  # noqa: E402
from napari_vos.methods import registry  # noqa: E402
from napari_vos.session import Session, propagate  # noqa: E402


@pytest.fixture
def brighter(monkeypatch):
    monkeypatch.setitem(registry.METHODS, zsm.NAME, zsm.TARGET)
    monkeypatch.setitem(registry.METHODS, "_brighter_labels", "_zero_shot_method:BrighterAcceptingLabels")
    zsm.BrighterThanMean.videos_seen.clear()
    zsm.BrighterThanMean.stepped.clear()
    zsm.BrighterAcceptingLabels.started.clear()
    return zsm.NAME


def test_session_runs_without_annotate(brighter):
    frames, truth = sliding_square(6, (64, 64))
    s = Session(frames, method=brighter, device="cpu", maps=True, max_side=32)
    order = [step.index for step in s.propagate()]
    assert order == list(range(6))  # every frame segmented once, none copied from an annotation
    res = s.result()
    assert res.labels.shape == truth.shape and res.labels.dtype == np.uint8
    assert res.object_ids == [1] and res.annotated_frames == []
    for t in range(6):
        assert iou(res.labels[t] == 1, truth[t] == 1) > 0.8, t
    assert set(np.unique(res.labels)) <= {0, 1}
    assert zsm.BrighterThanMean.videos_seen == [(6, (3, 32, 32))]  # the whole video, at working size
    assert res.maps["excess"].shape == (6, 1, 8, 8)


def test_start_frame_and_directions(brighter):
    frames, _ = sliding_square(6, (32, 32))
    s = Session(frames, method=brighter, device="cpu")
    assert [f.index for f in s.propagate("both", start=3)] == [3, 4, 5, 2, 1, 0]
    assert [f.index for f in s.propagate("backward")] == [5, 4, 3, 2, 1, 0]
    assert [f.index for f in s.propagate("forward", start=4)] == [4, 5]
    assert not any(f.annotated for f in s.propagate("forward"))
    with pytest.raises(ValueError, match="outside the stack"):
        list(s.propagate(start=6))


def test_annotations_refused_or_taken(brighter):
    frames, truth = sliding_square(4, (32, 32))
    with pytest.raises(ValueError, match="without an annotation"):
        Session(frames, method=brighter, device="cpu").annotate(0, truth[0])
    with pytest.raises(ValueError, match="without an annotation"):
        propagate(frames, truth[0], method=brighter, device="cpu")
    # a zero-shot method that accepts labels goes through start() like the semi-supervised ones
    res = propagate(frames, truth[0], method="_brighter_labels", device="cpu")
    # one start: the backward pass from frame 0 has no frame to segment, so no method is built for it
    assert zsm.BrighterAcceptingLabels.started == [1] and res.annotated_frames == [0]
    assert np.array_equal(res.labels[0], truth[0])


def test_methods_that_need_labels_still_refuse_to_run_without(square_video):
    frames, _ = square_video
    with pytest.raises(ValueError, match="needs labels"):
        propagate(frames, None, method="flow", device="cpu")
    with pytest.raises(ValueError, match="needs one"):
        list(Session(frames, method="flow", device="cpu").propagate())
    assert registry.needs_annotation("flow") and registry.accepts_annotation("flow")


def test_propagate_one_call_without_labels(brighter):
    frames, truth = sliding_square(5, (48, 48))
    res = propagate(frames, method=brighter, device="cpu", direction="both", frame=2)
    assert res.frames_done == 5
    scores = score_foreground(res.labels, truth)
    assert scores["J_mean"] > 0.8
    # scoring is foreground vs union: a prediction split into two ids is still all foreground
    split = res.labels.copy()
    split[:, :, 24:][split[:, :, 24:] == 1] = 2
    assert score_foreground(split, truth)["J_mean"] == pytest.approx(scores["J_mean"])


def test_cli_propagate_without_labels(brighter, tmp_path, capsys):
    frames, truth = sliding_square(5, (48, 48))
    tifffile.imwrite(tmp_path / "video.tif", frames)
    out = tmp_path / "out.tif"
    assert main(["propagate", str(tmp_path / "video.tif"), "-o", str(out), "--method", brighter,
                 "--device", "cpu"]) == 0
    labels = tifffile.imread(out)
    assert labels.shape == truth.shape and iou(labels[-1] > 0, truth[-1] > 0) > 0.8
    assert "1 object(s) found" in capsys.readouterr().out
    # a method that needs labels says so instead of a traceback
    assert main(["propagate", str(tmp_path / "video.tif"), "-o", str(out), "--method", "flow",
                 "--device", "cpu"]) == 2
    assert "needs labels" in capsys.readouterr().err


def test_cli_demo_and_eval_score_the_foreground(brighter, tmp_path, capsys):
    from napari_vos.data.synthetic import write_synthetic_set

    root = tmp_path / "set"
    names = write_synthetic_set(root, 1, "natural", seed=3, n_frames=5, size=(48, 64), n_objects=2)
    out = tmp_path / "ev"
    assert main(["eval", "--method", brighter, "--data", str(root), "--device", "cpu", "--out", str(out),
                 "-q", "--no-plot"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["annotation"] == "none" and "union" in summary["scoring"]
    seq = summary["sequences"][names[0]]
    assert seq["evaluated_frames"] == 3  # DAVIS 2016 leaves out the first and the last frame, zero-shot too
    assert seq["objects"] == 1  # one foreground, whatever the number of true objects
    assert main(["eval", "--method", brighter, "--data", str(root), "--annotation", "first", "-q",
                 "--no-plot"]) == 2
    assert "takes no annotation" in capsys.readouterr().err
    assert main(["demo", "--method", brighter, "--device", "cpu", "--json", str(tmp_path / "d.json")]) == 0
    demo = json.loads((tmp_path / "d.json").read_text())
    assert demo["annotation"] == "none" and 0 <= demo["J_mean"] <= 1
    assert "foreground vs all objects" in capsys.readouterr().out


def test_bench_runs_a_zero_shot_method_without_annotating(brighter, tmp_path):
    from napari_vos.evaluation.bench import bench_once

    rec = bench_once(brighter, device="cpu", size=(64, 48), objects=2, frames=4, warmup=1, workdir=tmp_path)
    assert rec["annotated"] is False and rec["fps"] > 0
    assert zsm.BrighterThanMean.videos_seen[-1][0] == 4  # the measured run saw its whole 4-frame video
    assert len(zsm.BrighterThanMean.stepped) == 2 + 4  # warm-up (2 frames) + every measured frame, frame 0 too
