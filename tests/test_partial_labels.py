"""The CLI's labels on disk while it runs: `<output>.partial.tif`, what a killed run leaves, and
the disk space a memory-mapped file reserves."""
import errno
import gc
import os
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import tifffile

from napari_vos.cli import main
from napari_vos.data import writers
from napari_vos.data.partial_labels import UNFINISHED, PartialLabels, partial_path
from napari_vos.data.writers import open_tiff_labels, read_tiff_provenance


def _inputs(tmp_path, square_video, label_id=1):
    frames, truth = square_video
    tifffile.imwrite(tmp_path / "video.tif", frames)
    tifffile.imwrite(tmp_path / "labels.tif", (truth[0] > 0).astype(np.uint32) * label_id)
    return [str(tmp_path / "video.tif"), str(tmp_path / "labels.tif")]


def test_partial_path_sits_beside_a_tiff_and_inside_a_png_folder(tmp_path):
    assert partial_path(tmp_path / "run.tif") == tmp_path / "run.partial.tif"
    assert partial_path(tmp_path / "run.TIFF") == tmp_path / "run.partial.tif"
    assert partial_path(tmp_path / "results") == tmp_path / "results" / "labels.partial.tif"


def test_a_finished_run_removes_the_partial_file(tmp_path, square_video):
    out = tmp_path / "out.tif"
    assert main(["propagate", *_inputs(tmp_path, square_video), "-o", str(out), "--method", "flow",
                 "--device", "cpu"]) == 0
    assert out.exists() and not partial_path(out).exists()
    assert tifffile.imread(out)[1:].any()
    png = tmp_path / "pngs"
    assert main(["propagate", *_inputs(tmp_path, square_video), "-o", str(png), "--method", "flow",
                 "--device", "cpu"]) == 0
    assert sorted(p.name for p in png.iterdir() if p.suffix == ".png")[:2] == ["00000.png", "00001.png"]
    assert not partial_path(png).exists()


def test_the_partial_file_holds_wide_ids_and_is_removed_when_nothing_ran(tmp_path, square_video, capsys):
    """Ids above 65535 get a uint32 file; a run refused before its first frame leaves no file."""
    made = {}
    real = PartialLabels.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        made["dtype"] = self.labels.dtype

    out = tmp_path / "out.tif"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(PartialLabels, "__init__", spy)
        assert main(["propagate", *_inputs(tmp_path, square_video, label_id=70000), "-o", str(out),
                     "--method", "flow", "--device", "cpu"]) == 0
    assert made["dtype"] == np.uint32 and tifffile.imread(out).max() == 70000
    bad = tmp_path / "bad.tif"
    assert main(["propagate", *_inputs(tmp_path, square_video), "-o", str(bad), "--method", "frtm",
                 "--checkpoint", str(tmp_path / "missing.safetensors"), "--device", "cpu"]) == 2
    assert "missing.safetensors" in capsys.readouterr().err
    assert not bad.exists() and not partial_path(bad).exists()


def test_an_earlier_runs_partial_file_is_not_overwritten(tmp_path, square_video, capsys):
    out = tmp_path / "out.tif"
    left = partial_path(out)
    left.write_bytes(b"frames of a killed run")
    code = main(["propagate", *_inputs(tmp_path, square_video), "-o", str(out), "--method", "flow", "--device", "cpu"])
    assert code == 2 and "did not write its output" in capsys.readouterr().err
    assert left.read_bytes() == b"frames of a killed run" and not out.exists()


