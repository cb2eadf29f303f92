"""The shared training loop with FRTM's recipe: a step lowers nothing magic, but runs, saves, resumes, exports."""
import json

import numpy as np
import torch

from napari_vos import weights
from napari_vos.training.frtm_recipe import FRTMRecipe
from napari_vos.training.loop import TrainSettings, train


def _recipe():
    return FRTMRecipe(size=(64, 96), batch_size=1, synthetic_fraction=1.0, train_backbone_from="conv4")


def test_train_saves_resumes_and_exports(tmp_path):
    run = tmp_path / "run"
    settings = TrainSettings(steps=2, log_every=1, save_every=1, seed=0)
    recipe = _recipe()
    model = train(recipe, run, settings, device="cpu", log=lambda s: None)
    state = torch.load(run / "last.pt", weights_only=False)
    assert state["step"] == 2
    lines = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2] and all(np.isfinite(x["loss"]) for x in lines)
    # frozen stages really are frozen, trained stages moved
    fresh = _recipe().build(torch.device("cpu"))
    assert not any(p.requires_grad for p in model.backbone.conv3.parameters())
    moved = any(not torch.equal(a, b) for a, b in zip(model.seg.parameters(), fresh.seg.parameters()))
    assert moved

    messages = []
    train(_recipe(), run, TrainSettings(steps=3, log_every=1, save_every=1), device="cpu", resume=True,
          log=messages.append)
    assert any("resumed frtm" in m and "step 2" in m for m in messages)
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 3

    tensors, meta = recipe.export_tensors(model)
    assert all(t.dtype == torch.float16 for t in tensors.values() if t.is_floating_point())
    path = tmp_path / "frtm.safetensors"
    weights.save_checkpoint(path, tensors, meta)
    from napari_vos.methods.frtm import FRTM

    method = FRTM.build(device="cpu", checkpoint=str(path))
    assert method.checkpoint_sha256 == weights.sha256_of(path)


def test_batch_has_reference_and_two_validation_frames():
    rng = np.random.default_rng(0)
    clips = _recipe().batch(rng)
    assert len(clips) == 1
    assert clips[0].frames.shape == (3, 64, 96, 3) and clips[0].masks.shape == (3, 64, 96)
    assert clips[0].masks[0].sum() > 0  # the reference frame shows the object
