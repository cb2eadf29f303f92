"""Several (T, Y, X) stacks read as one multi-channel video (napari's one-layer-per-channel stacks)."""
import numpy as np
import pytest
from _layers import iou, two_channel_video

from napari_vos import ChannelStack, propagate
from napari_vos.data.frames import FrameSource


class CountingStack:
    """A (T, Y, X) array that records which frames were read."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, []

    def __getitem__(self, key):
        self.reads.append(key)
        return self.data[key]


def test_frames_are_the_stacks_side_by_side_and_read_one_at_a_time():
    a = CountingStack(np.arange(4 * 5 * 6, dtype=np.uint8).reshape(4, 5, 6))
    b = np.arange(4 * 5 * 6, dtype=np.uint16).reshape(4, 5, 6) * 300
    stack = ChannelStack([a, b])
    assert stack.shape == (4, 5, 6, 2) and stack.dtype == np.uint16 and len(stack) == 4
    np.testing.assert_array_equal(stack[2], np.stack([a.data[2], b[2]], axis=-1))
    assert a.reads == [2]
    np.testing.assert_array_equal(np.asarray(stack), np.stack([a.data, b], axis=-1).astype(np.uint16))
    # each channel is normalised over its own range, as in a (T, Y, X, C) array
    ours, theirs = FrameSource(stack), FrameSource(np.stack([a.data, b], axis=-1).astype(np.uint16))
    np.testing.assert_array_equal(ours[3], theirs[3])
    np.testing.assert_array_equal(ours.tensor(3).numpy(), theirs.tensor(3).numpy())


def test_shapes_and_counts_are_checked_with_the_stacks_names():
    a = np.zeros((4, 5, 6), np.uint8)
    with pytest.raises(ValueError, match="'nuclei' has shape \\(4, 5, 7\\)"):
        ChannelStack([a, np.zeros((4, 5, 7), np.uint8)], names=["'phase'", "'nuclei'"])
    with pytest.raises(ValueError, match="only \\(T, Y, X\\) stacks"):
        ChannelStack([a, np.zeros((4, 5, 6, 3), np.uint8)])
    with pytest.raises(ValueError, match="2 to 3 stacks"):
        ChannelStack([a])
    with pytest.raises(ValueError, match="2 to 3 stacks"):
        ChannelStack([a] * 4)
    with pytest.raises(IndexError, match="channels are picked"):
        ChannelStack([a, a])[0, 0, 0, 0]


def test_an_object_seen_only_in_the_second_channel_is_followed():
    still, square, truth = two_channel_video()
    labels = truth[0]
    both = propagate(ChannelStack([still, square]), labels, method="flow", device="cpu").labels
    alone = propagate(still, labels, method="flow", device="cpu").labels
    picked = propagate(ChannelStack([still, square]), labels, method="flow", device="cpu", channels=[0]).labels
    assert min(iou(both[t] == 1, truth[t] == 1) for t in range(len(truth))) > 0.8
    # without the square's channel nothing moves, so the mask stays where it was painted
    assert iou(alone[-1] == 1, truth[-1] == 1) < 0.5
    np.testing.assert_array_equal(picked, alone)
