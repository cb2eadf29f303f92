"""What napari's File > Save Selected Layers does once the user picked a napari-vos file type and typed a
name: napari hands that writer the path as typed (qt_viewer._save_layers_dialog), shared by the writer tests."""
from __future__ import annotations

import os

import pytest


def save_as(layers, path, kind: str):
    """Write ``layers`` to ``path`` with the napari-vos writer whose dialog entry names ``kind``."""
    try:  # napari's own (private) steps of the dialog: skipped where a napari version moved them
        from napari._qt.qt_viewer import _npe2_decode_selected_filter
        from napari.plugins import _npe2
    except ImportError as err:
        pytest.skip(f"napari's save-dialog helpers are not where this napari keeps them: {err}")
    ext_str, writers = _npe2.file_extensions_string_for_layers(layers)
    ours = next(f for f in ext_str.split(";;") if f.startswith("napari-vos") and kind in f)
    writer = _npe2_decode_selected_filter(ext_str, ours, writers)
    return _npe2.write_layers(os.fspath(path), layers, writer=writer)[0]
