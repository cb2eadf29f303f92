"""Session 39's audit of movie files as a demanding user meets them: an overlay never written over
its own movie nor left to a bare errno, a movie name given to propagate's -o not taken for a PNG
folder, and a Matroska file whose sound runs longer than its picture not called cut off."""
import warnings
from fractions import Fraction

import numpy as np
import pytest
import tifffile
from PIL import Image

av = pytest.importorskip("av")

from conftest import moving_square_video  # noqa: E402
from napari_vos.cli import main  # noqa: E402
from napari_vos.data import video_files  # noqa: E402
from napari_vos.data.video_files import read_video_file  # noqa: E402
from test_video_files import write_movie  # noqa: E402


def _movie_and_labels(tmp_path, n_frames=4):
    frames, truth = moving_square_video(n_frames=n_frames, size=(48, 64), step=2)
    movie = write_movie(tmp_path / "clip.mp4", frames, codec="libx264", pix_fmt="yuv420p")
    tifffile.imwrite(tmp_path / "labels.tif", truth.astype(np.uint8))
    return movie, tmp_path / "labels.tif", truth


def test_overlay_with_force_never_writes_over_its_own_movie(tmp_path, capsys):
    movie, labels, _ = _movie_and_labels(tmp_path)
    before = movie.read_bytes()
    for given in (str(movie), str(tmp_path / "." / "clip.mp4")):  # the same file under another name too
        assert main(["overlay", str(movie), str(labels), "-o", given, "--force"]) == 2
        err = capsys.readouterr().err
        assert "is the video file" in err and "give another output name" in err and "Traceback" not in err
    assert movie.read_bytes() == before


def test_overlay_makes_its_output_folder_and_names_a_folder_given_as_the_output(tmp_path, capsys):
    movie, labels, _ = _movie_and_labels(tmp_path)
    out = tmp_path / "new" / "sub" / "overlay.mp4"  # propagate makes its output's folders: so does overlay
    assert main(["overlay", str(movie), str(labels), "-o", str(out)]) == 0
    assert len(read_video_file(out)) == 4
    (tmp_path / "taken.mp4").mkdir()
    assert main(["overlay", str(movie), str(labels), "-o", str(tmp_path / "taken.mp4"), "--force"]) == 2
    err = capsys.readouterr().err
    assert "taken.mp4: it is a folder" in err and "Errno" not in err


def test_overlay_refuses_its_output_before_decoding_the_movie(tmp_path, capsys, monkeypatch):
    movie, labels, _ = _movie_and_labels(tmp_path)
    (tmp_path / "o.mp4").write_bytes(b"an earlier overlay")

    def no_decoding(*args, **kwargs):
        raise AssertionError("the movie was decoded before the output was checked")

    monkeypatch.setattr(video_files, "read_video_file", no_decoding)
    for out, said in [("o.mp4", "exists; give another name or --force"), ("o.avi", "give the overlay a movie name ending in")]:
        assert main(["overlay", str(movie), str(labels), "-o", str(tmp_path / out)]) == 2
        assert said in capsys.readouterr().err
    assert not (tmp_path / "o.avi").exists()


