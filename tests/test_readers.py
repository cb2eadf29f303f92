"""Readers and writers: every layout round-trips frames and masks written here, lazily."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_vos.data.readers import detect_layout, open_dataset, open_tiff_stack
from napari_vos.data.sequence import LazyFrames, LazyMasks, Sequence, decode_mask, read_mask
from napari_vos.data.writers import davis_palette, write_png_labels, write_tiff_labels


def _labels(t: int, shape=(20, 30), n=3) -> np.ndarray:
    rng = np.random.default_rng(t)
    return rng.integers(0, n + 1, size=shape).astype(np.int32)


def _frames(t: int, shape=(20, 30, 3), dtype=np.uint8) -> np.ndarray:
    rng = np.random.default_rng(100 + t)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype)


def test_davis_palette_matches_known_colours():
    pal = davis_palette()
    assert pal[0].tolist() == [0, 0, 0]
    assert pal[1].tolist() == [128, 0, 0]
    assert pal[2].tolist() == [0, 128, 0]
    assert pal[3].tolist() == [128, 128, 0]
    assert pal[4].tolist() == [0, 0, 128]
    assert pal[255].tolist() == [224, 224, 192]


def test_decode_mask_conventions():
    assert decode_mask(np.array([[0, 255], [255, 0]], np.uint8)).tolist() == [[0, 1], [1, 0]]
    # 255 beside object ids is DAVIS void -> background
    assert decode_mask(np.array([[0, 255], [2, 1]], np.uint8)).tolist() == [[0, 0], [2, 1]]
    # in a label image wider than 8 bits, or one read from a TIFF, 255 is a cell like any other
    cells = np.array([[0, 255], [7, 0]], np.uint16)
    assert decode_mask(cells).tolist() == [[0, 255], [7, 0]]
    assert decode_mask(np.array([[0, 255], [0, 0]], np.uint16)).tolist() == [[0, 255], [0, 0]]
    assert decode_mask(cells.astype(np.uint8), void_255=False).tolist() == [[0, 255], [7, 0]]
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (128, 0, 0)
    rgb[1, 1] = (0, 128, 0)
    out = decode_mask(rgb)
    assert out[0, 1] == 0 and out[1, 0] == 0 and out[0, 0] != out[1, 1] and min(out[0, 0], out[1, 1]) >= 1


def _write_davis(root: Path, with_480p: bool, annotate=(0, 1, 2, 3)) -> dict[str, np.ndarray]:
    level = ("480p",) if with_480p else ()
    truth = {}
    for seq in ("aa", "bb"):
        img_dir = root.joinpath("JPEGImages", *level, seq)
        img_dir.mkdir(parents=True)
        for t in range(4):
            Image.fromarray(_frames(t)).save(img_dir / f"{t:05d}.png")
        labels = np.stack([_labels(t) for t in range(4)])
        write_png_labels(root.joinpath("Annotations", *level, seq), labels)
        for t in range(4):
            if t not in annotate:
                (root.joinpath("Annotations", *level, seq) / f"{t:05d}.png").unlink()
        truth[seq] = labels
    return truth


@pytest.mark.parametrize("with_480p", [True, False])
def test_davis_layout_roundtrip(tmp_path, with_480p):
    truth = _write_davis(tmp_path, with_480p)
    assert detect_layout(tmp_path) == "davis"
    seqs = open_dataset(tmp_path)
    assert [s.name for s in seqs] == ["aa", "bb"]
    s = seqs[1]
    assert len(s) == 4 and s.annotated == [0, 1, 2, 3]
    np.testing.assert_array_equal(s.frames[2], _frames(2))
    np.testing.assert_array_equal(s.masks[3], truth["bb"][3])
    assert s.masks[3].dtype == np.int32
    assert s.frames.shape == (4, 20, 30, 3)
    assert open_dataset(tmp_path, sequences=["bb"])[0].name == "bb"
    with pytest.raises(ValueError):
        open_dataset(tmp_path, sequences=["zz"])


def test_davis_partial_annotations(tmp_path):
    _write_davis(tmp_path, True, annotate=(0, 2))
    s = open_dataset(tmp_path)[0]
    assert s.annotated == [0, 2]
    assert s.masks[1] is None and s.masks[2] is not None


def test_images_masks_layout_16bit(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for t in range(3):
        tifffile.imwrite(tmp_path / "images" / f"{t:05d}.tif", _frames(t, (20, 30), np.uint16))
        Image.fromarray(_labels(t).astype(np.uint8)).save(tmp_path / "masks" / f"{t:05d}.png")
    assert detect_layout(tmp_path) == "images_masks"
    (s,) = open_dataset(tmp_path)
    assert s.name == tmp_path.name
    f = s.frames[1]
    assert f.dtype == np.uint16 and f.shape == (20, 30)
    np.testing.assert_array_equal(f, _frames(1, (20, 30), np.uint16))
    np.testing.assert_array_equal(s.masks[2], _labels(2))


def test_ctc_layout_sparse_gt_and_silver_fallback(tmp_path):
    for seq in ("01", "02"):
        (tmp_path / seq).mkdir()
        for t in range(5):
            tifffile.imwrite(tmp_path / seq / f"t{t:03d}.tif", _frames(t, (20, 30), np.uint16))
    (tmp_path / "01_GT" / "SEG").mkdir(parents=True)
    for t in (1, 3):
        tifffile.imwrite(tmp_path / "01_GT" / "SEG" / f"man_seg{t:03d}.tif", _labels(t, n=40).astype(np.uint16))
    # a 3-D dataset's slice annotation (frame 000, slice 004) is not 2-D GT of frame 4
    tifffile.imwrite(tmp_path / "01_GT" / "SEG" / "man_seg_000_004.tif", _labels(9).astype(np.uint16))
    (tmp_path / "02_ST" / "SEG").mkdir(parents=True)
    for t in range(5):
        tifffile.imwrite(tmp_path / "02_ST" / "SEG" / f"man_seg{t:03d}.tif", _labels(t).astype(np.uint16))
    assert detect_layout(tmp_path) == "ctc"
    s1, s2 = open_dataset(tmp_path)
    assert s1.annotated == [1, 3] and s1.masks[0] is None and s1.info["truth"] == "gold"
    np.testing.assert_array_equal(s1.masks[3], _labels(3, n=40))
    assert s2.annotated == [0, 1, 2, 3, 4] and s2.info["truth"] == "silver"


def test_tiff_stack_with_labels_and_ome(tmp_path):
    video = np.stack([_frames(t, (20, 30), np.uint16) for t in range(6)])
    labels = np.stack([_labels(t) for t in range(6)])
    tifffile.imwrite(tmp_path / "movie.ome.tif", video[:, None], metadata={"axes": "TCYX"}, ome=True)
    write_tiff_labels(tmp_path / "movie_labels.tif", labels)
    assert detect_layout(tmp_path / "movie.ome.tif") == "tiff"
    assert detect_layout(tmp_path) == "tiff"
    (s,) = open_dataset(tmp_path / "movie.ome.tif")
    assert s.name == "movie" and len(s) == 6 and s.annotated == list(range(6))
    np.testing.assert_array_equal(s.frames[4], video[4])
    np.testing.assert_array_equal(s.masks[5], labels[5])
    # a colour TIFF stack: channels come last
    rgb = np.stack([_frames(t, (20, 30, 3)) for t in range(3)])
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    s = open_tiff_stack(tmp_path / "rgb.tif")
    assert s.frames[1].shape == (20, 30, 3)
    np.testing.assert_array_equal(s.frames[2], rgb[2])


def test_collection_of_layouts(tmp_path):
    _write_davis(tmp_path / "d", True)
    (tmp_path / "x" / "images").mkdir(parents=True)
    (tmp_path / "x" / "masks").mkdir()
    Image.fromarray(_frames(0)).save(tmp_path / "x" / "images" / "a.png")
    Image.fromarray(_labels(0).astype(np.uint8)).save(tmp_path / "x" / "masks" / "a.png")
    assert detect_layout(tmp_path) == "collection"
    names = [s.name for s in open_dataset(tmp_path)]
    assert names == ["d/aa", "d/bb", "x"]


def test_a_collections_sub_folder_that_cannot_be_read_is_named_not_dropped_unseen(tmp_path):
    """A folder that holds no dataset is passed over quietly; one that holds a broken one is warned of,
    and asking for it by name gives the reason it could not be read."""
    _write_davis(tmp_path / "d", True)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("x")
    (tmp_path / "bad").mkdir()
    tifffile.imwrite(tmp_path / "bad" / "bad.tif", np.zeros((6, 8, 8), np.uint8))
    tifffile.imwrite(tmp_path / "bad" / "bad_labels.tif", np.zeros((5, 8, 8), np.uint8))
    with pytest.warns(UserWarning, match=r"bad left out: .*5 label frames for 6 image frames"):
        names = [s.name for s in open_dataset(tmp_path)]
    assert names == ["d/aa", "d/bb"]
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"no sequence\(s\) \['bad'\].*bad could not be "
                                                                      r"read: .*5 label frames"):
        open_dataset(tmp_path, ["bad"])


def test_unknown_layout_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="no known dataset layout"):
        detect_layout(tmp_path)


def test_png_writer_rejects_too_many_ids_and_tiff_keeps_them(tmp_path):
    big = np.zeros((2, 8, 8), np.int32)
    big[1, 0, 0] = 300
    with pytest.raises(ValueError, match="TIFF"):
        write_png_labels(tmp_path / "p", big)
    p = write_tiff_labels(tmp_path / "l.tif", big)
    back = tifffile.imread(p)
    assert back.dtype == np.uint16 and back[1, 0, 0] == 300
    im = Image.open(write_png_labels(tmp_path / "q", np.ones((1, 4, 4), np.int32))[0])
    assert im.mode == "P"
    assert read_mask(tmp_path / "q" / "00000.png").tolist() == np.ones((4, 4)).tolist()


def test_sequence_from_arrays_is_lazy_view():
    frames = np.zeros((5, 4, 4), np.uint8)
    labels = np.ones((5, 4, 4), np.int32)
    s = Sequence.from_arrays("a", frames, labels, annotated=[0, 4])
    assert s.annotated == [0, 4] and s.masks[2] is None and s.frames[1:3].shape == (2, 4, 4)


def test_a_tiff_label_stack_keeps_cell_255(tmp_path):
    import tifffile

    from napari_vos.data.sequence import read_mask

    labels = np.zeros((8, 8), np.uint16)
    labels[1:3, 1:3], labels[5:7, 5:7] = 3, 255
    tifffile.imwrite(tmp_path / "m.tif", labels)
    tifffile.imwrite(tmp_path / "m8.tif", labels.astype(np.uint8))
    assert sorted(np.unique(read_mask(tmp_path / "m.tif")).tolist()) == [0, 3, 255]
    assert sorted(np.unique(read_mask(tmp_path / "m8.tif")).tolist()) == [0, 3, 255]


def test_a_folder_of_unpadded_frame_numbers_is_read_in_natural_order(tmp_path):
    from PIL import Image

    from napari_vos.data.readers import _files

    for t in (0, 1, 2, 10, 11):
        Image.fromarray(np.full((4, 4), t, np.uint8)).save(tmp_path / f"frame{t}.png")
    assert [p.name for p in _files(tmp_path, (".png",))] == [f"frame{t}.png" for t in (0, 1, 2, 10, 11)]


def test_an_unknown_davis_sequence_is_named_with_the_ones_there(tmp_path):
    from PIL import Image

    from napari_vos.data.readers import open_dataset

    for name in ("alpha", "beta"):
        (tmp_path / "JPEGImages" / "480p" / name).mkdir(parents=True)
        (tmp_path / "Annotations" / "480p" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "JPEGImages" / "480p" / name / "00000.jpg")
        Image.fromarray(np.ones((8, 8), np.uint8), mode="L").save(tmp_path / "Annotations" / "480p" / name / "00000.png")
    with pytest.raises(ValueError, match=r"no sequence\(s\) \['nope'\]; have \['alpha', 'beta'\]"):
        open_dataset(tmp_path, ["nope"])


def test_an_lzw_compressed_tiff_is_read(tmp_path):
    # microscopes and Fiji often write LZW; tifffile needs imagecodecs (a dependency) for it
    import tifffile

    from napari_vos.data.readers import open_tiff_frames

    stack = np.random.default_rng(0).integers(0, 4000, (5, 32, 40)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "lzw.tif", stack, compression="lzw", photometric="minisblack")
    frames = open_tiff_frames(tmp_path / "lzw.tif")
    assert len(frames) == 5 and np.array_equal(frames[2], stack[2])


def test_imagej_hyperstacks_give_channel_last_frames_and_the_chosen_z_plane(tmp_path):
    # pins: ImageJ's TCYX comes out (Y, X, C) for C > 1, and z=N reads plane N of a TZYX stack, not plane 0
    from napari_vos.data.readers import open_tiff_frames

    rng = np.random.default_rng(0)
    tcyx = rng.integers(0, 4000, (3, 2, 12, 16)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "tc.tif", tcyx, imagej=True, metadata={"axes": "TCYX"})
    frames = open_tiff_frames(tmp_path / "tc.tif")
    assert len(frames) == 3 and frames[1].shape == (12, 16, 2)
    np.testing.assert_array_equal(frames[1], np.moveaxis(tcyx[1], 0, -1))
    tzyx = rng.integers(0, 4000, (3, 4, 12, 16)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "tz.tif", tzyx, imagej=True, metadata={"axes": "TZYX"})
    for z in (0, 2, 3):
        np.testing.assert_array_equal(open_tiff_frames(tmp_path / "tz.tif", z=z)[1], tzyx[1, z])


def test_an_8bit_tiff_label_stack_keeps_cell_255_beside_other_cells(tmp_path):
    # pins: open_tiff_stack reads its labels without the DAVIS void rule (255 is a cell, not background)
    video = np.stack([_frames(t, (8, 8), np.uint16) for t in range(2)])
    labels = np.zeros((2, 8, 8), np.uint8)
    labels[:, 1:3, 1:3], labels[:, 5:7, 5:7] = 3, 255
    tifffile.imwrite(tmp_path / "v.tif", video)
    tifffile.imwrite(tmp_path / "v_labels.tif", labels)
    s = open_tiff_stack(tmp_path / "v.tif", tmp_path / "v_labels.tif")
    np.testing.assert_array_equal(s.masks[1], labels[1].astype(np.int32))


def test_a_palette_mask_saved_as_rgb_keeps_its_ids_from_frame_to_frame():
    from napari_vos.data.sequence import decode_mask
    from napari_vos.data.writers import davis_palette

    pal = davis_palette()
    both = np.zeros((8, 8), np.uint8)
    both[:2], both[4:6] = 1, 2
    only_two = np.where(both == 1, 0, both)  # object 1 has left the frame
    assert np.array_equal(decode_mask(pal[both]), both)
    assert np.array_equal(decode_mask(pal[only_two]), only_two)  # still id 2, not renumbered to 1


def test_colour_masks_of_a_folder_keep_each_colour_id_on_every_frame(tmp_path):
    # colours that are no palette colour: numbered over the whole folder, so the orange object keeps
    # its id on the frame the blue one has left (numbering each frame's colours gave it id 1 there)
    orange, blue = (250, 140, 10), (20, 40, 230)
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    for t in range(3):
        Image.fromarray(_frames(t, (8, 8, 3))).save(tmp_path / "images" / f"{t:05d}.png")
        rgb = np.zeros((8, 8, 3), np.uint8)
        rgb[4:6] = orange
        if t != 1:
            rgb[:2] = blue
        Image.fromarray(rgb).save(tmp_path / "masks" / f"{t:05d}.png")
    (seq,) = open_dataset(tmp_path)
    ids = [sorted(np.unique(seq.masks[t]).tolist()) for t in range(3)]
    assert ids == [[0, 1, 2], [0, 2], [0, 1, 2]]
    assert (seq.masks[1][4:6] == seq.masks[0][4:6]).all() and (seq.masks[0][:2] != seq.masks[0][4:6]).all()
    # the frame's own colours alone, as for one annotation file, give its objects 1, 2, ...
    assert np.unique(read_mask(tmp_path / "masks" / "00001.png")).tolist() == [0, 1]


def test_colour_masks_that_are_palette_colours_on_one_frame_only_follow_the_folder(tmp_path):
    # frame 0 holds only palette colours, frame 1 adds another: the whole folder is numbered by colour
    # (frame 0 alone would have taken the palette indices, 1 and 2, and frame 1 ranks)
    pal = davis_palette()
    frames = [np.zeros((6, 6, 3), np.uint8) for _ in range(2)]
    for f in frames:
        f[:2], f[2:4] = pal[1], pal[2]
    frames[1][4:5] = (7, 200, 90)
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    for t, f in enumerate(frames):
        Image.fromarray(_frames(t, (6, 6, 3))).save(tmp_path / "images" / f"{t:05d}.png")
        Image.fromarray(f).save(tmp_path / "masks" / f"{t:05d}.png")
    (seq,) = open_dataset(tmp_path)
    np.testing.assert_array_equal(seq.masks[0][:4], seq.masks[1][:4])
    assert np.unique(seq.masks[1]).tolist() == [0, 1, 2, 3]


def test_a_tiff_sequence_closes_its_video_and_labels_files(tmp_path):
    """`with open_tiff_stack(...)` closes both files (Windows moves or deletes no open file); a frame
    or mask read afterwards is a clear error, not a read from a closed file."""
    import gc
    import warnings

    video = np.stack([_frames(t, (8, 8), np.uint16) for t in range(5)])
    labels = np.zeros((5, 8, 8), np.uint8)
    labels[:, 2:5, 2:5] = 1
    tifffile.imwrite(tmp_path / "v.tif", video)
    tifffile.imwrite(tmp_path / "v_labels.tif", labels)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with open_tiff_stack(tmp_path / "v.tif", tmp_path / "v_labels.tif") as s:
            np.testing.assert_array_equal(s.masks[2], labels[2].astype(np.int32))
            np.testing.assert_array_equal(s.frames[1], video[1])
        gc.collect()
    left_open = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not [m for m in left_open if str(tmp_path) in m], left_open  # earlier tests' files may be collected here
    with pytest.raises(ValueError, match="closed"):
        s.masks[0]
    with pytest.raises(ValueError, match="closed"):
        s.frames[0]


def test_closing_frames_or_masks_twice_releases_the_file_once():
    """A second ``close`` (a with block around an already closed sequence) does not close the
    reader again; reads still fail clearly."""
    calls = []
    frames = LazyFrames(3, lambda i: np.zeros((4, 4), np.uint8), close=lambda: calls.append("frames"))
    masks = LazyMasks(3, {0: lambda: np.zeros((4, 4), np.int32)}, close=lambda: calls.append("masks"))
    for obj in (frames, masks, frames, masks):
        obj.close()
    assert calls == ["frames", "masks"]
    with pytest.raises(ValueError, match="closed"):
        frames[0]
    with pytest.raises(ValueError, match="closed"):
        masks[0]


def test_a_labels_stack_of_the_wrong_length_leaves_no_file_open(tmp_path):
    import gc
    import warnings

    tifffile.imwrite(tmp_path / "v.tif", np.zeros((5, 8, 8), np.uint16))
    tifffile.imwrite(tmp_path / "v_labels.tif", np.zeros((2, 8, 8), np.uint8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(ValueError, match="2 label frames for 5 image frames"):
            open_tiff_stack(tmp_path / "v.tif", tmp_path / "v_labels.tif")
        gc.collect()
    left_open = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not [m for m in left_open if str(tmp_path) in m], left_open


def test_a_four_channel_hyperstack_is_not_read_as_colour_and_alpha(tmp_path):
    """Fiji's TCYX with 4 channels: the 4th was dropped as alpha without a word."""
    from napari_vos.data.frames import FrameSource

    video = np.random.default_rng(0).integers(0, 4000, (3, 4, 8, 8)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "h.tif", video, imagej=True, metadata={"axes": "TCYX"})
    with open_tiff_stack(tmp_path / "h.tif") as seq:
        with pytest.raises(ValueError, match=r"4 channels on a channel axis .* pick up to 3 with channels=\[...\] "
                                             r"\(the command line's --channels\)"):
            FrameSource(seq.frames)
        picked = FrameSource(seq.frames, channels=[0, 1, 3])
        np.testing.assert_array_equal(picked.raw(1)[..., 2], video[1, 3])
    rgba = np.zeros((3, 8, 8, 4), np.uint8)
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    with open_tiff_stack(tmp_path / "rgba.tif") as seq:
        assert FrameSource(seq.frames)[0].shape == (8, 8, 3)  # samples with alpha: colour, alpha dropped


