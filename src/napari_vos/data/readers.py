"""Dataset readers: detect a folder's layout and open it as lazy `Sequence` objects.

Layouts understood (what `detect_layout` returns):

- ``"davis"``: ``DIR/JPEGImages[/480p]/<seq>/00000.jpg`` + ``DIR/Annotations[/480p]/<seq>/00000.png``
  (palette PNG with object ids, or 0/255 single object). Annotations may cover only some frames.
- ``"images_masks"``: ``DIR/images/00000.{png,jpg,tif}`` + ``DIR/masks/00000.{png,tif}`` (one
  sequence named after DIR; masks matched to images by file stem, may cover some frames).
- ``"ctc"``: Cell Tracking Challenge, ``DIR/01/t000.tif`` + ``DIR/01_GT/SEG/man_seg000.tif``
  (gold) or ``DIR/01_ST/SEG/man_seg000.tif`` (silver; used when there is no gold SEG).
  GT usually exists only for some frames; `Sequence.annotated` lists them.
- ``"tiff"``: one multi-page TIFF / OME-TIFF stack (a file, or a folder holding one image stack and
  optionally one labels stack whose name contains ``label``/``mask``/``gt``/``seg``).
- ``"collection"``: a folder whose sub-folders are each one of the layouts above.

A 3D + time TIFF (T, Z, Y, X[, C]) is propagated one Z plane at a time (``open_tiff_frames(path, z=N)``);
`open_tiff_volume_frames` reads all its planes, one at a time, for napari to show the whole stack.
napari layers and in-memory arrays need no reader: use `Sequence.from_arrays`.
"""
from __future__ import annotations

import re
import unicodedata
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from napari_vos.data.damaged_files import reading
from napari_vos.data.sequence import (
    IMAGE_SUFFIXES,
    ColourTable,
    TIFF_SUFFIXES,
    LazyFrames,
    LazyMasks,
    Sequence,
    decode_mask,
    read_image,
    read_mask,
)

__all__ = ["detect_layout", "davis_split", "open_dataset", "open_sequence_dir", "open_tiff_frames", "open_tiff_stack",
           "open_tiff_volume_frames", "LazyPlanes", "tiff_z_planes", "name_key", "LAYOUTS"]

LAYOUTS = ("davis", "images_masks", "ctc", "tiff", "collection")
MASK_SUFFIXES = (".png", ".tif", ".tiff", ".bmp")
_CTC_SEQ = re.compile(r"^\d{2,}$")
_CTC_SEG = re.compile(r"^man_seg(\d+)$")
_LABEL_WORDS = ("label", "mask", "gt", "seg", "annot")


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The folder's files with these suffixes in natural order (frame2 before frame10; zero-padded
    names such as DAVIS's 00000.jpg sort as in plain name order)."""
    if not folder.is_dir():
        return []
    # not macOS's AppleDouble "._00000.png" beside each file copied to a FAT/exFAT drive or SMB share
    return sorted((p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith("._")),
                  key=_natural_key)


def _natural_key(path: Path) -> tuple:
    """Sort key: the name's runs of digits compared as numbers, the rest as text (a Mac's decomposed
    name sorts as the composed one)."""
    parts = re.split(r"(\d+)", name_key(path.name))
    # the odd places are the runs of digits ("1", "٣"; not "²", which isdigit() but int() refuses)
    return tuple((0, int(part), "") if i % 2 else (1, 0, part.lower()) for i, part in enumerate(parts)), path.name


def name_key(name: str) -> str:
    """A file or sequence name as names are compared: composed (NFC), since macOS writes file names
    decomposed ("e" + U+0301) where a keyboard, a split list or Linux writes "é"."""
    return unicodedata.normalize("NFC", name)


def _is_tiff(p: Path) -> bool:
    return p.suffix.lower() in TIFF_SUFFIXES


def _davis_dirs(root: Path) -> tuple[Path, Path] | None:
    img, ann = root / "JPEGImages", root / "Annotations"
    if not (img.is_dir() and ann.is_dir()):
        return None
    for res in ("480p", "Full-Resolution", "1080p"):
        if (img / res).is_dir() and (ann / res).is_dir():
            return img / res, ann / res
    return img, ann


