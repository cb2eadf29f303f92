"""Session 37, helper "api": the Python API as a scripter meets it (findings in FINDINGS.md).

Each test fails now and passes once its finding is fixed.
"""
from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import numpy as np
import pytest


def _tiny_video():
    rng = np.random.default_rng(0)
    video = rng.integers(0, 255, (3, 48, 64), dtype=np.uint8)
    labels = np.zeros((48, 64), np.int32)
    labels[10:30, 10:30] = 1
    return video, labels


# F1 ---------------------------------------------------------------------------------------------
def test_session_guards_triton_like_propagate_layers(monkeypatch):
    """A Session built in a process whose OpenGL is Mesa (napari's console) keeps triton out, as the
    widget and propagate_layers do, without the guide's private `_widgets.gl_guard` import."""
    from napari_vos import Session, gl_guard

    monkeypatch.setattr(gl_guard, "mesa_llvm_loaded", lambda *a, **k: True)
    monkeypatch.setattr(gl_guard, "triton_installed", lambda: True)  # a GPU build of torch brings it
    saved = sys.modules.pop("triton", "absent")
    try:
        video, labels = _tiny_video()
        session = Session(video, method="frtm", min_side=None, device="cpu")
        session.annotate(0, labels)
        assert "triton" not in sys.modules  # nothing blocked before a method is built
        session.run("forward")
        assert "triton" in sys.modules and sys.modules["triton"] is None, \
            "Session/propagate built a network in a Mesa process without guard_triton()"
    finally:
        sys.modules.pop("triton", None)
        if saved != "absent":
            sys.modules["triton"] = saved


def test_the_guard_is_a_no_op_where_triton_is_not_installed(monkeypatch):
    """Next to Mesa but with no triton to load (a CPU build of torch), nothing is marked blocked."""
    from napari_vos import gl_guard

    monkeypatch.setattr(gl_guard, "mesa_llvm_loaded", lambda *a, **k: True)
    monkeypatch.setattr(gl_guard, "triton_installed", lambda: False)
    monkeypatch.setitem(sys.modules, "triton", None)  # records the real state, restored after the test
    del sys.modules["triton"]
    assert gl_guard.guard_triton() is False and "triton" not in sys.modules


def test_the_guard_lives_outside_the_widgets():
    """The engine uses it, so it is importable without the widget package, and not from there."""
    import importlib.util

    from napari_vos.gl_guard import guard_triton, mesa_llvm_loaded, triton_installed  # noqa: F401

    assert importlib.util.find_spec("napari_vos._widgets.gl_guard") is None
    guide = (Path(__file__).parents[1] / "docs" / "user-guide.md").read_text(encoding="utf-8")
    assert "_widgets.gl_guard" not in guide


# F2 ---------------------------------------------------------------------------------------------
def test_a_layer_name_given_to_propagate_is_not_called_a_file_path(tmp_path, monkeypatch):
    """propagate("natural video", "natural labels") in napari's console (propagate_layers takes
    names): the string is no file, so the message should not say "is a file path ... read it first"."""
    from napari_vos import propagate

    monkeypatch.chdir(tmp_path)  # no file of that name here
    with pytest.raises(ValueError) as err:
        propagate("natural video", "natural labels", method="flow")
    message = str(err.value)
    assert "file path" not in message, message
    assert "propagate_layers" in message, message
    assert "the video is the string 'natural video'" in message, message


@pytest.mark.parametrize("name", ["natural labels", "Labels [1]", "bear"])
def test_a_labels_layer_name_is_named_as_a_string(tmp_path, monkeypatch, name):
    """The labels too, in plain English ("the labels are")."""
    from napari_vos import propagate

    monkeypatch.chdir(tmp_path)
    video, _ = _tiny_video()
    with pytest.raises(ValueError, match=f"the labels are the string '{re.escape(name)}', not an array.*"
                                         r"propagate_layers\(viewer"):
        propagate(video, name, method="flow")


@pytest.mark.parametrize("given", ["cells.tif", "data/video", "existing"])
def test_a_path_is_still_called_a_file_path(tmp_path, monkeypatch, given):
    """A string that names a file (existing, or with a folder or a file suffix) keeps the file-path
    message, which says whether there is such a file."""
    from napari_vos import propagate

    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing").mkdir()
    with pytest.raises(ValueError, match=r"the video is a file path .*read it first") as err:
        propagate(given, np.ones((48, 64), np.int32), method="flow")
    assert ("does not exist here" in str(err.value)) == (given != "existing"), str(err.value)


