"""`napari-vos train METHOD`: the training command, its checks and its export of the trained weights.

The loop itself is `training.loop.train`; this module reads the command line into a recipe and
settings, refuses bad values before anything is made, and writes the fp16 safetensors a method ships
(with how they were trained in their metadata) at every save.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

from napari_vos.cli_inputs import check_writable
from napari_vos.cli_terminal import stops_as_interrupt
from napari_vos.data.file_locks import FOLDER_LOCK

__all__ = ["cmd_train", "register"]


def register(subparsers: Any) -> None:
    """Add `train` to the CLI's subcommands."""
    p = subparsers.add_parser("train", help="train a method (resumable)")
    from napari_vos.training.recipes import TRAINABLE

    p.add_argument("method", help=f"{', '.join(TRAINABLE[:-1])} or {TRAINABLE[-1]}")
    p.add_argument("--data", action="append", help="real video folder(s) (DAVIS or images/masks layout)")
    p.add_argument("--steps", type=int, default=3000, help="optimiser steps in all (default 3000); raise it to "
                   "continue a finished run with --resume")
    p.add_argument("--size", default=None, help="training crop WxH, e.g. 288x160 (default: the method's, "
                   "e.g. frtm 320x192)")
    p.add_argument("--batch-size", type=int, default=None, help="clips per step (default: the method's)")
    p.add_argument("--synthetic-fraction", type=float, default=None,
                   help="share of the videos that are synthetic, with --data (default 0.5; without --data all are)")
    p.add_argument("--synthetic-cells", type=float, default=0.0,
                   help="share of the synthetic videos that are microscopy time-lapses (cells; default 0: all natural-like)")
    p.add_argument("--photometric", type=float, default=0.0,
                   help="chance that a training video's intensities are changed, as propagation's percentile stretch "
                        "of 16-bit data does or by a random contrast, brightness and gamma (default 0: none)")
    p.add_argument("--config", default=None, help="method configuration (default: frtm fast, the others light; frtm: fast|full; agame: light|full; rgmp: light:pretrain|light:video|light:windows|"
                        "paper:...; s2s: light|paper; osvos_at: light|paper; cosnet: light|paper[:vanilla|symmetric|channel]; "
                        "rvos: light|paper:teacher|inferred|zero)")
    p.add_argument("--backbone-weights", default=None, choices=["imagenet"],
                   help="start the backbone from torchvision's ImageNet weights (needs internet)")
    p.add_argument("--init", default=None, help="start from a checkpoint (safetensors)")
    p.add_argument("--train-backbone-from", default=None, choices=["stem", "conv2", "conv3", "conv4", "conv5", "none"],
                   help="first backbone stage to train (earlier ones frozen); 'none' freezes the backbone")
    p.add_argument("--lr", type=float, default=None,
                   help="Adam's learning rate (default: a resumed run's own, else the method's: frtm 1e-3 as in "
                        "its paper, agame, cosnet, osvos_at, rvos and s2s 1e-4, rgmp 1e-4 pre-training and 2e-5 "
                        "video and windows stages)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, mps or auto")
    p.add_argument("--out", default=None, help="run folder (default runs/METHOD)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--save-every", type=int, default=50, help="steps between saves of OUT/last.pt (and --export) "
                   "(default 50)")
    p.add_argument("--log-every", type=int, default=10, help="steps between lines of OUT/log.jsonl (default 10)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop (saved, exported) after this many minutes "
                   "of training (default: no limit)")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights' start and the batches drawn (default 0; "
                   "give a new one when continuing in a later session from --init)")
    p.add_argument("--threads", type=int, default=None, help="torch's CPU threads (default: torch's choice)")
    p.add_argument("--export", default=None,
                   help="write the trained weights (fp16 safetensors) here, at every save and at the end")
    p.add_argument("--workers", type=int, default=None,
                   help="processes drawing training batches (0: in the training process; default: none on the "
                        "CPU, all cores but two, at most 12, with --device cuda)")
    p.add_argument("--lr-drop-at", type=float, default=None,
                   help="fraction of --steps after which the learning rate drops 10x (default 0.67; a resumed run keeps its "
                        "saved value, and a drop it has passed stays passed when --steps grows)")
    p.add_argument("--clip-frames", type=int, default=None,
                   help="frames per training clip (agame: default 8, the paper's later stage 14; rvos: default 5)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="bf16: forward pass and loss under bfloat16 autocast (weights and optimiser stay fp32); "
                        "for GPUs and CPUs with bfloat16 instructions")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    """`napari-vos train METHOD`: build the recipe, run (or resume) the training loop, export the weights."""
    import torch

    from napari_vos.session import resolve_device
    from napari_vos.training.loop import TrainSettings, train
    from napari_vos.training.recipes import make_recipe

    device = str(resolve_device(args.device))  # "cuda" without a GPU, "gpu": a sentence, not torch's assert
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.size and not re.fullmatch(r"[1-9]\d*x[1-9]\d*", args.size):
        raise ValueError(f"--size takes WIDTHxHEIGHT in pixels, such as 384x216; got {args.size!r}")
    if args.size and min(int(s) for s in args.size.split("x")) < 48:  # 2 x 2 cells at the networks' stride 32
        raise ValueError(f"--size must be at least 48 pixels on each side (the networks reach stride 32, where "
                         f"batch norm needs more than one value); got {args.size}")
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.synthetic_fraction is not None and not 0.0 <= args.synthetic_fraction <= 1.0:
        raise ValueError(f"--synthetic-fraction is a fraction of the videos, in [0, 1]; got {args.synthetic_fraction}")
    if args.backbone_weights == "imagenet":  # before any folder is made: torchvision is an optional extra
        from napari_vos.nn.imagenet import torchvision_models

        try:
            torchvision_models()
        except RuntimeError as err:
            print(f"napari-vos train: error: {err}", file=sys.stderr)
            return 2
    if not args.data:
        if args.synthetic_fraction not in (None, 1.0):
            raise ValueError("--synthetic-fraction mixes real videos with synthetic ones: it needs --data "
                             "(without it every training video is synthetic)")
        args.synthetic_fraction = 1.0
        print("no --data: training on synthetic videos alone (--data DIR adds real annotated videos, "
              "such as DAVIS 2016 train)", flush=True)
    elif args.synthetic_fraction is None:
        args.synthetic_fraction = 0.5
    recipe = make_recipe(args.method, size=tuple(int(s) for s in args.size.split("x"))[::-1] if args.size else None,
                         real_dirs=args.data or [], synthetic_fraction=args.synthetic_fraction,
                         batch_size=args.batch_size, config=args.config, backbone_weights=args.backbone_weights,
                         init_checkpoint=args.init, train_backbone_from=args.train_backbone_from,
                         clip_frames=args.clip_frames, synthetic_cells=args.synthetic_cells,
                         photometric=args.photometric)
    settings = TrainSettings(steps=args.steps, lr=args.lr, save_every=args.save_every, seed=args.seed,
                             max_minutes=args.max_minutes, workers=_train_workers(args.workers, device),
                             log_every=args.log_every, precision=args.precision,
                             **({"lr_drop_at": args.lr_drop_at} if args.lr_drop_at is not None else {}))
    out_dir = Path(args.out or f"runs/{args.method}")
    if out_dir.exists() and not out_dir.is_dir():  # else "[Errno 17] File exists" from the loop's mkdir
        raise ValueError(f"--out {out_dir} is a file; the run's folder (last.pt, log.jsonl) needs a folder name")
    resuming = args.resume and (out_dir / "last.pt").exists()
    if args.export:  # before the training, not at its first save
        _check_export(Path(args.export), resuming, out_dir)
    on_save = _exporter(recipe, args.export, args, out_dir / "last.pt" if resuming else None) if args.export else None
    try:
        with stops_as_interrupt():  # `kill` ends a run as Ctrl+C does: saved, exported
            train(recipe, out_dir, settings, device=device, resume=args.resume, on_save=on_save)
    except KeyboardInterrupt:
        state = out_dir / "last.pt"
        print(f"stopped; {state} holds the last step" if state.exists() else
              "stopped before the first step; nothing was saved", flush=True)
        return 130
    return 0


