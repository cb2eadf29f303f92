"""RVOS: decoder state shapes and recurrences, one-shot propagation, zero-shot slot matching, the recipe."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_vos.methods.rvos import RVOS
from napari_vos.methods.rvos_matching import count_objects, hungarian, match_slots, soft_iou
from napari_vos.methods.rvos_network import CONFIGS, LEVEL_STRIDES, FrameOutput, RVOSConfig, RVOSNetwork

TINY = RVOSConfig(backbone="resnet18", hidden=(16, 8, 8, 8), skip=(16, 16, 8, 8), slots=4)
TINY_ZERO = RVOSConfig(backbone="resnet18", hidden=(16, 8, 8, 8), skip=(16, 16, 8, 8), slots=4, zero_shot=True)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _checkpoint(tmp_path_factory, config: RVOSConfig, stage: str) -> str:
    from napari_vos import weights
    from napari_vos.training.rvos_recipe import RVOSRecipe

    torch.manual_seed(0)
    tensors, meta = RVOSRecipe(stage=stage).export_tensors(RVOSNetwork(config))
    path = tmp_path_factory.mktemp("rvos") / f"rvos-{stage}.safetensors"
    weights.save_checkpoint(path, tensors, meta)
    return str(path)


@pytest.fixture(scope="module")
def one_shot_checkpoint(tmp_path_factory):
    return _checkpoint(tmp_path_factory, TINY, "teacher")


@pytest.fixture(scope="module")
def zero_shot_checkpoint(tmp_path_factory):
    return _checkpoint(tmp_path_factory, TINY_ZERO, "zero")


def _masks(k: int, size=(64, 96)) -> torch.Tensor:
    m = torch.zeros(1, k, *size)
    for i in range(k):
        m[0, i, 8 + 12 * i:20 + 12 * i, 10 + 20 * i:34 + 20 * i] = 1
    return m


# -- the decoder's recurrences ---------------------------------------------------------------
def test_state_shapes_of_every_object_level_and_frame():
    torch.manual_seed(0)
    net = RVOSNetwork(TINY).eval()
    with torch.no_grad():
        temporal = None
        for _ in range(2):  # frame t = 0 (no temporal state), then t = 1
            feats = net.encode(torch.rand(1, 3, 64, 96))
            out = net.frame(feats, _masks(3), temporal)
            assert len(out.states) == 3  # objects i = 1..3
            for states in out.states:
                assert [tuple(h.shape) for h, _ in states] == [
                    (1, w, 64 // s, 96 // s) for w, s in zip(TINY.hidden, LEVEL_STRIDES)]
                assert all(c.shape == h.shape for h, c in states)
            temporal = out.states
    assert out.logits.shape == (1, 3, 16, 24) and out.stop.shape == (1, 3)
    assert out.features.shape == (1, 3, TINY.hidden[-1], 16, 24)
    assert [tuple(f.shape[1:]) for f in feats] == [(16, 2, 3), (16, 4, 6), (8, 8, 12), (8, 16, 24)]


def _perturbed_states(config: RVOSConfig, change_object: int):
    torch.manual_seed(0)
    net = RVOSNetwork(config).eval()
    with torch.no_grad():
        feats = net.encode(torch.rand(1, 3, 64, 96))
        masks = _masks(3)
        base = net.frame(feats, masks, None)
        other = masks.clone()
        other[0, change_object] = 1 - other[0, change_object]
        changed = net.frame(feats, other, None)
    return base, changed


def test_object_state_depends_on_the_previous_objects_state():
    base, changed = _perturbed_states(TINY, change_object=0)
    h = lambda out, i: out.states[i][-1][0]  # noqa: E731 - object i's last-level hidden state
    assert not torch.allclose(h(base, 0), h(changed, 0))
    assert not torch.allclose(h(base, 1), h(changed, 1))  # object 2 sees object 1 through the state input
    assert not torch.allclose(h(base, 2), h(changed, 2))  # and object 3 through object 2
    base, changed = _perturbed_states(TINY, change_object=2)
    assert torch.equal(h(base, 0), h(changed, 0)) and torch.equal(h(base, 1), h(changed, 1))  # no look-ahead
    # without the spatial recurrence (the slides' RVOS-T), objects are independent
    no_spatial = RVOSConfig(**{**TINY.to_dict(), "spatial": False})
    base, changed = _perturbed_states(no_spatial, change_object=0)
    assert torch.equal(h(base, 1), h(changed, 1)) and torch.equal(h(base, 2), h(changed, 2))


@pytest.mark.parametrize("temporal", [True, False])
def test_object_state_depends_on_its_previous_frame_state(temporal):
    torch.manual_seed(0)
    net = RVOSNetwork(RVOSConfig(**{**TINY.to_dict(), "temporal": temporal})).eval()
    with torch.no_grad():
        f0, f1 = net.encode(torch.rand(1, 3, 64, 96)), net.encode(torch.rand(1, 3, 64, 96))
        prev = net.frame(f0, _masks(2), None).states
        noisy = [[(h + torch.randn_like(h), c) for h, c in states] for states in prev]
        a, b = net.frame(f1, _masks(2), prev), net.frame(f1, _masks(2), noisy)
    assert torch.allclose(a.logits, b.logits) != temporal


@pytest.mark.parametrize("temporal", [True, False])
def test_object_state_depends_on_its_previous_frame_cell_state(temporal):
    """Pins the temporal recurrence of the ConvLSTM cell state c (not only of h): perturbing only the
    previous frame's c changes the logits when the temporal recurrence is on, not when it is off."""
    torch.manual_seed(0)
    net = RVOSNetwork(RVOSConfig(**{**TINY.to_dict(), "temporal": temporal})).eval()
    with torch.no_grad():
        f0, f1 = net.encode(torch.rand(1, 3, 64, 96)), net.encode(torch.rand(1, 3, 64, 96))
        prev = net.frame(f0, _masks(2), None).states
        noisy = [[(h, c + torch.randn_like(c)) for h, c in states] for states in prev]
        a, b = net.frame(f1, _masks(2), prev), net.frame(f1, _masks(2), noisy)
    assert torch.allclose(a.logits, b.logits) != temporal


