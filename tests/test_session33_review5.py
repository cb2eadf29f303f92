"""A fifth review of session 33's changes: a sequence whose object shows only on its last frames still
gives clips to the recipes that pick a reference anywhere or play clips backward, so it is kept."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from _layers import davis_sequence

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _late(t, shape):
    """The object is on the last two of 12 frames only."""
    labels = np.zeros(shape, np.uint8)
    if t >= 10:
        labels[20:50, 30:70] = 1
    return labels


@pytest.mark.parametrize("method,extra", [("frtm", {}), ("osvos_at", {}), ("cosnet", {}), ("agame", {}),
                                          ("rgmp", {"config": "light:video"})])
def test_sequence_with_object_only_on_last_frames_is_kept_when_the_sampler_can_start_there(tmp_path, method, extra):
    from napari_vos.training.recipes import make_recipe

    davis_sequence(tmp_path, "late", _late)
    size = (64, 64) if method == "rgmp" else (64, 96)
    recipe = make_recipe(method, size=size, batch_size=2, synthetic_fraction=0.0, real_dirs=[str(tmp_path)], **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recipe.batch(np.random.default_rng(0))  # f38b2ef: ValueError, no usable training sequence
    assert recipe._bank.names == ["late"]
