"""Pure helpers behind the widget: map placement, the options field, the Mesa/triton guard."""
from __future__ import annotations

import sys

import pytest

from napari_vos.data.map_geometry import map_placement, map_stride
from napari_vos import gl_guard
from napari_vos.gl_guard import guard_triton, mesa_llvm_loaded
from napari_vos._widgets.options import parse_options


@pytest.mark.parametrize(("work", "size", "stride"), [
    (64, 4, 16.0),     # FRTM, no padding
    (240, 16, 16.0),   # FRTM: 240 padded to 256, stride 16
    (250, 16, 16.0),
    (384, 24, 16.0),
    (384, 256, 1.5),   # a fitted grid (flow at a reduced size)
    (300, 256, 300 / 256),
    (64, 64, 1.0),     # full resolution
])
def test_map_stride(work, size, stride):
    assert map_stride(work, size) == pytest.approx(stride)


def test_map_placement_centres_coarse_pixels_on_the_pixels_they_cover():
    scale, translate = map_placement((4, 6), (64, 96), (128, 192), (3.0, 0.5, 2.0), (1.0, 10.0, 20.0))
    # working frame is half the image: a stride-16 map pixel covers 32 image pixels
    assert scale == pytest.approx([3.0, 16.0, 64.0])
    assert translate == pytest.approx([1.0, 10.0 + 0.5 * 15.5, 20.0 + 2.0 * 15.5])
    # map pixel 1's centre lies at the centre of image pixels 32..63 (47.5), in world units
    assert translate[1] + scale[1] * 1 == pytest.approx(10.0 + 0.5 * 47.5)


def test_map_stride_rejects_empty_sizes():
    with pytest.raises(ValueError):
        map_stride(0, 4)


def test_parse_options():
    assert parse_options("") == {}
    assert parse_options(' flow_side=128, flow="ilk", eta=0.1, channels=[0, 2], ') == {
        "flow_side": 128, "flow": "ilk", "eta": 0.1, "channels": [0, 2]}
    with pytest.raises(ValueError, match="name=value"):
        parse_options("128")
    with pytest.raises(ValueError, match="name=value"):
        parse_options("a=")
    with pytest.raises(ValueError, match="must be a number"):
        parse_options("a=__import__('os')")
    with pytest.raises(ValueError, match="own control"):
        parse_options("max_side=64")


def test_guard_blocks_triton_only_next_to_mesa_llvm(tmp_path, monkeypatch):
    mesa = tmp_path / "mesa"
    mesa.write_text("7f0-7f1 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libLLVM-15.so.1\n")
    plain = tmp_path / "plain"
    plain.write_text("7f0-7f1 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n")
    assert mesa_llvm_loaded(mesa) and not mesa_llvm_loaded(plain) and not mesa_llvm_loaded(tmp_path / "none")

    monkeypatch.setitem(sys.modules, "triton", None)  # records the real state, restored after the test
    del sys.modules["triton"]
    monkeypatch.setattr(gl_guard, "triton_installed", lambda: False)  # a CPU build of torch: nothing to keep out
    assert guard_triton(mesa) is False and "triton" not in sys.modules
    monkeypatch.setattr(gl_guard, "triton_installed", lambda: True)  # a GPU build of torch brings triton
    assert guard_triton(plain) is False and "triton" not in sys.modules
    assert guard_triton(mesa) is True and sys.modules["triton"] is None
    with pytest.raises(ImportError):
        import triton  # noqa: F401
    assert guard_triton(plain) is True  # stays blocked
    monkeypatch.setitem(sys.modules, "triton", object())  # already imported: left alone
    assert guard_triton(mesa) is False and sys.modules["triton"] is not None
