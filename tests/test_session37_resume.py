"""Session 37 (audit "recipes", fixed by "fix_resume"): training resumes and degenerate training data.

A resumed run keeps what last.pt says about how it trains (the regime --init decided, a rate drop
it has passed, its --data), short sequences are left out by name, COSNet's alternation follows the
step, and a --data folder named twice counts once. Tiny: synthetic videos at 64x64, batch 1, one
CPU thread, a few steps each.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import torch

from _tiny_recipe import TinyRecipe as _Tiny
from napari_vos.cli import main
from napari_vos.training.cosnet_recipe import COSNetRecipe
from napari_vos.training.loop import TrainSettings, train
from napari_vos.training.recipes import make_recipe

INIT = "frtm-resnet18-vos"  # the shipped FRTM checkpoint, the documented --init of A-GAME, COSNet, S2S, RVOS


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _recipe(method: str, init: str | None = None, config: str | None = None, real_dirs=None):
    return make_recipe(method, size=(64, 64), batch_size=1, real_dirs=real_dirs or [], config=config,
                       synthetic_fraction=0.5 if real_dirs else 1.0, init_checkpoint=init)


def _run(method, out, steps, resume=False, init=None, config=None, log=None):
    return train(_recipe(method, init, config), out, TrainSettings(steps=steps, save_every=2, log_every=1),
                 resume=resume, log=log if log is not None else (lambda s: None))


# -- 1. resuming without repeating --init changed (or refused) the run ----------------------------
# The loop told a resumed run "--init X is not used: the run goes on from last.pt", yet --init
# decides which parameters train (A-GAME, COSNet: train_backbone_from="auto") and whether batch norm
# is frozen (S2S, RVOS): last.pt now keeps that regime and a resume is built by it.

@pytest.mark.parametrize("method,config", [("s2s", None), ("rvos", "light:teacher")])
def test_resume_without_init_keeps_frozen_batchnorm(tmp_path, method, config):
    first = _run(method, tmp_path, 2, init=INIT, config=config)
    assert first.freeze_batchnorm  # started from the FRTM backbone: pre-trained statistics kept
    resumed = _run(method, tmp_path, 3, resume=True, init=None, config=config)
    # now: False, silently: batch statistics of 1-4 clips from here on (RGMP's doc measured
    # J&F 0.451 -> 0.179 in 100 such steps)
    assert resumed.freeze_batchnorm, "a resumed run must keep the batch-norm regime it was trained with"


@pytest.mark.parametrize("method", ["agame", "cosnet"])
def test_resume_without_init_is_not_refused_as_another_run(tmp_path, method):
    _run(method, tmp_path, 2, init=INIT)
    # now: ValueError "trained other parameters than this run would (was --train-backbone-from
    # changed?)": without --init, "auto" trains the whole backbone, so the parameter sets differ
    _run(method, tmp_path, 3, resume=True, init=None)


# -- 2. raising --steps on a resume raises the learning rate back 10x -------------------------------

def test_resume_with_more_steps_does_not_silently_raise_the_rate(tmp_path):
    logs: list[str] = []
    _run("frtm", tmp_path, 3, log=logs.append)  # drop at int(3 * 0.67) = step 2: step 3 trains at 1e-4
    _run("frtm", tmp_path, 6, resume=True, log=logs.append)  # drop now at step 4: steps 4 trains at 1e-3
    rates = {int(dict(p.split("=", 1) for p in line.split())["step"]): float(dict(
        p.split("=", 1) for p in line.split())["lr"]) for line in logs if line.startswith("step=")}
    assert rates[3] == pytest.approx(1e-4)
    warned = any("rate" in line and ("rises" in line or "back" in line or "again" in line) for line in logs)
    assert rates[4] <= rates[3] or warned, (
        f"the rate went from {rates[3]:g} back up to {rates[4]:g} at the resume, and nothing said so: {logs[:6]}")


# -- 3. too-short sequences are dropped without the promised warning --------------------------------

def _davis(root: Path, lengths: list[int]) -> Path:
    from napari_vos.data.synthetic import write_synthetic_set

    for i, n in enumerate(lengths):
        part = root / f"part{i}"
        write_synthetic_set(part, 1, seed=10 + i, n_frames=n, size=(80, 96), n_objects=1)
        for kind in ("JPEGImages", "Annotations"):
            for seq in (part / kind).iterdir():
                shutil.copytree(seq, root / "set" / kind / f"len{n}-{i}")
    return root / "set"


def test_short_sequence_left_out_with_a_warning_naming_it(tmp_path):
    data = _davis(tmp_path, [16, 2])
    recipe = make_recipe("frtm", size=(64, 64), batch_size=1, real_dirs=[str(data)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bank = recipe._real()
    assert bank is not None and bank.names == ["len16-0"]
    # the user guide: "A sequence that cannot give the method's training clips (fewer annotated frames
    # than a clip holds ...) is left out with a warning naming it"; SequenceBank drops it before
    # keep_usable can warn
    assert any("len2-1" in str(w.message) for w in caught), [str(w.message) for w in caught]


def test_rgmp_pretraining_takes_single_still_images(tmp_path):
    # RGMP's stage 1 trains on still images (one frame each); its own check asks for 1 annotated
    # frame, but SequenceBank keeps only sequences of 3 frames and more, so a still-image set in
    # DAVIS layout (one frame per sequence) is "no usable training sequence ... needs 3 annotated frames"
    data = _davis(tmp_path, [1, 1, 1])
    recipe = make_recipe("rgmp", size=(64, 64), batch_size=1, real_dirs=[str(data)], config="light:pretrain")
    bank = recipe._real()
    assert bank is not None and len(bank) == 3


# -- 4. COSNet's pair/saliency alternation restarts its phase on a resume ----------------------------

def test_cosnet_alternation_follows_the_step_after_resume(tmp_path):
    kinds: dict[str, list[str]] = {"straight": [], "resumed": []}

    def recorder(tag):
        def record(model, batch, device):
            kinds[tag].append(batch.kind)
            return original(model, batch, device)
        return record

    straight = _recipe("cosnet")
    original = straight.loss
    straight.loss = recorder("straight")
    train(straight, tmp_path / "a", TrainSettings(steps=4, save_every=1, log_every=1), log=lambda s: None)
    part = _recipe("cosnet")
    train(part, tmp_path / "b", TrainSettings(steps=3, save_every=1, log_every=1), log=lambda s: None)
    resumed = _recipe("cosnet")
    original = resumed.loss
    resumed.loss = recorder("resumed")
    train(resumed, tmp_path / "b", TrainSettings(steps=4, save_every=1, log_every=1), resume=True,
          log=lambda s: None)
    # straight: pair, saliency, pair, saliency; the resumed step 4 restarts the count: "pair"
    assert kinds["resumed"] == kinds["straight"][3:]


# -- fix_resume's further checks ------------------------------------------------------------------

@pytest.mark.parametrize("method", ["s2s", "agame"])
def test_resume_with_init_of_a_run_started_without_it_keeps_its_regime(tmp_path, method):
    # the other way round: --init added on a resume must not freeze batch norm (S2S) or the shallow
    # backbone stages (A-GAME "auto") of a run that trained them
    first = _run(method, tmp_path, 2)
    trained = [n for n, p in first.named_parameters() if p.requires_grad]
    resumed = _run(method, tmp_path, 3, resume=True, init=INIT)
    assert [n for n, p in resumed.named_parameters() if p.requires_grad] == trained
    assert getattr(resumed, "freeze_batchnorm", False) == getattr(first, "freeze_batchnorm", False)


def test_another_train_backbone_from_on_resume_is_refused_naming_it(tmp_path):
    _run("agame", tmp_path, 2, init=INIT)
    recipe = make_recipe("agame", size=(64, 64), batch_size=1, synthetic_fraction=1.0, init_checkpoint=INIT,
                         train_backbone_from="stem")
    with pytest.raises(ValueError, match=r"trained other parameters than this run would \(it would train \d+ "
                                         r"parameter tensor\(s\) the saved run kept fixed, such as backbone\..*\): "
                                         r"--train-backbone-from is 'stem' here, 'auto' in the saved run"):
        train(recipe, tmp_path, TrainSettings(steps=3, save_every=2), resume=True, log=lambda s: None)


def _rates(logs: list[str]) -> dict[int, float]:
    fields = [dict(p.split("=", 1) for p in line.split()) for line in logs if line.startswith("step=")]
    return {int(f["step"]): float(f["lr"]) for f in fields}


def test_resume_with_the_same_lr_drop_at_keeps_the_drop_taken(tmp_path):
    # scripts give --lr-drop-at every time: the same value again is no move of the drop
    logs: list[str] = []
    train(_Tiny(), tmp_path, TrainSettings(steps=4, lr=1e-3, lr_drop_at=0.5, log_every=1), log=logs.append)
    train(_Tiny(), tmp_path, TrainSettings(steps=12, lr=1e-3, lr_drop_at=0.5, log_every=1), resume=True,
          log=logs.append)  # recomputed, the drop would be after step 6: steps 5 and 6 at 1e-3 again
    assert [_rates(logs)[k] for k in range(1, 13)] == pytest.approx([1e-3] * 2 + [1e-4] * 10)


def test_another_lr_drop_at_that_raises_the_rate_again_says_so(tmp_path):
    logs: list[str] = []
    train(_Tiny(), tmp_path, TrainSettings(steps=4, lr=1e-3, lr_drop_at=0.5, log_every=1), log=logs.append)
    train(_Tiny(), tmp_path, TrainSettings(steps=8, lr=1e-3, lr_drop_at=0.75, log_every=1), resume=True,
          log=logs.append)
    assert [_rates(logs)[k] for k in range(5, 9)] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])  # on purpose
    assert any(line.startswith("warning: the learning rate goes back up 10x for steps 5 to 6: the saved run "
                               "dropped it after step 2") for line in logs)


def test_a_drop_not_yet_taken_moves_with_the_steps_at_the_saved_fraction(tmp_path):
    # saved with --lr-drop-at 1.0 (never dropped), resumed with more steps and no --lr-drop-at: still
    # never dropped (the default 0.67 would drop it after step 5)
    logs: list[str] = []
    train(_Tiny(), tmp_path, TrainSettings(steps=2, lr=1e-3, lr_drop_at=1.0, log_every=1), log=logs.append)
    train(_Tiny(), tmp_path, TrainSettings(steps=8, lr=1e-3, log_every=1), resume=True, log=logs.append)
    assert [_rates(logs)[k] for k in range(1, 9)] == pytest.approx([1e-3] * 8)


def test_resume_without_data_of_a_run_that_had_data_is_refused(tmp_path):
    train(_Tiny(real_dirs=["/data/davis"]), tmp_path, TrainSettings(steps=1), log=lambda s: None)
    with pytest.raises(ValueError, match=r"trained on --data /data/davis, and this resume names no --data, so it "
                                         r"would go on with synthetic videos alone: give the same --data again"):
        train(_Tiny(), tmp_path, TrainSettings(steps=2), resume=True, log=lambda s: None)
    train(_Tiny(real_dirs=["/data/other"]), tmp_path, TrainSettings(steps=2), resume=True, log=lambda s: None)


def test_the_cli_refuses_a_resume_that_leaves_out_the_data(tmp_path, capsys):
    data = _davis(tmp_path, [16])
    common = ["train", "frtm", "--size", "64x64", "--batch-size", "1", "--threads", "1", "--out", str(tmp_path / "r")]
    assert main([*common, "--steps", "1", "--data", str(data)]) == 0
    assert main([*common, "--steps", "2", "--resume"]) == 2
    assert "names no --data, so it would go on with synthetic videos alone" in capsys.readouterr().err


def test_the_same_data_folder_twice_counts_once(tmp_path):
    from napari_vos.training.clips import SequenceBank

    data = _davis(tmp_path, [16])
    with pytest.warns(UserWarning, match=r"--data names a folder more than once; its sequences are loaded once: "):
        bank = SequenceBank([data, f"{data}/", data.parent / "part0" / ".." / "set"], (32, 32))
    assert bank.names == ["len16-0"]


class _Alternating(COSNetRecipe):
    """COSNet's alternation alone: each batch is its kind."""

    def batch(self, rng):
        return self.next_kind()


def test_cosnet_alternation_follows_the_step_in_worker_processes(tmp_path):
    # the loader takes its workers' batches in turn: counted per worker, 2 workers gave P P S S
    from napari_vos.training.prefetch import batch_stream, stop_workers

    stream = batch_stream(_Alternating(size=(64, 64), batch_size=1), workers=2, seed=0, start_step=3)
    try:
        kinds = [next(stream) for _ in range(4)]
    finally:
        stop_workers(stream)
    assert kinds == ["saliency", "pair", "saliency", "pair"]  # steps 4, 5, 6, 7
