"""The `napari-vos` commands' files: reading a video and its labels from the forms a user has (TIFF
stacks, folders of frames, movies, animated images, mask PNGs), and the checks made on an output's
name before a run, so that a mistake is said before minutes of work and no input is written over."""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from napari_vos.data.damaged_files import reading

__all__ = ["closed_at_end", "read_video", "read_labels", "read_label_stack", "check_png_folder", "check_writable",
           "check_not_an_input", "check_not_turned", "plane_axis", "refuse_other_planes", "refuse_z_of_flat_labels",
           "settle_made_folders"]


@contextmanager
def closed_at_end(frames: Any) -> Iterator[Any]:
    """``frames`` for the block, then closed: a TIFF stack is read frame by frame from a file kept
    open (locked, on Windows) until its ``close``; arrays and PNG folders have none."""
    try:
        yield frames
    finally:
        getattr(frames, "close", lambda: None)()


def read_video(path: str, z: int | None) -> tuple[Any, Any]:
    """A TIFF stack (any axis order, its calibration), a folder of frame images (natural name order) or a
    movie file (decoded once; its frame interval)."""
    from napari_vos.data.calibration import Calibration, read_tiff_calibration
    from napari_vos.data.readers import open_sequence_dir, open_tiff_frames

    folder = Path(path)
    if folder.is_dir():
        if z is not None:
            raise ValueError("--z picks a plane of a TIFF stack; a folder of frame images has none")
        from napari_vos.data.readers import IMAGE_SUFFIXES, _files

        images = _files(folder, IMAGE_SUFFIXES)
        odd = [p.name for p in images if any(w in p.stem.lower() for w in ("mask", "label", "annot"))]
        if odd and len(odd) < len(images):  # a mask left beside the frames is read as one more frame
            print(f"note: {', '.join(odd[:3])} in {folder} is read as a frame of the video (every image there is); "
                  "move masks and labels out of the frames folder", file=sys.stderr)
        # TIFF frames carry their calibration (a folder of one ImageJ TIFF per time point): the first one's
        calibration = read_tiff_calibration(images[0]) if images and images[0].suffix.lower() in (".tif", ".tiff") \
            else Calibration()
        return open_sequence_dir(folder.name, folder, None, layout="images_masks").frames, calibration
    if not folder.exists():
        raise ValueError(f"video {path} does not exist; give a TIFF stack, a folder of frame images or a movie file")
    if not folder.is_file():  # a pipe would block the read for ever
        raise ValueError(f"video {path} is not a regular file (a pipe or a device); give a TIFF stack, a folder "
                         "of frame images or a movie file")
    from napari_vos.data.animated_images import is_animated_image, read_animated_clip
    from napari_vos.data.video_files import is_video_file, video_file_calibration

    if is_animated_image(folder):  # a GIF, APNG or WebP clip: read with Pillow, no PyAV needed
        if z is not None:
            raise ValueError(f"--z picks a plane of a TIFF stack; the animated image {path} has none")
        return read_animated_clip(folder)
    if folder.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"):  # not animated: one picture
        raise ValueError(f"video {path} is one image, not a video: give the folder of frame images it belongs to "
                         f"({folder.parent}), a TIFF stack, a movie file or an animated GIF")
    if is_video_file(folder):
        if z is not None:
            raise ValueError("--z picks a plane of a TIFF stack; a movie file has none")
        frames = _read_movie(folder)
        if frames.display_rotation:
            print(f"note: {path} is stored turned and played upright (a display rotation of "
                  f"{frames.display_rotation} degrees); it is read upright, as players show it. napari's own "
                  "reader shows it as stored, so labels painted there are turned against these frames",
                  file=sys.stderr)
        return frames, video_file_calibration(folder)
    import tifffile

    with reading(folder, "a TIFF"), tifffile.TiffFile(folder) as tif:
        series = tif.series[0]
        axes = series.axes
        declared = int((tif.imagej_metadata or {}).get("images", 0)) if tif.is_imagej else 0
    planes = int(np.prod([n for n, a in zip(series.shape, axes) if a not in "YXS"], dtype=np.int64))
    if declared > planes:  # tifffile fell back to what it could read: the first page
        raise ValueError(f"video {path} holds {planes} of the {declared} images its ImageJ metadata declares: the "
                         "file is cut off or damaged (an interrupted copy or save)")
    if axes == "QSYX" and z is None:  # tifffile's plain imwrite stores (T, 3 or 4, Y, X) as planar colour
        print(f"note: {path} holds a ({series.shape[0]}, {series.shape[1]}, Y, X) array saved without axis names: "
              f"its {series.shape[1]} planes are read as colour channels; if they are Z planes, give --z",
              file=sys.stderr)
    if z is None:
        _note_z_as_time(path, axes, "propagating along Z as if it were time")
    calibration = read_tiff_calibration(folder)  # first: an error here leaves no stack open
    return open_tiff_frames(folder, z=z), calibration


