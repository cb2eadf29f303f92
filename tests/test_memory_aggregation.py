"""FRTM's sample memory (weights, eviction) and RGMP's soft aggregation (eq. 1)."""
import math

import pytest
import torch

from napari_vos.nn.aggregation import labels_from_aggregate, soft_aggregate
from napari_vos.nn.sample_memory import SampleMemory


def _sample(value: float):
    return torch.full((2, 3, 3), value), torch.full((1, 6, 6), value)


def test_memory_weights_grow_by_one_over_one_minus_eta():
    mem = SampleMemory(capacity=10, eta=0.1)
    for i in range(4):
        mem.add(*_sample(i))
    w = mem.weights
    assert math.isclose(float(w.sum()), 1.0, rel_tol=1e-6)
    ratios = (w[1:] / w[:-1]).tolist()
    for r in ratios:
        assert math.isclose(r, 1 / 0.9, rel_tol=1e-5)


def test_augmented_samples_share_weight():
    mem = SampleMemory(capacity=10, eta=0.1)
    mem.add(*_sample(0))
    for i in range(4):
        mem.add(*_sample(0), same_weight=True)
    assert torch.allclose(mem.weights, torch.full((5,), 0.2))


def test_memory_evicts_lowest_weight_at_capacity():
    mem = SampleMemory(capacity=3, eta=0.1)
    for i in range(5):
        mem.add(*_sample(float(i)))
    assert len(mem) == 3
    kept = mem.features[:, 0, 0, 0].tolist()
    assert sorted(kept) == [2.0, 3.0, 4.0]  # oldest (lowest weight) gone; a new sample takes the evicted slot
    assert mem.labels.shape == (3, 1, 6, 6) and mem.labels[:, 0, 0, 0].tolist() == kept
    # each sample keeps its own weight wherever its slot is: weight grows with the sample's age rank
    order = sorted(range(3), key=lambda i: kept[i])
    w = mem.weights.tolist()
    assert w[order[0]] < w[order[1]] < w[order[2]]
    assert math.isclose(w[order[2]] / w[order[1]], 1 / 0.9, rel_tol=1e-5)


def test_memory_slots_grow_and_an_add_at_capacity_copies_one_sample():
    mem = SampleMemory(capacity=20, eta=0.1)
    mem.add(*_sample(0.0))
    assert mem._features.shape[0] == 8  # preallocated slots, not the full capacity
    for i in range(1, 20):
        mem.add(*_sample(float(i)))
    assert mem._features.shape[0] == 20 and mem.features[:, 0, 0, 0].tolist() == [float(i) for i in range(20)]
    storage = mem._features.data_ptr()
    mem.add(*_sample(20.0))  # at capacity: sample 0 (the lowest weight) is overwritten in place
    assert mem._features.data_ptr() == storage
    assert mem.features[0, 0, 0, 0].item() == 20.0 and len(mem) == 20


def test_memory_weights_stay_finite_on_long_stacks():
    mem = SampleMemory(capacity=5, eta=0.1)
    for i in range(3000):
        mem.add(torch.zeros(1, 1, 1), torch.zeros(1, 1, 1))
    assert torch.isfinite(mem.weights).all()
    assert math.isclose(float(mem.weights.sum()), 1.0, rel_tol=1e-5)


def test_soft_aggregation_against_hand_values():
    p = torch.tensor([0.8, 0.5]).view(2, 1, 1)
    agg = soft_aggregate(p)[:, 0, 0]
    bg = (1 - 0.8) * (1 - 0.5)
    odds = torch.tensor([bg / (1 - bg), 0.8 / 0.2, 0.5 / 0.5])
    expected = odds / odds.sum()
    assert torch.allclose(agg, expected, atol=1e-5)
    assert torch.allclose(soft_aggregate(torch.rand(3, 4, 5)).sum(0), torch.ones(4, 5), atol=1e-5)


def test_aggregation_single_object_keeps_ordering_and_labels():
    p = torch.tensor([[[0.9, 0.2]]])
    agg = soft_aggregate(p)
    assert labels_from_aggregate(agg).tolist() == [[1, 0]]


def test_one_object_goes_through_eq_1_too():
    """With one object eq. (1) sharpens its probability (p^2 / (p^2 + (1 - p)^2)); the engine keeps
    that (measured: without it A-GAME and RGMP lose 7-8 J&F on the hold-out split, docs/benchmarks.md)."""
    p = torch.tensor([[[0.7, 0.5, 0.1]]])
    sharp = p ** 2 / (p ** 2 + (1 - p) ** 2)
    torch.testing.assert_close(soft_aggregate(p), torch.cat([1 - sharp, sharp]), rtol=1e-5, atol=1e-6)


def test_labels_from_aggregate_is_argmax_with_ties_to_the_lower_index():
    import torch

    from napari_vos.nn.aggregation import labels_from_aggregate

    x = torch.round(torch.rand(4, 30, 40) * 3) / 3  # many exact ties
    assert torch.equal(labels_from_aggregate(x), x.argmax(dim=0))
    tie = torch.tensor([[[0.5]], [[0.5]], [[0.2]]])
    assert int(labels_from_aggregate(tie)) == 0