@pytest.mark.parametrize("name", ["result.mp4", "result.MOV", "result.avi"])
def test_propagate_does_not_take_a_movie_name_for_a_png_folder(tmp_path, capsys, name):
    movie, _, truth = _movie_and_labels(tmp_path)
    Image.fromarray((truth[0] * 255).astype(np.uint8)).save(tmp_path / "first.png")
    assert main(["propagate", str(movie), str(tmp_path / "first.png"), "-o", str(tmp_path / name),
                 "--method", "flow", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "napari-vos overlay" in err and "Traceback" not in err  # how to get a movie of the result
    assert not (tmp_path / name).exists()


def _movie_with_longer_sound(path, frames, rate=5, sound_seconds=4.0):
    """``frames`` as FFV1 at ``rate`` frames/s with a silent AAC track of ``sound_seconds`` (a recording
    whose sound outlasts its picture, or a clip cut in the picture only)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("ffv1", rate=Fraction(rate))
        video.height, video.width = frames.shape[1:3]
        video.pix_fmt = "bgr0"
        sound = container.add_stream("aac", rate=44100)
        for pixels in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        for i in range(int(44100 * sound_seconds) // 1024):
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            samples.sample_rate, samples.pts = 44100, i * 1024
            for packet in sound.encode(samples):
                container.mux(packet)
        for packet in sound.encode():
            container.mux(packet)
    return path


def test_a_matroska_movie_whose_sound_outlasts_its_picture_is_not_called_cut_short(tmp_path):
    frames, _ = moving_square_video(n_frames=10, size=(48, 64), step=2)
    movie = _movie_with_longer_sound(tmp_path / "recording.mkv", frames)  # 2 s of picture, 4 s of sound
    with warnings.catch_warnings():
        warnings.simplefilter("error", video_files.MovieCutShort)
        stack = read_video_file(movie)
    assert np.array_equal(np.asarray(stack), frames)
    # the same file cut off part way is still said to be (its picture's own duration is at the front)
    whole = _movie_with_longer_sound(tmp_path / "long.mkv", moving_square_video(n_frames=30, step=1)[0])
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[:int(whole.stat().st_size * 0.5)])
    with pytest.warns(video_files.MovieCutShort, match=r"of the 30 frames it announces"):
        assert 0 < len(read_video_file(cut)) < 25


def test_the_room_check_counts_the_pictures_duration_not_the_sounds(tmp_path, monkeypatch):
    frames, _ = moving_square_video(n_frames=10, size=(48, 64), step=2)
    movie = _movie_with_longer_sound(tmp_path / "recording.mkv", frames, sound_seconds=20.0)

    class Usage:  # room for the 10 frames and a little more, not for the 100 a 20 s duration would give
        free = frames.nbytes * 3

    monkeypatch.setattr(video_files.shutil, "disk_usage", lambda folder: Usage())
    assert len(read_video_file(movie)) == 10


@pytest.mark.parametrize("command", ["propagate", "overlay"])
def test_a_movie_given_as_the_labels_is_named_as_a_mix_up_before_any_movie_is_decoded(tmp_path, capsys, monkeypatch,
                                                                                       command):
    movie, labels, _ = _movie_and_labels(tmp_path)

    def no_decoding(*args, **kwargs):
        raise AssertionError("a movie was decoded before the labels were read")

    monkeypatch.setattr(video_files, "read_video_file", no_decoding)
    extra = ["--method", "flow", "--device", "cpu"] if command == "propagate" else []
    for video, given in [(movie, movie), (labels, movie)]:  # the movie twice; the two the other way round
        out = tmp_path / ("o.tif" if command == "propagate" else "o.mp4")
        assert main([command, str(video), str(given), "-o", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert f"labels {given} is a movie file" in err and "the other way round" in err
        assert "cannot identify image file" not in err and "Traceback" not in err and not out.exists()


def test_propagate_says_a_missing_labels_file_before_decoding_the_movie(tmp_path, capsys, monkeypatch):
    movie, _, _ = _movie_and_labels(tmp_path)
    monkeypatch.setattr(video_files, "read_video_file", lambda *a, **k: pytest.fail("the movie was decoded first"))
    assert main(["propagate", str(movie), str(tmp_path / "frist.png"), "-o", str(tmp_path / "o.tif"),
                 "--method", "flow", "--device", "cpu"]) == 2
    assert "frist.png does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("out, said", [("run.png", "looks like a file name"), ("frames", "napari-vos did not write"),
                                       ("clip.mp4", "is the video file")])
def test_propagate_refuses_its_output_name_before_decoding_the_movie(tmp_path, capsys, monkeypatch, out, said):
    movie, _, truth = _movie_and_labels(tmp_path)
    Image.fromarray((truth[0] * 255).astype(np.uint8)).save(tmp_path / "first.png")
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "holiday.jpg").write_bytes(b"the user's own file")
    monkeypatch.setattr(video_files, "read_video_file", lambda *a, **k: pytest.fail("the movie was decoded first"))
    assert main(["propagate", str(movie), str(tmp_path / "first.png"), "-o", str(tmp_path / out),
                 "--method", "flow", "--device", "cpu"]) == 2
    assert said in capsys.readouterr().err


def test_an_overlay_refused_for_its_inputs_leaves_no_output_folder_behind(tmp_path, capsys):
    movie, labels, _ = _movie_and_labels(tmp_path)
    for video, given in [(tmp_path / "missing.mp4", labels), (movie, tmp_path / "missing.tif")]:
        assert main(["overlay", str(video), str(given), "-o", str(tmp_path / "new" / "o.mp4")]) == 2
        assert "does not exist" in capsys.readouterr().err
        assert not (tmp_path / "new").exists()


def test_an_overlay_stopped_part_way_keeps_the_earlier_overlay_it_was_replacing(tmp_path, monkeypatch):
    from napari_vos.data import overlay_movies

    movie, labels, truth = _movie_and_labels(tmp_path)
    for name in ("overlay.mp4", "overlay.gif"):
        out = tmp_path / name
        out.write_bytes(b"the earlier overlay")

        def ctrl_c_at_frame_2(done, total):
            if done == 2:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            overlay_movies.write_overlay_movie(out, read_video_file(movie), truth, fps=5, progress=ctrl_c_at_frame_2)
        assert out.read_bytes() == b"the earlier overlay"  # --force replaces it only once the new one is whole
        assert not [p.name for p in tmp_path.iterdir() if "partial" in p.name]  # no half-written file left
        overlay_movies.write_overlay_movie(out, read_video_file(movie), truth, fps=5)
        assert out.read_bytes() != b"the earlier overlay" and len(read_frames(out)) == len(truth)


def read_frames(path):
    from napari_vos.data.animated_images import read_animated_image

    return read_animated_image(path) if path.suffix == ".gif" else read_video_file(path)


@pytest.mark.parametrize("transfer, said", [(18, "HLG"), (16, "PQ (HDR10)"), (1, None)])
def test_an_hdr_movie_is_noted_as_tone_mapped(tmp_path, capsys, transfer, said):
    frames, truth = moving_square_video(n_frames=3, size=(48, 64))
    # what a phone's HLG (18) or an HDR10 (16) recording declares
    path = write_movie(tmp_path / "phone.mp4", frames, codec="libx265", pix_fmt="yuv420p10le", rate=10,
                       options={"x265-params": "log-level=error"}, transfer=transfer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stack = read_video_file(path)
    notes = [w for w in caught if issubclass(w.category, video_files.HighDynamicRangeMovie)]
    assert stack.shape == frames.shape and stack.dtype == np.uint8
    if said is None:
        assert not notes
        return
    assert len(notes) == 1 and f"phone.mp4 is HDR video ({said} transfer" in str(notes[0].message)
    assert "tone-mapped to standard-range sRGB" in str(notes[0].message)
    Image.fromarray(truth[0].astype(np.uint8)).save(tmp_path / "first.png")
    assert main(["propagate", str(path), str(tmp_path / "first.png"), "-o", str(tmp_path / "o.tif"), "--method",
                 "flow", "--device", "cpu"]) == 0
    assert f"note: {path} is HDR video" in capsys.readouterr().err


@pytest.mark.parametrize("rate, noted", [(1, False), (5, True)])
def test_the_widgets_movie_note_gives_a_scale_only_where_it_changes_something(tmp_path, rate, noted):
    """A movie of 1 frame a second lies at its interval at scale 1 already: the note's scale line,
    (1, 1, 1), changed nothing; at 5 frames a second the note gives (0.2, 1, 1)."""
    pytest.importorskip("napari")
    import npe2
    from napari.components import ViewerModel

    from napari_vos._widgets.layer_job import movie_file_note

    npe2.PluginManager.instance().discover()
    frames, _ = moving_square_video(n_frames=3, size=(48, 64))
    movie = write_movie(tmp_path / f"r{rate}.mp4", frames, codec="libx264", pix_fmt="yuv420p", rate=rate)
    layer = ViewerModel().open(str(movie), plugin="napari")[0]
    note = movie_file_note(layer)
    assert ("scale = (0.2, 1, 1)" in note) if noted else note == ""


def test_a_scratch_disk_found_full_at_the_last_flush_is_named(tmp_path, monkeypatch):
    import errno
    import tempfile

    movie, _, _ = _movie_and_labels(tmp_path)
    real = tempfile.TemporaryFile

    class FullAtFlush:
        def __init__(self, *args, **kwargs):
            self.file = real(*args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            return self.file.write(data)

        def flush(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(video_files.tempfile, "TemporaryFile", FullAtFlush)
    with pytest.raises(ValueError, match=r"clip\.mp4: the scratch folder .* filled up after 4 decoded frames; set "
                                         r"TMPDIR"):
        read_video_file(movie)


def test_a_one_frame_movie_is_named_as_nothing_to_propagate(tmp_path, capsys):
    frames, truth = moving_square_video(n_frames=1, size=(48, 64))
    movie = write_movie(tmp_path / "still.mp4", frames, codec="libx264", pix_fmt="yuv420p")
    Image.fromarray(truth[0].astype(np.uint8)).save(tmp_path / "first.png")
    assert main(["propagate", str(movie), str(tmp_path / "first.png"), "-o", str(tmp_path / "o.tif"),
                 "--method", "flow"]) == 2
    assert f"nothing to propagate: the video {movie} has a single frame" in capsys.readouterr().err


def test_a_plain_t_3_y_x_tiff_says_its_planes_are_read_as_colour(tmp_path, capsys):
    rng = np.random.default_rng(0)
    stack = (rng.random((4, 3, 32, 40)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "tcyx.tif", stack)  # tifffile stores it as planar RGB, with no axis names
    first = np.zeros((32, 40), np.uint8)
    first[8:20, 10:24] = 1
    Image.fromarray(first).save(tmp_path / "first.png")
    assert main(["propagate", str(tmp_path / "tcyx.tif"), str(tmp_path / "first.png"), "-o", str(tmp_path / "o.tif"),
                 "--method", "flow"]) == 0
    assert "holds a (4, 3, Y, X) array saved without axis names: its 3 planes are read as colour channels; if they " \
           "are Z planes, give --z" in capsys.readouterr().err


def test_a_movie_whose_first_frame_cannot_be_decoded_is_named_by_display_rotation(tmp_path, monkeypatch):
    movie, _, _ = _movie_and_labels(tmp_path)

    class Undecodable:
        def __init__(self, container):
            self.container = container

        def __getattr__(self, name):
            return getattr(self.container, name)

        def decode(self, *args, **kwargs):
            raise av.error.DecoderNotFoundError(1128613112, "Decoder not found")

    real_open = video_files._open
    monkeypatch.setattr(video_files, "_open", lambda av_module, path: Undecodable(real_open(av_module, path)))
    with pytest.raises(ValueError, match=r"clip\.mp4 cannot be decoded \(damaged, or a codec this FFmpeg lacks\?\)"):
        video_files.display_rotation(movie)


def test_the_widgets_note_gives_an_animated_gifs_frame_interval_too(tmp_path):
    """napari's reader opens a GIF at scale 1; its frames' display time is the interval the command
    line would give the outputs."""
    pytest.importorskip("napari")
    import npe2
    from napari.components import ViewerModel

    from napari_vos._widgets.layer_job import movie_file_note

    npe2.PluginManager.instance().discover()
    frames, _ = moving_square_video(n_frames=3, size=(48, 64))
    pictures = [Image.fromarray(f) for f in frames]
    pictures[0].save(tmp_path / "clip.gif", save_all=True, append_images=pictures[1:], duration=200, loop=0)
    layer = ViewerModel().open(str(tmp_path / "clip.gif"), plugin="napari")[0]
    note = movie_file_note(layer)
    assert "its animation clip.gif has 0.2 s between frames" in note and "scale = (0.2, 1, 1)" in note
    assert "turned" not in note
