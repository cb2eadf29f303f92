"""The registry's traits table (what the widget reads without importing torch) matches the classes."""
import pytest

from napari_vos.methods import registry


@pytest.mark.parametrize("name", list(registry.METHODS))
def test_traits_table_matches_the_method_classes(name):
    flags, cls = registry.traits(name), registry.method_class(name)
    assert flags.needs_checkpoint == bool(getattr(cls, "needs_checkpoint", False))
    assert flags.uses_checkpoint == hasattr(cls, "build")
    assert flags.accepts_annotation == bool(getattr(cls, "accepts_annotation", True))
    assert flags.reports_finetune == bool(getattr(cls, "reports_finetune", False))
    for options in ({}, {"zero_shot": True}, {"zero_shot": False}):
        assert registry.needs_annotation(name, **options) == bool(cls.annotation_needed(options)), options


def test_a_method_registered_without_traits_is_read_off_its_class(monkeypatch):
    monkeypatch.setitem(registry.METHODS, "flow_again", registry.METHODS["flow"])
    assert "flow_again" not in registry.TRAITS
    flags = registry.traits("flow_again")
    assert not flags.needs_checkpoint and not flags.uses_checkpoint and flags.accepts_annotation
    assert registry.needs_annotation("flow_again")
    with pytest.raises(ValueError, match="unknown method"):
        registry.traits("nope")


@pytest.mark.parametrize("name", list(registry.METHODS))
def test_the_widget_example_options_are_real_options_of_the_method(name):
    """Every method has an example for the widget's "more options" field; it parses, and the method
    accepts it: built with it where weights are at hand, else its names are __init__ parameters."""
    import inspect

    from napari_vos._widgets.options import parse_options

    options = parse_options(registry.example_options(name))
    assert options, name
    if name in registry.available_methods():
        method = registry.create(name, device="cpu", **options)
        assert method is not None
    else:
        params = inspect.signature(registry.method_class(name).__init__).parameters
        assert set(options) <= set(params), (name, options)
    with pytest.raises((ValueError, TypeError)):
        registry.create(name, device="cpu", no_such_option=1)


def test_a_mistyped_option_is_an_error_naming_it_and_the_valid_ones():
    import numpy as np

    from napari_vos import Session

    with pytest.raises(ValueError, match=r"unknown option\(s\) flow_sid \(did you mean flow_side\?\); flow takes "
                                         r"flow, flow_side, num_warp, seed$"):
        registry.create("flow", device="cpu", flow_sid=128)
    with pytest.raises(ValueError, match=r"unknown option\(s\) update_intervall; flow takes "):
        Session(np.zeros((3, 16, 16), np.uint8), method="flow", device="cpu", update_intervall=4)
    # a typo of the session's own keyword is named as such, and the session's keywords are listed
    with pytest.raises(ValueError, match=r"max_sides \(did you mean max_side\?\); flow takes .*; the session's "
                                         r"own: .*max_side, min_side"):
        Session(np.zeros((3, 16, 16), np.uint8), method="flow", device="cpu", max_sides=128)
    assert "update_interval" in registry.option_names("frtm") and "n_cg" in registry.option_names("frtm")


@pytest.mark.parametrize("name", list(registry.METHODS))
def test_no_method_option_is_named_like_an_engine_parameter(name):
    """Session takes its own keywords (channels, max_side, ...) before the method options, so a method
    option of the same name could never be set (FRTM's target-model width was once called channels)."""
    import inspect

    from napari_vos import Session

    # checkpoint and seed are the engine's and handed on to the method as they are
    engine = set(inspect.signature(Session.__init__).parameters) - {"self", "method_options", "checkpoint", "seed"}
    assert not registry.option_names(name) & engine, name


def test_command_line_options_take_json_and_python_spellings():
    from napari_vos.evaluation.cli_measure import parse_option_pairs

    parsed = parse_option_pairs(["online_finetune=False", "crf=true", "x=None", "flow=ilk", 'f2="tvl1"',
                                 "scales=[1.0]", "finetune_lr=3e-4", "window=objects", "decode-margin=32"])
    assert parsed == {"online_finetune": False, "crf": True, "x": None, "flow": "ilk", "f2": "tvl1",
                      "scales": [1.0], "finetune_lr": 3e-4, "window": "objects", "decode_margin": 32}
    with pytest.raises(ValueError, match="key=value"):
        parse_option_pairs(["online_finetune"])
