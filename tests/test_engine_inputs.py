"""Inputs a script meets the engine with that once failed late or silently (session 25's fuzzing):
picking channel 0 of a grey stack, objects smaller than a working pixel, flat or out-of-range
intensities, a bad seed, odd `out` arrays and devices, a 3-frame stack saved by tifffile."""
import warnings

import numpy as np
import pytest

from napari_vos import Session, propagate
from napari_vos.nn.aggregation import object_masks
from napari_vos.session import ObjectsUnderAPixel


def _video(t=4, size=(32, 40), seed=0):
    return np.random.default_rng(seed).integers(0, 255, (t, *size)).astype(np.uint8)


def _labels(size=(32, 40)):
    labels = np.zeros(size, np.int32)
    labels[4:10, 5:15] = 1
    return labels


def test_channel_0_of_a_grey_stack_runs_and_is_recorded():
    result = propagate(_video(), _labels(), method="flow", device="cpu", channels=[0])
    assert result.options["channels"] == [0] and result.frames_done == 3


def test_an_object_too_small_for_the_working_size_keeps_its_centre_pixel():
    labels = np.zeros((2048, 2048), np.int32)
    labels[100, 100] = 1  # one pixel
    labels[500, 500:502] = 2  # two, side by side
    labels[900:902, 900:902] = 3  # four, one working pixel exactly: kept as it is
    labels[2047, 2047] = 4  # in the corner
    rescued = []
    masks = object_masks(labels, [1, 2, 3, 4], (1024, 1024), rescued)
    assert masks.sum((1, 2)).tolist() == [1.0, 1.0, 1.0, 1.0] and rescued == [1, 2, 4]
    assert [tuple(int(v) for v in np.argwhere(m.numpy())[0]) for m in masks] == \
        [(50, 50), (250, 250), (450, 450), (1023, 1023)]
    # the same object at full size is its own pixels, nothing rescued
    full = []
    assert object_masks(labels, [1], (2048, 2048), full)[0].sum() == 1 and full == []


def test_a_session_warns_of_the_objects_it_keeps_as_one_pixel_and_follows_them():
    base = np.random.default_rng(0).integers(0, 255, (1, 24, 24)).astype(np.uint8)
    video = np.repeat(np.repeat(np.repeat(base, 4, 0), 4, 1), 4, 2)  # a still scene, 96 x 96
    labels = np.zeros((96, 96), np.int32)
    labels[10, 10] = 1
    labels[50:80, 50:80] = 2
    s = Session(video, method="flow", device="cpu", max_side=24)
    s.annotate(0, labels)
    with pytest.warns(ObjectsUnderAPixel, match=r"object 1 of frame 0 is smaller than a pixel at the 24x24 "
                                                r"working size \(max_side=24\)"):
        result = s.run()
    assert all(set(np.unique(f)) == {0, 1, 2} for f in result.labels)  # was: object 1 gone after frame 0
    assert len(s.notes) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = Session(video, method="flow", device="cpu")  # at full size nothing is lost: no warning
        plain.annotate(0, labels)
        plain.run()
    assert plain.notes == []


def test_a_flat_stack_of_large_values_normalises_to_zeros_not_nan():
    from napari_vos.data.frames import FrameSource

    for video in (np.full((3, 16, 16), 2**30, np.uint32), np.full((3, 16, 16), 1e8, np.float32)):
        source = FrameSource(video)
        assert np.isfinite(source[0]).all() and not source[0].any()
        tensor = source.tensor(1)
        assert bool(tensor.isfinite().all()) and float(tensor.abs().max()) == 0.0
    result = propagate(np.full((4, 32, 40), 2**30, np.uint32), _labels(), method="flow", device="cpu")
    assert result.labels[0].any()  # flow's warp of a NaN frame raised a ValueError naming nothing


def test_float64_beyond_float32_is_named_and_an_outlier_pixel_is_no_error():
    huge = np.random.default_rng(0).random((4, 32, 40)) * 1e300
    with pytest.raises(ValueError, match=r"intensities reach or span .*e\+299, beyond the float32 range"):
        propagate(huge, _labels(), method="flow", device="cpu")
    spot = np.random.default_rng(0).random((4, 32, 40))
    spot[1, 0, 0] = 1e300  # finite, if beyond float32: clipped to 1 like any bright outlier
    result = propagate(spot, _labels(), method="flow", device="cpu")
    assert result.frames_done == 3


@pytest.mark.parametrize("seed", [None, 1.5, -1, True, "0", 2 ** 62, 2 ** 64])
def test_a_seed_that_is_no_whole_number_is_refused_by_the_session(seed):
    """2**64 passed, then FRTM's torch generator overflowed at its first frame."""
    with pytest.raises(ValueError, match=r"seed must be a whole number from 0 to 2\*\*62 - 1"):
        Session(_video(), method="frtm", device="cpu", seed=seed)


