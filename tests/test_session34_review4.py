"""Fourth review of session 34's fixes: a 1-bit frame among 8-bit ones, a dask stack computing
another integer type than it declares, zero_shot=false as --option, bench --sweep's options checked
up front, a widget shown as its own window follows the viewer."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _widget_run import needs_display

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- 1: a 1-bit (bool) PNG frame among 8-bit grey PNG frames is refused -------------------------
def test_a_1bit_png_frame_among_8bit_frames_is_read(tmp_path):
    """A black-and-white frame stored at 1 bit (PNG optimisers do this; Pillow opens it as mode '1',
    a bool array) among 8-bit grey frames. Read fine at the start of the day (d26e58c: normalise
    reads bool as 0/1, the same as 0/255 / 255); since f65f175 and still after 4199211:
    'frame 2 is grey bool but the stack's frames are grey uint8'."""
    from PIL import Image

    from napari_vos.data.frames import FrameSource
    from napari_vos.data.readers import open_sequence_dir

    rng = np.random.default_rng(0)
    for i in range(4):
        f = (rng.random((16, 16)) * 255).astype(np.uint8)
        Image.fromarray(f > 127 if i == 2 else f).save(tmp_path / f"{i:05d}.png")
    source = FrameSource(open_sequence_dir("s", tmp_path, None, "images_masks").frames)
    frames = [source[i] for i in range(4)]  # ValueError at frame 2 now
    assert set(np.unique(frames[2])) <= {0.0, 1.0}


# -- 2: a consistent stack whose declared integer type is not the one its frames compute -------
def _declared(declared, computed):
    da = pytest.importorskip("dask.array")
    import dask

    b = (np.arange(4 * 16 * 16).reshape(4, 16, 16) % 4000 + 100)
    stack = da.stack([da.from_delayed(dask.delayed(lambda i=i: b[i].astype(computed))(), shape=(16, 16),
                                      dtype=declared) for i in range(4)])
    return stack, b.astype(np.uint16)


@pytest.mark.parametrize("declared,computed", [(np.int64, np.int32), (np.int32, np.uint16), (np.uint16, np.int16)])
def test_a_dask_stack_declaring_another_integer_type_than_all_its_frames_is_read(declared, computed):
    """Every frame computes one type (int32) under a dask declaration of another (int64): nothing is
    mixed, and the stack normalises exactly as the same numbers in numpy (d26e58c and 21c83de read
    it). 4199211 compares each frame with the *declared* type and refuses frame 0 itself:
    'frame 0 is grey int32 but the stack's frames are grey int64 ... convert the odd frames'."""
    from napari_vos.data.frames import FrameSource

    stack, same = _declared(declared, computed)
    source, reference = FrameSource(stack), FrameSource(same)
    for i in range(4):
        np.testing.assert_allclose(source[i], reference[i], atol=1e-6)


# -- 3: the refusal of zero_shot as --option tells the user to use a flag that cannot say False ---
def test_demo_option_zero_shot_false_is_not_answered_use_zero_shot(capsys):
    """`demo --method rvos --option zero_shot=false` (one-shot asked for explicitly; no --zero-shot
    given) is refused with '--option zero_shot=... is not a method option: use --zero-shot', but
    --zero-shot can only set True (and zero_shot is RVOS's own method option, which eval takes)."""
    from napari_vos.cli import main

    try:
        main(["demo", "--method", "rvos", "--device", "cpu", "--option", "zero_shot=false"])
    except Exception:  # whatever fails later (no RVOS checkpoint registered) is not this finding
        pass
    err = capsys.readouterr().err
    assert "use --zero-shot" not in err, err


# -- 4: bench --sweep still runs every point for a mistyped --option ------------------------------
def test_bench_sweep_refuses_an_unknown_option_before_its_points(tmp_path):
    """4199211's up-front parse ('a bad --option refused once, up front') only catches a flag's key:
    a typo (flw=ilk) still starts one process per point and prints one error row each (27 with the
    default grid), exit 1. registry.check_options could refuse it once, with exit 2."""
    import napari_vos

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(Path(napari_vos.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-m", "napari_vos.cli", "bench", "--method", "flow", "--device", "cpu",
                        "--sweep", "--sweep-sizes", "32x32,40x40", "--sweep-objects", "1", "--sweep-frames", "3",
                        "--warmup", "0", "--option", "flw=ilk"], capture_output=True, text=True, env=env,
                       timeout=300, cwd=tmp_path)
    assert r.returncode == 2 and "bench: 32x32" not in r.stdout + r.stderr, r.stdout + r.stderr


# -- 5: a widget taken out of its dock and shown as a window of its own stops following ----------
@needs_display
def test_an_undocked_widget_shown_as_its_own_window_follows_the_viewer(make_napari_viewer, qtbot):
    """1a49b53 stops following the viewer on ParentChange to no parent ('a closed dock'), but a
    parentless widget may be on screen: one taken out of its dock and shown as a window of its own.
    It then lists no new layer and its annotated frame no longer follows the slider (4199211 did)."""
    from napari_vos._widgets.propagate_widget import PropagateWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((6, 32, 32), np.uint8), name="video")
    viewer.add_labels(np.zeros((6, 32, 32), np.uint8), name="painted")
    widget = PropagateWidget(viewer)
    dock = viewer.window.add_dock_widget(widget, name="P")
    viewer.window.remove_dock_widget(dock)
    widget.show()
    qtbot.addWidget(widget)
    assert widget.isVisible()
    viewer.add_labels(np.zeros((6, 32, 32), np.uint8), name="new")
    viewer.dims.set_current_step(0, 4)
    names = [widget.labels_combo.itemText(i) for i in range(widget.labels_combo.count())]
    assert "new" in names, names
    assert widget.frame_spin.value() == 4
