"""What a training run keeps when it goes wrong (an audit's findings): a diverging loss, a failure
before the first step, a finished run resumed, a log after a kill, a second Ctrl+C while saving."""
import json
import os
import signal
import time

import pytest
import torch

from napari_vos.cli import main
from napari_vos.training.loop import TrainingDiverged, TrainSettings, _signals_deferred, train

QUIET = lambda s: None  # noqa: E731


class _Recipe:
    """A two-weight linear model; ``nan_at``: the step whose loss is NaN, ``fail_at``: one that raises."""

    name = "tiny"

    def __init__(self, nan_at=None, fail_at=None):
        self.nan_at, self.fail_at, self.calls = nan_at, fail_at, 0

    def build(self, device):
        torch.manual_seed(0)
        return torch.nn.Linear(2, 1).to(device)

    def batch(self, rng):
        self.calls += 1
        if self.calls == self.fail_at:
            raise ValueError("../data/davis2016-trian does not exist")
        return torch.tensor(rng.normal(size=(4, 2)), dtype=torch.float32)

    def loss(self, model, batch, device):
        loss = (model(batch) - 1.0).pow(2).mean()
        return (loss * float("nan") if self.calls == self.nan_at else loss), {}


def test_a_diverging_loss_stops_the_run_and_keeps_the_last_good_state(tmp_path):
    run, exported = tmp_path / "run", []
    train(_Recipe(), run, TrainSettings(steps=4, save_every=2), log=QUIET)
    good = torch.load(run / "last.pt", weights_only=False)
    with pytest.raises(TrainingDiverged, match=r"the loss is nan at step 6: the run diverged; .*keeps step 5"):
        train(_Recipe(nan_at=2), run, TrainSettings(steps=10, save_every=1), resume=True, log=QUIET,
              on_save=lambda model, step: exported.append(step))
    kept = torch.load(run / "last.pt", weights_only=False)
    assert exported == [5] and kept["step"] == 5  # step 5 was sound and saved, step 6 never was
    assert all(torch.isfinite(t).all() for t in kept["model"].values())
    assert good["step"] == 4


def test_weights_gone_non_finite_are_never_saved(tmp_path):
    run = tmp_path / "run"
    recipe = _Recipe()
    real_loss = recipe.loss

    def exploding(model, batch, device):  # finite losses, but the update leaves infinite weights
        with torch.no_grad():
            model.weight.fill_(float("inf")) if recipe.calls == 3 else None
        return real_loss(model, batch, device)

    recipe.loss = exploding
    with pytest.raises(TrainingDiverged):
        train(recipe, run, TrainSettings(steps=6, save_every=2), log=QUIET)
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 2


def test_a_run_that_fails_before_its_first_step_saves_nothing(tmp_path):
    run, exported = tmp_path / "run", []
    with pytest.raises(ValueError, match="does not exist"):
        train(_Recipe(fail_at=1), run, TrainSettings(steps=3), log=QUIET, on_save=lambda m, s: exported.append(s))
    assert not (run / "last.pt").exists() and exported == []
    train(_Recipe(), run, TrainSettings(steps=3), log=QUIET)  # the corrected command runs as given
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 3


def test_an_error_after_some_steps_keeps_them(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ValueError):
        train(_Recipe(fail_at=4), run, TrainSettings(steps=10, save_every=100), log=QUIET)
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 3


def test_resuming_a_finished_run_says_so_and_rewrites_nothing(tmp_path):
    run, said, exported = tmp_path / "run", [], []
    train(_Recipe(), run, TrainSettings(steps=3, save_every=3), log=said.append,
          on_save=lambda m, s: exported.append(s))
    assert exported == [3] and said[-1].startswith("done: step 3 of 3")  # saved once, not twice
    before = os.stat(run / "last.pt").st_mtime_ns
    said.clear()
    train(_Recipe(), run, TrainSettings(steps=3), resume=True, log=said.append)
    assert "already at step 3 of --steps 3: nothing to train; raise --steps" in said[-1]
    assert os.stat(run / "last.pt").st_mtime_ns == before
    train(_Recipe(), run, TrainSettings(steps=3), resume=True, log=said.append,  # --resume --export F
          on_save=lambda m, s: exported.append(s))
    assert exported == [3, 3] and said[-1].endswith("its weights are exported as they are")
    assert os.stat(run / "last.pt").st_mtime_ns == before


def test_a_resume_with_another_stage_is_refused(tmp_path):
    """RGMP's light:pretrain resumed as light:video went on silently with the pretrain rate and step
    count, and its export said stage video."""
    run = tmp_path / "run"
    first, second = _Recipe(), _Recipe()
    first.config, first.stage = "light", "pretrain"
    second.config, second.stage = "light", "video"
    train(first, run, TrainSettings(steps=2, save_every=2), log=QUIET)
    with pytest.raises(ValueError, match=r"is a tiny run \(config 'light:pretrain'\), not tiny \(config "
                                         r"'light:video'\): .*another --out from this one's export \(--init\)"):
        train(second, run, TrainSettings(steps=4), resume=True, log=QUIET)


