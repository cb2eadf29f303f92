"""Session 37 review of f78e8fa (training resume), by "review2": reproductions of its defects.

Tiny: a two-weight model or 64x64 synthetic data, one CPU thread, a few steps each.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from _tiny_recipe import TinyRecipe as _Tiny
from napari_vos.cli import main
from napari_vos.training.loop import TrainSettings, train


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _davis(root: Path, lengths: list[int]) -> Path:
    from napari_vos.data.synthetic import write_synthetic_set

    for i, n in enumerate(lengths):
        part = root / f"part{i}"
        write_synthetic_set(part, 1, seed=10 + i, n_frames=n, size=(80, 96), n_objects=1)
        for kind in ("JPEGImages", "Annotations"):
            for seq in (part / kind).iterdir():
                shutil.copytree(seq, root / "set" / kind / f"len{n}-{i}")
        shutil.rmtree(part)
    return root / "set"


# -- 1. a finished run's `--resume --export` (nothing to train) is refused without --data -----------
# loop.py's own comment calls `--resume --export F` "the way to get a finished run's weights"; the new
# data check runs before the "nothing to train" return, and says the run "would go on with synthetic
# videos alone", though it would train no step at all.

def test_a_finished_run_resumed_only_to_export_needs_no_data(tmp_path):
    train(_Tiny(real_dirs=["/data/davis"]), tmp_path, TrainSettings(steps=2), log=lambda s: None)
    exported = []
    train(_Tiny(), tmp_path, TrainSettings(steps=2), resume=True, log=lambda s: None,
          on_save=lambda model, step: exported.append(step))
    assert exported == [2]


def test_the_cli_exports_a_finished_run_without_data(tmp_path, capsys):
    data = _davis(tmp_path, [16])
    common = ["train", "frtm", "--size", "64x64", "--batch-size", "1", "--threads", "1", "--out", str(tmp_path / "r"),
              "--steps", "1"]
    assert main([*common, "--data", str(data)]) == 0
    capsys.readouterr()
    assert main([*common, "--resume", "--export", str(tmp_path / "w.safetensors")]) == 0, capsys.readouterr().err
    from safetensors import safe_open

    with safe_open(str(tmp_path / "w.safetensors"), framework="pt") as f:
        meta = f.metadata()
    # the weights were trained on --data set, half synthetic: not "synthetic only" (this call's options)
    assert (meta["train_data"], meta["train_synthetic_fraction"]) == ("set", "0.5"), meta


# -- 2. a folder inside another --data folder is read twice, with no warning -------------------------
# `distinct_folders` catches the same folder named twice, but a folder of datasets (a "collection",
# such as shared/data/videos) reads every dataset below it: naming it and one of its datasets
# (`--data videos videos/davis2016-train`) still loads that dataset's sequences twice, silently.

def test_a_folder_inside_another_data_folder_is_read_once(tmp_path):
    from napari_vos.data.synthetic import write_synthetic_set
    from napari_vos.training.clips import SequenceBank

    write_synthetic_set(tmp_path / "videos" / "davis", 2, seed=1, n_frames=4, size=(40, 48), n_objects=1)
    for folders in ([tmp_path / "videos", tmp_path / "videos" / "davis"],
                    [tmp_path / "videos" / "davis", tmp_path / "videos"]):
        with pytest.warns(UserWarning, match="loaded once"):
            bank = SequenceBank(folders, (32, 32), exclude=())
        assert len(bank) == 2, bank.names


def test_a_dataset_folder_beside_another_is_not_taken_for_a_repeat(tmp_path):
    import warnings

    from napari_vos.data.synthetic import write_synthetic_set
    from napari_vos.training.clips import SequenceBank

    write_synthetic_set(tmp_path / "a", 1, seed=1, n_frames=4, size=(40, 48), n_objects=1)
    write_synthetic_set(tmp_path / "a" / "extra", 1, seed=2, n_frames=4, size=(40, 48), n_objects=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a DAVIS folder does not read a dataset hidden inside it
        bank = SequenceBank([tmp_path / "a", tmp_path / "a" / "extra"], (32, 32), exclude=())
    assert len(bank) == 2, bank.names


# -- 3. a last.pt of an older version: a resume without --init still unfreezes S2S's batch norm, silently
# Such a file keeps no regime, so the run is built from this call's options. With --init the log says
# "the run trains as it was saved (a last.pt of an older version keeps no record of it ...)", which
# contradicts itself; without --init nothing is said at all, while S2S's and RVOS's batch norm starts
# training (finding 1 of the audit, still there for every last.pt written before f78e8fa).

def test_an_older_last_pt_without_regime_says_the_regime_comes_from_this_call(tmp_path):
    from napari_vos.training.recipes import make_recipe

    def recipe(init=None):
        return make_recipe("s2s", size=(64, 64), batch_size=1, real_dirs=[], synthetic_fraction=1.0,
                           init_checkpoint=init)

    train(recipe("frtm-resnet18-vos"), tmp_path, TrainSettings(steps=1, log_every=1), log=lambda s: None)
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    del state["regime"], state["drop_step"]  # as written before f78e8fa
    torch.save(state, tmp_path / "last.pt")
    said: list[str] = []
    train(recipe(), tmp_path, TrainSettings(steps=2, log_every=1), resume=True, log=said.append)
    assert any("older" in line and "--init" in line for line in said), said
    said.clear()
    train(recipe("frtm-resnet18-vos"), tmp_path, TrainSettings(steps=3, log_every=1), resume=True, log=said.append)
    assert not any("trains as it was saved (a last.pt of an older version" in line for line in said), said
