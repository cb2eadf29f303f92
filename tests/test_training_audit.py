"""Training-side audit of session 32: batches drawn in worker processes, parked checkpoints coming
back, inits of another configuration, damaged saves, resumed random streams, the logged rate."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import napari_vos  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]  # tests/ -> the checkout or the unpacked sdist


class _CountingRecipe:
    """A minimal recipe for the shared loop: a 2-parameter model, batches that record the rng's draws."""

    name = "fake"

    def __init__(self) -> None:
        self.draws: list[float] = []

    def build(self, device: torch.device) -> torch.nn.Module:
        return torch.nn.Linear(2, 1).to(device)

    def batch(self, rng: np.random.Generator) -> float:
        value = float(rng.random())
        self.draws.append(value)
        return value

    def loss(self, model: torch.nn.Module, batch: float, device: torch.device):
        return (model.weight ** 2).sum() * (1.0 + batch), {}


# 1 ------------------------------------------------------------------------------------------
def test_rgmp_batches_drawn_in_a_worker_process_do_not_use_the_training_device(one_torch_thread):
    """RGMP's recipe simulates its samples on the device given to build() (recipe._device). On a GPU
    with --workers (the default on cuda), the DataLoader workers are forked after CUDA is initialised
    in the parent, and a forked child cannot use CUDA ("Cannot re-initialize CUDA in forked
    subprocess"): RGMP training on a GPU dies at its first batch. Here the "meta" device stands in for
    a device the worker cannot compute on: a worker must draw its batch on the CPU."""
    from torch.utils.data import DataLoader

    from napari_vos.training.prefetch import RecipeBatches
    from napari_vos.training.recipes import make_recipe

    recipe = make_recipe("rgmp", size=(64, 64), batch_size=1, config="light:pretrain", synthetic_fraction=1.0)
    recipe.build(torch.device("meta"))  # what build(cuda) does to the recipe: samples now go to that device
    loader = DataLoader(RecipeBatches(recipe, seed=0, start_step=0), batch_size=None, num_workers=1)
    stream = iter(loader)
    try:
        batch = next(stream)
    finally:
        stream._shutdown_workers()
    assert all(t.device.type == "cpu" for t in batch[0])


# 2 ------------------------------------------------------------------------------------------
def _park_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    spec = importlib.util.spec_from_file_location("park_under_test", ROOT / "scripts" / "gpu" / "park.py")
    park = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(park)
    checkpoints, parked = tmp_path / "checkpoints", tmp_path / ".gpu-parked"
    checkpoints.mkdir()
    entries = []
    for name in ("frtm-x", "rgmp-x"):
        (checkpoints / f"{name}.safetensors").write_bytes(name.encode())
        import hashlib

        entries.append({"name": name, "file": f"{name}.safetensors",
                        "sha256": hashlib.sha256(name.encode()).hexdigest()})
    monkeypatch.setattr(park, "CHECKPOINTS", checkpoints)
    monkeypatch.setattr(park, "PARKED", parked)
    monkeypatch.setattr(park, "_registry", lambda: entries)
    return park, checkpoints


def test_park_keep_brings_back_or_refuses_a_checkpoint_parked_earlier(tmp_path, monkeypatch):
    """`park --keep frtm` then (next session, no restore in between) `park --keep rgmp`: the RGMP
    checkpoint the run needs stays in .gpu-parked, so it does not travel, and park says it fits."""
    park, checkpoints = _park_module(tmp_path, monkeypatch)
    park.park(["frtm-x"])
    park.park(["rgmp-x"])
    assert (checkpoints / "rgmp-x.safetensors").exists(), "a --keep checkpoint must travel"
    assert not (checkpoints / "frtm-x.safetensors").exists()


# 3 ------------------------------------------------------------------------------------------
def test_s2s_init_from_a_backbone_without_conv5_is_a_clear_error_not_a_keyerror():
    """`napari-vos train s2s --init AGAME_or_COSNET_export` ends in a KeyError traceback (the CLI
    turns only ValueError/OSError/CheckpointError into one line)."""
    from napari_vos.methods.agame_network import CONFIGS as AGAME_CONFIGS, AGAMENetwork
    from napari_vos.methods.s2s_network import CONFIGS, S2SNetwork
    from napari_vos.training.s2s_recipe import load_initial_weights

    state = AGAMENetwork(AGAME_CONFIGS["light"]).state_dict()
    with pytest.raises(ValueError, match="start S2S from FRTM's checkpoint"):
        load_initial_weights(S2SNetwork(CONFIGS["light"]), state)


