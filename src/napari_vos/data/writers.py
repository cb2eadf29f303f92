"""Writers for label stacks: one TIFF stack (tifffile) or a DAVIS-style folder of palette PNGs.

PNG sequences use the DAVIS/PASCAL-VOC palette so that the files open in the DAVIS tools and
any image viewer shows object k in the same colour as the benchmark's own annotations; object ids
are the palette indices (0 = background), so at most 255 objects fit. TIFF has no such limit and
is the format for microscopy label stacks (uint16, or uint32 beyond 65535 ids), and keeps the
image's calibration (`calibration.py`).
Both writers take any frame-indexable (T, Y, X) stack and write it frame by frame, so a
file-backed (memmap/zarr) result is never loaded whole.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from napari_vos.data.calibration import Calibration, tiff_calibration_kwargs
from napari_vos.data.hidden_files import hidden_beside
from napari_vos.checks import frame_count
from napari_vos.data.label_types import largest_id

__all__ = ["davis_palette", "png_record", "PNG_RECORD", "write_png_labels", "write_png_label", "write_tiff_labels", "write_tiff_map",
           "open_tiff_map", "open_tiff_labels", "rewrite_tiff_provenance", "read_tiff_provenance", "label_dtype", "labels_tiff_is_imagej", "BIGTIFF_FROM"]


def davis_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC / DAVIS colour map, (n, 3) uint8: index bits spread over R, G, B."""
    pal = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


_PALETTE = davis_palette().reshape(-1).tolist()


def write_png_label(path: str | Path, labels: np.ndarray) -> None:
    """Write one (Y, X) label image as a palette PNG (ids must be 0..255)."""
    from PIL import Image

    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"a label frame must be 2-D, got {lab.shape}")
    if lab.size and (lab.min() < 0 or lab.max() > 255):
        raise ValueError(
            f"PNG palette labels hold ids 0..255, got {lab.min()}..{lab.max()}; write a TIFF instead"
        )
    im = Image.fromarray(lab.astype(np.uint8), mode="P")
    im.putpalette(_PALETTE)
    im.save(Path(path), optimize=False)


def write_png_labels(folder: str | Path, labels: Any, start: int = 0) -> list[Path]:
    """Write a (T, Y, X) label stack as `folder/00000.png` ... (DAVIS result layout)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t in range(frame_count(labels)):
        p = folder / f"{t + start:05d}.png"
        write_png_label(p, np.asarray(labels[t]))
        paths.append(p)
    return paths


#: a PNG output folder's run record: hidden, so that napari's folder reader (every "*.*" file a
#: frame) opens the folder as its PNGs; `napari_vos.json`, its name before session 31, is still read
PNG_RECORD = ".napari_vos.json"
OLD_PNG_RECORD = "napari_vos.json"


def png_record(folder: str | Path) -> Path | None:
    """The run record of a PNG output folder (the hidden name, else the old one), or None."""
    for name in (PNG_RECORD, OLD_PNG_RECORD):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def label_dtype(max_id: int) -> np.dtype:
    """Smallest unsigned dtype that holds ids up to `max_id` (at least uint16 for TIFF labels)."""
    if max_id < 2**16:
        return np.dtype(np.uint16)
    if max_id < 2**32:
        return np.dtype(np.uint32)
    return np.dtype(np.uint64)


#: raw bytes from which a stack is written as a BigTIFF: a classic TIFF's offsets end at 4 GiB (a
#: little is left for the tags); ImageJ hyperstacks cannot be BigTIFF, so such a file is a baseline
#: one (the pixel size in its resolution tags, no frame interval)
BIGTIFF_FROM = 2**32 - 2**25


def _needs_bigtiff(shape: tuple[int, ...], dtype: np.dtype) -> bool:
    return int(np.prod(shape)) * np.dtype(dtype).itemsize >= BIGTIFF_FROM


def labels_tiff_is_imagej(shape: tuple[int, ...], dtype: np.dtype) -> bool:
    """Whether ``write_tiff_labels`` writes these labels as an ImageJ hyperstack (ids up to 65535,
    under 4 GiB): the form that keeps the frame interval."""
    return np.dtype(dtype) == np.uint16 and not _needs_bigtiff(shape, dtype)


def _tiff_keywords(axes: str, calibration: Calibration | None, imagej: bool,
                   provenance: dict | None) -> dict[str, Any]:
    """``tifffile.imwrite`` keywords shared by the label and map writers: the axes, the calibration
    and the provenance record (JSON under "napari_vos") in ``metadata``."""
    kwargs = tiff_calibration_kwargs(calibration or Calibration(), imagej=imagej, volume="Z" in axes)
    metadata = {"axes": axes, **kwargs.pop("metadata", {})}
    if provenance is not None:
        metadata["napari_vos"] = json.dumps(provenance)
    return {**kwargs, "metadata": metadata}


def write_tiff_labels(path: str | Path, labels: Any, compression: str | None = "zlib",
                      calibration: Calibration | None = None, provenance: dict | None = None,
                      max_id: int | None = None) -> Path:
    """Write a (T, Y, X) or (T, Z, Y, X) label stack to one multi-page TIFF, frame by frame.

    Ids up to 65535 are written as an ImageJ hyperstack of T frames (Fiji shows time, not Z; of T
    frames of Z slices for a 3D + time stack), with ``calibration`` (pixel size, unit, frame
    interval, Z step) so the labels overlay the image at its scale;
    larger ids (uint32/uint64; ImageJ has no such type), and stacks of 4 GiB or more (a BigTIFF,
    `BIGTIFF_FROM`), as a baseline TIFF with the pixel size in its resolution tags. ``provenance`` is stored as JSON under "napari_vos" (``read_tiff_provenance``).
    ``max_id``: the largest id the stack holds, when the caller knows it (else one pass finds it).
    """
    import tifffile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = frame_count(labels)
    first = np.asarray(labels[0])
    if first.ndim not in (2, 3):
        raise ValueError(f"a label stack is (T, Y, X) or (T, Z, Y, X), got shape {(n, *first.shape)}")
    dtype = label_dtype(largest_id(labels) if max_id is None else max_id)  # a pass over the frames, if not known
    imagej = labels_tiff_is_imagej((n, *first.shape), dtype)
    big = _needs_bigtiff((n, *first.shape), dtype)

    def frames() -> Iterator[np.ndarray]:  # tifffile takes an iterator's items as pages: a frame's planes one by one
        for t in range(n):
            frame = np.asarray(labels[t]).astype(dtype)
            yield from (frame if frame.ndim == 3 else (frame,))

    kwargs = _tiff_keywords("TYX" if first.ndim == 2 else "TZYX", calibration, imagej, provenance)
    # written under a temporary name and renamed when whole: a full disk or Ctrl+C part-way leaves no
    # truncated TIFF under the output's name, and the file it replaces is kept until then
    writing = hidden_beside(path, "writing")
    try:
        # minisblack: without it tifffile takes a stack of 3 or 4 frames for the planes of one RGB image
        tifffile.imwrite(writing, frames(), shape=(n, *first.shape), dtype=dtype, compression=compression,
                         imagej=imagej, bigtiff=big, photometric="minisblack", **kwargs)
        os.replace(writing, path)
    except OSError as err:
        writing.unlink(missing_ok=True)
        raise _named_write_error(err, path, None) from None
    except BaseException:
        writing.unlink(missing_ok=True)
        raise
    return path


def _size_text(n_bytes: int) -> str:
    """A file's size as people read it: "0.33 MB", "1.20 GB"."""
    return f"{n_bytes / 1e9:.2f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.2f} MB"


