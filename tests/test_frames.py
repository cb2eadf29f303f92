"""Frame reading and normalisation: dtypes, grey/multi-channel, axes errors, lazy access."""
import dask.array as da
import numpy as np
import pytest
import tifffile

from napari_vos.data.frames import FrameSource, median_object_diameter, object_scale, working_size


def test_uint8_rgb_is_scaled_by_255():
    v = np.zeros((2, 4, 5, 3), np.uint8)
    v[0, 0, 0] = (255, 0, 51)
    f = FrameSource(v)[0]
    assert f.shape == (4, 5, 3) and f.dtype == np.float32
    assert np.allclose(f[0, 0], (1.0, 0.0, 0.2))


def test_uint16_grey_uses_stack_percentiles_and_becomes_rgb():
    rng = np.random.default_rng(0)
    v = rng.integers(1000, 3000, size=(5, 16, 16), dtype=np.uint16)
    src = FrameSource(v)
    f = src[2]
    assert f.shape == (16, 16, 3)
    assert f.min() >= 0 and f.max() <= 1
    assert np.allclose(f[..., 0], f[..., 1])
    # same range for every frame: a frame twice as bright is not renormalised to look the same
    bright = v.copy()
    bright[4] = np.minimum(bright[4].astype(np.uint32) + 1500, 65535).astype(np.uint16)
    s2 = FrameSource(bright)
    assert s2[4].mean() > s2[0].mean() + 0.2


def test_dim_float_data_in_the_unit_range_are_normalised_like_their_16_bit_source():
    """12-bit camera data through skimage's img_as_float fill [0, 0.0625]: taken as they are the
    networks saw black frames (RGMP's IoU 0.79 -> 0.13); scaled by their percentiles, they give
    the frames the 16-bit stack gives."""
    counts = np.random.default_rng(2).integers(0, 4096, (3, 16, 16)).astype(np.uint16)
    as_float = counts.astype(np.float32) / 65535
    for i in range(3):
        np.testing.assert_allclose(FrameSource(as_float)[i], FrameSource(counts)[i], atol=1e-5)
    assert FrameSource(as_float)[0].max() == 1.0


def test_float_outside_unit_range_is_normalised():
    v = np.random.default_rng(1).normal(100, 20, size=(3, 8, 8)).astype(np.float64)
    f = FrameSource(v)[0]
    assert 0 <= f.min() and f.max() <= 1 and f.std() > 0.05


def test_nan_frame_is_a_clear_error():
    v = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32) * 5
    v[1, 2, 2] = np.nan
    src = FrameSource(v)
    src[0]
    with pytest.raises(ValueError, match="frame 1 contains NaN"):
        src[1]


def test_channel_choice_and_two_channel_padding():
    v = np.random.default_rng(0).integers(0, 255, size=(2, 6, 6, 5), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"\(T, Y, X\)"):
        FrameSource(v)  # 5 trailing values: channels or Z? ask
    f = FrameSource(v, channels=[4, 1])[0]
    assert np.allclose(f[..., 0], v[0, ..., 4] / 255) and np.allclose(f[..., 1], v[0, ..., 1] / 255)
    assert np.all(f[..., 2] == 0)
    with pytest.raises(ValueError, match="do not exist"):
        FrameSource(v, channels=[7])
    for wrong in (64, "0,1", [0.5, 1], [True]):  # e.g. a method option of that name that reached the engine
        with pytest.raises(ValueError, match=r"channels must be a list of channel indices such as \[0, 2\]"):
            FrameSource(v, channels=wrong)


def test_tzyx_stack_gets_an_axes_message():
    with pytest.raises(ValueError, match=r"\(T, Z, Y, X\)") as err:
        FrameSource(np.zeros((3, 10, 16, 16), np.uint16))
    assert "moveaxis" not in str(err.value)  # ten planes: Z, not channels
    with pytest.raises(ValueError, match=r"\(T, C, Y, X\) stack with 2 channels on axis 1 .*move that axis last, "
                                         r"np.moveaxis\(video, 1, -1\)"):
        FrameSource(np.zeros((3, 2, 16, 16), np.uint16))  # channels first
    with pytest.raises(ValueError, match="expects"):
        FrameSource(np.zeros((2, 3, 4, 5, 6)))
    with pytest.raises(ValueError, match="single 2-D image"):
        FrameSource(np.zeros((16, 16)))


