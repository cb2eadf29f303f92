"""Animated GIF, PNG and WebP clips as videos (Pillow, no PyAV): frames composed as a viewer shows
them, grey kept grey, display times as the frame interval, one-picture and broken files refused
clearly, and `napari-vos propagate` / `overlay` reading them and `overlay` writing a GIF."""
import sys

import numpy as np
import pytest
import tifffile
from PIL import Image

from conftest import moving_square_video
from napari_vos.cli import main
from napari_vos.data.animated_images import (animated_image_calibration, is_animated_image, read_animated_image,
                                             write_animated_gif)
from napari_vos.data.writers import davis_palette


def flat_square_clip(n_frames=5, size=(40, 60), step=5):
    """Frames of few colours (exact in a GIF's palette): a red square moving right over grey."""
    frames = np.full((n_frames, *size, 3), 90, np.uint8)
    truth = np.zeros((n_frames, *size), np.uint8)
    for t in range(n_frames):
        frames[t, 10:22, 5 + step * t:17 + step * t] = (230, 40, 40)
        truth[t, 10:22, 5 + step * t:17 + step * t] = 1
    return frames, truth


def save_animation(path, frames, **options):
    pictures = [Image.fromarray(f) for f in frames]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], **options)
    return path


def test_a_gif_whose_frames_repaint_only_what_changed_reads_back_whole(tmp_path):
    frames, _ = flat_square_clip()
    # Pillow's optimizer stores each later frame as the box that changed: the reader must compose them
    gif = save_animation(tmp_path / "clip.gif", frames, duration=80, loop=0, optimize=True)
    with Image.open(gif) as image:
        image.seek(2)
        assert image.tile and image.tile[0][1] != (0, 0, 60, 40)  # frame 2 is stored as a part of the picture
    stack = read_animated_image(gif)
    assert stack.shape == frames.shape and stack.dtype == np.uint8 and np.array_equal(stack, frames)
    assert animated_image_calibration(gif).frame_interval == pytest.approx(0.08)
    assert animated_image_calibration(gif).time_unit == "s"


def test_a_grey_gif_stays_grey_and_an_animated_png_or_webp_is_read_too(tmp_path):
    frames, _ = flat_square_clip()
    grey = frames[..., 1].copy()
    gif = save_animation(tmp_path / "grey.gif", [np.repeat(g[..., None], 3, -1) for g in grey], duration=50)
    assert np.array_equal(read_animated_image(gif), grey)
    apng = save_animation(tmp_path / "clip.png", frames, duration=200)  # an APNG under the plain .png suffix
    assert is_animated_image(apng) and np.array_equal(read_animated_image(apng), frames)
    assert animated_image_calibration(apng).frame_interval == pytest.approx(0.2)
    still = tmp_path / "still.png"
    Image.fromarray(frames[0]).save(still)
    assert not is_animated_image(still) and is_animated_image(tmp_path / "any.webp")
    webp = save_animation(tmp_path / "clip.webp", frames, lossless=True, duration=100)
    assert np.array_equal(read_animated_image(webp), frames)


def test_a_clip_larger_than_the_free_memory_is_refused_before_reading(tmp_path, monkeypatch):
    import psutil

    frames, _ = flat_square_clip(n_frames=3)
    gif = save_animation(tmp_path / "clip.gif", frames, duration=100)

    class Little:
        available = 3 * 40 * 60 * 3  # the clip's 21,600 bytes: more than 80 % of it
    monkeypatch.setattr(psutil, "virtual_memory", lambda: Little())
    with pytest.raises(ValueError, match=r"clip\.gif decodes to .* more than the .* memory free: make it a movie"):
        read_animated_image(gif)


def test_a_gif_without_display_times_has_no_frame_interval(tmp_path):
    frames, _ = flat_square_clip(n_frames=3)
    gif = save_animation(tmp_path / "clip.gif", frames)
    assert animated_image_calibration(gif).frame_interval is None