def _named_write_error(err: OSError, path: Path, size: int | None) -> OSError:
    """``err`` of writing ``path`` as a sentence that names the file and the cause (the system's
    "[Errno 27] File too large" names neither): a file size limit (``ulimit -f``, a shared
    machine's) or a full disk; any other error as it is."""
    import errno

    needs = f" needs {_size_text(size)}," if size else ""
    if err.errno == errno.EFBIG:
        return OSError(err.errno, f"{path}{needs} more than this process may write to one file (a file size limit: "
                                  "see `ulimit -f`, or ask the machine's administrator); raise the limit, or write "
                                  "to another machine or file system")
    if err.errno in (errno.ENOSPC, errno.EDQUOT) and str(path) not in str(err):
        return OSError(err.errno, f"not enough disk space for {path}" + (f": it takes {_size_text(size)}" if size
                                                                          else "") + f" ({err.strerror})")
    return err


def _reserve_disk(path: Path) -> None:
    """Give a freshly made memory-mapped file its blocks now: written through a memory map, a sparse
    file that meets a full disk kills the process (SIGBUS) and nothing is kept; reserved, a full disk
    is an OSError before the run. Where the system cannot reserve, the free space is compared."""
    import errno
    import shutil

    size = path.stat().st_size
    try:
        if hasattr(os, "posix_fallocate"):
            with open(path, "r+b") as f:
                os.posix_fallocate(f.fileno(), 0, size)
        elif shutil.disk_usage(path.parent).free < size:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError as err:
        if err.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system that cannot reserve: left sparse
            return
        path.unlink(missing_ok=True)
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(err.errno, f"not enough disk space for {path}: it takes {size / 1e9:.2f} GB "
                                     f"({err.strerror})") from None
        raise


def _open_tiff_memmap(path: str | Path, shape: tuple[int, ...], dtype: np.dtype, axes: str,
                      calibration: Calibration | None, imagej: bool, provenance: dict | None) -> np.ndarray:
    """A zeroed stack made as an uncompressed TIFF (a memory map needs the pixels in one block) and
    returned memory-mapped, its disk space reserved (`_reserve_disk`); a BigTIFF from 4 GiB on (an
    ImageJ file cannot be one)."""
    import tifffile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    big = _needs_bigtiff(shape, dtype)
    kwargs = _tiff_keywords(axes, calibration, imagej and not big, provenance)
    made = not path.exists()
    try:
        stack = tifffile.memmap(path, shape=shape, dtype=dtype, imagej=imagej and not big, bigtiff=big,
                                photometric="minisblack", **kwargs)
        _reserve_disk(path)
    except BaseException as err:
        if made:  # a stub left here would read as an earlier run's partial labels and block the next run
            path.unlink(missing_ok=True)
        if isinstance(err, OSError):  # a file size limit: the file and its size named, as for a full disk
            raise _named_write_error(err, path, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize) from None
        raise
    return stack


