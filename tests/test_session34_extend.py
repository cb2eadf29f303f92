"""Extending napari-vos as a new contributor would (session 34 audit): a small method registered
by monkeypatching the registry (as tests/_zero_shot_method.py does) runs with MethodBase's own
constructor, its options are checked, a wrong probability shape is named, the CLI and the protocol
classes follow the registry."""
from __future__ import annotations

import argparse
import sys
import types
import warnings
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pytest
import torch

from napari_vos.methods import registry
from napari_vos.methods.base import MethodBase, Step

if TYPE_CHECKING:  # a hint-only import, the style the project itself uses ("napari.Viewer")
    from napari_vos.session import Session

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class CopyPrevious(MethodBase):
    """The smallest method the documented protocol allows: MethodBase's own constructor, the
    previous frame's aggregate as this frame's probabilities."""

    needs_checkpoint: ClassVar[bool] = False

    def start(self, image: torch.Tensor, objects: torch.Tensor) -> None:
        self.prev = objects.float().clone()

    def step(self, image: torch.Tensor) -> Step:
        return Step(self.prev.clone())

    def update(self, probs: torch.Tensor) -> None:
        self.prev = probs.clone()


class WrongChannels(CopyPrevious):
    """A method bug: one probability channel more or fewer than the objects it was started with."""

    def __init__(self, device: Any = "cpu", seed: int = 0, extra: int = 1, fewer: bool = False) -> None:
        super().__init__(device)
        self.extra = -1 if fewer else extra

    def step(self, image: torch.Tensor) -> Step:
        k, h, w = self.prev.shape
        probs = torch.full((k + self.extra, h, w), 0.5)
        probs[-1] = 0.99  # the extra channel (or, with fewer, the last kept one) wins everywhere
        return Step(probs)


class Diverging(CopyPrevious):
    """Test-time learning gone wrong: NaN probabilities from the second frame it segments on."""

    def __init__(self, device: Any = "cpu", seed: int = 0) -> None:
        super().__init__(device)
        self.steps = 0

    def step(self, image: torch.Tensor) -> Step:
        self.steps += 1
        probs = self.prev.clone()
        if self.steps >= 2:
            probs[:] = float("nan")
        return Step(probs)


class HintOnly(CopyPrevious):
    """Its __init__ names a type imported only for type checkers."""

    def __init__(self, device: Any = "cpu", seed: int = 0, sharpness: float = 1.0,
                 owner: Session | None = None) -> None:
        super().__init__(device)


def _module(**classes: type) -> str:
    name = "_extend_audit_methods"
    mod = types.ModuleType(name)
    mod.__spec__ = None
    for k, v in classes.items():
        setattr(mod, k, v)
    sys.modules[name] = mod
    return name


def _video() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    frames = (rng.random((4, 32, 32)) * 255).astype(np.uint8)
    labels = np.zeros((32, 32), np.uint8)
    labels[4:12, 4:12] = 1
    labels[18:26, 18:26] = 2
    return frames, labels


# 1 -------------------------------------------------------------------------------------------
def test_a_methodbase_subclass_without_its_own_init_runs(monkeypatch):
    """Finding 1: the engine always hands `seed=` to the method; MethodBase.__init__ does not take
    it, so the smallest documented method fails with 'unknown option(s) seed; copy takes ' at the
    first propagate (the user passed no option at all)."""
    from napari_vos import propagate

    monkeypatch.setitem(registry.METHODS, "copy", f"{_module(CopyPrevious=CopyPrevious)}:CopyPrevious")
    frames, labels = _video()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = propagate(frames, labels, method="copy", device="cpu", direction="forward")
    assert (result.labels[-1] == labels).all()


# 2 -------------------------------------------------------------------------------------------
def test_available_methods_leaves_out_a_method_whose_package_is_not_installed(monkeypatch):
    """Finding 2: a method registered in a package that is not installed ('importable' is the
    documented filter) makes available_methods() raise ModuleNotFoundError: the widget cannot open,
    and conftest's autouse fixture fails every test."""
    monkeypatch.setitem(registry.METHODS, "extra", "napari_vos_not_installed.methods.extra:Extra")
    names = registry.available_methods(include_untrained=True)
    assert "extra" not in names and "flow" in names


# 3 -------------------------------------------------------------------------------------------
def test_option_types_are_checked_even_when_one_annotation_names_a_hint_only_import(monkeypatch):
    """Finding 3: one unresolvable annotation (a TYPE_CHECKING import) makes typing.get_type_hints
    fail for the whole __init__, and every option of the method goes unchecked."""
    from napari_vos import Session

    monkeypatch.setitem(registry.METHODS, "hint_only", f"{_module(HintOnly=HintOnly)}:HintOnly")
    frames, _ = _video()
    with pytest.raises(ValueError, match="sharpness"):
        Session(frames, method="hint_only", device="cpu", sharpness="abc")
    Session(frames, method="hint_only", device="cpu", sharpness=2.0)  # a good value, and the unresolvable one unchecked


