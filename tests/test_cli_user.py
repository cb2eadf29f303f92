"""`napari-vos propagate` as a user drives it (an audit's findings): many channels, two runs on one
output, a kill before the first frame, reused PNG folders, --option misuse, the output's record."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_vos.cli import main
from napari_vos.data.calibration import Calibration
from napari_vos.data.partial_labels import PartialLabels, partial_path
from napari_vos.data.writers import davis_palette, read_tiff_provenance


@pytest.fixture
def inputs(tmp_path, square_video):
    frames, truth = square_video
    tifffile.imwrite(tmp_path / "video.tif", frames)
    tifffile.imwrite(tmp_path / "labels.tif", (truth[0] > 0).astype(np.uint8))
    return tmp_path, [str(tmp_path / "video.tif"), str(tmp_path / "labels.tif")]


def _flow(*args):
    return main(["propagate", *args, "--method", "flow", "--device", "cpu"])


def test_channels_pick_from_a_stack_of_five(tmp_path, square_video, capsys):
    frames, truth = square_video
    grey = frames[..., 0]
    tifffile.imwrite(tmp_path / "five.tif", np.stack([grey, 255 - grey, grey, grey // 2, grey], axis=1),
                     imagej=True, metadata={"axes": "TCYX"})
    tifffile.imwrite(tmp_path / "labels.tif", (truth[0] > 0).astype(np.uint8))
    out = tmp_path / "out.tif"
    assert _flow(str(tmp_path / "five.tif"), str(tmp_path / "labels.tif"), "-o", str(out), "--channels", "0,1,4") == 0
    record = read_tiff_provenance(out)
    assert record["options"]["channels"] == [0, 1, 4] and tifffile.imread(out)[1:].any()


def test_a_second_run_on_the_same_output_is_told_the_first_is_running(inputs, capsys):
    folder, args = inputs
    out = folder / "out.tif"
    running = PartialLabels(out, (6, 64, 96), 1, Calibration(), {"method": "flow"})  # a run in progress
    assert _flow(*args, "-o", str(out)) == 2
    err = capsys.readouterr().err
    assert f"another napari-vos run is writing {out} now" in err and partial_path(out).exists()
    running._lock.close()  # the first run dies without cleaning up: now it is a left-over
    assert _flow(*args, "-o", str(out)) == 2
    assert "did not write its output (it was killed" in capsys.readouterr().err


def test_a_partial_file_deleted_mid_run_loses_nothing(inputs, monkeypatch):
    from napari_vos.data.frames import FrameSource

    folder, args = inputs
    out = folder / "out.tif"
    real = FrameSource.tensor

    def delete_at_3(self, index, *a, **k):
        if index == 3:
            partial_path(out).unlink()  # as a user told "move or delete it" might
        return real(self, index, *a, **k)

    monkeypatch.setattr(FrameSource, "tensor", delete_at_3)
    assert _flow(*args, "-o", str(out)) == 0
    assert all(tifffile.imread(out)[t].any() for t in range(6))


_TERM_BEFORE_FIRST_FRAME = textwrap.dedent("""
    import os, signal, sys
    from napari_vos.session import Session
    from napari_vos.cli import main

    real = Session.annotate

    def term_then_annotate(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # a cluster's time limit, before the first frame
        return real(self, *args, **kwargs)

    Session.annotate = term_then_annotate
    sys.exit(main(sys.argv[1:]))
""")


_TERM_DURING_SYNTH = textwrap.dedent("""
    import os, signal, sys
    from napari_vos.data import synthetic
    from napari_vos.cli import main

    def term(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the command")

    synthetic.write_synthetic_set = term
    sys.exit(main(sys.argv[1:]))
""")


def test_every_command_killed_exits_130_as_after_ctrl_c(tmp_path):
    """`kill` (SIGTERM) ends the measurement commands as Ctrl+C does: a one-line message and exit
    130, not death by the signal (143) or a traceback."""
    script = tmp_path / "term.py"
    script.write_text(_TERM_DURING_SYNTH)
    run = subprocess.run([sys.executable, str(script), "synth", "--out", str(tmp_path / "set"), "--n", "1"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 130, (run.returncode, run.stderr)
    assert "napari-vos synth: interrupted" in run.stderr and "Traceback" not in run.stderr


def test_a_kill_before_the_first_frame_leaves_nothing_behind(inputs):
    folder, args = inputs
    script = folder / "term.py"
    script.write_text(_TERM_BEFORE_FIRST_FRAME)
    out = folder / "out.tif"
    run = subprocess.run([sys.executable, str(script), "propagate", *args, "-o", str(out), "--method", "flow",
                          "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 130, run.stderr
    assert "interrupted before the first frame was segmented; nothing was written" in run.stderr
    assert "Traceback" not in run.stderr and not out.exists() and not partial_path(out).exists()


def test_a_png_folder_is_new_empty_or_an_earlier_output(inputs, square_video, capsys):
    folder, args = inputs
    frames, truth = square_video
    longer = folder / "longer.tif"
    tifffile.imwrite(longer, np.concatenate([frames, frames]))
    pngs = folder / "pngs"
    assert _flow(str(longer), args[1], "-o", str(pngs)) == 0
    assert len(list(pngs.glob("*.png"))) == 12
    assert _flow(*args, "-o", str(pngs)) == 0  # the earlier output's frames 6-11 must not stay
    assert sorted(p.name for p in pngs.glob("*.png")) == [f"{t:05d}.png" for t in range(6)]
    other = folder / "frames"
    other.mkdir()
    Image.fromarray(frames[0]).save(other / "frame0.png")
    assert _flow(*args, "-o", str(other)) == 2
    assert "holds files napari-vos did not write (frame0.png" in capsys.readouterr().err
    assert _flow(*args, "-o", str(folder / "result.png")) == 2
    assert ".png looks like a file name" in capsys.readouterr().err and not (folder / "result.png").exists()


@pytest.mark.parametrize("option, said", [("device=cuda", "use --device"), ("checkpoint=x", "use --checkpoint"),
                                          ("out=1", "cannot be set from the command line"),
                                          ("direction=forward", "use --direction")])
def test_option_refuses_what_a_flag_sets(inputs, option, said, capsys):
    folder, args = inputs
    assert _flow(*args, "-o", str(folder / "o.tif"), "--option", option) == 2
    assert said in capsys.readouterr().err


def test_option_keys_may_have_spaces_around_them(inputs):
    folder, args = inputs
    out = folder / "o.tif"
    assert _flow(*args, "-o", str(out), "--option", " flow_side = 32") == 0
    assert read_tiff_provenance(out)["options"]["flow_side"] == 32


def test_the_record_says_where_the_labels_came_from(inputs, square_video):
    folder, args = inputs
    frames, truth = square_video
    stack = np.zeros(truth.shape, np.uint8)
    stack[2] = truth[2] > 0
    tifffile.imwrite(folder / "stack.tif", stack)
    out = folder / "o.tif"
    assert _flow(args[0], str(folder / "stack.tif"), "-o", str(out), "--direction", "forward") == 0
    record = read_tiff_provenance(out)
    assert record["direction"] == "forward" and record["start_frame"] == 2 and record["frames_segmented"] == "2-5"
    assert record["inputs"] == {"video": str((folder / "video.tif").resolve()),
                                "labels": str((folder / "stack.tif").resolve())}
    pngs = folder / "pngs"
    assert _flow(*args, "-o", str(pngs)) == 0
    assert json.loads((pngs / ".napari_vos.json").read_text())["frames_segmented"] == "0-5"


def test_nothing_to_propagate_is_an_error(inputs, capsys):
    folder, args = inputs
    out = folder / "o.tif"
    assert _flow(*args, "-o", str(out), "--direction", "backward") == 2
    err = capsys.readouterr().err
    assert "nothing to propagate: backward from frame 0 of a 6-frame stack" in err and "--direction both" in err
    assert not out.exists() and not partial_path(out).exists()
    tifffile.imwrite(folder / "one.tif", tifffile.imread(folder / "video.tif")[:1])
    assert _flow(str(folder / "one.tif"), args[1], "-o", str(out)) == 2
    err = capsys.readouterr().err
    assert f"the video {folder / 'one.tif'} has a single frame" in err and "--direction" not in err and not out.exists()


def test_a_palette_png_keeps_id_255_and_a_singleton_axis_tiff_is_one_frame(inputs, square_video, capsys):
    folder, args = inputs
    frames, truth = square_video
    ids = np.zeros(truth[0].shape, np.uint8)
    ids[:, :20], ids[:, 40:60], ids[truth[0] > 0] = 1, 2, 255
    png = Image.fromarray(ids, mode="P")
    png.putpalette(davis_palette().ravel().tolist())
    png.save(folder / "ids.png")
    out = folder / "o.tif"
    assert _flow(args[0], str(folder / "ids.png"), "-o", str(out)) == 0
    assert "3 object(s) propagated" in capsys.readouterr().out and 255 in tifffile.imread(out)[3]
    tifffile.imwrite(folder / "one.tif", (truth[0] > 0).astype(np.uint8)[None])
    assert _flow(args[0], str(folder / "one.tif"), "-o", str(out)) == 0


def test_missing_or_folder_labels_are_named(inputs, capsys):
    folder, args = inputs
    assert _flow(args[0], str(folder / "nope.png"), "-o", str(folder / "o.tif")) == 2
    assert "labels" in (err := capsys.readouterr().err) and "does not exist" in err
    assert _flow(args[0], str(folder), "-o", str(folder / "o.tif")) == 2
    assert "is a folder; give one mask image" in capsys.readouterr().err


def test_a_fine_tuning_method_reports_its_fine_tuning(inputs, capsys):
    folder, args = inputs
    assert main(["propagate", *args, "-o", str(folder / "o.tif"), "--method", "osvos_at", "--device", "cpu",
                 "--max-side", "64", "--min-side", "0", "--option", "finetune_iterations=3"]) == 0
    err = capsys.readouterr().err
    assert "fine-tuning on the annotated frame: 1/3" in err and "fine-tuning on the annotated frame: 3/3" in err


def test_measurement_commands_refuse_what_would_silently_do_nothing(tmp_path, capsys):
    assert main(["eval", "--method", "flow", "--data", str(tmp_path), "--save-predictions"]) == 2
    assert "--save-predictions writes OUT/predictions" in capsys.readouterr().err
    assert main(["bench", "--method", "flow", "--device", "cpu", "--warmup", "-3"]) == 2
    assert "--warmup is a number of frames" in capsys.readouterr().err
    assert main(["bench", "--method", "flow", "--device", "cpu", "--plot", str(tmp_path / "p.png")]) == 2
    assert "--plot draws a sweep's points" in capsys.readouterr().err
    assert main(["weights", "--method", "nosuch"]) == 2
    assert "unknown method 'nosuch'" in capsys.readouterr().err
    assert main(["weights", "--method", "flow"]) == 0 and "flow uses no weights" in capsys.readouterr().out
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(["demo", "--method", "flow", "--device", "cpu", "--json", str(blocked / "demo.json")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_every_option_of_the_user_commands_says_what_it_does():
    from napari_vos.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    silent = [f"{name} {action.option_strings or action.dest}" for name in ("propagate", "demo", "eval", "bench",
                                                                         "weights", "train")
              for action in commands[name]._actions if not action.help]
    assert silent == []


def test_a_mask_left_in_the_frames_folder_is_pointed_out(tmp_path, square_video, capsys):
    frames, truth = square_video
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"frame{t}.png")
    Image.fromarray(((truth[0] > 0) * 255).astype(np.uint8)).save(folder / "mask.png")
    # a grey mask among colour frames: pointed out, and refused as a frame (its first 3 columns were read
    # as its colours until session 34)
    assert _flow(str(folder), str(folder / "mask.png"), "-o", str(tmp_path / "o.tif")) == 2
    err = capsys.readouterr().err
    assert "note: mask.png in" in err and f"frame {len(frames)} is grey uint8 but the stack's frames are 3-channel" in err


def test_video_and_labels_given_the_other_way_round_are_named(tmp_path, square_video, capsys):
    frames, truth = square_video
    tifffile.imwrite(tmp_path / "one.tif", (truth[0] > 0).astype(np.uint8))
    tifffile.imwrite(tmp_path / "stack.tif", (truth > 0).astype(np.uint8))
    assert _flow(str(tmp_path / "one.tif"), str(tmp_path / "stack.tif"), "-o", str(tmp_path / "o.tif")) == 2
    assert "are VIDEO and LABELS the other way round?" in capsys.readouterr().err


def test_a_stack_of_slices_without_time_is_pointed_out(tmp_path, square_video, capsys):
    frames, truth = square_video
    tifffile.imwrite(tmp_path / "zyx.tif", frames[..., 0], imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(tmp_path / "labels.tif", (truth[0] > 0).astype(np.uint8))
    assert _flow(str(tmp_path / "zyx.tif"), str(tmp_path / "labels.tif"), "-o", str(tmp_path / "o.tif")) == 0
    assert "has no time axis (axes ZYX): propagating along Z" in capsys.readouterr().err


def test_keep_other_frames_reruns_a_corrected_output_from_its_frame(tmp_path):
    """The command line's counterpart of the widget's unticked 'use every painted frame': an earlier
    output (every frame painted) with frame 3 corrected is re-run forward from frame 3, frames 0-2 kept."""
    import tifffile

    from napari_vos.cli import main

    video = np.zeros((6, 48, 64), np.uint8)
    earlier = np.zeros((6, 48, 64), np.uint16)
    for t in range(6):
        video[t, 10:26, 4 + 3 * t:20 + 3 * t] = 200
        earlier[t, 10:26, 4 + 3 * t:20 + 3 * t] = 1
    earlier[1, 0:4, 0:4] = 2  # an earlier frame's oddity, which the re-run must leave alone
    corrected = earlier.copy()
    corrected[3, 10:26, 13:29] = 5  # frame 3 relabelled as object 5
    tifffile.imwrite(tmp_path / "video.tif", video)
    tifffile.imwrite(tmp_path / "corrected.tif", corrected)
    out = tmp_path / "out.tif"
    args = ["propagate", str(tmp_path / "video.tif"), str(tmp_path / "corrected.tif"), "-o", str(out),
            "--method", "flow", "--device", "cpu", "--frame", "3", "--direction", "forward"]
    assert main(args) == 2  # every frame painted: refused without the option
    assert main([*args, "--keep-other-frames"]) == 0
    result = tifffile.imread(out)
    np.testing.assert_array_equal(result[:3], corrected[:3])
    np.testing.assert_array_equal(result[3], corrected[3])
    assert set(np.unique(result[4:])) <= {0, 5} and (result[4:] == 5).any()
    no_frame = [a for a in args if a not in ("--frame", "3")]
    assert main([*no_frame, "--keep-other-frames"]) == 2  # which frame was corrected must be said