def _note_z_as_time(path: Any, axes: str, doing: str) -> None:
    """A note where a TIFF names a Z axis and no time axis, which is read as time: Fiji often saves a
    time-lapse's frames as slices, but the file may as well be one 3D volume."""
    if "T" not in axes and "Z" in axes:
        print(f"note: {path} has no time axis (axes {axes}): {doing}", file=sys.stderr)


def _read_movie(path: Path) -> Any:
    """A movie file's frames; what its reader says of them (cut short: the labels cover only the frames
    it gave; interlaced) is said as a note, as the command's other notes are (a warning's source line
    would bury it)."""
    import warnings

    from napari_vos.data.video_files import MovieNote, read_video_file

    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always", MovieNote)
        frames = read_video_file(path)
    for warning in said:
        if issubclass(warning.category, MovieNote):
            print(f"note: {warning.message}", file=sys.stderr)
        else:  # not ours: shown as it would have been
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    return frames


def read_labels(path: str | None, z: int | None = None) -> Any:
    """Labels from a TIFF ((Y, X) or (T, Y, X)) or one mask image (palette/grey PNG, 0/255 masks -> 0/1)."""
    if path is None:
        return None  # a zero-shot method
    import tifffile

    from napari_vos.data.sequence import read_mask

    if Path(path).is_dir():
        raise ValueError(f"labels {path} is a folder; give one mask image (PNG) or a labels TIFF")
    if not Path(path).exists():
        raise ValueError(f"labels {path} does not exist; give a mask image (PNG) or a labels TIFF")
    if not Path(path).is_file():  # a pipe would block the read for ever
        raise ValueError(f"labels {path} is not a regular file (a pipe or a device); give a mask image (PNG) or a "
                         "labels TIFF")
    from napari_vos.data.video_files import is_video_file

    if is_video_file(path):  # Pillow's "cannot identify image file" said nothing of the mix-up
        raise ValueError(f"labels {path} is a movie file, but labels are a labels TIFF or mask images (PNG): are "
                         "VIDEO and LABELS the other way round? (the video comes first, then its labels)")
    if Path(path).suffix.lower() in (".jpg", ".jpeg"):  # its artefacts became dozens of object ids
        raise ValueError(f"labels {path} is a JPEG: its lossy compression changes pixel values, so they are not "
                         "exact object ids; save the mask as PNG or TIFF")
    if Path(path).suffix.lower() in (".tif", ".tiff"):
        with reading(path, "a TIFF"), tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            planes, axes = [n for n in series.shape if n > 1], series.axes
        if len(planes) <= 2:  # one frame, also one saved with singleton axes: (1, Y, X), or (Y, X, 1) as skimage saves it
            with reading(path, "a TIFF"):
                one = tifffile.imread(path)
            return one.reshape(planes) if one.ndim > 2 and len(planes) == 2 and one.shape != tuple(planes) else one
        # one colour mask, as a PNG's: RGB(A) samples last (Pillow's and photometric='rgb''s layout); samples
        # first (SYX) is left a stack, for tifffile's plain imwrite stores a 3- or 4-frame stack that way
        if len(planes) == 3 and axes == "YXS" and series.shape[-1] in (3, 4):
            return read_mask(path, void_255=False)
        from napari_vos.data.readers import open_tiff_frames

        # a stack: read frame by frame, never held whole; labels painted over the (T, Z, Y, X) video: --z's plane
        return open_tiff_frames(path, z=z if plane_axis(series.axes, series.shape) is not None else None)
    return read_mask(path, void_255=False)  # 255 beside other ids is an object here, not DAVIS's void


#: output names that look like a file of another kind: taken as a PNG folder's name they are a mistake
_NOT_FOLDER_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".npy", ".npz", ".zarr", ".h5", ".hdf5", ".json")
_PNG_FRAME = re.compile(r"^\d{5}\.png$")


