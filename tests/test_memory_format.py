"""Channels-last networks (nn.memory_format): the layout changes the speed, never the masks."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from napari_vos.nn import memory_format
from napari_vos.nn.memory_format import place_network, prefer_channels_last

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _is_channels_last(net: nn.Module) -> bool:
    convs = [m.weight for m in net.modules() if isinstance(m, nn.Conv2d)]
    return bool(convs) and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)


def test_networks_are_channels_last_on_cpu_and_cuda_and_keep_their_layout_on_mps():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, 1), nn.Conv2d(8, 4, 1))
    x = torch.rand(1, 3, 20, 28)
    reference = net(x)
    placed = place_network(net, "cpu")
    assert _is_channels_last(placed) and not placed.training
    out = placed(x)  # an NCHW input: the channels-last weights make the maps channels-last
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)
    assert memory_format.CHANNELS_LAST_DEVICES == ("cpu", "cuda")  # MPS: partial support, left NCHW
    plain = nn.Conv2d(3, 4, 3)
    assert prefer_channels_last(plain, "meta").weight.is_contiguous()


def test_the_environment_switch_keeps_nchw(monkeypatch):
    monkeypatch.setenv("NAPARI_VOS_CHANNELS_LAST", "0")
    net = place_network(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 4, 3)), "cpu")
    assert not _is_channels_last(net) and all(p.is_contiguous() for p in net.parameters())
    monkeypatch.setenv("NAPARI_VOS_CHANNELS_LAST", "1")
    assert _is_channels_last(place_network(net, "cpu"))


@pytest.mark.parametrize("method,options", [
    ("frtm", {}),
    ("agame", {}),
    ("rgmp", {}),
    ("osvos_at", {"finetune_iterations": 10}),
])
def test_shipped_methods_give_the_same_masks_in_either_layout(method, options, monkeypatch):
    """Every shipped network method runs channels-last on the CPU and segments as it did in NCHW."""
    from napari_vos import propagate
    from napari_vos.data.synthetic import natural_video

    placed: list[nn.Module] = []
    original = memory_format.prefer_channels_last

    def recording(module, device):
        placed.append(original(module, device))
        return placed[-1]

    monkeypatch.setattr(memory_format, "prefer_channels_last", recording)
    video = natural_video(n_frames=4, size=(128, 192), n_objects=2, seed=3)

    def run():
        return propagate(video.frames, video.labels[0], method=method, device="cpu", direction="forward",
                         precision="fp32", **options).labels

    channels_last = run()
    assert placed and _is_channels_last(placed[-1])
    monkeypatch.setattr(memory_format, "CHANNELS_LAST_DEVICES", ())
    nchw = run()
    assert not _is_channels_last(placed[-1])
    assert (channels_last[1:] > 0).sum() > 200
    assert (channels_last == nchw).mean() > 0.999, method


def test_training_runs_channels_last_and_exports_loadable_weights(tmp_path):
    from napari_vos import weights
    from napari_vos.methods.frtm import FRTM
    from napari_vos.training.frtm_recipe import FRTMRecipe
    from napari_vos.training.loop import TrainSettings, train

    recipe = FRTMRecipe(size=(64, 96), batch_size=1, synthetic_fraction=1.0, train_backbone_from="conv4")
    model = train(recipe, tmp_path / "run", TrainSettings(steps=2, log_every=1, save_every=2), device="cpu",
                  log=lambda s: None)
    assert _is_channels_last(model)
    tensors, meta = recipe.export_tensors(model)
    path = tmp_path / "frtm.safetensors"
    weights.save_checkpoint(path, tensors, meta)
    method = FRTM.build(device="cpu", checkpoint=str(path))
    trained = dict(model.named_parameters())
    shared = [name for name, _ in method.network.named_parameters() if name in trained]
    assert len(shared) > 20
    for name, p in method.network.named_parameters():
        if name in trained:
            torch.testing.assert_close(p.float(), trained[name].detach().half().float())
