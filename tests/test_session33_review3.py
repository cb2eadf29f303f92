"""A third review of session 33's changes: usable --data never refused by bad luck, adjacent thin objects,
per-channel tables on any index, one format for frames_kept_from_labels."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _davis(root, names, frames=24, start=12, size=(120, 80)):
    """DAVIS-layout videos, every frame annotated; the one object enters at frame ``start``
    (legitimate data: the frames before hold no object, the later half a 30x40 box)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in names:
        (root / "JPEGImages" / "480p" / name).mkdir(parents=True)
        (root / "Annotations" / "480p" / name).mkdir(parents=True)
        base = rng.integers(40, 200, (size[1], size[0], 3)).astype(np.uint8)
        for t in range(frames):
            img, labels = base.copy(), np.zeros((size[1], size[0]), np.uint8)
            if t >= start:
                labels[20:50, 10 + 3 * t:50 + 3 * t] = 1
                img[labels == 1] = (230, 60, 60)
            Image.fromarray(img).save(root / "JPEGImages" / "480p" / name / f"{t:05d}.jpg")
            mask = Image.fromarray(labels, mode="P")
            mask.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
            mask.save(root / "Annotations" / "480p" / name / f"{t:05d}.png")


# 1. a usable --data video (half its frames show the object) is judged unusable after 3 unlucky tries
@pytest.mark.parametrize("method", ["s2s", "agame"])
def test_usable_data_is_not_refused_after_three_unlucky_draws(tmp_path, method):
    from napari_vos.training.recipes import make_recipe

    _davis(tmp_path, ["late"])
    refused = []
    for seed in range(8):
        recipe = make_recipe(method, size=(64, 96), batch_size=2, synthetic_fraction=0.0, real_dirs=[str(tmp_path)])
        rng = np.random.default_rng(seed)
        try:
            for _ in range(4):
                recipe.batch(rng)  # every batch that returns is made of clips of this one video
        except ValueError as err:
            refused.append((seed, str(err)[:80]))
    assert not refused, f"usable --data refused as giving no clip: {refused}"


# 2. two adjacent 1-pixel objects halved: the thin-object rule gives both the same mask, no warning,
#    and the aggregation then hands all of it to the first id (object 2 vanishes silently)
def test_adjacent_thin_objects_do_not_share_one_mask_silently():
    from napari_vos.nn.aggregation import object_masks

    labels = np.zeros((64, 64), np.int32)
    labels[8:56, 10] = 1
    labels[8:56, 11] = 2
    rescued: list[int] = []
    masks = object_masks(labels, [1, 2], (32, 32), rescued)
    shared = float((masks[0] * masks[1]).sum())
    assert shared == 0 or rescued, f"objects 1 and 2 share {shared:.0f} pixels and no warning is given"


# 3. TabledFrames indexed to a result of fewer than 3 axes (one row, one pixel) uses the first
#    channel's table for every channel (latent: no recipe indexes so today)
def test_tabled_frames_row_uses_each_channels_table():
    from napari_vos.training.photometric import TabledFrames

    frames = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)
    tables = np.stack([np.arange(256, dtype=np.uint8), 255 - np.arange(256, dtype=np.uint8),
                       np.zeros(256, np.uint8)])
    tf = TabledFrames(frames, tables)
    whole = np.asarray(tf)
    np.testing.assert_array_equal(tf[0], whole[0])  # passes
    np.testing.assert_array_equal(tf[0, 1], whole[0, 1])  # a row: (W, C)
    np.testing.assert_array_equal(tf[0, 1, 2], whole[0, 1, 2])  # a pixel: (C,)


# 4. --keep-other-frames: frames_kept_from_labels was a half-open [first, stop) list in a complete run
#    (and in the widget) but an inclusive "0-1, 4-5" string in a stopped one: one key, two formats
def test_frames_kept_from_labels_has_one_format(tmp_path, monkeypatch, capsys):
    import tifffile

    from napari_vos.cli import main
    from napari_vos.data.frames import FrameSource
    from napari_vos.data.writers import read_tiff_provenance

    frames = np.full((6, 64, 64), 30, np.uint8)
    truth = np.zeros((6, 64, 64), np.uint8)
    for t in range(6):
        frames[t, 20:40, 10 + 4 * t:30 + 4 * t] = 200
        truth[t, 20:40, 10 + 4 * t:30 + 4 * t] = 2
    tifffile.imwrite(tmp_path / "video.tif", frames, photometric="minisblack")
    tifffile.imwrite(tmp_path / "labels.tif", truth, photometric="minisblack")
    base = ["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "--method", "flow",
            "--device", "cpu", "--frame", "2", "--direction", "forward", "--keep-other-frames"]
    assert main(base + ["-o", str(tmp_path / "complete.tif")]) == 0
    real = FrameSource.tensor

    def ctrl_c(self, index, *args, **kwargs):
        if index == 4:
            raise KeyboardInterrupt
        return real(self, index, *args, **kwargs)

    monkeypatch.setattr(FrameSource, "tensor", ctrl_c)
    assert main(base + ["-o", str(tmp_path / "stopped.tif")]) == 130
    complete = read_tiff_provenance(tmp_path / "complete.tif")["frames_kept_from_labels"]
    stopped = read_tiff_provenance(tmp_path / "stopped.tif")["frames_kept_from_labels"]
    assert type(complete) is type(stopped), f"complete run: {complete!r}, stopped run: {stopped!r}"