def test_a_resume_drops_the_log_lines_of_steps_it_repeats_and_a_cut_off_save(tmp_path):
    run = tmp_path / "run"
    train(_Recipe(), run, TrainSettings(steps=4, save_every=2, log_every=1), log=QUIET)
    state = torch.load(run / "last.pt", weights_only=False)
    state["step"] = 2  # as if killed after logging steps 3-4 but before saving them
    torch.save(state, run / "last.pt")
    (run / "log.jsonl").write_text((run / "log.jsonl").read_text() + '{"step": 5, "lo')  # a line cut off
    (run / "last.pt.tmp").write_bytes(b"half a checkpoint")
    train(_Recipe(), run, TrainSettings(steps=4, save_every=2, log_every=1), resume=True, log=QUIET)
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4] and not (run / "last.pt.tmp").exists()


def test_a_signal_during_a_save_waits_for_the_save():
    # Ctrl+C's handler, whatever this process inherited (a shell's background job ignores SIGINT)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        reached = False
        with pytest.raises(KeyboardInterrupt):
            with _signals_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                reached = True  # the save goes on to its end
        assert reached
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as under nohup or `&`: still ignored after the save
        with _signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_train_names_a_device_it_does_not_have_and_an_unknown_config(tmp_path, capsys):
    base = ["train", "frtm", "--steps", "1", "--size", "64x48", "--batch-size", "1", "--synthetic-fraction", "1",
            "--out", str(tmp_path / "run")]
    assert main([*base, "--device", "gpu"]) == 2
    assert "device 'gpu' is not one napari-vos knows" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([*base, "--device", "cuda"]) == 2
        assert "torch sees no CUDA GPU" in capsys.readouterr().err
    assert main([*base, "--config", "nosuch"]) == 2
    assert "unknown frtm configuration 'nosuch'; choose one of fast, full" in capsys.readouterr().err
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize("method, size", [("frtm", (48, 64)), ("osvos_at", (48, 64)), ("rgmp", (64, 96)),
                                          ("s2s", (64, 96))])  # S2S and RGMP: multiples of 32
def test_exports_record_the_training_size_as_the_command_takes_it(method, size):
    from napari_vos.training.recipes import make_recipe

    recipe = make_recipe(method, size=size, synthetic_fraction=1.0, batch_size=1)  # (H, W), from --size WxH
    _, meta = recipe.export_tensors(recipe.build(torch.device("cpu")))
    assert meta["train_size"] == f"{size[1]}x{size[0]}"


def test_an_export_says_how_it_was_trained(tmp_path, capsys):
    from safetensors import safe_open

    out = tmp_path / "w.safetensors"
    assert main(["train", "frtm", "--steps", "1", "--size", "64x48", "--batch-size", "1", "--synthetic-fraction",
                 "1", "--seed", "7", "--lr", "1e-4", "--out", str(tmp_path / "run"), "--export", str(out),
                 "--threads", "1"]) == 0
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    assert meta["step"] == "1" and meta["train_size"] == "64x48" and meta["train_seed"] == "7"
    assert meta["train_lr"] == "0.0001" and meta["train_data"] == "synthetic only" and meta["train_steps_planned"] == "1"
    assert "done: step 1 of 1" in capsys.readouterr().out
    # resumed without --lr: the run's own rate, as a number (it was the text "the resumed run's")
    assert main(["train", "frtm", "--steps", "2", "--size", "64x48", "--batch-size", "1", "--synthetic-fraction",
                 "1", "--seed", "7", "--out", str(tmp_path / "run"), "--export", str(out), "--threads", "1",
                 "--resume"]) == 0
    with safe_open(str(out), "pt") as f:
        assert f.metadata()["train_lr"] == "0.0001" and f.metadata()["step"] == "2"


def test_a_finished_run_exported_later_says_how_it_was_trained_not_the_flags_of_the_export(tmp_path):
    """--resume --export of a finished run trains nothing, yet its metadata took that command's size, seed and
    batch size (320x192, seed 5, batch 3 for a run of 64x48, seed 0, batch 1)."""
    from safetensors import safe_open

    run, out = tmp_path / "run", tmp_path / "w.safetensors"
    base = ["train", "frtm", "--steps", "1", "--synthetic-fraction", "1", "--threads", "1", "--out", str(run)]
    assert main([*base, "--size", "64x48", "--batch-size", "1", "--seed", "0"]) == 0
    assert main([*base, "--size", "96x64", "--batch-size", "3", "--seed", "5", "--photometric", "0.5", "--resume",
                 "--export", str(out)]) == 0
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    assert (meta["train_size"], meta["train_seed"], meta["train_batch_size"], meta["train_photometric"]) == \
        ("64x48", "0", "1", "0.0")
    assert meta["step"] == "1" and meta["train_data"] == "synthetic only"