#: what a run keeps in its --out folder, which --export must not replace (the run could not be resumed)
_RUN_FILES = ("last.pt", "last.pt.tmp", "log.jsonl", FOLDER_LOCK)


def _check_export(export: Path, resuming: bool, out_dir: Path) -> None:
    """``train --export``: writable, never a registered checkpoint's file (the shipped method would
    fail its sha256 check) nor one the run keeps in its folder (last.pt, log.jsonl), and for a new
    run not an existing file, which its first save replaces."""
    from napari_vos import weights

    if export.resolve() in {(out_dir / name).resolve() for name in _RUN_FILES}:
        raise ValueError(f"--export {export} is the run's own {export.name} in --out {out_dir}, which the export would "
                         f"replace (and the run could not be resumed): export to another name, such as "
                         f"{out_dir / 'weights.safetensors'}")
    check_writable(export, folder=False, what="the weights")
    owner = weights.registered_at(export)
    if owner is not None:
        raise ValueError(f"--export {export} is the registered checkpoint {owner.name!r}'s file: export to another "
                         "name (a trained file is shipped by copying it there with a new registry entry)")
    if export.exists() and not resuming:
        raise ValueError(f"--export {export} already exists, and this new run would replace it at its first save: "
                         "give another name, delete the file first, or continue the run that wrote it (--resume "
                         "with its --out)")


def _train_workers(requested: int | None, device: str) -> int:
    """Batch-drawing processes: as asked, else on a GPU all cores but two (at most 12), else none
    (a CPU run's cores are busy with the step itself)."""
    if requested is not None:
        return requested
    if device.startswith("cuda"):
        return max(1, min(12, (os.cpu_count() or 1) - 2))
    return 0