#: where the DAVIS releases list their splits, in the order looked at: DAVIS 2016's own
#: ImageSets/480p/<split>.txt, then DAVIS 2017's ImageSets/2016/<split>.txt (its DAVIS 2016 subset)
_SPLIT_FOLDERS = ("", "480p", "2016", "1080p", "2017")


def davis_split(root: str | Path, split: str) -> tuple[list[str], Path]:
    """The sequence names of a DAVIS split ("val", "train", or a path under ImageSets such as
    "2017/val") and the list file they came from. Lines are sequence names (DAVIS 2017) or
    ``/JPEGImages/480p/<seq>/00000.jpg /Annotations/...`` pairs (DAVIS 2016); order is kept."""
    sets = Path(root) / "ImageSets"
    name = split if split.endswith(".txt") else f"{split}.txt"
    candidates = [sets / name] if "/" in split else [sets / sub / name for sub in _SPLIT_FOLDERS]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        have = sorted(str(p.relative_to(sets)) for p in sets.rglob("*.txt")) if sets.is_dir() else []
        raise ValueError(f"{root}: no list of split {split!r} (looked for {', '.join(str(c) for c in candidates)})"
                         + (f"; the lists there: {', '.join(have)}" if have else "; the folder has no ImageSets"))
    names: list[str] = []
    for line in found.read_text(encoding="utf-8").splitlines():
        tokens = line.split()
        if not tokens:
            continue
        first = tokens[0].strip("/")
        sequence = Path(first).parts[-2] if "/" in first else first  # a frame's path, or the name itself
        if sequence not in names:
            names.append(sequence)
    if not names:
        raise ValueError(f"{found} lists no sequence")
    return names, found


def detect_layout(path: str | Path) -> str:
    """Return which layout `path` is in (one of `LAYOUTS`); raise ValueError if none fits."""
    root = Path(path)
    if root.is_file():
        if _is_tiff(root):
            return "tiff"
        raise ValueError(f"{root}: a single file must be a TIFF stack (.tif/.tiff)")
    if not root.is_dir():
        raise FileNotFoundError(f"{root} does not exist")
    if _davis_dirs(root) is not None:
        return "davis"
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return "images_masks"
    subdirs = [p for p in root.iterdir() if p.is_dir()]
    if any(_CTC_SEQ.match(p.name) and _files(p, TIFF_SUFFIXES) for p in subdirs):
        return "ctc"
    tiffs = _files(root, TIFF_SUFFIXES)
    if tiffs and len([t for t in tiffs if not _is_label_name(t)]) == 1:
        return "tiff"
    for sub in sorted(subdirs):
        try:
            detect_layout(sub)
        except ValueError:
            continue
        return "collection"
    raise ValueError(
        f"{root}: no known dataset layout (DAVIS JPEGImages/Annotations, images/ + masks/, "
        "Cell Tracking Challenge 01/ + 01_GT/SEG/, or a TIFF stack)"
    )


def _is_label_name(p: Path) -> bool:
    stem = p.name.lower()
    return any(w in stem for w in _LABEL_WORDS)


def _mask_loaders(frame_stems: list[str], masks: list[Path]) -> dict[int, Callable[[], np.ndarray]]:
    by_stem = {name_key(m.stem): m for m in masks}
    paired = {i: by_stem[name_key(stem)] for i, stem in enumerate(frame_stems) if name_key(stem) in by_stem}
    if not paired and masks and len(masks) == len(frame_stems):
        paired = dict(enumerate(masks))  # names differ but counts agree: pair them in sorted order
    table = ColourTable(list(paired.values()))  # colour masks: one id per colour on every frame
    return {i: (lambda m=m: read_mask(m, table=table)) for i, m in paired.items()}


