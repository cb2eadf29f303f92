"""Portability (session 34 audit), each platform's behaviour imitated on Linux: Windows deletes no
memory-mapped file and writes text in cp1252; some cluster file systems have no flock; macOS leaves
AppleDouble "._" files beside copied frames; MPS refuses adaptive average pooling to sizes that do
not divide the input."""
from __future__ import annotations

import builtins
import errno
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from conftest import moving_square_video

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _square_video(n_frames: int = 6, size: tuple[int, int] = (64, 96)) -> tuple[np.ndarray, np.ndarray]:
    """conftest's moving square, its labels as uint8 (as a PNG mask holds them)."""
    frames, truth = moving_square_video(n_frames, size)
    return frames, truth.astype(np.uint8)


def _tiff_inputs(folder: Path) -> list[str]:
    frames, truth = _square_video()
    tifffile.imwrite(folder / "video.tif", frames)
    tifffile.imwrite(folder / "labels.tif", truth[0].astype(np.uint16))
    return [str(folder / "video.tif"), str(folder / "labels.tif")]


def _mapped(path: Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/maps") as maps:
        return any(line.rstrip().endswith(target) for line in maps)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="finds live mappings through /proc/self/maps")
def test_windows_a_finished_run_leaves_no_partial_file_that_blocks_the_next_run(tmp_path, monkeypatch, capsys):
    """The run still mapped its partial file when it deleted it: on Windows every run left it, and
    the next run to the same output was refused as if the first had been killed."""
    from napari_vos.cli import main
    from napari_vos.data.partial_labels import partial_path

    real_unlink = Path.unlink

    def windows_unlink(self, missing_ok=False):
        if self.exists() and _mapped(self):
            raise PermissionError(13, "The process cannot access the file because it is being used by another "
                                      "process", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", windows_unlink)
    inputs, out = _tiff_inputs(tmp_path), tmp_path / "out.tif"
    args = ["propagate", *inputs, "-o", str(out), "--method", "flow", "--device", "cpu"]
    assert main(args) == 0
    assert not partial_path(out).exists(), "the finished run's partial file is still there (still mapped at unlink)"
    capsys.readouterr()
    assert main(args) == 0, capsys.readouterr().err  # a re-run (another method, option) to the same output


def test_a_partial_file_the_system_would_not_delete_is_marked_spare_and_the_next_run_removes_it(tmp_path,
                                                                                                monkeypatch, capsys):
    from napari_vos.cli import main
    from napari_vos.data.partial_labels import SPARE, partial_path
    from napari_vos.data.writers import read_tiff_provenance

    real_unlink = Path.unlink

    def refuse_partial(self, missing_ok=False):
        if self.name.endswith(".partial.tif"):
            raise PermissionError(13, "in use", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    inputs, out = _tiff_inputs(tmp_path), tmp_path / "out.tif"
    args = ["propagate", *inputs, "-o", str(out), "--method", "flow", "--device", "cpu"]
    with monkeypatch.context() as patch:
        patch.setattr(Path, "unlink", refuse_partial)
        assert main(args) == 0
    assert "the next run to" in capsys.readouterr().err
    assert read_tiff_provenance(partial_path(out))[SPARE] is True
    assert main(args) == 0, capsys.readouterr().err
    assert not partial_path(out).exists()


def test_windows_eval_writes_a_non_ascii_sequence_name_to_its_csvs(tmp_path, monkeypatch):
    from PIL import Image

    import napari_vos.evaluation.scoring as scoring
    from napari_vos.cli import main

    real_open = builtins.open

    def windows_open(file, mode="r", *args, encoding=None, **kwargs):  # open()'s default there: the ANSI code page
        if "b" not in mode and encoding is None:
            encoding = "cp1252"
        return real_open(file, mode, *args, encoding=encoding, **kwargs)

    monkeypatch.setattr(scoring, "open", windows_open, raising=False)
    frames, truth = _square_video(n_frames=4)
    for name in ("zellen", "細胞"):
        img, ann = tmp_path / "d" / "JPEGImages" / "480p" / name, tmp_path / "d" / "Annotations" / "480p" / name
        img.mkdir(parents=True)
        ann.mkdir(parents=True)
        for t in range(len(frames)):
            Image.fromarray(frames[t]).save(img / f"{t:05d}.png")
            Image.fromarray(truth[t]).save(ann / f"{t:05d}.png")
    out = tmp_path / "eval"
    assert main(["eval", "--method", "flow", "--data", str(tmp_path / "d"), "--out", str(out), "--device", "cpu"]) == 0
    assert "細胞" in (out / "per_sequence.csv").read_bytes().decode("utf-8")


@pytest.mark.parametrize("code", [errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP])
def test_propagate_runs_on_a_file_system_without_flock(tmp_path, monkeypatch, capsys, code):
    """Lustre without -o flock, NFS without lockd: the lock error stopped every run and left a stub
    that the next run blamed on 'another napari-vos run'."""
    fcntl = pytest.importorskip("fcntl")
    from napari_vos.cli import main
    from napari_vos.data.partial_labels import partial_path

    def no_flock(fd, operation):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fcntl, "flock", no_flock)
    inputs, out = _tiff_inputs(tmp_path), tmp_path / "out.tif"
    assert main(["propagate", *inputs, "-o", str(out), "--method", "flow", "--device", "cpu"]) == 0, \
        capsys.readouterr().err
    assert out.exists() and not partial_path(out).exists()


def test_appledouble_files_beside_the_frames_are_not_read_as_frames(tmp_path):
    from PIL import Image

    from napari_vos.cli import main

    frames, truth = _square_video()
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{t:05d}.png")
        (folder / f"._{t:05d}.png").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(64))
    Image.fromarray(truth[0]).save(tmp_path / "mask.png")
    out = tmp_path / "out.tif"
    assert main(["propagate", str(folder), str(tmp_path / "mask.png"), "-o", str(out), "--method", "flow",
                 "--device", "cpu"]) == 0
    assert tifffile.imread(out).shape[0] == len(frames)


