"""Session 36 locale, time and number audit: a console that cannot encode a line, a wall clock that
steps, Unicode names written decomposed on a Mac, numbers that make no sense (inf, nan), time
stamps without their zone, superscript digits in file names, names equal but for case."""
from __future__ import annotations

import io
import json
import sys
import types
import unicodedata
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NFC = "Präparat café"
NFD = unicodedata.normalize("NFD", NFC)


def _moving_square(n: int = 4, side: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """A bright square moving down: frames (T, side, side) uint8 and its truth (T, side, side)."""
    video = np.zeros((n, side, side), np.uint8)
    truth = np.zeros((n, side, side), np.uint8)
    for t in range(n):
        video[t, 8 + 2 * t:24 + 2 * t, 8:24] = 200
        truth[t, 8 + 2 * t:24 + 2 * t, 8:24] = 1
    return video, truth


def _strict_stdout(monkeypatch, encoding: str) -> None:
    """stdout as Python opens it for output redirected on a Windows of that code page (cp932:
    Japanese, cp1252: Western Europe): errors="strict"."""
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding=encoding))


def _davis(root: Path, names: list[str], n: int = 4) -> None:
    """A DAVIS-layout dataset of the moving square under each of ``names``."""
    video, truth = _moving_square(n)
    for name in names:
        for sub in ("JPEGImages/480p", "Annotations/480p"):
            (root / sub / name).mkdir(parents=True)
        for t in range(n):
            Image.fromarray(np.stack([video[t]] * 3, -1)).save(root / "JPEGImages/480p" / name / f"{t:05d}.jpg")
            Image.fromarray(truth[t], "P").save(root / "Annotations/480p" / name / f"{t:05d}.png")


# -- a line the console cannot encode ended a finished run with exit 2 ------------------------------
def test_propagate_of_a_micron_calibrated_stack_exits_0_on_a_cp932_stdout(tmp_path, monkeypatch):
    """The labels were written, then "kept the image's calibration (0.5 x 0.5 µm ...)" raised
    UnicodeEncodeError (a ValueError): "error: 'cp932' codec can't encode character '\\xb5'", exit 2."""
    from napari_vos import cli

    video, truth = _moving_square()
    tifffile.imwrite(tmp_path / "stack.tif", video, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "TYX", "unit": "micron"})
    tifffile.imwrite(tmp_path / "labels.tif", truth[0])
    _strict_stdout(monkeypatch, "cp932")
    rc = cli.main(["propagate", str(tmp_path / "stack.tif"), str(tmp_path / "labels.tif"), "-o",
                   str(tmp_path / "out.tif"), "--method", "flow", "--device", "cpu"])
    assert rc == 0 and (tmp_path / "out.tif").exists()
    sys.stdout.flush()
    assert b"\\xb5m" in sys.stdout.buffer.getvalue()  # the µ shown as an escape, the line whole


def test_eval_of_a_japanese_sequence_name_exits_0_on_a_cp1252_stdout(tmp_path, monkeypatch):
    """The evaluation ran and wrote its summary, then printing its table (the name) failed: exit 2."""
    from napari_vos import cli

    _davis(tmp_path / "data", ["細胞"])
    _strict_stdout(monkeypatch, "cp1252")
    rc = cli.main(["eval", "--method", "flow", "--data", str(tmp_path / "data"), "--device", "cpu", "-q",
                   "--json", str(tmp_path / "summary.json")])
    assert rc == 0 and json.loads((tmp_path / "summary.json").read_text())["complete"]


# -- training minutes on the wall clock --------------------------------------------------------------
class _Tiny:
    """A one-layer recipe: a few milliseconds a step."""

    name = "tiny"
    default_lr = 1e-3

    def build(self, device):
        return torch.nn.Linear(2, 1)

    def batch(self, rng):
        return torch.ones(4, 2)

    def loss(self, model, batch, device):
        return model(batch).pow(2).mean(), {}


def _wall_clock_that_steps(monkeypatch, seconds: float) -> None:
    """The loop's ``time`` with a wall clock moved by ``seconds`` after its first reading (NTP
    correcting a drifted clock, a VM resumed); the monotonic clock is the real one."""
    import time as real

    from napari_vos.training import loop

    readings = iter(range(10**6))

    def wall() -> float:
        n = next(readings)
        return 1.7e9 + n * 0.01 + (seconds if n else 0)

    monkeypatch.setattr(loop, "time", types.SimpleNamespace(time=wall, monotonic=real.monotonic,
                                                            perf_counter=real.perf_counter))


def _logged_minutes(out: Path) -> list[float]:
    return [json.loads(line)["minutes"] for line in (out / "log.jsonl").read_text().splitlines()]


