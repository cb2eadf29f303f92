"""GPU-only paths checked without a GPU (session 33 audit): bench on cuda:N, COSNet P cached, fine-tuning in fp32."""
from __future__ import annotations

import torch


def test_bench_measures_gpu_memory_on_the_device_it_ran_on(monkeypatch, tmp_path):
    """`bench --device cuda:1` must reset, synchronise and read the peak memory of cuda:1, not of
    the current device (cuda:0): torch.cuda.*() without a device argument acts on the current one."""
    from napari_vos.evaluation import bench
    import napari_vos.session as session

    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(("synchronize", device)))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append(("reset", device)))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: calls.append(("peak", device)) or 0)

    class FakeResult:
        device, fps, start_seconds, checkpoint = "cuda:1", 10.0, 0.0, None
        options = {"precision": "fp16", "work_size": [32, 32]}

    class FakeSession:
        def __init__(self, video, method, device, out=None, **opts):
            assert device == "cuda:1"
        def annotate(self, frame, labels):
            pass
        def propagate(self, direction):
            return iter(())
        def result(self):
            return FakeResult()

    monkeypatch.setattr(session, "Session", FakeSession)
    bench.bench_once("frtm", "cuda:1", (32, 32), objects=1, frames=3, warmup=0, workdir=tmp_path)
    devices = {str(torch.device(d)) if d is not None else None for _, d in calls}
    assert calls and devices == {"cuda:1"}, calls


def test_symmetric_projection_is_computed_once_per_weights_at_inference(monkeypatch):
    """P = exp(A - A^T) is fixed at test time: one matrix exponential for a run's frames, a new
    one when the weights change, and gradients still reach A when training."""
    from napari_vos.nn import coattention

    torch.manual_seed(0)
    att = coattention.CoAttention(8, "symmetric")
    calls = []
    real = torch.linalg.matrix_exp
    monkeypatch.setattr(torch.linalg, "matrix_exp", lambda x: calls.append(1) or real(x))
    v_a, v_b = torch.randn(1, 8, 3, 4), torch.randn(1, 8, 2, 5)
    with torch.no_grad():
        first = att.affinity(v_a, v_b)
        for _ in range(3):
            assert torch.equal(att.affinity(v_a, v_b), first)
    assert len(calls) == 1
    with torch.no_grad():
        att.skew.add_(torch.randn(8, 8))  # new weights (a checkpoint loaded, a training step): P again
        changed = att.affinity(v_a, v_b)
    assert len(calls) == 2 and not torch.allclose(changed, first)
    att.affinity(v_a, v_b).sum().backward()
    assert att.skew.grad is not None and att.skew.grad.abs().sum() > 0


def test_osvos_at_finetuning_turns_autocast_off_on_every_device(monkeypatch):
    """The fine-tuning's own fp32 guard is the shared full_precision (MPS included), not a cuda/cpu list."""
    from napari_vos.methods import osvos_at_finetune

    seen = []
    real = osvos_at_finetune.full_precision
    monkeypatch.setattr(osvos_at_finetune, "full_precision", lambda device: seen.append(device) or real(device))
    monkeypatch.setattr(osvos_at_finetune, "_finetune", lambda *args: "done")
    net = torch.nn.Linear(2, 2)
    assert osvos_at_finetune.finetune(net, [], [], osvos_at_finetune.FinetuneSettings()) == "done"
    assert seen == [torch.device("cpu")]


def test_resume_loads_the_run_state_on_the_cpu(tmp_path, monkeypatch, one_torch_thread):
    """last.pt is read with map_location='cpu' (load_state_dict moves the tensors that belong on the
    device; Adam's step counters stay on the CPU, as a fresh run's are)."""
    from napari_vos.training import loop
    from napari_vos.training.loop import TrainSettings, train
    from napari_vos.training.recipes import make_recipe

    recipe = make_recipe("frtm", size=(48, 64), batch_size=1, synthetic_fraction=1.0)
    train(recipe, tmp_path / "run", TrainSettings(steps=1), log=lambda m: None)
    where = []
    real = torch.load
    monkeypatch.setattr(loop.torch, "load", lambda *a, **k: where.append(k.get("map_location")) or real(*a, **k))
    recipe = make_recipe("frtm", size=(48, 64), batch_size=1, synthetic_fraction=1.0)
    train(recipe, tmp_path / "run", TrainSettings(steps=2), resume=True, log=lambda m: None)
    assert where == ["cpu"]
