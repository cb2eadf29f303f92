"""A method's network from a checkpoint: the one loading path of the methods' ``build`` classmethods.

A checkpoint (a registered name or a safetensors path, default: the method's shipped one) must be
the method's own, its network is built from the configuration stored in its metadata (the
recipe's ``export_tensors`` writes ``<method>_config``), and every tensor must fit that network.
"""
from __future__ import annotations

import json
from contextlib import nullcontext
from typing import Any, Callable, TypeVar

import torch
from torch import nn

M = TypeVar("M")


def stored_config(meta: dict[str, str], method: str, config_type: Any) -> Any | None:
    """The network configuration stored as ``<method>_config`` in the metadata, or None."""
    key = f"{method}_config"
    return config_type.from_dict(json.loads(meta[key])) if key in meta else None


def checkpoint_config(meta: dict[str, str], method: str, config_type: Any, configs: dict[str, Any],
                      default: str) -> Any:
    """The network configuration a checkpoint's metadata describes: its stored ``<method>_config``,
    else the configuration its ``config`` field names (``default`` when it names none); a name this
    version does not know is a ValueError listing the known ones."""
    stored = stored_config(meta, method, config_type)
    if stored is not None:
        return stored
    name = meta.get("config") or default
    if name not in configs:
        raise ValueError(f"its metadata names configuration {name!r}, which this version does not know "
                         f"({', '.join(configs)})")
    return configs[name]


