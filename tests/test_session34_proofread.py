"""The proofreading loop in napari (session 34 audit): correct a frame of an output, propagate again
from it, again and again. Nothing the user corrected or approved is replaced without a word, the
next round reads the newest output, and the objects keep their colours. The widget test needs a
display; the others run on napari's Qt-free ViewerModel."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
from napari.components import ViewerModel  # noqa: E402

from _layers import coloured_disks, first_frame_only  # noqa: E402
from _widget_run import needs_display, wait_done  # noqa: E402

from napari_vos import propagate_layers  # noqa: E402
from napari_vos._widgets.layer_job import LayerJob  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def disks(T: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """RGB frames (T, 96, 96) of three coloured disks moving 1 px a frame on noise, and their labels 1, 2, 3."""
    return coloured_disks(T, 96, 96, [(25, 25), (25, 70), (70, 45)], r=9, move=(1, 1))


def first_output(T: int = 8) -> tuple[ViewerModel, np.ndarray, object]:
    """A viewer with the video, frame 0 painted, and a finished flow output (forward from 0)."""
    vid, gt = disks(T)
    v = ViewerModel()
    v.add_image(vid, name="video")
    painted = np.zeros_like(gt)
    painted[0] = gt[0]
    v.add_labels(painted, name="painted")
    out = propagate_layers(v, "video", "painted", method="flow", device="cpu", direction="forward")
    return v, gt, out.labels


def run_job(job: LayerJob) -> None:
    for step in job.steps():
        job.show(step)
    job.finish()


# -- finding 1 ---------------------------------------------------------------------------------
def test_refusal_of_an_earlier_output_says_to_run_forward():
    """The refusal's advice ('untick use every painted frame') with the panel's default direction
    'both' replaces every frame before the corrected one: the advice must name the direction."""
    v, _, out1 = first_output()
    with pytest.raises(ValueError) as err:
        LayerJob(v, "video", out1.name, "flow", 5, device="cpu", direction="both", all_painted=True)
    assert "forward" in str(err.value)


def test_a_both_way_rerun_of_an_earlier_output_keeps_or_names_the_frames_before_the_correction():
    v, _, out1 = first_output()
    k = 5
    out1.data[2][out1.data[2] == 3] = 0  # an earlier correction
    out1.data[k][out1.data[k] == 2] = 0  # the correction now
    before = np.array(out1.data)
    job = LayerJob(v, "video", out1.name, "flow", k, device="cpu", direction="both", all_painted=False)
    run_job(job)
    assert f"frames 0-{k - 1} of {out1.name!r} are propagated again, backward from frame {k}" in job.note
    assert "pick direction 'forward'" in job.note
    assert "frame 2 of" in job.note  # the earlier correction this run replaces, named
    # forward keeps them as they are, and names nothing
    forward = LayerJob(v, "video", out1.name, "flow", k, device="cpu", direction="forward", all_painted=False)
    run_job(forward)
    assert forward.note == ""
    assert all(np.array_equal(forward.output.data[t], before[t]) for t in range(k + 1))


# -- finding 4 ---------------------------------------------------------------------------------
def test_a_rerun_from_an_earlier_output_names_the_edited_frames_it_replaces():
    """Two frames corrected in an earlier output (4 and 6), forward from 4: frame 6's correction is
    replaced in the new layer without a word."""
    v, _, out1 = first_output()
    out1.data[4][out1.data[4] == 3] = 0
    out1.data[6][out1.data[6] == 1] = 0
    fixed6 = np.array(out1.data[6])
    job = LayerJob(v, "video", out1.name, "flow", 4, device="cpu", direction="forward", all_painted=False)
    run_job(job)
    assert not np.array_equal(job.output.data[6], fixed6)
    assert f"frame 6 of {out1.name!r} was changed after its run and this run replaces them" in job.note, job.note
    # a layer widened to a larger type since (to paint ids above 255) is compared as the run wrote it
    from napari_vos._widgets.frame_edits import edited_frames

    out1.data = out1.data.astype(np.uint32)
    assert edited_frames(out1, range(8)) == [4, 6]
    # the new output carries its own checksums: unedited, nothing is named
    assert edited_frames(job.output, range(8)) == []
    job.output.data[7, 0, 0] = 9
    assert edited_frames(job.output, range(8)) == [7]


# -- finding 5 ---------------------------------------------------------------------------------
def test_a_saved_and_reopened_output_repropagated_is_named_after_the_painted_layer(tmp_path):
    """user-guide §4: re-propagating an earlier output names the new one after the painted layer, not
    '... propagated (flow) propagated (flow)'; an output saved (the dialog proposes the layer's name)
    and opened with open_labels_layer carries only metadata['napari_vos']."""
    from napari_vos.console import open_labels_layer, save_labels_layer

    v, _, out1 = first_output(6)
    path = save_labels_layer(out1, tmp_path / f"{out1.name}.tif")
    v2 = ViewerModel()
    v2.add_image(np.asarray(v.layers["video"].data), name="video")
    reopened = open_labels_layer(v2, path)
    assert reopened.name == "painted propagated (flow)"
    out2 = propagate_layers(v2, "video", reopened, method="flow", device="cpu", frame=3, direction="forward",
                            all_painted=False)
    assert out2.labels.name == "painted propagated (flow) [1]", out2.labels.name  # today: "... (flow) propagated (flow)"


# -- finding 6 ---------------------------------------------------------------------------------
def test_the_output_shows_each_object_in_the_colour_of_the_painted_layer():
    vid, gt = disks(5)
    v = ViewerModel()
    v.add_image(vid, name="video")
    painted = np.zeros_like(gt)
    painted[0] = gt[0]
    layer = v.add_labels(painted, name="painted")
    layer.new_colormap()  # the layer controls' "shuffle colors"
    out = propagate_layers(v, "video", "painted", method="flow", device="cpu")
    for i in (1, 2, 3):
        np.testing.assert_allclose(out.labels.get_color(i), layer.get_color(i), err_msg=f"object {i}")


# -- finding 7 ---------------------------------------------------------------------------------
def test_an_output_still_being_filled_is_refused_with_every_painted_frame_unticked_too():
    """Another dock's (or the console's) run, 'both' from frame 3, has shown frames 3-5 so far; a run
    from its frame 4 with 'use every painted frame' unticked copied its unreached frames 0-2 (empty)
    as 'kept from labels'."""
    vid, gt = disks(8)
    v = ViewerModel()
    v.add_image(vid, name="video")
    painted = np.zeros_like(gt)
    painted[3] = gt[3]
    v.add_labels(painted, name="painted")
    running = LayerJob(v, "video", "painted", "flow", 3, device="cpu", direction="both")
    steps = running.steps()
    for _ in range(3):  # frames 3, 4, 5 shown; the run goes on
        running.show(next(steps))
    with pytest.raises(ValueError, match="still going on"):
        LayerJob(v, "video", running.output.name, "flow", 4, device="cpu", direction="forward", all_painted=False)
    running.cancel()
    list(steps)


# -- finding 3 (widget) --------------------------------------------------------------------------
@needs_display
def test_the_next_round_reads_the_newest_output_or_says_it_does_not(make_napari_viewer, qtbot):
    """Round 2 re-propagated output A into B; the user corrects B (napari makes it the active layer)
    and clicks Propagate again: the panel read A, ignoring the correction in B and bringing back an
    object erased in round 1, with nothing said."""
    from napari_vos._widgets.propagate_widget import PropagateWidget

    vid, gt = disks(8)
    viewer = make_napari_viewer()
    viewer.add_image(vid, name="video")
    viewer.add_labels(first_frame_only(gt), name="painted")
    widget = PropagateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.select_method("flow")
    widget.device_combo.setCurrentText("cpu")
    widget.direction_combo.setCurrentText("forward")

    def run() -> None:
        widget.propagate_button.click()
        wait_done(qtbot, widget, timeout=60_000)

    viewer.dims.set_current_step(0, 0)
    widget.labels_combo.setCurrentText("painted")
    run()
    a = viewer.layers["painted propagated (flow)"]
    a.data[3][a.data[3] == 3] = 0
    viewer.dims.set_current_step(0, 3)
    widget.labels_combo.setCurrentText(a.name)
    widget.all_painted.setChecked(False)
    run()
    b = viewer.layers["painted propagated (flow) [1]"]
    assert widget.labels_combo.currentText() == b.name and "labels now" in widget.status.text()
    b.data[5][b.data[5] == 2] = 0
    viewer.dims.set_current_step(0, 5)
    run()
    c = viewer.layers["painted propagated (flow) [2]"]
    assert c.metadata["napari_vos"]["labels_layer"] == b.name
    assert np.array_equal(c.data[5], b.data[5])  # the correction made in the newest output
    assert widget.labels_combo.currentText() == c.name
