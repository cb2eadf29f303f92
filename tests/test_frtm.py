"""FRTM as a method: shapes, the memory schedule, and the target model following a moving object."""
import numpy as np
import pytest
import torch

from napari_vos.methods.frtm import CONFIGS, FRTM, FRTMNetwork


def _frames(n=8, seed=0):
    from conftest import moving_square_video

    return moving_square_video(n_frames=n, size=(96, 128), step=6, seed=seed)


def test_target_scores_follow_the_moving_object():
    torch.manual_seed(0)
    frames, truth = _frames()
    m = FRTM(FRTMNetwork(CONFIGS["fast"]))
    img = lambda t: torch.from_numpy(frames[t]).permute(2, 0, 1).float() / 255  # noqa: E731
    m.start(img(0), torch.from_numpy(truth[0][None]).float())
    for t in range(1, len(frames)):
        step = m.step(img(t))
        scores = step.maps["target_scores"][0]  # (h, w) at stride 16
        ys, xs = np.nonzero(truth[t])
        cy, cx = ys.mean() / 16, xs.mean() / 16
        peak = np.unravel_index(int(scores.argmax()), scores.shape)
        assert abs(peak[0] - cy) <= 1.5 and abs(peak[1] - cx) <= 1.5, (t, peak, (cy, cx))
        m.update(torch.from_numpy(truth[t][None]).float())


def test_memory_grows_and_w2_is_refit_every_ts_frames():
    torch.manual_seed(0)
    frames, truth = _frames(n=11)
    m = FRTM(FRTMNetwork(CONFIGS["fast"]), update_interval=4, memory_capacity=9)
    img = lambda t: torch.from_numpy(frames[t]).permute(2, 0, 1).float() / 255  # noqa: E731
    m.start(img(0), torch.from_numpy(truth[0][None]).float())
    assert len(m.memory) == 5  # annotated frame + 4 augmented copies
    w1 = m.target.w1.clone()
    w2_history = [m.target.w2.clone()]
    for t in range(1, 9):
        step = m.step(img(t))
        assert step.probs.shape == (1, 96, 128)
        m.update(step.probs)
        w2_history.append(m.target.w2.clone())
    assert len(m.memory) == 9  # capped at K_max
    changed = [i for i in range(1, 9) if not torch.equal(w2_history[i], w2_history[i - 1])]
    assert changed == [4, 8]
    assert torch.equal(m.target.w1, w1)  # w1 fixed during updates


