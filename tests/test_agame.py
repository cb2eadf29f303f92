"""A-GAME: the Gaussian mixture against numpy, distractor components, the recurrence, multi-object
passes and aggregation, end-to-end propagation from a checkpoint, and the training recipe."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_vos.methods.agame import AGAME, load_network
from napari_vos.methods.agame_appearance import (MASS_PRIOR, AppearanceModule, distractor_weights,
                                                 mixture_posteriors)
from napari_vos.methods.agame_network import CONFIGS, AGAMENetwork, seg_at_stride
from napari_vos.nn.aggregation import soft_aggregate


# -- numpy reference of the mixture ------------------------------------------------------------
def np_fit(x, a, r):
    """x (D, N), a (N,), r (D,) -> weighted mean and variance (+ regulariser), one pseudo-count of mass."""
    mass = a.sum() + MASS_PRIOR
    mu = (x * a).sum(1) / mass
    var = ((x - mu[:, None]) ** 2 * a).sum(1) / mass + r
    return mu, var


def np_log_gauss(x, mu, var):
    """log N(x | mu, diag var) for each column of x (D, N)."""
    return -0.5 * (np.log(2 * np.pi * var)[:, None] + (x - mu[:, None]) ** 2 / var[:, None]).sum(0)


def np_mixture(x, y, r, previous=None, rate=1.0):
    """The four components from assignments y (N,) in [0, 1], optionally updated from ``previous``."""
    alpha = [1 - y, y]
    base = [np_fit(x, alpha[k], r[k]) for k in range(2)]
    if previous is not None:
        base = [tuple((1 - rate) * p + rate * n for p, n in zip(previous[k], base[k])) for k in range(2)]
    logs = np.stack([np_log_gauss(x, *base[k]) for k in range(2)])
    post = np.exp(logs - logs.max(0))
    post /= post.sum(0)
    extra = [np.maximum(0, alpha[k] - post[k]) for k in range(2)]
    distractors = [np_fit(x, extra[k], r[2 + k]) for k in range(2)]
    if previous is not None:
        distractors = [tuple((1 - rate) * p + rate * n for p, n in zip(previous[2 + k], distractors[k]))
                       for k in range(2)]
    return base + distractors


def _softplus(v):
    return np.log1p(np.exp(v))


def _module(d, rho):
    m = AppearanceModule(d, d)
    with torch.no_grad():
        m.cov_reg.copy_(torch.from_numpy(rho))
    return m


def _t(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float32))


def test_mixture_fit_log_probs_and_posteriors_match_numpy():
    rng = np.random.default_rng(0)
    d, h, w = 3, 4, 5
    x = rng.normal(size=(d, h, w)) * np.array([1.0, 2.0, 0.5])[:, None, None]
    y = rng.random((h, w))
    rho = rng.normal(size=(4, d)) - 1.0
    m = _module(d, rho.astype(np.float32))
    params = m.fit(_t(x[None]), _t(np.stack([1 - y, y])[None]), n_components=4)
    ref = np_mixture(x.reshape(d, -1), y.ravel(), _softplus(rho))
    np.testing.assert_allclose(params.means[0].detach().numpy(), np.stack([c[0] for c in ref]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(params.variances[0].detach().numpy(), np.stack([c[1] for c in ref]), rtol=1e-4,
                               atol=1e-5)

    log_probs = m(_t(x[None]), params)[0].detach().numpy().reshape(4, -1)
    joint = np.stack([np.log(0.25) + np_log_gauss(x.reshape(d, -1), *c) for c in ref])  # log p(z) p(x|z)
    offset = log_probs - joint  # the dropped constant: the same for every component and pixel
    np.testing.assert_allclose(offset, offset.flat[0], atol=1e-3)
    np.testing.assert_allclose(offset.flat[0], -(np.log(0.25) - d / 2 * np.log(2 * np.pi)), atol=1e-3)
    posterior = np.exp(joint - joint.max(0))
    posterior /= posterior.sum(0)
    ours = mixture_posteriors(m(_t(x[None]), params), 4)[0].detach().numpy().reshape(4, -1)
    np.testing.assert_allclose(ours, posterior, atol=1e-5)


def test_running_update_matches_numpy():
    rng = np.random.default_rng(1)
    d, h, w, rate = 4, 5, 6, 0.3
    x0, x1 = rng.normal(size=(d, h, w)), rng.normal(size=(d, h, w)) + 0.5
    y0, y1 = (rng.random((h, w)) > 0.5).astype(float), rng.random((h, w))
    rho = rng.normal(size=(4, d)).astype(np.float32)
    m = _module(d, rho)
    first = m.fit(_t(x0[None]), _t(np.stack([1 - y0, y0])[None]))
    second = m.fit(_t(x1[None]), _t(np.stack([1 - y1, y1])[None]), previous=first, rate=rate)
    r = _softplus(rho)
    ref0 = np_mixture(x0.reshape(d, -1), y0.ravel(), r)
    ref1 = np_mixture(x1.reshape(d, -1), y1.ravel(), r, previous=ref0, rate=rate)
    np.testing.assert_allclose(second.means[0].detach().numpy(), np.stack([c[0] for c in ref1]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(second.variances[0].detach().numpy(), np.stack([c[1] for c in ref1]), rtol=1e-4,
                               atol=1e-5)
    # lambda = 0 keeps the first frame's mixture ("no update")
    frozen = m.fit(_t(x1[None]), _t(np.stack([1 - y1, y1])[None]), previous=first, rate=0.0)
    assert torch.allclose(frozen.means, first.means) and torch.allclose(frozen.variances, first.variances)


def test_distractor_components_appear_where_base_components_misclassify():
    rng = np.random.default_rng(0)
    h, w = 10, 10
    x = np.zeros((2, h, w))
    x[0] = -3.0
    y = np.zeros((h, w))
    y[0:3] = 1
    x[0, 0:3] = 3.0  # target
    patch = np.zeros((h, w), bool)
    patch[8:10, 0:4] = True
    x[0][patch], x[1][patch] = 3.0, 0.6  # background that looks like the target
    odd = np.zeros((h, w), bool)
    odd[1, 8:10] = True
    x[0][odd] = -3.0  # target that looks like background
    x += rng.normal(scale=0.2, size=x.shape)
    m = _module(2, np.full((4, 2), -2.0, np.float32))
    X, A = _t(x[None]), _t(np.stack([1 - y, y])[None])
    with torch.no_grad():
        p4, p2 = m.fit(X, A, 4), m.fit(X, A, 2)
        base = torch.softmax(m(X, p4)[:, :2], dim=1)
        extra = distractor_weights(A, base)[0].numpy()
        post4 = mixture_posteriors(m(X, p4), 4)[0].numpy()
        post2 = mixture_posteriors(m(X, p2), 2)[0].numpy()
    plain_bg = (y == 0) & ~patch
    plain_fg = (y == 1) & ~odd
    assert extra[0][patch].min() > 0.5 and extra[0][~patch].max() < 0.05  # alpha_2 only on the distractor
    assert extra[1][odd].min() > 0.5 and extra[1][plain_fg].max() < 0.1  # alpha_3 only on the odd target
    assert float(p4.means[0, 2, 0]) > 1.5  # the distractor component sits on target-like features
    assert post4[2][patch].mean() > 0.5 and post4[2][plain_bg].max() < 0.05
    # the base model calls the patch target; the distractor component gives it back to the background
    assert post2[0][patch].max() < 0.1
    assert (post4[0] + post4[2])[patch].mean() > 0.5
    # two components: distractor slots copy the base ones and get no posterior
    assert torch.equal(p2.means[:, 2:], p2.means[:, :2]) and post2[2:].max() == 0


# -- the network and the method ------------------------------------------------------------------
@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return AGAMENetwork(CONFIGS["light"]).eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, network):
    from napari_vos import weights
    from napari_vos.training.agame_recipe import AGAMERecipe

    tensors, meta = AGAMERecipe().export_tensors(network)
    path = tmp_path_factory.mktemp("agame") / "agame-random.safetensors"
    weights.save_checkpoint(path, tensors, meta)
    return str(path)


def _video(n=5):
    from conftest import moving_square_video

    return moving_square_video(n_frames=n, size=(64, 96), step=5)


def _img(frame):
    return torch.from_numpy(frame).permute(2, 0, 1).float() / 255


def _two_objects(truth):
    objects = np.stack([truth, np.zeros_like(truth)]).astype(np.float32)
    objects[1, 48:60, 60:90] = 1
    return torch.from_numpy(objects)


def _drifting_target(n=8, size=8, seed=0):
    """Per-cell colour features (3, size, size): a 3x3 target moving one cell per frame whose colour
    drifts from red towards the (teal) background's; returns features and masks per frame."""
    rng = np.random.default_rng(seed)
    feats, masks = [], []
    for t in range(n):
        x = np.empty((3, size, size))
        x[:] = np.array([0.0, 0.6, 0.6])[:, None, None]
        y = np.zeros((size, size))
        y[2:5, t % (size - 3):t % (size - 3) + 3] = 1
        colour = np.array([1.0, 0.0, 0.0]) + (np.array([0.3, 0.5, 0.4]) - np.array([1.0, 0.0, 0.0])) * t / (n - 1)
        x[:, y > 0] = colour[:, None]
        feats.append(4 * x + rng.normal(scale=0.1, size=x.shape))  # well above the regulariser (0.13)
        masks.append(y)
    return feats, masks


