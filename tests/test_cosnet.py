"""COSNet (seed 003): co-attention variants and normalisation, the network, the zero-shot method end to
end from a random light checkpoint (Session, CLI, widget), and the training recipe."""
from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile
import torch

from _widget_run import needs_display

from napari_vos.methods.cosnet import COSNet, load_network, reference_frames
from napari_vos.methods.cosnet_network import CONFIGS, COSNetNetwork, make_config
from napari_vos.nn.coattention import CoAttention, normalise_affinity

TINY = make_config("light", embed_channels=16, seg_channels=16, skip_channels=8)


# -- co-attention ----------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["vanilla", "symmetric", "channel"])
def test_coattention_shapes_and_gate(variant):
    torch.manual_seed(0)
    att = CoAttention(8, variant)
    v_a, v_b = torch.randn(2, 8, 3, 5), torch.randn(2, 8, 4, 2)
    out = att(v_a, v_b)
    assert out.affinity.shape == (2, 8, 15)  # (N_b, N_a)
    assert out.z_a.shape == v_a.shape and out.z_b.shape == v_b.shape
    assert out.gate_a.shape == (2, 1, 3, 5) and out.gate_b.shape == (2, 1, 4, 2)
    for g in (out.gate_a, out.gate_b):
        assert bool(((g > 0) & (g < 1)).all())
    assert att.fuse(out.z_a, v_a).shape == (2, 16, 3, 5)
    assert att(v_a, v_b, both=False).z_b is None


def test_affinity_is_the_weighted_product():
    torch.manual_seed(1)
    for variant in ("vanilla", "symmetric", "channel"):
        att = CoAttention(6, variant, scale=False)
        with torch.no_grad():
            for p in att.parameters():
                p.add_(0.3 * torch.randn_like(p))
        v_a, v_b = torch.randn(1, 6, 2, 3), torch.randn(1, 6, 3, 3)
        expected = v_b.flatten(2)[0].T @ att.matrix() @ v_a.flatten(2)[0]
        torch.testing.assert_close(att.affinity(v_a, v_b)[0], expected, rtol=1e-4, atol=1e-4)


def test_symmetric_variant_gives_a_symmetric_affinity_for_one_frame():
    torch.manual_seed(2)
    att = CoAttention(8, "symmetric")
    with torch.no_grad():
        att.skew.normal_()  # far from the identity
        att.diagonal.normal_()
    p = att.projection()
    torch.testing.assert_close(p.T @ p, torch.eye(8), atol=1e-5, rtol=0)  # P orthogonal
    v = torch.randn(1, 8, 4, 4)
    s = att.affinity(v, v)[0]
    torch.testing.assert_close(s, s.T, atol=1e-5, rtol=1e-5)
    w = att.matrix()
    torch.testing.assert_close(w, w.T, atol=1e-5, rtol=1e-5)
    # the vanilla variant with a generic W is not symmetric
    van = CoAttention(8, "vanilla")
    with torch.no_grad():
        van.weight.normal_()
    s2 = van.affinity(v, v)[0]
    assert not torch.allclose(s2, s2.T, atol=1e-3)


def test_channel_variant_equals_vanilla_with_a_diagonal_w():
    torch.manual_seed(3)
    channel, vanilla = CoAttention(5, "channel"), CoAttention(5, "vanilla")
    d = torch.rand(5) + 0.5
    with torch.no_grad():
        channel.diagonal.copy_(d)
        vanilla.weight.copy_(torch.diag(d))
        vanilla.gate.load_state_dict(channel.gate.state_dict())
    v_a, v_b = torch.randn(2, 5, 3, 3), torch.randn(2, 5, 2, 4)
    a, b = channel(v_a, v_b), vanilla(v_a, v_b)
    torch.testing.assert_close(a.affinity, b.affinity)
    torch.testing.assert_close(a.z_a, b.z_a)
    torch.testing.assert_close(a.z_b, b.z_b)


def test_row_and_column_softmax_and_the_summaries():
    torch.manual_seed(4)
    s = torch.randn(2, 6, 4)  # N_b = 6, N_a = 4
    s_c, s_r = normalise_affinity(s)
    assert s_c.shape == (2, 6, 4) and s_r.shape == (2, 4, 6)
    torch.testing.assert_close(s_c.sum(1), torch.ones(2, 4))  # each column of S^c: over F_b's locations
    torch.testing.assert_close(s_r.sum(1), torch.ones(2, 6))  # each column of S^r: over F_a's locations
    assert not torch.allclose(s_c.sum(2), torch.ones(2, 6))
    # Z_a's column j is the S^c-weighted average of V_b's columns: a location of F_a that matches one
    # location of F_b strongly copies that location's feature
    att = CoAttention(3, "channel", scale=False)
    with torch.no_grad():
        att.diagonal.fill_(50.0)
        att.gate.weight.zero_()
        att.gate.bias.fill_(20.0)  # gate ~ 1
    v_b = torch.eye(3)[None, :, :, None]  # three locations, one-hot features
    v_a = torch.eye(3)[None, :, [2, 0], None]  # two locations, like F_b's locations 2 and 0
    out = att(v_a, v_b)
    torch.testing.assert_close(out.z_a[0, :, :, 0], v_a[0, :, :, 0], atol=1e-4, rtol=0)


