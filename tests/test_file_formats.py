"""Files as microscopists have them (session-32 audit): non-ASCII units, stubs and truncated outputs
after a failed write, 72-dpi placeholders, folders of per-time-point TIFFs, --z with 4-D labels,
colour labels as TIFF."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile")
pytest.importorskip("torch")

from napari_vos import cli  # noqa: E402
from napari_vos.data.calibration import Calibration, read_tiff_calibration  # noqa: E402

T, Y, X = 5, 48, 64


def _video() -> np.ndarray:
    rng = np.random.default_rng(0)
    v = rng.normal(100, 10, (T, Y, X))
    for t in range(T):
        v[t, 15:30, 10 + 2 * t:26 + 2 * t] += 900
    return v.clip(0).astype(np.uint16)


def _labels() -> np.ndarray:
    lab = np.zeros((Y, X), np.uint16)
    lab[15:30, 10:26] = 1
    return lab


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(*argv: str) -> int:
    return cli.main(["propagate", *argv, "--method", "flow", "--device", "cpu"])


# 1 -------------------------------------------------------------------------------------------
def test_ome_time_unit_microseconds_does_not_crash(tmp_path: Path) -> None:
    """OME's TimeIncrementUnit "µs" (or PhysicalSizeXUnit "Å") reached tifffile's ASCII-only ImageJ
    description: "'ascii' codec can't encode character '\\xb5'" before the run, exit 2."""
    video = tmp_path / "fast.ome.tif"
    tifffile.imwrite(video, _video(), ome=True, metadata={
        "axes": "TYX", "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65,
        "TimeIncrement": 500.0, "TimeIncrementUnit": "µs"})
    tifffile.imwrite(tmp_path / "lab.tif", _labels())
    out = tmp_path / "out.tif"
    assert _run(str(video), str(tmp_path / "lab.tif"), "-o", str(out)) == 0
    cal = read_tiff_calibration(out)
    assert cal.pixel_size is not None and np.allclose(cal.pixel_size, (0.65, 0.65))
    assert cal.frame_interval == pytest.approx(500.0)


def test_write_tiff_labels_with_non_ascii_units(tmp_path: Path) -> None:
    from napari_vos.data.writers import write_tiff_labels

    labels = np.zeros((3, 8, 8), np.uint16)
    write_tiff_labels(tmp_path / "a.tif", labels, calibration=Calibration((5.0, 5.0), "Å", 2.0, "µs"))
    cal = read_tiff_calibration(tmp_path / "a.tif")
    assert cal.pixel_size == pytest.approx((5.0, 5.0))


# 2 -------------------------------------------------------------------------------------------
def test_failed_partial_file_creation_leaves_no_stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If making <out>.partial.tif fails after the file exists, an 8-byte stub stayed behind and every
    later run to that output was refused ("holds the labels of an earlier run ... move or delete it")."""
    from napari_vos.data import partial_labels

    def failing(path, *args, **kwargs):  # what tifffile.memmap does on a bad description: file made, then raise
        Path(path).write_bytes(b"II*\x00\x00\x00\x00\x00")
        raise ValueError("cannot make the memory map")

    monkeypatch.setattr(partial_labels, "open_tiff_labels", failing)
    out = tmp_path / "out.tif"
    with pytest.raises(ValueError):
        partial_labels.PartialLabels(out, (T, Y, X), 1, Calibration(), {})
    assert not partial_labels.partial_path(out).exists()


# 3 -------------------------------------------------------------------------------------------
def test_failed_tiff_write_keeps_the_earlier_file(tmp_path: Path) -> None:
    """write_tiff_labels writes straight into the output: an error part-way (full disk, Ctrl+C) leaves a
    truncated TIFF under the output's name (tifffile reads 3 of 5 frames with a warning) and the earlier
    file is gone. Writing to a temporary name and os.replace() keeps the earlier file."""
    from napari_vos.data.writers import write_tiff_labels

    path = tmp_path / "out.tif"
    earlier = np.full((T, Y, X), 7, np.uint16)
    write_tiff_labels(path, earlier)

    class Failing:
        shape = (T, Y, X)

        def __len__(self) -> int:
            return T

        def __getitem__(self, t: int) -> np.ndarray:
            if t == 3:
                raise OSError(28, "No space left on device")
            return np.ones((Y, X), np.uint16)

    with pytest.raises(OSError):
        write_tiff_labels(path, Failing(), max_id=1)
    assert np.array_equal(tifffile.imread(path), earlier)