def test_paper_configuration_is_resnet101():
    net = RVOSNetwork(CONFIGS["paper"])
    assert net.skips[0].in_channels == 2048 and net.skips[3].in_channels == 256
    assert net.decoder.cells[0].in_ch == 128 + 1  # f'_{t,0} and S_{t-1,i}
    assert net.decoder.cells[1].in_ch == 128 + 128 + 1  # B2(h_{t,i,0}), f'_{t,1}, S_{t-1,i}
    zero = RVOSNetwork(RVOSConfig(**{**CONFIGS["light"].to_dict(), "zero_shot": True}))
    assert zero.decoder.cells[1].in_ch == 128 + 128 and CONFIGS["light"].slots == 5


# -- one-shot through the engine ---------------------------------------------------------------
def _two_object_video():
    from conftest import moving_square_video

    frames, truth = moving_square_video(n_frames=5, size=(64, 96), step=3)
    labels = truth[1] * 7
    labels[44:58, 60:84] = 3  # a second, still object
    return frames, labels


def test_one_shot_end_to_end_through_session(one_shot_checkpoint):
    from napari_vos import Session
    from napari_vos.weights import sha256_of

    frames, labels = _two_object_video()
    session = Session(frames, method="rvos", device="cpu", checkpoint=one_shot_checkpoint, maps=True,
                      input_size=(64, 96))
    session.annotate(1, labels)
    done = [fr.index for fr in session.propagate("both")]
    result = session.result()
    assert done == [1, 2, 3, 4, 0]
    assert result.labels.shape == (5, 64, 96) and result.labels.dtype == np.uint8
    assert set(np.unique(result.labels)) <= {0, 3, 7}
    np.testing.assert_array_equal(result.labels[1], labels)
    assert result.object_ids == [3, 7]
    assert result.maps["convlstm_output"].shape == (5, 2, 16, 24)  # per object, stride 4
    assert np.isfinite(result.maps["convlstm_output"]).all() and result.maps["convlstm_output"][2].max() > 0
    assert result.checkpoint_sha256 == sha256_of(one_shot_checkpoint)
    assert result.frames_done == 4