def test_one_picture_and_a_broken_file_are_refused_naming_the_file(tmp_path):
    frames, _ = flat_square_clip(n_frames=1)
    one = tmp_path / "one.gif"
    Image.fromarray(frames[0]).save(one)
    with pytest.raises(ValueError, match=r"one\.gif holds one picture, not an animation"):
        read_animated_image(one)
    broken = tmp_path / "broken.gif"
    broken.write_bytes(b"GIF89a" + b"\x00" * 5)
    with pytest.raises(ValueError, match=r"broken\.gif cannot be read as an animated image"):
        read_animated_image(broken)


def test_the_command_line_propagates_through_a_gif_and_keeps_its_frame_interval(tmp_path, capsys):
    frames, truth = flat_square_clip(n_frames=6)
    gif = save_animation(tmp_path / "clip.gif", frames, duration=250, loop=0)
    first = tmp_path / "first.png"
    Image.fromarray(truth[0]).save(first)
    out = tmp_path / "out.tif"
    assert main(["propagate", str(gif), str(first), "-o", str(out), "--method", "flow", "--device", "cpu"]) == 0
    with tifffile.TiffFile(out) as tif:
        labels, finterval = tif.asarray(), tif.imagej_metadata["finterval"]
    assert finterval == pytest.approx(0.25) and labels.shape == truth.shape
    overlap = [(labels[t] & truth[t]).sum() / (labels[t] | truth[t]).sum() for t in range(len(truth))]
    assert min(overlap) > 0.7, overlap  # the square is followed as it moves


def test_overlay_writes_a_gif_without_pyav_at_the_clips_own_rate(tmp_path, monkeypatch, capsys):
    frames, truth = flat_square_clip(n_frames=4)
    gif = save_animation(tmp_path / "clip.gif", frames, duration=200, loop=0)
    labels = tmp_path / "labels.tif"
    tifffile.imwrite(labels, truth)
    monkeypatch.setitem(sys.modules, "av", None)  # no PyAV: a GIF overlay needs none
    out = tmp_path / "overlay.gif"
    assert main(["overlay", str(gif), str(labels), "-o", str(out), "--alpha", "1"]) == 0
    assert "4 frames at 5 frames/s" in capsys.readouterr().out
    shown = read_animated_image(out)
    assert shown.shape == frames.shape
    colour = davis_palette()[1].astype(int)
    assert np.abs(shown[truth > 0].astype(int) - colour).max() <= 8  # solid in object 1's colour
    assert np.abs(shown[truth == 0].astype(int) - 90).max() <= 8  # the grey background as it was
    assert animated_image_calibration(out).frame_interval == pytest.approx(0.2)
    # an H.264 overlay still needs PyAV, and says so and what to do instead
    assert main(["overlay", str(gif), str(labels), "-o", str(tmp_path / "overlay.mp4")]) != 0
    said = capsys.readouterr().err
    assert "an H.264 overlay needs PyAV" in said and "napari-vos[video]" in said and "overlay.gif" in said
    assert not (tmp_path / "overlay.mp4").exists()


def test_a_stopped_gif_overlay_leaves_no_half_file(tmp_path):
    from napari_vos.data.overlay_movies import write_overlay_movie

    frames, truth = moving_square_video(n_frames=4)

    out = tmp_path / "o.gif"
    out.write_bytes(b"an earlier overlay")  # replaced with --force: a stop keeps it, and no half of the new one

    class Stops:
        def __len__(self):
            return len(truth)

        def __getitem__(self, i):
            if i == 2:
                raise KeyboardInterrupt
            return truth[i]

    with pytest.raises(KeyboardInterrupt):
        write_overlay_movie(out, frames, Stops(), fps=5)
    assert out.read_bytes() == b"an earlier overlay" and [p.name for p in tmp_path.iterdir()] == ["o.gif"]
    with pytest.raises(ValueError, match="no pictures"):
        write_animated_gif(tmp_path / "none.gif", [], fps=5)
    assert not (tmp_path / "none.gif").exists()


def test_the_python_api_points_a_gif_path_to_its_reader(tmp_path):
    from napari_vos import propagate

    frames, truth = flat_square_clip(n_frames=3)
    gif = save_animation(tmp_path / "clip.gif", frames, duration=100)
    with pytest.raises(ValueError, match="read_animated_image"):
        propagate(str(gif), truth[0], method="flow")
    assert propagate(read_animated_image(gif), truth[0], method="flow", device="cpu").labels.shape == truth.shape


