"""The command line and the measurement commands, from a mutation audit: each test pins a behaviour
that a change to cli.py, evaluation/cli_measure.py, runner.py, bench.py or scoring.py could break
unseen by the other tests (options passed through, checks made before the run, exit codes, the
fields of the JSON records). Small generated inputs, the weight-free flow method, CPU."""
from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tifffile
from PIL import Image

pytest.importorskip("torch")

from conftest import moving_square_video  # noqa: E402

from napari_vos.cli import main  # noqa: E402
from napari_vos.data.writers import read_tiff_provenance, write_png_labels  # noqa: E402


def _not_auto_precision() -> str:
    """A precision that ``--precision auto`` does not pick on this CPU, so passing it on shows."""
    import torch

    from napari_vos.nn.precision import resolve_precision

    return "bf16" if resolve_precision("auto", torch.device("cpu")) == "fp32" else "fp32"


@pytest.fixture
def tiffs(tmp_path):
    """A 6-frame 64 x 96 grey video with a moving square and its frame-0 labels, as TIFFs."""
    frames, truth = moving_square_video(n_frames=6)
    grey = np.ascontiguousarray(frames[..., 0])
    tifffile.imwrite(tmp_path / "video.tif", grey)
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    return tmp_path / "video.tif", tmp_path / "labels.tif", truth


def _propagate(video, labels, out, *extra):
    return main(["propagate", str(video), str(labels), "-o", str(out), "--method", "flow", "--device", "cpu", *extra])


# -- propagate: options reach the run -----------------------------------------------------------
def test_propagate_max_side_and_precision_reach_the_run(tiffs, tmp_path):
    video, labels, _ = tiffs
    precision = _not_auto_precision()
    out = tmp_path / "o.tif"
    assert main(["propagate", str(video), str(labels), "-o", str(out), "--method", "frtm", "--device", "cpu",
                 "--max-side", "48", "--precision", precision]) == 0  # a method with a network: flow keeps fp32
    options = read_tiff_provenance(out)["options"]
    assert options["max_side"] == 48 and options["work_size"] == [32, 48]  # 64 x 96 frames, longer side 48
    assert options["precision"] == precision


def test_propagate_frame_names_the_annotated_frame_of_a_one_frame_labels_file(tiffs, tmp_path):
    video, _, truth = tiffs
    tifffile.imwrite(tmp_path / "frame3.tif", truth[3].astype(np.uint8))
    out = tmp_path / "o.tif"
    assert _propagate(video, tmp_path / "frame3.tif", out, "--frame", "3") == 0
    result = tifffile.imread(out)
    assert np.array_equal(result[3], truth[3]) and read_tiff_provenance(out)["annotated_frames"] == [3]


def test_propagate_takes_the_labels_file_after_an_option(tiffs, tmp_path, capsys):
    """`propagate VIDEO --frame 3 LABELS -o OUT`: argparse alone leaves LABELS over ("unrecognized")."""
    video, _, truth = tiffs
    tifffile.imwrite(tmp_path / "frame3.tif", truth[3].astype(np.uint8))
    out = tmp_path / "o.tif"
    assert main(["propagate", str(video), "--frame", "3", str(tmp_path / "frame3.tif"), "-o", str(out),
                 "--method", "flow", "--device", "cpu"]) == 0
    assert read_tiff_provenance(out)["annotated_frames"] == [3]
    with pytest.raises(SystemExit):  # a third positional is still refused, by the subcommand's own parser
        main(["propagate", str(video), str(tmp_path / "frame3.tif"), "extra.tif", "-o", str(out)])
    assert "napari-vos propagate: error: unrecognized arguments: extra.tif" in capsys.readouterr().err


def test_propagate_direction_forward_leaves_the_earlier_frames_empty(tiffs, tmp_path):
    video, _, truth = tiffs
    tifffile.imwrite(tmp_path / "frame2.tif", truth[2].astype(np.uint8))
    out = tmp_path / "o.tif"
    assert _propagate(video, tmp_path / "frame2.tif", out, "--frame", "2", "--direction", "forward") == 0
    result = tifffile.imread(out)
    assert not result[:2].any() and all(result[t].any() for t in range(2, 6))


