"""The scripting API as a script user meets it: what a yielded frame may be used for, cancel at
any moment (fine-tuning too), re-runs, option checks, messages for the wrong kind of input, reprs."""
import threading

import numpy as np
import pytest

import napari_vos
from napari_vos import ChannelStack, Session, propagate
from conftest import moving_square_video


def test_changing_a_yielded_annotated_frame_in_place_changes_nothing_the_method_uses(square_video):
    frames, truth = square_video
    plain = propagate(frames, truth[0], method="flow", device="cpu").labels.copy()
    s = Session(frames, method="flow", device="cpu")
    s.annotate(0, truth[0])
    s.annotate(3, truth[3])
    for step in s.propagate("both", start=0):
        if step.annotated:
            step.labels[:] = 0  # a script's in-place clean-up of each frame it is handed
    np.testing.assert_array_equal(s.annotations[0], truth[0])
    np.testing.assert_array_equal(s.annotations[3], truth[3])
    assert all(s.result().labels[t].any() for t in (1, 2, 4, 5))
    again = Session(frames, method="flow", device="cpu")
    again.annotate(0, truth[0])
    np.testing.assert_array_equal(again.run().labels, plain)


def test_a_cancel_before_the_first_frame_is_asked_for_stops_the_run(square_video):
    frames, truth = square_video
    s = Session(frames, method="flow", device="cpu")
    s.annotate(0, truth[0])
    steps = s.propagate()  # handed to a worker thread ...
    s.cancel()  # ... and cancelled before it pulled a frame
    assert [step.index for step in steps] == [0]
    assert [step.index for step in s.propagate()] == list(range(len(frames)))  # the next run is not cancelled


def test_cancel_stops_a_fine_tuning_at_its_next_iteration(square_video):
    """OSVOS-AT fine-tunes before its first frame: Session.cancel() ends that at once (the widget's
    behaviour), not after every iteration asked for."""
    frames, truth = square_video
    reported = []

    def cancel_at_step_2(step, total, loss):
        reported.append(step)
        if step == 2:
            threading.Thread(target=s.cancel).start()  # from another thread, as a GUI's button would

    s = Session(frames, method="osvos_at", device="cpu", max_side=64, min_side=None, finetune_iterations=200,
                on_finetune=cancel_at_step_2)
    s.annotate(0, truth[0])
    done = [step.index for step in s.propagate("forward")]
    assert done == [0] and 2 <= max(reported) <= 4 and len(reported) < 200


def test_a_rerun_with_other_objects_gets_its_own_maps(square_video):
    frames, truth = square_video
    s = Session(frames, method="frtm", device="cpu", maps=True)
    s.annotate(0, truth[0])
    first = s.run().maps["target_scores"].copy()
    assert first.shape[1] == 1
    two = truth[0].copy()
    two[:6, :6] = 2
    s.annotate(0, two)
    maps = s.run().maps["target_scores"]
    assert maps.shape[1] == 2 and np.abs(maps[1:, 1]).max() > 0


@pytest.mark.parametrize("option, value, said", [
    ("update_interval", 0, "update_interval must be a whole number >= 1, got 0"),
    ("update_interval", 2.5, "update_interval must be a whole number >= 1, got 2.5"),
    ("kernel", 2, "kernel must be odd"),
    ("n_gn", 0, "n_gn must be a whole number >= 1"),
    ("n_cg_update", -1, "n_cg_update must be a whole number >= 0"),
    ("objects_per_solve", 0, "objects_per_solve must be a whole number >= 1"),
    ("n_augmented", 100, r"n_augmented \(100\) cannot exceed memory_capacity \(80\)"),
    ("eta", 1.0, r"eta must be a number in \(0, 1\)"),
    ("kappa_min", -0.1, r"kappa_min must be a number in \[0, 1\]"),
    ("reg_w1", "big", "reg_w1 must be a number >= 0"),
])
def test_frtm_settings_are_checked_when_the_session_is_made(option, value, said):
    with pytest.raises(ValueError, match=said):
        Session(np.zeros((3, 32, 32), np.uint8), method="frtm", device="cpu", **{option: value})


