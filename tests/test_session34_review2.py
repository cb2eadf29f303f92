"""Review of session 34's engine/data changes: RGB and RGBA frames mix, 1-unit pixels in a baseline
labels TIFF, a dask stack computing another float width, every method's seed."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("rgba_at, seed", [(1, 0), (0, 1)])
def test_rgb_and_rgba_png_frames_of_one_folder_are_read_as_rgb(tmp_path, rgba_at, seed):
    """A folder of PNG frames where one frame (frame 0 too) carries an alpha channel (or a palette
    frame with transparency, which read_image expands to RGBA): before f65f175 the RGBA frame's
    alpha was dropped and every frame read exactly; the new per-frame layout check refused the stack."""
    from PIL import Image

    from napari_vos.data.frames import FrameSource
    from napari_vos.data.readers import open_sequence_dir

    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    for i, f in enumerate(frames):
        img = np.dstack([f, np.full((16, 16), 255, np.uint8)]) if i == rgba_at else f
        Image.fromarray(img).save(tmp_path / f"{i:05d}.png")
    source = FrameSource(open_sequence_dir("s", tmp_path, None, "images_masks").frames)
    for i in range(3):
        np.testing.assert_array_equal(source.raw(i), frames[i])
        assert source[i].shape == (16, 16, 3)


@pytest.mark.parametrize("unit", ["µm", "mm"])
def test_a_one_unit_pixel_in_a_baseline_labels_tiff_reads_back(tmp_path, unit):
    """f65f175 made 1-unit pixels read back from ImageJ TIFFs, but a baseline labels TIFF (ids above
    65535, or 4 GiB and more) written with 1 x 1 µm pixels (RESOLUTIONUNIT MICROMETER, resolution 1)
    still reads as uncalibrated, while the CLI's end line says the calibration was kept."""
    from napari_vos.data.calibration import Calibration, read_tiff_calibration, storable_calibration
    from napari_vos.data.writers import write_tiff_labels

    labels = np.zeros((2, 8, 8), np.uint32)
    labels[0, 2:4, 2:4] = 70000  # beyond uint16: a baseline TIFF
    cal = Calibration((1.0, 1.0), unit)
    assert storable_calibration(cal, imagej=False) == cal  # the form says it holds it ...
    path = write_tiff_labels(tmp_path / "l.tif", labels, calibration=cal, max_id=70000)
    back = read_tiff_calibration(path)
    assert back.pixel_size == (1.0, 1.0) and back.unit == unit  # ... but it reads back as None


def test_cli_end_line_does_not_claim_a_calibration_the_file_loses(tmp_path):
    from napari_vos.cli_propagate import _calibration_kept
    from napari_vos.data.calibration import Calibration, read_tiff_calibration
    from napari_vos.data.writers import write_tiff_labels

    cal = Calibration((1.0, 1.0), "µm")
    said = _calibration_kept(cal, False, 70000)
    labels = np.zeros((2, 8, 8), np.uint32)
    labels[0, 0, 0] = 70000
    path = write_tiff_labels(tmp_path / "l.tif", labels, calibration=cal, max_id=70000)
    if "kept the image's calibration" in said:
        assert read_tiff_calibration(path).pixel_size == (1.0, 1.0)


def test_dask_stack_whose_chunks_compute_another_float_width_is_read():
    """A dask stack declared float32 whose chunks compute float64 (map_blocks with a dtype that is
    only nearly right): read before f65f175 (both are percentile-normalised floats); now refused
    with a message that contradicts itself ("frame 0 is grey float64 but the stack's frames are
    grey float32 (frame 0)")."""
    da = pytest.importorskip("dask.array")
    from napari_vos.data.frames import FrameSource

    x = da.from_array(np.random.default_rng(0).random((3, 16, 16)), chunks=(1, 16, 16))
    video = x.map_blocks(lambda b: b, dtype=np.float32)  # computes float64
    source = FrameSource(video)
    for i in range(3):
        try:
            frame = source[i]
        except ValueError as err:
            assert "frame 0 is" not in str(err) or "(frame 0)" not in str(err), str(err)
            raise
        assert np.isfinite(frame).all()


@pytest.mark.parametrize("method", ["flow"])
def test_methodbase_seed_is_the_one_given(method):
    """MethodBase.__init__ now takes ``seed`` ("the Session passes one to every method"), but the
    shipped methods that name ``seed`` themselves and call super().__init__(device, **options)
    (flow, s2s, rvos; osvos_at passes no options at all) leave self.seed at 0."""
    from napari_vos.methods import registry

    assert registry.create(method, seed=5).seed == 5


def test_an_explicit_fourth_channel_is_not_read_from_an_rgb_frame_among_rgba_ones():
    from napari_vos.data.frames import FrameSource
    from napari_vos.data.sequence import LazyFrames

    frames = [np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.uint8)]
    source = FrameSource(LazyFrames(2, lambda i: frames[i]), channels=[3])
    with pytest.raises(ValueError, match="frame 1 is 3-channel uint8 but the stack's frames are 4-channel"):
        source.raw(1)
    with pytest.raises(ValueError, match="frame 1 is 2-channel"):
        FrameSource(LazyFrames(2, lambda i: [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 2), np.uint8)][i])).raw(1)
