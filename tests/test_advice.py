"""The method tip (napari_vos.advice): many small painted objects under a method measured poor on cells."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from napari_vos import weights
from napari_vos.advice import TIP_MIN_OBJECTS, method_advice


def _discs(n: int, radius: int, size: int = 256) -> np.ndarray:
    labels = np.zeros((size, size), np.uint16)
    yy, xx = np.mgrid[:size, :size]
    per_row = int(np.ceil(np.sqrt(n)))
    step = size // per_row
    for i in range(n):
        cy, cx = step // 2 + (i // per_row) * step, step // 2 + (i % per_row) * step
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = i + 1
    return labels


def _best_on_cells() -> weights.CheckpointInfo:
    return max((c for c in weights.list_checkpoints() if "demo_cells" in c.scores),
               key=lambda c: c.scores["demo_cells"]["JF"])


def test_many_small_objects_under_frtm_get_the_checkpoint_measured_best_on_cells():
    best = _best_on_cells()
    frtm = weights.default_checkpoint("frtm").scores["demo_cells"]["JF"]
    assert best.scores["demo_cells"]["JF"] > frtm  # what the tip is about: true of the shipped registry
    advice = method_advice("frtm", None, [_discs(12, 8)])
    assert advice is not None and (advice.method, advice.checkpoint) == (best.method, best.name)
    tip = str(advice)
    assert tip == advice.text and tip.startswith("tip: 12 small objects (median 16 px across)")  # a digital disc of radius 8
    assert best.name in tip and f"{best.scores['demo_cells']['JF']:.2f}" in tip and f"against {frtm:.2f} for frtm" in tip


@pytest.mark.parametrize("labels", [
    _discs(TIP_MIN_OBJECTS - 1, 8),  # few objects
    _discs(12, 20, size=256),  # many, but large for the frame (40 px of 256)
    np.zeros((64, 64), np.uint8),  # nothing painted
])
def test_no_tip_for_few_or_large_objects(labels):
    assert method_advice("frtm", None, [labels]) is None


def test_small_is_relative_to_the_frame():
    """70 px cells in a 1024 px field (the real Usiigaci time-lapse) are small; so are 16 px ones in 256 px."""
    assert method_advice("frtm", None, [_discs(16, 35, size=1024)]) is not None
    assert method_advice("frtm", None, [_discs(16, 8, size=256)]) is not None
    assert method_advice("frtm", None, [_discs(16, 8, size=96)]) is None  # 16 px of 96: a sixth of the frame


def test_no_tip_for_the_best_checkpoint_a_file_of_ones_own_or_a_method_without_scores():
    cells = [_discs(12, 8)]
    best = _best_on_cells()
    assert method_advice(best.method, best.name, cells) is None
    assert method_advice("frtm", "/data/my-frtm.safetensors", cells) is None
    assert method_advice("flow", None, cells) is None  # no weights, no registered score
    # the same method with its default checkpoint is told about the better one
    default = weights.default_checkpoint(best.method)
    if default.name != best.name:
        assert method_advice(best.method, None, cells).checkpoint == best.name


def test_the_tip_imports_no_torch():
    code = ("import sys, numpy as np; from napari_vos.advice import method_advice; "
            "method_advice('frtm', None, [np.zeros((8, 8), np.uint8)]); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_exactly_many_objects_count_and_small_is_against_the_shorter_side():
    # pins: TIP_MIN_OBJECTS objects are enough for the tip; 16 px objects in a 96 x 1024 strip are not small
    assert method_advice("frtm", None, [_discs(TIP_MIN_OBJECTS, 8)]) is not None
    strip = np.zeros((96, 1024), np.uint16)
    yy, xx = np.mgrid[:96, :1024]
    for i in range(12):
        strip[(yy - 48) ** 2 + (xx - 40 - 80 * i) ** 2 <= 64] = i + 1
    assert method_advice("frtm", None, [strip]) is None


def test_no_tip_when_the_best_score_only_ties_the_chosen_one(monkeypatch):
    # pins: another checkpoint must score strictly higher on cells than the chosen one for a tip
    # rgmp listed first, so max() picks it and the tie reaches the score comparison
    tied = [weights.CheckpointInfo(name=n, method=m, backbone="r", file=f"{n}.st", sha256="0", default=True,
                                   scores={"demo_cells": {"JF": 0.5}}) for n, m in (("r", "rgmp"), ("f", "frtm"))]
    monkeypatch.setattr(weights, "list_checkpoints", lambda method=None: [c for c in tied if method in (None, c.method)])
    assert method_advice("frtm", None, [_discs(12, 8)]) is None
    tied[0].scores = {"demo_cells": {"JF": 0.6}}
    assert method_advice("frtm", None, [_discs(12, 8)]).checkpoint == "r"
