"""Out-of-memory errors become advice: the predicate, the CLI's exit 2 with finished frames kept, the widget's status."""
import numpy as np
import pytest
import tifffile
import torch

from napari_vos.cli import main
from napari_vos.data.writers import read_tiff_provenance
from napari_vos.memory_errors import is_out_of_memory, out_of_memory_advice

CUDA_OOM = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 7.79 GiB of which "
            "1.2 GiB is free. If reserved but unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF")


@pytest.mark.parametrize("err, on_gpu", [
    (torch.cuda.OutOfMemoryError(CUDA_OOM), True),
    (RuntimeError("MPS backend out of memory (MPS allocated: 9 GB)"), True),
    (MemoryError(), False),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory: you tried to "
                  "allocate 1099511627776 bytes."), False),
])
def test_out_of_memory_errors_become_advice(err, on_gpu):
    tip = out_of_memory_advice(err)
    assert is_out_of_memory(err) and tip is not None
    assert tip.startswith("the GPU ran out of memory" if on_gpu else "this machine ran out of memory")
    assert "--max-side 480" in tip and ("--device cpu" in tip) is on_gpu
    assert "PYTORCH_CUDA_ALLOC_CONF" not in tip  # the first sentence only


@pytest.mark.parametrize("err", [RuntimeError("shape mismatch"), ValueError("out of range"), KeyError("x")])
def test_other_errors_are_left_alone(err):
    assert not is_out_of_memory(err) and out_of_memory_advice(err) is None


def _fail_on_third_step(monkeypatch, err):
    from napari_vos.methods.flow import FlowMethod

    original, calls = FlowMethod.step, []

    def step(self, image):
        calls.append(1)
        if len(calls) == 3:
            raise err
        return original(self, image)

    monkeypatch.setattr(FlowMethod, "step", step)


def test_cli_says_what_to_change_and_keeps_the_frames(tmp_path, square_video, monkeypatch, capsys):
    frames, truth = square_video
    tifffile.imwrite(tmp_path / "video.tif", frames[..., 0])
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    _fail_on_third_step(monkeypatch, torch.cuda.OutOfMemoryError(CUDA_OOM))
    out = tmp_path / "out.tif"
    code = main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(out),
                 "--method", "flow", "--device", "cpu", "--direction", "forward"])
    err = capsys.readouterr().err
    assert code == 2 and "error: the GPU ran out of memory (CUDA out of memory)" in err and "Traceback" not in err
    assert read_tiff_provenance(out)["frames_segmented"] == "0-2" and tifffile.imread(out)[1:3].any()


def test_cli_still_raises_an_unexpected_error(tmp_path, square_video, monkeypatch):
    frames, truth = square_video
    tifffile.imwrite(tmp_path / "video.tif", frames[..., 0])
    tifffile.imwrite(tmp_path / "labels.tif", truth[0].astype(np.uint8))
    _fail_on_third_step(monkeypatch, RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(tmp_path / "o.tif"),
              "--method", "flow", "--device", "cpu"])
