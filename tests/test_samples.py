"""The built-in sample data: fixed recipes, first-frame-only labels, manifest entries that resolve."""
from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pytest

from napari_vos.data import samples


def test_natural_sample_recipe_and_truth():
    video = samples.natural_sample()
    assert video.frames.shape == (50, 256, 384, 3) and video.frames.dtype == np.uint8
    assert video.labels.shape == (50, 256, 384) and video.labels.dtype == np.int32
    assert sorted(np.unique(video.labels[0])) == [0, 1, 2]
    assert samples.natural_sample() is video  # cached
    with pytest.raises(ValueError):  # read-only: no caller can change what the demo compares against
        video.labels[0, 0, 0] = 7


def test_cell_sample_is_16_bit_phase_contrast_with_many_cells():
    video = samples.cell_sample()
    assert video.frames.shape == (40, 256, 256) and video.frames.dtype == np.uint16
    assert video.frames.max() > 255  # uses the 16-bit range
    n_cells = len(np.unique(video.labels[0])) - 1
    assert 20 <= n_cells <= 30
    # phase contrast: cell bodies darker than the background
    assert video.frames[0][video.labels[0] > 0].mean() < video.frames[0][video.labels[0] == 0].mean()
    assert samples.cell_sample() is video


@pytest.mark.parametrize(("entry", "source", "kind_name"), [
    (samples.napari_sample_natural, samples.natural_sample, "natural"),
    (samples.napari_sample_cells, samples.cell_sample, "cell"),
])
def test_napari_entries_hide_the_truth_after_frame_0(entry, source, kind_name):
    (frames, image_kw, image_kind), (labels, labels_kw, labels_kind) = entry()
    video = source()
    assert (image_kind, labels_kind) == ("image", "labels")
    assert frames is video.frames
    assert labels.shape == video.labels.shape and labels.dtype == np.int32
    np.testing.assert_array_equal(labels[0], video.labels[0])
    assert labels[1:].max() == 0  # only the first frame is painted
    assert labels.flags.writeable and labels is not video.labels  # users paint on it
    assert kind_name in image_kw["name"] and kind_name in labels_kw["name"]
    assert image_kw.get("rgb", False) == (frames.ndim == 4)


def test_first_frame_labels():
    stack = np.arange(24, dtype=np.int64).reshape(2, 3, 4)
    out = samples.first_frame_labels(stack, frame=1)
    assert out.dtype == np.int32 and out[0].max() == 0
    np.testing.assert_array_equal(out[1], stack[1])


def test_manifest_commands_resolve():
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_distribution("napari-vos")
    commands = {c.id: c.python_name for c in manifest.contributions.commands}
    assert {w.command for w in manifest.contributions.widgets} == {"napari-vos.propagate_widget"}
    assert {s.key for s in manifest.contributions.sample_data} == {"natural", "cells"}
    for sample in manifest.contributions.sample_data:
        module, attr = commands[sample.command].split(":")
        assert getattr(importlib.import_module(module), attr) in (samples.napari_sample_natural,
                                                                  samples.napari_sample_cells)
    module, attr = commands["napari-vos.propagate_widget"].split(":")
    assert hasattr(importlib.import_module(module), attr)


def test_samples_module_imports_no_napari_torch_or_qt():
    code = ("import sys, napari_vos.data.samples; heavy = [m for m in ('torch', 'napari', 'qtpy', 'PyQt5') "
            "if m in sys.modules]; assert heavy == [], heavy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
