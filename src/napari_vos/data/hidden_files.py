"""Hidden names beside an output, for writing it whole before renaming it over the output's name.

Each write gets a name of its own: with one fixed name (``.out.partial.gif``), two saves to the same
output at once (two exports started from napari's menus) wrote into one file, and the second rename
failed, its file having been moved by the first. A random token rather than ``tempfile.mkstemp``,
whose files are made private (mode 0600) and would keep that mode once renamed."""
from __future__ import annotations

import secrets
from pathlib import Path

__all__ = ["hidden_beside"]


def hidden_beside(path: str | Path, tag: str) -> Path:
    """A hidden path beside ``path`` no other write uses, ``.STEM.TAG-TOKEN.SUFFIX`` (the suffix kept, as
    the writers that choose a format by it need)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{tag}-{secrets.token_hex(4)}{path.suffix}")