def open_sequence_dir(
    name: str, image_dir: str | Path, mask_dir: str | Path | None = None, layout: str = "images_masks"
) -> Sequence:
    """Open one folder of frame images with an optional folder of per-frame masks (matched by file
    stem) as the lazy `Sequence` ``name``; ``layout`` (one of `LAYOUTS`) is recorded for scoring."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    image_dir = Path(image_dir)
    mask_dir = None if mask_dir is None else Path(mask_dir)
    images = _files(image_dir, IMAGE_SUFFIXES)
    if not images:
        if (image_dir / ".zarray").exists() or (image_dir / "zarr.json").exists() or (image_dir / ".zgroup").exists():
            raise ValueError(f"{image_dir} is a zarr store, which the command line does not read: open it in Python "
                             "(zarr.open) and pass the array to napari_vos.propagate, or open it in napari")
        raise ValueError(f"{image_dir}: no image files")
    masks = _files(mask_dir, MASK_SUFFIXES) if mask_dir is not None else []
    loaders = _mask_loaders([p.stem for p in images], masks)
    return Sequence(
        name=name,
        frames=LazyFrames(len(images), lambda i: read_image(images[i])),
        masks=LazyMasks(len(images), loaders),
        layout=layout,
        path=image_dir,
        frame_files=images,
        truth_files=masks,
    )


def _open_davis(root: Path, sequences: list[str] | None) -> list[Sequence]:
    dirs = _davis_dirs(root)
    assert dirs is not None
    img_root, ann_root = dirs
    names = sorted(p.name for p in img_root.iterdir() if p.is_dir())
    if sequences is not None:
        have, wanted = {name_key(n) for n in names}, {name_key(n) for n in sequences}
        missing = [n for n in sequences if name_key(n) not in have]
        if missing:  # named here, with what there is (the caller's check would only see the survivors)
            raise ValueError(f"{root}: no sequence(s) {missing}; have {names}")
        names = [n for n in names if name_key(n) in wanted]
    return [open_sequence_dir(n, img_root / n, ann_root / n, "davis") for n in names]


def plain_name(name: str, path: Path) -> str:
    """``name`` (a ``Path.name`` or a TIFF's stem) unless it is ``""``, ``.`` or ``..`` (``--data ..``,
    a file ``..tif``, ``/``); then the file's own name (``...tif``), else the resolved folder's, so that a
    sequence name used as a file name (`eval --save-predictions`) never points above its folder."""
    for candidate in (name, Path(path).name, Path(path).resolve().name):
        if candidate not in ("", ".", ".."):
            return candidate
    return "sequence"


def _open_images_masks(root: Path) -> list[Sequence]:
    return [open_sequence_dir(plain_name(root.name, root), root / "images", root / "masks", "images_masks")]


def _frame_number(p: Path) -> int | None:
    m = re.search(r"(\d+)$", p.stem)
    return int(m.group(1)) if m else None


def _open_ctc(root: Path, sequences: list[str] | None) -> list[Sequence]:
    out = []
    for seq_dir in sorted(p for p in root.iterdir() if p.is_dir() and _CTC_SEQ.match(p.name)):
        if sequences is not None and seq_dir.name not in sequences:
            continue
        images = [p for p in _files(seq_dir, TIFF_SUFFIXES) if _frame_number(p) is not None]
        images.sort(key=lambda p: _frame_number(p))  # type: ignore[arg-type,return-value]
        if not images:
            continue
        index_of = {_frame_number(p): i for i, p in enumerate(images)}
        truth = "none"
        seg_files: list[Path] = []
        for kind in ("GT", "ST"):
            seg_files = _files(root / f"{seq_dir.name}_{kind}" / "SEG", TIFF_SUFFIXES)
            if seg_files:
                truth = "gold" if kind == "GT" else "silver"
                break
        loaders: dict[int, Callable[[], np.ndarray]] = {}
        for m in seg_files:
            match = _CTC_SEG.match(m.stem)
            t = int(match.group(1)) if match else None
            if t is None or t not in index_of:
                continue  # 3-D slice annotations (man_seg_000_012) are not per-frame 2-D GT
            loaders[index_of[t]] = (lambda m=m: read_mask(m))
        out.append(
            Sequence(
                name=seq_dir.name,
                frames=LazyFrames(len(images), lambda i, images=images: read_image(images[i])),
                masks=LazyMasks(len(images), loaders),
                layout="ctc",
                path=seq_dir,
                info={"truth": truth},
                frame_files=images,
                truth_files=seg_files,
            )
        )
    return out


def _tiff_array(path: Path) -> tuple[Any, str, Callable[[], None]]:
    """Open a TIFF/OME-TIFF series lazily as a zarr array; return it, its axes string and what
    closes the file it reads from.

    A (3, Y, X) or (4, Y, X) array saved by a plain ``tifffile.imwrite`` is stored as planar RGB(A)
    (tifffile's default up to now, which it warns will change); its "shaped" description keeps the
    array's shape, and a 3- or 4-frame stack is what it almost always holds here (a single colour
    frame is nothing to propagate), so its S axis is read as T.
    """
    import tifffile
    import zarr

    with reading(path, "a TIFF"):
        tf = tifffile.TiffFile(path)  # left open: the zarr store reads through it for as long as the array lives
    try:
        with reading(path, "a TIFF"):
            axes = tf.series[0].axes
            if axes == "SYX" and tf.is_shaped:
                axes = "TYX"
            # TiffFile.aszarr rather than imread(aszarr=True): older tifffile (2024.5 and before) closed the
            # file that imread's store reads from as imread returned ("seek of closed file" on the first frame)
            arr = zarr.open(tf.aszarr(), mode="r")
    except BaseException:
        tf.close()
        raise
    if isinstance(arr, zarr.Group):  # pyramidal OME: level 0
        arr = arr["0"]
    return arr, axes, tf.close


def _unnamed_axes_as_numpy(axes: str, shape: tuple[int, ...], z: int | None) -> str:
    """Name the axes of a 4-D array that tifffile saved without axes ("QQYX", "QQYXS").

    tifffile stores an (A, B, C, D) numpy array whose last axis is not 3 or 4 colour samples as
    pages of (C, D) and calls the first two axes Q; read as a TIFF series they are then both "the
    stack axis". The array is the one the user wrote, so it is read as napari-vos reads that
    array: (T, Y, X, C), whose last axis the channel checks then judge, or (T, Z, Y, X) when a Z
    plane is asked for (which also names the planar-colour axis of a (T, 3 or 4, Y, X) array Z).
    """
    ndim = len(shape)
    if axes == "QSYX" and z is not None:  # (T, 3 or 4, Y, X), stored as planar colour, with a Z plane asked for
        return "TZYX"
    if axes.count("Q") < 2:
        return axes
    if axes == "QYXQ":  # (T, Y, X, 1): tifffile names the trailing axis of one Q
        return "TYXC"
    if axes == "QQYX" and shape[1] == 1:  # (T, 1, Y, X): a single plane
        return "TZYX"
    if axes == "QQYX" and z is None:
        return "TYXC"
    shape_last = shape[-1]
    if axes == "QQYX" and shape_last <= 4:
        # (T, Y, X, C): X of 4 pixels or fewer is no image, so the last axis holds channels, not X
        raise ValueError(f"the TIFF holds a (T, Y, X, C) array of {shape_last} channels (no axis names): it has "
                         "no Z axis; leave out the Z plane")
    if axes in ("QQYX", "QQYXS"):
        return "TZ" + axes[2:]
    raise ValueError(f"the TIFF holds an array of {ndim} axes with no axis names ({axes!r}); save it as "
                     "(T, Y, X) or (T, Y, X, C), or with ImageJ/OME axes")


def tiff_z_planes(path: str | Path) -> int:
    """How many Z planes a TIFF's first series holds: its Z axis, or the second axis of a 4-D array saved
    with no axis names ("QQYX") whose last axis is longer than 4 (no channel count: X, so a (T, Z, Y, X)
    stack, which `open_tiff_frames` without ``z`` reads as (T, Y, X, C)); 1 otherwise, or where the file
    cannot be read here (`open_tiff_frames` then says what is wrong)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            if series.axes == "QQYX" and series.shape[-1] > 4:
                return int(series.shape[1])
            return int(series.shape[series.axes.index("Z")]) if "Z" in series.axes else 1
    except Exception:  # noqa: BLE001 - not a TIFF, damaged
        return 1


