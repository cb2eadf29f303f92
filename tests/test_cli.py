"""The napari-vos command: TIFF in/TIFF out propagation, clear errors, weights listing."""
import json

import numpy as np
import pytest
import tifffile

from napari_vos.cli import main
from napari_vos.data.writers import read_tiff_provenance


def test_propagate_tiff_in_tiff_out(tmp_path, square_video, random_frtm_checkpoint, capsys):
    frames, truth = square_video
    tifffile.imwrite(tmp_path / "video.tif", frames)
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    out = tmp_path / "out.tif"
    code = main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(out),
                 "--checkpoint", random_frtm_checkpoint, "--device", "cpu"])
    assert code == 0
    result = tifffile.imread(out)
    assert result.shape == truth.shape and np.array_equal(result[0], truth[0])
    assert "wrote" in capsys.readouterr().out


@pytest.mark.real_working_size
@pytest.mark.parametrize("flag, expected", [(["--min-side", "80"], [80, 120]), (["--min-side", "0"], [64, 96])])
def test_propagate_min_side_sets_the_working_resolution(tmp_path, square_video, random_frtm_checkpoint, flag, expected):
    frames, truth = square_video
    tifffile.imwrite(tmp_path / "video.tif", frames[:2])
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    code = main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(tmp_path / "o.tif"),
                 "--checkpoint", random_frtm_checkpoint, "--device", "cpu", *flag])
    assert code == 0 and read_tiff_provenance(tmp_path / "o.tif")["options"]["work_size"] == expected


def test_propagate_passes_method_options_into_the_provenance(tmp_path, square_video):
    frames, truth = square_video
    tifffile.imwrite(tmp_path / "video.tif", frames)
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    out = tmp_path / "out.tif"
    assert main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(out),
                 "--method", "flow", "--device", "cpu", "--option", "flow_side=48", "--option", 'flow="tvl1"']) == 0
    provenance = read_tiff_provenance(out)
    assert provenance["options"]["flow_side"] == 48 and provenance["options"]["flow"] == "tvl1"


def test_propagate_reports_bad_input_without_traceback(tmp_path, square_video, random_frtm_checkpoint, capsys):
    frames, truth = square_video
    tifffile.imwrite(tmp_path / "video.tif", frames)
    tifffile.imwrite(tmp_path / "labels.tif", np.zeros((10, 10), np.uint8))
    code = main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o",
                 str(tmp_path / "o.tif"), "--checkpoint", random_frtm_checkpoint])
    assert code == 2
    assert "must match the image" in capsys.readouterr().err


def test_missing_checkpoint_is_a_clear_error(tmp_path, square_video, capsys):
    frames, truth = square_video
    tifffile.imwrite(tmp_path / "video.tif", frames)
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    code = main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o",
                 str(tmp_path / "o.tif"), "--checkpoint", str(tmp_path / "none.safetensors")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in ("propagate", "demo", "train", "weights"):
        assert command in text


def test_demo_scores_the_builtin_sample_and_writes_json(tmp_path, capsys):
    import json

    out = tmp_path / "demo.json"
    assert main(["demo", "--method", "flow", "--device", "cpu", "--json", str(out)]) == 0
    assert "start_seconds" in json.loads(out.read_text())  # the wait before the first frame, apart from fps
    record = json.loads(out.read_text())
    assert set(record) >= {"method", "checkpoint", "J_mean", "F_mean", "JF_mean", "fps"}
    assert record["method"] == "flow" and record["checkpoint"] is None
    assert 0.0 <= record["J_mean"] <= 1.0 and 0.0 <= record["JF_mean"] <= 1.0 and record["fps"] > 0
    assert abs(record["JF_mean"] - (record["J_mean"] + record["F_mean"]) / 2) < 1e-9
    assert "J&F=" in capsys.readouterr().out