def test_frtm_settings_that_work_are_taken(square_video):
    frames, truth = square_video
    result = propagate(frames, truth[0], method="frtm", device="cpu", update_interval=1, n_cg_update=0, kernel=1)
    assert result.frames_done == len(frames) - 1
    assert (result.options["update_interval"], result.options["n_cg_update"], result.options["kernel"]) == (1, 0, 1)


def test_progress_counts_to_the_frames_a_one_way_run_yields(square_video):
    frames, truth = square_video
    calls = []
    propagate(frames, truth[2], frame=2, method="flow", device="cpu", direction="forward",
              progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (4, 4) and len(calls) == 4
    s = Session(frames, method="flow", device="cpu")
    s.annotate(2, truth[2])
    calls.clear()
    s.run("backward", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)] and s.planned_frames == 3


def test_reprs_say_what_is_there_without_the_pixels(square_video):
    frames, truth = square_video
    s = Session(frames, method="flow", device="cpu")
    s.annotate(0, truth[0])
    assert repr(s).startswith("Session(method='flow', video=(6, 64, 96), annotated_frames=[0], object_ids=[1]")
    result = s.run()
    text = repr(result)
    assert text.startswith("Result(method='flow', labels=(6, 64, 96) uint8, object_ids=[1]") and len(text) < 300
    assert "frames_done=5" in text
    grey = frames[..., 0]
    stack = ChannelStack([grey, grey], names=["phase", "gfp"])
    assert repr(stack) == "ChannelStack(shape=(6, 64, 96, 2), dtype=uint8, names=['phase', 'gfp'])"


def test_the_wrong_kind_of_input_is_named(square_video, tmp_path):
    frames, truth = square_video
    with pytest.raises(ValueError,
                       match=r"the video is a file path \(.*video.tif, which does not exist here\): read it first"):
        propagate(str(tmp_path / "video.tif"), truth[0], method="flow")
    with pytest.raises(ValueError, match="the video is a generator, which cannot be read by index"):
        propagate((f for f in frames), truth[0], method="flow")
    with pytest.raises(ValueError, match="the video's frames do not stack into one array .*pass one: data"):
        propagate([frames[0], frames[1][:32]], truth[0], method="flow")
    with pytest.raises(ValueError, match="the labels are a file path"):
        propagate(frames, tmp_path / "labels.tif", method="flow")
    with pytest.raises(ValueError, match=r"device 'gpu' is not one napari-vos knows; use 'auto'"):
        Session(frames, method="flow", device="gpu")
    s = Session(frames, method="flow", device="cpu")
    with pytest.raises(ValueError, match=r"labels stack has shape \(1, 64, 96\) but the video is 6 frames of"):
        s.annotate_stack(truth[:1])


def test_a_napari_layer_passed_as_data_is_named(square_video):
    from napari.layers import Image, Labels

    frames, truth = square_video
    with pytest.raises(ValueError, match=r"the video is a napari Image layer \('cells'\): pass its data"):
        propagate(Image(frames, name="cells"), truth[0], method="flow")
    with pytest.raises(ValueError, match=r"the labels are a napari Labels layer .*propagate_layers"):
        propagate(frames, Labels(truth[0]), method="flow")


def test_maps_out_must_be_a_float_array_and_needs_maps(square_video):
    frames, truth = square_video
    with pytest.raises(ValueError, match="maps_out is where the maps are kept: it needs maps=True"):
        Session(frames, method="flow", device="cpu", maps_out=lambda name, shape: np.zeros(shape, np.float32))
    s = Session(frames, method="flow", device="cpu", maps=True, maps_out=lambda name, shape: np.zeros(shape, np.uint8))
    s.annotate(0, truth[0])
    with pytest.raises(ValueError, match="maps_out must return a float array for map 'flow_magnitude'.*uint8"):
        s.run()


def test_channel_stack_names_and_indexing():
    frames = moving_square_video()[0][..., 0]
    with pytest.raises(ValueError, match="give one name per stack: 1 names for 2 stacks"):
        ChannelStack([frames, frames[:, :32]], names=["phase"])
    stack = ChannelStack([frames, 255 - frames])
    with pytest.raises(IndexError, match="without ... or a channel index"):
        stack[..., 0]
    assert stack[2].shape == (64, 96, 2) and stack[1:3, 5].shape == (2, 96, 2)