def test_lazy_sources_read_one_frame(tmp_path):
    calls = []

    class Counting:
        shape, dtype, ndim = (50, 8, 8), np.dtype(np.uint8), 3

        def __getitem__(self, i):
            calls.append(i)
            return np.full((8, 8), i, np.uint8)

    src = FrameSource(Counting())
    src[7]  # and, once, the up-to-8 frames the intensity range (and the 8-bit dark check) sample
    assert calls[0] == 7 and len(calls) <= 9
    calls.clear()
    src[9]
    assert calls == [9]
    d = da.from_array(np.zeros((4, 8, 8), np.uint8), chunks=(1, 8, 8))
    assert FrameSource(d)[3].shape == (8, 8, 3)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((4, 8, 8), np.uint16))
    assert FrameSource(tifffile.memmap(path))[2].shape == (8, 8, 3)
    import zarr

    z = zarr.zeros((4, 8, 8), chunks=(1, 8, 8), dtype=np.uint8)
    assert FrameSource(z)[1].shape == (8, 8, 3)


def test_working_size_caps_the_longer_side():
    assert working_size((480, 854), None) == (480, 854)
    assert working_size((480, 854), 427) == (240, 427)
    assert working_size((100, 100), 512) == (100, 100)


def test_working_size_enlarges_small_frames_up_to_the_cap():
    assert working_size((256, 384), 1024, 480) == (480, 720)
    assert working_size((480, 854), 1024, 480) == (480, 854)  # already large enough
    assert working_size((100, 1000), 1024, 480) == (102, 1024)  # the cap on the longer side wins
    assert working_size((256, 384), None, 300) == (300, 450)


def test_working_size_takes_the_larger_of_the_side_and_object_rules_under_the_cap():
    assert working_size((256, 256), 1024, None, 2.0) == (512, 512)
    assert working_size((256, 384), 1024, 480, 1.5) == (480, 720)  # the side rule asks for more
    assert working_size((256, 256), 384, None, 2.0) == (384, 384)  # the cap still wins


def test_object_scale_enlarges_to_the_median_object_diameter():
    labels = np.zeros((100, 100), np.int32)
    labels[:10, :10] = 1  # area 100: diameter 2 * sqrt(100 / pi) = 11.28
    labels[50:60, 50:60] = 2
    labels[20:80, 20:40] = 3  # one large object does not change the median
    big = np.zeros((100, 100), np.int32)
    big[:40, :40] = 4
    assert median_object_diameter([labels]) == pytest.approx(2 * np.sqrt(100 / np.pi))
    assert object_scale([labels], 40) == pytest.approx(40 / (2 * np.sqrt(100 / np.pi)))
    d = 2 * np.sqrt(np.array([100, 1200]) / np.pi)  # objects 100, 100, 1200, 1600 px: median of the middle two
    assert median_object_diameter([labels, big]) == pytest.approx(d.mean())
    assert object_scale([big], 40) == 1.0  # already large enough: never shrinks
    assert object_scale([labels], None) == 1.0
    assert object_scale([np.zeros((5, 5), np.int32)], 40) == 1.0  # no object, no rule
    assert median_object_diameter([]) is None


_STACKS = {
    "uint8 rgb": lambda rng: rng.integers(0, 256, (3, 20, 30, 3), dtype=np.uint8),
    "uint8 grey": lambda rng: rng.integers(0, 256, (3, 20, 30), dtype=np.uint8),
    "uint16 grey": lambda rng: rng.integers(0, 60000, (3, 20, 30), dtype=np.uint16),
    "uint16 two channels": lambda rng: rng.integers(0, 60000, (3, 20, 30, 2), dtype=np.uint16),
    "uint8 rgba": lambda rng: rng.integers(0, 256, (3, 20, 30, 4), dtype=np.uint8),
    "float32 outside [0, 1]": lambda rng: (rng.normal(size=(3, 20, 30, 3)) * 100).astype(np.float32),
    "bool": lambda rng: rng.random((3, 20, 30)) > 0.5,
}


