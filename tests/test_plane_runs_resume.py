"""Going on from stopped runs through several Z planes: ``propagate_layers(..., plane="painted", resume=output)``
in the console and the widget's "Resume planes left" keep the planes finished and run the others into the
same output, which then holds what the uninterrupted runs give."""
from __future__ import annotations

import numpy as np
import pytest

from test_plane_runs import _fail_on_plane_3, _stack_with_two_painted_planes, _two_planes
from test_widget_z_planes import T, _model_viewer, _volume

NAME = "painted propagated (flow, Z planes 1, 3)"


def _stopped_on_plane_3(monkeypatch):
    """A viewer whose runs through planes 1 and 3 stopped with an error on plane 3; and the uninterrupted
    runs' labels."""
    from napari_vos.console import propagate_layers

    video, truth = _volume()
    viewer = _model_viewer(video, _two_planes(truth))
    whole = np.asarray(propagate_layers(viewer, "volume", "painted", method="flow", plane="painted",
                                        name="whole").labels.data)
    with monkeypatch.context() as patched:
        _fail_on_plane_3(patched)
        with pytest.raises(RuntimeError, match="plane 3"):
            propagate_layers(viewer, "volume", "painted", method="flow", plane="painted")
    return viewer, whole


def test_the_console_goes_on_from_the_planes_finished_into_the_same_output(monkeypatch):
    from napari_vos._widgets.frame_edits import edited_frames
    from napari_vos.console import propagate_layers

    viewer, whole = _stopped_on_plane_3(monkeypatch)
    out = viewer.layers[NAME]
    assert out.metadata["napari_vos"]["complete"] is False and not out.data[:, 3].any()
    layers = len(viewer.layers)
    run = propagate_layers(viewer, "volume", "painted", method="flow", plane="painted", resume=NAME)
    assert run.labels is out and len(viewer.layers) == layers  # filled in place, no new layer
    np.testing.assert_array_equal(np.asarray(out.data), whole)
    record = out.metadata["napari_vos"]
    assert record["complete"] is True and record["cancelled"] is False and record["z_planes_run"] == [1, 3]
    assert record["resumed_from"] == {"z_planes_kept": [1]} and record["object_ids"] == [1, 300]
    assert record["plane_runs"]["3"]["start_frame"] == 2 and record["plane_runs"]["1"]["start_frame"] == 0
    # the kept plane's checksums came along: a correction painted on it is still found
    assert edited_frames(out, range(T), plane=1) == [] and edited_frames(out, range(T), plane=3) == []
    out.data[4, 1, 0, 0] = 7
    assert edited_frames(out, range(T), plane=1) == [4]


def test_what_resume_cannot_go_on_from_is_refused_and_the_output_is_left_as_it_was(monkeypatch):
    from napari_vos.console import propagate_layers

    viewer, _ = _stopped_on_plane_3(monkeypatch)
    out = viewer.layers[NAME]
    before = dict(out.metadata)
    for kwargs, words in [({"plane": None}, "give plane='painted'"),
                          ({"plane": "painted", "resume": "painted"}, "'painted': its record names no runs through Z planes"),
                          ({"plane": "painted", "method": "frtm"}, "holds planes made with the method flow, not frtm"),
                          ({"plane": [1]}, "holds every Z plane asked for (1) finished: nothing is left to run")]:
        given = {"method": "flow", "resume": NAME, **kwargs}
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
            propagate_layers(viewer, "volume", "painted", **given)
        assert out.metadata == before and not out.data[:, 3].any()
    # kept planes made with other weights: refused once the run's session is made, before any frame
    out.metadata["napari_vos"]["plane_runs"]["1"]["checkpoint_sha256"] = "made-elsewhere"
    with pytest.raises(ValueError, match=r"checkpoint \(its sha256\) 'made-elsewhere', this run's is None"):
        propagate_layers(viewer, "volume", "painted", method="flow", plane="painted", resume=NAME)
    # and with other settings (the working size) or direction
    out.metadata["napari_vos"]["checkpoint_sha256"] = None
    given = out.metadata["napari_vos"]["options"]["max_side"]
    with pytest.raises(ValueError, match=rf"were made with max_side={given}, work_size=\[48, 64\], this run's are "
                                         r"max_side=16, work_size=\[12, 16\]: give the earlier run's settings"):
        propagate_layers(viewer, "volume", "painted", method="flow", plane="painted", resume=NAME, max_side=16)
    with pytest.raises(ValueError, match="were made with direction='both', this run's are direction='forward'"):
        propagate_layers(viewer, "volume", "painted", method="flow", plane="painted", resume=NAME, direction="forward")
    record = out.metadata["napari_vos"]
    assert record["z_planes_run"] == [1] and record["complete"] is False and not out.data[:, 3].any()


def _fail_on_plane_1(monkeypatch, after: int) -> None:
    """Make the run through Z plane 1 fail once ``after`` frames of it are segmented (0: before its first)."""
    from napari_vos._widgets.layer_job import LayerJob

    steps = LayerJob.steps

    def failing_part_way(job):
        if job.plane != 1:
            yield from steps(job)
            return
        frames, segmented = steps(job), 0
        # counted here, on the worker: the job's frames_computed grows as the GUI thread shows the frames, which
        # a loaded machine does after the worker has run out of them (a StopIteration, and plane 1 complete)
        while segmented < after:
            frame = next(frames)
            segmented += not frame.annotated
            yield frame
        raise RuntimeError("out of memory part-way through plane 1")

    monkeypatch.setattr(LayerJob, "steps", failing_part_way)