def test_several_objects_share_one_feature_pass(monkeypatch):
    torch.manual_seed(0)
    frames, truth = _frames()
    objects = np.stack([truth[0], np.zeros_like(truth[0])]).astype(np.float32)
    objects[1, 70:90, 90:120] = 1
    net = FRTMNetwork(CONFIGS["fast"])
    m = FRTM(net)
    img = torch.from_numpy(frames[1]).permute(2, 0, 1).float() / 255
    m.start(img, torch.from_numpy(objects))
    calls = []
    original = net.backbone.forward
    monkeypatch.setattr(net.backbone, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    step = m.step(img)
    assert len(calls) == 1
    assert step.probs.shape == (2, 96, 128)
    assert step.maps["target_scores"].shape[0] == 2


def test_remember_adds_a_reference_and_refits():
    torch.manual_seed(0)
    frames, truth = _frames()
    m = FRTM(FRTMNetwork(CONFIGS["fast"]))
    img = lambda t: torch.from_numpy(frames[t]).permute(2, 0, 1).float() / 255  # noqa: E731
    m.start(img(0), torch.from_numpy(truth[0][None]).float())
    w2 = m.target.w2.clone()
    m.remember(img(5), torch.from_numpy(truth[5][None]).float())
    assert len(m.memory) == 10
    assert not torch.equal(m.target.w2, w2)


def test_shipped_checkpoint_scores_follow_a_moving_object_end_to_end():
    """Through the engine with the default (shipped) checkpoint: the target scores track the square."""
    from napari_vos import propagate

    frames, truth = _frames(n=8)
    result = propagate(frames, truth[0], method="frtm", device="cpu", direction="forward", maps=True)
    assert result.checkpoint == "frtm-resnet18-vos"
    assert result.labels.shape == truth.shape
    scores = result.maps["target_scores"][:, 0]  # (T, h, w) at stride 16
    for t in range(1, 8):
        ys, xs = np.nonzero(truth[t])
        peak = np.unravel_index(int(scores[t].argmax()), scores[t].shape)
        assert abs(peak[0] - ys.mean() / 16) <= 1.5 and abs(peak[1] - xs.mean() / 16) <= 1.5, (t, peak)


@pytest.mark.real_working_size
def test_shipped_checkpoint_labels_follow_a_moving_object():
    """The shipped checkpoint's labels (not only its target scores) track a moving square, at the
    working size a user gets (the 96x128 video enlarged to a 480-pixel shorter side)."""
    from conftest import square_tracking_ious

    ious = square_tracking_ious("frtm")
    assert min(ious) > 0.8, ious


def test_composite_filter_equals_the_two_layers():
    """D(x) computed as one composite 3x3 filter equals w2 * (w1 * x) layer by layer, on features
    the K objects share (channels-last, as the backbone gives them) and on per-problem features
    (the training's batch of K sequences)."""
    import torch
    import torch.nn.functional as F

    from napari_vos.methods.frtm_target import target_scores

    g = torch.Generator().manual_seed(0)
    w1 = torch.randn(3, 96, 64, generator=g)
    w2 = torch.randn(3, 96, 3, 3, generator=g)
    features = torch.randn(5, 64, 7, 9, generator=g).contiguous(memory_format=torch.channels_last)

    def two_layers(feats_k: torch.Tensor, k: int) -> torch.Tensor:  # (M, C, h, w) -> (M, h, w)
        hidden = torch.einsum("dc,mchw->mdhw", w1[k], feats_k)
        return F.conv2d(hidden, w2[k:k + 1], padding=1)[:, 0]

    shared = target_scores(w1, w2, features)
    assert shared.shape == (5, 3, 7, 9)
    torch.testing.assert_close(shared, torch.stack([two_layers(features, k) for k in range(3)], 1),
                               rtol=1e-4, atol=1e-3)
    own = torch.randn(3, 5, 64, 7, 9, generator=g)
    per_problem = target_scores(w1, w2, own)
    torch.testing.assert_close(per_problem, torch.stack([two_layers(own[k], k) for k in range(3)], 1),
                               rtol=1e-4, atol=1e-3)


def test_segmentation_network_on_shared_features_equals_copied_features():
    """S given one image's features for K objects (the projection's part of the first encoder
    convolution computed once) returns what it returns for the features copied per object."""
    import torch

    from napari_vos.methods.frtm_segnet import SegmentationNetwork

    g = torch.Generator().manual_seed(0)
    channels = (8, 12, 16, 20)
    net = SegmentationNetwork(channels, ch=8).eval()
    sizes = {"conv2": 16, "conv3": 8, "conv4": 4, "conv5": 2}
    feats = {n: torch.randn(1, c, sizes[n], sizes[n], generator=g) for n, c in zip(sizes, channels)}
    scores = torch.randn(3, 1, 4, 4, generator=g)
    with torch.no_grad():
        shared = net(feats, scores, (64, 64))
        copied = net({n: f.expand(3, -1, -1, -1).contiguous() for n, f in feats.items()}, scores, (64, 64))
    assert shared.shape == (3, 64, 64)
    torch.testing.assert_close(shared, copied)


def test_update_stores_the_frames_pooled_probabilities_in_the_newest_memory_slot():
    """Pins Algorithm 1's memory extension: update adds the frame's probabilities, pooled to the label
    stride 8, as the newest (highest-weight) sample, not an empty label map."""
    import torch.nn.functional as F

    from napari_vos.nn.padding import pad_to_multiple

    torch.manual_seed(0)
    frames, truth = _frames(n=2)
    m = FRTM(FRTMNetwork(CONFIGS["fast"]))
    img = lambda t: torch.from_numpy(frames[t]).permute(2, 0, 1).float() / 255  # noqa: E731
    m.start(img(0), torch.from_numpy(truth[0][None]).float())
    m.step(img(1))
    probs = torch.from_numpy(truth[1][None]).float()
    m.update(probs)
    assert len(m.memory) == 6
    newest = int(torch.argmax(m.memory.weights))
    padded, _ = pad_to_multiple(probs, 32)
    expected = F.adaptive_avg_pool2d(padded[None], (padded.shape[-2] // 8, padded.shape[-1] // 8))[0]
    assert m.memory.labels[newest].sum() > 0
    torch.testing.assert_close(m.memory.labels[newest], expected)


def test_the_eta_option_reaches_the_sample_memory():
    """Pins the eta option: FRTM(eta=0.2) gives the next frame's sample 1 / (1 - 0.2) times the
    annotated frame's weight."""
    torch.manual_seed(0)
    frames, truth = _frames(n=2)
    m = FRTM(FRTMNetwork(CONFIGS["fast"]), eta=0.2)
    img = lambda t: torch.from_numpy(frames[t]).permute(2, 0, 1).float() / 255  # noqa: E731
    m.start(img(0), torch.from_numpy(truth[0][None]).float())
    m.update(m.step(img(1)).probs)
    assert m.memory.eta == 0.2
    w = m.memory.weights
    assert float(w.max() / w.min()) == pytest.approx(1 / 0.8, rel=1e-5)