def test_logged_minutes_stay_at_or_above_0_when_the_clock_is_set_back(tmp_path, monkeypatch):
    """Was: minutes [-59.98, -59.97] in log.jsonl."""
    from napari_vos.training import loop

    _wall_clock_that_steps(monkeypatch, -3600)
    loop.train(_Tiny(), tmp_path, loop.TrainSettings(steps=4, log_every=2, save_every=100), log=lambda s: None)
    minutes = _logged_minutes(tmp_path)
    assert len(minutes) == 2 and all(0 <= m < 1 for m in minutes), minutes


def test_max_minutes_is_not_spent_by_a_clock_set_forward(tmp_path, monkeypatch):
    """Was: "stopping at step 1: time budget of 30 min reached"."""
    from napari_vos.training import loop

    _wall_clock_that_steps(monkeypatch, 3600)
    said: list[str] = []
    loop.train(_Tiny(), tmp_path, loop.TrainSettings(steps=20, log_every=100, save_every=100, max_minutes=30),
               log=said.append)
    assert not any("time budget" in s for s in said), said
    assert torch.load(tmp_path / "last.pt", weights_only=False)["step"] == 20


def test_a_resumed_run_logs_minutes_from_where_it_was(tmp_path, monkeypatch):
    """The minutes restarted at 0 on --resume while the steps went on: a plot against time went back."""
    from types import SimpleNamespace

    from napari_vos.training import loop

    clock = iter(range(0, 10**6, 6))  # each reading of the loop's clock is 6 s (0.1 min) later
    monkeypatch.setattr(loop, "time", SimpleNamespace(monotonic=lambda: float(next(clock)),
                                                      time=lambda: float(next(clock))))
    loop.train(_Tiny(), tmp_path, loop.TrainSettings(steps=4, log_every=2, save_every=2), log=lambda s: None)
    clock = iter(range(0, 10**6, 6))  # a new process: its monotonic clock starts anywhere
    loop.train(_Tiny(), tmp_path, loop.TrainSettings(steps=8, log_every=2, save_every=2), resume=True,
               log=lambda s: None)
    minutes = _logged_minutes(tmp_path)
    assert len(minutes) == 4 and minutes == sorted(minutes) and minutes[2] > minutes[1], minutes


# -- Unicode names: a Mac writes them decomposed (NFD), a keyboard types them composed (NFC) ---------
def test_a_sequence_folder_named_on_a_mac_is_found_by_its_typed_name(tmp_path):
    """Was: ValueError "no sequence(s) ['Präparat café']; have ['Präparat café']" (eval --sequences, --split)."""
    from napari_vos.data.readers import open_dataset

    _davis(tmp_path, [NFD, "other"], n=2)
    seqs = open_dataset(tmp_path, [NFC])
    assert [s.name for s in seqs] == [NFD]  # the folder's own name, which opens its files


def test_masks_named_on_a_mac_pair_with_frames_named_on_linux(tmp_path):
    """Two of five frames annotated, the masks painted on a Mac: none was paired, no annotation at all."""
    from napari_vos.data.readers import open_dataset

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 1
    for i in range(5):
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "images" / f"{NFC}_{i:03d}.png")
    for i in (0, 3):
        Image.fromarray(mask, "P").save(tmp_path / "masks" / f"{NFD}_{i:03d}.png")
    seq = open_dataset(tmp_path)[0]
    assert [t for t in range(len(seq)) if seq.masks[t] is not None and seq.masks[t].any()] == [0, 3]


def test_predictions_saved_on_a_mac_are_scored_against_truth_named_on_linux(tmp_path):
    """Was: "no prediction for sequence 'Präparat café'", then "no prediction file matches the frames"."""
    from napari_vos.evaluation.scoring import score_dataset

    _davis(tmp_path / "gt", [NFC, "other"])
    _, truth = _moving_square()
    for name in (NFD, "other"):
        (tmp_path / "pred" / name).mkdir(parents=True)
        for t in range(1, len(truth)):  # not the given frame 0: no pairing in order by the counts either
            stem = unicodedata.normalize("NFD", f"{t:05d}_é") if name == NFD else f"{t:05d}"
            Image.fromarray(truth[t], "P").save(tmp_path / "pred" / name / f"{stem}.png")
    for t in range(len(truth)):  # the truth's frames named composed, the prediction's decomposed
        for sub, suffix in (("JPEGImages/480p", ".jpg"), ("Annotations/480p", ".png")):
            frame = tmp_path / "gt" / sub / NFC / f"{t:05d}{suffix}"
            frame.rename(frame.with_name(f"{t:05d}_é{suffix}"))
    summary = score_dataset(tmp_path / "pred", tmp_path / "gt", progress=False)
    assert summary["sequences"][NFC]["JF_mean"] == pytest.approx(1.0)


