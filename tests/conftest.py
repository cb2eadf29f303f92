"""Shared fixtures: tiny synthetic videos and a small random FRTM checkpoint written to tmp_path."""
from __future__ import annotations

import numpy as np
import pytest


def moving_square_video(n_frames: int = 6, size: tuple[int, int] = (64, 96), step: int = 4, seed: int = 0):
    """A textured bright square sliding right over a textured dark background; returns frames, truth."""
    rng = np.random.default_rng(seed)
    h, w = size
    frames = np.empty((n_frames, h, w, 3), np.uint8)
    truth = np.zeros((n_frames, h, w), np.int32)
    background = (rng.random((h, w, 3)) * 60).astype(np.uint8)
    for t in range(n_frames):
        f = background.copy()
        y0, x0 = 20, 10 + step * t
        f[y0:y0 + 24, x0:x0 + 24] = (180 + rng.random((24, 24, 3)) * 60).astype(np.uint8)
        truth[t, y0:y0 + 24, x0:x0 + 24] = 1
        frames[t] = f
    return frames, truth


def interrupt_reading_frame(monkeypatch, frame: int) -> None:
    """Ctrl+C as the engine reads ``frame`` (a KeyboardInterrupt from FrameSource.tensor), for the
    tests of what a run stopped part-way keeps."""
    from napari_vos.data.frames import FrameSource

    real = FrameSource.tensor

    def ctrl_c(self, index, *args, **kwargs):
        if index == frame:
            raise KeyboardInterrupt
        return real(self, index, *args, **kwargs)

    monkeypatch.setattr(FrameSource, "tensor", ctrl_c)


def phase_cells_video(n_frames: int, size: tuple[int, int], n_cells: int, seed: int = 3):
    """Phase-contrast cells (the synthetic generator's, 16-bit): frames (T, H, W) uint16, labels (T, H, W)."""
    from napari_vos.data.synthetic import cell_video

    video = cell_video(n_frames=n_frames, size=size, n_cells=n_cells, seed=seed, modality="phase", bit_depth=16)
    return np.asarray(video.frames), np.asarray(video.labels)


def mean_object_iou(result: np.ndarray, truth: np.ndarray) -> float:
    """Mean IoU over the objects of frame 0 and the later frames that still hold them."""
    ids = [int(k) for k in np.unique(truth[0]) if k]
    ious = [((result[t] == k) & (truth[t] == k)).sum() / ((result[t] == k) | (truth[t] == k)).sum()
            for k in ids for t in range(1, len(truth)) if (truth[t] == k).any()]
    return float(np.mean(ious))


def square_tracking_ious(method: str, annotate: bool = True) -> list[float]:
    """Propagate ``method`` with its shipped checkpoint and default options through the 8-frame
    96x128 moving square from frame 0's truth (or from nothing, ``annotate=False``, for zero-shot
    methods: then every id > 0 counts); the square's IoU with the truth on frames 1..7."""
    from _layers import iou

    from napari_vos import propagate

    frames, truth = moving_square_video(n_frames=8, size=(96, 128), step=6, seed=0)
    if not annotate:
        result = propagate(frames, None, method=method, device="cpu")
        return [iou(result.labels[t] > 0, truth[t] == 1) for t in range(1, 8)]
    result = propagate(frames, truth[0], method=method, device="cpu", direction="forward")
    return [iou(result.labels[t] == 1, truth[t] == 1) for t in range(1, 8)]


@pytest.fixture(autouse=True)
def _tiny_videos_at_their_own_size(request, monkeypatch):
    """FRTM and A-GAME enlarge videos to a 480-pixel shorter side, RGMP small objects to 64 pixels, by
    default; the tests' tiny videos run at their own size so the suite stays fast (tests marked
    ``real_working_size`` keep the defaults)."""
    if request.node.get_closest_marker("real_working_size") is None:
        from napari_vos.methods.registry import available_methods, method_class

        for name in available_methods(include_untrained=True):
            cls = method_class(name)
            for rule in ("min_working_side", "min_object_side"):
                if getattr(cls, rule, None) is not None:
                    monkeypatch.setattr(cls, rule, None)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread: on a busy shared CPU, two threads of tiny convolutions fight and run ~10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def square_video():
    return moving_square_video()


@pytest.fixture(scope="session")
def random_frtm_checkpoint(tmp_path_factory):
    """An untrained FRTM (ResNet-18) written as a safetensors checkpoint, for engine plumbing tests."""
    import torch

    from napari_vos import weights
    from napari_vos.methods.frtm import CONFIGS, FRTMNetwork
    from napari_vos.training.frtm_recipe import FRTMRecipe

    torch.manual_seed(0)
    tensors, meta = FRTMRecipe().export_tensors(FRTMNetwork(CONFIGS["fast"]))
    path = tmp_path_factory.mktemp("ckpt") / "frtm-random.safetensors"
    weights.save_checkpoint(path, tensors, meta)
    return str(path)