def _check_shapes(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], what: str) -> None:
    """A CheckpointError("{what}: ...") for tensors of ``state`` whose shapes differ from the network's ``own``."""
    from napari_vos.weights import CheckpointError

    wrong = [f"{k} {tuple(v.shape)} (the network's: {tuple(own[k].shape)})" for k, v in state.items()
             if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if wrong:  # load_state_dict(strict=False) raises torch's RuntimeError for these
        raise CheckpointError(f"{what}: {len(wrong)} tensors of other shapes, e.g. {'; '.join(wrong[:3])} "
                              "(a checkpoint of another configuration of the network?)")


def load_fitting(network: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Load ``state`` into ``network``; a missing or unexpected tensor raises CheckpointError("{what}: ...")."""
    from napari_vos.weights import CheckpointError

    _check_shapes(network.state_dict(), state, what)
    missing, unexpected = network.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{what}: missing {missing[:5]}, unexpected {unexpected[:5]}")


def load_network(checkpoint: str | None, method: str, title: str, network: Callable[[dict[str, str]], nn.Module],
                 accept_unnamed: bool = False, notes: list[str] | None = None) -> tuple[nn.Module, str, str]:
    """(network, checkpoint name, sha256) of ``method``'s checkpoint (None: its default).

    ``network(meta)`` builds the network from the checkpoint's metadata; ``title`` names it in
    errors. The metadata must name ``method``; with ``accept_unnamed`` a checkpoint naming no
    method is taken too. A checkpoint made for frames prepared otherwise is warned of, or, with
    ``notes``, the warning's text appended there (the Session notes it where the widget shows it).
    A configuration the metadata names that cannot be built here, and NaN or infinite weights,
    are CheckpointErrors naming the file.
    """
    from napari_vos import weights

    state, meta, ckpt_name, sha = weights.load_checkpoint(checkpoint or weights.default_checkpoint(method).name)
    if (meta.get("method", method) if accept_unnamed else meta.get("method")) != method:
        raise weights.wrong_method(ckpt_name, meta.get("method"), method)
    broken = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:  # the one damage a file's header and shapes do not show: it would segment nothing
        raise weights.CheckpointError(f"checkpoint {ckpt_name} holds NaN or infinite values in {len(broken)} "
                                      f"tensors (e.g. {broken[:3]}): it is damaged or from a diverged training")
    what = f"checkpoint {ckpt_name} does not fit the {title} network"
    for probe in (True, False):  # first on the meta device: an absurd width in the metadata allocates nothing
        try:
            with torch.device("meta") if probe else nullcontext():
                net = network(meta)
        except (ValueError, TypeError, KeyError, RuntimeError) as err:  # an export of a later version, a hand-edited field
            from napari_vos.memory_errors import is_out_of_memory

            if isinstance(err, RuntimeError) and (not probe or is_out_of_memory(err)):  # the machine's, not the file's
                raise
            raise weights.CheckpointError(f"checkpoint {ckpt_name}: the {title} network its metadata describes "
                                          f"cannot be built by this version ({type(err).__name__}: {err})") from err
        if probe:  # the file's tensors against the network's shapes, before it is built for real
            _check_shapes(net.state_dict(), state, what)
    load_fitting(net, state, what)
    note = other_preprocessing(method, ckpt_name, meta)
    if note and notes is not None:
        notes.append(note)
    elif note:
        import warnings

        warnings.warn(note, stacklevel=3)
    return net, ckpt_name, sha


def other_preprocessing(method: str, name: str, meta: dict[str, str]) -> str | None:
    """The warning's text when the checkpoint was made for frames prepared otherwise than this
    version prepares them (its registry entry's record, else its own metadata's; a file with
    neither is not checked), else None."""
    from napari_vos import weights

    info = next((e for e in weights.list_checkpoints(method) if e.name == name), None)
    recorded = info.preprocessing if info is not None and info.preprocessing else None
    if recorded is None and "preprocessing" in meta:
        try:
            recorded = json.loads(meta["preprocessing"])
        except ValueError as err:
            raise weights.CheckpointError(f"checkpoint {name}: its preprocessing metadata is not JSON ({err})") from err
    if recorded is not None and not isinstance(recorded, dict):
        raise weights.CheckpointError(f"checkpoint {name}: its preprocessing metadata is a JSON "
                                      f"{type(recorded).__name__}, not the record of fields it should be")
    if recorded:
        differences = weights.preprocessing_differences(method, recorded)
        if differences:
            return (f"checkpoint {name} was made for frames prepared otherwise than napari-vos "
                    f"prepares them now ({'; '.join(differences)}); its scores may not hold")
    return None


def build_method(cls: Callable[..., M], device: torch.device | str, checkpoint: str | None, options: dict[str, Any],
                 method: str, title: str, network: Callable[[dict[str, str]], nn.Module],
                 accept_unnamed: bool = False) -> M:
    """``cls(network, device=device, **options)`` with the network of ``load_network``.

    Sets the instance's ``checkpoint_name``, ``checkpoint_sha256`` and ``checkpoint_notes`` (the
    checkpoint's warnings, which the Session notes: the widget shows notes, not warnings).
    """
    notes: list[str] = []
    net, ckpt_name, sha = load_network(checkpoint, method, title, network, accept_unnamed, notes=notes)
    instance = cls(net, device=device, **options)
    instance.checkpoint_name, instance.checkpoint_sha256 = ckpt_name, sha
    instance.checkpoint_notes = notes
    return instance


def init_from_checkpoint(network: nn.Module, checkpoint: str, method: str, title: str, hint: str = "") -> str:
    """Start training from a checkpoint: ``method``'s own (every tensor, e.g. an earlier stage) or
    another method's ``backbone.*`` tensors (e.g. FRTM's ResNet-18). Returns "all" or "backbone".

    A checkpoint whose tensors do not fit ``network`` raises CheckpointError naming ``title``
    (``hint`` is added when the method's own checkpoint has other shapes).
    """
    from napari_vos.weights import CheckpointError, load_checkpoint

    state, meta, name, _ = load_checkpoint(checkpoint)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}  # shipped files are fp16
    own = network.state_dict()
    if meta.get("method") == method:
        wrong = [k for k, v in state.items() if k in own and v.shape != own[k].shape]
        if wrong:
            raise CheckpointError(f"{title} checkpoint {name} does not fit this configuration (shapes differ in "
                                  f"{wrong[:3]}{'; ' + hint if hint else ''})")
        load_fitting(network, state, f"{title} checkpoint {name} does not fit this configuration")
        return "all"
    picked = {k: v for k, v in state.items() if k.startswith("backbone.") and k in own}
    wrong = [k for k, v in picked.items() if v.shape != own[k].shape]
    if not picked or wrong:
        why = f"shape mismatch in {wrong[:3]}" if wrong else "no backbone.* tensors"
        raise CheckpointError(f"checkpoint {name} (method {meta.get('method')!r}) has no backbone that fits "
                              f"{title}'s {getattr(getattr(network, 'config', None), 'backbone', 'backbone')}: {why}")
    network.load_state_dict(picked, strict=False)
    return "backbone"
