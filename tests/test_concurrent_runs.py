"""What a script relies on when it runs several propagations in one process: a cancel during
propagate() holds, a re-run after cancel() fine-tunes again, a tuning stopped by its event serves
both passes, and threads keep the engine's float32 and give the caller's random state back."""
import threading

import numpy as np
import pytest
import torch

from napari_vos import Session

KW = dict(device="cpu", precision="fp32", min_side=None, min_object_side=None, seed=0)


def _video(t=8, h=64, w=96):
    rng = np.random.default_rng(0)
    bg = rng.integers(20, 80, size=(h, w)).astype(np.uint8)
    vid = np.repeat(np.repeat(bg[None, :, :, None], t, 0), 3, 3)
    for i in range(t):
        vid[i, 20:40, 10 + 3 * i:30 + 3 * i] = (220, 60, 60)
    lab = np.zeros((h, w), np.int32)
    lab[20:40, 10:30] = 1
    return vid, lab


def test_cancel_while_propagate_is_still_running_is_kept():
    """Session.cancel() from another thread while propagate() reads the stack's sample frames."""
    vid, lab = _video()
    session = None

    class Slow:  # a lazy stack: the cancel lands during the first read, i.e. inside propagate()
        shape, dtype, ndim = vid.shape, vid.dtype, vid.ndim
        armed = False

        def __len__(self):
            return len(vid)

        def __getitem__(self, i):
            if self.armed:
                self.armed = False
                session.cancel()
            return vid[i]

    video = Slow()
    session = Session(video, method="flow", **KW)
    session.annotate(0, lab)
    video.armed = True
    frames = session.propagate("forward")
    assert not video.armed  # the cancel happened inside propagate()
    assert len(list(frames)) <= 1  # today: all 8 frames


@pytest.mark.parametrize("method, options", [("osvos_at", {"finetune_iterations": 2}),
                                             ("rgmp", {"online_finetune": True, "online_steps": 2})])
def test_rerun_after_cancel_fine_tunes_again_with_a_given_cancel_event(method, options):
    vid, lab = _video()
    event, steps = threading.Event(), []
    s = Session(vid, method=method, cancel_event=event, reuse_finetune=False,
                on_finetune=lambda i, n, loss: steps.append(i), **options, **KW)
    s.annotate(0, lab)
    for i, _ in enumerate(s.propagate()):
        if i == 2:
            s.cancel()
    steps.clear()
    s.run()
    assert steps == [1, 2]  # today: [] (Session.cancel() left the given event set: no fine-tuning, no warning)


@pytest.mark.parametrize("method, steps_option, extra", [("osvos_at", "finetune_iterations", {}),
                                                         ("rgmp", "online_steps", {"online_finetune": True})])
def test_fine_tuning_stopped_by_its_event_is_used_by_both_passes(method, steps_option, extra):
    """'Setting only the event means stop fine-tuning now and propagate with what it has'
    (docs/methods/osvos_at.md): the backward pass too, not the untuned parent."""
    vid, lab = _video()
    lab4 = np.zeros_like(lab)
    lab4[20:40, 22:42] = 1
    event = threading.Event()

    def stop_at_two(i, n, loss):
        if i == 2:
            event.set()

    def run(**kw):
        s = Session(vid, method=method, **extra, **kw, **KW)
        s.annotate(4, lab4)
        return s.run("both").labels.copy()

    stopped = run(**{steps_option: 6}, cancel_event=event, on_finetune=stop_at_two)
    two_steps = run(**{steps_option: 2}, reuse_finetune=False)
    np.testing.assert_array_equal(stopped[5:], two_steps[5:])  # forward: passes today
    np.testing.assert_array_equal(stopped[:4], two_steps[:4])  # backward: today the 0-step network's labels


def test_two_threads_keep_float32_default_and_the_callers_rng():
    """Thread A's run ends while thread B is inside its fine-tuning, under a float64 default dtype."""
    vid, lab = _video()
    a_in, go_a, b_in, go_b = (threading.Event() for _ in range(4))
    seen, errors = [], []

    def cb_a(i, n, loss):
        if i == 1:
            a_in.set()
            go_a.wait(60)

    def cb_b(i, n, loss):
        if i == 1:
            b_in.set()
            go_b.wait(60)
        seen.append(torch.get_default_dtype())

    def work(cb):
        try:
            s = Session(vid, method="osvos_at", finetune_iterations=2, reuse_finetune=False, on_finetune=cb, **KW)
            s.annotate(0, lab)
            s.run("forward")
        except Exception as e:  # pragma: no cover
            errors.append(e)

    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(5)
        rng = torch.random.get_rng_state().clone()
        ta = threading.Thread(target=work, args=(cb_a,))
        ta.start()
        assert a_in.wait(60)
        tb = threading.Thread(target=work, args=(cb_b,))
        tb.start()
        assert b_in.wait(60)
        go_a.set()
        ta.join()
        go_b.set()
        tb.join()
        assert not errors
        restored = torch.equal(rng, torch.random.get_rng_state())
    finally:
        torch.set_default_dtype(before)
    assert seen and all(d == torch.float32 for d in seen), seen  # today: float64 inside B's run
    assert restored  # today: the RNG state B saw on entry, not the caller's