def check_png_folder(folder: Path) -> list[Path]:
    """A PNG output folder must be new, empty or an earlier napari-vos output (its record
    .napari_vos.json, or napari_vos.json, beside 00000.png ...), never a folder of other files (the
    input frames!); returns the earlier output's frame files, which the new output replaces."""
    from napari_vos.data.video_files import is_video_file
    from napari_vos.data.writers import OLD_PNG_RECORD, PNG_RECORD, png_record

    movie = is_video_file(folder)  # labels are no movie: overlay draws them over one
    if folder.suffix.lower() in _NOT_FOLDER_SUFFIXES or movie:
        raise ValueError(f"-o {folder}: a name ending in .tif writes one labels TIFF, any other name a folder of "
                         f"PNGs; {folder.suffix} looks like a file name (give run.tif, or a folder name such as "
                         "results)" + ("; to watch the labels over the video as a movie, run napari-vos overlay "
                                       f"VIDEO run.tif -o {folder.name} after this" if movie else ""))
    if not folder.is_dir():
        return []
    present = [p for p in folder.iterdir()]
    ours = [p for p in present if _PNG_FRAME.match(p.name)]
    others = [p.name for p in present if p not in ours and p.name not in (PNG_RECORD, OLD_PNG_RECORD,
                                                                           "labels.partial.tif")]
    if others or (ours and png_record(folder) is None):
        shown = ", ".join(sorted(others or [p.name for p in ours])[:3])
        raise ValueError(f"the output folder {folder} holds files napari-vos did not write ({shown} ...); give a new "
                         "or empty folder, or an earlier output of napari-vos")
    return ours


#: the folders `check_writable` made for the command running, taken away again when it fails
#: (`settle_made_folders`) (a mistake found after the check left an empty output folder behind)
_made_folders: list[Path] = []


def check_writable(path: Path, folder: bool, what: str = "the labels") -> None:
    """Before the run, not after it: the output's folder is made (with its parents) and must be a
    folder, and an output file must not be a folder; a ValueError names the path otherwise (and
    ``what`` goes there: the labels, the summary, the weights)."""
    where = path if folder else path.parent
    missing = [p for p in (where, *where.parents) if not p.exists()]
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot write to {path}: {err.strerror or err} ({where} cannot be made a folder)") from None
    _made_folders.extend(missing)
    if not folder and path.is_dir():
        raise ValueError(f"cannot write {what} to {path}: it is a folder; give a file name")
    if not os.access(where, os.W_OK):
        raise ValueError(f"cannot write to {path}: the folder {where} is not writable")


def settle_made_folders(failed: bool) -> None:
    """At a command's end: where it ``failed``, the folders `check_writable` made for it that are still empty
    are taken away again, deepest first (a mistake found after the check had left an empty output folder
    behind; one holding anything, such as a stopped run's frames, stays)."""
    made = sorted(set(_made_folders), key=lambda f: len(f.absolute().parts), reverse=True)
    _made_folders.clear()
    for folder in made if failed else ():
        try:
            folder.rmdir()  # only an empty folder goes
        except OSError:
            pass


def check_not_an_input(output: Path, inputs: dict[str, str | None], flag: str = "-o", what: str = "labels") -> None:
    """The labels (or a map) must not be written over the video or the labels they came from: the
    run would destroy its own input (the same file under another name counts too)."""
    for role, given in inputs.items():
        if given is None or not output.exists() or not Path(given).exists():
            continue
        if os.path.samefile(output, given):
            raise ValueError(f"{flag} {output} is the {role} file ({given}): writing the {what} there would destroy "
                             f"it; give another {'folder' if flag == '--maps' else 'output name'}")


def plane_axis(axes: str, shape: tuple[int, ...]) -> int | None:
    """The Z axis of a labels TIFF read at --z's plane: a named T and Z (ImageJ, OME), or a 4-D array
    a plain ``tifffile.imwrite`` saved as (T, Z, Y, X) (axes "QQYX", or "QSYX" for 3 or 4 planes, as
    the video reader takes them with a Z plane);
    None for labels read whole."""
    if "Z" in axes and "T" in axes:
        return axes.index("Z")
    if len(shape) == 4 and axes.upper() in ("QQYX", "QSYX") and shape[1] > 1:  # (3 or 4 planes: planar colour)
        return 1
    return None


def refuse_z_of_flat_labels(path: str, z: int | None) -> None:
    """--z given for labels with no Z axis (a (T, Y, X) TIFF, a PNG folder) and no video that has one (measure
    without --video, ctc, divisions): a ValueError, as overlay's is, rather than the whole stack taken unsaid."""
    if z is None:
        return
    import tifffile

    from napari_vos.data.readers import saved_volume_shape

    where = Path(path)
    if where.suffix.lower() in (".tif", ".tiff") and where.is_file():
        with reading(path, "a TIFF"), tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            if plane_axis(series.axes, series.shape) is not None or saved_volume_shape(tif) is not None:
                return
            shape = tuple(series.shape)
    else:
        shape = None
    held = f"a stack of shape {shape}" if shape is not None else "frames"
    raise ValueError(f"--z {z}: the labels {path} hold {held} with no Z axis; leave out --z (it picks a plane of "
                     "(T, Z, Y, X) labels)")