# 4 ------------------------------------------------------------------------------------------
def test_osvos_at_paper_run_refuses_a_light_checkpoint_instead_of_loading_a_few_biases(tmp_path, one_torch_thread):
    """OSVOS-AT's --init copies any tensor whose name and shape match: a 'paper' (VGG-16) run given
    the 'light' (ResNet-18) export loads 12 of its 44 tensors (head biases) and trains on, silently."""
    from napari_vos.methods.osvos_at_net import CONFIGS, OSVOSATNetwork
    from napari_vos.training.osvos_at_recipe import OSVOSATRecipe
    from napari_vos.weights import save_checkpoint

    light = OSVOSATRecipe(config="light", size=(64, 64))
    path = tmp_path / "light.safetensors"
    save_checkpoint(path, *light.export_tensors(OSVOSATNetwork(CONFIGS["light"])))
    from napari_vos.weights import CheckpointError

    with pytest.raises(CheckpointError, match="does not fit this configuration"):
        OSVOSATRecipe(config="paper", size=(64, 64), init_checkpoint=str(path)).build(torch.device("cpu"))


# 5 ------------------------------------------------------------------------------------------
def test_resume_from_a_truncated_last_pt_is_a_clear_error(tmp_path):
    """A cut-off last.pt (a full disk, a copy interrupted) gives torch's RuntimeError traceback from
    `napari-vos train --resume`; it should be a ValueError naming the file and what to do."""
    from napari_vos.training.loop import TrainSettings, train

    out = tmp_path / "run"
    train(_CountingRecipe(), out, TrainSettings(steps=2, save_every=1, log_every=1), log=lambda s: None)
    data = (out / "last.pt").read_bytes()
    (out / "last.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="last.pt"):
        train(_CountingRecipe(), out, TrainSettings(steps=4, save_every=1, log_every=1), resume=True,
              log=lambda s: None)


# 6 ------------------------------------------------------------------------------------------
def test_a_resumed_run_does_not_replay_the_batches_of_a_run_with_another_seed(tmp_path):
    """Without workers a resumed run draws from default_rng(seed + step): seed 0 resumed at step 2
    draws exactly what a new run with --seed 2 draws (the docs: batches are drawn from (seed, step),
    and a later session is told to take a new --seed so as not to repeat earlier batches)."""
    from napari_vos.training.loop import TrainSettings, train

    quiet = lambda s: None  # noqa: E731
    train(_CountingRecipe(), tmp_path / "a", TrainSettings(steps=2, save_every=1, seed=0), log=quiet)
    resumed = _CountingRecipe()
    train(resumed, tmp_path / "a", TrainSettings(steps=4, save_every=1, seed=0), resume=True, log=quiet)
    other = _CountingRecipe()
    train(other, tmp_path / "b", TrainSettings(steps=2, save_every=1, seed=2), log=quiet)
    assert resumed.draws != other.draws


# 7 ------------------------------------------------------------------------------------------
def test_the_logged_learning_rate_is_the_one_the_step_trained_at(tmp_path):
    """log.jsonl's "lr" is read after sched.step(): the line of the last step before the drop
    already shows the dropped rate (steps 4, --lr-drop-at 0.5: steps 1-2 train at lr, 3-4 at lr/10,
    but the log says lr/10 from step 2)."""
    from napari_vos.training.loop import TrainSettings, train

    out = tmp_path / "run"
    train(_CountingRecipe(), out, TrainSettings(steps=4, lr=1.0, lr_drop_at=0.5, save_every=4, log_every=1),
          log=lambda s: None)
    lrs = [json.loads(line)["lr"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert lrs == pytest.approx([1.0, 1.0, 0.1, 0.1])


# 8 ------------------------------------------------------------------------------------------
def test_rgmp_windows_export_records_the_crop_it_trained_on():
    """The windows stage crops squares of side size[0] (the height): --size 96x64 trains on 64x64
    windows, yet the export's train_size says 96x64. Either refuse a non-square size or record it."""
    from napari_vos.training.rgmp_recipe import RGMPRecipe

    with pytest.raises(ValueError, match="square windows: give --size NxN, not 96x64"):
        RGMPRecipe(stage="windows", size=(64, 96))


def test_a_resumed_run_continues_torchs_random_stream_instead_of_replaying_it(tmp_path):
    """torch's random state was not saved: a resume re-seeded it, so a resumed FRTM run replayed the
    first run's target-model start noise step by step."""
    from napari_vos.training.loop import TrainSettings, train

    class TorchDraws(_CountingRecipe):
        def __init__(self) -> None:
            super().__init__()
            self.torch_draws: list[float] = []

        def loss(self, model, batch, device):
            self.torch_draws.append(float(torch.rand(())))
            return (model.weight ** 2).sum(), {}

    quiet = lambda s: None  # noqa: E731
    first = TorchDraws()
    train(first, tmp_path / "a", TrainSettings(steps=2, save_every=1, seed=0), log=quiet)
    resumed = TorchDraws()
    train(resumed, tmp_path / "a", TrainSettings(steps=4, save_every=1, seed=0), resume=True, log=quiet)
    assert len(resumed.torch_draws) == 2 and resumed.torch_draws != first.torch_draws
