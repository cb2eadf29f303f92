"""Training recipes against their papers (session 33 audit): unusable real data, RVOS zero-shot objects, OSVOS-AT padding."""
from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_vos.training.recipes import make_recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Hung(Exception):
    pass


def _sparse_dataset(root: Path) -> Path:
    """An images/masks folder of 24 frames of which 4 are annotated (0-3): kept by SequenceBank (>= 3
    frames) but fewer than A-GAME's 8-frame or RVOS's 5-frame clips need."""
    import tifffile

    seq = root / "sparse"
    (seq / "images").mkdir(parents=True)
    (seq / "masks").mkdir()
    rng = np.random.default_rng(0)
    for t in range(24):
        img = (rng.random((80, 120)) * 60).astype(np.uint8)
        img[20 + t:50 + t, 30:70] = 200
        tifffile.imwrite(seq / "images" / f"{t:05d}.tif", img)
        if t < 4:
            lab = np.zeros((80, 120), np.uint8)
            lab[20 + t:50 + t, 30:70] = 1
            tifffile.imwrite(seq / "masks" / f"{t:05d}.tif", lab)
    return seq


def _batch_within(recipe, seconds: int = 8):
    def hung(*_):
        raise _Hung(f"no batch after {seconds} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        return recipe.batch(np.random.default_rng(0))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("method", ["agame", "rvos"])
def test_real_data_too_short_for_the_clips_is_an_error_not_a_hang(tmp_path, method):
    """Finding 1: VideoMix._clips retries forever when no real video can give a clip."""
    recipe = make_recipe(method, size=(64, 96), batch_size=1, synthetic_fraction=0.0,
                         real_dirs=[str(_sparse_dataset(tmp_path))])
    try:
        _batch_within(recipe)
    except _Hung:
        pytest.fail(f"{method}: batch() loops forever on real data whose annotated runs are shorter than its clips")
    except (ValueError, RuntimeError):
        pass  # a clear error is the wanted behaviour
    else:
        pytest.fail("a batch came back from data that cannot give a clip")


def test_real_data_that_never_gives_a_clip_is_not_silently_replaced_by_synthetic(tmp_path):
    """Finding 1, the default mix: with --synthetic-fraction 0.5 such data was silently never used;
    now it is an error when the bank is loaded, naming what a sequence needs."""
    recipe = make_recipe("agame", size=(64, 96), batch_size=1, synthetic_fraction=0.5,
                         real_dirs=[str(_sparse_dataset(tmp_path))])
    with pytest.warns(UserWarning, match="1 of 1 --data sequences cannot give agame's training clips"), \
            pytest.raises(ValueError, match="no usable training sequence .* needs 8 annotated frames and an object "
                                            "over 0.2% of a frame a clip can start from for agame clips"):
        recipe.batch(np.random.default_rng(1))


def test_some_real_videos_too_short_are_no_error(tmp_path):
    """One usable --data video beside a short one: no false alarm (the short one is skipped)."""
    _sparse_dataset(tmp_path / "a")
    long_seq = tmp_path / "a" / "long"
    (long_seq / "images").mkdir(parents=True)
    (long_seq / "masks").mkdir()
    import tifffile

    for t in range(16):
        img = np.full((80, 120), 30, np.uint8)
        img[20:50, 30 + t:70 + t] = 200
        tifffile.imwrite(long_seq / "images" / f"{t:05d}.tif", img)
        tifffile.imwrite(long_seq / "masks" / f"{t:05d}.tif", (img > 100).astype(np.uint8))
    recipe = make_recipe("agame", size=(64, 96), batch_size=1, synthetic_fraction=0.0, real_dirs=[str(tmp_path / "a")])
    rng = np.random.default_rng(3)
    for _ in range(20):
        recipe.batch(rng)


def _five_object_video(n_frames: int = 12, size=(80, 120)) -> tuple[np.ndarray, np.ndarray]:
    h, w = size
    frames = np.full((n_frames, h, w, 3), 30, np.uint8)
    labels = np.zeros((n_frames, h, w), np.uint8)
    for t in range(n_frames):
        for k, (y, x) in enumerate([(18, 28), (18, 54), (18, 80), (48, 40), (48, 66)]):
            x += t // 3  # five well-visible objects (about 1.5 % of the frame each), away from the borders
            labels[t, y:y + 10, x:x + 14] = k + 1
            frames[t, y:y + 10, x:x + 14] = 80 + 30 * k
    return frames, labels


def test_rvos_zero_shot_supervises_every_visible_object_up_to_its_slots():
    """Finding 2: the zero-shot stage keeps at most max_objects = 3 of the first frame's objects; the
    others stay in the frames but are trained as background, and the stop target says 3 objects."""
    recipe = make_recipe("rvos", size=(64, 96), batch_size=1, synthetic_fraction=1.0, config="light:zero")
    slots = recipe.network_config.slots
    video = _five_object_video()
    recipe._video = lambda rng: video
    batch = recipe.batch(np.random.default_rng(0))
    assert slots >= 5
    assert int(batch["valid"].sum()) == 5, (f"zero-shot clip supervises {int(batch['valid'].sum())} of the 5 visible "
                                            f"objects with {slots} slots: the rest are taught as background")


def test_osvos_at_loss_is_taken_on_the_crop_not_on_the_replicate_padding(monkeypatch):
    """Finding 3: at a size that is not a multiple of the network's stride, OSVOS-AT's loss includes the
    replicate-padded rows and columns (FRTM crops them away since session 33)."""
    import napari_vos.training.osvos_at_recipe as mod

    recipe = make_recipe("osvos_at", size=(80, 112), batch_size=1, synthetic_fraction=1.0)
    model = recipe.build(torch.device("cpu"))
    seen = []
    real = mod.balanced_bce

    def spy(logits, target, *a, **k):
        seen.append(tuple(target.shape[-2:]))
        return real(logits, target, *a, **k)

    monkeypatch.setattr(mod, "balanced_bce", spy)
    recipe.loss(model, recipe.batch(np.random.default_rng(0)), torch.device("cpu"))
    assert seen and all(s == (80, 112) for s in seen), f"loss taken on {seen}, not on the {(80, 112)} crop"


def test_rvos_zero_shot_leaves_objects_beyond_its_slots_out_of_the_loss(one_torch_thread):
    """Seven objects, five slots: two are not supervised, and their pixels are ignored rather than
    taught as background (the loss does not move when only those pixels' logits change)."""
    import torch

    recipe = make_recipe("rvos", size=(64, 96), batch_size=1, synthetic_fraction=1.0, config="light:zero")
    frames, labels = _five_object_video()
    for t in range(len(labels)):  # two more objects
        labels[t, 62:72, 10:24], labels[t, 62:72, 90:104] = 6, 7
    recipe._video = lambda rng: (frames, labels)
    batch = recipe.batch(np.random.default_rng(0))
    assert int(batch["valid"].sum()) == 5
    ignore = batch["ignore"]
    assert ignore.shape == batch["masks"][:, :, 0].shape and 0 < float(ignore[0, 0].mean()) < 0.1
    assert not (ignore[:, :, None] * batch["masks"]).any()  # never over a supervised object
    keep = 1.0 - ignore[0]
    target = batch["masks"][0, :, 0]
    logits = torch.randn(target.shape)
    moved = logits + 5.0 * ignore[0]  # only the ignored pixels change
    a, b = recipe.mask_loss(logits, target, keep), recipe.mask_loss(moved, target, keep)
    assert torch.allclose(a, b)
    assert not torch.allclose(recipe.mask_loss(logits, target), recipe.mask_loss(moved, target))


def test_a_batch_that_cannot_be_filled_is_an_error_not_a_hang():
    recipe = make_recipe("agame", size=(64, 96), batch_size=1, synthetic_fraction=1.0)
    recipe._video = lambda rng: (np.zeros((3, 80, 120, 3), np.uint8), np.zeros((3, 80, 120), np.uint8))
    with pytest.raises(RuntimeError, match="could not draw 1 training clips in 100 tries"):
        recipe.batch(np.random.default_rng(0))
