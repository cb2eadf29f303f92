"""Parse the widget's free-text "more options" field into method keyword arguments.

Methods take options the widget has no dedicated control for (FRTM's ``update_interval``, the
flow baseline's ``flow="ilk"`` or ``flow_side=128``, ...). Users type them as Python keyword
arguments, ``flow_side=128, flow="ilk"``; only literals are accepted (no code is run).
"""
from __future__ import annotations

import ast
from typing import Any

__all__ = ["parse_options"]

RESERVED = ("method", "device", "checkpoint", "max_side", "maps", "out", "rgb", "direction", "frame", "name",
            "all_painted", "precision")


def parse_options(text: str) -> dict[str, Any]:
    """``'a=1, b="x"'`` -> ``{'a': 1, 'b': 'x'}``; a ValueError says what is wrong."""
    text = text.strip().strip(",")
    if not text:
        return {}
    try:
        call = ast.parse(f"f({text})", mode="eval").body
    except SyntaxError as err:
        raise ValueError(f"options {text!r} are not of the form name=value, name=value: {err.msg}") from None
    if not isinstance(call, ast.Call) or call.args or any(k.arg is None for k in call.keywords):
        raise ValueError(f"options {text!r} must be name=value pairs separated by commas")
    out: dict[str, Any] = {}
    for keyword in call.keywords:
        if keyword.arg in RESERVED:
            raise ValueError(f"option {keyword.arg!r} has its own control in the widget; set it there")
        try:
            out[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            raise ValueError(f"option {keyword.arg}: the value must be a number, string, True/False/None or a "
                             f"list/tuple of those, got {ast.unparse(keyword.value)!r}") from None
    return out