# 4 -------------------------------------------------------------------------------------------
def test_failed_png_write_does_not_keep_the_earlier_runs_record(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A PNG folder rewritten by a second run that fails part-way held the new run's first frames, the
    earlier run's later frames and the earlier run's .napari_vos.json, which describes another video."""
    from napari_vos.data import writers

    first = tmp_path / "first.tif"
    second = tmp_path / "second.tif"
    tifffile.imwrite(first, _video())
    tifffile.imwrite(second, _video()[:, ::-1])
    lab = tmp_path / "lab.tif"
    tifffile.imwrite(lab, _labels())
    out = tmp_path / "pngs"
    assert _run(str(first), str(lab), "-o", str(out)) == 0

    real = writers.write_png_label
    calls = {"n": 0}

    def failing(path, labels):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real(path, labels)

    monkeypatch.setattr(writers, "write_png_label", failing)
    assert _run(str(second), str(lab), "-o", str(out)) == 2
    record = writers.png_record(out)
    if record is not None:
        saved = json.loads(record.read_text())
        assert saved["inputs"]["video"] != str(first.resolve()), \
            "the folder's record still names the first run's video over a mix of both runs' frames"


# 5 -------------------------------------------------------------------------------------------
def test_72_dpi_placeholder_is_no_calibration(tmp_path: Path) -> None:
    """72 pixels per inch is the default of MATLAB's imwrite, Photoshop and others, not a pixel size;
    ImageJ's TiffDecoder reads it as uncalibrated. napari-vos kept it as "0.0138889 inch pixels", wrote
    unit=inch into the labels TIFF, and open_labels_layer then scales the labels 1/72 beside the image."""
    path = tmp_path / "matlab.tif"
    tifffile.imwrite(path, _video(), resolution=(72, 72), resolutionunit="INCH")
    assert read_tiff_calibration(path).empty


# 6 -------------------------------------------------------------------------------------------
def test_folder_of_multichannel_tiff_frames(tmp_path: Path) -> None:
    """One ImageJ (C, Y, X) TIFF per time point (a very common microscope export) cannot be read by the
    CLI: the folder reader uses tifffile.imread, so frames are (C, Y, X) and the error suggests
    np.moveaxis, --z (refused for folders) or --channels (which then picks X columns)."""
    folder = tmp_path / "frames"
    folder.mkdir()
    v = _video()
    for t in range(T):
        tifffile.imwrite(folder / f"img_t{t + 1}.tif", np.stack([v[t], v[t] // 2]), imagej=True,
                         metadata={"axes": "CYX"})
    tifffile.imwrite(tmp_path / "lab.tif", _labels())
    assert _run(str(folder), str(tmp_path / "lab.tif"), "-o", str(tmp_path / "out.tif")) == 0


def test_folder_of_calibrated_tiff_frames_keeps_calibration(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(_video()):
        tifffile.imwrite(folder / f"t{t + 1}.tif", frame, imagej=True, metadata={"unit": "um"},
                         resolution=(2.0, 2.0))
    tifffile.imwrite(tmp_path / "lab.tif", _labels())
    out = tmp_path / "out.tif"
    assert _run(str(folder), str(tmp_path / "lab.tif"), "-o", str(out)) == 0
    assert read_tiff_calibration(out).pixel_size == pytest.approx((0.5, 0.5))


# 7 -------------------------------------------------------------------------------------------
def test_tzyx_labels_with_z(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A TZYX video with --z N and labels painted on the same TZYX stack: the labels are read without
    the plane, and the error tells the user to pass --z, which they did."""
    v = _video()
    tifffile.imwrite(tmp_path / "tz.tif", np.stack([v, v, v], 1), imagej=True, metadata={"axes": "TZYX"})
    lab = np.zeros((T, 3, Y, X), np.uint16)
    lab[0, 1] = _labels()
    tifffile.imwrite(tmp_path / "lab_tz.tif", lab, imagej=True, metadata={"axes": "TZYX"})
    rc = _run(str(tmp_path / "tz.tif"), str(tmp_path / "lab_tz.tif"), "-o", str(tmp_path / "out.tif"), "--z", "1")
    err = capsys.readouterr().err
    assert rc == 0 or "--z N" not in err, err


# 8 -------------------------------------------------------------------------------------------
def test_rgb_colour_labels_tiff_like_png(tmp_path: Path) -> None:
    """A colour labels image is read as a PNG but refused as a TIFF, with an error about a (1, Y, X, 3)
    'frame 0' the file does not hold."""
    pal = np.array([[0, 0, 0], [255, 0, 0]], np.uint8)
    tifffile.imwrite(tmp_path / "lab_rgb.tif", pal[_labels()], photometric="rgb")
    tifffile.imwrite(tmp_path / "v.tif", _video())
    out = tmp_path / "out.tif"
    assert _run(str(tmp_path / "v.tif"), str(tmp_path / "lab_rgb.tif"), "-o", str(out)) == 0