@pytest.mark.parametrize("name, value", [("maps", "no"), ("keep_maps", 0), ("rgb", "yes")])
def test_an_on_off_setting_given_anything_but_true_or_false_is_refused(name, value):
    """maps="no" turned the maps on."""
    with pytest.raises(ValueError, match=f"{name} is on or off: it takes True or False"):
        Session(_video(), method="flow", device="cpu", **{name: value})


@pytest.mark.parametrize("checkpoint", [123, 1.5, ["frtm-resnet18-vos"]])
def test_a_checkpoint_that_is_no_name_or_path_is_refused_naming_the_option(checkpoint):
    with pytest.raises(ValueError, match="checkpoint must be a registered checkpoint name or a .safetensors path"):
        Session(_video(), method="frtm", device="cpu", checkpoint=checkpoint)


def test_out_as_a_torch_tensor_or_read_only_is_refused_up_front(tmp_path):
    import torch

    with pytest.raises(ValueError, match="out must be a writable .* got a Tensor"):
        Session(_video(), method="flow", device="cpu", out=torch.zeros((4, 32, 40), dtype=torch.int32))
    path = tmp_path / "labels.npy"
    np.save(path, np.zeros((4, 32, 40), np.uint16))
    with pytest.raises(ValueError, match="out is read-only"):
        Session(_video(), method="flow", device="cpu", out=np.load(path, mmap_mode="r"))


@pytest.mark.parametrize("device", ["meta", "xpu"])
def test_a_torch_device_nothing_runs_on_is_refused(device):
    import torch

    for given in (device, torch.device(device)):
        with pytest.raises(ValueError, match="is not one napari-vos knows"):
            Session(_video(), method="flow", device=given)


def test_a_three_frame_stack_saved_by_a_plain_tifffile_imwrite_is_three_frames(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    from napari_vos.data.readers import open_tiff_frames

    video = _video(3).astype(np.uint16)
    # what tifffile's imwrite has written by default up to now (it warns that this will change), as
    # files users already have hold it: planar RGB, with the array's shape in its description
    tifffile.imwrite(tmp_path / "v.tif", video, photometric="rgb", planarconfig="separate")
    with tifffile.TiffFile(tmp_path / "v.tif") as tf:
        assert tf.series[0].axes == "SYX"
    with open_tiff_frames(tmp_path / "v.tif") as frames:
        assert len(frames) == 3
        np.testing.assert_array_equal(np.stack([frames[i] for i in range(3)]), video)


def test_objects_annotated_mid_run_that_the_start_frame_lacks_are_warned_of():
    from napari_vos.session import ObjectsNotFollowed

    video = _video(6)
    labels = _labels()
    s = Session(video, method="flow", device="cpu")
    s.annotate(0, labels)
    steps = s.propagate("forward")
    next(steps), next(steps)
    more = labels.copy()
    more[28:31, 30:38] = 7
    s.annotate(3, more)  # between two frames of the run
    with pytest.warns(ObjectsNotFollowed, match="object 7 of frame 3, annotated during the run, was not on its "
                                                "start frame 0"):
        list(steps)
    assert s.notes and (s.labels[3] == 7).any()


def test_a_dark_8_bit_video_is_stretched_like_its_float_copy_and_noted():
    """A faint 8-bit channel using 0-40 reached the methods dark as 0-255 (RGMP on a dark copy of
    the natural sample: J&F 0.47 -> 0.14); it is stretched by its percentiles, as its float copy is,
    and the run says so (the widget's status line shows `notes`); a full-range video is not."""
    import warnings

    from conftest import moving_square_video
    from napari_vos.data.frames import FrameSource
    from napari_vos.session import DarkVideo

    frames, truth = moving_square_video(n_frames=3)
    dark = (frames.astype(np.float32) * 40 / 255).astype(np.uint8)
    stretched, as_float = FrameSource(dark), FrameSource(dark.astype(np.float32))
    for i in range(3):
        np.testing.assert_allclose(stretched.tensor(i, "cpu").numpy(), as_float.tensor(i, "cpu").numpy(), atol=1e-6)
        np.testing.assert_allclose(stretched[i], as_float[i], atol=1e-6)
    assert float(stretched.tensor(0, "cpu").max()) == 1.0
    np.testing.assert_allclose(FrameSource(frames)[0], frames[0] / 255.0, atol=1e-6)  # full range: as 0-255
    session = Session(dark, method="flow", device="cpu")
    session.annotate(0, truth[0])
    with pytest.warns(DarkVideo, match=r"the 8-bit video's 99.8th percentile is \d+ of 0-255, so it is stretched"):
        session.run("forward")
    assert any("8-bit video's 99.8th percentile" in note for note in session.notes)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DarkVideo)
        for video in (frames, dark.astype(np.float32)):
            propagate(video, truth[0], method="flow", device="cpu", direction="forward")


