"""Half-precision autocast where the arithmetic must stay float32 (session 34 precision audit):
COSNet's co-attention affinity and summaries, the ConvLSTM cell state of S2S/RVOS, and an fp16
export of a weight beyond float16's range."""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("variant", ["symmetric", "vanilla", "channel"])
def test_the_coattention_affinity_and_summaries_are_float32_under_the_sessions_autocast(variant, dtype):
    """The `.float()` upcasts did nothing under autocast, which casts matmul inputs back to half:
    S came out in bf16, off by up to 0.27 in a softmax logit on the shipped COSNet."""
    from napari_vos.nn.coattention import CoAttention

    torch.manual_seed(0)
    attention = CoAttention(64, variant)
    v_a, v_b = (torch.randn(1, 64, 12, 12) * 2).to(dtype), (torch.randn(1, 64, 12, 12) * 2).to(dtype)
    with torch.no_grad():
        reference = attention(v_a.float(), v_b.float())  # the same rounded features in float32
        with torch.autocast("cpu", dtype=dtype):
            out = attention(v_a, v_b)
    assert out.affinity.dtype == torch.float32
    assert torch.allclose(out.affinity, reference.affinity, atol=1e-4, rtol=1e-4)
    assert out.z_a.dtype == dtype  # the summaries go back to the features' dtype for the gate
    assert torch.allclose(out.z_a.float(), reference.z_a, rtol=2e-2, atol=2e-2)
    assert torch.allclose(out.z_b.float(), reference.z_b, rtol=2e-2, atol=2e-2)


def test_the_convlstm_cell_state_stays_float32_over_a_long_bf16_run():
    """Rounded to bf16 on every step, a long memory (forget gate 0.993) drifted 6.6 % from float32
    in 100 steps."""
    from napari_vos.nn.convlstm import ConvLSTMCell

    torch.manual_seed(0)
    cell = ConvLSTMCell(4, 4, forget_bias=5.0)
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        state32 = state16 = None
        for _ in range(100):
            state32 = cell(x, state32)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                state16 = cell(x.bfloat16(), state16)
    h16, c16 = state16
    assert c16.dtype == torch.float32 and h16.dtype == torch.bfloat16
    drift = float((c16 - state32[1]).abs().max() / state32[1].abs().max())
    assert drift < 0.02, drift


def test_an_fp16_export_refuses_a_weight_beyond_float16s_range():
    """It was written as inf, and every load then blamed a diverged training."""
    from torch import nn

    from napari_vos.training.loop import export_tensors

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm2d(2)

    model = Tiny()
    model.bn.running_var[1] = 1e5
    with pytest.raises(ValueError, match=r"beyond float16's range .*'bn\.running_var'"):
        export_tensors(model, "frtm", "vos")
    model.bn.running_var[1] = 6e4
    model.config = type("C", (), {"to_dict": lambda self: {}})()
    state, _ = export_tensors(model, "frtm", "vos")
    assert torch.isfinite(state["bn.running_var"]).all()
