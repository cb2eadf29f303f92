"""The optical-flow floor: warping is exact for known flows and it tracks moving objects."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

torch = pytest.importorskip("torch")

from napari_vos.evaluation.metrics import evaluate_sequence, jaccard  # noqa: E402
from napari_vos.methods.flow import FlowMethod, estimate_flow, warp_labels, winners  # noqa: E402


def moving_squares(t_len=8, shape=(80, 120), seed=0):
    """Two textured squares translating over a textured background; exact labels."""
    rng = np.random.default_rng(seed)
    bg = ndi.gaussian_filter(rng.random(shape), 2)
    tex = [ndi.gaussian_filter(rng.random((20, 20)), 1.2) * 2 + 0.3 for _ in range(2)]
    frames = np.zeros((t_len, *shape), np.float32)
    labels = np.zeros((t_len, *shape), np.int32)
    for t in range(t_len):
        f = bg.copy()
        for k, (y, x) in enumerate([(10 + t, 10 + 2 * t), (50 - t, 90 - 2 * t)], start=1):
            f[y : y + 20, x : x + 20] = tex[k - 1]
            labels[t, y : y + 20, x : x + 20] = k
        frames[t] = f
    return (frames / frames.max() * 255).astype(np.uint8), labels


def test_warp_labels_constant_flow_is_a_shift():
    lab = np.zeros((20, 20), np.int32)
    lab[5:10, 5:10] = 1
    lab[0:3, 15:18] = 3  # object 2 absent
    flow = np.zeros((2, 20, 20), np.float32)
    flow[0] = -2  # out[r, c] = mask[r - 2, c + 3]
    flow[1] = 3
    out = warp_labels(lab, 3, flow)
    expected = np.zeros((20, 20), np.float32)
    expected[7:12, 2:7] = 1
    np.testing.assert_allclose(out[0], expected, atol=1e-6)
    assert not out[1].any()
    expected3 = np.zeros((20, 20), np.float32)
    expected3[2:5, 12:15] = 1
    np.testing.assert_allclose(out[2], expected3, atol=1e-6)


def test_winners_equals_full_argmax():
    rng = np.random.default_rng(0)
    p = np.zeros((4, 30, 40), np.float32)
    for k in range(4):  # sparse soft blobs that overlap a little
        y, x = rng.integers(0, 25), rng.integers(0, 35)
        p[k, y : y + 8, x : x + 9] = rng.uniform(0.05, 0.9, (min(8, 30 - y), min(9, 40 - x)))
    p /= np.maximum(1.0, p.sum(0, keepdims=True))
    full = np.argmax(np.concatenate([1 - p.sum(0, keepdims=True), p]), axis=0)
    np.testing.assert_array_equal(winners(p), full)


@pytest.mark.parametrize("algorithm", ["ilk", "tvl1"])
def test_estimate_flow_recovers_a_translation(algorithm):
    rng = np.random.default_rng(1)
    a = ndi.gaussian_filter(rng.random((64, 64)), 2).astype(np.float32)
    b = np.roll(a, (1, -2), axis=(0, 1))  # b[r, c] = a[r - 1, c + 2]
    flow = estimate_flow(b, a, algorithm)
    inner = (slice(10, -10), slice(10, -10))
    assert np.median(flow[0][inner]) == pytest.approx(-1, abs=0.2)
    assert np.median(flow[1][inner]) == pytest.approx(2, abs=0.2)


def test_flow_method_tracks_two_objects_through_the_engine():
    from napari_vos import propagate

    frames, labels = moving_squares()
    res = propagate(frames, labels[0], method="flow", device="cpu")
    assert res.labels.shape == labels.shape and res.labels.dtype == np.uint8
    scores = evaluate_sequence("sq", labels, res.labels, annotated=0)
    assert all(o.J.min() > 0.8 for o in scores.objects)
    # better than the trivial "copy the annotation" baseline on the last frame
    for k in (1, 2):
        assert jaccard(labels[-1] == k, res.labels[-1] == k) > jaccard(labels[-1] == k, labels[0] == k) + 0.3


def test_flow_method_protocol_and_options():
    m = FlowMethod(device="cpu", flow_side=32)
    assert m.name == "flow" and m.needs_checkpoint is False
    img = torch.rand(3, 40, 60)
    obj = torch.zeros(2, 40, 60)
    obj[0, 5:15, 5:15] = 1
    obj[1, 20:30, 30:50] = 1
    m.start(img, obj)
    step = m.step(img)
    assert tuple(step.probs.shape) == (2, 40, 60)
    assert step.maps["flow_magnitude"].shape[0] == 1
    # the same image again: no motion, masks stay (within the bilinear edge)
    assert float((step.probs > 0.5).float().sub(obj).abs().sum()) <= 4
    with pytest.raises(ValueError):
        FlowMethod(flow="farneback")
