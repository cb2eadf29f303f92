"""Movie files as stacks: decoded once into a memory-mapped temporary file, exact for lossless codecs,
grey and 16-bit kept, a phone's display rotation applied, their frame rate as the time calibration,
and the command line propagating through an .mp4 with clear refusals for what cannot be read."""
import sys
from fractions import Fraction

import numpy as np
import pytest
import tifffile
from PIL import Image

av = pytest.importorskip("av")

from conftest import moving_square_video  # noqa: E402
from napari_vos.cli import main  # noqa: E402
from napari_vos.data import video_files  # noqa: E402
from napari_vos.data.calibration import read_tiff_calibration  # noqa: E402
from napari_vos.data.video_files import read_video_file, video_file_calibration  # noqa: E402


def write_movie(path, frames, codec="ffv1", pix_fmt="bgr0", rate=5, in_format="rgb24", rotation=None, options=None,
                transfer=None):
    """Encode ``frames`` (T, Y, X[, 3]) with PyAV at ``rate`` frames per second; ``transfer``: the
    transfer characteristic the file declares (FFmpeg's number: 16 PQ, 18 HLG), as an HDR phone movie does."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(rate), options=options or {})
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        if transfer is not None:
            stream.codec_context.color_trc = transfer
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format=in_format)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_a_lossless_colour_movie_reads_back_exactly_as_a_memory_mapped_stack(tmp_path):
    frames, _ = moving_square_video(n_frames=7)
    stack = read_video_file(write_movie(tmp_path / "m.mkv", frames))
    assert isinstance(stack, np.memmap) and stack.shape == frames.shape and stack.dtype == np.uint8
    assert np.array_equal(np.asarray(stack), frames) and stack.display_rotation == 0
    assert not stack.flags.writeable


@pytest.mark.parametrize("pix_fmt, dtype, top", [("gray", np.uint8, 255), ("gray16le", np.uint16, 65535)])
def test_grey_and_16_bit_movies_stay_grey_and_keep_their_depth(tmp_path, pix_fmt, dtype, top):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, top + 1, (4, 32, 48), dtype=np.int64).astype(dtype)
    stack = read_video_file(write_movie(tmp_path / "g.mkv", frames, pix_fmt=pix_fmt, in_format=pix_fmt))
    assert stack.shape == frames.shape and stack.dtype == dtype and np.array_equal(np.asarray(stack), frames)


def test_a_16_bit_rgb_movie_keeps_its_depth_but_10_bit_camera_colour_is_read_as_8_bit_rgb(tmp_path):
    """RGB formats of more than 8 bits (a lossless export of measured intensities) stay 16-bit; a YUV
    colour movie of 10 bits (what phones record) comes out as the 8-bit RGB an 8-bit movie gives."""
    rng = np.random.default_rng(2)
    deep = rng.integers(0, 65536, (3, 32, 48, 3), dtype=np.int64).astype(np.uint16)
    stack = read_video_file(write_movie(tmp_path / "rgb16.mkv", deep, pix_fmt="gbrp16le", in_format="rgb48le"))
    assert stack.dtype == np.uint16 and stack.shape == deep.shape and np.array_equal(np.asarray(stack), deep)

    frames, _ = moving_square_video(n_frames=4)
    ten_bit = read_video_file(write_movie(tmp_path / "yuv10.mkv", frames, pix_fmt="yuv444p10le"))
    eight_bit = read_video_file(write_movie(tmp_path / "yuv8.mkv", frames, pix_fmt="yuv444p"))
    assert ten_bit.dtype == np.uint8 and ten_bit.shape == frames.shape
    # the 10-bit movie holds the 8-bit frames up to the colour conversion's rounding
    assert np.abs(np.asarray(ten_bit, np.int16) - np.asarray(eight_bit, np.int16)).max() <= 2
    assert np.abs(np.asarray(ten_bit, np.int16) - frames.astype(np.int16)).max() <= 3


turnable = pytest.mark.skipif(not hasattr(av.video.stream.VideoStream, "set_display_rotation"),
                              reason="this PyAV cannot write a display rotation (it reads one from 15 on)")


@turnable
def test_a_display_rotation_is_applied_as_a_player_shows_the_movie(tmp_path):
    frames, _ = moving_square_video(n_frames=3)
    stack = read_video_file(write_movie(tmp_path / "r.mkv", frames, rotation=90))
    assert stack.display_rotation == 90 and stack.shape == (3, 96, 64, 3)
    assert np.array_equal(np.asarray(stack), np.rot90(frames, 1, axes=(1, 2)))


def test_the_frame_rate_becomes_the_time_between_frames(tmp_path):
    frames, _ = moving_square_video(n_frames=3)
    calibration = video_file_calibration(write_movie(tmp_path / "c.mkv", frames, rate=25))
    assert calibration.frame_interval == pytest.approx(0.04) and calibration.time_unit == "s"
    assert calibration.pixel_size is None


def test_propagate_runs_through_an_mp4_and_keeps_its_frame_interval(tmp_path, capsys):
    frames, truth = moving_square_video(n_frames=8, step=3)
    movie = write_movie(tmp_path / "clip.mp4", frames, codec="libx264", pix_fmt="yuv444p", rate=4)
    Image.fromarray((truth[0] * 255).astype(np.uint8)).save(tmp_path / "first.png")
    out = tmp_path / "out.tif"
    assert main(["propagate", str(movie), str(tmp_path / "first.png"), "-o", str(out), "--method", "flow",
                 "--device", "cpu"]) == 0
    labels = tifffile.imread(out)
    assert labels.shape == truth.shape
    last = labels[-1] > 0
    iou = (last & (truth[-1] > 0)).sum() / (last | (truth[-1] > 0)).sum()
    assert iou > 0.6, iou  # frames in their order: a shuffled or stale frame leaves the square behind
    assert read_tiff_calibration(out).frame_interval == pytest.approx(0.25)


@turnable
def test_propagate_notes_a_turned_movie(tmp_path, capsys):
    frames, truth = moving_square_video(n_frames=3)
    movie = write_movie(tmp_path / "turned.mkv", frames, rotation=-90)
    Image.fromarray((np.rot90(truth[0], -1) * 255).astype(np.uint8)).save(tmp_path / "first.png")
    assert main(["propagate", str(movie), str(tmp_path / "first.png"), "-o", str(tmp_path / "o.tif"),
                 "--method", "flow", "--device", "cpu"]) == 0
    assert "display rotation of 270 degrees" in capsys.readouterr().err


def test_a_file_that_is_no_movie_is_refused_by_name(tmp_path, capsys):
    fake = tmp_path / "holiday.mp4"
    fake.write_bytes(b"not a movie at all" * 10)
    assert main(["propagate", str(fake), "-o", str(tmp_path / "o.tif"), "--method", "cosnet"]) == 2
    err = capsys.readouterr().err
    assert "holiday.mp4 cannot be read as a movie" in err and "Traceback" not in err


def test_a_movie_too_large_for_the_scratch_disk_is_refused_before_decoding(tmp_path, monkeypatch):
    frames, _ = moving_square_video(n_frames=6)
    movie = write_movie(tmp_path / "big.mp4", frames, codec="libx264", pix_fmt="yuv420p")

    class Usage:
        free = 1000

    monkeypatch.setattr(video_files.shutil, "disk_usage", lambda folder: Usage())
    with pytest.raises(ValueError, match="set TMPDIR to a disk with room"):
        read_video_file(movie)


def test_without_pyav_the_error_says_what_to_install_and_how_to_do_without(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(ValueError, match=r"napari-vos\[video\].*ffmpeg -i movie.mp4 frames/%05d.png"):
        read_video_file(tmp_path / "any.mp4")


def test_the_python_api_points_a_movie_path_to_its_reader(tmp_path):
    from napari_vos import propagate

    frames, truth = moving_square_video(n_frames=3)
    movie = write_movie(tmp_path / "m.mp4", frames, codec="libx264", pix_fmt="yuv420p")
    with pytest.raises(ValueError, match="read_video_file"):
        propagate(str(movie), truth[0], method="flow")
    assert propagate(read_video_file(movie), truth[0], method="flow", device="cpu").labels.shape == truth.shape


def test_a_movie_cut_off_gives_the_frames_it_holds_and_says_how_many(tmp_path, capsys):
    frames, truth = moving_square_video(n_frames=30, step=1)
    whole = write_movie(tmp_path / "whole.mkv", frames).read_bytes()
    movie = tmp_path / "cut.mkv"  # a copy or a recording stopped part way: no error, just fewer frames
    movie.write_bytes(whole[:int(len(whole) * 0.6)])
    with pytest.warns(video_files.MovieCutShort, match=r"cut\.mkv: it gives (\d+) of the 30 frames it announces"):
        stack = read_video_file(movie)
    assert 0 < len(stack) < 25 and np.array_equal(np.asarray(stack), frames[:len(stack)])
    Image.fromarray((truth[0] * 255).astype(np.uint8)).save(tmp_path / "first.png")
    assert main(["propagate", str(movie), str(tmp_path / "first.png"), "-o", str(tmp_path / "o.tif"),
                 "--method", "flow", "--device", "cpu"]) == 0
    assert f"note: {movie}: it gives {len(stack)} of the 30 frames" in capsys.readouterr().err
    assert tifffile.imread(tmp_path / "o.tif").shape == (len(stack), *truth.shape[1:])


def test_a_damaged_part_keeps_the_frames_before_it_and_says_so(tmp_path):
    frames, _ = moving_square_video(n_frames=30, step=1)
    whole = write_movie(tmp_path / "whole.mkv", frames).read_bytes()
    middle = len(whole) // 2  # garbage over the middle: the decoder stops there with an error
    movie = tmp_path / "damaged.mkv"
    movie.write_bytes(whole[:middle] + np.random.default_rng(0).bytes(2000) + whole[middle + 2000:])
    # FFmpeg stops with an error (PyAV 18) or, in older builds (PyAV 15), conceals the damaged frames and stops
    said = r"a damaged part after frame \d+ stopped the decoder|it gives \d+ of the 30 frames it announces"
    with pytest.warns(video_files.MovieCutShort, match=said) as notes:
        stack = read_video_file(movie)
    assert 0 < len(stack) < 30 and np.array_equal(stack[0], frames[0])
    if "stopped the decoder" in str(notes[0].message):  # PyAV 15's FFmpeg conceals the damaged frames instead
        assert np.array_equal(np.asarray(stack), frames[:len(stack)])


def test_a_whole_movie_reads_without_a_cut_short_warning(tmp_path):
    import warnings

    frames, _ = moving_square_video(n_frames=30, step=1)
    for name, codec, pix_fmt in [("w.mkv", "ffv1", "bgr0"), ("w.mp4", "libx264", "yuv420p")]:
        movie = write_movie(tmp_path / name, frames, codec=codec, pix_fmt=pix_fmt)
        with warnings.catch_warnings():
            warnings.simplefilter("error", video_files.MovieCutShort)
            assert len(read_video_file(movie)) == 30


@pytest.mark.parametrize("name, written_as", [("00001.MTS", "ts"), ("clip.m2ts", "ts"), ("phone.3gp", "mp4")])
def test_camcorder_and_phone_movies_are_read_as_movies_not_as_tiffs(tmp_path, capsys, name, written_as):
    frames, truth = moving_square_video(n_frames=3)
    movie = write_movie(tmp_path / f"m.{written_as}", frames, codec="libx264", pix_fmt="yuv444p")
    movie = movie.rename(tmp_path / name)  # an AVCHD camcorder's .MTS is an MPEG-TS, a .3gp an MP4
    Image.fromarray((truth[0] * 255).astype(np.uint8)).save(tmp_path / "first.png")
    assert main(["propagate", str(movie), str(tmp_path / "first.png"), "-o", str(tmp_path / "o.tif"),
                 "--method", "flow", "--device", "cpu"]) == 0, capsys.readouterr().err
    assert tifffile.imread(tmp_path / "o.tif").shape == truth.shape


def test_the_movie_is_read_not_a_preview_picture_stored_as_its_first_video_stream(tmp_path):
    frames, _ = moving_square_video(n_frames=10)
    movie = tmp_path / "with_preview.mkv"
    with av.open(str(movie), "w") as container:  # a cover or preview picture first, as tagged MP4s hold one
        preview = container.add_stream("mjpeg", rate=Fraction(1))
        preview.width, preview.height, preview.pix_fmt = 32, 32, "yuvj420p"
        picture = container.add_stream("ffv1", rate=Fraction(25))
        picture.height, picture.width = frames.shape[1:3]
        picture.pix_fmt = "bgr0"
        for packet in preview.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")):
            container.mux(packet)
        for packet in preview.encode():
            container.mux(packet)
        for pixels in frames:
            for packet in picture.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in picture.encode():
            container.mux(packet)
    assert np.array_equal(np.asarray(read_video_file(movie)), frames)
    assert video_file_calibration(movie).frame_interval == pytest.approx(0.04)


@pytest.mark.parametrize("frames_in_stack", [8, 2])
def test_keep_other_frames_refuses_a_labels_stack_of_another_length_than_the_movie(tmp_path, capsys,
                                                                                     frames_in_stack):
    frames, truth = moving_square_video(n_frames=8, step=3)
    movie = write_movie(tmp_path / "short.mkv", frames[:4])  # e.g. a copy cut off, beside the whole movie's output
    tifffile.imwrite(tmp_path / "earlier.tif", truth[:frames_in_stack].astype(np.uint8))
    assert main(["propagate", str(movie), str(tmp_path / "earlier.tif"), "-o", str(tmp_path / "o.tif"),
                 "--method", "flow", "--device", "cpu", "--keep-other-frames", "--frame", "1",
                 "--direction", "forward"]) == 2
    err = capsys.readouterr().err
    assert f"earlier.tif has shape ({frames_in_stack}, 64, 96) but the video" in err and "4 frames" in err
    assert "Traceback" not in err and not (tmp_path / "o.tif").exists()


def test_an_interlaced_movie_is_noted_as_one_a_progressive_one_is_not(tmp_path, capsys):
    import warnings

    frames, truth = moving_square_video(n_frames=4)
    woven = write_movie(tmp_path / "camcorder.mkv", frames, codec="libx264", pix_fmt="yuv420p",
                        options={"flags": "+ildct+ilme", "x264opts": "interlaced=1:tff=1"})  # as 1080i is
    Image.fromarray((truth[0] * 255).astype(np.uint8)).save(tmp_path / "first.png")
    assert main(["propagate", str(woven), str(tmp_path / "first.png"), "-o", str(tmp_path / "o.tif"),
                 "--method", "flow", "--device", "cpu"]) == 0
    assert f"note: {woven} is interlaced" in capsys.readouterr().err
    progressive = write_movie(tmp_path / "p.mkv", frames, codec="libx264", pix_fmt="yuv420p")
    with warnings.catch_warnings():
        warnings.simplefilter("error", video_files.MovieNote)
        assert len(read_video_file(progressive)) == 4
