"""Review of session 32's later fixes: maps carried over by object id also when a re-run has as
many objects as before, without reading a maps_out stack whole; --z only for labels with a time axis;
planar RGB labels TIFFs; numpy scalars as CRF options; device_train.sh's same-run check."""
from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _disks(T, H, W, centers, r=12, move=(1, -1), seed=0):
    from _layers import coloured_disks

    return coloured_disks(T, H, W, centers, r=r, move=move, seed=seed)


# -- finding 1: maps of a re-run with as many objects but other ids are not carried over by id ----

def test_1_rerun_with_same_count_other_ids_keeps_maps_by_object_id(one_torch_thread):
    """Run 1 follows objects 1 and 2; a correction at frame 3 holds objects 1 and 3 (2 left, 3 came).
    The map stack keeps its shape, so _restack_map is never called: frames 1-2 keep run 1's
    channel 1 (object 2's map), which result.object_ids now says is object 3's."""
    from napari_vos import Session

    vid, gt = _disks(6, 90, 150, ((30, 40), (62, 112), (62, 40)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = Session(vid, method="agame", maps=True, device="cpu", max_side=150)
        s.annotate(0, np.where(gt == 3, 0, gt).astype(np.uint8)[0])  # objects 1, 2
        first = {k: np.array(v) for k, v in s.run("forward").maps.items()}
        s.annotate(3, np.where(gt == 2, 0, gt).astype(np.uint8)[3])  # objects 1, 3
        result = s.run("forward", start=3)
    assert result.object_ids == [1, 3]
    stack = np.asarray(result.maps["target_posterior"])
    k1, k3 = result.object_ids.index(1), result.object_ids.index(3)
    np.testing.assert_array_equal(stack[1:3, k1], first["target_posterior"][1:3, 0])  # object 1: kept, right
    assert not np.array_equal(stack[1:3, k3], first["target_posterior"][1:3, 1]), \
        "frames 1-2 show object 2's map as object 3's"
    assert s._map_ids["target_posterior"] == [1, 3], "the channel ids are stale after a same-shape re-run"


# -- finding 2: the carry-over reads every frame of the old stack into memory at once ---------------

class _Reads:
    """A float32 (T, K, h, w) maps_out array that records the largest single read."""

    def __init__(self, shape):
        self.a = np.zeros(shape, np.float32)
        self.shape, self.dtype = self.a.shape, self.a.dtype
        self.largest = 0

    def __getitem__(self, key):
        out = self.a[key]
        self.largest = max(self.largest, np.asarray(out).nbytes)
        return out

    def __setitem__(self, key, value):
        self.a[key] = value


def test_2_rerun_carry_over_does_not_load_the_whole_maps_out_stack(one_torch_thread):
    """maps_out exists for map stacks that do not fit in memory (docs: RGMP, 70 cells at 1024 px,
    18 MB a frame); a re-run adding one object copies the kept channels of *every* frame into one
    in-memory array (np.asarray(old[:, channels])): T x 18 MB at once. Frame by frame would do."""
    from napari_vos import Session

    vid, gt = _disks(6, 90, 150, ((30, 40), (62, 112)))
    made = []

    def make(name, shape):
        made.append(_Reads(shape))
        return made[-1]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = Session(vid, method="agame", maps=True, maps_out=make, device="cpu", max_side=150)
        s.annotate(0, (gt == 1).astype(np.uint8)[0])
        s.run("forward")
        olds = list(made)
        s.annotate(3, gt[3])  # object 2 appears: a new stack, object 1 carried over
        s.run("forward", start=3)
    frame_bytes = max(int(np.prod(o.shape[1:])) * 4 for o in olds)
    assert max(o.largest for o in olds) <= frame_bytes, "the whole old stack was read into memory at once"


# -- finding 3: --z is now applied to a (Z, Y, X) labels stack and refuses it ----------------------

def test_3_zyx_labels_stack_with_z_option_still_reads(tmp_path):
    """`propagate video.tif labels.tif --z 2` with a TZYX video and labels saved as a plain ImageJ
    stack (tifffile imagej=True or Fiji's 'slices': axes ZYX) of T frames: at 5972b2d it ran (rc 0),
    now 'TIFF series with axes 'ZYX' ... has no time axis to pick a Z plane from' (rc 2)."""
    import tifffile

    from napari_vos.cli import main

    video = np.zeros((4, 3, 40, 50), np.uint8)
    for t in range(4):
        video[t, :, 10 + t:20 + t, 10:20] = 200
    tifffile.imwrite(tmp_path / "video.tif", video, imagej=True, metadata={"axes": "TZYX"})
    labels = np.zeros((4, 40, 50), np.uint8)
    labels[0, 10:20, 10:20] = 1
    tifffile.imwrite(tmp_path / "labels.tif", labels, imagej=True, metadata={"axes": "ZYX"})
    try:
        rc = main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o",
                   str(tmp_path / "out.tif"), "--z", "2", "--method", "flow", "--device", "cpu"])
    except SystemExit as stop:
        rc = stop.code
    assert rc == 0 and (tmp_path / "out.tif").exists()