def test_the_package_lists_its_public_names_before_they_are_imported():
    names = dir(napari_vos)
    assert {"Session", "propagate", "propagate_layers", "Result", "ChannelStack", "__version__"} <= set(names)
    assert "TYPE_CHECKING" not in names and "Any" not in names


def test_two_propagations_of_one_session_do_not_mix(square_video):
    frames, truth = square_video
    s = Session(frames, method="flow", device="cpu")
    s.annotate(0, truth[0])
    older = s.propagate("forward")
    assert next(older).index == 0
    newer = s.propagate("forward")
    with pytest.raises(RuntimeError, match="replaced by a later propagate"):
        next(older)
    assert [step.index for step in newer] == list(range(len(frames)))
    assert s.result().frames_done == len(frames) - 1


def test_a_run_with_no_frame_to_segment_says_so(square_video):
    frames, truth = square_video
    s = Session(frames, method="flow", device="cpu")
    s.annotate(0, truth[0])
    with pytest.warns(UserWarning, match="nothing to propagate: backward from frame 0 of a 6-frame stack"):
        steps = list(s.propagate("backward"))
    assert [step.index for step in steps] == [0]


def test_a_missing_checkpoint_fails_when_the_session_is_made(square_video, tmp_path):
    from napari_vos.weights import CheckpointError

    frames, _ = square_video
    with pytest.raises(CheckpointError, match="no checkpoint for method 'rvos' is registered"):
        Session(frames, method="rvos", device="cpu")
    with pytest.raises(CheckpointError, match="does not exist"):
        Session(frames, method="frtm", device="cpu", checkpoint=str(tmp_path / "nope.safetensors"))
    with pytest.raises(CheckpointError, match="unknown checkpoint 'frtm-typo'"):
        Session(frames, method="frtm", device="cpu", checkpoint="frtm-typo")
    with pytest.raises(ValueError, match="method 'flow' uses no checkpoint"):
        Session(frames, method="flow", device="cpu", checkpoint="frtm-resnet18-vos")


@pytest.mark.parametrize("method", ["frtm", "agame"])
def test_the_callers_torch_state_neither_breaks_a_run_nor_is_changed_by_it(method):
    """napari's console or a script may run inside torch.inference_mode(), under a float64 default
    dtype, with its own seeded global RNG: the run gives the plain run's labels and leaves all three."""
    import torch

    from conftest import moving_square_video
    from napari_vos import propagate

    frames, truth = moving_square_video(n_frames=4)
    plain = np.asarray(propagate(frames, truth[0], method=method, device="cpu", precision="fp32").labels)
    torch.manual_seed(7)
    before = torch.get_rng_state()
    with torch.inference_mode():
        inside = np.asarray(propagate(frames, truth[0], method=method, device="cpu", precision="fp32").labels)
    assert np.array_equal(inside, plain)
    assert torch.equal(torch.get_rng_state(), before)  # building the network drew from it, and gave it back
    torch.set_default_dtype(torch.float64)
    try:
        doubled = np.asarray(propagate(frames, truth[0], method=method, device="cpu", precision="fp32").labels)
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(torch.float32)
    assert np.array_equal(doubled, plain)


def test_torch_tensors_of_any_kind_are_read_as_their_values():
    import torch

    from conftest import moving_square_video
    from napari_vos import propagate

    frames, truth = moving_square_video(n_frames=4)
    as_float = propagate(frames.astype(np.float32), truth[0], method="flow", device="cpu").labels
    video = torch.from_numpy(frames.astype(np.float32)).to(torch.bfloat16)  # exact for 0..255 integers
    labels = torch.from_numpy(truth[0].astype(np.float32)).requires_grad_()
    assert np.array_equal(propagate(video, labels, method="flow", device="cpu").labels, as_float)


