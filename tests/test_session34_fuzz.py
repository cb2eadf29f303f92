"""Edge inputs the session-34 fuzzing (hypothesis, over propagate/Session and the CLI's files) found
mishandled: frames of mixed layout or type, calibrations a labels TIFF could not hold, thin strips
for flow, a float range wider than float32, a (Y, X, 1) labels TIFF, a stale map on an annotation."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _ramp_grey(h: int = 24, w: int = 32) -> np.ndarray:
    return np.tile((np.arange(w, dtype=np.uint8) * 8)[None], (h, 1))


# -- 1. frames of another channel count or dtype than frame 0 ------------------------------------

def test_a_grey_frame_among_colour_frames_is_not_read_as_its_first_three_columns():
    """A folder/pims stack whose frame 2 is grey while frame 0 is RGB: FrameSource picks "channels"
    [0, 1, 2] off the grey frame's X axis, so frame 2 becomes its first 3 columns stretched over the
    frame. It must either be refused with a ValueError naming the frame, or read as grey -> RGB."""
    from napari_vos.data.frames import FrameSource
    from napari_vos.data.sequence import LazyFrames

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (24, 32, 3)).astype(np.uint8) for _ in range(3)]
    frames[2] = _ramp_grey()
    source = FrameSource(LazyFrames(3, lambda i: frames[i]))
    with pytest.raises(ValueError, match=r"frame 2 is grey uint8 but the stack's frames are 3-channel uint8"):
        source.tensor(2, "cpu", (24, 32))


def test_a_colour_frame_among_grey_frames_is_a_clear_error_not_an_index_error():
    """Frame 0 grey, frame 2 RGB (a folder of PNGs with one saved in colour): the intensity range's
    histogram raised IndexError (the CLI printed a traceback)."""
    import napari_vos
    from napari_vos.data.sequence import LazyFrames

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (24, 32)).astype(np.uint8) for _ in range(4)]
    frames[2] = rng.integers(0, 255, (24, 32, 3)).astype(np.uint8)
    labels = np.zeros((24, 32), np.uint8)
    labels[5:15, 5:15] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"frame 2 is 3-channel uint8 but the stack's frames are grey"):
            napari_vos.propagate(LazyFrames(4, lambda i: frames[i]), labels, method="flow", device="cpu")


def test_a_16_bit_frame_among_8_bit_frames_is_named():
    """Frame 1 16-bit, the others 8-bit: numpy's "operands could not be broadcast together with
    shapes (256,) (4000,)" was the whole message."""
    import napari_vos
    from napari_vos.data.sequence import LazyFrames

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (24, 32)).astype(np.uint8) for _ in range(4)]
    frames[1] = rng.integers(0, 4000, (24, 32)).astype(np.uint16)
    labels = np.zeros((24, 32), np.uint8)
    labels[5:15, 5:15] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="frame 1"):
            napari_vos.propagate(LazyFrames(4, lambda i: frames[i]), labels, method="flow", device="cpu")


# -- 2. a labels TIFF with ids above 65535 loses a pixel size in nm (and the CLI says it kept it) ---