def test_propagate_option_names_with_dashes_and_python_literals(tiffs, tmp_path):
    video, labels, _ = tiffs
    out = tmp_path / "o.tif"
    assert _propagate(video, labels, out, "--option", "flow-side=48", "--option", "flow='tvl1'") == 0
    options = read_tiff_provenance(out)["options"]
    assert options["flow_side"] == 48 and options["flow"] == "tvl1"


def test_propagate_z_is_refused_for_a_folder_of_frames(tmp_path, capsys):
    frames, truth = moving_square_video(n_frames=3)
    (tmp_path / "frames").mkdir()
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / "frames" / f"{t:05d}.png")
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    assert _propagate(tmp_path / "frames", tmp_path / "labels.tif", tmp_path / "o.tif", "--z", "1") == 2
    assert "--z picks a plane of a TIFF stack" in capsys.readouterr().err
    assert not (tmp_path / "o.tif").exists()


def test_propagate_id_255_fits_palette_pngs(tiffs, tmp_path):
    video, _, truth = tiffs
    tifffile.imwrite(tmp_path / "l255.tif", (truth[0] * 255).astype(np.uint8))
    out = tmp_path / "pngs"
    assert _propagate(video, tmp_path / "l255.tif", out) == 0
    first = np.asarray(Image.open(out / "00000.png"))  # palette indices
    assert set(np.unique(first)) == {0, 255}


# -- propagate: output checks before the run, errors and exit codes -----------------------------
def test_an_unwritable_maps_folder_is_refused_before_anything_is_written(tiffs, tmp_path, capsys):
    video, labels, _ = tiffs
    (tmp_path / "a_file").write_text("x")
    out = tmp_path / "o.tif"
    assert _propagate(video, labels, out, "--maps", str(tmp_path / "a_file")) == 2
    assert "cannot write to" in capsys.readouterr().err
    assert not out.exists()


def test_a_maps_folder_whose_map_file_is_the_video_or_a_tiff_name_is_refused(tiffs, tmp_path, capsys):
    """A video named like a map (flow_magnitude.tif) inside --maps was written over mid-run, and
    `--maps x.tif` made a folder named x.tif."""
    video, labels, _ = tiffs
    maps = tmp_path / "maps"
    maps.mkdir()
    inside = maps / "flow_magnitude.tif"
    inside.write_bytes(video.read_bytes())
    before = inside.read_bytes()
    assert _propagate(inside, labels, tmp_path / "o.tif", "--maps", str(maps)) == 2
    assert "--maps " + str(maps / "flow_magnitude.tif") + " is the video file" in capsys.readouterr().err
    assert inside.read_bytes() == before and not (tmp_path / "o.tif").exists()
    assert _propagate(video, labels, tmp_path / "o.tif", "--maps", str(tmp_path / "scores.tif")) == 2
    assert "--maps takes a folder" in capsys.readouterr().err
    assert not (tmp_path / "scores.tif").exists()


def test_a_jpeg_mask_is_refused_with_what_to_give(tiffs, tmp_path, capsys):
    video, _, truth = tiffs
    Image.fromarray((truth[0] > 0).astype(np.uint8) * 255).save(tmp_path / "mask.jpg", quality=90)
    assert _propagate(video, tmp_path / "mask.jpg", tmp_path / "o.tif") == 2
    assert "is a JPEG: its lossy compression changes pixel values" in capsys.readouterr().err


def test_an_output_tiff_name_that_is_a_folder_is_refused(tiffs, tmp_path, capsys):
    video, labels, _ = tiffs
    (tmp_path / "taken.tif").mkdir()
    assert _propagate(video, labels, tmp_path / "taken.tif") == 2
    assert "it is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("which", ["video", "labels", "video by another name"])
def test_an_output_that_is_an_input_file_is_refused_and_the_input_kept(tiffs, tmp_path, capsys, which):
    video, labels, _ = tiffs
    target = labels if which == "labels" else video
    if which == "video by another name":
        (tmp_path / "same.tif").hardlink_to(video)
        out = tmp_path / "same.tif"
    else:
        out = target
    before = target.read_bytes()
    assert _propagate(video, labels, out) == 2
    role = "labels" if which == "labels" else "video"
    assert f"is the {role} file" in capsys.readouterr().err
    assert target.read_bytes() == before
    assert not list(tmp_path.glob("*.partial.tif"))


