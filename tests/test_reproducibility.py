"""Reproducibility (session-32 audit): a run in a worker thread leaves other threads' torch random
stream and default dtype alone; a run's record given back repeats it; no method draws from the
global generator after building its network."""
from __future__ import annotations

import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def _square_video(n_frames=4, size=(64, 96)):
    rng = np.random.default_rng(0)
    h, w = size
    frames = np.empty((n_frames, h, w, 3), np.uint8)
    background = (rng.random((h, w, 3)) * 60).astype(np.uint8)
    for t in range(n_frames):
        f = background.copy()
        f[20:44, 10 + 4 * t:34 + 4 * t] = (180 + rng.random((24, 24, 3)) * 60).astype(np.uint8)
        frames[t] = f
    labels = np.zeros((h, w), np.int32)
    labels[20:44, 10:34] = 1
    return frames, labels


def _paused_inside_the_engine(action):
    """Run a Session in a worker thread (as the widget does) and call ``action`` from this thread
    while the worker is inside the engine's compute block (OSVOS-AT's first fine-tuning step)."""
    from napari_vos import Session

    frames, labels = _square_video()
    inside, resume = threading.Event(), threading.Event()

    def on_finetune(step, total, loss):
        if step == 1:
            inside.set()
            resume.wait(30)

    session = Session(frames, method="osvos_at", device="cpu", max_side=96, min_side=None,
                      finetune_iterations=2, reuse_finetune=False, on_finetune=on_finetune)
    session.annotate(0, labels)
    worker = threading.Thread(target=session.run, kwargs={"direction": "forward"})
    worker.start()
    try:
        assert inside.wait(60), "the fine-tuning never started"
        action()
    finally:
        resume.set()
        worker.join(60)


def test_a_run_in_another_thread_does_not_rewind_this_threads_random_numbers():
    """The engine saves torch's global RNG state when a block of its work starts and puts it back when
    it ends (_process_state): a seed set (or numbers drawn) by another thread meanwhile (napari's
    console while the widget runs) is undone, so that thread's stream is rewound."""
    _paused_inside_the_engine(lambda: torch.manual_seed(123))
    after = torch.rand(4)
    expected = torch.rand(4, generator=torch.Generator().manual_seed(123))
    assert torch.equal(after, expected), "the caller's torch.manual_seed(123) was undone by the run in the other thread"


def test_a_run_in_another_thread_keeps_this_threads_default_dtype():
    """set_default_dtype made by another thread while a run computes is undone when the run's frame
    ends (_process_state restores the dtype saved when it started)."""
    before = torch.get_default_dtype()
    try:
        _paused_inside_the_engine(lambda: torch.set_default_dtype(torch.float64))
        assert torch.get_default_dtype() == torch.float64, "the caller's set_default_dtype(float64) was reverted"
    finally:
        torch.set_default_dtype(before)


def test_the_records_options_can_be_given_back_to_reproduce_the_run():
    """Result.provenance()['options'] (the CLI's TIFF record, the layer's metadata) holds
    ``work_size``, a derived value that Session refuses as an unknown option, so the record cannot
    be passed back as it is to repeat a run."""
    from napari_vos import propagate

    frames, labels = _square_video()
    first = propagate(frames, labels, method="flow", device="cpu")
    record = first.provenance()
    again = propagate(frames, labels, method=record["method"], device=record["device"], **record["options"])
    assert np.array_equal(again.labels, first.labels)


def test_a_record_of_other_settings_is_refused_by_its_work_size():
    from napari_vos import propagate

    frames, labels = _square_video()
    record = propagate(frames, labels, method="flow", device="cpu").provenance()
    options = {**record["options"], "max_side": 48}
    with pytest.raises(ValueError, match="is not the working size these settings give"):
        propagate(frames, labels, method="flow", device="cpu", **options)


def test_osvos_at_expanding_its_heads_for_several_objects_draws_no_global_random_numbers():
    """The per-object heads were built with random initial values (drawn from torch's global
    generator, then all overwritten): the draw is gone, so only the build is guarded."""
    from napari_vos.methods.osvos_at_net import AttentionHeads

    parent = AttentionHeads((8, 16), side_channels=4, n_objects=1)
    before = torch.random.get_rng_state()
    heads = parent.expanded(3)
    assert torch.equal(before, torch.random.get_rng_state())
    assert torch.equal(heads.attention[1].weight[2], parent.attention[1].weight[0])
    assert torch.equal(heads.side[0].weight, parent.side[0].weight)