def test_update_feeds_the_aggregated_masks_back_and_remember_keeps_the_memory(one_shot_checkpoint):
    frames, labels = _two_object_video()
    method = RVOS.build(checkpoint=one_shot_checkpoint, input_size=(64, 96))
    img = lambda t: torch.from_numpy(frames[t]).permute(2, 0, 1).float() / 255  # noqa: E731
    objects = torch.from_numpy(np.stack([labels == 3, labels == 7]).astype(np.float32))
    method.start(img(1), objects)
    assert torch.equal(method.previous[0], objects)
    step = method.step(img(2))
    assert step.probs.shape == (2, 64, 96) and float(step.probs.min()) >= 0 and float(step.probs.max()) <= 1
    fake = torch.zeros(2, 64, 96)
    fake[1, :10, :10] = 1
    method.update(fake)
    assert torch.equal(method.previous[0], fake)
    method.step(img(3))
    method.remember(img(3), objects)  # a corrected frame: S from its masks, the temporal states go on
    assert torch.equal(method.previous[0], objects)
    fresh = RVOS.build(checkpoint=one_shot_checkpoint, input_size=(64, 96))
    fresh.start(img(3), objects)
    assert not torch.allclose(method.temporal[0][-1][0], fresh.temporal[0][-1][0])


def test_one_shot_without_annotation_says_so(one_shot_checkpoint):
    method = RVOS.build(checkpoint=one_shot_checkpoint, input_size=(64, 96))
    with pytest.raises(ValueError, match="one-shot mode needs an annotated frame"):
        method.step(torch.rand(3, 64, 96))
    with pytest.raises(ValueError, match="holds a one-shot RVOS network"):
        RVOS.build(checkpoint=one_shot_checkpoint, zero_shot=True)


# -- zero-shot ---------------------------------------------------------------------------------
def test_hungarian_matching_on_a_constructed_case():
    a = torch.zeros(32, 32)
    a[2:12, 2:12] = 1
    b = torch.zeros(32, 32)
    b[18:30, 16:30] = 1
    slots = torch.stack([0.9 * b, torch.full((32, 32), 0.1), 0.95 * a, 0.8 * a * (torch.arange(32) < 6)])
    assert match_slots(slots, torch.stack([a, b])) == [2, 0]
    assert match_slots(slots, torch.stack([b, a])) == [0, 2]
    # the assignment is global: slot 2 fits both, but giving it to object 0 loses more for object 1
    score = torch.tensor([[0.9, 0.8], [0.85, 0.1]])
    assert hungarian(score) == [(0, 1), (1, 0)]
    assert float(soft_iou(a, a)) == pytest.approx(1.0) and float(soft_iou(a, b)) == pytest.approx(0.0, abs=1e-6)
    assert count_objects(torch.tensor([0.9, 0.7, 0.2, 0.9])) == 2 and count_objects(torch.tensor([0.6, 0.6])) == 2
    with pytest.raises(ValueError, match="zero-shot slots"):
        match_slots(slots[:1], torch.stack([a, b]))


def test_zero_shot_outputs_the_slots_matched_on_the_annotated_frame(zero_shot_checkpoint, monkeypatch):
    """The network's slots are made by hand: slot 3 holds object A, slot 1 object B; outputs follow the objects."""
    method = RVOS.build(checkpoint=zero_shot_checkpoint, zero_shot=True, input_size=(32, 32))
    a = torch.zeros(32, 32)
    a[4:16, 4:16] = 1  # on the stride-4 grid, so the slots' coarse logits hold them exactly
    b = torch.zeros(32, 32)
    b[16:28, 12:28] = 1
    slot_masks = torch.stack([torch.zeros(32, 32), b, a * 0 + (torch.arange(32) > 28).float(), a])

    def frame(feats, masks, temporal, n_objects=None):
        assert masks is None
        logits = torch.nn.functional.avg_pool2d(slot_masks * 20 - 10, 4)[None]  # stride 4, as the network's
        return FrameOutput(logits, torch.tensor([[5.0, 5.0, -5.0, 5.0]]), [[] for _ in range(4)],
                           torch.ones(1, 4, 8, 8, 8))

    monkeypatch.setattr(method.network, "frame", frame)
    method.start(torch.rand(3, 32, 32), torch.stack([a, b]))
    assert method.slots == [3, 1]
    step = method.step(torch.rand(3, 32, 32))
    assert step.probs.shape == (2, 32, 32)
    assert float(soft_iou((step.probs[0] > 0.5).float(), a)) > 0.9
    assert float(soft_iou((step.probs[1] > 0.5).float(), b)) > 0.9
    # no annotation: the slots before the first "absent" one (RIS's stop rule), in slot order
    fresh = RVOS.build(checkpoint=zero_shot_checkpoint, input_size=(32, 32))
    monkeypatch.setattr(fresh.network, "frame", frame)
    assert fresh.step(torch.rand(3, 32, 32)).probs.shape == (2, 32, 32) and fresh.slots == [0, 1]
    # no slot holds an object: no output channel, all background after the engine's aggregation
    empty = RVOS.build(checkpoint=zero_shot_checkpoint, input_size=(32, 32))
    empty.network.decoder.stop_head.bias.data.fill_(-50.0)
    step = empty.step(torch.rand(3, 32, 32))
    assert empty.slots == [] and step.probs.shape == (0, 32, 32) and step.maps["convlstm_output"].shape == (0, 8, 8)