@pytest.mark.parametrize("variant", ["symmetric", "channel"])
def test_reference_summary_z_b_is_the_query_summary_of_the_swapped_pair(variant):
    """Pins Z_b = V_a S^r: with a symmetric W, S(v_b, v_a) = S(v_a, v_b)^T, so the reference frame's
    summary of a pair is the query frame's summary of the swapped pair."""
    torch.manual_seed(0)
    att = CoAttention(5, variant)
    with torch.no_grad():
        att.diagonal.copy_(torch.rand(5) + 0.5)
    v_a, v_b = torch.randn(1, 5, 3, 3), torch.randn(1, 5, 2, 4)
    with torch.no_grad():
        torch.testing.assert_close(att(v_a, v_b).z_b, att(v_b, v_a).z_a)


def test_the_gate_multiplies_the_summaries():
    """Pins Z <- Z * f_g(Z): a gate of weight 0 and bias log(1/3) is 0.25 everywhere and scales
    both summaries to a quarter of the ungated V S^c and V S^r."""
    from napari_vos.nn.coattention import attention_summary

    torch.manual_seed(1)
    att = CoAttention(4, "vanilla")
    with torch.no_grad():
        att.gate.weight.zero_()
        att.gate.bias.fill_(math.log(1 / 3))  # sigmoid(log(1/3)) = 1/4
        v_a, v_b = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 2, 4)
        out = att(v_a, v_b)
        s = out.affinity
        z_a = attention_summary(v_b.flatten(2), torch.softmax(s, 1)).view_as(v_a)
        z_b = attention_summary(v_a.flatten(2), torch.softmax(s.transpose(1, 2), 1)).view_as(v_b)
    torch.testing.assert_close(out.gate_a, torch.full((1, 1, 3, 3), 0.25))
    torch.testing.assert_close(out.gate_b, torch.full((1, 1, 2, 4), 0.25))
    torch.testing.assert_close(out.z_a, 0.25 * z_a)
    torch.testing.assert_close(out.z_b, 0.25 * z_b)


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="variant"):
        CoAttention(4, "diagonal")


# -- network, method, checkpoint ----------------------------------------------------------------
@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return COSNetNetwork(TINY).eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, network):
    from napari_vos import weights
    from napari_vos.training.cosnet_recipe import COSNetRecipe

    tensors, meta = COSNetRecipe().export_tensors(network)
    path = tmp_path_factory.mktemp("cosnet") / "cosnet-random.safetensors"
    weights.save_checkpoint(path, tensors, meta)
    return str(path)


def test_configs_and_forward_pair(network):
    assert CONFIGS["paper"].backbone == "resnet101" and CONFIGS["paper"].deep_layer == "conv5"
    assert CONFIGS["light"].variant == "symmetric"
    a, b = torch.rand(2, 3, 64, 80), torch.rand(2, 3, 64, 80)
    with torch.no_grad():
        out = network.forward_pair(a, b)
        sal = network.saliency_logits(a)
    assert out.logits_a.shape == out.logits_b.shape == sal.shape == (2, 1, 64, 80)
    assert out.attention.gate_a.shape == (2, 1, 4, 5)


def test_reference_sampling():
    assert reference_frames(41, 5) == [0, 10, 20, 30, 40]  # global uniform: the whole video
    assert reference_frames(3, 5) == [0, 1, 2]
    r = reference_frames(50, 5, "random", seed=1)
    assert len(r) == 5 == len(set(r)) and r == reference_frames(50, 5, "random", seed=1)
    with pytest.raises(ValueError):
        reference_frames(10, 0)


def _video(n=6, size=(48, 64)):
    from conftest import moving_square_video

    return moving_square_video(n, size)


def test_session_runs_without_annotation_and_shows_the_gate(checkpoint):
    from napari_vos import weights
    from napari_vos.session import Session

    frames, truth = _video()
    s = Session(frames, method="cosnet", checkpoint=checkpoint, device="cpu", maps=True, n_references=3)
    steps = list(s.propagate())
    assert [f.index for f in steps] == list(range(6)) and not any(f.annotated for f in steps)
    res = s.result()
    assert res.labels.shape == truth.shape and res.labels.dtype == np.uint8
    assert set(np.unique(res.labels)) <= {0, 1} and res.object_ids == [1] and res.annotated_frames == []
    gate = res.maps["coattention_gate"]
    assert gate.shape == (6, 1, 3, 4) and ((gate > 0) & (gate < 1)).all()
    assert res.checkpoint_sha256 == weights.sha256_of(checkpoint)
    with pytest.raises(ValueError, match="without an annotation"):
        s.annotate(0, truth[0])


