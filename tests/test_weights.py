"""Checkpoint registry: sha256 verification, clear errors for missing/corrupt files, safetensors round trip."""
import json
import warnings

import pytest
import torch

from napari_vos import weights


def test_save_and_load_round_trip(tmp_path):
    path = tmp_path / "w.safetensors"
    sha = weights.save_checkpoint(path, {"a": torch.ones(2, 3, dtype=torch.float16)}, {"method": "frtm"})
    state, meta, name, sha2 = weights.load_checkpoint(str(path))
    assert state["a"].dtype == torch.float32 and meta["method"] == "frtm" and sha == sha2 == weights.sha256_of(path)


@pytest.fixture
def temp_registry(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    monkeypatch.setattr(weights, "PACKAGE_DIR", pkg)
    monkeypatch.setattr(weights, "REGISTRY_FILE", pkg / "registry.json")
    monkeypatch.setenv("NAPARI_VOS_HOME", str(tmp_path / "cache"))
    return pkg


def test_missing_registered_file_says_where_it_looked(temp_registry):
    weights.register(weights.CheckpointInfo(name="x", method="frtm", backbone="resnet18", file="x.safetensors",
                                            sha256="0" * 64, default=True))
    with pytest.raises(weights.CheckpointError) as err:
        weights.resolve("x")
    msg = str(err.value)
    assert "x.safetensors" in msg and str(temp_registry) in msg and "napari-vos train frtm" in msg


def test_corrupt_file_is_detected(temp_registry):
    sha = weights.save_checkpoint(temp_registry / "y.safetensors", {"a": torch.zeros(3)}, {})
    weights.register(weights.CheckpointInfo(name="y", method="frtm", backbone="resnet18", file="y.safetensors",
                                            sha256=sha))
    assert weights.resolve("y")[0] == temp_registry / "y.safetensors"
    with open(temp_registry / "y.safetensors", "r+b") as f:
        f.seek(-2, 2)
        f.write(b"\x13\x37")
    with pytest.raises(weights.CheckpointError, match="corrupt"):
        weights.resolve("y")


def test_unknown_name_and_missing_path(temp_registry):
    with pytest.raises(weights.CheckpointError, match="unknown checkpoint"):
        weights.resolve("nope")
    with pytest.raises(weights.CheckpointError, match="does not exist"):
        weights.resolve(str(temp_registry / "gone.safetensors"))


def test_not_safetensors_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(weights.CheckpointError, match="safetensors"):
        weights.load_checkpoint(str(bad))


def test_default_flag_is_unique_per_method(temp_registry):
    for n in ("a", "b"):
        weights.register(weights.CheckpointInfo(name=n, method="frtm", backbone="r", file=f"{n}.st", sha256="0",
                                                default=True))
    entries = json.loads((temp_registry / "registry.json").read_text())
    assert [e["name"] for e in entries if e["default"]] == ["b"]
    assert weights.default_checkpoint("frtm").name == "b"


def test_a_saved_checkpoint_is_readable_by_others_as_the_umask_allows(tmp_path):
    import os
    import stat

    import torch

    from napari_vos import weights

    path = tmp_path / "c.safetensors"
    weights.save_checkpoint(path, {"a": torch.zeros(2)}, {"method": "frtm"})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~weights._umask()  # not safetensors' owner-only 0600


def test_the_same_weights_and_metadata_give_the_same_file(tmp_path):
    # safetensors' writer orders the metadata by a randomly seeded hash map; the header is sorted
    tensors = {"b.weight": torch.arange(6, dtype=torch.float16).reshape(2, 3), "a.bias": torch.ones(5)}
    meta = {key: str(i) for i, key in enumerate("method config backbone steps size lr data seed".split())}
    hashes = {weights.save_checkpoint(tmp_path / f"w{i}.safetensors", tensors, meta) for i in range(6)}
    assert len(hashes) == 1
    state, read_meta, _, _ = weights.load_checkpoint(str(tmp_path / "w0.safetensors"))
    assert read_meta == meta
    assert torch.equal(state["b.weight"], tensors["b.weight"]) and torch.equal(state["a.bias"], tensors["a.bias"])
    header_len = int.from_bytes((tmp_path / "w0.safetensors").read_bytes()[:8], "little")
    assert header_len % 8 == 0  # the tensors' data stays 8-byte aligned


def test_the_cache_folder_is_searched_and_defaults_are_per_method(temp_registry, tmp_path):
    # pins: a registered file in $NAPARI_VOS_HOME is found (and verified); a new default clears only its
    # own method's; default_checkpoint takes the flagged entry, not the last one
    cache = tmp_path / "cache"
    sha = weights.save_checkpoint(cache / "c.safetensors", {"a": torch.zeros(2)}, {})
    weights.register(weights.CheckpointInfo(name="c", method="frtm", backbone="r", file="c.safetensors", sha256=sha,
                                            default=True))
    assert weights.resolve("c") == (cache / "c.safetensors", weights.list_checkpoints("frtm")[0])
    weights.register(weights.CheckpointInfo(name="g", method="rgmp", backbone="r", file="g.st", sha256="0",
                                            default=True))
    weights.register(weights.CheckpointInfo(name="later", method="frtm", backbone="r", file="l.st", sha256="0"))
    assert weights.default_checkpoint("frtm").name == "c" and weights.default_checkpoint("rgmp").name == "g"
    assert [c.name for c in weights.list_checkpoints() if c.default] == ["c", "g"]


@pytest.mark.real_working_size
def test_each_shipped_checkpoint_records_the_preprocessing_the_engine_gives_it():
    # a change to the normalisation or a method's working size shows here before it silently
    # shifts the shipped checkpoints' inputs away from what they were trained and scored on
    from napari_vos.data.frames import PERCENTILES
    from napari_vos.nn.backbones import IMAGENET_MEAN

    for entry in weights.list_checkpoints():
        assert entry.preprocessing == weights.preprocessing(entry.method), entry.name
        assert entry.preprocessing["percentiles"] == list(PERCENTILES)
        assert entry.preprocessing["mean"] == list(IMAGENET_MEAN)
    assert weights.preprocessing("frtm")["min_side"] == 480 and weights.preprocessing("rgmp")["min_object_side"] == 64


@pytest.mark.real_working_size
def test_a_registered_checkpoint_gets_the_preprocessing_of_this_version(temp_registry):
    weights.register(weights.CheckpointInfo(name="z", method="rgmp", backbone="resnet18", file="z.safetensors",
                                            sha256="0" * 64))
    (entry,) = weights.list_checkpoints("rgmp")
    assert entry.preprocessing == weights.preprocessing("rgmp") and entry.preprocessing["min_object_side"] == 64


@pytest.mark.real_working_size
def test_an_export_carries_its_preprocessing_and_another_one_is_warned_of(tmp_path):
    from napari_vos.methods import registry
    from napari_vos.methods.frtm import CONFIGS, FRTMNetwork
    from napari_vos.training.frtm_recipe import FRTMRecipe

    tensors, meta = FRTMRecipe().export_tensors(FRTMNetwork(CONFIGS["fast"]))
    assert json.loads(meta["preprocessing"]) == weights.preprocessing("frtm")
    same, other = tmp_path / "same.safetensors", tmp_path / "other.safetensors"
    weights.save_checkpoint(same, tensors, meta)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same preprocessing: no warning
        assert registry.create("frtm", checkpoint=str(same)).checkpoint_notes == []
    recorded = {**weights.preprocessing("frtm"), "percentiles": [0.5, 99.5]}
    weights.save_checkpoint(other, tensors, {**meta, "preprocessing": json.dumps(recorded)})
    # the method keeps the note for its Session, which warns of it and shows it in the widget
    notes = registry.create("frtm", checkpoint=str(other)).checkpoint_notes
    assert len(notes) == 1 and "percentiles: [0.5, 99.5] there, [1.0, 99.8] here" in notes[0]
    with pytest.warns(UserWarning, match=r"percentiles: \[0.5, 99.5\] there"):  # the loader alone warns
        ckpt.load_network(str(other), "frtm", "FRTM", _frtm_network)


def test_a_registered_name_is_found_whatever_its_case_and_a_wrong_method_says_what_to_do():
    from napari_vos.methods import registry

    path, info = weights.resolve("RGMP-resnet18-CELLS")
    assert info.name == "rgmp-resnet18-cells" and path.name == "rgmp-resnet18-cells.safetensors"
    with pytest.raises(weights.CheckpointError, match="is for method 'rgmp', not 'frtm': choose method 'rgmp' for "
                                                      "it, or leave the checkpoint empty for frtm's shipped one"):
        registry.create("frtm", checkpoint="rgmp-resnet18-cells")
    with pytest.raises(weights.CheckpointError, match="or train one for s2s .`napari-vos train s2s`. and give its "
                                                      "file: s2s ships none"):
        registry.create("s2s", checkpoint="rgmp-resnet18-cells")


def test_a_method_without_a_registered_checkpoint_says_where_each_front_end_takes_a_file(temp_registry):
    with pytest.raises(weights.CheckpointError) as err:
        weights.default_checkpoint("s2s")
    assert "Method options -> checkpoint" in str(err.value) and "--checkpoint PATH" in str(err.value)


def test_a_session_whose_registered_checkpoint_file_is_missing_fails_when_made(temp_registry):
    """The Session names the missing file at once (by default or by name, whatever the case), before
    a run starts, without reading any file; an address to download from lets it through."""
    import numpy as np

    from napari_vos import Session

    weights.register(weights.CheckpointInfo(name="gone", method="frtm", backbone="resnet18", file="gone.safetensors",
                                            sha256="0" * 64, default=True))
    video = np.zeros((3, 16, 16), np.uint8)
    for checkpoint in (None, "gone", "GONE"):
        with pytest.raises(weights.CheckpointError, match=r"'gone' \(file gone.safetensors\) is missing"):
            Session(video, method="frtm", checkpoint=checkpoint)
    weights.register(weights.CheckpointInfo(name="gone", method="frtm", backbone="resnet18", file="gone.safetensors",
                                            sha256="0" * 64, default=True, url="https://example.org/gone.safetensors"))
    Session(video, method="frtm")  # downloaded when the method is built
    sha = weights.save_checkpoint(weights.cache_dir() / "here.safetensors", {"a": torch.zeros(1)}, {})
    weights.register(weights.CheckpointInfo(name="here", method="frtm", backbone="resnet18", file="here.safetensors",
                                            sha256=sha))
    Session(video, method="frtm", checkpoint="here")


def test_a_folder_given_as_checkpoint_is_named_when_the_session_is_made(tmp_path):
    import numpy as np

    from napari_vos import Session

    with pytest.raises(weights.CheckpointError, match="is a folder; give a .safetensors file inside it"):
        Session(np.zeros((3, 16, 16), np.uint8), method="frtm", checkpoint=str(tmp_path))


def test_a_pasted_checkpoint_path_loses_its_quotes_and_file_address():
    pytest.importorskip("qtpy")
    from napari_vos._widgets.propagate_widget import pasted_path

    assert pasted_path(' "/data/my rgmp.safetensors" ') == "/data/my rgmp.safetensors"
    assert pasted_path("'/data/x.safetensors'") == "/data/x.safetensors"
    assert pasted_path("file:///data/my%20rgmp.safetensors") == "/data/my rgmp.safetensors"
    assert pasted_path("file:///C:/Users/me/x.safetensors") == "C:/Users/me/x.safetensors"
    assert pasted_path("rgmp-resnet18-cells") == "rgmp-resnet18-cells"


# -- session-32 audit of checkpoint handling: each error names the file and the problem -----------------
from pathlib import Path  # noqa: E402

from safetensors.torch import save_file  # noqa: E402
from torch import nn  # noqa: E402

import numpy as np  # noqa: E402

from napari_vos.methods import checkpoint as ckpt  # noqa: E402
from napari_vos.methods.frtm import _network as _frtm_network  # noqa: E402
from napari_vos.weights import CheckpointError  # noqa: E402


def _tiny(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> str:
    save_file(tensors, str(path), metadata=meta)
    return str(path)


# 1 -- a tensor of another shape: CheckpointError naming the file, not torch's RuntimeError (CLI exit 1 + traceback)
def test_shape_mismatch_is_a_checkpoint_error(tmp_path):
    f = _tiny(tmp_path / "wrong_shape.safetensors", {"weight": torch.zeros(3, 2), "bias": torch.zeros(3)},
              {"method": "frtm"})
    with pytest.raises(CheckpointError, match="wrong_shape.safetensors"):
        ckpt.load_network(f, "frtm", "FRTM", lambda meta: nn.Linear(2, 2), accept_unnamed=True)


# 2 -- a stored configuration this version cannot read: CheckpointError naming the file
@pytest.mark.parametrize("config", ['{"backbone": ', '{"backbone": "resnet18", "added_in_a_later_version": 1}',
                                   '{"backbone": "resnet999"}'])
def test_unreadable_stored_config_is_a_checkpoint_error(tmp_path, config):
    from napari_vos.methods import frtm

    f = _tiny(tmp_path / "odd_config.safetensors", {"x": torch.zeros(1)}, {"method": "frtm", "frtm_config": config})
    with pytest.raises(CheckpointError, match="odd_config.safetensors"):
        ckpt.load_network(f, "frtm", "FRTM", frtm._network, accept_unnamed=True)


def test_unknown_config_name_without_stored_config_is_a_checkpoint_error(tmp_path):
    from napari_vos.methods import rgmp

    f = _tiny(tmp_path / "cfg_name.safetensors", {"x": torch.zeros(1)}, {"method": "rgmp", "config": "cells"})
    with pytest.raises(CheckpointError, match="cfg_name.safetensors"):
        ckpt.load_network(f, "rgmp", "RGMP", rgmp._network, accept_unnamed=True)


# 3 -- a preprocessing record that is not JSON: not a bare JSONDecodeError after the weights were loaded
def test_bad_preprocessing_metadata_does_not_crash_unnamed(tmp_path):
    f = _tiny(tmp_path / "bad_pre.safetensors", {"weight": torch.zeros(2, 2), "bias": torch.zeros(2)},
              {"method": "frtm", "preprocessing": "not json"})
    with pytest.raises(CheckpointError, match="bad_pre.safetensors: its preprocessing metadata is not JSON"):
        ckpt.load_network(f, "frtm", "FRTM", lambda meta: nn.Linear(2, 2), accept_unnamed=True)


# 4 -- a download that fails (offline): CheckpointError naming the checkpoint; `napari-vos weights` lists the rest
@pytest.fixture
def url_registry(tmp_path, monkeypatch):
    """A registry of two cosnet entries: one to download (its file nowhere), one present."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    shipped = next(e for e in json.loads(weights.REGISTRY_FILE.read_text()) if e["method"] == "cosnet")
    to_fetch = dict(shipped, name="cosnet-remote", file="cosnet-remote.safetensors", default=False,
                    url="https://example.invalid/cosnet-remote.safetensors")
    (pkg / "registry.json").write_text(json.dumps([to_fetch, shipped]))
    (pkg / shipped["file"]).symlink_to(weights.PACKAGE_DIR / shipped["file"])
    monkeypatch.setattr(weights, "PACKAGE_DIR", pkg)
    monkeypatch.setattr(weights, "REGISTRY_FILE", pkg / "registry.json")
    monkeypatch.setenv("NAPARI_VOS_HOME", str(tmp_path / "home"))
    import pooch
    import requests

    def offline(*args, **kwargs):
        raise requests.ConnectionError("Failed to resolve 'example.invalid'")

    monkeypatch.setattr(pooch, "retrieve", offline)
    return to_fetch, shipped


def test_failed_download_is_a_checkpoint_error(url_registry):
    with pytest.raises(CheckpointError, match="cosnet-remote"):
        weights.resolve("cosnet-remote")


def test_weights_command_lists_every_entry_when_offline(url_registry, capsys):
    from napari_vos import cli

    rc = cli.main(["weights"])
    out = capsys.readouterr().out
    assert "cosnet-remote" in out and url_registry[1]["name"] in out  # the listing goes on past the failure
    assert "not downloaded yet" in out
    assert rc == 0  # listing downloads nothing; a file fetched on first use is no error


# 5 -- checkpoint=pathlib.Path of a missing file: CheckpointError, not AttributeError
def test_missing_checkpoint_given_as_a_path_object():
    with pytest.raises(CheckpointError, match="does not exist"):
        weights.check_present(Path("/no/such/dir/model.safetensors"), "frtm")


# 6 -- $NAPARI_VOS_HOME with ~ (pooch expands it, the lookup did not) and set but empty
def test_cache_dir_expands_user_and_ignores_empty(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NAPARI_VOS_HOME", "~/vos")
    assert weights.cache_dir() == tmp_path / "vos"
    monkeypatch.setenv("NAPARI_VOS_HOME", "")
    assert weights.cache_dir() == tmp_path / ".cache" / "napari-vos"


# 7 -- the preprocessing-difference warning reaches session.notes (the widget shows notes, not warnings)
def test_preprocessing_difference_is_a_session_note(tmp_path, one_torch_thread):
    from safetensors import safe_open

    from napari_vos.session import Session

    src = weights.PACKAGE_DIR / "rgmp-resnet18-light.safetensors"
    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata())
        state = {k: f.get_tensor(k) for k in f.keys()}
    meta["preprocessing"] = json.dumps({"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]})
    path = tmp_path / "other_pre.safetensors"
    save_file(state, str(path), metadata=meta)
    video = np.full((2, 64, 64), 30, np.uint8)
    video[:, 16:40, 16:40] = 200
    labels = np.zeros((64, 64), np.uint8)
    labels[16:40, 16:40] = 1
    s = Session(video, "rgmp", "cpu", checkpoint=str(path), max_side=64, min_object_side=None)
    s.annotate(0, labels)
    with pytest.warns(UserWarning):
        s.run("forward")
    assert any("prepared otherwise" in n for n in s.notes), s.notes


# 8 -- non-finite weights in an unregistered file: refused when loaded, not an empty segmentation
def test_non_finite_weights_are_refused(tmp_path):
    f = _tiny(tmp_path / "nan.safetensors", {"weight": torch.full((2, 2), float("nan")), "bias": torch.zeros(2)},
              {"method": "frtm"})
    with pytest.raises(CheckpointError, match="nan.safetensors"):
        ckpt.load_network(f, "frtm", "FRTM", lambda meta: nn.Linear(2, 2), accept_unnamed=True)


# 9 -- ImageNet weights offline: the message says what was being downloaded
def test_imagenet_download_failure_names_imagenet(monkeypatch):
    import types
    import urllib.error

    from napari_vos.nn import imagenet

    class W:
        def get_state_dict(self, progress=True):
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    fake = types.SimpleNamespace(ResNet18_Weights=types.SimpleNamespace(IMAGENET1K_V1=W()))
    monkeypatch.setattr(imagenet, "torchvision_models", lambda: fake)
    with pytest.raises(OSError, match="ImageNet weights of resnet18 could not be fetched"):
        imagenet.resnet_state_dict("resnet18")


def test_a_torch_save_file_is_named_as_such(tmp_path):
    """A .pt state dict was reported as a damaged safetensors ("header too large") only."""
    path = tmp_path / "model.pt"
    torch.save({"weight": torch.zeros(2, 2)}, path)
    with pytest.raises(CheckpointError, match="it is a PyTorch file written by torch.save, not safetensors"):
        weights.load_checkpoint(str(path))
