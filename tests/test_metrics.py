"""DAVIS J/F/statistics and CTC SEG against hand-computed cases and properties."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage as ndi
from skimage.morphology import disk

from napari_vos.evaluation.ctc import seg_measure, seg_per_object
from napari_vos.evaluation.metrics import (
    _within,
    bound_pixels,
    db_statistics,
    evaluate_sequence,
    evaluated_frames,
    f_measure,
    jaccard,
    object_scores,
    seg2bmap,
    score_stack,
    summarise,
)


def square(shape, y0, x0, n):
    m = np.zeros(shape, bool)
    m[y0 : y0 + n, x0 : x0 + n] = True
    return m


def test_seg2bmap_of_a_square_is_the_davis_ring():
    b = seg2bmap(square((20, 20), 5, 5, 10))
    # DAVIS boundaries sit half a pixel towards the origin: an 11x11 ring from (4, 4) to (14, 14)
    ring = np.zeros((20, 20), bool)
    ring[4:15, 4:15] = True
    ring[5:14, 5:14] = False
    np.testing.assert_array_equal(b, ring)
    assert b.sum() == 40


def test_j_and_f_hand_computed_shift():
    gt = square((100, 100), 40, 40, 10)
    pred = square((100, 100), 40, 43, 10)  # shifted 3 px right
    assert bound_pixels(gt.shape) == 2  # ceil(0.008 * 141.4)
    assert jaccard(gt, pred) == pytest.approx(70 / 130)
    # 24 of the 40 boundary pixels lie within 2 px of the other boundary (worked out by hand)
    assert f_measure(gt, pred) == pytest.approx(0.6)
    # a 2-px shift is inside the tolerance: F = 1, J < 1
    pred2 = square((100, 100), 40, 42, 10)
    assert f_measure(gt, pred2) == 1.0 and jaccard(gt, pred2) == pytest.approx(80 / 120)


def test_empty_cases_follow_davis():
    z = np.zeros((10, 10), bool)
    m = square((10, 10), 2, 2, 4)
    assert jaccard(z, z) == 1.0 and f_measure(z, z) == 1.0
    assert jaccard(m, z) == 0.0 and f_measure(m, z) == 0.0  # P = 1, R = 0
    assert jaccard(z, m) == 0.0 and f_measure(z, m) == 0.0  # P = 0, R = 1


def test_db_statistics_hand_computed():
    v = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    mean, recall, decay = db_statistics(v)
    assert mean == pytest.approx(0.55)
    assert recall == pytest.approx(0.5)  # 0.5 itself is not > 0.5
    # DAVIS bins for n=8: ids [0, 2, 4, 5, 7] -> first bin v[0:3], last bin v[5:8]
    assert decay == pytest.approx(0.8 - 0.3)
    assert db_statistics(np.array([np.nan, 1.0, 0.0]))[0] == pytest.approx(0.5)


def test_db_statistics_long_sequence_has_no_uint8_overflow():
    v = np.r_[np.ones(300), np.zeros(300)]
    assert db_statistics(v)[2] == pytest.approx(1.0)


def test_evaluated_frames_drop_annotated_and_last():
    assert evaluated_frames(5, range(5), 0) == [1, 2, 3]
    assert evaluated_frames(10, [2, 5, 9], 2) == [5]
    assert evaluated_frames(10, [2, 5, 9], 2, drop_last=False) == [5, 9]


def test_within_equals_dilation_by_skimage_disk():
    rng = np.random.default_rng(0)
    b = rng.random((40, 50)) > 0.97
    for r in (1, 2, 3, 5):
        np.testing.assert_array_equal(_within(b, r), ndi.binary_dilation(b, disk(r)))


def test_evaluate_sequence_per_object_and_summary():
    t, shape = 5, (60, 60)
    gt = np.zeros((t, *shape), np.int32)
    pred = np.zeros_like(gt)
    for i in range(t):
        gt[i][square(shape, 10, 10, 10)] = 1
        gt[i][square(shape, 40, 40, 10)] = 2
        pred[i][square(shape, 10, 10, 10)] = 1  # object 1 perfect
    pred[2][square(shape, 40, 40, 10)] = 2  # object 2 found on frame 2 only
    r = evaluate_sequence("s", gt, pred, annotated=0)
    assert r.frames == [1, 2, 3]
    o1, o2 = r.objects
    assert o1.J.tolist() == [1, 1, 1] and o1.F.tolist() == [1, 1, 1]
    assert o2.J.tolist() == [0, 1, 0] and o2.F.tolist() == [0, 1, 0]
    s = r.stats()
    assert s["J_mean"] == pytest.approx((1 + 1 / 3) / 2)
    assert s["JF_mean"] == pytest.approx((1 + 1 / 3) / 2)
    assert summarise([r])["J_mean"] == pytest.approx(s["J_mean"])
    np.testing.assert_allclose(r.jf_over_time(), [0.5, 1.0, 0.5])


def test_jf_mean_is_the_mean_of_j_and_f_when_they_differ():
    """Pins JF_mean = (J_mean + F_mean) / 2 in ObjectResult.stats, SequenceResult.stats and summarise,
    on frames where J (70/130) and F (0.6) differ: a 10x10 square predicted 3 px to the right."""
    t, shape = 4, (100, 100)
    gt = np.zeros((t, *shape), np.int32)
    pred = np.zeros_like(gt)
    for i in range(t):
        gt[i][square(shape, 40, 40, 10)] = 1
        pred[i][square(shape, 40, 43, 10)] = 1
    r = evaluate_sequence("s", gt, pred, annotated=0)
    assert r.frames == [1, 2]
    expected = (70 / 130 + 0.6) / 2
    (o,) = r.objects
    assert o.stats()["J_mean"] == pytest.approx(70 / 130) and o.stats()["F_mean"] == pytest.approx(0.6)
    assert o.stats()["JF_mean"] == pytest.approx(expected)
    assert r.stats()["JF_mean"] == pytest.approx(expected)
    assert summarise([r])["JF_mean"] == pytest.approx(expected)


def test_void_pixels_are_left_out_of_j_and_f():
    """Pins the `void` argument of jaccard and f_measure: void pixels count neither in the
    intersection nor in the union (J = 50/100 instead of 50/150), nor in the boundaries."""
    shape = (20, 20)
    gt = np.zeros(shape, bool)
    gt[0:10, 0:10] = True
    pred = np.zeros(shape, bool)
    pred[0:10, 5:15] = True
    void = np.zeros(shape, bool)
    void[0:10, 10:15] = True  # exactly the 50 predicted pixels outside the object
    assert jaccard(gt, pred) == pytest.approx(1 / 3)
    assert jaccard(gt, pred, void) == pytest.approx(0.5)
    assert f_measure(gt, pred, void) == pytest.approx(f_measure(gt, pred & ~void))
    assert f_measure(gt, pred, void) != pytest.approx(f_measure(gt, pred))


def test_seg_hand_cases():
    gt = np.zeros((10, 10), np.int32)
    gt[0, :10] = 1  # object of 10 px
    pred = np.zeros_like(gt)
    pred[0, :6] = 7  # 6 of 10 covered (> half) plus 2 extra pixels
    pred[1, :2] = 7
    assert seg_per_object(gt, pred).tolist() == [pytest.approx(6 / 12)]
    pred2 = np.zeros_like(gt)
    pred2[0, :5] = 3  # exactly half: no match
    assert seg_per_object(gt, pred2).tolist() == [0.0]
    assert seg_measure([gt, gt], [pred, gt]) == pytest.approx((0.5 + 1.0) / 2)
    assert np.isnan(seg_measure([np.zeros((3, 3))], [np.zeros((3, 3))]))


label_images = arrays(np.int32, (24, 28), elements=st.integers(0, 3))


@settings(max_examples=40, deadline=None)
@given(a=label_images, b=label_images)
def test_properties_of_j_and_f(a, b):
    for k in (1, 2, 3):
        ga, gb = a == k, b == k
        j, f = jaccard(ga, gb), f_measure(ga, gb)
        assert 0 <= j <= 1 and 0 <= f <= 1
        assert j == pytest.approx(jaccard(gb, ga)) and f == pytest.approx(f_measure(gb, ga))
        assert jaccard(ga, ga) == 1 and f_measure(ga, ga) == 1
    # the cropped per-object computation equals the full-frame definition
    jo, fo = object_scores(a, b, [1, 2, 3, 5])
    for n, k in enumerate([1, 2, 3, 5]):
        assert jo[n] == pytest.approx(jaccard(a == k, b == k))
        assert fo[n] == pytest.approx(f_measure(a == k, b == k))


@settings(max_examples=30, deadline=None)
@given(y=st.integers(0, 50), x=st.integers(0, 50), n=st.integers(1, 14), dy=st.integers(-6, 6), dx=st.integers(-6, 6))
def test_object_scores_match_full_frame_on_sparse_objects(y, x, n, dy, dx):
    shape = (64, 64)
    gt = square(shape, y, x, n).astype(np.int32) * 4
    pred = square(shape, max(0, y + dy), max(0, x + dx), n).astype(np.int32) * 4
    j, f = object_scores(gt, pred, [4])
    assert j[0] == pytest.approx(jaccard(gt == 4, pred == 4))
    assert f[0] == pytest.approx(f_measure(gt == 4, pred == 4))


@settings(max_examples=30, deadline=None)
@given(a=label_images)
def test_seg_is_one_on_identity_and_relabelling(a):
    perm = np.array([0, 9, 4, 2], np.int32)
    scores = seg_per_object(a, perm[a])
    assert np.all(scores == 1.0)
    assert len(scores) == len(np.unique(a[a > 0]))


def test_score_stack_convenience():
    gt = np.zeros((4, 20, 20), np.int32)
    gt[:, 5:10, 5:10] = 1
    pred = gt.copy()
    pred[1] = 0  # lose the object on frame 1; frame 2 perfect; frames 0 and 3 not scored for J and F
    s = score_stack(pred, gt, seg=True)
    assert s["J_mean"] == pytest.approx(0.5) and s["F_mean"] == pytest.approx(0.5)
    assert s["SEG"] == pytest.approx(2 / 3)  # SEG (CTC) counts the last frame too: frames 1, 2, 3
    pred[3] = 0  # lost on the last frame: J and F do not see it, SEG does
    lost = score_stack(pred, gt, seg=True)
    assert lost["J_mean"] == pytest.approx(0.5) and lost["SEG"] == pytest.approx(1 / 3)


def test_zero_shot_scoring_leaves_out_the_first_and_last_frame_as_davis_2016_does():
    from napari_vos.evaluation.unsupervised import score_foreground

    gt = np.zeros((5, 20, 20), np.int32)
    gt[:, 5:10, 5:10] = 1
    gt[:, 12:16, 12:16] = 2
    pred = (gt > 0).astype(np.int32) * 3  # any id is foreground
    pred[0] = 0
    pred[4] = 0  # lost on the first and the last frame: not scored
    assert score_foreground(pred, gt)["J_mean"] == pytest.approx(1.0)
    pred[2] = 0
    assert score_foreground(pred, gt)["J_mean"] == pytest.approx(2 / 3)


def test_a_predicted_png_keeps_object_255(tmp_path):
    from napari_vos.data.sequence import Sequence
    from napari_vos.data.writers import write_png_label
    from napari_vos.evaluation.scoring import PredictionFolder

    ids = np.zeros((8, 8), np.uint8)
    ids[:2], ids[4:6] = 1, 255  # this package's PNG output holds ids up to 255
    write_png_label(tmp_path / "00000.png", ids)
    folder = PredictionFolder(tmp_path, Sequence.from_arrays("one", np.zeros((1, 8, 8), np.uint8)))
    assert set(np.unique(folder[0]).tolist()) == {0, 1, 255}


def test_predicted_colour_pngs_keep_each_colour_id_on_every_frame(tmp_path):
    from PIL import Image

    from napari_vos.data.sequence import Sequence
    from napari_vos.evaluation.scoring import PredictionFolder

    for t in range(2):
        rgb = np.zeros((8, 8, 3), np.uint8)
        rgb[4:6] = (250, 140, 10)
        if t == 0:
            rgb[:2] = (20, 40, 230)  # a colour below the orange one, gone on frame 1
        Image.fromarray(rgb).save(tmp_path / f"{t:05d}.png")
    folder = PredictionFolder(tmp_path, Sequence.from_arrays("two", np.zeros((2, 8, 8), np.uint8)))
    assert folder[0][4, 0] == folder[1][4, 0] == 2 and folder[0][0, 0] == 1


def test_object_scores_of_a_negative_id_equal_the_full_frame_ones():
    """An id <= 0 had no bounding box and scored J = F = 1 whatever the masks (session-32 audit)."""
    from napari_vos.evaluation.metrics import object_scores

    g = np.zeros((50, 50), np.int32)
    p = np.zeros_like(g)
    g[10:20, 10:20] = -1
    p[30:40, 30:40] = -1
    j, f = object_scores(g, p, [-1])
    assert j[0] == pytest.approx(jaccard(g == -1, p == -1)) and j[0] == 0.0
    assert f[0] == pytest.approx(f_measure(g == -1, p == -1))


def test_object_scores_cost_does_not_grow_with_the_id_value():
    """find_objects was asked for max_label = the largest id: 26 s and 4.7 GB for one 50x50 frame
    holding id 10^8. The ids are numbered 1..K first; 20 million must not allocate 20 million slots."""
    import tracemalloc

    from napari_vos.evaluation.metrics import object_scores

    g = np.zeros((50, 50), np.int64)
    g[10:20, 10:20] = 20_000_000
    g[30:35, 30:35] = 7
    p = g.copy()
    p[30:35, 30:33] = 0
    tracemalloc.start()
    j, f = object_scores(g, p, [7, 20_000_000])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5_000_000
    assert j[1] == 1.0 and f[1] == 1.0
    assert j[0] == pytest.approx(jaccard(g == 7, p == 7))


def test_score_stack_refuses_a_prediction_of_another_length():
    """A prediction cut short was scored on its own frames only (a lost object after frame 5 of 10
    scored 1.0); one too long failed with an IndexError."""
    gt = np.zeros((10, 40, 40), np.int32)
    for t in range(10):
        gt[t, 5 + t:15 + t, 5:15] = 1
    with pytest.raises(ValueError, match="5 predicted frames for 10 ground-truth frames"):
        score_stack(gt[:5], gt)
    with pytest.raises(ValueError, match="12 predicted frames"):
        score_stack(np.concatenate([gt, gt[:2]]), gt)


def test_mask_ids_beyond_32_bits_are_refused_not_wrapped():
    """uint32 ids from 2^31 wrapped to negative ids when read (and then scored as J = F = 1)."""
    from napari_vos.data.sequence import decode_mask

    mask = np.zeros((8, 8), np.uint32)
    mask[2:4, 2:4] = 2**31 + 5
    with pytest.raises(ValueError, match="do not fit 32-bit ids"):
        decode_mask(mask)
    mask[2:4, 2:4] = 2**31 - 1
    assert decode_mask(mask).max() == 2**31 - 1