@pytest.mark.parametrize("kind", sorted(_STACKS))
@pytest.mark.parametrize("size", [None, (20, 30), (11, 17), (40, 60)])
def test_tensor_frames_equal_the_numpy_normalisation(kind, size):
    """The engine's torch path gives the numpy normalisation's values exactly (resized like the
    (H, W, 3) array was), leaves the caller's stack untouched, and is float32 (3, H, W)."""
    import torch
    import torch.nn.functional as F

    video = _STACKS[kind](np.random.default_rng(0))
    kept = video.copy()
    source = FrameSource(video)
    for i in range(3):
        expected = torch.from_numpy(source[i]).permute(2, 0, 1)
        if size is not None and size != (20, 30):
            expected = F.interpolate(expected[None], size=size, mode="bilinear", antialias=True,
                                     align_corners=False)[0]
        got = source.tensor(i, "cpu", size)
        assert got.dtype == torch.float32 and got.shape == expected.shape
        assert torch.equal(got, expected)
    assert np.array_equal(video, kept)


def test_tensor_frames_reject_nan_too():
    v = np.zeros((2, 4, 4), np.float32)
    v[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="frame 1 contains NaN"):
        FrameSource(v).tensor(1, "cpu")


def test_a_frame_of_another_size_is_an_error_not_stretched():
    class Frames:  # a lazy stack (a folder of images) whose third frame is two rows short
        shape, dtype = (4, 32, 40), np.dtype(np.uint8)

        def __getitem__(self, t):
            return np.zeros((30 if t == 2 else 32, 40), np.uint8)

    source = FrameSource(Frames())
    with pytest.raises(ValueError, match="frame 2 is 40x30 pixels but the stack's frames are 40x32"):
        source.tensor(2)
    source._dark = False  # the range's sample taken (it reads frame 2 too): frame 1 reads, frame 2 does not
    assert source.tensor(1).shape == (3, 32, 40)
    with pytest.raises(ValueError, match="frame 2 is 40x30 pixels but the stack's frames are 40x32"):
        source.tensor(2)


def test_the_range_is_the_1st_and_99_8th_percentile_per_channel():
    # np.percentile's values, pinned: 0..9999 gives 99.99 .. 9979.002, and pixel 5000 sits at 0.4960
    src = FrameSource(np.arange(10000, dtype=np.uint16).reshape(1, 100, 100))
    lo, hi = src._intensity_range()
    assert float(lo[0]) == pytest.approx(99.99) and float(hi[0]) == pytest.approx(9979.002)
    assert src[0][50, 0, 0] == pytest.approx((5000 - 99.99) / (9979.002 - 99.99), abs=1e-5)
    # one range per channel: a dim channel beside a bright one still fills [0, 1]
    rng = np.random.default_rng(0)
    two = np.stack([rng.integers(0, 1000, (3, 20, 30)), rng.integers(0, 60000, (3, 20, 30))], -1).astype(np.uint16)
    frame = FrameSource(two)[0]
    assert frame[..., 0].max() > 0.95 and frame[..., 1].max() > 0.95


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.int8])
def test_integer_ranges_from_a_histogram_equal_numpys_percentiles(dtype):
    from napari_vos.data.frames import PERCENTILES
    from napari_vos.data.intensity import percentile_range

    info = np.iinfo(dtype)
    rng = np.random.default_rng(1)
    frames = [rng.integers(info.min, info.max, (17, 23, 2), endpoint=True).astype(dtype) for _ in range(3)]
    lo, hi = percentile_range(frames, PERCENTILES)
    expected = np.percentile(np.stack(frames).reshape(-1, 2).astype(np.float64), PERCENTILES, axis=0)
    np.testing.assert_allclose([lo, hi], expected, rtol=0, atol=1e-6)


def test_the_first_frame_is_read_once_for_the_range_and_the_frame():
    calls = []

    class Counting:
        shape, dtype, ndim = (50, 8, 8), np.dtype(np.uint16), 3

        def __getitem__(self, i):
            calls.append(i)
            return np.full((8, 8), 100 * i, np.uint16)

    FrameSource(Counting()).tensor(0)
    assert sorted(calls) == [0, 7, 14, 21, 28, 35, 42, 49]  # the 8 sample frames, frame 0 among them once


def test_working_size_rounds_to_the_nearest_pixel():
    # pins: the scaled sides are rounded, not truncated (100 x 300 capped at 200: 66.7 -> 67)
    assert working_size((100, 300), 200) == (67, 200)
    assert working_size((50, 70), None, 64) == (64, 90)  # 89.6 -> 90