# 4 -------------------------------------------------------------------------------------------
def test_the_engine_refuses_probabilities_for_another_number_of_objects(monkeypatch):
    """Finding 4: Step.probs with K+1 channels ends in numpy's 'IndexError: index 3 is out of bounds'
    in Session._to_labels; with K-1 channels an object is silently dropped. The contract
    ((K, H, W) at the working size) is not checked."""
    from napari_vos import propagate

    monkeypatch.setitem(registry.METHODS, "wrong_k", f"{_module(WrongChannels=WrongChannels)}:WrongChannels")
    frames, labels = _video()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for options in ({"extra": 1}, {"fewer": True}):
            with pytest.raises(RuntimeError, match=r"returned probabilities of shape \(\d, 32, 32\) for 2 object"):
                propagate(frames, labels, method="wrong_k", device="cpu", direction="forward", **options)


def test_probabilities_that_become_nan_stop_the_run_saying_so_with_the_frames_before_kept(monkeypatch):
    """NaN probabilities (RGMP fine-tuning at online_lr=1e9) made empty labels on every later frame, the run
    reported complete with no word."""
    from napari_vos import Session
    from napari_vos.session import MethodDiverged

    monkeypatch.setitem(registry.METHODS, "diverging", f"{_module(Diverging=Diverging)}:Diverging")
    frames, labels = _video()
    session = Session(frames, method="diverging", device="cpu")
    session.annotate(0, labels)
    with pytest.raises(MethodDiverged, match="'diverging' gave probabilities that are not finite .* on frame 2"):
        session.run("forward")
    result = session.result()
    assert not result.complete and result.frames_segmented == [0, 1]
    np.testing.assert_array_equal(result.labels[1], labels)


# 5 -------------------------------------------------------------------------------------------
def test_cli_zero_shot_follows_the_registry_trait_not_a_method_name(monkeypatch):
    """Finding 5: `--zero-shot` is hard-coded to rvos (cli_options.zero_shot_option) although
    registry.TRAITS carries `zero_shot_option` for exactly this."""
    from napari_vos import cli_options

    monkeypatch.setitem(registry.METHODS, "rvos2", registry.METHODS["rvos"])
    monkeypatch.setitem(registry.TRAITS, "rvos2", registry.TRAITS["rvos"])
    assert cli_options.zero_shot_option(argparse.Namespace(zero_shot=True, method="rvos2")) == {"zero_shot": True}


# 6 -------------------------------------------------------------------------------------------
def test_cli_method_help_names_every_registered_method(monkeypatch):
    """Finding 6: METHOD_HELP (propagate, demo, bench, eval, score) and train's positional help are
    fixed strings; a registered method is never named there."""
    from napari_vos import cli

    monkeypatch.setitem(registry.METHODS, "copy", f"{_module(CopyPrevious=CopyPrevious)}:CopyPrevious")
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command in ("propagate", "demo", "bench", "eval"):
        method = next(a for a in sub.choices[command]._actions if a.dest == "method")
        assert "copy" in (method.help or ""), command


# 7 -------------------------------------------------------------------------------------------
def test_the_protocol_class_lists_what_the_docs_and_the_engine_use():
    """Finding 7: docs/architecture.md's protocol lists chosen_options (the engine reads it into
    the provenance); methods/base.py's Method protocol has no such member. The training Recipe
    protocol likewise lacks export_tensors, which `train --export` calls on every save."""
    from napari_vos.methods.base import Method
    from napari_vos.training.loop import Recipe

    assert hasattr(Method, "chosen_options")
    assert hasattr(Recipe, "export_tensors")


# 8 -------------------------------------------------------------------------------------------
def test_preprocessing_record_of_a_protocol_only_method(monkeypatch):
    """Finding 8 (low): weights.preprocessing reads cls.min_working_side / cls.min_object_side
    directly; a class that implements the documented protocol without MethodBase (the engine reads
    these with getattr defaults) gets an AttributeError when its checkpoint is exported or registered."""
    from napari_vos import weights

    class Plain:
        needs_checkpoint = True

        def __init__(self, device: Any = "cpu", seed: int = 0) -> None: ...

    monkeypatch.setitem(registry.METHODS, "plain", f"{_module(Plain=Plain)}:Plain")
    record = weights.preprocessing("plain")
    assert record["min_side"] is None and record["min_object_side"] is None


def test_a_method_with_no_options_says_so_for_an_unknown_one(monkeypatch):
    class NoOptions:
        needs_checkpoint = False

        def __init__(self, device: Any = "cpu") -> None: ...

    monkeypatch.setitem(registry.METHODS, "bare", f"{_module(NoOptions=NoOptions)}:NoOptions")
    with pytest.raises(ValueError, match=r"unknown option\(s\) sharpnes; bare takes no options$"):
        registry.check_options("bare", {"sharpnes": 1})


def test_the_training_recipes_are_a_table_with_the_clip_option_on_the_recipe_class():
    from napari_vos.training.recipes import RECIPES, TRAINABLE, make_recipe, recipe_class

    assert TRAINABLE == tuple(RECIPES)
    assert recipe_class("agame").clip_frames_field == "n_frames" and recipe_class("frtm").clip_frames_field is None
    assert make_recipe("agame", clip_frames=5).n_frames == 5
    with pytest.raises(ValueError, match="--clip-frames applies to agame and rvos"):
        make_recipe("frtm", clip_frames=5)
    with pytest.raises(ValueError, match="no training recipe for method 'flow'"):
        make_recipe("flow")
    assert make_recipe("frtm", train_backbone_from="none").train_backbone_from is None
    with pytest.raises(ValueError, match="end to end"):
        make_recipe("s2s", train_backbone_from="conv4")
