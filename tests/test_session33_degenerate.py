"""Degenerate masks and frames inside the methods' maths (session 33 audit): eq. 5 with one class,
thin objects at the working size."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- 1/2: OSVOS-AT eq. 5 with an empty class -----------------------------------------------------
@pytest.fixture(scope="module")
def osvos_network():
    from napari_vos.methods.registry import create

    method = create("osvos_at", device="cpu", finetune_iterations=0, remember_iterations=0)
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 64, 64, generator=g) * 0.2
    image[:, 16:48, 16:48] = 0.9
    objects = torch.zeros(2, 64, 64)
    objects[0, 16:48, 16:48] = 1
    objects[1, 0:8, 0:8] = 1
    method.start(image, objects)  # per-object heads for two objects, no fine-tuning
    return method.network, image


def test_osvos_at_finetuning_on_a_frame_without_the_object_still_penalises_its_false_positives(osvos_network):
    """A correction frame where an object is gone (painted on the start frame, absent here): eq. 5's
    beta for that object is |Y-|/|Y| = 1, so its negatives weigh 1 - beta = 0 and the loss is exactly 0
    whatever the network predicts. The remember() fine-tuning learns nothing of "this object is not here"."""
    import copy

    from napari_vos.methods.osvos_at_finetune import FinetuneSettings, finetune

    network, image = osvos_network
    network = copy.deepcopy(network)
    absent = torch.zeros(2, 64, 64)  # neither object on this frame
    report = finetune(network, [image], [absent], FinetuneSettings(iterations=3, crop=None, augment=False))
    assert all(loss > 0 for loss in report.losses), report.losses


def test_osvos_at_finetuning_on_an_object_filling_the_frame_is_not_a_zero_loss(osvos_network):
    """The mirror case: an object with every pixel (|Y-| = 0) gets beta = 0, so its positives weigh 0."""
    import copy

    from napari_vos.methods.osvos_at_finetune import FinetuneSettings, finetune

    network, image = osvos_network
    network = copy.deepcopy(network)
    full = torch.ones(2, 64, 64)
    report = finetune(network, [image], [full], FinetuneSettings(iterations=3, crop=None, augment=False))
    assert all(loss > 0 for loss in report.losses), report.losses


def test_osvos_at_crop_inside_a_large_object_still_trains_it():
    """A 256-px fine-tuning crop that falls wholly inside a large object (15-18 % of the crops for a
    DAVIS-sized object at 480p) takes its own beta = 0: the crop's loss is 0 whatever the logits."""
    from napari_vos.methods.osvos_at_finetune import _crop_weights
    from napari_vos.nn.losses import balance_weights, balanced_bce

    view = torch.zeros(1, 1, 480, 854)
    view[..., 60:470, 150:750] = 1
    crop = view[..., 96:352, 192:448]  # all object
    logits = torch.full((1, 1, 256, 256), -4.0)  # the network says "background" everywhere: wrong
    loss = balanced_bce(logits, crop, weights=_crop_weights(crop, balance_weights(view)))
    assert float(loss) > 0.0


def test_osvos_at_whole_frame_object_on_a_static_video_is_followed():
    """End to end: the object covers the whole annotated frame and the next frames are that same frame;
    all 800 fine-tuning losses are 0 and the output frames are empty."""
    from napari_vos import propagate

    rng = np.random.default_rng(0)
    frame = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    video = np.stack([frame] * 3)
    losses = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = propagate(video, np.ones((64, 64), np.int32), method="osvos_at", device="cpu", precision="fp32",
                           min_side=None, direction="forward", finetune_iterations=20,
                           on_finetune=lambda s, t, loss: losses.append(loss))
    assert any(loss > 0 for loss in losses)
    assert (np.asarray(result.labels[1]) == 1).mean() > 0.5


# -- 3: flow erodes objects at the frame border ----------------------------------------------------
def test_a_one_pixel_wide_object_survives_an_exact_halving():
    """A 1-px-wide line covers exactly half of every 2x2 block, so the bilinear value is 0.5 and the
    strict > 0.5 threshold drops it all (a 2048-px image at the default max_side=1024 is such a halving);
    the rescue keeps a pixel only when nothing is left, so an L of 979 px becomes 1 pixel, silently."""
    from napari_vos.nn.aggregation import object_masks

    labels = np.zeros((512, 512), np.int32)
    labels[10, 10:500] = 1
    labels[10:500, 10] = 1
    rescued: list[int] = []
    masks = object_masks(labels, [1], (256, 256), rescued)
    assert int(masks[0].sum()) >= 100 or rescued, (int(masks[0].sum()), rescued)


def test_a_rescued_object_keeps_a_pixel_of_its_own():
    """An object of two 1-px dots at opposite corners is rescued at its box's centre: a pixel of neither
    dot, in the middle of the frame, which the method then follows."""
    from napari_vos.nn.aggregation import object_masks

    labels = np.zeros((512, 512), np.int32)
    labels[5, 5] = 3
    labels[505, 505] = 3
    masks = object_masks(labels, [3], (256, 256), [])
    (y, x), = np.argwhere(masks[0].numpy()).tolist()
    near = [(5 // 2, 5 // 2), (505 // 2, 505 // 2)]
    assert min(max(abs(y - a), abs(x - b)) for a, b in near) <= 1, (y, x)