def test_labels_tiff_with_large_ids_keeps_a_nanometre_pixel_size(tmp_path, capsys):
    import tifffile

    from napari_vos import cli
    from napari_vos.data.calibration import read_tiff_calibration

    video = np.random.default_rng(0).integers(0, 255, (3, 24, 32)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "v.tif", video, ome=True,
                     metadata={"axes": "TYX", "PhysicalSizeX": 80.0, "PhysicalSizeY": 80.0,
                               "PhysicalSizeXUnit": "nm", "PhysicalSizeYUnit": "nm"})
    labels = np.zeros((24, 32), np.uint32)
    labels[5:12, 5:12] = 70000
    tifffile.imwrite(tmp_path / "lab.tif", labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = cli.main(["propagate", str(tmp_path / "v.tif"), str(tmp_path / "lab.tif"), "-o", str(tmp_path / "o.tif"),
                       "--method", "flow", "--device", "cpu"])
    assert rc == 0
    said = capsys.readouterr().out
    cal = read_tiff_calibration(tmp_path / "o.tif")
    assert cal.unit == "µm" and np.allclose(cal.pixel_size, 0.08), cal
    assert "kept the image's pixel size (80 x 80 nm pixels) as 0.08 x 0.08 µm pixels" in said, said


def test_a_pixel_size_a_labels_tiff_cannot_hold_is_said_to_be_lost():
    from napari_vos.cli_propagate import _calibration_kept
    from napari_vos.data.calibration import Calibration

    said = _calibration_kept(Calibration((2.0, 2.0), None, 5.0, "s"), imagej=False, top_id=70000)
    assert said == ("; a labels TIFF of ids above 65535 has no place for the pixel size (2 x 2 unit pixels) or "
                    "the frame interval")
    assert _calibration_kept(Calibration((2.0, 2.0), "nm", 5.0, "s"), imagej=True, top_id=3) == \
        "; kept the image's calibration (2 x 2 nm pixels, 5 s between frames)"


# -- 3. flow on a thin strip with default settings ------------------------------------------------

def test_flow_runs_on_a_three_pixel_tall_strip_with_default_settings():
    """(3, 3, 800): flow's flow_side (256) shrinks the frame to 1 x 256 and skimage's optical flow
    fails with numpy's "Shape of array too small to calculate a numerical gradient"."""
    import napari_vos

    video = np.random.default_rng(0).random((3, 3, 800)).astype(np.float32)
    labels = np.zeros((3, 800), np.uint8)
    labels[:, 100:200] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = napari_vos.propagate(video, labels, method="flow", device="cpu")
    assert result.labels.shape == (3, 3, 800)


def test_flow_runs_when_max_side_leaves_a_one_pixel_working_side():
    import napari_vos

    video = np.random.default_rng(0).random((3, 10, 80)).astype(np.float32)
    labels = np.zeros((10, 80), np.uint8)
    labels[:, 10:30] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = napari_vos.propagate(video, labels, method="flow", device="cpu", max_side=8)
    assert result.labels.shape == (3, 10, 80)


# -- 4. float data whose 1-99.8 % range spans more than float32 holds -----------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_range_wider_than_float32_gives_finite_frames_or_an_error(dtype):
    """Values in +-2e38: lo and hi each fit float32 (the existing check), hi - lo does not: NaN frames,
    then empty labels from the networks and "cannot convert float NaN to integer" from flow."""
    from napari_vos.data.frames import FrameSource

    video = ((np.random.default_rng(0).random((3, 16, 16)) * 2 - 1) * 2e38).astype(dtype)
    with pytest.raises(ValueError, match=r"reach or span .* beyond the float32 range"):
        FrameSource(video).tensor(1, "cpu")


# -- 5. the CLI's (Y, X, 1) labels TIFF -------------------------------------------------------------

def test_cli_reads_a_one_frame_labels_tiff_with_a_trailing_axis_of_one(tmp_path):
    import tifffile

    from napari_vos import cli

    video = np.random.default_rng(0).integers(0, 255, (5, 24, 32)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "v.tif", video)
    labels = np.zeros((24, 32, 1), np.uint16)
    labels[5:12, 5:12] = 1
    tifffile.imwrite(tmp_path / "lab.tif", labels)  # also what skimage.io.imsave writes (axes YXQ)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = cli.main(["propagate", str(tmp_path / "v.tif"), str(tmp_path / "lab.tif"), "-o",
                       str(tmp_path / "o.tif"), "--method", "flow", "--device", "cpu"])
    assert rc == 0


# -- 6. a pixel size below 2.3e-10 of its unit -------------------------------------------------------

def test_labels_tiff_writes_with_an_angstrom_pixel_size_given_in_metres(tmp_path):
    """tifffile's rational() cannot store 1e10 pixels per unit: "max_denominator should be at least 1"
    was the CLI's whole message, before any frame was segmented."""
    from napari_vos.data.calibration import Calibration
    from napari_vos.data.writers import write_tiff_labels

    labels = np.zeros((2, 8, 8), np.uint16)
    labels[:, 2:4, 2:4] = 1
    write_tiff_labels(tmp_path / "o.tif", labels, calibration=Calibration((1e-10, 1e-10), "m"))
    from napari_vos.data.calibration import read_tiff_calibration

    back = read_tiff_calibration(tmp_path / "o.tif")
    assert back.unit == "Å" and np.allclose(back.pixel_size, 1.0), back


def test_a_forward_run_from_the_last_frame_leaves_no_earlier_map_beside_the_annotation():
    """The pass returned before zeroing its start frame's maps when it had no frame to segment."""
    import napari_vos

    rng = np.random.default_rng(0)
    video = (rng.random((4, 32, 32)) * 255).astype(np.uint8)
    labels = np.zeros((32, 32), np.uint8)
    labels[8:20, 8:20] = 1
    session = napari_vos.Session(video, method="flow", device="cpu", maps=True)
    session.annotate(0, labels)
    list(session.propagate("forward"))
    assert session.result().maps["flow_magnitude"][3].any()
    session.annotate(3, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        list(session.propagate("forward", start=3))
    assert not session.result().maps["flow_magnitude"][3].any()


def test_a_one_unit_pixel_in_an_imagej_labels_tiff_reads_back(tmp_path):
    """1 µm pixels were read as no calibration (a resolution of 1 counted as a writer's default)."""
    from napari_vos.data.calibration import Calibration, read_tiff_calibration
    from napari_vos.data.writers import write_tiff_labels

    path = write_tiff_labels(tmp_path / "l.tif", np.zeros((2, 8, 8), np.uint16),
                             calibration=Calibration((1.0, 1.0), "µm", 2.0, "s"))
    assert read_tiff_calibration(path) == Calibration((1.0, 1.0), "µm", 2.0, "s")