def test_demo_passes_method_options_and_refuses_unknown_ones(tmp_path, capsys):
    import json

    out = tmp_path / "demo.json"
    assert main(["demo", "--method", "flow", "--sample", "cells", "--device", "cpu", "--option", "flow_side=64",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["options"] == {"flow_side": 64}
    capsys.readouterr()
    assert main(["demo", "--method", "flow", "--device", "cpu", "--option", "flow_sid=64"]) == 2
    assert "unknown option(s) flow_sid (did you mean flow_side?); flow takes" in capsys.readouterr().err
    assert main(["demo", "--method", "frtm", "--device", "cpu", "--checkpoint", str(tmp_path / "none.safetensors")]) == 2
    err = capsys.readouterr().err  # the refusal alone: no progress bar drawn before it
    assert err.startswith("napari-vos demo: error: checkpoint file") and "frame/s" not in err


def test_demo_precision_is_passed_and_recorded(tmp_path, capsys):
    import json

    from napari_vos.nn.precision import resolve_precision
    import torch

    out = tmp_path / "demo.json"
    assert main(["demo", "--method", "frtm", "--device", "cpu", "--frames", "3", "--precision", "bf16",
                 "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["precision"] == "bf16" and record["options"] == {"precision": "bf16"}
    assert main(["demo", "--method", "frtm", "--device", "cpu", "--frames", "3", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["precision"] == resolve_precision("auto", torch.device("cpu")) and record["options"] == {}
    # flow runs no network: it computes in fp32 whatever is asked, and says so
    assert main(["demo", "--method", "flow", "--device", "cpu", "--frames", "3", "--precision", "bf16",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["precision"] == "fp32"
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["demo", "--method", "flow", "--precision", "fp8"])
    assert "invalid choice: 'fp8'" in capsys.readouterr().err


def test_demo_frames_scores_only_the_first_frames(tmp_path, capsys):
    import json

    out = tmp_path / "demo.json"
    assert main(["demo", "--method", "flow", "--device", "cpu", "--frames", "4", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["frames"] == 4
    assert main(["demo", "--method", "flow", "--device", "cpu", "--frames", "1"]) == 2  # a user's error, not a bug
    assert "--frames must be at least 3" in capsys.readouterr().err


def test_train_command_exports_at_every_save_with_worker_processes(tmp_path, capsys):
    from safetensors import safe_open

    out, export = tmp_path / "run", tmp_path / "frtm.safetensors"
    code = main(["train", "frtm", "--size", "96x64", "--batch-size", "1", "--steps", "3", "--save-every", "1", "--log-every", "1",
                 "--train-backbone-from", "conv4", "--workers", "1", "--lr-drop-at", "0.34",
                 "--out", str(out), "--export", str(export)])
    assert code == 0
    printed = capsys.readouterr().out
    assert all(f"at step {s}" in printed for s in (1, 2, 3))
    with safe_open(str(export), "pt") as f:
        assert f.metadata()["step"] == "3" and f.metadata()["method"] == "frtm"
        assert f.metadata()["train_lr"] == "0.001"  # no --lr: FRTM's own rate, recorded
    # the rate each step trained at: dropped 10x after the first (0.34 of 3 steps; the default 0.67 is 2)
    lr = [json.loads(x)["lr"] for x in (out / "log.jsonl").read_text().splitlines()]
    assert lr == pytest.approx([1e-3, 1e-4, 1e-4])


def test_train_workers_default_to_none_on_cpu_and_to_spare_cores_on_a_gpu(monkeypatch):
    from napari_vos import cli_train

    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert cli_train._train_workers(None, "cpu") == 0
    assert cli_train._train_workers(None, "cuda") == 12 and cli_train._train_workers(None, "cuda:1") == 12
    assert cli_train._train_workers(3, "cuda") == 3 and cli_train._train_workers(0, "cuda") == 0
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert cli_train._train_workers(None, "cuda") == 1


def test_propagate_reads_an_imagej_hyperstack_and_keeps_its_calibration(tmp_path, square_video):
    """Fiji saves channels before Y, X (TCYX); the labels come back as T frames at the image's scale."""
    from napari_vos.data.calibration import read_tiff_calibration
    from napari_vos.data.writers import read_tiff_provenance

    frames, truth = square_video
    grey = frames[..., 0]
    two_channels = np.stack([grey, 255 - grey], axis=1)  # (T, C, Y, X)
    tifffile.imwrite(tmp_path / "video.tif", two_channels, imagej=True, resolution=(1 / 0.65, 1 / 0.65),
                     metadata={"axes": "TCYX", "unit": "micron", "finterval": 5.0})
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    out = tmp_path / "out.tif"
    assert main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(out),
                 "--method", "flow", "--device", "cpu", "--channels", "0"]) == 0
    result = tifffile.imread(out)
    assert result.shape == truth.shape and np.array_equal(result[0], truth[0])
    cal = read_tiff_calibration(out)
    assert cal.unit == "µm" and cal.pixel_size == pytest.approx((0.65, 0.65), rel=1e-4) and cal.frame_interval == 5.0
    assert read_tiff_provenance(out)["method"] == "flow"


def test_propagate_picks_a_z_plane_of_a_3d_time_lapse(tmp_path, square_video, capsys):
    frames, truth = square_video
    grey = frames[..., 0]
    stack = np.stack([np.zeros_like(grey), grey, np.zeros_like(grey)], axis=1)  # (T, Z, Y, X)
    tifffile.imwrite(tmp_path / "tzyx.tif", stack, imagej=True, metadata={"axes": "TZYX"})
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    args = ["propagate", str(tmp_path / "tzyx.tif"), str(tmp_path / "labels.tif"), "--method", "flow", "--device", "cpu"]
    assert main([*args, "-o", str(tmp_path / "a.tif")]) == 2
    assert "3D + time" in capsys.readouterr().err
    assert main([*args, "-o", str(tmp_path / "b.tif"), "--z", "1"]) == 0
    result = tifffile.imread(tmp_path / "b.tif")
    overlap = [(result[t] == 1)[truth[t] == 1].mean() for t in range(len(truth))]
    assert min(overlap) > 0.9  # the square moves in plane 1 only (plane 0 gives 0.17 by the last frame)
    assert main([*args, "-o", str(tmp_path / "c.tif"), "--z", "3"]) == 2
    assert "outside the stack's 3 planes" in capsys.readouterr().err


def test_propagate_a_folder_of_frames_into_palette_pngs(tmp_path, square_video):
    """Natural-video users keep frames as JPEG/PNG files and DAVIS masks as palette PNGs."""
    from PIL import Image

    from napari_vos.data.sequence import read_mask

    frames, truth = square_video
    (tmp_path / "frames").mkdir()
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / "frames" / f"{t:05d}.png")
    Image.fromarray((truth[0] * 255).astype(np.uint8)).save(tmp_path / "mask.png")  # a DAVIS 2016 0/255 mask
    out = tmp_path / "result"
    assert main(["propagate", str(tmp_path / "frames"), str(tmp_path / "mask.png"), "-o", str(out),
                 "--method", "flow", "--device", "cpu"]) == 0
    written = sorted(out.glob("*.png"))
    assert [p.name for p in written] == [f"{t:05d}.png" for t in range(len(truth))]
    assert np.array_equal(read_mask(written[0]), truth[0])
    assert (read_mask(written[-1]) == 1)[truth[-1] == 1].mean() > 0.9
    assert json.loads((out / ".napari_vos.json").read_text())["method"] == "flow"


def test_propagate_refuses_ids_a_png_cannot_hold_before_running(tmp_path, square_video, capsys):
    frames, truth = square_video
    tifffile.imwrite(tmp_path / "video.tif", frames)
    tifffile.imwrite(tmp_path / "labels.tif", (truth[0] * 300).astype(np.uint16))
    assert main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o",
                 str(tmp_path / "pngs"), "--method", "flow", "--device", "cpu"]) == 2
    assert "palette PNGs" in capsys.readouterr().err and not (tmp_path / "pngs").exists()


def test_propagate_writes_the_maps_at_their_own_pixel_size(tmp_path, square_video, random_frtm_checkpoint):
    from napari_vos.data.calibration import read_tiff_calibration

    frames, truth = square_video  # 64 x 96 frames; FRTM's target scores at stride 16: 4 x 6
    tifffile.imwrite(tmp_path / "video.tif", frames[..., 0], imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "TYX", "unit": "um"})
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    assert main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(tmp_path / "o.tif"),
                 "--checkpoint", random_frtm_checkpoint, "--device", "cpu", "--maps", str(tmp_path / "maps")]) == 0
    path = tmp_path / "maps" / "target_scores.tif"
    stack = tifffile.imread(path)
    assert stack.dtype == np.float32 and stack.shape == (len(truth), 4, 6)  # (T, K, h, w) with K = 1 squeezed
    assert np.abs(stack[1:]).max() > 0  # the computed frames hold the scores
    cal = read_tiff_calibration(path)
    assert cal.unit == "µm" and cal.pixel_size == pytest.approx((8.0, 8.0), rel=1e-3)  # 0.5 µm x 16
    record = read_tiff_provenance(path)
    assert record["map"] == "target_scores" and record["scale_in_image_pixels"] == [16.0, 16.0]


def test_propagate_prints_a_tip_for_many_small_cells_under_a_method_poor_on_cells(tmp_path, capsys):
    from conftest import phase_cells_video

    frames, labels = phase_cells_video(2, (256, 256), 9)
    tifffile.imwrite(tmp_path / "cells.tif", frames)
    painted = np.zeros_like(labels)
    painted[0] = labels[0]
    tifffile.imwrite(tmp_path / "labels.tif", painted)  # (T, Y, X): the first painted frame counts
    args = ["propagate", str(tmp_path / "cells.tif"), str(tmp_path / "labels.tif"), "-o", str(tmp_path / "out.tif"),
            "--method", "rgmp", "--device", "cpu"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "tip: 9 small objects" in err and "(here: --method rgmp --checkpoint rgmp-resnet18-cells)" in err
    assert main([*args, "--checkpoint", "rgmp-resnet18-cells"]) == 0
    assert "tip:" not in capsys.readouterr().err


def test_propagate_checks_the_output_before_the_run_and_reports_write_errors(tmp_path, square_video, capsys,
                                                                             monkeypatch):
    frames, truth = square_video
    tifffile.imwrite(tmp_path / "video.tif", frames)
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    (tmp_path / "a_file").write_text("x")
    import napari_vos.session as session

    def never(*args, **kwargs):  # the run must not start when the output cannot be written
        raise AssertionError("propagated before checking the output")

    monkeypatch.setattr(session, "annotated_session", never)  # what the CLI builds its run with
    for out in ("a_file/labels.tif", "a_file/pngs"):
        code = main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o",
                     str(tmp_path / out), "--method", "flow", "--device", "cpu"])
        assert code == 2 and "cannot write to" in capsys.readouterr().err
    code = main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o",
                 str(tmp_path / "o.tif"), "--method", "flow", "--device", "cpu", "--channels", "a,b"])
    assert code == 2 and "--channels takes comma-separated channel numbers" in capsys.readouterr().err


