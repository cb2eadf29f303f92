"""A long working session (session-32 audit): a run stopped part-way in the widget lets go of its
job, Session and layers; a finished Session lets go of its last chunk row and its run memo."""
from __future__ import annotations

import gc
import time
import weakref

import pytest

from _widget_run import needs_display


def _flush_deferred_deletes() -> None:
    from qtpy.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def _slow_flow(monkeypatch, seconds: float = 0.03) -> None:
    from napari_vos.methods.flow import FlowMethod

    original = FlowMethod.step
    monkeypatch.setattr(FlowMethod, "step", lambda self, image: (time.sleep(seconds), original(self, image))[1])


@needs_display
@pytest.mark.parametrize("how", ["cancel", "delete output"])
def test_a_run_stopped_mid_way_lets_go_of_its_job(make_napari_viewer, qtbot, monkeypatch, how):
    """Cancel (or deleting the output layer, which cancels) after some frames: once the run has ended
    and the user deleted its output, nothing of the run stays in memory. On the audited code the
    worker's suspended generator keeps the LayerJob (the Session, the method's network, the video
    reference and the deleted output layer's data) alive for the rest of the napari session,
    since napari's task-status manager keeps every worker (cancel_callback=worker.quit)."""
    pytest.importorskip("napari")
    from _widget_run import click, setup_widget, wait_done

    _slow_flow(monkeypatch)
    viewer, widget, _ = setup_widget(make_napari_viewer, n_frames=80)
    widget.direction_combo.setCurrentText("forward")
    click(qtbot, widget.propagate_button)
    job = weakref.ref(widget.job)
    output = weakref.ref(widget.job.output)
    qtbot.waitUntil(lambda: widget.progress.value() >= 3, timeout=30_000)
    if how == "cancel":
        click(qtbot, widget.cancel_button)
    else:
        viewer.layers.remove(output())
    wait_done(qtbot, widget)
    assert widget.status.text().startswith("cancelled" if how == "cancel" else "stopped")
    if output() in viewer.layers:
        viewer.layers.remove(output())
    for _ in range(3):
        qtbot.wait(10)
        _flush_deferred_deletes()
        gc.collect()
    assert job() is None, "the cancelled run's LayerJob (session, network, outputs) is still referenced"
    assert output() is None, "the deleted output layer of a cancelled run is still referenced"


def test_a_finished_session_lets_go_of_the_chunk_row_and_the_run_memo(one_torch_thread):
    """Once a propagation has ended, nothing reads the last chunk row kept for it (a zarr/dask stack's
    decoded frames: up to 2 GiB, a quarter of the free memory) nor the run's memo (what one pass leaves
    for the other: a cancelled fine-tuning's weights, 43 MB for OSVOS-AT; COSNet's embedded references,
    on the GPU there); the next propagate() starts a fresh memo anyway. A Session kept after its run
    (a console user's `s`, a notebook's list of sessions to correct later) holds both on the audited code."""
    da = pytest.importorskip("dask.array")
    import numpy as np

    from _layers import sliding_square
    from napari_vos import Session

    frames, truth = sliding_square(32, (128, 128), side=40)
    video = da.from_array(frames.astype(np.uint16) * 100, chunks=(16, 128, 128))
    s = Session(video, method="flow", device="cpu")
    s.annotate(0, truth[0])
    s._video_memo["probe"] = np.ones(10)  # stands for what a pass leaves for the other
    gen = s.propagate()
    s._video_memo["probe"] = np.ones(10)
    for _ in gen:
        pass
    assert s.source._block is None, "the last decoded chunk row is still held after the run ended"
    assert not s._video_memo, "the run's memo is still held after the run ended"