def test_propagate_closes_the_tiffs_it_read(tiffs, tmp_path):
    """The video and a labels stack are read frame by frame from open files; the command closes
    them (Windows moves or deletes no file that is still open), it does not leave them to the GC."""
    import gc
    import warnings

    video, _, truth = tiffs
    stack = tmp_path / "stack.tif"
    first_only = np.zeros_like(truth, dtype=np.uint8)
    first_only[0] = truth[0]
    tifffile.imwrite(stack, first_only)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        assert _propagate(video, stack, tmp_path / "o.tif") == 0
        gc.collect()
    left_open = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not [m for m in left_open if "video.tif" in m or "stack.tif" in m], left_open


def test_a_missing_labels_file_is_an_error_message_not_a_traceback(tiffs, tmp_path, capsys):
    video, _, _ = tiffs
    assert _propagate(video, tmp_path / "no_such_labels.tif", tmp_path / "o.tif") == 2
    assert "napari-vos propagate: error:" in capsys.readouterr().err


def test_a_failure_before_any_frame_is_segmented_writes_nothing(tmp_path, capsys):
    frames, truth = moving_square_video(n_frames=5)
    video = frames[..., 0].astype(np.float32)
    video[1, 3, 3] = np.nan  # the first frame after the annotated one
    tifffile.imwrite(tmp_path / "video.tif", video)
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    out = tmp_path / "o.tif"
    assert _propagate(tmp_path / "video.tif", tmp_path / "labels.tif", out, "--direction", "forward") == 2
    err = capsys.readouterr().err
    assert "frame 1 contains NaN" in err and "stopped after" not in err
    assert not out.exists()


def test_the_maps_record_says_where_each_map_pixel_sits(tiffs, tmp_path):
    video, labels, _ = tiffs
    assert _propagate(video, labels, tmp_path / "o.tif", "--max-side", "48", "--maps", str(tmp_path / "maps")) == 0
    (path,) = (tmp_path / "maps").glob("*.tif")
    record = read_tiff_provenance(path)
    # a 32 x 48 working frame for 64 x 96 pixels: a map pixel covers 2 x 2 image pixels, centred at 0.5
    assert record["scale_in_image_pixels"] == pytest.approx([2.0, 2.0])
    assert record["translate_in_image_pixels"] == pytest.approx([0.5, 0.5])


@pytest.fixture
def brighter(monkeypatch):
    import _zero_shot_method as zsm

    from napari_vos.methods import registry

    monkeypatch.setitem(registry.METHODS, zsm.NAME, zsm.TARGET)
    return zsm.NAME


def test_an_interrupt_after_one_segmented_frame_records_that_frame(brighter, tmp_path, monkeypatch, capsys):
    from _layers import sliding_square

    from napari_vos.data.frames import FrameSource

    import _zero_shot_method as zsm

    frames, _ = sliding_square(5, (48, 48))
    tifffile.imwrite(tmp_path / "video.tif", frames)
    real = FrameSource.tensor
    steps_before = len(zsm.BrighterThanMean.stepped)  # the method reads every frame first (set_video)

    def ctrl_c_on_frame_1(self, index, *args, **kwargs):
        if index == 1 and len(zsm.BrighterThanMean.stepped) > steps_before:  # after frame 0 was segmented
            raise KeyboardInterrupt
        return real(self, index, *args, **kwargs)

    monkeypatch.setattr(FrameSource, "tensor", ctrl_c_on_frame_1)
    out = tmp_path / "o.tif"
    assert main(["propagate", str(tmp_path / "video.tif"), "-o", str(out), "--method", brighter, "--device", "cpu",
                 "--direction", "forward"]) == 130
    assert "stopped after 1 of 5 frames" in capsys.readouterr().err
    assert read_tiff_provenance(out)["frames_segmented"] == "0"