def _frame_reader(arr: Any, axes: str, z: int | None = None,
                  path: Path | None = None) -> tuple[int, Callable[[int], np.ndarray]]:
    """Make `i -> (Y, X[, C])` for a TIFF series with the given axes (T first or first non-YX axis).

    ``z`` picks one plane of a Z axis (a 3D + time stack); without it a Z axis longer than one
    plane is an error that says so.
    """
    axes = _unnamed_axes_as_numpy(axes.upper(), tuple(int(n) for n in arr.shape), z)
    if "Y" not in axes or "X" not in axes:
        raise ValueError(f"TIFF series axes {axes!r} have no Y/X")
    other = [a for a in axes if a not in "YXCS"]
    t_axis = "T" if "T" in axes else (other[0] if other else None)
    if t_axis == "Z" and z is not None:  # a Z stack without time: z picks nothing to propagate through
        raise ValueError(f"TIFF series with axes {axes!r} shape {arr.shape} has no time axis to pick a Z plane from")
    fixed: dict[str, int] = {}
    if "Z" in axes and t_axis != "Z":
        planes = arr.shape[axes.index("Z")]
        if z is None and planes > 1:
            raise ValueError(
                f"TIFF series with axes {axes!r} shape {arr.shape} is a 3D + time stack ({planes} Z planes); "
                "napari-vos propagates 2D + time: pick one plane (z=N in open_tiff_frames from Python, --z N "
                "on the command line) or save a maximum projection (T, Y, X) first"
            )
        z = 0 if z is None else int(z)
        if not 0 <= z < planes:
            raise ValueError(f"Z plane {z} is outside the stack's {planes} planes (0..{planes - 1})")
        fixed["Z"] = z
    elif z not in (None, 0):
        raise ValueError(f"TIFF series with axes {axes!r} has no Z axis; leave out the Z plane")
    for a in other:
        if a != t_axis and a not in fixed and arr.shape[axes.index(a)] > 1:
            raise ValueError(
                f"TIFF series with axes {axes!r} shape {arr.shape}: only T (or one stack axis), "
                "Y, X and channels are supported; extract a (T, Y, X[, C]) series first"
            )
    if t_axis is None:
        n = 1
    else:
        n = arr.shape[axes.index(t_axis)]

    def load(i: int) -> np.ndarray:
        return _read_plane(arr, axes, {**fixed, **({t_axis: i} if t_axis is not None else {})}, path)

    return n, load