def open_tiff_labels(path: str | Path, shape: tuple[int, ...], dtype: Any,
                     calibration: Calibration | None = None, provenance: dict | None = None) -> np.ndarray:
    """A zeroed (T, Y, X) or (T, Z, Y, X) label stack of ``dtype`` (uint16 or wider) made as a TIFF on disk
    and returned memory-mapped, so a run's labels are on disk frame by frame as they finish: laid out as
    `write_tiff_labels` lays them out (an ImageJ hyperstack for uint16 under 4 GiB), uncompressed."""
    shape = tuple(int(n) for n in shape)
    dtype = np.dtype(dtype)
    if len(shape) not in (3, 4) or dtype.kind != "u" or dtype.itemsize < 2:
        raise ValueError(f"a label stack is (T, Y, X) or (T, Z, Y, X) of uint16 or wider, got shape {shape} and "
                         f"{dtype}")
    return _open_tiff_memmap(path, shape, dtype, "TYX" if len(shape) == 3 else "TZYX", calibration,
                             labels_tiff_is_imagej(shape, dtype), provenance)


def open_tiff_map(path: str | Path, shape: tuple[int, ...], calibration: Calibration | None = None,
                  provenance: dict | None = None) -> np.ndarray:
    """A zeroed map stack, (T, h, w) or (T, K, h, w) float32 (K objects as channels), made as a TIFF
    on disk and returned memory-mapped, so that a run writes each frame's map as it finishes and
    holds none of them: an ImageJ hyperstack with ``calibration`` (the map's own pixel size) and
    ``provenance`` as JSON (`rewrite_tiff_provenance` replaces it when the run ends); from 4 GiB on
    a BigTIFF (`BIGTIFF_FROM`). Uncompressed, its disk space reserved (`_reserve_disk`). A file
    already there is unlinked first, not truncated: another run writing through its memory map (the
    same ``--maps`` folder) keeps its own file rather than dying of SIGBUS."""
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (3, 4):
        raise ValueError(f"a map stack is (T, h, w) or (T, K, h, w), got shape {shape}")
    try:
        Path(path).unlink(missing_ok=True)
    except PermissionError as err:  # Windows keeps a file another process has mapped
        raise ValueError(f"{path} is in use (another run writing its maps there?): give another --maps folder"
                         ) from err
    return _open_tiff_memmap(path, shape, np.dtype(np.float32), "TYX" if len(shape) == 3 else "TCYX",
                             calibration, True, provenance)


def write_tiff_map(path: str | Path, stack: Any, calibration: Calibration | None = None,
                   provenance: dict | None = None) -> Path:
    """Write one method map, (T, h, w) or (T, K, h, w), as `open_tiff_map` lays it out, frame by
    frame (a file-backed stack is never loaded whole)."""
    out = open_tiff_map(path, tuple(stack.shape), calibration, provenance)
    for t in range(frame_count(stack)):
        out[t] = np.asarray(stack[t], dtype=np.float32)
    out.flush()
    del out
    return Path(path)


def rewrite_tiff_provenance(path: str | Path, provenance: dict) -> None:
    """Replace the provenance record a label or map TIFF of these writers holds (ImageJ or baseline
    description), in place: a map written while the run went on gets the run's final record."""
    import tifffile

    text = json.dumps(provenance)
    with tifffile.TiffFile(path, mode="r+") as tif:
        tag = tif.pages[0].tags.get("ImageDescription")
        if tag is None:
            raise ValueError(f"{path} has no description to hold a provenance record")
        if tif.is_imagej:  # "key=value" lines; JSON has no line breaks
            lines = [line for line in tag.value.splitlines() if not line.startswith("napari_vos=")]
            description = "\n".join([*lines, f"napari_vos={text}"])
        else:  # tifffile's shaped description: JSON with the metadata's keys
            fields = json.loads(tag.value)
            fields["napari_vos"] = text
            description = json.dumps(fields)
        tag.overwrite(description)


def read_tiff_provenance(path: str | Path) -> dict | None:
    """The provenance record ``write_tiff_labels`` or ``write_tiff_map`` stored in a TIFF, or None."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return tiff_record(tif)


def tiff_record(tif: Any) -> dict | None:
    """The provenance record of an open ``tifffile.TiffFile`` (ImageJ or shaped description), or None."""
    meta = tif.imagej_metadata if tif.is_imagej else (tif.shaped_metadata or [{}])[0]
    text = (meta or {}).get("napari_vos")
    return json.loads(text) if text else None
