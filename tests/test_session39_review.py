"""Review of session 39's animated images, `propagate --overlay` and `napari-vos info`: a 16-bit
grey APNG keeps its values, a WebP's display times are its frame interval, a GIF overlay has one
frame per labels frame (Pillow merged equal ones), and more below."""
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from napari_vos.data.animated_images import (animated_image_calibration, read_animated_image,
                                             write_animated_gif)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_grey16_apng(path, frames, delay_ms=100):
    """A 16-bit grey APNG written chunk by chunk (Pillow writes only its first frame)."""
    height, width = frames[0].shape
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0))
    out += _chunk(b"acTL", struct.pack(">II", len(frames), 0))
    sequence = 0
    for i, frame in enumerate(frames):
        raw = b"".join(b"\0" + row.astype(">u2").tobytes() for row in frame)
        out += _chunk(b"fcTL", struct.pack(">IIIIIHHBB", sequence, width, height, 0, 0, delay_ms, 1000, 0, 0))
        sequence += 1
        if i == 0:
            out += _chunk(b"IDAT", zlib.compress(raw))
        else:
            out += _chunk(b"fdAT", struct.pack(">I", sequence) + zlib.compress(raw))
            sequence += 1
    path.write_bytes(out + _chunk(b"IEND", b""))
    return path


def test_a_16_bit_grey_apng_keeps_its_values(tmp_path):
    frames = [(np.arange(32)[None].repeat(24, 0) * 2000 + 7 * t).astype(np.uint16) for t in range(4)]
    apng = write_grey16_apng(tmp_path / "timelapse.png", frames, delay_ms=250)
    stack = read_animated_image(apng)  # was uint8, every value over 255 clipped to 255
    assert stack.dtype == np.uint16 and np.array_equal(stack, np.stack(frames))
    assert animated_image_calibration(apng).frame_interval == pytest.approx(0.25)


def test_a_webps_display_times_are_its_frame_interval(tmp_path):
    rng = np.random.default_rng(0)
    pictures = [Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)) for _ in range(3)]
    for lossless in (True, False):
        webp = tmp_path / f"clip{lossless}.webp"
        pictures[0].save(webp, save_all=True, append_images=pictures[1:], duration=40, lossless=lossless)
        calibration = animated_image_calibration(webp)  # was none: Pillow sets a WebP's on decoding
        assert calibration.frame_interval == pytest.approx(0.04) and calibration.time_unit == "s"


def test_a_gif_of_equal_pictures_keeps_one_frame_per_picture(tmp_path):
    pictures = [np.full((12, 20, 3), 60 * (t // 2), np.uint8) for t in range(5)]  # frames 0=1, 2=3
    gif = write_animated_gif(tmp_path / "still.gif", pictures, fps=10)
    with Image.open(gif) as image:
        assert image.n_frames == 5 and image.info["loop"] == 0
    stack = read_animated_image(gif)
    assert np.array_equal(stack, np.stack(pictures)[..., 0])
    assert animated_image_calibration(gif).frame_interval == pytest.approx(0.1)


def test_a_gif_whose_picture_fails_part_way_leaves_no_file(tmp_path):
    def pictures():
        yield np.zeros((8, 8, 3), np.uint8)
        raise RuntimeError("decoding failed")

    with pytest.raises(RuntimeError):
        write_animated_gif(tmp_path / "half.gif", pictures(), fps=10)
    assert not (tmp_path / "half.gif").exists()
    with pytest.raises(ValueError, match="no pictures"):
        write_animated_gif(tmp_path / "none.gif", [], fps=10)
    assert not (tmp_path / "none.gif").exists()


def _clip_and_first(tmp_path, n_frames=4):
    """A red square moving over grey as a TIFF stack, and its first frame's mask."""
    import tifffile

    frames = np.full((n_frames, 24, 32, 3), 90, np.uint8)
    mask = np.zeros((24, 32), np.uint8)
    for t in range(n_frames):
        frames[t, 6:14, 4 + 3 * t:12 + 3 * t] = (230, 40, 40)
    mask[6:14, 4:12] = 1
    tifffile.imwrite(tmp_path / "clip.tif", frames, photometric="rgb")
    Image.fromarray(mask).save(tmp_path / "first.png")
    return ["propagate", str(tmp_path / "clip.tif"), str(tmp_path / "first.png"), "--method", "flow", "--device", "cpu"]


def test_propagate_overlay_movie_without_pyav_is_refused_before_the_run(tmp_path, monkeypatch, capsys):
    import sys

    from napari_vos.cli import main

    args = _clip_and_first(tmp_path)
    monkeypatch.setitem(sys.modules, "av", None)
    assert main([*args, "-o", str(tmp_path / "out.tif"), "--overlay", str(tmp_path / "shown.mp4")]) == 2
    err = capsys.readouterr().err
    assert f"--overlay {tmp_path / 'shown.mp4'} (an H.264 movie) needs PyAV" in err
    assert f"or give --overlay {tmp_path / 'shown.gif'}" in err
    assert not (tmp_path / "out.tif").exists()  # was: the whole run, then the error


def test_propagate_overlay_inside_the_png_folder_is_refused_before_the_run(tmp_path, capsys):
    from napari_vos.cli import main

    args = _clip_and_first(tmp_path)
    masks = tmp_path / "masks"
    # was written there, and the next run into masks refused it as a file napari-vos did not write
    assert main([*args, "-o", str(masks), "--overlay", str(masks / "shown.gif")]) == 2
    err = capsys.readouterr().err
    assert "is inside the folder of PNG labels" in err and f"--overlay {tmp_path / 'shown.gif'}" in err
    assert not masks.exists()
    assert main([*args, "-o", str(masks), "--overlay", str(tmp_path / "shown.gif")]) == 0
    assert main([*args, "-o", str(masks), "--overlay", str(tmp_path / "shown.gif")]) == 0  # a re-run
    with Image.open(tmp_path / "shown.gif") as image:
        assert image.n_frames == 4


def test_info_reports_an_unreadable_checkpoint_and_still_the_others(monkeypatch):
    import napari_vos.weights as weights
    from napari_vos import diagnostics

    real = weights.sha256_of

    def sha256_of(path):
        if "frtm" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(weights, "sha256_of", sha256_of)
    states = diagnostics.environment_report()["checkpoints"]  # was {"error": ...}: every state lost
    frtm = next(state for name, state in states.items() if name.startswith("frtm-"))
    assert frtm.startswith("UNREADABLE (PermissionError: Permission denied: ") and "frtm" in frtm
    assert "check its permissions" in frtm
    assert {state for name, state in states.items() if not name.startswith("frtm-")} == {"ok"}