def _read_plane(arr: Any, axes: str, at: dict[str, int], path: Path | None) -> np.ndarray:
    """Read one (Y, X[, C]) plane of a TIFF series with these (named) axes: ``at`` gives the index of
    each axis other than Y, X and channels (0 for one it leaves out); channels come out last, C and S
    merged, a single channel dropped. One read of the zarr array: only that plane's pages are decoded."""
    index: list[Any] = []
    kept = []
    for a in axes:
        if a in "YXCS":
            index.append(slice(None))
            kept.append(a)
        else:
            index.append(at.get(a, 0))
    with reading(path, "a TIFF") if path is not None else nullcontext():  # a frame damaged in the file
        frame = np.asarray(arr[tuple(index)])
    order = [kept.index("Y"), kept.index("X")] + [k for k, a in enumerate(kept) if a in "CS"]
    frame = np.transpose(frame, order)
    if frame.ndim == 3 and frame.shape[-1] == 1:
        frame = frame[..., 0]
    if frame.ndim == 4:  # C and S both present: merge
        frame = frame.reshape(*frame.shape[:2], -1)
    return frame


def open_tiff_frames(path: str | Path, z: int | None = None) -> LazyFrames:
    """A TIFF/OME-TIFF/ImageJ stack as lazily read (T, Y, X[, C]) frames, whatever its axis order.

    ImageJ hyperstacks store channels before Y, X (TCYX); they come out channel-last. ``z`` picks
    one plane of a (T, Z, Y, X[, C]) stack. The file stays open while the frames are read:
    ``frames.close()`` (or ``with open_tiff_frames(path) as frames:``) closes it.
    """
    arr, axes, close = _tiff_array(Path(path))
    try:
        n, load = _frame_reader(arr, axes, z, Path(path))
    except BaseException:
        close()
        raise
    frames = LazyFrames(n, load, close)
    # a hyperstack's C axis holds channels, never colour + alpha (a TIFF's S axis holds samples)
    frames.channels_are_colour = False if "C" in axes.upper() and "S" not in axes.upper() else None
    frames.axes = axes
    return frames


class LazyPlanes(LazyFrames):
    """The (Y, X[, C]) planes of a 3D + time stack, read one at a time: item ``t * planes + z`` is Z plane
    z of frame t (what `open_tiff_volume_frames` gives). ``volume`` is its (T, Z); ``shape`` the whole
    (T, Z, Y, X[, C]) stack's."""

    def __init__(self, times: int, planes: int, loader: Callable[[int], np.ndarray],
                 close: Callable[[], None] | None = None) -> None:
        super().__init__(times * planes, loader, close)
        self.volume = (int(times), int(planes))

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.volume, *self._peek().shape)