@pytest.mark.parametrize("name", ["frame.png", "frame.jpg"])
def test_one_still_image_given_as_the_video_is_named_as_such(tmp_path, capsys, name):
    frames, truth = flat_square_clip(n_frames=1)
    Image.fromarray(frames[0]).save(tmp_path / name)
    Image.fromarray(truth[0]).save(tmp_path / "mask.png")
    assert main(["propagate", str(tmp_path / name), str(tmp_path / "mask.png"), "-o", str(tmp_path / "o.tif"),
                 "--method", "flow"]) == 2
    err = capsys.readouterr().err
    assert f"{name} is one image, not a video: give the folder of frame images it belongs to ({tmp_path})" in err
    assert "TIFF" not in err.split("not a video")[0]  # not 'cannot be read as a TIFF'


def test_damaged_clips_are_refused_as_one_line_naming_the_file(tmp_path):
    """Truncated or byte-flipped GIFs and APNGs made Pillow raise IndexError, OSError, SyntaxError or
    a decompression-bomb refusal, from the reader and from the frame-interval probe."""
    rng = np.random.default_rng(0)
    frames = (rng.random((4, 20, 24, 3)) * 255).astype(np.uint8)
    for suffix in (".gif", ".png"):
        whole = save_animation(tmp_path / f"clip{suffix}", frames, duration=100, loop=0).read_bytes()
        for trial in range(60):
            damaged = bytearray(whole[:rng.integers(1, len(whole))] if trial < 30 else whole)
            for _ in range(0 if trial < 30 else int(rng.integers(1, 12))):
                damaged[rng.integers(0, len(damaged))] = rng.integers(0, 256)
            path = tmp_path / f"damaged{suffix}"
            path.write_bytes(bytes(damaged))
            for probe in (read_animated_image, animated_image_calibration):
                try:
                    probe(path)
                except ValueError as err:
                    assert "damaged" in str(err) and str(path) in str(err) or "one picture" in str(err), str(err)


@pytest.mark.parametrize("fps, said, ms", [(1000, "50 frames/s (a GIF's nearest to the 1000 asked)", 20),
                                             (30, "33.33 frames/s (a GIF's nearest to the 30 asked)", 30),
                                             (25, "25 frames/s\n", 40)])
def test_overlay_says_the_rate_a_gif_holds_not_one_it_cannot(tmp_path, capsys, fps, said, ms):
    """GIF frame times are hundredths of a second, at least 20 ms: `overlay` said 1000 frames/s of a 50 frames/s GIF."""
    frames, truth = flat_square_clip(n_frames=3)
    tifffile.imwrite(tmp_path / "v.tif", frames)
    tifffile.imwrite(tmp_path / "l.tif", truth)
    gif = tmp_path / "o.gif"
    assert main(["overlay", str(tmp_path / "v.tif"), str(tmp_path / "l.tif"), "-o", str(gif), "--fps", str(fps)]) == 0
    assert f"3 frames at {said}" in capsys.readouterr().out
    assert Image.open(gif).info["duration"] == ms


def test_two_overlays_written_to_one_name_at_once_both_finish_and_a_new_folder_is_made(tmp_path):
    """Both writes used the hidden name .o.partial.gif: the second wrote into the first's file and its
    rename failed with FileNotFoundError (two exports started from napari's menu)."""
    from napari_vos.data.hidden_files import hidden_beside
    from napari_vos.data.overlay_movies import write_overlay_movie

    frames, truth = flat_square_clip(n_frames=3)
    gif = tmp_path / "o.gif"

    class LabelsStartingAnotherWrite:  # the second export starts while the first reads its labels
        def __init__(self):
            self.started = False

        def __len__(self):
            return len(truth)

        def __getitem__(self, i):
            if i == 1 and not self.started:
                self.started = True
                write_overlay_movie(gif, frames, truth[::-1].copy(), 10.0)
            return truth[i]

    assert write_overlay_movie(gif, frames, LabelsStartingAnotherWrite(), 10.0) == gif
    assert len(read_animated_image(gif)) == 3 and sorted(p.name for p in tmp_path.iterdir()) == ["o.gif"]
    deeper = tmp_path / "new" / "folder" / "o.gif"  # napari's save dialog and menu: a folder typed, not made
    assert write_overlay_movie(deeper, frames, truth, 10.0) == deeper and len(read_animated_image(deeper)) == 3
    names = {hidden_beside(gif, "partial").name for _ in range(20)}
    assert len(names) == 20 and all(n.startswith(".o.partial-") and n.endswith(".gif") for n in names)