# F3 ---------------------------------------------------------------------------------------------
def test_open_sequence_dir_takes_str_paths_like_the_other_readers(tmp_path):
    """Every public reader takes ``str | Path``; open_sequence_dir (in readers.__all__) fails with
    AttributeError: 'str' object has no attribute 'is_dir' on a str."""
    from PIL import Image

    from napari_vos.data.readers import open_sequence_dir

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(images / f"{i:05d}.png")
    Image.fromarray(np.eye(8, dtype=np.uint8)).save(masks / "00000.png")
    seq = open_sequence_dir("x", str(images), str(masks), "images_masks")
    assert len(seq) == 2 and seq.annotated == [0]
    with pytest.raises(ValueError, match="layout 'image_masks' is not one of davis, images_masks"):
        open_sequence_dir("x", images, masks, "image_masks")


# F4 ---------------------------------------------------------------------------------------------
def test_z_stack_message_from_python_names_the_python_argument(tmp_path):
    """open_tiff_frames(path) of a (T, Z, Y, X) file tells a script to use ``z=`` (its own
    argument), not only the command line's --z N."""
    import tifffile

    from napari_vos.data.readers import open_tiff_frames

    path = tmp_path / "tz.tif"
    tifffile.imwrite(path, np.zeros((2, 3, 8, 8), np.uint16), imagej=True, metadata={"axes": "TZYX"})
    with pytest.raises(ValueError) as err:
        open_tiff_frames(path)
    assert "z=N in open_tiff_frames" in str(err.value) and "--z N" in str(err.value), str(err.value)


# F5 ---------------------------------------------------------------------------------------------
def test_public_registry_functions_have_docstrings():
    """`registry.method_class` is public (the guide points scripters at registry.method_class(name)
    .map_grids) but has no docstring."""
    from napari_vos.methods import registry

    missing = [name for name, fn in vars(registry).items()
               if inspect.isfunction(fn) and not name.startswith("_") and fn.__module__ == registry.__name__
               and not inspect.getdoc(fn)]
    assert not missing, missing


def test_result_docstring_defines_every_field_a_script_reads():
    """help(napari_vos.Result) explains labels, maps, fps, options, complete and frames_segmented, but
    not frames_done, seconds or checkpoint_sha256; frames_done is one less than the frames a finished
    run segmented (the start frame is not counted), which a script comparing the two meets."""
    from napari_vos import Result

    doc = inspect.getdoc(Result)
    for name in ("frames_done", "seconds", "checkpoint_sha256"):
        assert name in doc, name


# F7 ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("imagej", [True, False])
def test_a_written_pixel_size_reads_back_as_written(tmp_path, imagej):
    """0.65 µm pixels written by write_tiff_labels read back as 0.65, not 0.6499999999999999 (the
    resolution tags hold pixels per unit: 1 / (1 / 0.65) is not 0.65 in floating point)."""
    from napari_vos.data.calibration import Calibration, read_tiff_calibration
    from napari_vos.data.writers import write_tiff_labels

    path = tmp_path / "labels.tif"
    labels = np.ones((2, 8, 8), np.int32)
    if not imagej:
        labels[0, 0, 0] = 70_000  # ids past 65535 are written as a baseline TIFF
    write_tiff_labels(path, labels,
                      calibration=Calibration(pixel_size=(0.65, 0.13), unit="µm", frame_interval=5.0, time_unit="s"))
    assert read_tiff_calibration(path).pixel_size == (0.65, 0.13)


def test_the_session_docstring_says_how_8_bit_frames_are_read():
    """8-bit frames are read as 0-255 unless dim, not by the stack's intensity range."""
    from napari_vos import Session

    assert "0-255 unless dim" in inspect.getdoc(Session)


def test_checkpoint_and_device_hints_take_what_works(tmp_path):
    """A pathlib.Path checkpoint and a torch.device work, and the hints say so; a Path is kept as
    the str a Result's record holds."""
    import os
    import typing

    import torch

    from napari_vos import Session, propagate
    from napari_vos.session import annotated_session

    for function in (Session.__init__, propagate, annotated_session):
        assert torch.device in typing.get_args(typing.get_type_hints(function)["device"]), function
    checkpoint_hint = typing.get_args(typing.get_type_hints(Session.__init__)["checkpoint"])
    assert any((typing.get_origin(arg) or arg) is os.PathLike for arg in checkpoint_hint), checkpoint_hint
    mine = tmp_path / "mine.safetensors"
    mine.write_bytes(b"")  # checked to be there when the Session is made, read only when a run builds the method
    video, _ = _tiny_video()
    assert Session(video, "frtm", torch.device("cpu"), checkpoint=mine).checkpoint == str(mine)