def _volume_axes(axes: str, shape: tuple[int, ...], labels: bool = False) -> str | None:
    """The named axes of a 3D + time series: a time axis (T, or the first stack axis as `_frame_reader`
    takes it) and a Z axis of more than one plane, in any order; the unnamed (T, Z, Y, X) array that
    `tiff_z_planes` counts ("QQYX" whose X is longer than 4, which the time-lapse reader takes as
    (T, Y, X, C)) and its colour form ("QQYXS") included. None for any other series (a time-lapse, one
    Z plane kept as an axis, a Z stack without time): `open_tiff_frames` opens or refuses those.
    ``labels``: the file holds object ids, never colour, so the unnamed "QSYX" (tifffile's name for 3 or
    4 planes a frame, as planar colour) is (T, Z, Y, X) too, as `cli_inputs.plane_axis` reads it at --z."""
    axes = axes.upper()
    if (axes == "QQYX" and shape[-1] > 4) or (labels and axes == "QSYX"):
        axes = "TZYX"
    axes = _unnamed_axes_as_numpy(axes, shape, None)
    if not {"Y", "X", "Z"} <= set(axes) or shape[axes.index("Z")] < 2:
        return None
    stack_axes = [a for a in axes if a not in "YXCS"]
    return None if ("T" if "T" in axes else stack_axes[0]) == "Z" else axes


def open_tiff_volume_frames(path: str | Path, labels: bool = False) -> LazyPlanes | None:
    """A 3D + time TIFF (OME, ImageJ hyperstack or unnamed, any axis order: `_volume_axes`) as its lazily
    read planes (`LazyPlanes`), channels last: each plane is read from the file when it is asked for,
    so a stack of 200 planes a frame is never read whole. None, the file closed again, for a series
    that is no 3D + time stack. ``frames.close()`` closes the file, as for `open_tiff_frames`. ``labels``:
    a labels file (`_volume_axes`)."""
    path = Path(path)
    arr, axes, close = _tiff_array(path)
    shape = tuple(int(n) for n in arr.shape)
    try:
        named = _volume_axes(axes, shape, labels)
        if named is not None:
            t_axis = "T" if "T" in named else next(a for a in named if a not in "YXCSZ")
            extra = [a for a in named if a not in "YXCSZ" and a != t_axis and shape[named.index(a)] > 1]
            if extra:
                raise ValueError(f"TIFF series with axes {named!r} shape {shape}: only T, Z, Y, X and channels are "
                                 "supported; extract a (T, Z, Y, X[, C]) series first")
    except BaseException:
        close()
        raise
    if named is None:
        close()
        return None
    times, planes = shape[named.index(t_axis)], shape[named.index("Z")]

    def load(i: int) -> np.ndarray:
        t, z = divmod(i, planes)
        return _read_plane(arr, named, {t_axis: t, "Z": z}, path)

    frames = LazyPlanes(times, planes, load, close)
    frames.channels_are_colour = False if "C" in named and "S" not in named else None
    return frames


def saved_volume_shape(tif: Any) -> tuple[int, ...] | None:
    """The (T, Z, Y, X) shape of an open labels TIFF (``tifffile.TiffFile``) the napari-vos writer saved
    from a (T, Z, Y, X) layer of one frame or one Z plane, an axis ImageJ leaves out of the file: its
    record's ``layer_ndim`` 4 and ImageJ's ``frames`` and ``slices`` say it; None for any other file."""
    from napari_vos.data.writers import tiff_record

    if not tif.is_imagej:
        return None
    meta, shape = tif.imagej_metadata or {}, tuple(int(n) for n in tif.series[0].shape)
    if len(shape) not in (2, 3) or (tiff_record(tif) or {}).get("layer_ndim") != 4:
        return None
    full = (int(meta.get("frames", 1)), int(meta.get("slices", 1)), *shape[-2:])
    return full if int(np.prod(full)) == int(np.prod(shape)) else None


