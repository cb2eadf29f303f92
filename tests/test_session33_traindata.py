"""Training data (session 33 audit): FRTM trains on frames padded as inference pads them, hold-out names in collections, RGMP sizes, S2S batches, rounding."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


def _tiny_davis(root: Path, names: tuple[str, ...]) -> None:
    from PIL import Image

    for name in names:
        img_dir, ann_dir = root / "JPEGImages" / name, root / "Annotations" / name
        img_dir.mkdir(parents=True)
        ann_dir.mkdir(parents=True)
        for t in range(3):
            Image.fromarray(np.full((32, 48, 3), 100, np.uint8)).save(img_dir / f"{t:05d}.jpg")
            m = np.zeros((32, 48), np.uint8)
            m[8:20, 10:30] = 255
            Image.fromarray(m).save(ann_dir / f"{t:05d}.png")


def test_holdout_sequences_stay_out_when_data_is_a_collection_folder(tmp_path):
    """`--data` naming the folder that holds davis2016-train (a "collection") must still leave the
    project's hold-out split out of training; open_dataset names its sequences 'davis2016-train/bear'."""
    from napari_vos.training.clips import HOLDOUT_DAVIS, SequenceBank

    _tiny_davis(tmp_path / "videos" / "davis2016-train", ("bear", "boat"))
    bank = SequenceBank([tmp_path / "videos"], (16, 24))
    leaked = [n for n in bank.names if n.rsplit("/", 1)[-1] in HOLDOUT_DAVIS]
    assert not leaked, f"hold-out sequences trained on: {leaked}"


def test_frtm_training_grids_match_inference_for_sizes_not_multiple_of_32(monkeypatch, one_torch_thread):
    """FRTM's inference pads every frame to a multiple of 32, so its decoder's conv2..conv5 grids and the
    target model's label grid line up. Training at --size 432x240 (the GPU procedure's) must either be
    refused or run the network on frames padded the same way; today it runs on 240x432 unpadded, where
    conv5 (8x14, covering 256x448) is stretched onto conv4 (15x27, covering 240x432): up to 15 px off."""
    from napari_vos.training import frtm_recipe
    from napari_vos.training.clips import Clip

    try:
        recipe = frtm_recipe.FRTMRecipe(size=(240, 432), batch_size=1)
    except ValueError:
        return  # refused: fine
    seen = []

    class Seen(Exception):
        pass

    def spy(backbone, images, frozen):
        seen.append(tuple(images.shape[-2:]))
        raise Seen

    monkeypatch.setattr(frtm_recipe, "resnet_features", spy)
    model = recipe.build(torch.device("cpu"))
    masks = np.zeros((3, 240, 432), np.float32)
    masks[:, 100:140, 200:260] = 1
    batch = [Clip(np.zeros((3, 240, 432, 3), np.float32), masks)]
    with pytest.raises(Seen):
        recipe.loss(model, batch, torch.device("cpu"))
    h, w = seen[0]
    assert h % 32 == 0 and w % 32 == 0, f"FRTM trained on {w}x{h} frames; inference pads to multiples of 32"


def test_rgmp_refuses_training_sizes_inference_never_runs_at():
    from napari_vos.training.rgmp_recipe import RGMPRecipe

    with pytest.raises(ValueError, match="RGMP training size must be a multiple of 32, got 432x240"):
        RGMPRecipe.from_options(config="light:video", size=(240, 432))


def test_s2s_batches_hold_each_synthetic_video_once(one_torch_thread, monkeypatch):
    """The rolling pool hands out videos at random; a batch takes each at most once, as it does real ones."""
    from napari_vos.training import s2s_recipe
    from napari_vos.training.recipes import make_recipe

    recipe = make_recipe("s2s", size=(64, 64), batch_size=3, synthetic_fraction=1.0)
    recipe.min_length = recipe.max_length = 3
    taken: list[int] = []
    sample = s2s_recipe.sample_ordered_clip

    def spy(frames, *args, **kwargs):
        clip = sample(frames, *args, **kwargs)
        if clip is not None:
            taken.append(id(frames))
        return clip

    monkeypatch.setattr(s2s_recipe, "sample_ordered_clip", spy)
    rng = np.random.default_rng(0)
    for _ in range(6):
        taken.clear()
        recipe.batch(rng)
        assert len(taken) == 3 and len(set(taken)) == 3, taken


def test_bank_frames_are_rounded_to_uint8_not_floored(tmp_path):
    """Frames 0-3 and 8-11 annotated: one video of the 8 annotated frames (sparse annotation trains as
    the video it samples), each rounded to uint8 (flooring made them half a grey level darker)."""
    from PIL import Image
    from skimage.transform import resize

    from napari_vos.data.frames import FrameSource
    from napari_vos.training.clips import SequenceBank

    img_dir, ann_dir = tmp_path / "JPEGImages" / "cells", tmp_path / "Annotations" / "cells"
    img_dir.mkdir(parents=True)
    ann_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for t in range(12):
        Image.fromarray(rng.integers(0, 256, (32, 48, 3)).astype(np.uint8)).save(img_dir / f"{t:05d}.png")
        if t < 4 or t >= 8:
            m = np.zeros((32, 48), np.uint8)
            m[8:20, 10 + t:30 + t] = 255
            Image.fromarray(m).save(ann_dir / f"{t:05d}.png")
    bank = SequenceBank([tmp_path], (16, 24))
    assert bank.names == ["cells"] and len(bank.videos[0][0]) == 8
    source = FrameSource(np.stack([np.asarray(Image.open(img_dir / f"{t:05d}.png")) for t in range(12)]))
    expected = np.round(resize(source[8], (16, 24), order=1, anti_aliasing=True) * 255)
    np.testing.assert_array_equal(bank.videos[0][0][4], expected.astype(np.uint8))
