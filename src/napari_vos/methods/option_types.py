"""Method option values checked against the types of the method's keywords, when a Session is made.

Options arrive as typed by a user (the widget's "more options" field, `--option KEY=VALUE`,
Python keywords), and Python takes the truth of any string: `online_finetune="no"` turned the
fine-tuning on, `scales=1.0` failed at the first frame with "'float' object is not iterable". The
method's ``__init__`` (and ``build``) annotations already say what each option takes, so one check
reads them (typing.get_type_hints) instead of each method repeating it; what a type cannot say
(a crop of at least 32 pixels) stays in the method's own ``check_option_values``.
"""
from __future__ import annotations

import collections.abc
import math
import inspect
import numbers
import types
import typing
from typing import Any

import numpy as np

#: whole-number options may be negative only where a negative value means something (a seed);
#: the others count iterations, frames, pixels, objects or stages
SIGNED_INTEGERS = frozenset({"seed"})


def option_types(cls: type) -> dict[str, tuple[Any, Any]]:
    """Each keyword of the class's ``__init__`` and ``build``: (the type it is annotated with, its
    default); a keyword whose annotation cannot be resolved is left out (it is not checked here)."""
    hints: dict[str, tuple[Any, Any]] = {}
    for fn in (getattr(cls, "build", None), cls.__init__):
        if fn is None:
            continue
        try:
            resolved = typing.get_type_hints(fn)
        except Exception:  # noqa: BLE001 - one annotation naming what the module imports only for type checkers
            resolved = _each_hint(fn)  # the others are still checked
        for p in inspect.signature(fn).parameters.values():
            if p.name in resolved:
                hints[p.name] = (resolved[p.name], p.default)
    return hints


def _each_hint(fn: Any) -> dict[str, Any]:
    """The annotations of ``fn`` resolved one by one, leaving out those that cannot be (a name
    imported under ``typing.TYPE_CHECKING`` only)."""
    found = {}
    namespace = getattr(fn, "__globals__", {})
    for name, annotation in getattr(fn, "__annotations__", {}).items():
        try:  # a string annotation (``from __future__ import annotations``) is evaluated as get_type_hints does
            found[name] = eval(annotation, namespace, {}) if isinstance(annotation, str) else annotation  # noqa: S307
        except Exception:  # noqa: BLE001 - that one is left unchecked
            continue
    return found


def check_option_types(cls: type, options: dict[str, Any]) -> None:
    """ValueError naming the first option whose value is not of its keyword's type (a word for an
    on/off option, a number where a list is wanted, a negative count)."""
    hints = option_types(cls)
    for name, value in options.items():
        if name in hints:
            hint, default = hints[name]
            problem = _mismatch(hint, value, _example(hint, default), signed=name in SIGNED_INTEGERS)
            if problem:
                raise ValueError(f"option {name}={value!r}: {name} {problem}")


def _mismatch(hint: Any, value: Any, example: str, signed: bool = False) -> str | None:
    """What ``hint`` takes, as a phrase ("takes a whole number"), where ``value`` is not of it; None
    where it is, or where the hint is of a kind this check does not judge. ``example``: a list to
    show; ``signed``: a negative whole number is allowed."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(hint)
        if value is None and type(None) in members:
            return None
        problems = [(m, _mismatch(m, value, example, signed)) for m in members if m is not type(None)]
        if any(p is None for _, p in problems):
            return None
        near = [p for m, p in problems if _of_kind(m, value)]
        if len(near) == 1:  # a list holding a NaN, a number that is inf: why that member refuses it
            return near[0]
        return "takes " + " or ".join(_describe(m, example) for m in members)
    if hint is bool:
        return None if isinstance(value, (bool, np.bool_)) else "is on or off: it takes True or False"
    if hint is int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            return "takes a whole number, such as 3"
        if value < 0 and not signed:
            return "takes a whole number of at least 0"
        return None
    if hint is float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            return "takes a number"
        if not math.isfinite(float(value)):  # inf or nan passed every range check, and the run segmented nothing
            return "takes a finite number"
        return None
    if hint is str:
        return None if isinstance(value, str) else "takes a word in quotes" + (
            f", such as {example}" if example.startswith('"') else "")
    if origin in (tuple, collections.abc.Sequence, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if isinstance(value, (str, bytes)) or not isinstance(value, (collections.abc.Sequence, np.ndarray)):
            return f"takes a list, such as {example}"
        if origin is tuple and Ellipsis not in typing.get_args(hint) and len(value) != len(args):
            return f"takes {len(args)} values, such as {example}"
        for item, item_hint in zip(value, args * len(value) if len(args) == 1 else args):
            problem = _mismatch(item_hint, item, example, signed)
            if problem:
                return f"takes a list, such as {example}, whose items each {problem}"
        return None
    return None  # callables, events, devices: set by the front ends, not typed by users


def _of_kind(hint: Any, value: Any) -> bool:
    """Whether ``value`` is of the kind ``hint`` takes (a number, a list, ...), whatever finer check
    it fails, so that a union's message names that check rather than the kinds it takes."""
    if hint is bool:
        return isinstance(value, (bool, np.bool_))
    if isinstance(value, (bool, np.bool_)):
        return False
    if hint in (int, float, str):
        return isinstance(value, {int: numbers.Integral, float: numbers.Real, str: str}[hint])
    if typing.get_origin(hint) in (tuple, collections.abc.Sequence, list):
        return isinstance(value, (collections.abc.Sequence, np.ndarray)) and not isinstance(value, (str, bytes))
    return False


def _describe(hint: Any, example: str) -> str:
    names = {bool: "True or False", int: "a whole number", float: "a number", str: "a word in quotes"}
    return "None" if hint is type(None) else names.get(hint, f"a list such as {example}")


def _example(hint: Any, default: Any) -> str:
    """A value to show for a word or list option: its default where that is a word or a list."""
    if isinstance(default, str) and default:
        return f'"{default}"'
    if isinstance(default, (list, tuple)) and default:
        return str(list(default))
    args = [a for a in typing.get_args(hint) if a is not Ellipsis]
    for a in args:  # Optional[Sequence[float]]: the list inside
        if typing.get_origin(a) in (tuple, collections.abc.Sequence, list):
            return _example(a, default)
    one = "1.0" if args and args[0] is float else "1"
    count = len(args) if typing.get_origin(hint) is tuple and Ellipsis not in typing.get_args(hint) else 1
    return "[" + ", ".join([one] * max(count, 1)) + "]"