def _cells(k=12, size=(96, 128), seed=0):
    """k small overlapping blobs of probability on an empty field (and one absent object)."""
    g = torch.Generator().manual_seed(seed)
    p = torch.zeros(k, *size)
    for i in range(k - 1):  # the last object is absent everywhere
        y = int(torch.randint(0, size[0] - 20, (1,), generator=g))
        x = int(torch.randint(0, size[1] - 20, (1,), generator=g))
        p[i, y:y + 20, x:x + 20] = torch.rand(20, 20, generator=g)
    p[1, :5, :5] = 1.0  # saturated, clamped like the rest
    return p


def test_many_small_objects_aggregate_box_by_box_to_the_dense_result():
    from napari_vos.nn.aggregation import _dense_aggregate, _sparse_aggregate, _support_boxes

    p = _cells()
    boxes = _support_boxes(p, 1e-7)
    assert len(boxes) == 11 and all(b[0] != 11 for b in boxes)  # the absent object has no box
    sparse, dense = _sparse_aggregate(p, boxes), _dense_aggregate(p)
    torch.testing.assert_close(sparse, dense, atol=2e-6, rtol=1e-4)
    torch.testing.assert_close(sparse.sum(0), torch.ones(p.shape[1:]), atol=1e-5, rtol=0)
    torch.testing.assert_close(soft_aggregate(p), sparse)  # the public function takes this path here
    # the hand formula at a pixel two objects share
    y, x = torch.nonzero((p > 0.1).sum(0) >= 2)[0].tolist()
    q = p[:, y, x].clamp(1e-7, 1 - 1e-7)
    bg = torch.prod(1 - q).clamp(1e-7, 1 - 1e-7)
    odds = torch.cat([(bg / (1 - bg))[None], q / (1 - q)])
    torch.testing.assert_close(sparse[:, y, x], odds / odds.sum(), atol=1e-6, rtol=1e-4)


def test_aggregation_keeps_its_gradient_with_many_objects():
    p = _cells().clamp(0.01, 0.99).requires_grad_(True)  # dense everywhere: no box saves anything
    soft_aggregate(p)[1:].sum().backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()
    q = _cells().requires_grad_(True)
    out = soft_aggregate(q)
    out[1].sum().backward()
    assert q.grad is not None and q.grad.abs().sum() > 0


def test_labels_of_many_objects_are_the_argmax_with_ties_to_the_lower_index():
    agg = soft_aggregate(_cells(k=16, seed=3))
    assert torch.equal(labels_from_aggregate(agg), agg.argmax(dim=0))
    tie = torch.zeros(10, 4, 4)
    tie[0] = 0.2
    tie[3] = tie[5] = 0.4  # objects 3 and 5 tie at the top: 3 wins
    assert labels_from_aggregate(tie).unique().tolist() == [3]


@pytest.mark.parametrize("k", [2, 5, 14])  # the dense path (fewer than 8 objects) and the box-wise one
@pytest.mark.parametrize(("source", "target"), [((64, 96), (150, 211)), ((120, 90), (47, 61)), ((50, 50), (100, 100))])
def test_labels_of_many_objects_at_another_size_are_the_argmax_of_the_bilinear_resize(source, target, k):
    import torch.nn.functional as F

    from napari_vos.nn.aggregation import labels_at_size

    p = torch.nn.functional.interpolate(_cells(k=k, seed=5)[None], size=source, mode="nearest")[0]
    agg = soft_aggregate(p)
    resized = F.interpolate(agg[None], size=target, mode="bilinear", align_corners=False)[0]
    expected = resized.argmax(dim=0)
    got = labels_at_size(agg, target)
    assert got.shape == target and got.max() > 0
    top2 = resized.topk(2, dim=0).values
    differ = got != expected
    assert (top2[0] - top2[1])[differ].le(1e-4).all()  # at most a rounding-level tie decides otherwise
    assert differ.float().mean() < 1e-3
    assert torch.equal(labels_at_size(agg, source), agg.argmax(dim=0))  # same size: no resize


def test_many_objects_aggregate_into_a_given_stack_whatever_it_held():
    from napari_vos.nn.aggregation import uses_boxwise_output

    p = _cells()
    assert uses_boxwise_output(p) and not uses_boxwise_output(p[:2])
    out = torch.full((p.shape[0] + 1, *p.shape[1:]), 7.0)  # last frame's values: all overwritten
    result = soft_aggregate(p, out=out)
    assert result is out
    torch.testing.assert_close(out, soft_aggregate(p))
    wrong = torch.empty(3, 4, 4)
    assert soft_aggregate(p, out=wrong) is not wrong  # a stack of another shape is not used


def test_the_engine_alternates_two_stacks_so_the_last_aggregate_survives_the_next():
    from napari_vos.session import _reused_stack

    p = _cells()
    stacks: list[torch.Tensor] = []
    got = [_reused_stack(stacks, p) for _ in range(4)]
    assert got[0] is not got[1] and got[2] is got[0] and got[3] is got[1]
    assert _reused_stack(stacks, p[:2]) is None  # few objects: the dense path, new tensors
    assert _reused_stack(stacks, p[:, :10]) is not got[0] and len(stacks) == 1  # a new size: new stacks
