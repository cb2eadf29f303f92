"""Tests that pin behaviour no existing test pinned (found by hand mutation testing, session 33).

Each test passes on the current code and fails under the mutation named in its docstring
(see FINDINGS.md for the exact patches). Small synthetic inputs only; each runs in well under 5 s.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _near_uniform(k: int, h: int = 12, w: int = 12, seed: int = 0) -> torch.Tensor:
    """A (K + 1, H, W) per-pixel distribution close to uniform: every winner holds barely more
    than 1 / (K + 1) (many touching objects, none sure of a pixel)."""
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(0.05 * torch.randn(k + 1, h, w, generator=g), dim=0)


@pytest.mark.parametrize("k", [8, 12])
def test_boxwise_argmax_of_a_near_uniform_distribution_is_the_argmax(k):
    """Kills `agg_share` (aggregation.py _boxwise_argmax: share 0.99 / (k + 1) -> 1.5 / (k + 1)):
    the existing test uses well-separated cells, where every winner holds nearly 1."""
    from napari_vos.nn.aggregation import labels_from_aggregate

    agg = _near_uniform(k)
    assert agg.max(dim=0).values.max() < 1.5 / (k + 1)  # the case: no object is sure of any pixel
    assert torch.equal(labels_from_aggregate(agg), agg.max(dim=0).indices)


def test_frtm_initial_memory_is_the_frame_a_flip_a_blur_and_affine_copies_moved_with_their_masks():
    """Kills `fr_aug_kinds` (frtm.py augment_annotated_frame: kinds -> ["blur"]): no test looked at
    the copies M_0 is made of (the paper: flip, shift/scale/rotate, blur), only at their number."""
    from napari_vos.methods.frtm import augment_annotated_frame
    from napari_vos.nn.warp import gaussian_blur

    image = torch.zeros(3, 64, 64)
    image[:, 10:30, 8:24] = 1.0  # off-centre, so a flip or an affine warp moves it
    masks = torch.zeros(2, 64, 64)
    masks[0, 10:30, 8:24] = 1.0
    masks[1, 40:50, 40:56] = 1.0
    images, labels = augment_annotated_frame(image, masks, 5, torch.Generator().manual_seed(0))
    assert images.shape == (5, 3, 64, 64) and labels.shape == (5, 2, 64, 64)
    assert torch.equal(images[0], image) and torch.equal(labels[0], masks)
    assert torch.equal(images[1], image.flip(-1)) and torch.equal(labels[1], masks.flip(-1))
    assert torch.allclose(images[3], gaussian_blur(image, sigma=1.5, kernel_size=5)) and torch.equal(labels[3], masks)
    for i in (2, 4):  # shifted/scaled/rotated: other pixels than the frame, and the mask moved alike
        assert not torch.allclose(images[i], image, atol=1e-3)
        bright = images[i][0] > 0.5
        fg = labels[i][0] > 0.5
        assert fg.any() and (bright & fg).sum() >= 0.8 * fg.sum()
    assert not torch.allclose(images[2], images[4], atol=1e-3)  # each affine copy draws its own transform


def test_global_convolution_sums_both_separable_branches():
    """Kills `gc_one_branch` (global_conv.py GlobalConv.forward: the (1 x k -> k x 1) branch dropped):
    the existing test checks the 7 x 7 support, which either branch alone already has."""
    from napari_vos.nn.global_conv import GlobalConv

    torch.manual_seed(0)
    gc = GlobalConv(2, 3, k=5)
    x = torch.randn(1, 2, 9, 11)
    with torch.no_grad():
        both = gc(x)
        expected = gc.left2(gc.left1(x)) + gc.right2(gc.right1(x))
        for conv in (gc.left1, gc.left2):  # the left branch silenced: the right one still answers
            conv.weight.zero_()
            conv.bias.zero_()
        right_only = gc(x)
    assert torch.allclose(both, expected, atol=1e-6)
    assert right_only.abs().max() > 1e-3


def test_agame_mixture_adds_one_pseudo_count_of_mass():
    """Kills `ag_mass_prior` (agame_appearance.py MASS_PRIOR 1.0 -> 0.01): the numpy oracle of the
    existing tests imports MASS_PRIOR, so its value was pinned by nothing (the shipped checkpoint was
    trained with one pseudo-count: mu = sum a x / (sum a + 1))."""
    from napari_vos.methods.agame_appearance import fit_gaussians

    x = torch.tensor([[[[2.0, 4.0]]]])  # K=1, D=1, h=1, w=2
    alpha = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]]]])  # component 0 holds one pixel, component 1 none
    reg = torch.tensor([[0.5], [0.25]])
    means, variances = fit_gaussians(x, alpha, reg)
    assert torch.allclose(means[0, :, 0], torch.tensor([1.0, 0.0]))  # 2 / (1 + 1); empty: 0
    # component 0: (2 - 1)^2 / 2 + 0.5; component 1 (empty): the regulariser alone
    assert torch.allclose(variances[0, :, 0], torch.tensor([1.0, 0.25]))


def _moving_square_video(t: int = 5, h: int = 48, w: int = 64):
    video = np.zeros((t, h, w), np.uint8)
    labels = np.zeros((t, h, w), np.uint8)
    for i in range(t):
        y, x = 12 + i, 14 + 2 * i
        video[i, y:y + 14, x:x + 14] = 200
        labels[i, y:y + 14, x:x + 14] = 1
    video += np.random.default_rng(0).integers(0, 20, video.shape, dtype=np.uint8)
    return video, labels


def test_a_frame_corrected_mid_run_keeps_no_earlier_map():
    """Kills `ses_corr_maps` (session.py _pass: the two lines zeroing every map stack at an annotated
    frame the pass reaches removed): the existing test covers the start frame only. A correction at
    frame 2 and a re-run from frame 0 left the first run's map at frame 2, beside labels that are
    the user's correction (the user guide: annotated frames' maps are zeros)."""
    from napari_vos import Session

    video, labels = _moving_square_video()
    s = Session(video, method="flow", maps=True, device="cpu")
    s.annotate(0, labels[0])
    first = s.run("forward")
    name = next(iter(first.maps))
    assert np.asarray(first.maps[name])[2].any()  # the first run did map frame 2
    s.annotate(2, labels[2])  # a correction mid-stack, then the same run again from frame 0
    again = s.run("forward", start=0)
    assert not np.asarray(again.maps[name])[2].any()
    assert np.asarray(again.maps[name])[3].any()


def test_padding_is_replicated_at_the_bottom_right_and_cropped_back_from_the_top_left():
    """Kills `pad_crop` (padding.py crop_to: the bottom-right part kept) and `pad_mode` (F.pad without
    mode="replicate": zeros). FRTM pads frames to a multiple of 32 and A-GAME to 16 and crop the
    probabilities back with crop_to: the crop taken from the wrong corner shifts every mask by the
    padding (up to 31 px), and no test used a frame size off the multiple."""
    from napari_vos.nn.padding import crop_to, pad_to_multiple

    x = torch.arange(2 * 37 * 50, dtype=torch.float32).view(2, 37, 50) + 1.0
    padded, size = pad_to_multiple(x, 32)
    assert padded.shape == (2, 64, 64) and size == (37, 50)
    assert torch.equal(crop_to(padded, size), x)
    assert torch.equal(padded[:, 37:, :50], x[:, -1:, :].expand(2, 27, 50))  # the last row repeated
    assert torch.equal(padded[:, :37, 50:], x[:, :, -1:].expand(2, 37, 14))  # the last column repeated
