"""Where the menus' save dialogs open and the name they propose: napari's last save folder, as its own
save dialog opens there, and the layer's name made a file name. Shared by Layers > Measure and
File > IO Utilities."""
from __future__ import annotations

import re
from pathlib import Path

__all__ = ["save_folder", "suggested_path"]

#: characters Windows (and, for "/", every system) refuses in a file name
_REFUSED = re.compile(r'[\\/:*?"<>|]')


def save_folder() -> Path:
    """The folder napari last saved in (its save dialogs open there)."""
    from napari.utils.history import get_save_history

    return Path(get_save_history()[0])


def suggested_path(name: str, fallback: str, suffix: str) -> Path:
    """The path a save dialog proposes for a layer named ``name``: in `save_folder`, the characters a file
    system refuses replaced (``fallback`` for a name left empty), ending in ``suffix``."""
    return save_folder() / f"{_REFUSED.sub('_', name) or fallback}{suffix}"