def test_when_the_output_cannot_be_written_the_partial_file_keeps_the_labels(tmp_path, square_video, monkeypatch,
                                                                             capsys):
    import napari_vos.data.writers as w

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(w, "write_tiff_labels", full_disk)
    out = tmp_path / "out.tif"
    with warnings.catch_warnings(record=True) as caught:  # the failed run lets go of the kept file itself
        warnings.simplefilter("always", ResourceWarning)
        code = main(["propagate", *_inputs(tmp_path, square_video), "-o", str(out), "--method", "flow",
                     "--device", "cpu"])
        gc.collect()
    assert not [w for w in caught if "partial.tif" in str(w.message)]
    err = capsys.readouterr().err
    kept = partial_path(out)
    assert code == 2 and "No space left" in err and f"the labels are kept in {kept}" in err
    labels = tifffile.imread(kept)
    assert labels.shape == square_video[1].shape and all(labels[t].any() for t in range(len(labels)))
    record = read_tiff_provenance(kept)
    assert record["method"] == "flow" and record["complete"] is True  # the final record, not the unfinished one


_KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from napari_vos.data.frames import FrameSource
    from napari_vos.cli import main

    real = FrameSource.tensor

    def kill_at(self, index, *args, **kwargs):
        if index == 4:  # frames 0-3 are finished: killed outright, as the out-of-memory killer does
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, index, *args, **kwargs)

    FrameSource.tensor = kill_at
    sys.exit(main(sys.argv[1:]))
""")


def test_a_run_killed_outright_leaves_its_finished_frames_in_the_partial_file(tmp_path, square_video):
    out = tmp_path / "out.tif"
    script = tmp_path / "killed.py"
    script.write_text(_KILLED_RUN)
    run = subprocess.run([sys.executable, str(script), "propagate", *_inputs(tmp_path, square_video), "-o", str(out),
                          "--method", "flow", "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert not out.exists()
    labels = tifffile.imread(partial_path(out))
    frames, truth = square_video
    assert labels.shape == truth.shape
    assert all(labels[t].any() for t in range(4)) and not labels[4:].any()
    np.testing.assert_array_equal(labels[0], truth[0])
    record = read_tiff_provenance(partial_path(out))
    assert record["method"] == "flow" and record["complete"] is False and record["frames_segmented"] == UNFINISHED
    assert record["checkpoint"] is None or isinstance(record["checkpoint"], str)  # the session's record, not a stub


def test_open_tiff_labels_reserves_its_disk_space_and_names_a_full_disk(tmp_path, monkeypatch):
    stack = open_tiff_labels(tmp_path / "l.tif", (3, 64, 80), np.uint16)
    st = os.stat(tmp_path / "l.tif")
    if hasattr(os, "posix_fallocate"):
        assert st.st_blocks * 512 >= 3 * 64 * 80 * 2  # blocks held, not a sparse file
    del stack

    def no_room(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writers.os, "posix_fallocate", no_room, raising=False)
    with pytest.raises(OSError, match=r"not enough disk space for .*big\.tif: it takes 0\.\d\d GB"):
        open_tiff_labels(tmp_path / "big.tif", (10, 1000, 1000), np.uint16)
    assert not (tmp_path / "big.tif").exists()


def test_open_tiff_labels_refuses_what_is_not_a_label_stack(tmp_path):
    for shape, dtype in [((4, 8), np.uint16), ((2, 4, 8), np.uint8), ((2, 4, 8), np.float32)]:
        with pytest.raises(ValueError, match="a label stack is"):
            open_tiff_labels(tmp_path / "x.tif", shape, dtype)


def test_a_partial_file_the_system_will_not_delete_is_named_and_the_run_still_succeeds(tmp_path, square_video,
                                                                                        capsys, monkeypatch):
    # Windows refuses to delete a file that is still memory-mapped: the output is written, so that is a note
    from pathlib import Path

    out = tmp_path / "out.tif"
    real_unlink = Path.unlink

    def refuse(self, missing_ok=False):
        if self.name.endswith(".partial.tif"):
            raise PermissionError(13, "The process cannot access the file because it is being used", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse)
    assert main(["propagate", *_inputs(tmp_path, square_video), "-o", str(out), "--method", "flow",
                 "--device", "cpu"]) == 0
    assert tifffile.imread(out)[1:].any() and partial_path(out).exists()
    err = capsys.readouterr().err
    assert f"{partial_path(out)} could not be deleted" in err and f"the next run to {out} removes it" in err
