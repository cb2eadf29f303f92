"""Fingerprints of the files a sequence is read from (its frames and its ground truth).

`eval` records one per scored sequence in its summary (``files_sha256``), so ``eval --resume`` can
tell a dataset changed since the stopped run (a frame or annotation replaced, added or removed: its
kept scores would not be of this dataset) from the same files at another place (a checkout cloned
elsewhere, the data copied to a GPU machine), which resumes. A fingerprint is the sha256 over each
file's name relative to its sequence's folder (frames/..., truth/...), its size and its content, in
the reader's order; each file is read once, in chunks.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

from napari_vos.data.readers import name_key
from napari_vos.data.sequence import Sequence

__all__ = ["sequence_files", "sequence_fingerprint"]

_CHUNK = 1 << 20  # bytes read at a time: a large TIFF stack is hashed without holding it in memory


def sequence_files(seq: Sequence) -> list[tuple[str, Path]] | None:
    """(role/name, file) of each file the dataset reader read ``seq`` from (its ``frame_files``, then
    its ``truth_files``); None for a sequence not read from files (in-memory arrays)."""
    if not seq.frame_files:
        return None
    return _named("frames", seq.frame_files) + _named("truth", seq.truth_files)


def sequence_fingerprint(seq: Sequence) -> str | None:
    """The sha256 (hex) over the names, sizes and contents of ``seq``'s files (`sequence_files`);
    None for an in-memory sequence, which has none to compare."""
    files = sequence_files(seq)
    if files is None:
        return None
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    for name, path in files:
        with open(path, "rb") as f:
            digest.update(f"{name}\0{_size(f)}\0".encode("utf-8"))
            while n := f.readinto(buffer):
                digest.update(view[:n])
    return digest.hexdigest()


def _size(f: BinaryIO) -> int:
    """The size of an open file (of the file read, not of whatever its path names a moment later)."""
    return os.fstat(f.fileno()).st_size


def _named(role: str, files: list[Path]) -> list[tuple[str, Path]]:
    """Each file under its role and own name (composed Unicode, so a copy made on a Mac names it alike)."""
    return [(f"{role}/{name_key(p.name)}", p) for p in files]