# -- numbers that make no sense ------------------------------------------------------------------------
@pytest.mark.parametrize("timeout", ["inf", "nan", "-1", "0"])
def test_a_sweep_timeout_that_is_no_time_is_refused_before_any_point(monkeypatch, capsys, timeout):
    """inf: OverflowError traceback; nan: an error once the first point had started; -1 or 0: every
    point "timed out after -1.0 s"."""
    from napari_vos import cli
    from napari_vos.evaluation import bench

    def no_sweep(*args, **kwargs):
        raise AssertionError(f"--timeout {timeout} started the sweep")

    monkeypatch.setattr(bench, "bench_sweep", no_sweep)
    rc = cli.main(["bench", "--sweep", f"--timeout={timeout}", "--method", "flow", "--device", "cpu",
                   "--sweep-sizes", "64x64", "--sweep-objects", "1", "--sweep-frames", "3"])
    assert rc == 2 and "--timeout" in capsys.readouterr().err


def test_train_lr_inf_is_refused():
    """Was: "learning rate inf", a network built, one step taken, then TrainingDiverged."""
    from napari_vos.training.loop import TrainSettings

    with pytest.raises(ValueError, match="lr must be above 0 and finite"):
        TrainSettings(lr=float("inf"))


def test_a_divergence_before_the_first_save_points_to_no_last_pt(tmp_path):
    """Was: "last.pt keeps step 0 (lower --lr, then --resume)", with no last.pt to resume."""
    from napari_vos.training import loop

    class Nan(_Tiny):
        def loss(self, model, batch, device):
            return model(batch).sum() * float("nan"), {}

    with pytest.raises(loop.TrainingDiverged, match="nothing was saved yet") as err:
        loop.train(Nan(), tmp_path, loop.TrainSettings(steps=3, save_every=100), log=lambda s: None)
    assert not (tmp_path / "last.pt").exists() and "--resume" not in str(err.value)


@pytest.mark.parametrize("method, options, says", [
    ("rgmp", {"scales": [0.5, float("nan")]}, "scales takes a list, such as [1.0], whose items each takes a finite"),
    ("agame", {"update_rate": float("inf")}, "update_rate takes a finite number"),
    ("agame", {"n_components": -1}, "n_components takes a whole number of at least 0"),
])
def test_an_optional_option_of_the_right_kind_says_what_is_wrong_with_it(method, options, says):
    """Was: "scales takes a list such as [1.0] or None" for a list, "takes a number or None" for inf."""
    from napari_vos.methods.registry import check_options

    with pytest.raises(ValueError) as err:
        check_options(method, options)
    assert says in str(err.value)


# -- time stamps, sort keys, case ------------------------------------------------------------------------
def test_eval_and_bench_time_stamps_say_their_zone(tmp_path, monkeypatch):
    """Was a naive local "2026-11-24 13:40:09": ambiguous in the hour a DST change repeats, and across
    machines in other zones; the widget's provenance already writes the offset."""
    from napari_vos.evaluation import bench
    from napari_vos.evaluation.scoring import Report

    assert datetime.fromisoformat(Report({}, None, None).summary()["started"]).tzinfo is not None
    record = bench.bench_once("flow", "cpu", (32, 32), 1, 2, warmup=0)
    assert datetime.fromisoformat(record["date"]).tzinfo is not None


def test_a_name_with_superscript_digits_sorts_without_crashing():
    """'²'.isdigit() but int('²') raised: listing a folder holding x1²2.png failed."""
    from napari_vos.data.readers import _natural_key

    names = sorted([Path("x1²10.png"), Path("x1²2.png"), Path("x1²2.png".replace("²", "³"))], key=_natural_key)
    assert [p.name for p in names] == ["x1²2.png", "x1²10.png", "x1³2.png"]


def test_saving_predictions_of_names_equal_but_for_case_is_refused_before_any_run(tmp_path):
    """On a disk that ignores case (NTFS, exFAT, SMB, macOS), saving 'cell' deleted 'Cell's folder
    and wrote into it: one prediction lost, and `score` read cell's frames as Cell's."""
    from napari_vos.evaluation.runner import evaluate_method

    _davis(tmp_path / "data", ["Cell", "cell"], n=2)
    with pytest.raises(ValueError, match="'Cell' and 'cell' would share one prediction folder"):
        evaluate_method("flow", tmp_path / "data", device="cpu", out_dir=tmp_path / "out", save_predictions=True,
                        progress=False, plot=False)
    assert not (tmp_path / "out" / "predictions").exists()
    summary = evaluate_method("flow", tmp_path / "data", device="cpu", out_dir=tmp_path / "out", progress=False,
                              plot=False)  # without saving them: both scored
    assert sorted(summary["sequences"]) == ["Cell", "cell"]