def _exporter(recipe: Any, path: str, args: argparse.Namespace | None = None, resuming: Path | None = None) -> Any:
    """The ``on_save`` hook writing the shipped weights (fp16 safetensors) at every save of a run,
    with how they were trained (``args``: the train command's) in the file's metadata; ``resuming``:
    the last.pt a resumed run continues, whose own rate it keeps without --lr."""
    from napari_vos import weights

    how = {} if args is None else _training_record(args)
    if args is not None and args.lr is None:  # the loop's choice: the recipe's rate, or a resumed run's own
        from napari_vos.training.loop import recipe_lr

        how["train_lr"] = str(_saved_lr(resuming) if resuming else recipe_lr(recipe))
    if args is not None and args.init is None and resuming and Path(path).is_file():
        earlier = _export_metadata(Path(path)).get("train_init")  # the run's start, which a resume need not repeat
        if earlier:
            how["train_init"] = earlier

    saved_step, saved = _saved_run(resuming) if resuming else (None, {})

    def on_save(model: Any, step: int) -> None:
        tensors, meta = recipe.export_tensors(model)
        # a finished run exported as it is (nothing trained now): how it was trained, not this command's flags
        made = _record_of_saved(saved) if step == saved_step and saved else {}
        sha = weights.save_checkpoint(path, tensors, {**how, **meta, **made, "step": str(step)})
        print(f"exported {path} at step {step} (sha256 {sha})", flush=True)

    return on_save


def _export_metadata(path: Path) -> dict[str, str]:
    """An earlier export's metadata ({} where it cannot be read)."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception:  # noqa: BLE001 - a missing or damaged earlier export only loses the record
        return {}


def _saved_lr(state_path: Path) -> float | str:
    """The learning rate a saved run trained at (its last.pt's settings); "the resumed run's" where
    the file does not say."""
    try:
        return float(_saved_run(state_path)[1]["lr"])
    except (KeyError, TypeError, ValueError):
        return "the resumed run's"


def _saved_run(state_path: Path) -> tuple[int | None, dict[str, Any]]:
    """A saved run's step and settings (its last.pt's, memory-mapped); (None, {}) where it cannot be read."""
    import pickle

    from napari_vos.training.loop import load_run_state

    try:
        state = load_run_state(state_path, mmap=True)
        return int(state["step"]), dict(state.get("settings") or {})
    except (OSError, KeyError, TypeError, ValueError, RuntimeError, pickle.UnpicklingError):
        return None, {}


#: the export metadata's ``train_*`` fields a run's settings give: field -> its name as a train flag's
#: value (``args``) and in last.pt's settings, which are the same
_RECORDED = {"synthetic_fraction": "synthetic_fraction", "synthetic_cells": "synthetic_cells",
             "photometric": "photometric", "train_backbone_from": "train_backbone_from", "lr": "lr",
             "lr_drop_at": "lr_drop_at", "steps_planned": "steps", "batch_size": "batch_size", "seed": "seed",
             "precision": "precision"}


def _as_metadata(fields: dict[str, Any]) -> dict[str, str]:
    """``fields`` as safetensors metadata: ``train_``-named strings, None left out."""
    return {f"train_{k}": str(v) for k, v in fields.items() if v is not None}


def _data_names(dirs: Any) -> str:
    """The real data folders a run drew from, by name, or "synthetic only"."""
    return ",".join(Path(d).name for d in dirs or []) or "synthetic only"


def _record_of_saved(settings: dict[str, Any]) -> dict[str, str]:
    """The export metadata a saved run's settings give (`_training_record`'s fields, and its size as
    WxH), for a finished run exported by a later command whose flags trained nothing."""
    fields = {field: settings.get(name) for field, name in _RECORDED.items()}
    if "real_dirs" in settings:
        fields["data"] = _data_names(settings["real_dirs"])
    size = settings.get("size")
    if isinstance(size, (list, tuple)) and len(size) == 2:
        fields["size"] = f"{size[1]}x{size[0]}"  # kept (H, W); the command and the metadata say WxH
    return _as_metadata(fields)


def _training_record(args: argparse.Namespace) -> dict[str, str]:
    """The train command's settings as safetensors metadata (strings): the data, the start, the
    schedule and the seed, so an exported file says how it was made (``step`` counts this run's)."""
    init = args.init
    if init is not None:
        from napari_vos import weights

        try:
            path, info = weights.resolve(init)  # a registered file's sha256 is checked there: not read twice
            init = f"{init} (sha256 {(info.sha256 if info is not None else weights.sha256_of(path))[:12]})"
        except (weights.CheckpointError, OSError):
            pass
    return _as_metadata({"data": _data_names(args.data), "init": init,
                         **{field: getattr(args, name) for field, name in _RECORDED.items()}})
