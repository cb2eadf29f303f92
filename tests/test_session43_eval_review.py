"""Session 43: a user's review of `napari-vos eval`, `score` and `bench` on small hand-made data."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import tifffile
from PIL import Image

pytest.importorskip("torch")

from napari_vos.cli import main  # noqa: E402
from napari_vos.data.writers import write_png_labels  # noqa: E402
from napari_vos.evaluation.scoring import score_dataset  # noqa: E402

T, H, W = 6, 64, 96


def _truth(late: bool = False) -> np.ndarray:
    labels = np.zeros((T, H, W), np.int32)
    for t in range(T):
        labels[t, 10 + t:30 + t, 10 + t:30 + t] = 1
        labels[t, 35:55, 50 + t:70 + t] = 2
        if late and t >= 3:
            labels[t, 50:60, 5:15] = 3  # a cell entering on frame 3
    return labels


def _davis(root, name: str, labels: np.ndarray) -> None:
    frames = root / "JPEGImages" / name
    frames.mkdir(parents=True)
    for t in range(len(labels)):
        picture = np.full((H, W, 3), 30, np.uint8)
        picture[labels[t] > 0] = 200
        Image.fromarray(picture).save(frames / f"{t:05d}.png")
    write_png_labels(root / "Annotations" / name, labels)


def test_an_object_that_appears_after_the_annotated_frame_is_said_not_scored(tmp_path):
    """A truth whose object 3 enters on frame 3 scored 100 % for a prediction without it, with
    nothing said: only the annotated frame's objects are scored, and the user was not told."""
    truth = _truth(late=True)
    _davis(tmp_path / "gt", "enter", truth)
    (tmp_path / "pred").mkdir()
    tifffile.imwrite(tmp_path / "pred" / "enter.tif", np.where(truth == 3, 0, truth).astype(np.uint16))
    with pytest.warns(UserWarning, match=r"enter: .*object 3 .*frame 3.* not scored"):
        s = score_dataset(tmp_path / "pred", tmp_path / "gt", progress=False)
    assert s["J_mean"] == 1.0  # the score itself is unchanged: the annotated frame's objects


def test_ctc_truth_whose_ids_change_is_said(tmp_path, capsys):
    """Cell Tracking Challenge SEG truth numbers its cells afresh on each frame: J and F (which pair
    objects by id) were 0 beside a SEG of 100 with nothing said why."""
    truth = _truth()
    (tmp_path / "ctc" / "01").mkdir(parents=True)
    (tmp_path / "ctc" / "01_GT" / "SEG").mkdir(parents=True)
    for t in range(T):
        tifffile.imwrite(tmp_path / "ctc" / "01" / f"t{t:03d}.tif", (truth[t] * 100).astype(np.uint16))
    tifffile.imwrite(tmp_path / "ctc" / "01_GT" / "SEG" / "man_seg000.tif", truth[0].astype(np.uint16))
    renumbered = np.where(truth[3] == 1, 9, np.where(truth[3] == 2, 4, 0)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "ctc" / "01_GT" / "SEG" / "man_seg003.tif", renumbered)
    (tmp_path / "pred").mkdir()
    tifffile.imwrite(tmp_path / "pred" / "01.tif", truth.astype(np.uint16))
    with pytest.warns(UserWarning, match=r"01: .*objects 4, 9 .*frame 3.* not scored.*SEG"):
        s = score_dataset(tmp_path / "pred", tmp_path / "ctc", progress=False)
    assert s["SEG_mean"] == 1.0


def test_truth_of_the_annotated_objects_only_says_nothing(tmp_path):
    truth = _truth()
    _davis(tmp_path / "gt", "plain", truth)
    (tmp_path / "pred").mkdir()
    tifffile.imwrite(tmp_path / "pred" / "plain.tif", truth.astype(np.uint16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = score_dataset(tmp_path / "pred", tmp_path / "gt", progress=False)
    assert s["J_mean"] == 1.0 and s["F_mean"] == 1.0


def test_eval_says_it_too(tmp_path):
    _davis(tmp_path / "gt", "enter", _truth(late=True))
    with pytest.warns(UserWarning, match=r"enter: .*object 3 .*frame 3.* it is not scored"):
        assert main(["eval", "--method", "flow", "--data", str(tmp_path / "gt"), "--device", "cpu", "-q"]) == 0


def test_eval_stopped_names_the_sequences_left_and_how_to_run_them(tmp_path, monkeypatch, capsys):
    """Stopped by Ctrl+C, eval said only 'the summary holds the finished sequences only': which were
    left, and that running them into the same --out starts its files afresh (losing the finished
    ones), was not said."""
    from test_eval_cli import interrupt_the_second_sequence

    for name in ("s1", "s2", "s3"):
        _davis(tmp_path / "gt", name, _truth())
    interrupt_the_second_sequence(monkeypatch)
    out = tmp_path / "o"
    assert main(["eval", "--method", "flow", "--data", str(tmp_path / "gt"), "--device", "cpu", "--out", str(out),
                 "-q"]) == 130
    err = capsys.readouterr().err
    assert "not evaluated: s2, s3" in err and "--sequences s2,s3" in err and "another --out" in err
    s = json.loads((out / "summary.json").read_text())
    assert s["complete"] is False and list(s["sequences"]) == ["s1"] and s["not_evaluated"] == ["s2", "s3"]


def test_true_colour_prediction_numbered_by_colour_order_is_said(tmp_path):
    """A prediction saved as true-colour PNGs (object 1 red, 2 green) scored J = F = 0 with nothing
    said: colours outside the DAVIS palette are numbered in colour order (green 1, red 2)."""
    truth = _truth()
    _davis(tmp_path / "gt", "rgb", truth)
    (tmp_path / "pred" / "rgb").mkdir(parents=True)
    for t in range(T):
        picture = np.zeros((H, W, 3), np.uint8)
        picture[truth[t] == 1] = (255, 0, 0)
        picture[truth[t] == 2] = (0, 255, 0)
        Image.fromarray(picture).save(tmp_path / "pred" / "rgb" / f"{t:05d}.png")
    with pytest.warns(UserWarning, match=r"rgb: .*colour.*#00ff00 -> 1, #ff0000 -> 2"):
        score_dataset(tmp_path / "pred", tmp_path / "gt", progress=False)