def test_propagate_gives_the_sigterm_handler_back(tiffs, tmp_path):
    video, labels, _ = tiffs

    def mine(signum, frame):  # a handler of the calling program's own
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        assert _propagate(video, labels, tmp_path / "o.tif") == 0
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_kill_mid_run_keeps_the_finished_frames(tiffs, tmp_path):
    """`kill` (SIGTERM, a cluster's time limit) stops the run as Ctrl+C does: exit 130, frames kept."""
    video, labels, _ = tiffs
    out = tmp_path / "o.tif"
    script = textwrap.dedent(f"""
        import os, signal, sys
        from napari_vos.cli import main
        from napari_vos.data.frames import FrameSource
        real = FrameSource.tensor
        def kill_on_frame_3(self, index, *args, **kwargs):
            if index == 3:
                os.kill(os.getpid(), signal.SIGTERM)
            return real(self, index, *args, **kwargs)
        FrameSource.tensor = kill_on_frame_3
        sys.exit(main(["propagate", {str(video)!r}, {str(labels)!r}, "-o", {str(out)!r}, "--method", "flow",
                       "--device", "cpu", "--direction", "forward"]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "stopped after" in proc.stderr
    result = tifffile.imread(out)
    assert result[:3].any(axis=(1, 2)).all() and not result[4:].any()


# -- demo --json -------------------------------------------------------------------------------
def test_demo_json_names_the_sample_its_size_and_the_device_used(tmp_path):
    out = tmp_path / "d.json"
    assert main(["demo", "--method", "flow", "--frames", "3", "--device", "auto", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["sample"] == "natural" and record["size"] == [256, 384]  # (height, width)
    assert record["device"] == "cpu"  # the device it ran on, not the one asked for
    assert main(["demo", "--method", "flow", "--sample", "cells", "--frames", "3", "--device", "cpu",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["sample"] == "cells"


# -- train: argument checks, what reaches the recipe, Ctrl+C -----------------------------------------
@pytest.fixture
def no_training(monkeypatch):
    """The training loop replaced: an argument check must refuse before it is reached."""
    import napari_vos.training.loop as loop

    def never(*args, **kwargs):
        raise AssertionError("the training loop was reached")

    monkeypatch.setattr(loop, "train", never)


@pytest.mark.parametrize(("flag", "message"), [
    (["--size", "96"], "--size takes WIDTHxHEIGHT"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--synthetic-fraction", "1.5"], "--synthetic-fraction is a fraction"),
    (["--synthetic-fraction", "0.5"], "it needs --data"),  # no --data: nothing real to mix in
])
def test_train_refuses_bad_arguments_before_training(no_training, tmp_path, capsys, flag, message):
    assert main(["train", "frtm", "--steps", "1", "--out", str(tmp_path / "run"), *flag]) == 2
    assert message in capsys.readouterr().err


def test_train_size_reaches_the_recipe_as_height_by_width(monkeypatch, tmp_path):
    import napari_vos.training.recipes as recipes

    seen = {}

    def record(method, **kwargs):
        seen.update(kwargs)
        raise ValueError("recorded")

    monkeypatch.setattr(recipes, "make_recipe", record)
    assert main(["train", "frtm", "--size", "96x64", "--steps", "1", "--out", str(tmp_path / "run")]) == 2
    assert seen["size"] == (64, 96)


def test_train_without_data_says_it_trains_on_synthetic_videos_alone(monkeypatch, tmp_path, capsys):
    import napari_vos.training.recipes as recipes

    seen = {}

    def record(method, **kwargs):
        seen.update(kwargs)
        raise ValueError("recorded")

    monkeypatch.setattr(recipes, "make_recipe", record)
    assert main(["train", "frtm", "--steps", "1", "--out", str(tmp_path / "run")]) == 2
    assert "no --data: training on synthetic videos alone" in capsys.readouterr().out
    assert seen["synthetic_fraction"] == 1.0 and seen["real_dirs"] == []
    seen.clear()
    main(["train", "frtm", "--steps", "1", "--out", str(tmp_path / "run"), "--data", str(tmp_path)])
    assert seen["synthetic_fraction"] == 0.5  # with --data the default mix


def test_train_stopped_by_ctrl_c_exits_130(monkeypatch, tmp_path, capsys):
    import napari_vos.training.loop as loop

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "train", interrupted)
    assert main(["train", "frtm", "--size", "96x64", "--steps", "1", "--out", str(tmp_path / "run")]) == 130
    assert "stopped before the first step" in capsys.readouterr().out


# -- eval --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def five_objects(tmp_path_factory):
    """One 5-frame 48 x 64 DAVIS-layout sequence with 5 objects (MANY_OBJECTS: SEG is reported)."""
    from napari_vos.data.synthetic import write_synthetic_set

    root = tmp_path_factory.mktemp("five")
    names = write_synthetic_set(root, 1, "natural", seed=5, n_frames=5, size=(48, 64), n_objects=5)
    return root, names[0]


@pytest.fixture(scope="module")
def two_sequences(tmp_path_factory):
    from napari_vos.data.synthetic import write_synthetic_set

    root = tmp_path_factory.mktemp("two")
    names = write_synthetic_set(root, 2, "natural", seed=11, n_frames=4, size=(32, 48), n_objects=1)
    return root, names


def test_eval_records_its_options_precision_and_many_object_seg(five_objects, tmp_path):
    root, name = five_objects
    precision = _not_auto_precision()
    out = tmp_path / "ev"
    assert main(["eval", "--method", "flow", "--data", str(root), "--device", "cpu", "--max-side", "48",
                 "--precision", precision, "--out", str(out), "--no-plot", "-q"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["max_side"] == 48 and summary["options"] == {"precision": precision}
    assert summary["precision"] == precision
    assert 0 <= summary["sequences"][name]["SEG"] <= 1 and "SEG_mean" in summary
    assert not (out / "jf_over_time.png").exists()  # --no-plot


def test_eval_hands_max_side_to_the_method(two_sequences, tmp_path, capsys):
    root, _ = two_sequences  # a working side below the engine's minimum is refused, so it was passed on
    assert main(["eval", "--method", "flow", "--data", str(root), "--device", "cpu", "--max-side", "4",
                 "--no-plot", "-q"]) == 2
    assert "max_side must be a whole number of pixels" in capsys.readouterr().err


def test_eval_hands_the_checkpoint_to_the_method(two_sequences, tmp_path, capsys):
    root, _ = two_sequences
    assert main(["eval", "--method", "frtm", "--data", str(root), "--device", "cpu", "--no-plot", "-q",
                 "--checkpoint", str(tmp_path / "none.safetensors")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_eval_records_the_checkpoint_the_method_used(two_sequences, tmp_path):
    from napari_vos import weights

    root, names = two_sequences
    js = tmp_path / "s.json"
    assert main(["eval", "--method", "frtm", "--data", str(root), "--sequences", names[0], "--device", "cpu",
                 "--json", str(js), "--no-plot", "-q"]) == 0
    assert json.loads(js.read_text())["checkpoint"] == weights.default_checkpoint("frtm").name


def test_eval_refuses_annotation_none_for_a_method_that_needs_one(two_sequences, capsys):
    from napari_vos.evaluation.runner import resolve_annotation

    root, _ = two_sequences
    assert main(["eval", "--method", "flow", "--data", str(root), "--annotation", "none", "-q", "--no-plot"]) == 2
    assert "needs an annotation" in capsys.readouterr().err
    with pytest.raises(ValueError, match="annotation must be one of"):
        resolve_annotation("flow", "bogus")


def test_eval_starts_from_the_first_gt_frame_holding_an_object_and_runs_both_ways(tmp_path):
    """Sparse CTC ground truth whose first file is empty: the run starts from frame 2 (given as it is)
    and also goes back to frames 0 and 1."""
    from napari_vos.data.sequence import read_mask
    from napari_vos.data.synthetic import cell_video

    v = cell_video(5, (64, 64), n_cells=3, seed=3, modality="fluorescence")
    (tmp_path / "data" / "01").mkdir(parents=True)
    (tmp_path / "data" / "01_GT" / "SEG").mkdir(parents=True)
    for t in range(5):
        tifffile.imwrite(tmp_path / "data" / "01" / f"t{t:03d}.tif", v.frames[t])
    tifffile.imwrite(tmp_path / "data" / "01_GT" / "SEG" / "man_seg001.tif", np.zeros((64, 64), np.uint16))
    for t in (2, 4):
        tifffile.imwrite(tmp_path / "data" / "01_GT" / "SEG" / f"man_seg{t:03d}.tif", v.labels[t].astype(np.uint16))
    out = tmp_path / "ev"
    assert main(["eval", "--method", "flow", "--data", str(tmp_path / "data"), "--device", "cpu", "--out", str(out),
                 "--save-predictions", "--no-plot", "-q"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sequences"]["01"]["annotated_frame"] == 2
    predicted = out / "predictions" / "01"
    assert np.array_equal(read_mask(predicted / "00002.png"), v.labels[2])
    assert read_mask(predicted / "00000.png").any() and read_mask(predicted / "00001.png").any()


def test_save_prediction_keeps_id_255_in_palette_pngs(tmp_path):
    from napari_vos.evaluation.runner import save_prediction

    labels = np.zeros((2, 8, 8), np.uint8)
    labels[:, 2:4, 2:4] = 255
    path = save_prediction(tmp_path, "seq", labels)
    assert path == tmp_path / "seq" and path.is_dir()
    assert np.asarray(Image.open(path / "00000.png")).max() == 255


# -- score -------------------------------------------------------------------------------------
def _gt_sequence(root, name="sq", t_len=5, shape=(40, 40), ids=(1,)):
    """A DAVIS-layout GT sequence of squares moving right (one per id); returns the labels."""
    gt = np.zeros((t_len, *shape), np.uint8)
    for k, i in enumerate(ids):
        for t in range(t_len):
            gt[t, 2 + 7 * k:7 + 7 * k, 4 + t:14 + t] = i
    (root / "JPEGImages" / name).mkdir(parents=True)
    for t in range(t_len):
        Image.fromarray(np.zeros((*shape, 3), np.uint8)).save(root / "JPEGImages" / name / f"{t:05d}.jpg")
    write_png_labels(root / "Annotations" / name, gt)
    return gt


def test_score_matches_differently_named_prediction_files_by_order(tmp_path):
    gt = _gt_sequence(tmp_path / "gt")
    (tmp_path / "pred" / "sq").mkdir(parents=True)
    for t in range(len(gt)):
        Image.fromarray(gt[t]).save(tmp_path / "pred" / "sq" / f"result_{t}.png")
    assert main(["score", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"),
                 "--json", str(tmp_path / "s.json"), "-q"]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["J_mean"] == pytest.approx(1.0)


def test_score_warns_about_frames_without_a_prediction(tmp_path):
    from napari_vos.evaluation.scoring import score_dataset

    gt = _gt_sequence(tmp_path / "gt")
    write_png_labels(tmp_path / "pred" / "sq", gt)
    (tmp_path / "pred" / "sq" / "00002.png").unlink()
    with pytest.warns(UserWarning, match="1 of 5 frames have no prediction file"):
        summary = score_dataset(tmp_path / "pred", tmp_path / "gt", progress=False)
    assert summary["J_mean"] < 1.0


def test_score_refuses_a_tiff_stack_of_the_wrong_length(tmp_path, capsys):
    gt = _gt_sequence(tmp_path / "gt")
    (tmp_path / "pred").mkdir()
    tifffile.imwrite(tmp_path / "pred" / "sq.tif", gt[:4])
    assert main(["score", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "-q"]) == 2
    assert "4 predicted frames for 5 frames" in capsys.readouterr().err


def test_score_one_sequence_from_predictions_in_the_folder_itself(tmp_path):
    gt = _gt_sequence(tmp_path / "gt")
    write_png_labels(tmp_path / "pred", gt)  # 00000.png ... directly under --pred
    assert main(["score", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"),
                 "--json", str(tmp_path / "s.json"), "-q"]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["J_mean"] == pytest.approx(1.0)


def test_score_sequences_option_and_csv_files(tmp_path):
    gt_a = _gt_sequence(tmp_path / "gt", "a")
    gt_b = _gt_sequence(tmp_path / "gt", "b", ids=(1, 2, 3, 4, 5))  # 5 objects: SEG is reported
    write_png_labels(tmp_path / "pred" / "a", gt_a)
    write_png_labels(tmp_path / "pred" / "b", gt_b)
    js, out = tmp_path / "s.json", tmp_path / "csv"
    assert main(["score", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--sequences", "b",
                 "--json", str(js), "-q"]) == 0
    summary = json.loads(js.read_text())
    assert list(summary["sequences"]) == ["b"] and summary["sequences"]["b"]["SEG"] == pytest.approx(1.0)
    assert main(["score", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(out), "-q"]) == 0
    rows = list(csv.reader(open(out / "per_frame.csv")))
    assert rows[0] == ["sequence", "object", "frame", "J", "F"]
    assert sum(r == rows[0] for r in rows) == 1 and {r[0] for r in rows[1:]} == {"a", "b"}


def test_score_tiff_predictions_keep_id_255_as_a_cell(tmp_path):
    """CTC ground truth and TIFF predictions: 255 is a cell id like any other, not DAVIS's void."""
    root = tmp_path / "gt"
    (root / "01").mkdir(parents=True)
    (root / "01_GT" / "SEG").mkdir(parents=True)
    labels = np.zeros((4, 32, 32), np.uint8)
    for t in range(4):
        labels[t, 4:12, 4 + t:12 + t] = 3
        labels[t, 18:28, 8:18] = 255
        tifffile.imwrite(root / "01" / f"t{t:03d}.tif", (labels[t] > 0).astype(np.uint8) * 200)
        tifffile.imwrite(root / "01_GT" / "SEG" / f"man_seg{t:03d}.tif", labels[t])
    (tmp_path / "pred").mkdir()
    tifffile.imwrite(tmp_path / "pred" / "01.tif", labels)
    assert main(["score", "--pred", str(tmp_path / "pred"), "--gt", str(root), "--json", str(tmp_path / "s.json"),
                 "-q"]) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["objects"] == 2 and summary["J_mean"] == pytest.approx(1.0)


# -- bench -------------------------------------------------------------------------------------
def test_bench_json_record_of_one_point(tmp_path):
    js = tmp_path / "b.json"
    assert main(["bench", "--method", "flow", "--device", "cpu", "--size", "64x48", "--frames", "2", "--warmup", "0",
                 "--kind", "cells", "--objects", "2", "--json", str(js)]) == 0
    record = json.loads(js.read_text())
    assert record["kind"] == "cells" and record["frames"] == 2 and record["size"] == "64x48"


def test_bench_names_the_kind_auto_picked_at_ten_objects(tmp_path):
    from napari_vos.evaluation.bench import bench_once

    record = bench_once("flow", "cpu", (64, 48), objects=10, frames=2, warmup=0, workdir=tmp_path)
    assert record["kind"] == "natural"  # natural up to 10 objects, cells above


def test_bench_sweep_passes_the_precision_to_its_points(tmp_path):
    precision = _not_auto_precision()
    js = tmp_path / "s.json"
    assert main(["bench", "--method", "flow", "--device", "cpu", "--sweep", "--sweep-sizes", "48x32",
                 "--sweep-objects", "1", "--sweep-frames", "3", "--warmup", "0", "--json", str(js),
                 "--precision", precision]) == 0
    assert json.loads(js.read_text())[0]["precision"] == precision


def test_a_sweep_whose_points_time_out_says_so_and_fails(tmp_path, monkeypatch, capsys):
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the points' result files are made
    js = tmp_path / "s.json"
    assert main(["bench", "--method", "flow", "--device", "cpu", "--sweep", "--sweep-sizes", "48x32",
                 "--sweep-objects", "1", "--sweep-frames", "3,4", "--warmup", "0", "--timeout", "0.001",
                 "--json", str(js)]) == 1
    printed = capsys.readouterr().out
    assert printed.count("error: timed out after 0.001 s") == 2
    rows = json.loads(js.read_text())  # written for timed-out points too
    assert [r["error"] for r in rows] == ["timed out after 0.001 s"] * 2 and [r["frames"] for r in rows] == [3, 4]
    assert list(scratch.iterdir()) == []  # no result file left behind


def test_ping_pong_of_a_one_frame_pool_and_sizes_too_small():
    from napari_vos.evaluation.bench import PingPongVideo, parse_size

    video = PingPongVideo(np.full((1, 2, 2), 7, np.uint8), 4)
    assert [int(video[t][0, 0]) for t in range(4)] == [7, 7, 7, 7]
    for text in ("640x4", "4x640"):
        with pytest.raises(ValueError, match="too small"):
            parse_size(text)


def test_python_dash_m_napari_vos_is_the_command():
    done = subprocess.run([sys.executable, "-m", "napari_vos", "weights"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "frtm-resnet18-vos" in done.stdout


def test_train_imagenet_without_torchvision_is_one_line_and_makes_no_run_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    run = tmp_path / "run"
    assert main(["train", "frtm", "--backbone-weights", "imagenet", "--steps", "1", "--out", str(run),
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("napari-vos train: error:") and "napari-vos[imagenet]" in err and "\n" not in err
    assert not run.exists()