def test_method_averages_gated_summaries_over_references(checkpoint, network):
    from napari_vos.methods.base import VideoFrames

    frames, _ = _video(5)
    images = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    method = COSNet.build(checkpoint=checkpoint, n_references=2)
    method.set_video(VideoFrames(5, lambda t: images[t]))
    assert method.reference_indices == [0, 4]
    step = method.step(images[2])
    assert step.probs.shape == (1, 48, 64) and float(step.probs.min()) >= 0 and float(step.probs.max()) <= 1
    # by hand: mean of Z_an * f_g(Z_an) over the two references, then the segmentation module
    net = method.network
    with torch.no_grad():
        q = net.embed(images[2:3])
        outs = [net.coattention(q.v, net.embed(images[i:i + 1]).v, both=False) for i in (0, 4)]
        z = (outs[0].z_a + outs[1].z_a) / 2
        expected = torch.sigmoid(net.segment(z, q, (48, 64)))[0]
    torch.testing.assert_close(step.probs, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(step.maps["coattention_gate"], ((outs[0].gate_a + outs[1].gate_a) / 2)[0])
    with pytest.raises(ValueError, match="takes none"):
        method.start(images[0], torch.ones(1, 48, 64))


def test_checkpoint_round_trip_and_registry(checkpoint, network):
    from napari_vos.methods import registry

    loaded, _, _ = load_network(checkpoint)
    assert loaded.config == network.config
    assert "cosnet" in registry.METHODS and "cosnet" in registry.DESCRIPTIONS
    assert not registry.needs_annotation("cosnet") and not registry.accepts_annotation("cosnet")
    assert "cosnet" in registry.available_methods(include_untrained=True)
    from napari_vos import weights

    if not weights.list_checkpoints("cosnet"):  # no shipped checkpoint: hidden from the defaults
        assert "cosnet" not in registry.available_methods()


def test_shipped_checkpoint_finds_a_moving_object_without_annotation():
    """The shipped checkpoint, given nothing, marks the bright moving square (measured with the
    session-7 checkpoint: IoU 0.38-0.45 on frames 1-7; an untrained network does not localise it)."""
    from conftest import square_tracking_ious

    from napari_vos import weights

    if not weights.list_checkpoints("cosnet"):
        pytest.skip("no COSNet checkpoint is registered")
    ious = square_tracking_ious("cosnet", annotate=False)
    assert min(ious) > 0.3, ious


def test_cli_propagate_without_labels(checkpoint, tmp_path, capsys):
    from napari_vos.cli import main

    frames, truth = _video(4)
    tifffile.imwrite(tmp_path / "video.tif", frames)
    out = tmp_path / "out.tif"
    assert main(["propagate", str(tmp_path / "video.tif"), "-o", str(out), "--method", "cosnet",
                 "--checkpoint", checkpoint, "--device", "cpu"]) == 0
    labels = tifffile.imread(out)
    assert labels.shape == truth.shape and set(np.unique(labels)) <= {0, 1}
    assert "found" in capsys.readouterr().out


# -- training --------------------------------------------------------------------------------------
def test_balanced_bce_weights_foreground_and_background_equally():
    from napari_vos.training.cosnet_recipe import balanced_bce

    target = torch.zeros(1, 1, 10, 10)
    target[..., :1, :] = 1  # 10 % foreground
    # predicting all background: the foreground's loss weighs 0.9 per pixel, the background's 0.1
    all_bg = balanced_bce(torch.full_like(target, -3.0), target)
    all_fg = balanced_bce(torch.full_like(target, 3.0), target)
    assert float(all_bg) == pytest.approx(float(all_fg), rel=1e-5)  # both halves of the weight mass are equally wrong
    plain = torch.nn.functional.binary_cross_entropy_with_logits(torch.full_like(target, -3.0), target)
    assert float(all_bg) > float(plain)  # a missed small object costs more than under plain BCE


def test_recipe_alternates_pairs_and_saliency_images():
    from napari_vos.training.cosnet_recipe import COSNetRecipe, sample_pair

    recipe = COSNetRecipe(size=(48, 64), batch_size=2, synthetic_fraction=1.0)
    rng = np.random.default_rng(0)
    kinds = []
    for _ in range(4):
        b = recipe.batch(rng)
        kinds.append(b.kind)
        n = 2 if b.kind == "pair" else 1
        assert b.frames.shape == (2, n, 48, 64, 3) and b.masks.shape == (2, n, 48, 64)
        assert b.masks[:, 0].any(axis=(1, 2)).all()
    assert kinds == ["pair", "saliency", "pair", "saliency"]
    frames, truth = _video(6)
    labels = truth.copy()
    labels[:, :5, :5] = 2  # a second object: the truth of a pair is the union
    clip = sample_pair(frames, labels, np.random.default_rng(1), (48, 64))
    assert clip is not None and clip.frames.shape == (2, 48, 64, 3)
    assert not np.allclose(clip.frames[0], clip.frames[1])  # two different frames
    with pytest.raises(ValueError):
        COSNetRecipe(config="light:diagonal")
    assert COSNetRecipe(config="light:vanilla").network_config.variant == "vanilla"


def test_training_steps_lower_the_loss_on_a_repeated_batch(random_frtm_checkpoint, tmp_path):
    from napari_vos.training.cosnet_recipe import COSNetRecipe
    from napari_vos.training.loop import TrainSettings, train
    from napari_vos.weights import load_state_dict_file

    torch.manual_seed(0)
    recipe = COSNetRecipe(size=(48, 64), batch_size=2, synthetic_fraction=1.0, init_checkpoint=random_frtm_checkpoint)
    net = recipe.build(torch.device("cpu"))
    frtm = load_state_dict_file(random_frtm_checkpoint)
    torch.testing.assert_close(net.state_dict()["backbone.conv3.0.conv1.weight"],
                               frtm["backbone.conv3.0.conv1.weight"].float())
    assert not any(p.requires_grad for p in net.backbone.conv3.parameters())  # initialised: deep stage trains
    assert all(p.requires_grad for p in net.backbone.conv4.parameters())
    rng = np.random.default_rng(0)
    pair = recipe.batch(rng)
    saliency = recipe.batch(rng)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    net.train()
    losses = []
    for _ in range(6):
        loss, stats = recipe.loss(net, pair, torch.device("cpu"))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert {"pair_wbce", "pair_iou", "gate"} <= set(stats)
    loss, stats = recipe.loss(net, saliency, torch.device("cpu"))
    loss.backward()
    assert torch.isfinite(loss) and "saliency_wbce" in stats
    assert float(net.saliency.weight.grad.abs().sum()) > 0
    # and through the shared loop, resumable and exportable
    model = train(COSNetRecipe(size=(48, 64), batch_size=1, synthetic_fraction=1.0), tmp_path / "run",
                  TrainSettings(steps=2, log_every=1, save_every=1), log=lambda _: None)
    assert (tmp_path / "run" / "last.pt").exists()
    tensors, meta = recipe.export_tensors(model)
    assert meta["method"] == "cosnet" and meta["config"] == "light"
    assert all(v.dtype == torch.float16 for v in tensors.values() if v.is_floating_point())


def test_make_recipe_knows_cosnet():
    from napari_vos.training.recipes import TRAINABLE, make_recipe

    assert "cosnet" in TRAINABLE
    recipe = make_recipe("cosnet", size=(64, 96), config="light:channel", batch_size=3)
    assert recipe.size == (64, 96) and recipe.batch_size == 3 and recipe.network_config.variant == "channel"


# -- the widget, in a real viewer -------------------------------------------------------------------
@pytest.mark.gui
@needs_display
def test_widget_runs_cosnet_with_no_labels_layer(make_napari_viewer, qtbot, request):
    pytest.importorskip("napari")
    from qtpy.QtCore import Qt

    from napari_vos._widgets.propagate_widget import NO_LABELS, PropagateWidget

    viewer = make_napari_viewer()
    frames, truth = _video(4)
    viewer.add_image(frames, name="video", rgb=True, scale=(1.0, 0.5, 0.5))
    widget = PropagateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    checkpoint = request.getfixturevalue("checkpoint")  # torchvision only after the widget's guard
    widget.select_method("cosnet")
    assert widget.labels_combo.currentText() == NO_LABELS and not widget.labels_combo.isEnabled()
    widget.device_combo.setCurrentText("cpu")
    widget.checkpoint_edit.setText(checkpoint)
    widget.maps_checkbox.setChecked(True)
    n_layers = len(viewer.layers)
    qtbot.mouseClick(widget.propagate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert widget.status.text().startswith("done"), widget.status.text()
    out = viewer.layers["video segmented (cosnet)"]
    assert out.data.shape == truth.shape and out.data.dtype == np.uint8
    np.testing.assert_allclose(out.scale, (1.0, 0.5, 0.5))
    assert set(np.unique(out.data)) <= {0, 1}
    meta = out.metadata["napari_vos"]
    assert meta["method"] == "cosnet" and meta["labels_layer"] is None and meta["frames_done"] == 4
    assert meta["checkpoint"] == checkpoint
    gate = viewer.layers["video segmented (cosnet) - coattention_gate"]
    assert gate.data.shape == (4, 3, 4) and len(viewer.layers) == n_layers + 2