# -- finding 4: an RGB TIFF labels image saved planar is read as a 3-frame stack --------------------

def test_4_contiguous_rgb_labels_tiff_is_one_colour_mask_and_planar_stays_a_stack(tmp_path):
    """RGB samples last (Pillow's, photometric='rgb') is a colour mask as a PNG is; samples first is
    what tifffile's plain imwrite makes of a 3-frame stack, so it stays a stack (review 3)."""
    import tifffile

    from napari_vos.cli_inputs import read_labels

    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[2:8, 2:8] = (255, 0, 0)
    rgb[10:15, 10:20] = (0, 255, 0)
    tifffile.imwrite(tmp_path / "contig.tif", rgb, photometric="rgb")
    contig = np.asarray(read_labels(str(tmp_path / "contig.tif")))
    assert contig.shape == (20, 30) and sorted(np.unique(contig)) == [0, 1, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tifffile.imwrite(tmp_path / "stack.tif", np.moveaxis(rgb, -1, 0))
    assert tuple(read_labels(str(tmp_path / "stack.tif")).shape) == (3, 20, 30)


# -- finding 5: CRF options given as numpy scalars are refused (they ran before) --------------------

@pytest.mark.parametrize("option", [{"crf_bilateral_xy": np.float32(80.0)}, {"crf_iterations": np.int64(5)}])
def test_5_crf_options_accept_numpy_scalars(option):
    """option_types takes numbers.Real / numpy integers for these keywords; DenseCRFSettings' new
    __post_init__ accepts only int/float and says 'must be a finite number > 0, got np.float32(80.0)'."""
    from napari_vos import Session

    Session(np.zeros((3, 64, 64), np.uint8), method="osvos_at", device="cpu", crf=True, **option)


# -- finding 7: device_train.sh's same_run ----------------------------------------------------------

def _start(tmp_path, saved_args, new_args):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"x")
    if saved_args is not None:
        (run / "args").write_text(saved_args)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "VOS_RUN": str(run), "OUT": str(out), "PYTHON": "true"}
    return subprocess.run(["bash", str(REPO / "scripts" / "gpu" / "device_train.sh"), "start", "0", *new_args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=60)


def test_7a_a_run_folder_without_its_args_is_still_refused(tmp_path):
    """Before: a last.pt with no args file was refused ('its arguments unknown'); the new
    [ -f "$RUN/args" ] guard resumes it with whatever arguments are given (another stage too)."""
    done = _start(tmp_path, None, ["rgmp", "--config", "light:video", "--steps", "100"])
    assert done.returncode == 2, done.stdout


def test_7b_steps_first_then_dropped_is_the_same_run(tmp_path):
    """same_run trims a trailing space only: '--steps 100 frtm' -> ' frtm' differs from 'frtm'."""
    done = _start(tmp_path, "--steps 100 frtm --device cuda", ["frtm", "--device", "cuda"])
    assert done.returncode != 2, done.stdout


def test_7c_a_run_given_more_steps_continues(tmp_path):
    """The loop says "raise --steps to continue it": start must not refuse the same run with more steps."""
    done = _start(tmp_path, "frtm --steps 100 --device cuda", ["frtm", "--steps", "200", "--device", "cuda"])
    assert done.returncode != 2, done.stdout


def test_7d_a_folder_holding_another_stage_is_refused(tmp_path):
    done = _start(tmp_path, "rgmp --config light:pretrain --steps 100", ["rgmp", "--config", "light:video", "--steps",
                                                                          "100"])
    assert done.returncode == 2 and "holds another run" in done.stdout