def test_a_failed_command_takes_away_the_empty_output_folders_its_checks_made(tmp_path, square_video, capsys):
    """The output's folder is made before the run (so a folder that cannot be made is said at once); a mistake
    found after that (here a --frame outside the stack) left it behind, empty. A folder that was there stays."""
    frames, truth = square_video
    tifffile.imwrite(tmp_path / "video.tif", frames)
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    (tmp_path / "there").mkdir()
    for out in ("pngs", "new/deeper/o.tif", "there/pngs", "there"):
        code = main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(tmp_path / out),
                     "--method", "flow", "--device", "cpu", "--frame", "99"])
        assert code == 2 and "outside" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.tif", "there", "video.tif"]
    assert not any((tmp_path / "there").iterdir())
    # a run that succeeds keeps its folder; the next command's failure does not take an earlier one's
    assert main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o",
                 str(tmp_path / "kept" / "o.tif"), "--method", "flow", "--device", "cpu"]) == 0
    (tmp_path / "kept" / "o.tif").unlink()
    assert main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o",
                 str(tmp_path / "pngs"), "--method", "flow", "--device", "cpu", "--frame", "99"]) == 2
    assert (tmp_path / "kept").is_dir() and not (tmp_path / "pngs").exists()


def test_labels_beyond_uint16_say_the_frame_interval_was_not_kept(tmp_path, square_video, capsys):
    frames, truth = square_video
    grey = frames if frames.ndim == 3 else np.ascontiguousarray(frames[..., 0])
    tifffile.imwrite(tmp_path / "video.tif", grey, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "TYX", "finterval": 3.0, "unit": "um"})
    tifffile.imwrite(tmp_path / "labels.tif", (truth[0] * 70000).astype(np.uint32))
    out = tmp_path / "o.tif"
    assert main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(out),
                 "--method", "flow", "--device", "cpu"]) == 0
    said = capsys.readouterr().out
    assert "kept the image's pixel size (0.5 x 0.5" in said and "no place for the frame interval" in said
    assert tifffile.imread(out).max() == 70000