def test_zero_shot_through_session_with_an_annotation(zero_shot_checkpoint):
    from napari_vos import propagate

    frames, labels = _two_object_video()
    result = propagate(frames, labels, method="rvos", frame=1, checkpoint=zero_shot_checkpoint, device="cpu",
                       zero_shot=True, input_size=(64, 96), maps=True)
    assert result.labels.shape == (5, 64, 96) and set(np.unique(result.labels)) <= {0, 3, 7}
    assert result.maps["convlstm_output"].shape == (5, 2, 16, 24)
    assert result.options["zero_shot"] is True


def test_zero_shot_through_session_without_an_annotation(zero_shot_checkpoint):
    from napari_vos import Session
    from napari_vos.methods import registry

    assert registry.needs_annotation("rvos") and not registry.needs_annotation("rvos", zero_shot=True)
    frames, _ = _two_object_video()
    session = Session(frames, method="rvos", checkpoint=zero_shot_checkpoint, device="cpu", zero_shot=True,
                      input_size=(64, 96))
    result = session.run()
    assert result.labels.shape == (5, 64, 96) and result.annotated_frames == []
    with pytest.raises(ValueError):
        Session(frames, method="rvos", checkpoint=zero_shot_checkpoint, device="cpu").run()  # one-shot needs the annotation


# -- training --------------------------------------------------------------------------------------
def _recipe(stage: str):
    from napari_vos.training.recipes import make_recipe

    recipe = make_recipe("rvos", size=(64, 64), batch_size=2, synthetic_fraction=1.0, config=f"light:{stage}")
    assert recipe.stage == stage
    return recipe


@pytest.mark.parametrize("stage", ["teacher", "inferred", "zero"])
def test_training_steps_lower_the_loss_on_a_repeated_batch(stage):
    recipe = _recipe(stage)
    batch = recipe.batch(np.random.default_rng(1))
    assert batch["frames"].shape[:2] == (2, 5) and batch["masks"].shape[:2] == (2, 5)
    assert batch["valid"].any(1).all() and batch["masks"].shape[2] == batch["valid"].shape[1]
    assert bool((batch["masks"][:, 0].flatten(2).sum(2) > 0).eq(batch["valid"]).all())  # objects on frame 0
    torch.manual_seed(0)
    net = RVOSNetwork(RVOSConfig(**{**TINY.to_dict(), "zero_shot": stage == "zero"}))
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss, stats = recipe.loss(net, batch, torch.device("cpu"))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert all(np.isfinite(losses)) and losses[-1] < 0.9 * losses[0], losses
    assert 0.0 <= stats["iou"] <= 1.0
    if stage == "zero":
        assert {"stop", "stop_acc"} <= set(stats)


