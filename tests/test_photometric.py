"""Per-video intensity changes for training (`training/photometric.py`, ``train --photometric``)."""
from __future__ import annotations

import numpy as np
import pytest

from napari_vos.data.frames import FrameSource
from napari_vos.training.photometric import photometric_change, random_table, stretch_tables


def _video(seed: int = 0, top: int = 140) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frames = rng.integers(20, top, size=(11, 24, 32, 3)).astype(np.uint8)
    frames[..., 1] //= 2  # channels of different ranges: the stretch is per channel
    return frames


def test_stretch_is_what_propagation_makes_of_a_16_bit_copy():
    """The stretched frames are the engine's reading of the same video saved as uint16 x 257
    (as Fiji converts 8 to 16 bits), to within rounding."""
    frames = _video()
    tables = stretch_tables(frames)
    stretched = np.stack([tables[c][frames[..., c]] for c in range(3)], axis=-1)
    engine = FrameSource(frames.astype(np.uint16) * 257)
    for i in range(len(frames)):
        expected = np.round(engine[i] * 255)
        assert np.abs(stretched[i].astype(np.float32) - expected).max() <= 1.0


def test_random_table_is_monotone_and_changes_the_video():
    rng = np.random.default_rng(3)
    for _ in range(20):
        table = random_table(rng, 0.4)
        assert table.dtype == np.uint8 and table.shape == (256,)
        assert np.all(np.diff(table.astype(int)) >= 0)  # a change of scale keeps the order of intensities


def test_change_is_one_table_per_video_and_leaves_the_input():
    frames = _video(1)
    before = frames.copy()
    rng = np.random.default_rng(0)
    changed = [np.asarray(photometric_change(frames, rng)) for _ in range(6)]
    np.testing.assert_array_equal(frames, before)
    assert any(not np.array_equal(c, frames) for c in changed)
    for out in changed:
        assert out.shape == frames.shape and out.dtype == np.uint8
        # the same input value in a channel maps to one output value in every frame
        for c in range(3):
            pairs = np.unique(np.stack([frames[..., c].ravel(), out[..., c].ravel()]), axis=1)
            assert len(np.unique(pairs[0])) == pairs.shape[1]
    with pytest.raises(ValueError, match="uint8"):
        photometric_change(frames.astype(np.uint16), rng)


def test_grey_frames_are_changed_too():
    frames = _video(2)[..., 0]
    out = np.asarray(photometric_change(frames, np.random.default_rng(1)))
    assert out.shape == frames.shape and out.dtype == np.uint8


def test_recipes_change_videos_at_the_given_chance_and_keep_the_stream_at_zero():
    """photometric=1 changes every drawn video (labels untouched, the pooled video not modified);
    at 0 nothing is drawn for it, so an earlier run's data stream is unchanged."""
    from napari_vos.training.recipes import make_recipe

    plain = make_recipe("frtm", size=(48, 64))
    changed = make_recipe("frtm", size=(48, 64), photometric=1.0)
    for recipe in (plain, changed):
        recipe._init_videos()
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    frames_a, labels_a = plain._video(rng_a)
    pooled = frames_a.copy()
    frames_b, labels_b = changed._video(rng_b)
    np.testing.assert_array_equal(labels_a, labels_b)
    np.testing.assert_array_equal(changed._pools["natural"][0][0], pooled)  # the pool keeps the original
    assert not np.array_equal(frames_a, frames_b)
    # the plain recipe drew exactly what a recipe without the option draws
    rng_c = np.random.default_rng(5)
    plain_again = make_recipe("frtm", size=(48, 64))
    plain_again._init_videos()
    plain_again._synthetic(rng_c)
    assert rng_a.bit_generator.state == rng_c.bit_generator.state
    with pytest.raises(ValueError, match="photometric"):
        make_recipe("frtm", size=(48, 64), photometric=1.5)


def test_train_cli_records_the_chance(tmp_path, one_torch_thread):
    """`train --photometric` reaches the run's saved settings (so a resume reports a change) and is checked."""
    import torch

    from napari_vos.cli import main

    out = tmp_path / "run"
    base = ["train", "frtm", "--steps", "1", "--size", "64x48", "--batch-size", "1", "--synthetic-fraction", "1",
            "--device", "cpu", "--out", str(out)]
    assert main([*base, "--photometric", "2"]) == 2
    assert main([*base, "--photometric", "0.5"]) == 0
    state = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    assert state["settings"]["photometric"] == 0.5


def test_the_change_applies_to_the_frames_indexed_only():
    """The tables go with the video and apply to what a clip indexes: the same values as changing the
    whole video, without copying it."""
    frames = _video(4)
    changed = photometric_change(frames, np.random.default_rng(2))
    whole = np.asarray(changed)
    assert changed.frames is frames and len(changed) == len(frames) and changed.shape == frames.shape
    np.testing.assert_array_equal(changed[3], whole[3])
    np.testing.assert_array_equal(changed[[0, 5, 2]], whole[[0, 5, 2]])
    np.testing.assert_array_equal(changed[1:4], whole[1:4])
