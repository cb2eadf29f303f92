"""A microscopist's workflow (session 33 audit): channels-first stacks, --keep-other-frames records, Z planes, newcomers."""
from __future__ import annotations

import numpy as np
import pytest


def _tcyx(n_frames=5, size=48):
    """A (T, C, Y, X) uint16 stack as tifffile.imread gives an ImageJ hyperstack, and frame 0's labels."""
    video = np.full((n_frames, 2, size, size), 100, np.uint16)
    labels = np.zeros((size, size), np.uint8)
    for t in range(n_frames):
        video[t, :, 10:22, 8 + 2 * t:20 + 2 * t] = 3000
    labels[10:22, 8:20] = 1
    return video, labels


def test_channels_on_a_tcyx_array_is_refused_with_the_channels_first_hint():
    """Finding 1: `propagate(tcyx, labels, channels=[0, 1])`, the call the axes message itself suggests,
    reads the (T, C, Y, X) stack as (T, Y=2, X=48, C=48) and fails on a labels 'mismatch' naming frames
    of (2, 48); it should say the stack looks channels-first and how to move the axis."""
    from napari_vos.data.frames import FrameSource

    video, _ = _tcyx()
    with pytest.raises(ValueError, match="moveaxis|channels first|\\(T, C, Y, X\\)"):
        FrameSource(video, channels=[0, 1])


def test_zero_shot_on_a_tcyx_array_with_channels_is_not_segmented_as_2_by_48_frames():
    """Finding 1b: with no labels to compare against, the same call runs silently on (2, 48) 'frames'."""
    from napari_vos import propagate

    video, _ = _tcyx(n_frames=3)
    try:
        result = propagate(video, None, method="cosnet", channels=[0, 1], device="cpu")
    except ValueError:
        return  # refused: fine
    assert result.labels.shape[1:] == (48, 48), f"segmented frames of {result.labels.shape[1:]}"


def _corrected_stack(tmp_path):
    import tifffile

    video = np.zeros((6, 48, 64), np.uint8)
    earlier = np.zeros((6, 48, 64), np.uint16)
    for t in range(6):
        video[t, 10:26, 4 + 3 * t:20 + 3 * t] = 200
        earlier[t, 10:26, 4 + 3 * t:20 + 3 * t] = 1
    earlier[1, 0:4, 0:4] = 2  # an earlier frame's hand edit
    corrected = earlier.copy()
    corrected[3, 10:26, 13:29] = 5
    tifffile.imwrite(tmp_path / "video.tif", video)
    tifffile.imwrite(tmp_path / "corrected.tif", corrected)
    return corrected


def test_keep_other_frames_records_the_frames_it_kept(tmp_path):
    """Finding 2: the CLI's --keep-other-frames copies frames 0-2 of the corrected stack into the output,
    but the record says only frames_segmented '3-5' (what the docs say tells 'never reached' from
    empty): nothing says frames 0-2 hold copied labels. The widget records frames_kept_from_labels."""
    from napari_vos.cli import main
    from napari_vos.data.writers import read_tiff_provenance

    _corrected_stack(tmp_path)
    out = tmp_path / "out.tif"
    assert main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "corrected.tif"), "-o", str(out),
                 "--method", "flow", "--device", "cpu", "--frame", "3", "--direction", "forward",
                 "--keep-other-frames"]) == 0
    record = read_tiff_provenance(out)
    assert record.get("frames_kept_from_labels") == "0-2", record


def test_keep_other_frames_with_direction_both_is_not_silently_a_no_op(tmp_path, capsys):
    """Finding 3: --keep-other-frames with the default --direction both keeps no frame (the backward
    pass rewrites 0-2, the hand edit on frame 1 is gone) and says nothing."""
    import tifffile

    from napari_vos.cli import main

    corrected = _corrected_stack(tmp_path)
    out = tmp_path / "out.tif"
    rc = main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "corrected.tif"), "-o", str(out),
               "--method", "flow", "--device", "cpu", "--frame", "3", "--keep-other-frames"])
    err = capsys.readouterr().err
    if rc == 0:
        kept = np.array_equal(tifffile.imread(out)[:3], corrected[:3])
        assert kept or "keep-other-frames" in err, "frames 0-2 were replaced without a word"


def test_labels_painted_on_another_z_plane_are_named_in_the_error(tmp_path, capsys):
    """Finding 4: TZYX labels painted on plane 0 with --z 1: 'the labels are empty on every frame: paint at
    least one object on one frame' though the file holds paint; the message should say it is at --z 1
    and which plane(s) hold paint."""
    import tifffile

    from napari_vos.cli import main

    video = np.zeros((5, 3, 40, 40), np.uint8)
    video[:, :, 10:20, 10:20] = 200
    labels = np.zeros((5, 3, 40, 40), np.uint8)
    labels[0, 0, 10:20, 10:20] = 1
    tifffile.imwrite(tmp_path / "v.tif", video, imagej=True, metadata={"axes": "TZYX"})
    tifffile.imwrite(tmp_path / "l.tif", labels, imagej=True, metadata={"axes": "TZYX"})
    rc = main(["propagate", str(tmp_path / "v.tif"), str(tmp_path / "l.tif"), "-o", str(tmp_path / "o.tif"),
               "--method", "flow", "--device", "cpu", "--z", "1"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "plane" in err.lower() or "--z" in err, err


def test_ids_that_appear_only_later_get_the_divide_and_correct_hint():
    from napari_vos.checks import objects_missing_at_start

    first = np.zeros((8, 8), np.uint8)
    first[1:3, 1:3] = 1
    later = first.copy()
    later[5:7, 5:7] = 2
    message = objects_missing_at_start({0: first, 4: later}, 0)
    assert "daughters after a division" in message and "propagate forward from it alone" in message
    earlier = objects_missing_at_start({0: later, 4: first}, 4)  # 2 is on an earlier frame: no such hint
    assert earlier is not None and "daughters" not in earlier


def test_a_five_axis_hyperstack_layer_is_told_to_pick_a_plane_and_split_channels():
    from napari.layers import Image

    from napari_vos._widgets.layer_job import video_problem

    layer = Image(np.zeros((4, 3, 2, 24, 24), np.uint16), name="hyperstack")
    problem = video_problem(layer, [None])
    assert "(T, Z, C, Y, X)" in problem and "viewer.add_image(layer.data[:, z], channel_axis=1)" in problem


def test_a_zarr_store_on_the_command_line_is_named(tmp_path):
    zarr = pytest.importorskip("zarr")
    from napari_vos.data.readers import open_sequence_dir

    store = tmp_path / "cells.zarr"
    z = zarr.open(str(store), mode="w", shape=(3, 16, 16), chunks=(1, 16, 16), dtype="u2")
    z[:] = 1
    with pytest.raises(ValueError, match="is a zarr store, which the command line does not read"):
        open_sequence_dir("cells", store, None, "images_masks")