@pytest.mark.parametrize("channels", [2, 5])
def test_a_channel_last_stack_saved_by_a_plain_tifffile_imwrite_reads_frame_by_frame(tmp_path, channels):
    """tifffile calls both leading axes of a (T, Y, X, C) array with C not 3 or 4 "Q"; each frame
    must be the array's frame, not its diagonal (frame i read at [i, i])."""
    tifffile = pytest.importorskip("tifffile")
    from napari_vos.data.frames import FrameSource
    from napari_vos.data.readers import open_tiff_frames

    video = np.random.default_rng(0).integers(0, 60000, (4, 32, 40, channels)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "v.tif", video)
    with tifffile.TiffFile(tmp_path / "v.tif") as tf:
        assert tf.series[0].axes == "QQYX"
    with open_tiff_frames(tmp_path / "v.tif") as frames:
        assert len(frames) == 4
        np.testing.assert_array_equal(np.stack([frames[i] for i in range(4)]), video)
        if channels == 5:
            with pytest.raises(ValueError, match="--channels"):
                FrameSource(frames)
        assert FrameSource(frames, channels=[0, 1]).frame_shape == (32, 40)


def test_a_z_plane_of_a_t_z_y_x_stack_saved_by_a_plain_tifffile_imwrite(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    from napari_vos.data.readers import open_tiff_frames

    for planes in (3, 5):  # 3 planes are stored as planar colour ("QSYX"), 5 as pages ("QQYX")
        video = np.random.default_rng(1).integers(0, 255, (4, planes, 32, 40)).astype(np.uint8)
        tifffile.imwrite(tmp_path / "v.tif", video)
        with open_tiff_frames(tmp_path / "v.tif", z=2) as frames:
            np.testing.assert_array_equal(np.stack([frames[i] for i in range(4)]), video[:, 2])
    with open_tiff_frames(tmp_path / "v.tif") as frames:  # no plane picked: read as numpy reads it, and refused
        from napari_vos.data.frames import FrameSource

        with pytest.raises(ValueError, match=r"--z N"):
            FrameSource(frames)


def test_float16_labels_are_read_without_an_overflow_warning():
    """The id limit check compared float16's max with 2**31 - 1, which float16 turns into inf."""
    import warnings

    from napari_vos.session import check_labels

    labels = np.zeros((16, 16), np.float16)
    labels[4:8, 4:8] = 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_labels(labels, (16, 16), "labels").max() == 3


@pytest.mark.real_working_size
def test_a_tall_thin_video_held_under_the_methods_side_by_max_side_is_noted():
    """FRTM works at a 480 px shorter side; max_side=1024 keeps a 1000 x 60 channel at 1024 x 61,
    four cells of its stride-16 maps, where it lost a static square (IoU 0.01) with nothing said."""
    from napari_vos.session import SmallWorkingSize

    video = np.full((2, 1000, 60), 30, np.uint8)
    video[:, 400:600, 20:40] = 200
    labels = np.zeros((1000, 60), np.int32)
    labels[400:600, 20:40] = 1
    session = Session(video, method="agame", device="cpu")
    session.annotate(0, labels)
    assert session.work_size == (1024, 61)
    with pytest.warns(SmallWorkingSize, match=r"max_side=1024 runs this 60x1000 video at 61x1024: .* raise max_side"):
        session.propagate("forward")
    wide = Session(np.zeros((2, 600, 1400), np.uint8), method="agame", device="cpu")  # 1024 x 439: not noted
    wide.annotate(0, np.pad(np.ones((10, 10), np.int32), ((0, 590), (0, 1390))))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SmallWorkingSize)
        wide.propagate("forward")


@pytest.mark.real_working_size
def test_enlarging_past_the_pixel_budget_with_nothing_capping_it_is_refused():
    """RGMP's 64 px object rule took a 512 x 512 video of 3 x 3 spots to 9680 x 9680 with max_side=None."""
    video = np.zeros((2, 512, 512), np.uint8)
    labels = np.zeros((512, 512), np.int32)
    labels[10:13, 10:13] = 1
    session = Session(video, method="rgmp", device="cpu", max_side=None)
    session.annotate(0, labels)
    with pytest.raises(ValueError, match=r"working size would be \d+x\d+ pixels .* set max_side"):
        session.propagate()
    own = Session(video, method="rgmp", device="cpu", max_side=None, min_object_side=None)
    own.annotate(0, labels)
    own.propagate()  # the frame's own size is never refused


def test_a_y_x_1_labels_image_is_told_to_drop_its_last_axis():
    video = np.zeros((4, 16, 16), np.uint8)
    labels = np.zeros((16, 16, 1), np.int32)
    labels[4:8, 4:8] = 1
    with pytest.raises(ValueError, match=r"pass labels\[\.\.\., 0\]"):
        propagate(video, labels, method="flow", device="cpu")