@pytest.mark.parametrize("rate", [0.0, 0.5])
def test_running_update_follows_a_changing_appearance(rate):
    feats, masks = _drifting_target()
    m = _module(3, np.full((4, 3), -2.0, np.float32))
    with torch.no_grad():
        y0 = _t(masks[0])
        params = m.fit(_t(feats[0][None]), torch.stack([1 - y0, y0])[None])
        for t in range(1, len(feats)):
            post = mixture_posteriors(m(_t(feats[t][None]), params), 4)[0]
            target = post[1] + post[3]  # the target class: base + distractor target components
            y = _t(masks[t])  # the frame's segmentation (the network's, in the method)
            params = m.fit(_t(feats[t][None]), torch.stack([1 - y, y])[None], previous=params, rate=rate)
    inside = float(target[_t(masks[-1]) > 0].mean())
    outside = float(target[_t(masks[-1]) == 0].mean())
    assert outside < 0.1
    if rate > 0:
        assert inside > 0.9  # the mixture moved with the target's colour
    else:
        assert inside < 0.3  # "no update": the first frame's model loses the target


def test_step_shapes_maps_and_one_feature_pass_for_all_objects(network, monkeypatch):
    frames, truth = _video()
    m = AGAME(network)
    m.start(_img(frames[0]), _two_objects(truth[0]))
    calls = []
    original = network.backbone.forward
    monkeypatch.setattr(network.backbone, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    step = m.step(_img(frames[1]))
    assert len(calls) == 1
    assert step.probs.shape == (2, 64, 96) and 0 <= float(step.probs.min()) <= float(step.probs.max()) <= 1
    assert set(step.maps) == set(AGAME.map_names)
    for value in step.maps.values():
        assert value.shape == (2, 4, 6)


def test_objects_are_separate_passes_on_shared_features(network):
    frames, truth = _video()
    objects = _two_objects(truth[0])
    both = AGAME(network)
    both.start(_img(frames[0]), objects)
    together = both.step(_img(frames[1]))
    for k in range(2):
        single = AGAME(network)
        single.start(_img(frames[0]), objects[k:k + 1])
        alone = single.step(_img(frames[1]))
        torch.testing.assert_close(together.probs[k], alone.probs[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(together.maps["coarse_segmentation"][k], alone.maps["coarse_segmentation"][0],
                                   atol=1e-5, rtol=1e-4)


def test_aggregated_segmentation_replaces_the_coarse_mask_in_the_recurrence(network):
    frames, truth = _video()
    objects = _two_objects(truth[0])
    m = AGAME(network, update_rate=0.25)
    m.start(_img(frames[0]), objects)
    before = m.state.mixture
    step = m.step(_img(frames[1]))
    x = m._last.appearance_features
    aggregated = soft_aggregate(step.probs)[1:]
    m.update(aggregated)
    seg = seg_at_stride(aggregated)
    torch.testing.assert_close(m.state.previous_seg, seg)
    expected = network.appearance.fit(x, seg, 4, previous=before, rate=0.25)
    torch.testing.assert_close(m.state.mixture.means, expected.means)
    torch.testing.assert_close(m.state.mixture.variances, expected.variances)
    # the coarse recurrence (training's) uses the coarse predictor's own soft output instead
    c = AGAME(network, recurrence="coarse")
    c.start(_img(frames[0]), objects)
    c.step(_img(frames[1]))
    coarse = torch.softmax(c._last.coarse_logits, dim=1)
    c.update(aggregated)
    torch.testing.assert_close(c.state.previous_seg, coarse)


def test_options_are_checked(network):
    with pytest.raises(ValueError, match="n_components"):
        AGAME(network, n_components=3)
    with pytest.raises(ValueError, match="update_rate"):
        AGAME(network, update_rate=1.5)
    with pytest.raises(ValueError, match="recurrence"):
        AGAME(network, recurrence="fine")
    with pytest.raises(TypeError):
        AGAME(network, memory_capacity=3)
    m = AGAME(network, n_components=2, update_rate=0.0)
    assert m.config.n_components == 2 and m.config.update_rate == 0.0


def test_propagate_end_to_end_with_a_checkpoint(checkpoint):
    import napari_vos
    from napari_vos import weights

    frames, truth = _video()
    labels = truth[0].copy()
    labels[48:60, 60:90] = 5
    result = napari_vos.propagate(frames, labels, method="agame", checkpoint=checkpoint, device="cpu", maps=True,
                                  update_rate=0.2, n_components=2)
    assert result.labels.shape == truth.shape
    np.testing.assert_array_equal(result.labels[0], labels)
    assert set(np.unique(result.labels)) <= {0, 1, 5}
    assert result.checkpoint_sha256 == weights.sha256_of(checkpoint)
    assert result.options["update_rate"] == 0.2 and result.options["n_components"] == 2
    assert set(result.maps) == set(AGAME.map_names)
    assert result.maps["coarse_segmentation"].shape == (5, 2, 4, 6)
    assert np.all(result.maps["distractor_posterior"] == 0)  # two components: no distractor


def test_multi_object_propagation_aggregates_before_the_update(checkpoint, monkeypatch):
    import napari_vos

    frames, truth = _video(4)
    labels = truth[0].copy()
    labels[48:60, 60:90] = 2
    seen = []
    step, update = AGAME.step, AGAME.update

    def spy_step(self, image):
        out = step(self, image)
        seen.append([out.probs.clone()])
        return out

    def spy_update(self, probs):
        seen[-1].append(probs.clone())
        update(self, probs)
        seen[-1].append(self.state.previous_seg.clone())

    monkeypatch.setattr(AGAME, "step", spy_step)
    monkeypatch.setattr(AGAME, "update", spy_update)
    result = napari_vos.propagate(frames, labels, method="agame", checkpoint=checkpoint, device="cpu",
                                  direction="forward")
    assert len(seen) == 3
    for raw, given, state_seg in seen:
        torch.testing.assert_close(given, soft_aggregate(raw)[1:])  # objects compete (RGMP eq. 1)
        assert float(given.sum(0).max()) <= 1.0 + 1e-5
        torch.testing.assert_close(state_seg, seg_at_stride(given))
    agg = soft_aggregate(seen[-1][0])
    np.testing.assert_array_equal(result.labels[-1], np.array([0, 1, 2])[agg.argmax(0).numpy()])


def test_registry_and_checkpoint_loading(checkpoint, network):
    from napari_vos import weights
    from napari_vos.methods import registry

    assert registry.method_class("agame") is AGAME and "agame" in registry.DESCRIPTIONS
    loaded, name, sha = load_network(checkpoint)
    assert loaded.config == network.config and sha == weights.sha256_of(checkpoint)
    for key, value in network.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value.half().float() if value.is_floating_point() else value)
    if not weights.list_checkpoints("agame"):
        assert "agame" not in registry.available_methods() and "agame" in registry.available_methods(True)
        with pytest.raises(weights.CheckpointError, match="agame"):
            registry.create("agame")


def test_full_configuration_is_the_papers():
    cfg = CONFIGS["full"]
    assert (cfg.backbone, cfg.deep_layer, cfg.appearance_channels, cfg.propagation_channels) == \
        ("resnet101", "conv5", 512, 512)
    assert cfg.fusion_channels == (512, 128) and cfg.dilations == (1, 3, 6) and cfg.update_rate == 0.1


# -- training ------------------------------------------------------------------------------------
def test_ordered_clips_keep_the_video_order():
    from napari_vos.training.ordered_clips import sample_ordered_clip

    t, h, w = 12, 32, 48
    frames = np.zeros((t, h, w, 3), np.uint8)
    labels = np.zeros((t, h, w), np.int32)
    for i in range(t):
        frames[i] = 20 * i  # the frame index is readable from the pixels
        labels[i, 8:24, 10:30] = 1
    rng = np.random.default_rng(0)
    for _ in range(10):
        clip = sample_ordered_clip(frames, labels, 5, rng, (32, 48), max_step=2)
        idx = np.round(clip.frames[:, 0, 0, 0] * 255 / 20).astype(int)
        steps = np.diff(idx)
        assert len(set(steps.tolist())) == 1 and abs(int(steps[0])) in (1, 2)
        assert clip.masks.shape == (5, 32, 48) and clip.masks[0].any()


def test_recipe_trains_end_to_end_through_the_mixture(random_frtm_checkpoint):
    from napari_vos.training.agame_recipe import AGAMERecipe
    from napari_vos.training.clips import Clip
    from napari_vos.weights import load_state_dict_file

    torch.manual_seed(0)
    recipe = AGAMERecipe(size=(64, 96), batch_size=1, n_frames=3, init_checkpoint=random_frtm_checkpoint)
    net = recipe.build(torch.device("cpu"))
    frtm = load_state_dict_file(random_frtm_checkpoint)
    torch.testing.assert_close(net.state_dict()["backbone.conv3.0.conv1.weight"], frtm["backbone.conv3.0.conv1.weight"])
    # initialised backbone: only the deep stage trains, as in the paper
    assert not any(p.requires_grad for p in net.backbone.conv3.parameters())
    assert all(p.requires_grad for p in net.backbone.conv4.parameters())
    frames, truth = _video(3)
    clip = Clip(frames.astype(np.float32) / 255, truth.astype(np.float32))
    net.train()
    assert not net.backbone.conv2.training and net.backbone.conv4.training
    loss, stats = recipe.loss(net, [clip], torch.device("cpu"))
    loss.backward()
    assert torch.isfinite(loss) and {"final_ce", "coarse_ce", "iou", "coarse_iou"} <= set(stats)
    assert float(net.appearance.cov_reg.grad.abs().sum()) > 0  # gradients pass through the mixture fit
    assert float(net.appearance.project.weight.grad.abs().sum()) > 0
    assert float(net.backbone.conv4[0].conv1.weight.grad.abs().sum()) > 0
    assert net.backbone.conv3[0].conv1.weight.grad is None
    tensors, meta = recipe.export_tensors(net)
    assert meta["method"] == "agame" and all(v.dtype == torch.float16 for v in tensors.values() if v.is_floating_point())


@pytest.mark.real_working_size
def test_shipped_checkpoint_follows_a_moving_object():
    """The shipped checkpoint (the registry's default) tracks a moving square at the working size a
    user gets: the 96x128 video enlarged to A-GAME's 480-pixel shorter side."""
    from conftest import moving_square_video, square_tracking_ious

    from napari_vos import Session, weights

    if not weights.list_checkpoints("agame"):
        pytest.skip("no A-GAME checkpoint is registered")
    frames, _ = moving_square_video(n_frames=8, size=(96, 128))
    assert Session(frames, method="agame", device="cpu").work_size == (480, 640)
    ious = square_tracking_ious("agame")
    assert min(ious) > 0.75, ious


def test_clip_frames_sets_the_clip_length_of_the_clip_trained_recipes():
    """`napari-vos train agame --clip-frames 14` (the paper's later stage) draws 14-frame clips."""
    from napari_vos.training.recipes import make_recipe

    recipe = make_recipe("agame", size=(32, 48), batch_size=2, synthetic_fraction=1.0, clip_frames=14)
    assert recipe.n_frames == 14
    clips = recipe.batch(np.random.default_rng(0))
    assert len(clips) == 2 and all(c.frames.shape[0] == 14 and c.masks.shape == (14, 32, 48) for c in clips)
    assert make_recipe("rvos", size=(64, 64), batch_size=1, synthetic_fraction=1.0, clip_frames=3).clip_length == 3
    assert make_recipe("agame", size=(32, 48), synthetic_fraction=1.0).n_frames == 8  # the default stays
    with pytest.raises(ValueError, match="clip-frames"):
        make_recipe("frtm", size=(32, 48), clip_frames=4)


def test_shared_features_are_convolved_once_with_the_same_result():
    """The mask-propagation and upsampling modules given the frame's features once (batch 1, shared
    by K objects) return what they return for the features copied per object."""
    import torch

    from napari_vos.methods.agame_network import MaskPropagation, Upsampling

    g = torch.Generator().manual_seed(0)
    up, prop = Upsampling(32, 16, 8, 12).eval(), MaskPropagation(24, 16, (1, 3)).eval()
    k = 4
    s8, s4 = torch.randn(1, 16, 12, 16, generator=g), torch.randn(1, 8, 24, 32, generator=g)
    fused = torch.randn(k, 32, 6, 8, generator=g)
    current, reference = torch.randn(1, 24, 6, 8, generator=g), torch.randn(1, 24, 6, 8, generator=g)
    previous, first = torch.rand(k, 2, 6, 8, generator=g), torch.rand(k, 2, 6, 8, generator=g)

    def copied(x):
        return x.expand(k, -1, -1, -1).contiguous()

    with torch.no_grad():
        torch.testing.assert_close(up(s8, s4, fused), up(copied(s8), copied(s4), fused))
        torch.testing.assert_close(prop(current, reference, previous, first),
                                   prop(copied(current), copied(reference), previous, first))
        # a per-object reference (K, C, h, w) with the shared current frame still works
        torch.testing.assert_close(prop(current, copied(reference), previous, first),
                                   prop(copied(current), copied(reference), previous, first))


def _colour_change_video(n_frames=16, height=128, width=192, side=32, change=8, seed=0):
    """A textured bright square moving right and down that turns dark blue at frame ``change``."""
    rng = np.random.default_rng(seed)
    background = (rng.random((height, width, 3)) * 60).astype(np.uint8)
    bright = (180 + rng.random((side, side, 3)) * 60).astype(np.uint8)
    blue = np.zeros((side, side, 3), np.uint8)
    blue[..., 2] = (120 + rng.random((side, side)) * 60).astype(np.uint8)
    blue[..., 1] = 20
    frames = np.empty((n_frames, height, width, 3), np.uint8)
    truth = np.zeros((n_frames, height, width), np.uint8)
    for t in range(n_frames):
        y, x = 16 + 3 * t, 12 + 6 * t
        frames[t] = background
        frames[t, y:y + side, x:x + side] = bright if t < change else blue
        truth[t, y:y + side, x:x + side] = 1
    return frames, truth


@pytest.mark.real_working_size
def test_a_correction_after_an_appearance_change_holds():
    """The shipped checkpoint, corrected on frame 10 after the square turned blue: at the per-frame
    rate (0.1) the mixture stayed nine tenths frame 0's and the correction wore off (IoU 0.49, 0.20,
    0.09, 0.05, 0.01 on frames 11-15); at remember_rate 0.5 it holds as a fresh start from 10 does."""
    from napari_vos import Session

    frames, truth = _colour_change_video()

    def after_10(session):
        labels = session.run("both" if 0 in session.annotations else "forward").labels
        return np.mean([(labels[t] == 1)[truth[t] == 1].sum() / ((labels[t] == 1) | (truth[t] == 1)).sum()
                        for t in range(11, 16)])

    fresh = Session(frames, method="agame", device="cpu", precision="fp32")
    fresh.annotate(10, truth[10])
    corrected = Session(frames, method="agame", device="cpu", precision="fp32")
    corrected.annotate(0, truth[0])
    corrected.annotate(10, truth[10])
    faded = Session(frames, method="agame", device="cpu", precision="fp32", remember_rate=0.1)
    faded.annotate(0, truth[0])
    faded.annotate(10, truth[10])
    assert after_10(fresh) > 0.85 and after_10(corrected) > 0.8 and after_10(faded) < 0.5
