"""Synthetic generators: deterministic, exact masks, lazy view equals the rendered video."""
from __future__ import annotations

import numpy as np
import pytest

from napari_vos.data.readers import open_dataset
from napari_vos.data.synthetic import cell_video, lazy_video, natural_video, write_synthetic_set
from napari_vos.data.writers import write_png_labels


def test_natural_video_shapes_and_determinism():
    a = natural_video(8, (48, 64), n_objects=2, seed=3)
    b = natural_video(8, (48, 64), n_objects=2, seed=3)
    c = natural_video(8, (48, 64), n_objects=2, seed=4)
    assert a.frames.shape == (8, 48, 64, 3) and a.frames.dtype == np.uint8
    assert a.labels.shape == (8, 48, 64) and a.labels.dtype == np.int32
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.frames, c.frames)
    assert set(np.unique(a.labels)) <= {0, 1, 2}
    # every target is visible on the first frame (the annotated one)
    assert (a.labels[0] == 1).sum() > 20 and (a.labels[0] == 2).sum() > 20


def test_natural_video_moves_and_masks_follow_the_pixels():
    v = natural_video(12, (64, 80), n_objects=1, seed=1, distractors=False, camera=False,
                      lighting=False, noise=0.0)
    centroids = [np.argwhere(v.labels[t] == 1).mean(0) for t in range(12)]
    assert np.linalg.norm(centroids[-1] - centroids[0]) > 1.0  # the object moves
    # background pixels far from the object do not change without camera/lighting/noise
    far = np.all(v.labels == 0, axis=0)
    from scipy import ndimage as ndi

    far = ndi.binary_erosion(far, iterations=3)
    assert far.any()
    assert np.abs(v.frames[-1][far].astype(int) - v.frames[0][far].astype(int)).max() <= 1
    # inside the label the image differs from the background-only pixels nearby
    assert np.abs(v.frames[0][v.labels[0] == 1].mean() - v.frames[0][far].mean()) > 1


def test_natural_occlusion_removes_hidden_parts():
    # many objects in a small frame must overlap somewhere; labels are a partition, so an
    # occluded object's pixel count drops below its unoccluded area at some frame
    v = natural_video(30, (64, 64), n_objects=3, seed=2, distractors=2)
    areas = np.stack([(v.labels == k).sum(axis=(1, 2)) for k in (1, 2, 3)])
    assert (areas > 0).any(axis=1).all()
    assert (areas.max(axis=1) > 1.3 * areas.min(axis=1)).any()


def test_natural_from_source_folder(tmp_path):
    src = natural_video(4, (60, 80), n_objects=1, seed=9, distractors=False)
    from PIL import Image

    (tmp_path / "JPEGImages" / "s").mkdir(parents=True)
    for t in range(4):
        Image.fromarray(src.frames[t]).save(tmp_path / "JPEGImages" / "s" / f"{t:05d}.png")
    write_png_labels(tmp_path / "Annotations" / "s", src.labels)
    v = natural_video(5, (48, 64), n_objects=2, seed=0, source_dir=tmp_path)
    assert v.frames.shape == (5, 48, 64, 3)
    assert (v.labels[0] == 1).any() and (v.labels[0] == 2).any()


@pytest.mark.parametrize("modality", ["phase", "fluorescence"])
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_cell_video(modality, bit_depth):
    v = cell_video(12, (96, 96), n_cells=15, seed=5, modality=modality, bit_depth=bit_depth,
                   division_rate=0.05)
    assert v.frames.shape == (12, 96, 96)
    assert v.frames.dtype == (np.uint16 if bit_depth == 16 else np.uint8)
    assert v.labels.dtype == np.int32
    ids0 = set(np.unique(v.labels[0])) - {0}
    assert len(ids0) >= 10
    # lineage agrees with the labels, and divisions happened with valid parents
    for cid, (parent, first, last) in v.lineage.items():
        assert (v.labels[first] == cid).any() and (v.labels[last] == cid).any()
        if first > 0:
            assert not (v.labels[first - 1] == cid).any()
        if parent:
            assert first > 0 and parent in v.lineage
            assert v.lineage[parent][2] < first
    assert any(p for p, _, _ in v.lineage.values())
    # cells are brighter (fluorescence) or darker (phase) than the background on average
    fg = v.frames[0][v.labels[0] > 0].mean()
    bg = v.frames[0][v.labels[0] == 0].mean()
    assert (fg > bg) if modality == "fluorescence" else (fg < bg)


def test_fluorescence_bleaches():
    v = cell_video(30, (64, 64), n_cells=10, seed=1, modality="fluorescence", bleach_tau=10,
                   division_rate=0.0, enter_rate=0.0)
    first = v.frames[0][v.labels[0] > 0].astype(float).mean()
    last = v.frames[-1][v.labels[-1] > 0].astype(float).mean()
    assert last < 0.5 * first


def test_lazy_video_equals_rendered():
    lv = lazy_video("natural", 6, (40, 48), n_objects=2, seed=7)
    full = natural_video(6, (40, 48), n_objects=2, seed=7)
    np.testing.assert_array_equal(lv[4], full.frames[4])
    np.testing.assert_array_equal(lv.labels[4], full.labels[4])
    assert lv.shape == (6, 40, 48, 3) and lv[1:3].shape == (2, 40, 48, 3)
    cells = lazy_video("fluorescence", 5, (32, 32), n_objects=4, seed=1)
    assert cells.shape == (5, 32, 32) and cells[2].dtype == np.uint16


def test_write_synthetic_set_is_a_davis_dataset(tmp_path):
    names = write_synthetic_set(tmp_path, 2, "natural", seed=3, n_frames=5, size=(32, 40))
    seqs = open_dataset(tmp_path)
    assert [s.name for s in seqs] == names
    v = natural_video(5, (32, 40), n_objects=int(np.unique(seqs[0].masks[0]).max()), seed=3)
    np.testing.assert_array_equal(seqs[0].frames[2], v.frames[2])
    np.testing.assert_array_equal(seqs[0].masks[2], v.labels[2])


def test_generators_reject_bad_arguments():
    with pytest.raises(ValueError):
        cell_video(2, (16, 16), modality="brightfield")
    with pytest.raises(ValueError):
        natural_video(2, (16, 16), n_objects=0)


def test_a_set_with_ids_past_the_palette_is_refused_before_anything_is_written(tmp_path):
    import pytest

    from napari_vos.data.synthetic import write_synthetic_set

    with pytest.raises(ValueError, match="object ids up to .* palette PNGs hold ids up to 255"):
        write_synthetic_set(tmp_path / "set", 1, kind="cells", n_frames=2, size=(96, 128), n_objects=300)
    assert not (tmp_path / "set").exists()


def test_under_root_ids_puts_each_daughter_under_its_first_ancestors_id():
    from napari_vos.data.synthetic_cells import under_root_ids

    labels = np.array([[[1, 0, 2]], [[3, 4, 2]], [[5, 4, 0]]], np.uint16)
    lineage = {1: (0, 0, 0), 2: (0, 0, 1), 3: (1, 1, 1), 4: (1, 1, 2), 5: (3, 2, 2)}
    np.testing.assert_array_equal(under_root_ids(labels, lineage),
                                  [[[1, 0, 2]], [[1, 1, 2]], [[1, 1, 0]]])
    assert under_root_ids(labels, lineage).dtype == np.uint16