def test_fp32_holds_inside_a_callers_autocast_and_frames_have_the_results_type():
    import torch

    from conftest import moving_square_video

    frames, truth = moving_square_video(n_frames=4)
    plain = propagate(frames, truth[0], method="frtm", device="cpu", precision="fp32", maps=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = propagate(frames, truth[0], method="frtm", device="cpu", precision="fp32", maps=True)
    assert inside.options["precision"] == "fp32" and np.array_equal(inside.labels, plain.labels)
    # the scores come from backbone features: bf16 ones would move them
    np.testing.assert_array_equal(inside.maps["target_scores"], plain.maps["target_scores"])
    s = Session(frames, method="flow", device="cpu")
    s.annotate(0, truth[0])
    steps = list(s.propagate())
    assert {step.labels.dtype for step in steps} == {s.result().labels.dtype} == {np.dtype(np.uint8)}


def _random_checkpoint(method, path):
    """A randomly initialised checkpoint of a method that trains a network at test time."""
    import torch

    from napari_vos import weights

    torch.manual_seed(0)
    if method == "osvos_at":
        from napari_vos.methods.osvos_at import CONFIGS, OSVOSATNetwork
        from napari_vos.training.osvos_at_recipe import OSVOSATRecipe

        weights.save_checkpoint(path, *OSVOSATRecipe().export_tensors(OSVOSATNetwork(CONFIGS["light"])))
        return {"finetune_iterations": 2, "finetune_crop": None}
    from napari_vos.methods.rgmp_network import RGMPConfig, RGMPNetwork
    from napari_vos.training.rgmp_recipe import RGMPRecipe

    weights.save_checkpoint(path, *RGMPRecipe().export_tensors(RGMPNetwork(RGMPConfig(backbone="resnet18", channels=32))))
    return {"online_finetune": True, "online_steps": 3}


@pytest.mark.parametrize("method", ["osvos_at", "rgmp"])
def test_test_time_training_runs_inside_a_callers_inference_mode(method, tmp_path):
    """OSVOS-AT's fine-tuning and RGMP's online fine-tuning load weights and take gradients: inside
    the caller's torch.inference_mode() they still run, and give the plain run's labels."""
    import torch

    options = _random_checkpoint(method, tmp_path / f"{method}.safetensors")
    frames, truth = moving_square_video(n_frames=4)
    run = dict(method=method, device="cpu", precision="fp32", checkpoint=str(tmp_path / f"{method}.safetensors"),
               **options)
    plain = np.asarray(propagate(frames, truth[0], **run).labels)
    with torch.inference_mode():
        inside = np.asarray(propagate(frames, truth[0], **run).labels)
    assert np.array_equal(inside, plain)


def test_a_bf16_tensor_beyond_float16s_range_is_read_as_finite_float32():
    import torch

    from napari_vos.checks import from_torch

    values = from_torch(torch.tensor([[70000.0, 1.5]], dtype=torch.bfloat16))  # 16-bit data as bf16
    assert values.dtype == np.float32 and np.isfinite(values).all() and values[0, 0] > 65504


def test_a_tensor_is_brought_to_the_cpu_before_numpy_reads_it(monkeypatch):
    # a CUDA tensor has no .numpy(): without a GPU here, a spy shows .cpu() is what reads it
    import torch

    from napari_vos.checks import from_torch

    moved = []
    real_cpu = torch.Tensor.cpu

    def spy(self, *args, **kwargs):
        moved.append(self.shape)
        return real_cpu(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", spy)
    assert np.array_equal(from_torch(torch.ones(2, 3, requires_grad=True)), np.ones((2, 3), np.float32))
    assert moved == [torch.Size([2, 3])]


def test_full_precision_on_a_device_type_without_autocast_does_nothing():
    import torch

    from napari_vos.nn.precision import full_precision

    with full_precision(torch.empty(2, device="meta")):  # torch has no autocast for "meta"
        pass


def test_the_seed_is_in_the_record():
    """Another seed gives other labels (FRTM's augmented samples, OSVOS-AT's crops), so the record
    says which one made them."""
    from conftest import moving_square_video

    frames, truth = moving_square_video(n_frames=3)
    for seed in (0, 3):
        session = Session(frames, method="flow", device="cpu", seed=seed)
        session.annotate(0, truth[0])
        session.run("forward")
        assert session.result().options["seed"] == seed
        assert session.result().provenance()["options"]["seed"] == seed
