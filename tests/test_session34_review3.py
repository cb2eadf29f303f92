"""Third review of session 34's fixes: integer frames of another width, (T, 1, Y, X) labels with
--z, flag/option refusals up front (bench --sweep, --zero-shot), the labels choice after "none"."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _layers import first_frame_only, two_disks
from _widget_run import menu_docked_widget, needs_display, wait_done

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- 1: an 8-bit frame among 16-bit frames is read silently (nearly black) -----------------------
def test_an_8bit_png_among_16bit_pngs_is_refused_not_read_nearly_black(tmp_path):
    """f65f175 refused a frame of another integer width by name; 21c83de lets a narrower integer
    frame through (frames.py _same_layout: itemsize <=), so an 8-bit PNG among 16-bit ones is
    normalised with the 16-bit stack's percentile range: mean 0.03 against 0.56-0.59 for its
    neighbours, a nearly black frame reaching the network without a word."""
    from PIL import Image

    from napari_vos.data.frames import FrameSource
    from napari_vos.data.readers import open_sequence_dir

    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((16, 16)) * 4000 + 500).astype(np.uint16)).save(tmp_path / "00000.png")
    Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(tmp_path / "00001.png")
    Image.fromarray((rng.random((16, 16)) * 4000 + 500).astype(np.uint16)).save(tmp_path / "00002.png")
    source = FrameSource(open_sequence_dir("s", tmp_path, None, "images_masks").frames)
    with pytest.raises(ValueError, match="frame 1 is grey uint8 but the stack's frames are grey uint16"):
        source[1]


def test_an_8bit_frame_in_a_16bit_stack_is_refused_lazy_frames():
    from napari_vos.data.frames import FrameSource
    from napari_vos.data.sequence import LazyFrames

    frames = [np.full((8, 8), 3000, np.uint16), np.full((8, 8), 200, np.uint8)]
    source = FrameSource(LazyFrames(2, lambda i: frames[i]))
    with pytest.raises(ValueError, match="frame 1 is grey uint8"):
        source.raw(1)


# -- 2: (T, 1, Y, X) labels with --z N > 0 ---------------------------------------------------------
def test_cli_reads_t1yx_labels_with_a_z_plane_above_0(tmp_path):
    """A (T, 1, Y, X) labels array saved by a plain tifffile.imwrite ("QQYX", one plane) over a
    (T, Z, Y, X) video: before e80a27c its single plane was read whatever --z (the reader takes a
    (T, 1, Y, X) array as one plane); cli_inputs.plane_axis now passes --z to the labels too and
    `--z 2` fails: 'Z plane 2 is outside the stack's 1 planes (0..0)'."""
    tifffile = pytest.importorskip("tifffile")
    from napari_vos.cli import main

    T, Z, H, W = 4, 3, 24, 24
    rng = np.random.default_rng(0)
    vid = (rng.random((T, Z, H, W)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "v.tif", vid, imagej=True, metadata={"axes": "TZYX"})
    lab = np.zeros((T, 1, H, W), np.uint8)
    lab[0, 0, 5:12, 5:12] = 1
    tifffile.imwrite(tmp_path / "l.tif", lab)
    rc = main(["propagate", str(tmp_path / "v.tif"), str(tmp_path / "l.tif"), "-o", str(tmp_path / "o.tif"),
               "--z", "2", "--method", "flow", "--device", "cpu"])
    assert rc == 0
    assert tifffile.imread(tmp_path / "o.tif").shape == (T, H, W)


# -- 3: bench --sweep --option max_side=... -------------------------------------------------------
def test_bench_sweep_refuses_a_flag_option_before_running_its_points(tmp_path):
    """e80a27c refuses --option max_side=... for bench (use --max-side), but only in the single-run
    path: with --sweep every point is started as its own process, each fails with that error, and
    the command prints one error row per point (27 processes with the default grid)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(Path(__import__("napari_vos").__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-m", "napari_vos.cli", "bench", "--method", "flow", "--device", "cpu",
                        "--sweep", "--sweep-sizes", "32x32", "--sweep-objects", "1", "--sweep-frames", "3",
                        "--warmup", "0", "--option", "max_side=64"], capture_output=True, text=True, env=env,
                       timeout=300, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "bench: 32x32" not in r.stdout + r.stderr  # refused before any point ran


# -- 4: the labels choice does not move on after a round when "none" was once picked by hand -----
@needs_display
def test_labels_choice_moves_on_when_none_was_picked_before_the_combo_fell_back_to_an_output(make_napari_viewer,
                                                                                            qtbot):
    """f316155 moves the pick when it is None or the run's labels; a pick of "none" that the
    combo no longer shows (a method needing labels: `_labels_choice_for` falls back to the first
    layer, here the earlier output) keeps the pick at NO_LABELS, so after the correction round the
    combo shows the old output again and the next round ignores the correction made in the new one."""
    from napari_vos._widgets.propagate_widget import NO_LABELS

    vid, gt = two_disks()
    viewer = make_napari_viewer()
    viewer.add_image(vid, name="video")
    viewer.add_labels(first_frame_only(gt), name="painted")
    widget = menu_docked_widget(viewer, direction="forward")
    viewer.dims.set_current_step(0, 0)

    def run():
        widget.propagate_button.click()
        wait_done(qtbot, widget, timeout=60_000)

    run()
    a = viewer.layers["painted propagated (flow)"]
    viewer.layers.remove("painted")
    widget.labels_combo.setCurrentText(NO_LABELS)  # picked by hand once
    viewer.add_points(name="pts")  # a layer event refreshes the combo: it falls back to the output
    assert widget.labels_combo.currentText() == a.name
    a.data[3][a.data[3] == 2] = 0
    viewer.dims.set_current_step(0, 3)
    widget.all_painted.setChecked(False)
    run()
    b = viewer.layers["painted propagated (flow) [1]"]
    assert widget.labels_combo.currentText() == b.name, widget.status.text()


# -- 5: --zero-shot and --option zero_shot=false: the option still silently wins in propagate -----
def test_propagate_refuses_zero_shot_flag_and_option_together(tmp_path, monkeypatch, capsys):
    """e80a27c refuses an --option for a setting the command has a flag for (max_side, min_side,
    channels) 'instead of the option silently winning', but not zero_shot: cli._propagate_files
    updates the options with --zero-shot's {zero_shot: True} and then with the --option pairs, so
    `--zero-shot --option zero_shot=false` runs the one-shot configuration without a word (demo,
    which merges the other way round, lets the flag win)."""
    tifffile = pytest.importorskip("tifffile")
    import napari_vos.session as session_module
    from napari_vos.cli import main

    seen = {}

    class Stop(Exception):
        pass

    def fake(*args, **kwargs):
        seen.update(kwargs)
        raise Stop("stopped before the run")

    monkeypatch.setattr(session_module, "annotated_session", fake)
    vid = np.zeros((3, 16, 16), np.uint8)
    tifffile.imwrite(tmp_path / "v.tif", vid)
    lab = np.zeros((16, 16), np.uint8)
    lab[4:8, 4:8] = 1
    tifffile.imwrite(tmp_path / "l.tif", lab)
    try:
        rc = main(["propagate", str(tmp_path / "v.tif"), str(tmp_path / "l.tif"), "-o", str(tmp_path / "o.tif"),
                   "--method", "rvos", "--device", "cpu", "--zero-shot", "--option", "zero_shot=false"])
    except Stop:
        rc = None
    assert rc == 2 and "--zero-shot" in capsys.readouterr().err, seen.get("zero_shot")