def open_tiff_stack(path: str | Path, labels: str | Path | None = None) -> Sequence:
    """Open a (T, Y, X[, C]) multi-page TIFF / OME-TIFF lazily, with an optional labels stack.

    Every frame of a labels stack counts as annotated (an all-zero frame means "no objects").
    """
    path = Path(path)
    frames = open_tiff_frames(path)
    n = len(frames)
    loaders: dict[int, Callable[[], np.ndarray]] = {}
    close_labels = None
    if labels is not None:
        try:
            larr, laxes, close_labels = _tiff_array(Path(labels))  # open while the masks are read: seq.close() closes it
            ln, lload = _frame_reader(larr, laxes, path=Path(labels))
            if ln != n:
                raise ValueError(f"{labels}: {ln} label frames for {n} image frames in {path}")
        except BaseException:
            if close_labels is not None:
                close_labels()
            frames.close()
            raise
        loaders = {i: (lambda i=i: decode_mask(lload(i), void_255=False)) for i in range(n)}
    return Sequence(plain_name(tiff_stem(path), path), frames, LazyMasks(n, loaders, close_labels), layout="tiff", path=path,
                    frame_files=[path], truth_files=[] if labels is None else [Path(labels)])


def tiff_stem(path: str | Path) -> str:
    """A TIFF's name without its suffix, OME's double one included: ``cells.ome.tif`` -> ``cells``."""
    name = Path(path).name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _open_tiff(root: Path) -> list[Sequence]:
    if root.is_file():
        stem = root.name.split(".")[0]
        candidates = [
            p
            for p in _files(root.parent, TIFF_SUFFIXES)
            if p != root and p.name.startswith(stem) and _is_label_name(p)
        ]
        return [open_tiff_stack(root, candidates[0] if candidates else None)]
    tiffs = _files(root, TIFF_SUFFIXES)
    images = [t for t in tiffs if not _is_label_name(t)]
    labels = [t for t in tiffs if _is_label_name(t)]
    seq = open_tiff_stack(images[0], labels[0] if labels else None)
    if seq.name.lower() in ("image", "images", "video", "stack", "raw"):
        seq.name = plain_name(root.name, root)
    return [seq]


def _opened(root: Path, layout: str, sequences: list[str] | None) -> tuple[list[Sequence], dict[str, str]]:
    """The sequences of ``root``, in ``layout`` (`detect_layout`'s), and for a collection the sub-folders
    that hold a dataset but could not be read, with why (by `name_key`)."""
    if layout == "davis":
        return _open_davis(root, sequences), {}
    if layout == "images_masks":
        return _open_images_masks(root), {}
    if layout == "ctc":
        return _open_ctc(root, sequences), {}
    if layout == "tiff":
        return _open_tiff(root), {}
    seqs: list[Sequence] = []
    unreadable: dict[str, str] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            sub_layout = detect_layout(sub)
        except ValueError:
            continue  # not a dataset: a folder of notes or results beside the sequences
        try:
            sub_seqs = _opened(sub, sub_layout, None)[0]
        except ValueError as err:  # a dataset that cannot be read is named, not dropped unseen
            unreadable[name_key(sub.name)] = str(err)
            warnings.warn(f"{sub.name} left out: {err}", stacklevel=3)
            continue
        if len(sub_seqs) == 1:
            sub_seqs[0].name = sub.name
        else:
            for seq in sub_seqs:
                seq.name = f"{sub.name}/{seq.name}"
        seqs.extend(sub_seqs)
    return seqs, unreadable


def open_dataset(path: str | Path, sequences: list[str] | None = None) -> list[Sequence]:
    """Open every sequence under `path` (any layout of `LAYOUTS`), optionally only `sequences`.

    Nothing is read but file listings: frames and masks load when indexed. A sequence named twice
    is refused (its objects would count twice in a summary).
    """
    root = Path(path)
    if sequences is not None:
        keys = [name_key(s) for s in sequences]
        twice = sorted({s for s, k in zip(sequences, keys) if keys.count(k) > 1})
        if twice:
            raise ValueError(f"sequence(s) {twice} named more than once; name each once")
    seqs, unreadable = _opened(root, detect_layout(root), sequences)
    if sequences is not None:
        wanted = list(sequences)
        by_name = {name_key(s.name): s for s in seqs}
        missing = [w for w in wanted if name_key(w) not in by_name]
        if missing:
            why = "".join(f"; {w} could not be read: {unreadable[name_key(w)]}"
                          for w in missing if name_key(w) in unreadable)
            raise ValueError(f"{root}: no sequence(s) {missing}; have {sorted(s.name for s in seqs)}{why}")
        seqs = [by_name[name_key(w)] for w in wanted]
    return seqs