def test_inferred_stage_feeds_the_prediction_back():
    torch.manual_seed(0)
    net = RVOSNetwork(TINY).eval()
    frames = torch.rand(1, 3, 3, 64, 96)
    masks = _masks(2)[:, None].expand(1, 3, 2, 64, 96).clone()
    masks[:, 1] = 0  # frame 1's truth differs from frame 0's: only the teacher run sees it
    with torch.no_grad():
        teacher, _ = net(frames, masks, previous="truth")
        inferred, _ = net(frames, masks, previous="predicted")
    assert torch.allclose(teacher[:, 0], inferred[:, 0])  # frame 1 uses frame 0's masks either way
    assert not torch.allclose(teacher[:, 1], inferred[:, 1])


def test_zero_shot_loss_does_not_depend_on_the_objects_order():
    recipe = _recipe("zero")
    batch = recipe.batch(np.random.default_rng(4))
    torch.manual_seed(0)
    net = RVOSNetwork(TINY_ZERO).eval()
    k = int(batch["valid"][0].sum())
    order = list(range(k))[::-1] + list(range(k, batch["masks"].shape[2]))
    swapped = {**batch, "masks": batch["masks"].clone()}
    swapped["masks"][0] = batch["masks"][0][:, order]
    with torch.no_grad():
        a, _ = recipe.loss(net, batch, torch.device("cpu"))
        b, _ = recipe.loss(net, swapped, torch.device("cpu"))
    assert float(a) == pytest.approx(float(b), rel=1e-5)


def test_recipe_backbone_init_export_and_build(tmp_path):
    from napari_vos import weights
    from napari_vos.nn.backbones import ResNetFeatures
    from napari_vos.training.recipes import make_recipe

    torch.manual_seed(0)
    frtm_like = {f"backbone.{k}": v for k, v in ResNetFeatures("resnet18").state_dict().items()}
    frtm_path = tmp_path / "frtm.safetensors"
    weights.save_checkpoint(frtm_path, frtm_like, {"method": "frtm"})
    recipe = make_recipe("rvos", size=(64, 64), batch_size=2, init_checkpoint=str(frtm_path),
                         train_backbone_from="conv4", config="light:teacher")
    net = recipe.build(torch.device("cpu"))
    assert net.freeze_batchnorm
    assert torch.equal(net.backbone.conv3[0].conv1.weight, frtm_like["backbone.conv3.0.conv1.weight"])
    assert not any(p.requires_grad for p in net.backbone.conv3.parameters())
    assert all(p.requires_grad for p in net.backbone.conv4.parameters())
    tensors, meta = recipe.export_tensors(net)
    assert meta["config"] == "light:teacher" and meta["stage"] == "teacher"
    path = tmp_path / "rvos.safetensors"
    weights.save_checkpoint(path, tensors, meta)
    method = RVOS.build(checkpoint=str(path))
    assert method.network.config == CONFIGS["light"] and not method.zero_shot
    # the inferred stage starts from the teacher stage's checkpoint; a zero-shot network does not fit it
    assert make_recipe("rvos", size=(64, 64), init_checkpoint=str(path), config="light:inferred").build(
        torch.device("cpu")) is not None
    with pytest.raises(weights.CheckpointError, match="mask input"):
        make_recipe("rvos", size=(64, 64), init_checkpoint=str(path), config="light:zero").build(torch.device("cpu"))
    with pytest.raises(ValueError, match="stage"):
        make_recipe("rvos", config="light:bogus")


def test_cli_zero_shot_flag(zero_shot_checkpoint, one_shot_checkpoint, tmp_path, capsys):
    import tifffile

    from napari_vos.cli import main

    frames, labels = _two_object_video()
    tifffile.imwrite(tmp_path / "video.tif", frames[..., 0])
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    out = tmp_path / "out.tif"
    files = ["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(out)]
    args = files + ["--method", "rvos", "--frame", "1", "--device", "cpu"]
    assert main(args + ["--zero-shot", "--checkpoint", zero_shot_checkpoint]) == 0
    written = tifffile.imread(out)
    assert written.shape == (5, 64, 96) and set(np.unique(written)) <= {0, 3, 7}
    assert main(args + ["--zero-shot", "--checkpoint", one_shot_checkpoint]) == 2  # a one-shot network
    assert "holds a one-shot RVOS network" in capsys.readouterr().err
    assert main(files + ["--method", "frtm", "--zero-shot"]) == 2
    assert "--zero-shot is an option of rvos; method 'frtm' has no zero-shot configuration" in capsys.readouterr().err
