"""`napari-vos propagate --z ... --resume FILE`: a stopped or killed run through several Z planes goes on from
the planes it finished, into the file the uninterrupted run writes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_vos.cli import main
from napari_vos.data.writers import read_tiff_provenance, rewrite_tiff_provenance
from test_cli_z_planes import T, Y, X, _run, _squares


def _stop_in_plane(monkeypatch, reads_of_frame_3: int) -> None:
    """Ctrl+C when frame 3 is read for the ``reads_of_frame_3``-th time (a flow run reads each frame once a plane)."""
    from napari_vos.data.frames import FrameSource

    real = FrameSource.tensor
    reads = {"frame 3": 0}

    def ctrl_c(self, index, *args, **kwargs):
        if index == 3:
            reads["frame 3"] += 1
            if reads["frame 3"] == reads_of_frame_3:
                raise KeyboardInterrupt
        return real(self, index, *args, **kwargs)

    monkeypatch.setattr(FrameSource, "tensor", ctrl_c)


def _uninterrupted(tmp_path) -> np.ndarray:
    assert _run(tmp_path, "--z", "painted", out="full.tif") == 0
    return tifffile.imread(tmp_path / "full.tif")


def test_a_stopped_run_goes_on_from_its_finished_planes_into_the_uninterrupted_runs_labels(tmp_path, monkeypatch,
                                                                                           capsys):
    _squares(tmp_path, painted=(0, 1, 3))
    full = _uninterrupted(tmp_path)
    _stop_in_plane(monkeypatch, 2)  # in plane 1, after its frames 0-2
    assert _run(tmp_path, "--z", "painted") == 130
    err = capsys.readouterr().err
    assert f"to run the planes left (1, 3) into it, give the same command with --resume {tmp_path / 'out.tif'}" in err
    monkeypatch.undo()
    assert _run(tmp_path, "--z", "painted", "--resume", str(tmp_path / "out.tif")) == 0
    said = capsys.readouterr()
    assert f"kept Z plane(s) 0 from {tmp_path / 'out.tif'}; Z plane(s) 1 stopped part-way there and run again" in said.err
    assert "Z plane 1 (1 of 2)" in said.err and "Z plane 3 (2 of 2)" in said.err and "Z plane 0 (" not in said.err
    assert "propagated on Z planes 0-1, 3 (0 kept from" in said.out
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), full)
    record = read_tiff_provenance(tmp_path / "out.tif")
    assert record["complete"] is True and record["z_planes_run"] == [0, 1, 3] and record["z_planes_asked"] == [0, 1, 3]
    assert record["resumed_from"]["z_planes_kept"] == [0] and record["object_ids"] == [1, 2, 4]
    assert record["plane_runs"]["1"]["frames_segmented"] == "0-5" and record["frames_segmented"] == "0-5"
    assert not (tmp_path / "out.stopped.tif").exists() and not (tmp_path / "out.partial.tif").exists()


def test_a_second_stop_writes_over_the_file_it_went_on_from_with_every_plane_finished_so_far(tmp_path, monkeypatch,
                                                                                            capsys):
    _squares(tmp_path, painted=(0, 1, 3))
    _stop_in_plane(monkeypatch, 2)
    assert _run(tmp_path, "--z", "painted") == 130
    capsys.readouterr()
    _stop_in_plane(monkeypatch, 2)  # this time in plane 3 (plane 1 reads frame 3 first)
    assert _run(tmp_path, "--z", "painted", "--resume", str(tmp_path / "out.tif")) == 130
    err = capsys.readouterr().err
    assert "stopped in Z plane 3 after 3 of 6 frames; wrote Z plane(s) 0-1 and Z plane 3's finished frames" in err
    assert f"(3) into it, give the same command with --resume {tmp_path / 'out.tif'}" in err
    assert not (tmp_path / "out.stopped.tif").exists()
    record = read_tiff_provenance(tmp_path / "out.tif")
    assert record["z_planes_run"] == [0, 1, 3] and record["complete"] is False
    assert record["plane_runs"]["3"]["complete"] is False and record["resumed_from"]["z_planes_kept"] == [0]
    monkeypatch.undo()
    assert _run(tmp_path, "--z", "painted", "--resume", str(tmp_path / "out.tif")) == 0
    assert "kept Z plane(s) 0-1 from" in capsys.readouterr().err
    assert read_tiff_provenance(tmp_path / "out.tif")["complete"] is True


def test_a_killed_runs_partial_file_says_how_to_go_on_from_it(tmp_path, capsys):
    _squares(tmp_path, painted=(0, 1, 3))
    full = _uninterrupted(tmp_path)
    killed_in_plane_1 = (
        "import os, sys\n"
        "from napari_vos.data.frames import FrameSource\n"
        "from napari_vos.cli import main\n"
        "real, reads = FrameSource.tensor, []\n"
        "def kill(self, index, *a, **k):\n"
        "    reads.append(index)\n"
        "    if reads.count(3) == 2:\n"
        "        os._exit(9)\n"
        "    return real(self, index, *a, **k)\n"
        "FrameSource.tensor = kill\n"
        "main(sys.argv[1:])\n")
    out = tmp_path / "out.tif"
    command = [sys.executable, "-c", killed_in_plane_1, "propagate", str(tmp_path / "video.tif"),
               str(tmp_path / "labels.tif"), "-o", str(out), "--method", "flow", "--device", "cpu", "--z", "painted"]
    assert subprocess.run(command, capture_output=True, env={**os.environ, "PYTHONPATH": ""}).returncode == 9
    assert (tmp_path / "out.partial.tif").exists() and not out.exists()
    assert _run(tmp_path, "--z", "painted") == 2
    err = capsys.readouterr().err
    assert "it was killed" in err and ("(0-1, 3), 0 finished: move it to out.killed.tif and go on from them by giving "
                                       f"this command again with --resume {tmp_path / 'out.killed.tif'}") in err
    (tmp_path / "out.partial.tif").rename(tmp_path / "out.killed.tif")
    assert _run(tmp_path, "--z", "painted", "--max-side", "16", "--resume", str(tmp_path / "out.killed.tif")) == 2
    assert "were made with max_side=1024, work_size=[40, 56], this run's are max_side=16" in capsys.readouterr().err
    assert _run(tmp_path, "--z", "painted", "--resume", str(tmp_path / "out.killed.tif")) == 0
    np.testing.assert_array_equal(tifffile.imread(out), full)
    assert read_tiff_provenance(out)["resumed_from"]["z_planes_kept"] == [0]


def test_a_killed_run_in_its_first_plane_says_which_planes_hold_labels(tmp_path, capsys):
    from napari_vos.data.calibration import Calibration
    from napari_vos.data.partial_labels import PartialLabels

    _squares(tmp_path, painted=(0, 1, 3))
    killed = PartialLabels(tmp_path / "out.tif", (T, 4, Y, X), 4, Calibration(),
                           {"method": "flow", "z_planes_asked": [0, 1, 3]})
    killed.labels[:2, 0] = 1  # plane 0 begun, no plane finished
    killed.labels.flush()
    killed.release()
    killed.labels = None
    assert _run(tmp_path, "--z", "painted") == 2
    err = capsys.readouterr().err
    assert "(0-1, 3), 0 hold its labels (the last may be half-done)" in err and "--resume" not in err


@pytest.mark.parametrize("case, words", [
    ("missing", "does not exist"),
    ("one plane", "its record names no runs through Z planes"),
    ("shape", "holds labels of shape (6, 3,"),
    ("method", "holds planes made with the method flow, not frtm: give flow to go on with them"),
    ("complete", "holds every Z plane asked for (0-1, 3) finished: nothing is left to run"),
    ("weights", "were made with checkpoint (its sha256) 'made-elsewhere', this run's is None"),
    ("max side", "were made with max_side=1024, work_size=[40, 56], this run's are max_side=16, work_size=[11, 16]"),
    ("direction", "were made with direction='both', this run's are direction='forward'"),
    ("no --z", "--resume goes on with a stopped run through several Z planes"),
])
def test_what_resume_cannot_go_on_from_is_refused_before_a_run(tmp_path, capsys, case, words):
    _squares(tmp_path, painted=(0, 1, 3))
    given = tmp_path / "earlier.tif"
    z, method = ["--z", "painted"], []
    if case == "one plane":
        tifffile.imwrite(given, np.zeros((T, 4, Y, X), np.uint8), imagej=True, metadata={"axes": "TZYX"})
    elif case == "shape":
        _run(tmp_path, "--z", "painted", out="earlier.tif")
        tifffile.imwrite(given, tifffile.imread(given)[:, :3], imagej=True, metadata={
            "axes": "TZYX", "napari_vos": '{"method": "flow", "plane_runs": {}}'})
    elif case == "weights":  # checked once the run's method is built, before its first frame
        assert _run(tmp_path, "--z", "0,1", out="earlier.tif") == 0
        record = read_tiff_provenance(given)
        record["plane_runs"]["0"]["checkpoint_sha256"] = "made-elsewhere"
        rewrite_tiff_provenance(given, record)
    elif case in ("max side", "direction"):  # checked as the weights are
        assert _run(tmp_path, "--z", "0,1", out="earlier.tif") == 0
        method = ["--max-side", "16"] if case == "max side" else ["--direction", "forward"]
    elif case in ("method", "complete", "no --z"):
        assert _run(tmp_path, "--z", "painted", out="earlier.tif") == 0
        method = ["--method", "frtm"] if case == "method" else []
        z = ["--z", "1"] if case == "no --z" else z
    capsys.readouterr()
    kept = given.read_bytes() if given.exists() else None
    argv = ["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(tmp_path / "out.tif"),
            "--method", "flow", "--device", "cpu", *z, "--resume", str(given), *method]
    assert main(argv) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "out.tif").exists() and not (tmp_path / "out.partial.tif").exists()
    assert (given.read_bytes() if given.exists() else None) == kept


def test_the_kept_planes_must_come_from_the_same_weights_options_and_direction():
    from napari_vos.plane_resume import KeptPlanes

    made = {"method": "frtm", "checkpoint_sha256": "abc", "direction": "both",
            "options": {"max_side": 512, "work_size": [24, 32], "precision": "bf16"}}
    kept = KeptPlanes(Path("earlier.tif"), {0: made})
    # a tuple is the list the file holds; another precision (or device) only changes the arithmetic's last bits
    kept.check_same_run({**made, "options": {"max_side": 512, "work_size": (24, 32), "precision": "fp16"}}, "both")
    with pytest.raises(ValueError, match="checkpoint \\(its sha256\\) 'abc', this run's is 'def'"):
        kept.check_same_run({**made, "checkpoint_sha256": "def"}, "both")
    with pytest.raises(ValueError, match="made with max_side=512, update_every not set, this run's are max_side=1024, "
                                         "update_every=4: give the earlier run's settings"):
        kept.check_same_run({**made, "options": {"max_side": 1024, "work_size": [24, 32], "update_every": 4}}, "both")
    with pytest.raises(ValueError, match="made with direction='both', this run's are direction='forward'"):
        kept.check_same_run(made, "forward")
    # what the method picked itself for a plane's objects (RGMP's scales) may differ; a method's build before its
    # first start has picked nothing yet
    rgmp = {**made, "options": {**made["options"], "scales": [1.0], "window": "full"}, "chosen_options": ["scales", "window"]}
    KeptPlanes(Path("earlier.tif"), {0: rgmp}).check_same_run(made, "both")
    KeptPlanes(Path("earlier.tif"), {}, part_way=[0]).check_same_run(made, "forward")  # no plane kept: nothing to match
    KeptPlanes(Path("earlier.tif"), {0: rgmp}).check_same_run({**rgmp, "options": {**rgmp["options"], "scales": [1.0, 1.5]}},
                                                              "both")




def test_each_planes_chosen_options_are_kept_in_the_record_and_rebuilt_on_resume():
    """What RGMP picked for each plane's objects (scales, window) was lost but for the latest plane's (the runs'
    shared ``options``): each plane's values now stand in its ``plane_runs`` entry, and a resume rebuilds them."""
    from napari_vos.plane_records import CHOSEN, planes_run_record
    from napari_vos.plane_resume import kept_runs

    def plane(z: int, scales: list[float]) -> dict:
        return {"method": "rgmp", "options": {"max_side": 512, "scales": scales, "window": "full"},
                "chosen_options": ["scales", "window"], "z_plane": z, "complete": True, "frames_segmented": "0-3",
                "frames_done": 4, "seconds": 1.0}

    record = planes_run_record({1: plane(1, [1.0]), 4: plane(4, [1.0, 1.5])}, [1, 4])
    assert record["options"]["scales"] == [1.0, 1.5]  # the latest plane's, as before
    assert record["plane_runs"]["1"][CHOSEN] == {"scales": [1.0], "window": "full"}
    assert record["plane_runs"]["4"][CHOSEN] == {"scales": [1.0, 1.5], "window": "full"}
    finished, part_way = kept_runs(json.loads(json.dumps(record)))
    assert part_way == [] and finished[1]["options"] == {"max_side": 512, "scales": [1.0], "window": "full"}
    assert finished[4]["options"]["scales"] == [1.0, 1.5] and CHOSEN not in finished[1]
    assert finished[1]["chosen_options"] == ["scales", "window"]
    # written again (a resumed run's record over kept and new planes): each plane's values stay its own
    again = planes_run_record({**finished, 6: plane(6, [0.75])}, [1, 4, 6])
    assert [again["plane_runs"][z][CHOSEN]["scales"] for z in ("1", "4", "6")] == [[1.0], [1.0, 1.5], [0.75]]
    # a method that chose nothing: no entry, and the plane's options are the runs'
    flow = {**plane(2, [1.0]), "method": "flow", "options": {"max_side": 512}, "chosen_options": []}
    assert CHOSEN not in planes_run_record({2: flow}, [2])["plane_runs"]["2"]
