"""The one training loop every method's recipe runs in: resumable, logged, exportable.

A recipe (training/recipes.py) builds the model, draws batches and computes the loss; this loop
owns the optimiser, the learning-rate schedule, checkpoints (``last.pt`` every ``save_every``
steps, so a run cut off at a session's end continues with ``--resume``) and the log.
Training state uses torch.save (it holds optimiser state); shipped weights are safetensors.
``precision="bf16"`` runs the recipe's forward pass and loss under bfloat16 autocast (parameters,
gradients and the optimiser stay float32; bfloat16 has float32's range, so no loss scaling is
needed, unlike float16, which is refused here).
"""
from __future__ import annotations

import json
import pickle
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch

from napari_vos.checks import seed_problem
from napari_vos.data.file_locks import hold_folder
from napari_vos.nn.memory_format import prefer_channels_last
from napari_vos.nn.precision import autocast_for


class TrainingDiverged(ValueError):
    """The loss or the weights became NaN or infinite: the run stops without saving them, so
    ``last.pt`` and the export keep the last good step."""


def _finite(params: list[torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in params)


@contextmanager
def _signals_deferred() -> Any:
    """Ctrl+C or `kill` arriving while a checkpoint is written take effect once it is written (a
    second Ctrl+C, common while a 150 MB file is saved, would otherwise abort the save): their
    handlers only note them meanwhile, and the first one noted is raised at the end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda signum, frame: noted.append(signum)) for sig in held}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if noted:  # now to the handler the run had (Ctrl+C's KeyboardInterrupt, the CLI's SIGTERM as Ctrl+C)
        signal.raise_signal(noted[0])


class Recipe(Protocol):
    """What a method supplies to the loop (and `napari-vos train` to a recipe: `recipes.RECIPES`).

    ``default_lr`` (optional, else 1e-3): Adam's learning rate when the run names none
    (`napari-vos train` without ``--lr``): the paper's where it trains with Adam from a comparable
    start, otherwise the rate of the documented commands that made this project's checkpoints.
    ``export_tensors`` gives the shipped checkpoint's fp16 tensors and metadata (`train --export`;
    the module function `export_tensors` does the work). The shipped recipes are `clips.VideoMix`
    dataclasses, built by its ``from_options`` from the options every recipe takes.

    Optional too: ``starts_from_weights()`` and ``resume_regime(regime)`` (a resumed run is built as
    the saved one was, whether or not --init is given again: `clips.VideoMix`), and
    ``follow_steps(first_step, stride)`` (told the step its next batch trains, for batches whose kind
    follows the step: COSNet's alternation, across resumes and worker processes).
    """

    name: str

    def build(self, device: torch.device) -> torch.nn.Module: ...

    def batch(self, rng: np.random.Generator) -> Any: ...

    def loss(self, model: torch.nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, dict[str, float]]: ...

    def export_tensors(self, model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]: ...


def export_tensors(model: torch.nn.Module, method: str, config: str, **extra: str
                   ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """fp16 state dict and metadata for a shipped safetensors checkpoint (a recipe's ``export_tensors``).

    The metadata holds the method, the configuration's name, the network's configuration as JSON
    (``<method>_config``, what the method's ``build`` reads back), how frames are prepared for it
    (``preprocessing``, `weights.preprocessing`) and the recipe's ``extra`` entries.
    """
    from napari_vos.weights import preprocessing

    state = {k: v.detach().to(torch.float16) if v.is_floating_point() else v.detach()
             for k, v in model.state_dict().items()}
    limit = torch.finfo(torch.float16).max
    too_big = [k for k, v in model.state_dict().items()
               if v.is_floating_point() and v.numel() and bool(v.detach().abs().max() > limit)]
    if too_big:  # fp16 would store them as inf, and every load would then refuse the file as diverged
        raise ValueError(f"{len(too_big)} tensor(s) hold values beyond float16's range ({limit:g}) and cannot be "
                         f"exported as an fp16 checkpoint, e.g. {too_big[0]!r}; the last.pt checkpoint keeps them in "
                         "float32")
    meta = {"method": method, "config": config, f"{method}_config": json.dumps(model.config.to_dict()),
            "preprocessing": json.dumps(preprocessing(method)), **extra}
    return state, meta


#: the fraction of its steps after which a new run's rate drops 10x when it names none (`TrainSettings.lr_drop_at`)
LR_DROP_AT = 0.67


@dataclass
class TrainSettings:
    """The optimiser, schedule and bookkeeping of one training run (the recipe holds the data and losses)."""

    steps: int = 1000
    lr: float | None = None  # None: a resumed run's own rate, else the recipe's default_lr
    weight_decay: float = 1e-5
    # fraction of steps after which lr /= 10 (paper: 120 of 180 epochs); None: LR_DROP_AT for a new run, the
    # saved run's for a resumed one (`_drop_step`)
    lr_drop_at: float | None = None
    save_every: int = 100
    log_every: int = 10
    seed: int = 0
    max_minutes: float | None = None
    workers: int = 0  # processes drawing batches (training/prefetch.py); 0: drawn in the loop's own process
    precision: str = "fp32"  # "bf16": forward pass and loss under bfloat16 autocast

    def __post_init__(self) -> None:
        for name in ("steps", "save_every", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name.replace('_', '-')} must be a whole number >= 1, got {value!r}")
        if self.lr_drop_at is not None and not 0.0 < self.lr_drop_at <= 1.0:
            raise ValueError(f"lr-drop-at is the fraction of the steps after which the rate drops: in (0, 1], "
                             f"got {self.lr_drop_at}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"training precision must be 'fp32' or 'bf16', got {self.precision!r} (fp16 would "
                             "need loss scaling; bf16 has float32's range and needs none)")
        if self.lr is not None and not 0 < self.lr < float("inf"):  # inf: weights of inf after the first step
            raise ValueError(f"lr must be above 0 and finite, got {self.lr}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max-minutes must be above 0 (leave it out for no limit), got {self.max_minutes}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"workers must be a whole number >= 0, got {self.workers!r}")
        problem = seed_problem(self.seed)
        if problem:  # numpy's bare "expected non-negative integer" came after --out was made
            raise ValueError(problem)


def train(recipe: Recipe, out_dir: str | Path, settings: TrainSettings, device: str = "cpu", resume: bool = False,
          log: Callable[[str], None] = print,
          on_save: Callable[[torch.nn.Module, int], None] | None = None) -> torch.nn.Module:
    """Run (or continue) a training run in ``out_dir``; returns the trained model.

    ``on_save(model, step)`` runs after every save of ``last.pt`` (the CLI exports the shipped
    weights there, so a run cut off anywhere leaves a usable checkpoint).
    """
    out = Path(out_dir)
    dev = torch.device(device)
    if dev.type == "cuda":  # crops have one size per run: let cuDNN pick its fastest kernels once
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(settings.seed)
    state_path = out / "last.pt"
    config = getattr(recipe, "config", None)
    stage = getattr(recipe, "stage", None)  # RGMP's and RVOS's --config ARCH:STAGE
    given = config if stage is None else f"{config}:{stage}"  # as --config names it
    state = _saved_run(state_path, recipe, config, stage, log) if resume and state_path.exists() else None
    if state is not None and state.get("regime") and hasattr(recipe, "resume_regime"):
        recipe.resume_regime(state["regime"])  # built as the saved run was, whatever --init says now
    model = prefer_channels_last(recipe.build(dev), dev)
    out.mkdir(parents=True, exist_ok=True)  # after the build: a refused one (ImageNet offline) leaves no empty folder
    # one run trains into a folder at a time (a job submitted twice): the lock goes with this call's frame,
    # and at the end with the `finally` below
    held = hold_folder(out, "training run")
    regime = _regime(recipe, model)
    if state is not None:
        _check_same_regime(state, regime, recipe, state_path)  # before the optimiser takes the parameters
        if state["step"] < settings.steps:  # not for a finished run resumed to export its weights: none would train
            _check_same_data(state, recipe, state_path)
    params = [p for p in model.parameters() if p.requires_grad]
    named_lr = settings.lr is not None
    settings = replace(settings, lr=settings.lr if named_lr else recipe_lr(recipe))
    drop_step, drop_at = _drop_step(settings, state)
    settings = replace(settings, lr_drop_at=drop_at)
    opt = torch.optim.Adam(params, lr=settings.lr, betas=(0.9, 0.999), weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[drop_step], gamma=0.1)
    step = 0
    resumed_running: dict[str, float] = {}
    minutes_before = 0.0  # a resumed run's training minutes so far: the log's "minutes" go on from them
    rng = np.random.default_rng(settings.seed)
    if state is not None:
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as err:  # other tensors or shapes: another configuration's network
            detail = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
            raise ValueError(f"{state_path} holds another network than {recipe.name} --config "
                             f"{given} builds ({detail[:300]}): resume "
                             "with the run's own --config, or give another --out") from None
        try:
            opt.load_state_dict(state["optimizer"])
        except ValueError:  # another set of trained parameters (a last.pt of a version that kept no regime)
            raise ValueError(f"{state_path} trained other parameters than this run would: the saved run was given "
                             "another --train-backbone-from, or was started with --init or --backbone-weights and "
                             "this one not (or the other way round; A-GAME and COSNet train only the deep backbone "
                             "stage of a network started from trained weights). This last.pt was saved by an older "
                             "napari-vos that kept no record of it: resume with the run's own --init, "
                             "--backbone-weights and --train-backbone-from, or give another --out") from None
        saved_lr = state.get("settings", {}).get("lr")
        if saved_lr is None:  # saved before last.pt kept its settings (older versions): the schedule's starting rate
            saved_lr = next(iter(state["optimizer"].get("param_groups") or [{}])).get("initial_lr")
        if not named_lr and saved_lr is not None:  # no --lr: the run goes on at its own rate
            settings = replace(settings, lr=float(saved_lr))
        changed = _changes(state.get("settings", {}), _run_settings(settings, recipe))
        if changed:
            log(f"resuming with changed settings: {changed}")
        sched.load_state_dict(state["scheduler"])
        # the schedule follows this call's settings, so a resumed run can be given more steps
        from collections import Counter

        step = state["step"]
        sched.milestones = Counter([drop_step])
        for group in opt.param_groups:
            group["lr"] = settings.lr * (0.1 if step >= drop_step else 1.0)
        rises = _rate_rises(state, step, drop_step)
        if rises:
            log(rises)
        # batches from (seed, step): a new stream, which no run of another --seed draws (seed + step collided)
        rng = np.random.default_rng([settings.seed, step])
        if "torch_rng" in state:  # torch's stream (FRTM's target-model start noise) goes on, not replays
            torch.set_rng_state(state["torch_rng"].cpu())
        if "cuda_rng" in state and dev.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), dev)
        resumed_running = dict(state.get("running", {}))  # the log's averages go on from where they were
        minutes_before = float(state.get("minutes", 0.0))  # 0 in a last.pt of a version that did not keep it
        log(f"resumed {recipe.name} from {state_path} at step {step}")
        regime_saved = state.get("regime")
        if getattr(recipe, "init_checkpoint", None):
            log(f"--init {recipe.init_checkpoint}: the weights come from {state_path}, not from it"
                + (f", and the run trains as it was saved ({_describe_regime(regime_saved)})" if regime_saved else ""))
        if not regime_saved and hasattr(recipe, "starts_from_weights"):
            log(f"{state_path} was saved by an older napari-vos that did not record whether the run started from "
                f"trained weights: it goes on as this call's --init and --backbone-weights say ("
                f"{'from trained weights' if recipe.starts_from_weights() else 'from random weights'}: S2S's and "
                "RVOS's batch norm, A-GAME's and COSNet's backbone stages); if the run was started otherwise, stop "
                "and resume with its own --init")
    elif resume:
        log(f"no {state_path} to resume from; starting a new run")
    elif state_path.exists():  # a new run must not overwrite another one's state
        raise ValueError(f"{state_path} holds an earlier run: pass --resume to continue it, or give another --out")
    log(f"learning rate {settings.lr:g}" + ("" if named_lr else " (--lr not given: "
        + ("the resumed run's own)" if resume and step else f"{recipe.name}'s default)"))
        + (f", now {settings.lr * 0.1:g}: 10x lower since step {drop_step}" if step and step >= drop_step else ""))
    if resume and step >= settings.steps:
        log(f"{state_path} is already at step {step} of --steps {settings.steps}: nothing to train; raise --steps "
            "to continue it" + ("; its weights are exported as they are" if on_save is not None else ""))
        if on_save is not None:  # `--resume --export F`: the way to get a finished run's weights
            on_save(model, step)
        return model
    (out / "last.pt.tmp").unlink(missing_ok=True)  # a save cut off by SIGKILL
    if step == 0:
        _set_aside_log(out / "log.jsonl", log)  # an earlier run's, without a last.pt: kept, not cut
    _cut_log(out / "log.jsonl", step)  # lines of steps after the resumed one are logged again below
    saved = {"step": step}  # the step last.pt holds (0: none): only later steps are worth a save

    def kept() -> str:
        """What a diverged run can go on from: last.pt's step, or nothing when none was saved yet."""
        if saved["step"]:
            return f"{state_path} keeps step {saved['step']} (lower --lr, then --resume)"
        return f"nothing was saved yet, so there is no {state_path} to resume (lower --lr and start again)"

    def minutes() -> float:
        """Minutes of training: this call's on the monotonic clock, which a wall clock set back or
        forward (NTP, a resumed VM) does not move, plus those of the calls a resumed run goes on from."""
        return minutes_before + (time.monotonic() - started) / 60

    def save() -> None:
        if not _finite(params):
            raise TrainingDiverged(f"the weights became NaN or infinite by step {step}: not saved; {kept()}")
        with _signals_deferred():
            tmp = out / "last.pt.tmp"
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "step": step, "recipe": recipe.name, "config": config, "stage": stage,
                        "settings": _run_settings(settings, recipe), "running": dict(running),
                        "regime": regime, "drop_step": drop_step,
                        "minutes": minutes(),
                        "torch_rng": torch.get_rng_state(),
                        **({"cuda_rng": torch.cuda.get_rng_state(dev)} if dev.type == "cuda" else {})}, tmp)
            tmp.replace(state_path)
            saved["step"] = step
            if on_save is not None:
                on_save(model, step)

    stream = None
    if settings.workers > 0:
        from napari_vos.training.prefetch import batch_stream

        stream = batch_stream(recipe, settings.workers, settings.seed, step, pin_memory=dev.type == "cuda")
        next_batch: Callable[[], Any] = lambda: next(stream)  # noqa: E731
    else:
        if hasattr(recipe, "follow_steps"):  # a batch's kind that follows the step (COSNet's alternation)
            recipe.follow_steps(step)
        next_batch = lambda: recipe.batch(rng)  # noqa: E731
    model.train()
    started = time.monotonic()
    running: dict[str, float] = resumed_running
    log_file = (out / "log.jsonl").open("a")
    try:
        while step < settings.steps:
            batch = next_batch()
            with autocast_for(settings.precision, dev):
                loss, stats = recipe.loss(model, batch, dev)
            if not bool(torch.isfinite(loss.detach())):
                raise TrainingDiverged(f"the loss is {float(loss.detach())} at step {step + 1}: the run diverged; "
                                       f"{kept()}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            trained_at = opt.param_groups[0]["lr"]  # the rate this step trains at (the scheduler moves it next)
            opt.step()
            sched.step()
            step += 1
            for k, v in {"loss": float(loss.detach()), **stats}.items():
                running[k] = 0.9 * running.get(k, v) + 0.1 * v
            if step % settings.log_every == 0:
                rec = {"step": step, "minutes": round(minutes(), 2), "lr": trained_at,
                       **{k: round(v, 4) for k, v in running.items()}}
                log_file.write(json.dumps(rec) + "\n")
                log_file.flush()
                log(" ".join(f"{k}={v}" for k, v in rec.items()))
            if step % settings.save_every == 0:
                save()
            if settings.max_minutes and (time.monotonic() - started) / 60 > settings.max_minutes:  # this call's
                log(f"stopping at step {step}: time budget of {settings.max_minutes} min reached")
                break
    except TrainingDiverged:
        raise  # nothing saved: the last good state stays
    except BaseException:  # Ctrl+C, SIGTERM, an error: keep the steps done since the last save if sound
        if step > saved["step"]:
            try:
                save()
            except TrainingDiverged as diverged:
                log(str(diverged))
        raise
    else:
        if step > saved["step"]:
            save()
        log(f"done: step {step} of {settings.steps}; {state_path}")
    finally:
        log_file.close()
        if held is not None:
            held.close()
        if stream is not None:
            from napari_vos.training.prefetch import stop_workers

            stop_workers(stream)
    return model


def _saved_run(state_path: Path, recipe: Recipe, config: str | None, stage: str | None,
               log: Callable[[str], None]) -> dict[str, Any]:
    """The last.pt a resumed run continues, read and checked to be the same method and --config."""
    given = config if stage is None else f"{config}:{stage}"  # as --config names it
    try:
        # on the CPU: load_state_dict copies the weights and the optimiser's moments to the device,
        # while Adam's "step" counters stay where they were loaded (a GPU copy: one host sync per
        # parameter per step for its bias correction)
        state = load_run_state(state_path)
    except pickle.UnpicklingError as err:
        if "Unsupported global" not in str(err):  # no refused object: bytes that are no pickle (damaged)
            raise ValueError(f"{state_path} cannot be read (it is not a saved run: damaged, or another file "
                             "under that name); continue from the run's last export with --init in another "
                             "--out, or delete it to start afresh") from err
        # what weights_only refuses: a Python object of another kind
        raise ValueError(f"{state_path} holds Python objects besides tensors, numbers and text, which no "
                         "napari-vos run saves; it is not read, since reading them could run code (a last.pt "
                         "from someone else): continue from the run's export with --init in another --out"
                         ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"{state_path} cannot be read ({type(err).__name__}: {err}): it was cut off or damaged "
                         "(a full disk, an interrupted copy); continue from the run's last export with --init "
                         "in another --out, or delete it to start afresh") from err
    saved = (state.get("recipe"), state.get("config", config), state.get("stage", stage))
    if saved != (recipe.name, config, stage):
        was = saved[1] if saved[2] is None else f"{saved[1]}:{saved[2]}"
        raise ValueError(f"{state_path} is a {saved[0]} run (config {was!r}), not {recipe.name} (config "
                         f"{given!r}): resume it with the same method and --config, or start the next stage "
                         f"in another --out from this one's export (--init)")
    if "config" not in state or ("stage" not in state and stage is not None):  # older versions recorded neither
        unrecorded = "--config" if "config" not in state else "stage (the part of --config after ':')"
        log(f"{state_path} was saved by an older napari-vos that did not record the run's {unrecorded}: it goes "
            f"on as {recipe.name} --config {given}; if it was trained "
            "with another, stop and resume with that one")
    return state


def _regime(recipe: Recipe, model: torch.nn.Module) -> dict[str, Any]:
    """How a run trains, kept in last.pt so that a resume trains the same way whatever --init says
    then: whether the network started from trained weights (the recipe's ``starts_from_weights``,
    which decides batch norm and A-GAME's and COSNet's "auto" backbone stages), whether batch norm's
    statistics are fixed, and which parameters train."""
    starts = getattr(recipe, "starts_from_weights", None)
    return {"from_weights": starts() if starts is not None else None,
            "freeze_batchnorm": getattr(model, "freeze_batchnorm", None),
            "trainable": [name for name, p in model.named_parameters() if p.requires_grad]}


def _describe_regime(regime: dict[str, Any]) -> str:
    """``"started from trained weights, batch-norm statistics fixed, 62 parameter tensors trained"``."""
    parts = [] if regime.get("from_weights") is None else [
        "started from trained weights" if regime["from_weights"] else "started from random weights"]
    if regime.get("freeze_batchnorm") is not None:
        parts.append("batch-norm statistics " + ("fixed" if regime["freeze_batchnorm"] else "trained"))
    parts.append(f"{len(regime.get('trainable', []))} parameter tensors trained")
    return ", ".join(parts)


def _check_same_regime(state: dict[str, Any], regime: dict[str, Any], recipe: Recipe, state_path: Path) -> None:
    """Refuse a resume whose network would train other parameters, or batch norm otherwise, than the
    saved run did, saying what differs (a last.pt of an older version keeps no regime: the
    optimiser's own check stands in)."""
    saved = state.get("regime")
    if not saved:
        return
    trained, was_trained = set(regime["trainable"]), set(saved.get("trainable", []))
    stages_now = getattr(recipe, "train_backbone_from", None)
    stages_then = state.get("settings", {}).get("train_backbone_from", stages_now)
    reason = (f": --train-backbone-from is {stages_now!r} here, {stages_then!r} in the saved run"
              if stages_now != stages_then else "")
    if trained != was_trained:
        extra, missing = sorted(trained - was_trained), sorted(was_trained - trained)
        what = (f"it would train {len(extra)} parameter tensor(s) the saved run kept fixed, such as {extra[0]}"
                if extra else f"it would keep {len(missing)} parameter tensor(s) fixed that the saved run trained, "
                f"such as {missing[0]}")
        raise ValueError(f"{state_path} trained other parameters than this run would ({what}){reason}; resume "
                         "with the saved run's options, or give another --out")
    if saved.get("freeze_batchnorm") is not None and saved["freeze_batchnorm"] != regime["freeze_batchnorm"]:
        then = "fixed" if saved["freeze_batchnorm"] else "trained"
        raise ValueError(f"{state_path}'s run kept batch norm's statistics {then}, and this one would not; resume "
                         "with the saved run's options, or give another --out")


def _check_same_data(state: dict[str, Any], recipe: Recipe, state_path: Path) -> None:
    """Refuse a resume without --data of a run that trained on real videos: it would go on with
    synthetic videos alone, which cannot be undone (other folders change the data on purpose)."""
    saved_dirs = state.get("settings", {}).get("real_dirs") or []
    if saved_dirs and not getattr(recipe, "real_dirs", None):
        raise ValueError(f"{state_path}'s run trained on --data {' '.join(map(str, saved_dirs))}, and this resume "
                         "names no --data, so it would go on with synthetic videos alone: give the same --data "
                         "again (or other folders, to change the data on purpose)")


def _saved_drop_step(state: dict[str, Any]) -> int | None:
    """The step after which a saved run's rate drops: kept in last.pt, or (older versions) its scheduler's milestone."""
    if state.get("drop_step") is not None:
        return int(state["drop_step"])
    milestones = state.get("scheduler", {}).get("milestones")
    return int(max(milestones)) if milestones else None


def _drop_step(settings: TrainSettings, state: dict[str, Any] | None) -> tuple[int, float]:
    """The step after which the rate drops 10x, and the --lr-drop-at fraction it comes from.

    A new run: ``lr_drop_at`` (default `LR_DROP_AT`) of its steps. A resumed run: a drop its steps
    have already trained past stays where it was (raising --steps must not put the rate back up);
    one still ahead moves with --steps, at the saved fraction; a --lr-drop-at other than the saved
    run's moves it on purpose.
    """
    if state is None:
        fraction = settings.lr_drop_at if settings.lr_drop_at is not None else LR_DROP_AT
        return int(settings.steps * fraction), fraction
    saved_fraction = state.get("settings", {}).get("lr_drop_at")
    saved_fraction = float(saved_fraction) if saved_fraction is not None else LR_DROP_AT
    if settings.lr_drop_at is not None and settings.lr_drop_at != saved_fraction:
        return int(settings.steps * settings.lr_drop_at), settings.lr_drop_at
    taken = _saved_drop_step(state)
    if taken is not None and state["step"] > taken:
        return taken, saved_fraction
    return int(settings.steps * saved_fraction), saved_fraction


def _rate_rises(state: dict[str, Any], step: int, drop_step: int) -> str:
    """A warning when a resumed run trains at the undropped rate again after the saved run dropped it
    (a --lr-drop-at other than the saved run's put the drop later); "" otherwise."""
    taken = _saved_drop_step(state)
    if taken is None or step <= taken or step >= drop_step:
        return ""
    span = f"step {drop_step}" if step + 1 == drop_step else f"steps {step + 1} to {drop_step}"
    return (f"warning: the learning rate goes back up 10x for {span}: the saved run "
            f"dropped it after step {taken}, and this call's --lr-drop-at puts the drop after step {drop_step}; "
            "stop now and resume with the saved run's --lr-drop-at (or none) to keep it dropped")


def recipe_lr(recipe: Recipe) -> float:
    """Adam's rate for a run that names none: the recipe's ``default_lr``; a recipe of one's own
    without one trains at 1e-3, as every run did before recipes had one."""
    return float(getattr(recipe, "default_lr", 1e-3))


def load_run_state(path: Path, mmap: bool = False) -> dict[str, Any]:
    """A run's last.pt, read without running code: ``weights_only`` unpickles tensors, numbers,
    strings and containers only (a last.pt handed on by someone else cannot run anything when it is
    resumed), plus the paths a Python caller may have given as ``real_dirs``. A file holding other
    objects is a ``pickle.UnpicklingError``."""
    import pathlib

    paths = [pathlib.PosixPath, pathlib.WindowsPath, pathlib.PurePosixPath, pathlib.PureWindowsPath]
    allowed = getattr(torch.serialization, "safe_globals", None)  # torch 2.5 on
    if allowed is None:  # torch 2.4: registered for the process (harmless classes)
        torch.serialization.add_safe_globals(paths)
    with allowed(paths) if allowed is not None else nullcontext():
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


def _run_settings(settings: TrainSettings, recipe: Recipe) -> dict[str, Any]:
    """What a run was given, kept in last.pt so that a resume can say what changed."""
    from dataclasses import asdict

    kept = {k: v for k, v in asdict(settings).items() if k not in ("save_every", "log_every", "max_minutes", "workers")}
    for name in ("size", "batch_size", "real_dirs", "synthetic_fraction", "train_backbone_from", "synthetic_cells",
                 "photometric", "n_frames", "clip_length"):
        if hasattr(recipe, name):
            value = getattr(recipe, name)
            kept[name] = list(value) if isinstance(value, (tuple, list)) else value
    return json.loads(json.dumps(kept, default=str))  # plain values only (a Path as its text): `load_run_state`


def _changes(before: dict[str, Any], now: dict[str, Any]) -> str:
    """``"lr 0.001 -> 0.0001, size [192, 320] -> [240, 432]"`` for the settings that differ."""
    before = json.loads(json.dumps(before, default=str))  # an older last.pt's Paths and tuples, as now kept
    return ", ".join(f"{k} {before[k]} -> {now[k]}" for k in now if k in before and before[k] != now[k])


def _set_aside_log(path: Path, log: Callable[[str], None]) -> None:
    """A new run's folder may hold the log of a run that never saved (killed before its first
    save) or whose last.pt was moved away: renamed to log.earlier-N.jsonl rather than emptied."""
    if not path.exists() or not path.stat().st_size:
        return
    n = 1
    while (aside := path.with_name(f"log.earlier-{n}.jsonl")).exists():
        n += 1
    path.replace(aside)
    log(f"{path} of an earlier run is kept as {aside.name}")


def _cut_log(path: Path, step: int) -> None:
    """Drop the log lines of steps after ``step`` (a run killed after logging them but before its
    next save repeats those steps when resumed), so the log has one line per step."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except json.JSONDecodeError:  # a line cut off by a kill
            continue
    path.write_text("".join(f"{line}\n" for line in kept))
