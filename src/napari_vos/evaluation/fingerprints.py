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

from napari_vos.data.readers import MASK_SUFFIXES, _files, _is_label_name, name_key
from napari_vos.data.sequence import IMAGE_SUFFIXES, TIFF_SUFFIXES, Sequence

__all__ = ["sequence_files", "sequence_fingerprint"]

_CHUNK = 1 << 20  # bytes read at a time: a large TIFF stack is hashed without holding it in memory


def sequence_files(seq: Sequence) -> list[tuple[str, Path]] | None:
    """(name relative to the sequence's folders, file) of each file the dataset reader reads ``seq``
    from, frames then truth; None for a sequence not read from files (in-memory arrays)."""
    path = seq.path
    if path is None or seq.layout == "array":
        return None
    if seq.layout == "tiff":
        return _named("frames", [path]) + _named("truth", _tiff_labels(path))
    if seq.layout == "ctc":
        return _named("frames", _files(path, TIFF_SUFFIXES)) + _named("truth", _files(_ctc_truth(seq), TIFF_SUFFIXES))
    truth = _davis_truth(path) if seq.layout == "davis" else path.parent / "masks"
    return _named("frames", _files(path, IMAGE_SUFFIXES)) + _named("truth", _files(truth, MASK_SUFFIXES))


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


def _davis_truth(image_dir: Path) -> Path:
    """A DAVIS sequence's Annotations folder, from its JPEGImages one (either with a resolution
    folder, JPEGImages/480p/<seq>, or without, JPEGImages/<seq>)."""
    images_root = image_dir.parent
    if images_root.name == "JPEGImages":
        return images_root.parent / "Annotations" / image_dir.name
    return images_root.parent.parent / "Annotations" / images_root.name / image_dir.name


def _ctc_truth(seq: Sequence) -> Path:
    """The SEG folder a Cell Tracking Challenge sequence's truth is read from (gold GT, else silver ST)."""
    assert seq.path is not None
    kind = {"gold": "GT", "silver": "ST"}.get(str(seq.info.get("truth")), "GT")
    return seq.path.parent / f"{seq.path.name}_{kind}" / "SEG"


def _tiff_labels(stack: Path) -> list[Path]:
    """The labels TIFFs a stack's truth may be read from: those beside it named as labels and starting
    with its name (a stack given as a file), and the first labels TIFF where the folder holds no other
    stack (a folder given): the reader takes one of them."""
    tiffs = _files(stack.parent, TIFF_SUFFIXES)
    labels = [p for p in tiffs if _is_label_name(p)]
    stem = stack.name.split(".")[0]
    found = [p for p in labels if p != stack and p.name.startswith(stem)]
    if labels and len(tiffs) - len(labels) == 1 and labels[0] not in found:
        found.append(labels[0])
    return found
