"""What several `napari-vos` commands' parsers share: the help of --method, --device and --checkpoint, and
--zero-shot read as the method's zero-shot option."""
from __future__ import annotations

import argparse
from typing import Any

__all__ = ["CHECKPOINT_HELP", "DEVICE_HELP", "ZERO_SHOT_HELP", "method_help_text", "zero_shot_flag", "zero_shot_option"]


def zero_shot_option(args: argparse.Namespace) -> dict[str, bool]:
    """``--zero-shot`` as the method's zero-shot option (its registry trait: RVOS's ``zero_shot``);
    an error for a method that has none."""
    if not args.zero_shot:
        return {}
    from napari_vos.methods import registry

    option = registry.traits(args.method).zero_shot_option
    if option is None:
        having = [m for m in registry.METHODS if getattr(_known_traits(m), "zero_shot_option", None)]
        raise ValueError(f"--zero-shot is an option of {', '.join(having) or 'no method'}; method {args.method!r} "
                         "has no zero-shot configuration")
    return {option: True}


def zero_shot_flag(args: argparse.Namespace) -> dict[str, str]:
    """The method's zero-shot option where --zero-shot is given ({} otherwise, and for a method
    without one), for `parse_option_pairs` to refuse as --option beside the flag (the option
    silently won over it)."""
    option = getattr(_known_traits(args.method), "zero_shot_option", None) if args.zero_shot else None
    return {option: "--zero-shot"} if option else {}


def _known_traits(method: str) -> Any:
    """`registry.traits` of ``method``, or None for one it cannot tell (an unknown name, whose error
    the session gives; an add-on registered but not installed)."""
    from napari_vos.methods import registry

    try:
        return registry.traits(method)
    except (ValueError, ImportError):
        return None


def method_help_text() -> str:
    """The --method help the commands share, from the registry (a method registered later is named too)."""
    from napari_vos.methods import registry

    def named(name: str) -> str:
        t = _known_traits(name)
        notes = ["default"] if name == "frtm" else []
        if t is not None and not t.needs_annotation:
            notes.append("zero-shot")
        if t is not None and not t.uses_checkpoint:
            notes.append("no weights")
        return f"{name} ({', '.join(notes)})" if notes else name

    names = [named(m) for m in registry.METHODS]
    return f"{', '.join(names[:-1])} or {names[-1]}; `napari-vos weights` lists the shipped checkpoints"


#: help texts the commands share
DEVICE_HELP = "auto (default: cuda, then mps, then cpu), cpu, cuda, cuda:1 or mps"
CHECKPOINT_HELP = "a registered checkpoint name (napari-vos weights) or a .safetensors file (default: the method's shipped one)"
ZERO_SHOT_HELP = ("the method's zero-shot configuration, where it has one (rvos: the zero-shot network, which needs a "
                  "zero-shot checkpoint; its slots are matched to the annotated objects)")
