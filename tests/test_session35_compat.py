"""Session 35, files from older napari-vos versions: a last.pt saved before it kept its settings,
config and stage (its own learning rate, a note on the stage, a one-line refusal of another
network), and a hand-painted layer's placement saved and opened again (not an earlier output)."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from napari_vos.training.loop import TrainSettings, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass
class _TinyRecipe:
    """A minimal recipe for the shared loop: one linear layer, a fixed batch."""

    name: str = "tiny"
    default_lr: float = 1e-4  # as COSNet, OSVOS-AT, RVOS, S2S, RGMP and A-GAME have now
    config: str = "light"
    stage: str | None = None
    width: int = 4
    built: list = field(default_factory=list)

    def build(self, device):
        torch.manual_seed(0)
        net = torch.nn.Linear(self.width, 1).to(device)
        self.built.append(net)
        return net

    def batch(self, rng):
        return torch.as_tensor(rng.standard_normal((2, self.width)), dtype=torch.float32)

    def loss(self, model, batch, device):
        out = model(batch.to(device)).pow(2).mean()
        return out, {}


def _as_older_version_saved_it(path, drop=("settings", "running", "torch_rng", "stage")):
    """Rewrite a last.pt as napari-vos wrote it before session 27 (commit 97d9543: no 'settings';
    before commit 79349fc: no 'stage'; before ~session 20: no 'config' either): only the keys it
    had. The run trained at the old default rate for every recipe, 1e-3."""
    state = torch.load(path, weights_only=False)
    for key in drop:
        state.pop(key, None)
    for group in state["optimizer"]["param_groups"]:
        group["lr"] = 1e-3
        group["initial_lr"] = 1e-3
    state["scheduler"]["base_lrs"] = [1e-3]
    state["scheduler"]["_last_lr"] = [1e-3]
    torch.save(state, path)


def test_resume_of_pre_session_29_run_keeps_its_own_learning_rate(tmp_path):
    """Finding 1: a last.pt written before last.pt kept its settings (every recipe trained at 1e-3
    then) is resumed without --lr at the recipe's new default (1e-4 here), while the log says
    'the resumed run's own'. Its own rate is in the file (the optimiser's initial_lr)."""
    settings = TrainSettings(steps=1, save_every=1, log_every=1, lr_drop_at=1.0)
    train(_TinyRecipe(), tmp_path, settings, log=lambda s: None)
    _as_older_version_saved_it(tmp_path / "last.pt")

    lines: list[str] = []
    recipe = _TinyRecipe()
    train(recipe, tmp_path, TrainSettings(steps=2, save_every=1, log_every=1, lr_drop_at=1.0), resume=True,
          log=lines.append)
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    said = [line for line in lines if line.startswith("learning rate")]
    assert said and ("resumed run's own" not in said[0] or said[0].startswith("learning rate 0.001")), said
    assert state["settings"]["lr"] == pytest.approx(1e-3), (said, state["settings"]["lr"])


def test_resume_of_run_saved_without_stage_is_not_silently_relabelled(tmp_path):
    """Finding 2: a last.pt saved before commit 79349fc has no 'stage' (nor, before ~session 20,
    'config'); the stage check is skipped and an RGMP video-stage run continues as the pretrain
    stage (another recipe, its file relabelled 'pretrain', so resuming it with its right --config
    is then refused). Expected: a refusal or at least a log line naming the stage it goes on as."""
    settings = TrainSettings(steps=1, save_every=1, log_every=1)
    train(_TinyRecipe(stage="video"), tmp_path, settings, log=lambda s: None)
    _as_older_version_saved_it(tmp_path / "last.pt")

    lines: list[str] = []
    try:
        train(_TinyRecipe(stage="pretrain"), tmp_path, TrainSettings(steps=2, save_every=1, log_every=1),
              resume=True, log=lines.append)
    except ValueError:
        return  # refused: fine
    assert any("pretrain" in line for line in lines), lines


def test_resume_with_other_network_shapes_is_one_line_not_a_traceback(tmp_path):
    """Finding 3: a last.pt without 'config' (before ~session 20) of another configuration (an
    FRTM --config full run resumed with the default fast) fails in torch's load_state_dict with a
    RuntimeError (the CLI prints a 200-line traceback and exits 1) instead of the one-line
    ValueError a newer file gets."""
    settings = TrainSettings(steps=1, save_every=1, log_every=1)
    train(_TinyRecipe(width=8), tmp_path, settings, log=lambda s: None)
    _as_older_version_saved_it(tmp_path / "last.pt", drop=("settings", "running", "torch_rng", "stage", "config"))
    with pytest.raises(ValueError):
        train(_TinyRecipe(width=4), tmp_path, TrainSettings(steps=2, save_every=1, log_every=1), resume=True,
              log=lambda s: None)


class _Viewer:
    """Stands in for napari.Viewer in open_labels_layer (add_labels with napari >= 0.6's units)."""

    def add_labels(self, data, name=None, scale=None, translate=None, rotate=None, shear=None, affine=None,
                   units=None, metadata=None):
        return SimpleNamespace(data=data, name=name, metadata=dict(metadata or {}), translate=translate)


def test_hand_painted_layer_with_translate_saved_and_reopened_is_not_an_output(tmp_path):
    """Finding 4: labels painted by hand on a translated (or flipped/rotated) layer, saved with the
    napari-vos writer (as the guide advises, to keep the calibration) and opened again with
    open_labels_layer, come back with metadata {'napari_vos': {}}: the widget takes them for an
    earlier napari-vos output and refuses their painted frames with 'use every painted frame'."""
    from napari_vos._widgets.labels_writer import write_labels_tiff
    from napari_vos._widgets.layer_job import is_output, read_annotations
    from napari_vos.console import open_labels_layer

    labels = np.zeros((6, 32, 40), np.uint8)
    labels[0, 5:15, 5:15] = 1
    labels[3, 5:15, 10:20] = 1  # a correction frame, painted by hand
    path = tmp_path / "painted.tif"
    write_labels_tiff(str(path), labels, {"scale": [10.0, 0.5, 0.5], "units": ["s", "µm", "µm"],
                                          "translate": [0.0, 100.0, 50.0], "metadata": {}, "name": "painted"})
    layer = open_labels_layer(_Viewer(), path)
    assert list(layer.translate) == [0.0, 100.0, 50.0]
    assert not is_output(layer), layer.metadata
    layer.multiscale = False
    annotations, _, _ = read_annotations(layer, 6, (32, 40), 0)
    assert sorted(annotations) == [0, 3]


def test_the_preprocessing_record_names_the_intensity_exceptions_and_older_records_are_not_flagged():
    """The record said 'uint8 / 255' while dim 8-bit stacks have been stretched since session 31: the
    exceptions are a field of their own, which records made before it lack (and are not judged on)."""
    from napari_vos import weights
    from napari_vos.data.frames import DARK_8BIT_TOP

    now = weights.preprocessing("frtm")
    assert str(DARK_8BIT_TOP) in now["intensity_exceptions"] and "bool" in now["intensity_exceptions"]
    older = {k: v for k, v in now.items() if k != "intensity_exceptions"}
    assert weights.preprocessing_differences("frtm", older) == []
    other = {**now, "intensity_exceptions": "none"}
    assert [d for d in weights.preprocessing_differences("frtm", other) if d.startswith("intensity_exceptions")]
