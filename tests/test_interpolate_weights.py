"""scripts/interpolate_weights.py: a tensor-by-tensor blend of two checkpoints of one network."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "interpolate_weights.py"


def _script():
    spec = importlib.util.spec_from_file_location("interpolate_weights", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_blend_is_the_weighted_mean_with_b_metadata_and_counters(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    from napari_vos.weights import save_checkpoint

    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_checkpoint(a, {"w": torch.zeros(3, dtype=torch.float16), "n": torch.tensor(1)}, {"method": "rgmp"})
    save_checkpoint(b, {"w": torch.full((3,), 2.0, dtype=torch.float16), "n": torch.tensor(7)},
                    {"method": "rgmp", "step": "160"})
    out = tmp_path / "blend.safetensors"
    assert _script().main([str(a), str(b), "0.25", str(out)]) == 0
    blended = load_file(str(out))
    assert blended["w"].dtype == torch.float16 and torch.allclose(blended["w"].float(), torch.full((3,), 0.5))
    assert int(blended["n"]) == 7
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert meta["step"] == "160" and meta["blend"].startswith("0.75 x ")
    save_checkpoint(b, {"v": torch.ones(3)}, {"method": "rgmp"})
    with pytest.raises(SystemExit):
        _script().main([str(a), str(b), "0.5", str(out)])