def test_a_resume_says_which_settings_changed(tmp_path):
    run, said = tmp_path / "run", []
    train(_Recipe(), run, TrainSettings(steps=2, lr=1e-3), log=QUIET)
    train(_Recipe(), run, TrainSettings(steps=4, lr=1e-4), resume=True, log=said.append)
    assert any(m == "resuming with changed settings: steps 2 -> 4, lr 0.001 -> 0.0001" for m in said), said


def test_the_log_averages_go_on_across_a_resume(tmp_path):
    class Counting(_Recipe):  # a logged statistic equal to the recipe's own call count: 1, 2, ...
        def loss(self, model, batch, device):
            loss, _ = super().loss(model, batch, device)
            return loss, {"k": float(self.calls)}

    run = tmp_path / "run"
    train(Counting(), run, TrainSettings(steps=2, log_every=1), log=QUIET)  # k's average: 1, then 1.1
    train(Counting(), run, TrainSettings(steps=3, log_every=1), resume=True, log=QUIET)  # its k is 1 again
    logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [x["k"] for x in logged] == [1.0, 1.1, 1.09]  # 0.9 * 1.1 + 0.1 * 1, not a fresh 1.0


@pytest.mark.parametrize("flag, value, said", [("--max-minutes", "0", "max-minutes must be above 0"),
                                               ("--lr", "0", "lr must be above 0"),
                                               ("--threads", "0", "--threads must be at least 1"),
                                               ("--workers", "-1", "workers must be a whole number >= 0"),
                                               ("--seed", "-1", "seed must be a whole number from 0 to 2**62 - 1")])
def test_train_arguments_that_would_do_something_else_are_refused(tmp_path, capsys, flag, value, said):
    assert main(["train", "frtm", "--steps", "1", "--size", "64x48", "--batch-size", "1", "--synthetic-fraction", "1",
                 "--out", str(tmp_path / "run"), flag, value]) == 2
    assert said in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_an_out_that_is_a_file_is_refused_by_name(tmp_path, capsys):
    (tmp_path / "run").write_text("notes")
    assert main(["train", "frtm", "--steps", "1", "--size", "64x48", "--synthetic-fraction", "1", "--out",
                 str(tmp_path / "run")]) == 2
    assert f"--out {tmp_path / 'run'} is a file" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["last.pt", "log.jsonl"])
def test_an_export_named_as_a_file_the_run_keeps_is_refused(tmp_path, capsys, name):
    """--export OUT/last.pt replaced the run's state with the fp16 export: done, and never resumable again."""
    run = tmp_path / "run"
    assert main(["train", "frtm", "--steps", "1", "--size", "64x48", "--batch-size", "1", "--synthetic-fraction", "1",
                 "--out", str(run), "--export", str(run / name), "--threads", "1"]) == 2
    assert f"--export {run / name} is the run's own {name} in --out {run}" in capsys.readouterr().err
    assert not (run / name).exists()


def test_a_resume_says_init_gives_not_the_weights_and_the_run_trains_as_saved(tmp_path):
    # until session 37 it said "--init X is not used", though --init decided how S2S, RVOS, A-GAME and
    # COSNet train (batch norm, backbone stages): a resume keeps the saved regime, and says so
    run, said = tmp_path / "run", []
    train(_Recipe(), run, TrainSettings(steps=1), log=QUIET)
    resumed = _Recipe()
    resumed.init_checkpoint = "frtm-resnet18-vos"
    train(resumed, run, TrainSettings(steps=2), resume=True, log=said.append)
    assert any(m.startswith(f"--init frtm-resnet18-vos: the weights come from {run / 'last.pt'}, not from it, and "
                            "the run trains as it was saved (2 parameter tensors trained)") for m in said), said


@pytest.mark.parametrize("method, size, says", [
    ("s2s", "100x64", "S2S training size must be a multiple of 32, got 100x64"),
    ("rgmp", "17x13", "--size must be at least 48 pixels on each side"),
])
def test_a_training_size_the_network_cannot_take_is_one_line(tmp_path, capsys, method, size, says):
    """They were a traceback (exit 1) and torch's batch-norm message."""
    assert main(["train", method, "--steps", "1", "--size", size, "--batch-size", "1", "--synthetic-fraction", "1",
                 "--device", "cpu", "--out", str(tmp_path / "run")]) == 2
    assert says in capsys.readouterr().err
