"""`napari-vos overlay`: a labels stack drawn over its video as an H.264 movie, each object tinted
and outlined in its palette colour, odd sides made even, played at a movie's own rate (else 10),
and refused when the labels are not of the video."""
from fractions import Fraction

import numpy as np
import pytest
import tifffile

av = pytest.importorskip("av")

from conftest import moving_square_video  # noqa: E402
from napari_vos.cli import main  # noqa: E402
from napari_vos.data.overlay_movies import overlay_frame  # noqa: E402
from napari_vos.data.video_files import read_video_file  # noqa: E402
from napari_vos.data.writers import davis_palette, write_png_labels  # noqa: E402

PALETTE = davis_palette()


def test_an_object_is_tinted_inside_and_outlined_in_its_palette_colour():
    frame = np.zeros((10, 10, 3), np.float32)
    labels = np.zeros((10, 10), np.int32)
    labels[2:7, 2:7] = 1
    labels[8:, 8:] = 256  # past the palette: wraps round to id 1's colour
    picture = overlay_frame(frame, labels, PALETTE, alpha=0.5)
    assert np.array_equal(picture[4, 4], np.round(0.5 * PALETTE[1]).astype(np.uint8))  # inside: half the colour
    assert np.array_equal(picture[2, 4], PALETTE[1]) and np.array_equal(picture[6, 6], PALETTE[1])  # the outline
    assert not picture[0, 0].any() and not picture[7, 4].any()  # the background is the frame
    assert np.array_equal(picture[8, 8], PALETTE[1]) and np.array_equal(picture[9, 9], picture[4, 4])
    labels[2:7, 2:7] = 2
    assert np.array_equal(overlay_frame(frame, labels, PALETTE, alpha=0.5)[2, 4], PALETTE[2])
    labels[2:7, 2:7] = -1  # napari colours negative ids: drawn too (wrapping round the palette)
    assert np.array_equal(overlay_frame(frame, labels, PALETTE, alpha=0.5)[2, 4], PALETTE[254])


def _red_inside_and_out(movie, truth):
    frames = np.asarray(read_video_file(movie)).astype(float)
    redness = frames[..., 0] - frames[..., 1]
    return redness[truth > 0].mean(), redness[truth == 0].mean(), frames.shape


def test_the_command_draws_a_tiff_output_over_its_tiff_video(tmp_path, capsys):
    frames, truth = moving_square_video(n_frames=5, size=(63, 95))  # odd sides: the movie gets even ones
    tifffile.imwrite(tmp_path / "video.tif", frames)
    tifffile.imwrite(tmp_path / "labels.tif", truth.astype(np.uint8))
    movie = tmp_path / "overlay.mp4"
    assert main(["overlay", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(movie)]) == 0
    assert "wrote" in capsys.readouterr().out
    inside, outside, shape = _red_inside_and_out(movie, np.pad(truth, ((0, 0), (0, 1), (0, 1))))
    assert shape == (5, 64, 96, 3) and inside > outside + 40  # the square is tinted red (id 1: 128, 0, 0)
    with av.open(str(movie)) as container:
        assert container.streams.video[0].average_rate == 10  # a time-lapse's interval is no playback rate


def test_the_command_reads_a_png_folder_output_and_a_movie_at_its_own_rate(tmp_path):
    frames, truth = moving_square_video(n_frames=4)
    source = tmp_path / "clip.mkv"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("ffv1", rate=Fraction(25))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "bgr0"
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    write_png_labels(tmp_path / "out", truth.astype(np.uint8))
    movie = tmp_path / "overlay.mkv"
    assert main(["overlay", str(source), str(tmp_path / "out"), "-o", str(movie), "--alpha", "0.8"]) == 0
    inside, outside, shape = _red_inside_and_out(movie, truth)
    assert shape == (4, 64, 96, 3) and inside > outside + 60
    with av.open(str(movie)) as container:
        assert container.streams.video[0].average_rate == 25


@pytest.mark.parametrize("case, said", [
    ("short", "the labels are 3 frames of (64, 96) but the video is 5 frames"),
    ("one frame", "holds one frame; give the (T, Y, X) labels"),
    ("alpha", "give a value from 0"),
    ("exists", "exists; give another name or --force"),
    ("avi", "o.avi: give the overlay a movie name ending in .mp4, .mkv, .mov, .gif"),
])
def test_what_cannot_be_drawn_is_refused_in_one_line(tmp_path, capsys, case, said):
    frames, truth = moving_square_video(n_frames=5)
    tifffile.imwrite(tmp_path / "video.tif", frames)
    labels = {"short": truth[:3], "one frame": truth[0]}.get(case, truth)
    tifffile.imwrite(tmp_path / "labels.tif", labels.astype(np.uint8))
    out = tmp_path / ("o.avi" if case == "avi" else "o.mp4")
    if case == "exists":
        out.write_bytes(b"an earlier movie")
    extra = ["--alpha", "1.5"] if case == "alpha" else []
    assert main(["overlay", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err
    assert case == "exists" or not out.exists()  # nothing half-written


def test_a_stop_part_way_leaves_no_half_movie(tmp_path, monkeypatch):
    from napari_vos.data import overlay_movies

    frames, truth = moving_square_video(n_frames=5)
    calls = []

    def ctrl_c_at_frame_3(done, total):
        calls.append(done)
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        overlay_movies.write_overlay_movie(tmp_path / "o.mp4", frames, truth, fps=5, progress=ctrl_c_at_frame_3)
    assert calls == [1, 2, 3] and not (tmp_path / "o.mp4").exists()