def test_rgba_drops_alpha_and_a_channel_order_is_kept_even_when_it_names_every_channel():
    # pins: RGBA keeps R, G, B (not G, B, A); channels=[2, 1, 0] on an RGB stack really swaps R and B
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (2, 4, 5, 4), dtype=np.uint8)
    np.testing.assert_allclose(FrameSource(rgba)[1], rgba[1, ..., :3] / 255.0, rtol=1e-6)
    rgb = rgba[..., :3].copy()
    swapped = FrameSource(rgb, channels=[2, 1, 0])
    np.testing.assert_allclose(swapped[0], rgb[0, ..., ::-1] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(swapped.tensor(0).permute(1, 2, 0).numpy(), rgb[0, ..., ::-1] / 255.0, rtol=1e-6)


def test_rgb_false_on_a_three_channel_stack_says_what_to_pass_instead():
    """It used to say it expects "C <= 4 channels" of a stack with 3."""
    video = np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=r"rgb=False: the last axis of the stack \(4, 8, 8, 3\) \(size 3\) is not read "
                                         r"as colour.*pass channels=\[0, 1, 2\]"):
        FrameSource(video, rgb=False)
    assert FrameSource(video, rgb=False, channels=[0, 1, 2])[0].shape == (8, 8, 3)


def test_rgb_true_on_a_stack_without_a_colour_axis_is_refused():
    """A (T, Y, 3) stack given rgb=True was read as grey frames 3 pixels wide, the forcing silently ignored."""
    video = np.zeros((6, 64, 3), np.uint8)
    with pytest.raises(ValueError, match=r"rgb=True reads the last axis as colour, but the stack \(6, 64, 3\) has no "
                                         r"axis for it beside \(T, Y, X\)"):
        FrameSource(video, rgb=True)
    assert FrameSource(video, rgb=False)[0].shape == (64, 3, 3)


def test_a_single_colour_image_as_the_video_is_named_as_such():
    """(Y, X, 3) was read as Y grey frames 3 pixels wide, and the labels' mismatch was all that was said."""
    with pytest.raises(ValueError, match=r"the stack \(64, 80, 3\) reads as 64 frames of 80 x 3 pixels: a single "
                                         r"colour image\?"):
        FrameSource(np.zeros((64, 80, 3), np.uint8))
    assert FrameSource(np.zeros((6, 8, 3), np.uint8)).shape == (6, 8, 3)  # tiny frames of a test stay frames


def test_rgb_true_on_a_stack_of_two_values_a_pixel_is_refused():
    """It read the two values as two channels, the forcing silently ignored."""
    with pytest.raises(ValueError, match=r"rgb=True reads the last axis as colour, but the stack \(4, 16, 16, 2\) "
                                         r"has 2 values a pixel"):
        FrameSource(np.zeros((4, 16, 16, 2), np.uint8), rgb=True)


def test_a_float_stack_of_tiny_values_is_stretched_not_read_flat():
    """A range of 1e-13 (currents in A, lengths in m) is a range: an absolute 1e-12 threshold took it
    for a constant stack and the methods got black frames."""
    v = np.zeros((2, 8, 8), np.float32)
    v[:, 2:6, 2:6] = 1e-13
    source = FrameSource(v)
    assert float(source.tensor(0, "cpu").max()) == pytest.approx(1.0)
    assert source[0].max() == pytest.approx(1.0)


@pytest.mark.parametrize("dtype, base, step", [(np.int64, 2**40, 50), (np.float64, 1e8, 3), (np.uint32, 4_000_000_000, 50),
                                               (np.int32, 2_000_000_000, 3)])
def test_a_large_offset_with_a_small_range_is_not_flattened(dtype, base, step):
    """float32 cannot tell 2**40 from 2**40 + 50: the offset comes off in float64 first."""
    v = np.full((2, 8, 8), base, dtype)
    v[:, 2:6, 2:6] += dtype(step)
    source = FrameSource(v)
    for frame in (source.tensor(0, "cpu").permute(1, 2, 0).numpy(), source[0]):
        assert frame.max() == pytest.approx(1.0) and frame.min() == 0.0
        assert (frame[2:6, 2:6] == frame.max()).all()