class _MPSPooling(torch.utils._python_dispatch.TorchDispatchMode):
    """Refuses as MPS's adaptive_avg_pool2d does (AdaptivePooling.mm; pytorch#96056)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func._schema.name.split("::")[-1] in ("_adaptive_avg_pool2d", "adaptive_avg_pool2d"):
            (ih, iw), (oh, ow) = args[0].shape[-2:], args[1]
            if ih % oh or iw % ow:
                raise NotImplementedError("Adaptive pool MPS: input sizes must be divisible by output sizes.")
        return func(*args, **(kwargs or {}))


@pytest.fixture
def as_if_on_mps(monkeypatch):
    """The area resize takes the MPS path for CPU tensors, under pooling that refuses as MPS does."""
    import napari_vos.nn.area_resize as area

    monkeypatch.setattr(area, "_refused_on_mps", lambda x, size: x.shape[-2] % size[0] or x.shape[-1] % size[1])
    with _MPSPooling():
        yield


@pytest.mark.parametrize("shape,size", [((1, 2, 480, 854), (256, 448)), ((2, 3, 62, 90), (15, 22)),
                                        ((1, 1, 7, 5), (3, 2)), ((1, 1, 9, 12), (3, 4))])
def test_the_area_resize_equals_adaptive_average_pooling(shape, size):
    from napari_vos.nn.area_resize import pooling_matrix

    x = torch.rand(shape)
    rows, cols = pooling_matrix(shape[-2], size[0]), pooling_matrix(shape[-1], size[1])
    torch.testing.assert_close(rows @ x @ cols.T, torch.nn.functional.adaptive_avg_pool2d(x, size))


def test_mps_rvos_mask_resize_runs_at_a_davis_frame_size(as_if_on_mps):
    from napari_vos.methods.rvos_network import resize_masks
    from napari_vos.methods.s2s import network_size

    size = network_size((480, 854))
    assert size == (256, 448)
    out = resize_masks(torch.ones(1, 2, 480, 854), size)
    assert out.shape[-2:] == size and torch.allclose(out, torch.ones(()))


def test_mps_rgmp_object_probs_map_at_a_size_not_a_multiple_of_4(as_if_on_mps):
    from napari_vos import propagate

    frames, truth = _square_video(n_frames=3, size=(62, 90))  # 90 // 4 = 22 does not divide 90
    result = propagate(frames, truth[0], method="rgmp", device="cpu", maps=True, direction="forward",
                       min_side=None, min_object_side=None, precision="fp32")
    assert result.maps["object_probs"].shape[0] == 3
