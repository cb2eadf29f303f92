"""Reduced-precision runs (nn.precision): the GPU's float16 autocast path and the CPU's bfloat16 one.

CUDA sessions run their forward passes under float16 autocast by default. CPU autocast supports
float16 too, so these tests run that path here: FRTM's target model once came out NaN under it
(its Gauss-Newton sums left the float16 range), which no CPU-only test had seen.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from napari_vos.nn.precision import PRECISIONS, autocast_for, full_precision, resolve_precision

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_auto_is_fp16_on_cuda_bf16_on_cpus_that_have_it_and_a_choice_is_kept(monkeypatch):
    from napari_vos.nn import precision

    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
    assert resolve_precision("auto", torch.device("mps")) == "fp32"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", torch.device("cpu")) == "bf16"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    for p in ("fp32", "bf16", "fp16"):
        assert resolve_precision(p, torch.device("cpu")) == p
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("half", torch.device("cpu"))


def test_autocast_for_and_full_precision():
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast_for("bf16", torch.device("cpu")):
        assert (a @ b).dtype == torch.bfloat16
        with full_precision(a):
            assert (a @ b).dtype == torch.float32
    with autocast_for("fp32", torch.device("cpu")):
        assert (a @ b).dtype == torch.float32


def test_native_bf16_is_read_from_the_cpu_flags(monkeypatch, tmp_path):
    from napari_vos.nn import precision

    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(precision.sys, "platform", "linux")
    monkeypatch.setattr(precision, "_CPUINFO", cpuinfo)
    for flags, expected in [("fpu sse avx2 avx512f avx512_bf16", True), ("fpu sse avx2 amx_bf16 amx_tile", True),
                            ("fpu sse avx2 avx512f avx512bw", False)]:
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        precision.cpu_has_native_bf16.cache_clear()
        assert precision.cpu_has_native_bf16() is expected, flags
    cpuinfo.unlink()
    precision.cpu_has_native_bf16.cache_clear()
    assert precision.cpu_has_native_bf16() is False  # unreadable: never bf16 by default
    monkeypatch.setattr(precision.sys, "platform", "darwin")
    precision.cpu_has_native_bf16.cache_clear()
    assert precision.cpu_has_native_bf16() is False
    monkeypatch.undo()
    precision.cpu_has_native_bf16.cache_clear()


def test_listing_the_precisions_imports_no_torch():
    import subprocess

    code = ("import sys; from napari_vos.nn.precision import PRECISIONS; from napari_vos.cli import build_parser; "
            "build_parser(); print(PRECISIONS, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"{PRECISIONS} False"


def _target_problem(scale: float):
    """FRTM-sized memory: 6 samples of 256-channel stride-16 features (30 x 54) and labels of two objects."""
    g = torch.Generator().manual_seed(0)
    features = torch.relu(torch.randn(6, 256, 30, 54, generator=g)) * scale
    labels = torch.zeros(6, 2, 30, 54)
    labels[:, 0, 8:20, 10:25] = 1
    labels[:, 1, 5:12, 35:50] = 1
    weights = torch.full((6,), 1 / 6)
    return features, labels, weights


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_frtm_target_model_fits_in_float32_under_reduced_precision_autocast(dtype):
    """The GPU default (float16 autocast) once gave NaN weights; the fit now matches float32's."""
    from napari_vos.methods.frtm_target import TargetModel, TargetModelSettings

    features, labels, weights = _target_problem(scale=4.0)  # ResNet conv4 activations reach the tens

    def fitted(autocast: bool) -> TargetModel:
        model = TargetModel(TargetModelSettings(), 256, 2, torch.device("cpu"), torch.Generator().manual_seed(1))
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=autocast):
            mem = features.to(dtype) if autocast else features  # the memory holds what the backbone gave
            model.fit(mem, labels, weights, initial=True)
            model.update(mem, labels, weights)
            return model, model.scores(mem)

    reference, ref_scores = fitted(False)
    model, scores = fitted(True)
    assert torch.isfinite(model.w1).all() and torch.isfinite(model.w2).all()
    assert scores.dtype == torch.float32 and torch.isfinite(scores).all()
    # the same fit up to the rounding of the stored features
    assert torch.corrcoef(torch.stack([scores.flatten(), ref_scores.flatten()]))[0, 1] > 0.99
    assert model.loss(features, labels, weights).max() <= 1.05 * reference.loss(features, labels, weights).max()


@pytest.mark.parametrize("method,options", [
    ("frtm", {}),
    ("agame", {}),
    ("rgmp", {}),
    ("osvos_at", {"finetune_iterations": 10}),
    ("flow", {}),
])
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_shipped_methods_give_the_float32_masks_under_autocast(method, options, precision):
    """Each shipped method under the GPU's float16 (run here on the CPU) and the CPU's bfloat16:
    the same masks as in float32 up to a few boundary pixels, and the precision in the provenance."""
    from napari_vos import propagate
    from napari_vos.data.synthetic import natural_video

    video = natural_video(n_frames=5, size=(128, 192), n_objects=2, seed=3)
    results = {p: propagate(video.frames, video.labels[0], method=method, device="cpu", direction="forward",
                            precision=p, **options) for p in ("fp32", precision)}
    reduced, full = results[precision], results["fp32"]
    recorded = "fp32" if method == "flow" else precision  # flow runs no network: fp32 whatever is asked
    assert reduced.options["precision"] == recorded and full.options["precision"] == "fp32"
    assert all((full.labels[1] == k).sum() > 100 for k in (1, 2))  # float32 follows both objects
    for t in range(1, len(video.frames)):
        for k in (1, 2):
            a, b = reduced.labels[t] == k, full.labels[t] == k
            if (a | b).sum() > 50:  # (A-GAME loses object 1 by frame 3 in float32 too)
                assert (a & b).sum() / (a | b).sum() > 0.9, (method, precision, t, k)


@pytest.mark.parametrize("method,options", [("rgmp", {"min_object_side": None}),  # 9 cells: per-object windows
                                            ("frtm", {"decode_window": "objects"})])
def test_per_object_windows_paste_reduced_precision_outputs(method, options):
    """The windowed paths write each object's half-precision output into a float32 frame (FRTM's
    once failed there: "Index put requires the source and destination dtypes match")."""
    from conftest import phase_cells_video

    from napari_vos import propagate

    frames, labels = phase_cells_video(3, (128, 128), 9)
    full, half = (propagate(frames, labels[0], method=method, device="cpu", direction="forward", precision=p,
                            **options) for p in ("fp32", "fp16"))
    assert half.options.get("window", half.options.get("decode_window")) == "objects"
    assert len(np.unique(full.labels[1])) > 7
    assert (full.labels == half.labels).mean() > 0.99


def test_a_session_names_a_bad_precision():
    from napari_vos import Session

    with pytest.raises(ValueError, match="precision must be one of"):
        Session(np.zeros((3, 16, 16), np.uint8), method="flow", device="cpu", precision="float8")


def test_auto_bf16_is_for_the_cpu_only(monkeypatch):
    # pins: a CPU with bfloat16 instructions does not turn an MPS or CUDA run's "auto" into bf16
    from napari_vos.nn import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", torch.device("mps")) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