def refuse_other_planes(path: str, z: int) -> None:
    """Labels read at --z that hold nothing there: a ValueError naming the planes that do hold paint
    (labels painted on the plane the user looked at in napari, not the one given), if any."""
    import tifffile

    from napari_vos.data.readers import open_tiff_frames

    with reading(path, "a TIFF"), tifffile.TiffFile(path) as tif:
        axes, shape = tif.series[0].axes, tif.series[0].shape
    axis = plane_axis(axes, shape)
    if axis is None:  # read without --z's plane (read_labels)
        return
    n_planes = shape[axis]
    others = []
    for plane in range(n_planes):
        if plane == z:
            continue
        stack = open_tiff_frames(path, z=plane)
        try:
            if any(np.asarray(stack[t]).any() for t in range(len(stack))):
                others.append(plane)
        finally:
            getattr(stack, "close", lambda: None)()
    if others:
        raise ValueError(f"the labels {path} are empty at --z {z}; they hold objects on Z plane(s) "
                         f"{', '.join(map(str, others))}: give that plane as --z, or paint at plane {z}")


def check_not_turned(video_path: str, video: Any, labels_path: str | None, label_shape: Any) -> None:
    """Refuse, saying why, labels of a turned movie's frames as stored (painted in napari) given with
    the movie, which is read upright: the sizes' mismatch alone would not tell."""
    if label_shape is None:  # a zero-shot run's: no labels
        return
    from napari_vos.data.video_files import turned_labels_problem

    problem = turned_labels_problem(video_path, video, labels_path, label_shape)
    if problem:
        raise ValueError(problem)


def read_label_stack(path: str, z: int | None) -> Any:
    """A (T, Y, X) labels stack to draw: a labels TIFF, or a folder of palette PNGs (an output of
    `napari-vos propagate -o FOLDER`), read frame by frame."""
    folder = Path(path)
    if not folder.exists():
        raise ValueError(f"labels {path} does not exist; give a labels TIFF or a folder of palette PNGs (the output "
                         "of napari-vos propagate)")
    if not folder.is_dir():
        labels = read_labels(path, z)
        if z is None and np.ndim(labels) == 3 and getattr(labels, "axes", None):  # a TIFF stack's frames
            _note_z_as_time(path, labels.axes, "its Z planes are taken as frames (Fiji often saves a time-lapse's "
                                              "frames as slices); one 3D volume has no frames to follow")
        try:
            _check_label_stack(path, labels, z)
        except BaseException:  # refused: its file is closed here, as no caller gets it to close
            getattr(labels, "close", lambda: None)()
            raise
        return labels
    from napari_vos.data.readers import _files
    from napari_vos.data.sequence import LazyFrames, read_mask

    masks = _files(folder, (".png",))
    if not masks:
        raise ValueError(f"labels {path} is a folder without PNG frames; give a labels TIFF or a folder of palette "
                         "PNGs (00000.png ...)")
    return LazyFrames(len(masks), lambda i: read_mask(masks[i], void_255=False))


def _check_label_stack(path: str, labels: Any, z: int | None) -> None:
    """A ValueError unless ``labels`` (read from ``path``) is a (T, Y, X) stack."""
    if np.ndim(labels) == 4 and np.shape(labels)[-1] <= 4:  # (T, Y, X, C): a colour or channel stack, no Z
        raise ValueError(f"labels {path} holds {np.shape(labels)[-1]} values per pixel, shape {np.shape(labels)} (a "
                         "colour or multi-channel image?); labels hold one object id per pixel: give a (T, Y, X) "
                         "labels TIFF (the output of napari-vos propagate, or a Labels layer saved from napari)")
    if np.ndim(labels) == 4 and z is None:  # (T, Z, Y, X): said so, not "one frame"
        raise ValueError(f"labels {path} holds a (T, Z, Y, X) stack of shape {np.shape(labels)}; give the plane "
                         "with --z N")
    if np.ndim(labels) != 3:
        raise ValueError(f"labels {path} holds {'one frame' if np.ndim(labels) == 2 else f'shape {np.shape(labels)}'};"
                         " give the (T, Y, X) labels of every frame (the output of napari-vos propagate)")
