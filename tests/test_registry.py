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