def test_a_run_stopped_by_a_bad_frame_keeps_the_frames_before_it(tmp_path, capsys):
    from conftest import moving_square_video

    frames, truth = moving_square_video(n_frames=8)
    video = frames.astype(np.float32)
    video[5, 3, 3] = np.nan  # found only when the run reaches frame 5
    tifffile.imwrite(tmp_path / "video.tif", video, photometric="rgb")
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    out = tmp_path / "out.tif"
    code = main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(out),
                 "--method", "flow", "--device", "cpu", "--maps", str(tmp_path / "maps")])
    err = capsys.readouterr().err
    assert code == 2 and "frame 5 contains NaN" in err and "stopped after 5 of 8 frames" in err
    result = tifffile.imread(out)
    assert all(result[t].any() for t in range(5)) and not result[5:].any()
    provenance = read_tiff_provenance(out)
    assert provenance["complete"] is False and provenance["frames_segmented"] == "0-4"
    (written,) = (tmp_path / "maps").glob("*.tif")  # the maps of the finished frames too
    assert read_tiff_provenance(written)["frames_segmented"] == "0-4" and tifffile.imread(written)[1:5].any()


def test_an_interrupted_run_writes_what_it_finished(tmp_path, square_video, monkeypatch, capsys):
    from conftest import interrupt_reading_frame

    frames, truth = square_video
    tifffile.imwrite(tmp_path / "video.tif", frames)
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    interrupt_reading_frame(monkeypatch, 3)
    out = tmp_path / "out.tif"
    code = main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(out),
                 "--method", "flow", "--device", "cpu"])
    assert code == 130 and "stopped after 3 of 6 frames" in capsys.readouterr().err
    result = tifffile.imread(out)
    assert all(result[t].any() for t in range(3)) and not result[3:].any()
    assert read_tiff_provenance(out)["frames_segmented"] == "0-2"


