"""Every TIFF a command opens is closed when the command ends: on success, on an error and on Ctrl+C.

The labels and video stacks are read frame by frame from an open file (`open_tiff_frames`); left open,
Windows keeps the file locked (a labels TIFF cannot be replaced while napari's console that ran
`cli.main` lives on) and Python says ResourceWarning: unclosed file.
"""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_vos.cli import main
from tests.conftest import moving_square_video


@pytest.fixture
def opened(monkeypatch) -> list[tifffile.TiffFile]:
    """Every `tifffile.TiffFile` the code under test makes, to check each is closed afterwards."""
    made: list[tifffile.TiffFile] = []

    class Recorded(tifffile.TiffFile):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(tifffile, "TiffFile", Recorded)
    return made


def _left_open(made: list[tifffile.TiffFile]) -> list[str]:
    """The files of ``made`` still open."""
    return [str(tif.filehandle.path) for tif in made if not tif.filehandle.closed]


@pytest.fixture
def stacks(tmp_path):
    """A 4-frame (T, Y, X) grey video and its (T, Y, X) labels stack, painted on frame 0, as TIFFs."""
    frames, truth = moving_square_video(n_frames=4, size=(48, 64), step=2)
    labels = np.zeros(truth.shape, np.uint8)
    labels[0] = truth[0]
    tifffile.imwrite(tmp_path / "video.tif", frames[..., 0], imagej=True, metadata={"axes": "TYX"})
    tifffile.imwrite(tmp_path / "labels.tif", labels, imagej=True, metadata={"axes": "TYX"})
    return tmp_path / "video.tif", tmp_path / "labels.tif"


def _propagate(video, labels, out, *extra: str) -> int:
    return main(["propagate", str(video), str(labels), "-o", str(out), "--method", "flow", "--device", "cpu", *extra])


def test_propagate_closes_its_inputs_and_the_output_its_overlay_reads(stacks, opened, tmp_path):
    video, labels = stacks
    assert _propagate(video, labels, tmp_path / "out.tif", "--overlay", str(tmp_path / "out.gif")) == 0
    assert (tmp_path / "out.gif").is_file() and opened
    assert _left_open(opened) == []


def test_propagate_closes_its_inputs_on_an_error(stacks, opened, tmp_path):
    video, labels = stacks
    tifffile.imwrite(tmp_path / "small.tif", np.zeros((4, 16, 16), np.uint8), imagej=True, metadata={"axes": "TYX"})
    assert _propagate(tmp_path / "small.tif", labels, tmp_path / "out.tif") == 2
    assert opened and _left_open(opened) == []


def test_overlay_closes_its_inputs(stacks, opened, tmp_path):
    video, labels = stacks
    assert main(["overlay", str(video), str(labels), "-o", str(tmp_path / "over.gif")]) == 0
    assert opened and _left_open(opened) == []


def test_overlay_closes_its_inputs_on_ctrl_c(stacks, opened, tmp_path, monkeypatch):
    from napari_vos.data import overlay_movies

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(overlay_movies, "write_overlay_movie", interrupted)
    video, labels = stacks
    assert main(["overlay", str(video), str(labels), "-o", str(tmp_path / "over.gif")]) == 130
    assert opened and _left_open(opened) == []


def test_overlay_closes_labels_it_refuses(stacks, opened, tmp_path, capsys):
    """A stack of colour frames is no labels stack: refused after the stack was opened, as colour (it
    was refused as a (T, Z, Y, X) stack, "give the plane with --z", which it is not)."""
    video, _ = stacks
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((4, 48, 64, 3), np.uint8), photometric="rgb")
    assert main(["overlay", str(video), str(tmp_path / "rgb.tif"), "-o", str(tmp_path / "over.gif")]) == 2
    assert opened and _left_open(opened) == []
    err = capsys.readouterr().err
    assert "3 values per pixel" in err and "--z" not in err


def test_overlay_closes_the_labels_when_the_video_is_refused(stacks, opened, tmp_path):
    _, labels = stacks
    (tmp_path / "still.png").write_bytes(b"")
    assert main(["overlay", str(tmp_path / "still.png"), str(labels), "-o", str(tmp_path / "over.gif")]) == 2
    assert opened and _left_open(opened) == []


@pytest.mark.parametrize("command", [
    lambda labels, out: ["ctc", str(labels), "-o", str(out / "01_RES")],
    lambda labels, out: ["divisions", str(labels), "-o", str(out / "split.tif")],
    lambda labels, out: ["measure", str(labels), "-o", str(out / "objects.csv"), "--video", str(out / "video.tif")],
], ids=["ctc", "divisions", "measure"])
def test_label_commands_close_their_inputs(stacks, opened, tmp_path, command):
    _, labels = stacks
    assert main(command(labels, tmp_path)) == 0
    assert opened and _left_open(opened) == []


def test_measure_closes_its_inputs_on_an_error(stacks, opened, tmp_path):
    """A video of another length: refused once both stacks are open."""
    _, labels = stacks
    tifffile.imwrite(tmp_path / "short.tif", np.zeros((3, 48, 64), np.uint8), imagej=True, metadata={"axes": "TYX"})
    assert main(["measure", str(labels), "-o", str(tmp_path / "o.csv"), "--video", str(tmp_path / "short.tif")]) == 2
    assert opened and _left_open(opened) == []
