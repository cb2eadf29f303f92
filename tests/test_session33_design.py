"""Conformance with the house plan (session 33 audit): lazy frame sequences, device indices, checkpoint owners."""
from __future__ import annotations

import numpy as np
import pytest
import torch


class _FramesWithShape:
    """A lazy stack that has ``shape`` (and ``__len__``/``__getitem__``) but no ``dtype``."""

    def __init__(self, n: int = 5) -> None:
        self.n = n
        self.shape = (n, 48, 48)
        self.reads: list[int] = []

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        self.reads.append(i)
        frame = np.full((48, 48), 20, np.uint8)
        frame[8 + i:24 + i, 8:24] = 200
        return frame


class _FrameSequence:
    """Anything indexable by frame (DESIGN.md §3): ``__len__`` and ``__getitem__`` only, like a pims
    FramesSequence or a user's own lazy reader; counts the frames read."""

    def __init__(self, n: int = 30) -> None:
        self.n = n
        self.reads: list[int] = []

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        if isinstance(i, slice) or not 0 <= i < self.n:
            raise IndexError(i)
        self.reads.append(i)
        frame = np.full((48, 48), 20, np.uint8)
        frame[8:24, 8:24] = 200
        return frame


def test_video_with_a_shape_but_no_dtype_is_accepted():
    # FrameSource.__init__ takes a missing dtype as float32 (getattr(video, "dtype", np.float32)), but
    # _frames_per_chunk reads video.dtype bare: AttributeError at Session() (data/frames.py:312)
    from napari_vos import Session

    video = _FramesWithShape()
    session = Session(video, method="flow", device="cpu")
    labels = np.zeros((48, 48), np.int32)
    labels[8:24, 8:24] = 1
    session.annotate(0, labels)
    result = session.run()
    assert result.labels.shape == (5, 48, 48)


def test_a_frame_sequence_without_shape_is_not_read_whole_at_session():
    # docs/architecture.md: "anything indexable by frame ... Only the frame being processed is read";
    # a sequence without .shape goes through np.asarray(video) in FrameSource (data/frames.py:48-52),
    # which reads and stacks every frame before the Session exists
    from napari_vos import Session

    video = _FrameSequence(30)
    Session(video, method="flow", device="cpu")
    assert len(video.reads) <= 8, f"Session() read {len(video.reads)} of 30 frames"


def test_a_cuda_index_that_does_not_exist_is_refused_up_front(monkeypatch):
    # resolve_device checks that CUDA exists but not the index: 'cuda:3' on a one-GPU machine passes and
    # fails later inside torch ("invalid device ordinal") (session.py:55)
    from napari_vos.session import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="cuda"):
        resolve_device("cuda:3")


def test_a_registered_checkpoint_of_another_method_is_refused_at_session():
    from napari_vos import Session, weights

    video = np.zeros((3, 32, 32), np.uint8)
    with pytest.raises(weights.CheckpointError, match="checkpoint cosnet-resnet18-light is for method 'cosnet', "
                                                      "not 'rgmp': choose method 'cosnet' for it"):
        Session(video, method="rgmp", checkpoint="cosnet-resnet18-light", device="cpu")
