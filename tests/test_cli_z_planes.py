"""`napari-vos propagate --z painted` / ``--z 1,3``: runs through several Z planes of a (T, Z, Y, X) TIFF into
one (T, Z, Y, X) labels TIFF, as the widget's "every painted Z plane" fills one layer."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import tifffile

from napari_vos.cli import main
from napari_vos.cli_planes import PAINTED, z_planes_arg
from napari_vos.data.writers import read_tiff_provenance

T, Z, Y, X = 6, 4, 40, 56


def _squares(tmp_path, painted=(1, 3)):
    """A (T, Z, Y, X) video of a square moving down on every plane (its own place per plane), ImageJ with a
    2 µm Z step, and labels painting it on frame 0 of ``painted`` (id = plane + 1); the truth too."""
    video = np.full((T, Z, Y, X), 30, np.uint8)
    truth = np.zeros((T, Z, Y, X), np.uint16)
    for t in range(T):
        for z in range(Z):
            truth[t, z, 8 + 2 * t:22 + 2 * t, 6 + 5 * z:20 + 5 * z] = z + 1
    video[truth > 0] = 210
    labels = np.zeros_like(truth)
    for z in painted:
        labels[0, z] = truth[0, z]
    tifffile.imwrite(tmp_path / "video.tif", video, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "TZYX", "spacing": 2.0, "unit": "um", "finterval": 5.0})
    tifffile.imwrite(tmp_path / "labels.tif", labels, imagej=True, metadata={"axes": "TZYX"})
    return truth


def _run(tmp_path, *more, out="out.tif"):
    return main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(tmp_path / out),
                 "--method", "flow", "--device", "cpu", *more])


def test_z_takes_one_plane_a_list_or_painted():
    assert z_planes_arg("3") == 3
    assert z_planes_arg("3,1,3") == [1, 3]
    assert z_planes_arg("2-4") == [2, 3, 4]
    assert z_planes_arg(" Painted ") == PAINTED
    assert z_planes_arg("1,") == [1]  # a list of one plane is a list: its output is (T, Z, Y, X)
    for bad in ("", "x", "-1", "1.5", "all"):
        with pytest.raises(argparse.ArgumentTypeError, match="--z takes a Z plane"):
            z_planes_arg(bad)


def test_every_painted_plane_is_propagated_into_one_volume_file(tmp_path, capsys):
    truth = _squares(tmp_path)
    assert _run(tmp_path, "--z", "painted") == 0
    said = capsys.readouterr()
    assert "2 object(s) propagated on Z planes 1, 3" in said.out and "kept the Z step (2 µm)" in said.out
    assert "Z plane 1 (1 of 2)" in said.err and "Z plane 3 (2 of 2)" in said.err
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        result = tif.asarray()
        assert tif.series[0].axes == "TZYX" and tif.imagej_metadata["spacing"] == 2.0
        assert tif.imagej_metadata["finterval"] == 5.0
    assert result.shape == (T, Z, Y, X)
    assert not result[:, [0, 2]].any()  # the planes not painted stay empty
    for z in (1, 3):
        for t in range(T):
            inter = np.logical_and(result[t, z] == z + 1, truth[t, z] == z + 1).sum()
            union = np.logical_or(result[t, z] == z + 1, truth[t, z] == z + 1).sum()
            assert inter / union > 0.8, (z, t)
    record = read_tiff_provenance(tmp_path / "out.tif")
    assert record["z_planes_run"] == [1, 3] and record["z_planes_asked"] == [1, 3] and record["complete"] is True
    assert record["object_ids"] == [2, 4] and record["frames_segmented"] == "0-5"
    assert set(record["plane_runs"]) == {"1", "3"} and record["plane_runs"]["3"]["object_ids"] == [4]
    assert record["inputs"]["z"] == "painted" and not (tmp_path / "out.partial.tif").exists()


def test_a_list_of_planes_runs_those_and_writes_each_planes_maps(tmp_path, capsys):
    _squares(tmp_path, painted=(0, 1, 3))
    assert _run(tmp_path, "--z", "1,3", "--maps", str(tmp_path / "maps")) == 0
    result = tifffile.imread(tmp_path / "out.tif")
    assert not result[:, 0].any() and result[:, 1].any() and result[:, 3].any()
    said = capsys.readouterr().out
    for z in (1, 3):
        written = tmp_path / "maps" / f"z{z}" / "flow_magnitude.tif"
        assert f"wrote {written}" in said and tifffile.imread(written)[1:].any()
        assert json.loads(json.dumps(read_tiff_provenance(written)))["z_plane"] == z
    assert not (tmp_path / "maps" / "z0").exists()


@pytest.mark.parametrize("flags, words", [
    (["--z", "0,1"], "hold nothing on Z plane(s) 0; they hold objects on plane(s) 1, 3"),
    (["--z", "1,7"], "names plane(s) 7, but the labels"),
    (["--z", "painted", "--frame", "2"], "Z plane(s) 1, 3 hold nothing there"),
    (["--z", "painted", "--overlay", "movie.avi"], "--overlay movie.avi: give the overlay a movie name ending in"),
    (["--z", "painted", "--keep-other-frames", "--frame", "0"], "give one plane (--z N) with it"),
])
def test_what_several_planes_cannot_take_is_refused_before_a_run(tmp_path, capsys, flags, words):
    _squares(tmp_path)
    assert _run(tmp_path, *flags) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "out.tif").exists() and not (tmp_path / "out.partial.tif").exists()


def test_labels_of_one_plane_a_png_folder_and_another_video_are_refused(tmp_path, capsys):
    _squares(tmp_path)
    assert _run(tmp_path, "--z", "painted", out="pngs") == 2
    assert "a folder of PNGs cannot hold" in capsys.readouterr().err
    tifffile.imwrite(tmp_path / "plane.tif", np.zeros((T, Y, X), np.uint8))
    assert main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "plane.tif"), "-o",
                 str(tmp_path / "out.tif"), "--method", "flow", "--z", "painted"]) == 2
    assert "is no such TIFF (for one plane's labels give that plane: --z N)" in capsys.readouterr().err
    tifffile.imwrite(tmp_path / "video.tif", np.zeros((T, 3, Y, X), np.uint8), imagej=True,
                     metadata={"axes": "TZYX"})
    assert _run(tmp_path, "--z", "painted") == 2
    assert f"is (6, 3, {Y}, {X}) (T, Z, Y, X) but the labels" in capsys.readouterr().err


def test_a_stop_in_a_later_plane_writes_the_planes_done_and_says_which_are_left(tmp_path, monkeypatch, capsys):
    from napari_vos.data.frames import FrameSource

    _squares(tmp_path, painted=(0, 1, 3))
    real = FrameSource.tensor
    reads = {"frame 3": 0}

    def ctrl_c_in_the_second_plane(self, index, *args, **kwargs):
        if index == 3:
            reads["frame 3"] += 1
            if reads["frame 3"] == 2:
                raise KeyboardInterrupt
        return real(self, index, *args, **kwargs)

    monkeypatch.setattr(FrameSource, "tensor", ctrl_c_in_the_second_plane)
    assert _run(tmp_path, "--z", "painted") == 130
    err = capsys.readouterr().err
    assert "stopped in Z plane 1 after 3 of 6 frames; wrote Z plane(s) 0 and Z plane 1's finished frames (0-2)" in err
    assert f"to run the planes left (1, 3) into it, give the same command with --resume {tmp_path / 'out.tif'}" in err
    result = tifffile.imread(tmp_path / "out.tif")
    assert all(result[t, 0].any() for t in range(T)) and not result[:, 3].any()
    assert all(result[t, 1].any() for t in range(3)) and not result[3:, 1].any()
    record = read_tiff_provenance(tmp_path / "out.tif")
    assert record["z_planes_run"] == [0, 1] and record["complete"] is False and record["stopped_by"] == "interrupt"
    assert record["plane_runs"]["1"]["frames_segmented"] == "0-2" and record["plane_runs"]["0"]["complete"] is True
    assert not (tmp_path / "out.partial.tif").exists()


def test_an_error_in_the_first_plane_writes_nothing(tmp_path, capsys):
    _squares(tmp_path)
    assert _run(tmp_path, "--z", "painted", "--checkpoint", "nothing-here") == 2
    assert "Z plane 1:" in capsys.readouterr().err
    assert not (tmp_path / "out.tif").exists() and not (tmp_path / "out.partial.tif").exists()


def test_the_output_opens_in_napari_over_the_video_at_its_z_step(tmp_path, make_napari_viewer):
    from napari_vos.console import open_image_layers, open_labels_layer

    _squares(tmp_path)
    assert _run(tmp_path, "--z", "painted") == 0
    viewer = make_napari_viewer()
    (image,) = open_image_layers(viewer, tmp_path / "video.tif")
    labels = open_labels_layer(viewer, tmp_path / "out.tif")
    assert labels.data.shape == (T, Z, Y, X) == image.data.shape
    assert np.allclose(labels.scale, image.scale) and np.allclose(labels.scale[1:], (2.0, 0.5, 0.5))
    assert labels.metadata["napari_vos"]["z_planes_run"] == [1, 3]
    assert np.asarray(labels.data[T - 1, 3]).any() and not np.asarray(labels.data[:, 2]).any()


def test_a_killed_runs_partial_file_says_which_planes_it_holds(tmp_path, capsys):
    from napari_vos.data.calibration import Calibration
    from napari_vos.data.partial_labels import PartialLabels

    _squares(tmp_path, painted=(0, 1, 3))
    killed = PartialLabels(tmp_path / "out.tif", (T, Z, Y, X), 4, Calibration(),
                           {"method": "flow", "z_planes_asked": [0, 1, 3]})
    killed.labels[:, 0] = 1  # plane 0 done, plane 1 begun, when the process was killed
    killed.labels[:2, 1] = 2
    killed.labels.flush()
    killed.release()  # as the killed process's lock went with it
    killed.labels = None
    assert _run(tmp_path, "--z", "painted") == 2
    err = capsys.readouterr().err
    assert "it was killed" in err and "of the Z planes it was to run through (0-1, 3), 0-1 hold its labels" in err
    assert "run the planes left with --z 1,3 into another file" in err and "--keep-other-frames" not in err
    assert not (tmp_path / "out.tif").exists()


def test_painted_plane_frames_reads_each_volume_once_and_refuses_nan_labels():
    from napari_vos.data.label_types import painted_plane_frames

    volumes = np.zeros((3, 4, 5, 5), np.uint16)
    volumes[0, 1, 2, 2], volumes[2, 1, 0, 0], volumes[2, 3, 4, 4] = 2, 2, 9
    assert painted_plane_frames(volumes) == ({1: [0, 2], 3: [2]}, 9)
    assert painted_plane_frames(np.zeros((2, 3, 4, 4), np.uint8)) == ({}, 0)
    floats = volumes.astype(np.float32)
    floats[1, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="labels must hold integer object ids"):
        painted_plane_frames(floats)
