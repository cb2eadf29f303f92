"""Each method's `map_names` is the set of intermediate maps a run with maps=True returns (the
method pages and the widget's map layers are named after them)."""
import numpy as np
import pytest

from conftest import moving_square_video
from napari_vos import propagate
from napari_vos.methods.registry import available_methods, method_class, needs_annotation

#: the shortest online learning the methods that fine-tune take, so the check stays fast
QUICK = {"osvos_at": {"finetune_iterations": 2}}


@pytest.mark.parametrize("name", available_methods())
def test_a_run_returns_the_maps_its_method_declares(name, one_torch_thread):
    frames, truth = moving_square_video(n_frames=3, size=(48, 64), step=4)
    labels = truth[0] if needs_annotation(name) else None
    result = propagate(frames, labels, method=name, device="cpu", maps=True, precision="fp32",
                       **QUICK.get(name, {}))
    declared = method_class(name).map_names
    assert declared and set(result.maps) == set(declared)
    assert all(np.isfinite(result.maps[k]).all() for k in declared)