def test_propagate_writes_the_overlay_beside_the_labels_with_one_command(tmp_path, capsys):
    frames, truth = flat_square_clip(n_frames=5)
    gif = save_animation(tmp_path / "clip.gif", frames, duration=200, loop=0)
    Image.fromarray(truth[0]).save(tmp_path / "first.png")
    out, overlay = tmp_path / "out.tif", tmp_path / "shown" / "overlay.gif"
    args = ["propagate", str(gif), str(tmp_path / "first.png"), "-o", str(out), "--method", "flow", "--device", "cpu"]
    assert main([*args, "--overlay", str(overlay)]) == 0
    said = capsys.readouterr().out
    assert f"wrote {overlay}: the labels drawn over the video, 5 frames at 5 frames/s" in said
    shown, labels = read_animated_image(overlay).astype(int), tifffile.imread(out)
    redness = shown[..., 0] - shown[..., 1]
    assert redness[labels > 0].mean() > redness[labels == 0].mean() + 40  # drawn where the labels are
    # refused before anything runs: a name of another kind, or the video itself
    for given, message in [(tmp_path / "o.avi", "--overlay " + str(tmp_path / "o.avi") + ": give the overlay a movie "
                            "name ending in"), (gif, "is the video file")]:
        out.unlink()
        assert main([*args, "--overlay", str(given)]) == 2
        assert message in capsys.readouterr().err and not out.exists()
        out.touch()


def test_a_run_stopped_part_way_writes_no_overlay(tmp_path, monkeypatch, capsys):
    from conftest import interrupt_reading_frame

    frames, truth = flat_square_clip(n_frames=6)
    gif = save_animation(tmp_path / "clip.gif", frames, duration=100, loop=0)
    Image.fromarray(truth[0]).save(tmp_path / "first.png")
    interrupt_reading_frame(monkeypatch, 3)
    assert main(["propagate", str(gif), str(tmp_path / "first.png"), "-o", str(tmp_path / "out.tif"), "--method",
                 "flow", "--device", "cpu", "--overlay", str(tmp_path / "overlay.gif")]) == 130
    assert (tmp_path / "out.tif").exists() and not (tmp_path / "overlay.gif").exists()


def test_a_last_frame_held_for_seconds_does_not_change_the_frame_interval(tmp_path):
    """A clip for slides often holds its last frame: 19 frames of 40 ms and one of 2 s had a mean
    of 0.138 s, which became the output's frame interval and the overlay's rate (7 frames/s, not 25)."""
    frames, _ = flat_square_clip(n_frames=6)
    gif = save_animation(tmp_path / "held.gif", frames, duration=[40] * 5 + [2000], loop=0)
    assert animated_image_calibration(gif).frame_interval == pytest.approx(0.04)


def test_a_movie_under_a_gif_name_is_named_as_a_movie_to_rename(tmp_path, capsys):
    pytest.importorskip("av")
    from test_video_files import write_movie

    frames, truth = flat_square_clip(n_frames=3, size=(32, 48))
    fake = write_movie(tmp_path / "clip.mp4", frames, codec="libx264", pix_fmt="yuv420p").rename(tmp_path / "clip.gif")
    with pytest.raises(ValueError, match=r"clip\.gif is a movie file \(MP4\) under an image's name: rename it to "
                                         r"clip\.mp4"):
        read_animated_image(fake)
    Image.fromarray(truth[0]).save(tmp_path / "first.png")
    assert main(["propagate", str(fake), str(tmp_path / "first.png"), "-o", str(tmp_path / "o.tif"), "--z", "1"]) == 2
    assert f"the animated image {fake} has none" in capsys.readouterr().err