def test_an_output_whose_planes_all_stopped_part_way_is_resumed_and_stays_resumable(monkeypatch):
    """With no plane finished, resume failed on StopIteration (no kept plane to compare the settings with), and
    the output, its record taken off, could never be resumed again ("still being filled by a run")."""
    from napari_vos.console import propagate_layers

    video, truth = _volume()
    viewer = _model_viewer(video, _two_planes(truth))
    whole = np.asarray(propagate_layers(viewer, "volume", "painted", method="flow", plane="painted",
                                        name="whole").labels.data)
    # the first run stops part-way through plane 1; a resume stops there again, then one before its first frame
    for attempt, after in enumerate((2, 3, 0)):
        with monkeypatch.context() as patched:
            _fail_on_plane_1(patched, after)
            with pytest.raises(RuntimeError, match="part-way through plane 1"):
                propagate_layers(viewer, "volume", "painted", method="flow", plane="painted",
                                 **({"resume": NAME} if attempt else {}))
        record = viewer.layers[NAME].metadata["napari_vos"]  # each time still the record of a stopped run
        assert record["complete"] is False and record["plane_runs"]["1"]["complete"] is False
    run = propagate_layers(viewer, "volume", "painted", method="flow", plane="painted", resume=NAME)
    assert run.labels is viewer.layers[NAME]
    np.testing.assert_array_equal(np.asarray(run.labels.data), whole)
    record = run.labels.metadata["napari_vos"]
    assert record["complete"] is True and record["z_planes_run"] == [1, 3] and "resumed_from" not in record  # none kept


def test_the_widget_resumes_the_planes_left_after_cancel(make_napari_viewer, qtbot, monkeypatch):
    import time

    from _widget_run import NO_DISPLAY, click, wait_done

    from napari_vos._widgets.layer_job import LayerJob

    if NO_DISPLAY:
        pytest.skip("the napari widget tests need a display: run them under `xvfb-run -a`")
    steps = LayerJob.steps

    def waiting_for_cancel(job):  # plane 3's run, after its first frame segmented, until Cancel is clicked
        for frame in steps(job):
            yield frame
            waited = time.monotonic()
            while job.plane == 3 and not job.cancelled and not frame.annotated and time.monotonic() - waited < 20:
                time.sleep(0.01)

    viewer, widget = _stack_with_two_painted_planes(make_napari_viewer)
    assert widget.resume_button.isHidden()
    with monkeypatch.context() as patched:
        patched.setattr(LayerJob, "steps", waiting_for_cancel)
        click(qtbot, widget.propagate_button)
        qtbot.waitUntil(lambda: widget.job is not None and widget.job.plane == 3 and widget.job.frames_computed > 0,
                        timeout=20_000)
        click(qtbot, widget.cancel_button)
        wait_done(qtbot, widget)
    out = viewer.layers[NAME]
    assert out.metadata["napari_vos"]["plane_runs"]["3"]["cancelled"] is True and not out.data[T - 1, 3].any()
    assert f"Z planes 1, 3 in {NAME!r}, plane 3 stopped part-way" in widget.status.text()  # it said "Z planes 1, 3"
    assert not widget.resume_button.isHidden() and widget.resume_button.isEnabled()
    plane_1 = np.array(out.data[:, 1])
    layers = len(viewer.layers)
    click(qtbot, widget.resume_button)
    wait_done(qtbot, widget)
    assert len(viewer.layers) == layers and viewer.layers[NAME] is out
    record = out.metadata["napari_vos"]
    assert record["complete"] is True and record["z_planes_run"] == [1, 3] and record["resumed_from"] == {
        "z_planes_kept": [1]}  # plane 3, stopped part-way, run again from its start
    np.testing.assert_array_equal(out.data[:, 1], plane_1)
    assert all(out.data[t, 3].any() for t in range(2, T))
    assert widget.status.text().startswith("done:") and widget.resume_button.isHidden()


def test_the_widget_offers_resume_again_after_a_resume_that_stopped_before_its_first_frame(make_napari_viewer, qtbot,
                                                                                          monkeypatch):
    """A resume that failed before its first frame put the output's record back but hid the button, and said
    'the output layer was removed' of an output that stays."""
    from _widget_run import NO_DISPLAY, click, wait_done

    if NO_DISPLAY:
        pytest.skip("the napari widget tests need a display: run them under `xvfb-run -a`")
    viewer, widget = _stack_with_two_painted_planes(make_napari_viewer)
    for after, button in ((2, widget.propagate_button), (0, widget.resume_button)):
        with monkeypatch.context() as patched:
            _fail_on_plane_1(patched, after)
            click(qtbot, button)
            wait_done(qtbot, widget)
        assert not widget.resume_button.isHidden() and widget.resume_button.isEnabled()
        assert viewer.layers[NAME].metadata["napari_vos"]["plane_runs"]["1"]["complete"] is False
    assert widget.status.text().endswith(f"; {NAME!r} left as it was")
    click(qtbot, widget.resume_button)
    wait_done(qtbot, widget)
    record = viewer.layers[NAME].metadata["napari_vos"]
    assert record["complete"] is True and record["z_planes_run"] == [1, 3] and widget.resume_button.isHidden()