def test_a_labels_stack_is_read_frame_by_frame_and_a_fully_painted_one_refused(tmp_path, square_video, capsys):
    from napari_vos.cli_inputs import read_labels
    from napari_vos.data.sequence import LazyFrames

    frames, truth = square_video
    tifffile.imwrite(tmp_path / "video.tif", frames)
    first_only = np.zeros_like(truth)
    first_only[0] = truth[0]
    tifffile.imwrite(tmp_path / "stack.tif", first_only)
    with read_labels(str(tmp_path / "stack.tif")) as read:
        assert isinstance(read, LazyFrames) and read[0].any()
    with pytest.raises(ValueError, match="closed"):  # the file is closed with the frames
        read[1]
    out = tmp_path / "out.tif"
    assert main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "stack.tif"), "-o", str(out),
                 "--method", "flow", "--device", "cpu"]) == 0
    assert tifffile.imread(out)[-1].any()
    tifffile.imwrite(tmp_path / "all.tif", truth)  # an earlier output: every frame painted
    assert main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "all.tif"), "-o", str(tmp_path / "o2.tif"),
                 "--method", "flow", "--device", "cpu"]) == 2
    assert "every frame of the labels stack is painted" in capsys.readouterr().err
    assert not (tmp_path / "o2.tif").exists()
