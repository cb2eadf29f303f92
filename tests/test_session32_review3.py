"""Review 3 of session 32: a short labels stack stays a stack, whole-frame maps survive re-runs,
the restack's temporary copy is removed on errors, score's name shortcut keeps its guard, and an
explicit frame gets no slider note."""
from __future__ import annotations

import os
import sys
import tempfile
import warnings

import numpy as np
import pytest


def _disks(T, H, W, centers, r=12, move=(1, -1), seed=0):
    from _layers import coloured_disks

    return coloured_disks(T, H, W, centers, r=r, move=move, seed=seed)


# -- F1: a 3- or 4-frame labels stack saved with tifffile's defaults is read as ONE colour mask -------
@pytest.mark.parametrize("frames", [3, 4])
def test_f1_short_labels_stack_saved_by_tifffile_default_stays_a_stack(tmp_path, frames):
    import tifffile

    from napari_vos.cli_inputs import read_labels

    labels = np.zeros((frames, 40, 50), np.uint8)
    labels[0, 10:20, 10:20] = 1
    labels[frames - 1, 20:30, 25:35] = 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tifffile.imwrite(tmp_path / "labels.tif", labels)  # the plain call: tifffile stores it planar RGB(A)
    got = read_labels(str(tmp_path / "labels.tif"))
    assert tuple(got.shape) == (frames, 40, 50), f"a {frames}-frame stack came back as {tuple(got.shape)}"


# -- F2: flow's one-channel map is taken for a per-object map: a re-run wipes the frames it does not reach
@pytest.mark.parametrize("second", ["other_id", "fewer_objects"])
def test_f2_global_one_channel_map_keeps_unreached_frames(second, one_torch_thread):
    pytest.importorskip("torch")
    from napari_vos import Session

    vid, gt = _disks(6, 90, 150, ((30, 40), (62, 112)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = Session(vid, method="flow", maps=True, device="cpu", max_side=150)
        first_labels = (gt[0] == 1).astype(np.uint8) if second == "other_id" else gt[0].astype(np.uint8)
        s.annotate(0, first_labels)
        first = np.array(s.run("forward").maps["flow_magnitude"])
        assert first[1:3].any()
        again = ((gt[3] == 1) * (2 if second == "other_id" else 1)).astype(np.uint8)
        s.annotate(3, again)
        result = s.run("forward", start=3)
    np.testing.assert_array_equal(np.asarray(result.maps["flow_magnitude"])[1:3], first[1:3],
                                  err_msg="frames 1-2's flow magnitude (not per object) was zeroed by the re-run")


# -- F3: the temporary copy of the kept channels is left behind when making the new stack fails ----
def test_f3_restack_temp_folder_removed_when_maps_out_fails(tmp_path, monkeypatch, one_torch_thread):
    pytest.importorskip("torch")
    from napari_vos import Session

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    vid, gt = _disks(6, 90, 150, ((30, 40), (62, 112)))
    failing = []

    def make(name, shape):
        if failing:  # the re-run's new stack: the disk is full
            raise OSError("disk full")
        return np.zeros(shape, np.float32)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = Session(vid, method="agame", maps=True, maps_out=make, device="cpu", max_side=150)
        s.annotate(0, (gt[0] == 1).astype(np.uint8))
        s.run("forward")
        failing.append(True)
        s.annotate(3, gt[3].astype(np.uint8))  # object 2 appears: a restack that carries object 1 over
        with pytest.raises(OSError):
            s.run("forward", start=3)
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith("napari-vos-maps-")]
    assert not left, f"temporary map copies left behind: {left}"


# -- F4: score's name shortcut takes a sibling sequence's labels (the record says so) ---------------
def test_f4_score_refuses_a_file_named_after_the_sequence_holding_a_sibling_sequences_labels(tmp_path):
    import imageio.v3 as iio

    from napari_vos.data.writers import write_tiff_labels
    from napari_vos.evaluation.scoring import score_dataset

    gt = tmp_path / "gt"
    for name, x in (("A", 4), ("B", 40)):
        (gt / name / "images").mkdir(parents=True)
        (gt / name / "masks").mkdir()
        for t in range(4):
            m = np.zeros((32, 64), np.uint8)
            m[8:20, x + 2 * t:x + 12 + 2 * t] = 1
            iio.imwrite(gt / name / "images" / f"{t:05d}.png", (m * 200 + 20).astype(np.uint8))
            iio.imwrite(gt / name / "masks" / f"{t:05d}.png", m)
    b_truth = np.stack([iio.imread(gt / "B" / "masks" / f"{t:05d}.png") for t in range(4)])
    run = tmp_path / "run"
    run.mkdir()
    pred = run / "A.tif"  # a batch script's off-by-one: B's labels written under A's name
    write_tiff_labels(pred, b_truth, provenance={"method": "flow", "inputs": {"video": str(gt / "B" / "images")}})
    with pytest.raises(ValueError, match="holds the labels of"):
        score_dataset(pred, gt, sequences=["A"], progress=False)


# -- F5: propagate_layers(frame=N) with a (Y, X) layer warns about a time slider nobody used --------
def test_f5_console_explicit_frame_gets_no_slider_warning(make_napari_viewer):
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        pytest.skip("needs a display: run under xvfb-run -a")
    from _layers import sliding_square

    from napari_vos import propagate_layers

    viewer = make_napari_viewer()
    frames, truth = sliding_square(6, (64, 96))
    viewer.add_image(frames, name="video")
    viewer.add_labels(truth[3], name="mask3")  # frame 3's masks, said so by frame=3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        propagate_layers(viewer, "video", "mask3", method="flow", frame=3, device="cpu")
    slider = [str(w.message) for w in caught if "slider" in str(w.message)]
    assert not slider, slider