def test_a_3d_time_lapse_is_read_a_plane_at_a_time_and_other_stacks_are_left_to_the_time_lapse_reader(tmp_path):
    """open_tiff_volume_frames: the (t, z) planes of a 3D + time stack, any axis order, channels last, each
    read when asked for; None (the file closed again) for a time-lapse, one Z plane kept as an axis or a Z
    stack without time, which open_tiff_frames opens or refuses as before."""
    from napari_vos.data.readers import LazyPlanes, open_tiff_frames, open_tiff_volume_frames

    rng = np.random.default_rng(0)
    tzcyx = rng.integers(0, 4000, (3, 5, 2, 12, 16)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "tzc.tif", tzcyx, imagej=True, metadata={"axes": "TZCYX"})
    with open_tiff_volume_frames(tmp_path / "tzc.tif") as planes:
        assert isinstance(planes, LazyPlanes) and planes.volume == (3, 5) and len(planes) == 15
        assert planes.shape == (3, 5, 12, 16, 2) and planes.channels_are_colour is False
        np.testing.assert_array_equal(planes[2 * 5 + 1], np.moveaxis(tzcyx[2, 1], 0, -1))
    tifffile.imwrite(tmp_path / "ztyx.tif", tzcyx[:, :, 0].transpose(1, 0, 2, 3).copy(), ome=True,
                     metadata={"axes": "ZTYX"})
    with open_tiff_volume_frames(tmp_path / "ztyx.tif") as planes:
        assert planes.volume == (3, 5)
        np.testing.assert_array_equal(planes[1 * 5 + 3], tzcyx[1, 3, 0])
    tifffile.imwrite(tmp_path / "qqyx.tif", tzcyx[:, :, 0])  # no axis names ("QQYX"): X of 16 > 4, so (T, Z, Y, X)
    with open_tiff_volume_frames(tmp_path / "qqyx.tif") as planes:
        assert planes.volume == (3, 5)
        np.testing.assert_array_equal(planes[1 * 5 + 4], tzcyx[1, 4, 0])
    with open_tiff_frames(tmp_path / "qqyx.tif", z=2) as frames:  # z=N: one plane, as before
        np.testing.assert_array_equal(frames[1], tzcyx[1, 2, 0])
    tifffile.imwrite(tmp_path / "tyxc.tif", np.moveaxis(tzcyx[:, :2, 0], 1, -1).copy())  # (T, Y, X, 2): channels
    tifffile.imwrite(tmp_path / "t1.tif", tzcyx[:, :1, 0], imagej=True, metadata={"axes": "TZYX"})
    tifffile.imwrite(tmp_path / "zyx.tif", tzcyx[0, :, 0], imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(tmp_path / "tyx.tif", tzcyx[:, 0, 0])
    for name in ("tyxc.tif", "t1.tif", "zyx.tif", "tyx.tif"):
        assert open_tiff_volume_frames(tmp_path / name) is None, name
    tifffile.imwrite(tmp_path / "extra.ome.tif", np.zeros((2, 3, 2, 8, 8), np.uint8), ome=True,
                     metadata={"axes": "TZQYX"})
    with pytest.raises(ValueError, match="only T, Z, Y, X and channels are supported"):
        open_tiff_volume_frames(tmp_path / "extra.ome.tif")
