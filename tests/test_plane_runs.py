"""Runs through several Z planes of a (T, Z, Y, X) image into one output: ``plane="painted"`` (or a list) in
the console, 'every painted Z plane' in the widget. Each plane is a run of its own; the output holds them all,
its record names the planes and each one's run, and an output's edits are looked for on the plane asked for."""
from __future__ import annotations

import numpy as np
import pytest

from test_widget_z_planes import SCALE, TRANSLATE, T, X, Y, Z, _iou, _model_viewer, _volume


def _two_planes(truth: np.ndarray, big_id: int = 300) -> np.ndarray:
    """Paint on plane 1 at frame 0 (id 1) and on plane 3 at frame 2 (``big_id``: more than uint8 holds)."""
    labels = np.zeros(truth.shape, np.uint16)
    labels[0, 1] = truth[0, 1]
    labels[2, 3][truth[2, 3] > 0] = big_id
    return labels


def test_every_painted_plane_is_run_into_one_output():
    from napari_vos.console import propagate_layers

    video, truth = _volume()
    viewer = _model_viewer(video, _two_planes(truth))
    run = propagate_layers(viewer, "volume", "painted", method="flow", plane="painted", maps=True)
    out = run.labels
    assert out.name == "painted propagated (flow, Z planes 1, 3)"
    assert out.data.shape == (T, Z, Y, X) and out.data.dtype == np.uint16  # plane 3's id 300 fits
    assert tuple(out.scale) == SCALE and tuple(out.translate) == TRANSLATE
    for z, wanted in ((1, 1), (3, 300)):
        assert min(_iou(out.data[t, z] == wanted, truth[t, z]) for t in range(T)) > 0.8
    assert not out.data[:, [0, 2]].any()
    record = out.metadata["napari_vos"]
    assert record["z_planes_run"] == [1, 3] and record["z_planes_asked"] == [1, 3] and "z_plane" not in record
    assert record["complete"] is True and record["cancelled"] is False and record["object_ids"] == [1, 300]
    assert record["plane_runs"]["1"]["start_frame"] == 0 and record["plane_runs"]["3"]["start_frame"] == 2
    assert record["plane_runs"]["3"]["object_ids"] == [300] and record["frames_segmented"] == f"0-{T - 1}"
    # each plane's maps, named by their plane, one plane deep at its Z, with the runs' record
    by_plane = {layer.metadata["napari_vos"]["z_plane"]: layer for layer in run.maps}
    assert sorted(by_plane) == [1, 3]
    for z, layer in by_plane.items():
        assert layer.name.endswith(f" Z plane {z}") and layer.data.shape[:2] == (T, 1)
        assert layer.translate[1] == pytest.approx(TRANSLATE[1] + z * SCALE[1])
        assert layer.metadata["napari_vos"]["z_planes_run"] == [1, 3]


def test_a_list_of_planes_runs_those_planes_only():
    from napari_vos.console import propagate_layers

    video, truth = _volume()
    labels = _two_planes(truth, big_id=2)
    labels[0, 0] = truth[0, 0]  # painted, not asked for
    viewer = _model_viewer(video, labels)
    out = propagate_layers(viewer, "volume", "painted", method="flow", plane=[3, 1, 3]).labels
    assert out.metadata["napari_vos"]["z_planes_run"] == [1, 3] and out.data.dtype == np.uint8
    assert out.data[:, 1].any() and out.data[:, 3].any() and not out.data[:, [0, 2]].any()
    again = propagate_layers(viewer, "volume", "painted", method="flow", plane=np.array([0, 3])).labels
    assert again.metadata["napari_vos"]["z_planes_run"] == [0, 3] and np.array_equal(again.data[:, 3], out.data[:, 3])


@pytest.mark.parametrize("plane, message", [
    ([], r"names one or more Z planes"),
    ([1, 2.5], r"names one or more Z planes"),
    ("all", r"plane must be a Z plane \(an int\), a list of them, 'painted' or None, got 'all'"),
    ([1, 2], r"Z plane 2: the labels layer 'painted' is empty on every frame at Z plane 2"),
    ([1, 9], r"Z plane 9: Z plane 9 is outside image layer 'volume''s planes 0\.\.3"),
])
def test_planes_the_runs_cannot_take_are_refused_before_any_run(plane, message):
    """A plane refused is named, and nothing is left behind: the first plane's output layer goes again."""
    from napari_vos.console import propagate_layers

    video, truth = _volume()
    viewer = _model_viewer(video, _two_planes(truth))
    with pytest.raises(ValueError, match=message):
        propagate_layers(viewer, "volume", "painted", method="flow", plane=plane)
    assert [layer.name for layer in viewer.layers] == ["volume", "painted"]


def test_painted_planes_need_a_volume_of_labels_with_paint():
    from napari.components import ViewerModel

    from napari_vos.console import propagate_layers

    video, truth = _volume()
    viewer = _model_viewer(video, truth[0, 1])  # one (Y, X) frame: no planes to find paint on
    with pytest.raises(ValueError, match=r"'every painted Z plane' reads the planes of a \(T, Z, Y, X\) labels layer"):
        propagate_layers(viewer, "volume", "painted", method="flow", plane="painted")
    viewer = ViewerModel()
    viewer.add_image(video, name="volume")
    viewer.add_labels(np.zeros_like(truth), name="painted")
    with pytest.raises(ValueError, match=r"'painted' is empty on every Z plane"):
        propagate_layers(viewer, "volume", "painted", method="flow", plane="painted")
    with pytest.raises(ValueError, match=r"'every painted Z plane' \(plane='painted'\) runs through the Z planes painted in the labels layer"):
        propagate_layers(viewer, "volume", None, method="cosnet", plane="painted")


def _fail_on_plane_3(monkeypatch) -> None:
    """Make the run through Z plane 3 fail before its first frame, as an out-of-memory error would."""
    from napari_vos._widgets.layer_job import LayerJob

    steps = LayerJob.steps

    def failing_on_plane_3(job):
        if job.plane == 3:
            raise RuntimeError("out of memory on plane 3")
        yield from steps(job)

    monkeypatch.setattr(LayerJob, "steps", failing_on_plane_3)


def test_a_plane_whose_run_fails_leaves_the_planes_done_with_their_record(monkeypatch):
    """The second plane's run stops with an error before its first frame: the first plane's labels stay, the
    record says which planes were run and that the runs did not finish."""
    from napari_vos.console import propagate_layers

    _fail_on_plane_3(monkeypatch)
    video, truth = _volume()
    viewer = _model_viewer(video, _two_planes(truth))
    with pytest.raises(RuntimeError, match="plane 3"):
        propagate_layers(viewer, "volume", "painted", method="flow", plane="painted", maps=True)
    out = viewer.layers["painted propagated (flow, Z planes 1, 3)"]
    assert out.data[:, 1].any() and not out.data[:, 3].any()
    record = out.metadata["napari_vos"]
    assert record["z_planes_run"] == [1] and record["z_planes_asked"] == [1, 3]
    assert record["complete"] is False and record["cancelled"] is True
    assert all(layer.metadata["napari_vos"]["z_plane"] == 1 for layer in viewer.layers if layer is not out
               and "napari_vos_map" in layer.metadata)


def test_edits_of_an_output_of_several_planes_are_looked_for_on_the_plane_asked_for():
    from napari_vos._widgets.frame_edits import edited_frames
    from napari_vos.console import propagate_layers

    video, truth = _volume()
    viewer = _model_viewer(video, _two_planes(truth, big_id=2))
    out = propagate_layers(viewer, "volume", "painted", method="flow", plane="painted").labels
    assert edited_frames(out, range(T), 1) == [] and edited_frames(out, range(T), 3) == []
    out.data[4, 3, 5, 5] = 7
    assert edited_frames(out, range(T), 3) == [4] and edited_frames(out, range(T), 1) == []
    assert edited_frames(out, range(T), 0) == [] and edited_frames(out, range(T)) == []  # no run went through 0
    # a forward re-run of plane 3 from frame 3 keeps its frames 0-2 and names frame 4's edit
    with pytest.warns(UserWarning, match=r"frame 4 of 'painted propagated \(flow, Z planes 1, 3\)' was changed"):
        again = propagate_layers(viewer, "volume", out, method="flow", frame=3, plane=3, all_painted=False,
                                 direction="forward").labels
    assert np.array_equal(again.data[:3, 3], out.data[:3, 3]) and not again.data[:, 1].any()


def test_the_widget_runs_every_painted_plane(make_napari_viewer, qtbot):
    """In a real viewer: 'every painted Z plane' is offered for a 3D + time image only; ticked, one Propagate
    click fills both painted planes of one output and the status line names them."""
    from _widget_run import NO_DISPLAY, click, docked_widget, wait_done

    if NO_DISPLAY:
        pytest.skip("the napari widget tests need a display: run them under `xvfb-run -a`")
    video, truth = _volume()
    viewer = make_napari_viewer()
    viewer.add_image(video[:, 0], name="time-lapse")
    viewer.add_image(video, name="volume", scale=SCALE, translate=TRANSLATE)
    viewer.add_labels(_two_planes(truth), name="painted", scale=SCALE, translate=TRANSLATE)
    widget = docked_widget(viewer, "time-lapse", "painted")
    assert widget.all_planes.isHidden()
    widget.image_combo.setCurrentText("volume")
    assert not widget.all_planes.isHidden() and not widget.all_planes.isChecked()
    widget.all_planes.setChecked(True)
    viewer.dims.set_current_step(1, 0)  # the plane on screen is not painted: every painted plane is run
    click(qtbot, widget.propagate_button)
    wait_done(qtbot, widget)
    out = viewer.layers["painted propagated (flow, Z planes 1, 3)"]
    assert min(_iou(out.data[t, 1] == 1, truth[t, 1]) for t in range(T)) > 0.8
    assert min(_iou(out.data[t, 3] == 300, truth[t, 3]) for t in range(T)) > 0.8
    assert out.metadata["napari_vos"]["z_planes_run"] == [1, 3] and out.editable
    assert widget.status.text().startswith("done:") and "Z planes 1, 3 in 'painted propagated" in widget.status.text()
    assert widget.runs is None and widget.propagate_button.isEnabled()


def _stack_with_two_painted_planes(make_napari_viewer):
    from _widget_run import docked_widget

    video, truth = _volume()
    viewer = make_napari_viewer()
    viewer.add_image(video, name="volume", scale=SCALE, translate=TRANSLATE)
    viewer.add_labels(_two_planes(truth), name="painted", scale=SCALE, translate=TRANSLATE)
    widget = docked_widget(viewer, "volume", "painted")
    widget.all_planes.setChecked(True)
    return viewer, widget


def test_the_widget_keeps_the_planes_done_when_a_later_one_fails(make_napari_viewer, qtbot, monkeypatch):
    from _widget_run import NO_DISPLAY, click, wait_done

    if NO_DISPLAY:
        pytest.skip("the napari widget tests need a display: run them under `xvfb-run -a`")
    _fail_on_plane_3(monkeypatch)
    viewer, widget = _stack_with_two_painted_planes(make_napari_viewer)
    click(qtbot, widget.propagate_button)
    wait_done(qtbot, widget)
    out = viewer.layers["painted propagated (flow, Z planes 1, 3)"]
    assert out.data[:, 1].any() and not out.data[:, 3].any() and out.editable
    assert out.metadata["napari_vos"]["z_planes_run"] == [1] and out.metadata["napari_vos"]["complete"] is False
    said = widget.status.text()
    assert "out of memory on plane 3" in said and "Z plane 1 in 'painted propagated (flow, Z planes 1, 3)', plane 3 " \
                                                   "not run" in said


def test_cancel_stops_the_planes_still_to_run(make_napari_viewer, qtbot, monkeypatch):
    """Cancel during plane 1's run: its frames done are kept, plane 3 is not run, and the record says so."""
    import time

    from _widget_run import NO_DISPLAY, click, wait_done

    from napari_vos._widgets.layer_job import LayerJob

    if NO_DISPLAY:
        pytest.skip("the napari widget tests need a display: run them under `xvfb-run -a`")
    steps = LayerJob.steps

    def waiting_for_cancel(job):  # after the first frame segmented, until Cancel is clicked
        for frame in steps(job):
            yield frame
            waited = time.monotonic()
            while not job.cancelled and not frame.annotated and time.monotonic() - waited < 20:
                time.sleep(0.01)

    monkeypatch.setattr(LayerJob, "steps", waiting_for_cancel)
    viewer, widget = _stack_with_two_painted_planes(make_napari_viewer)
    click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: widget.job is not None and widget.job.frames_computed > 0, timeout=20_000)
    click(qtbot, widget.cancel_button)
    wait_done(qtbot, widget)
    out = viewer.layers["painted propagated (flow, Z planes 1, 3)"]
    assert out.data[1, 1].any() and not out.data[:, 3].any() and not out.data[T - 1, 1].any()
    record = out.metadata["napari_vos"]
    assert record["z_planes_run"] == [1] and record["cancelled"] is True and record["complete"] is False
    assert widget.status.text().startswith("cancelled:") and "plane 3 not run" in widget.status.text()


def test_painted_planes_and_their_largest_id_in_one_pass():
    """label_types.painted_planes: the planes holding paint (among those asked for) and their largest id, each
    plane read once."""
    from napari_vos.data.label_types import painted_planes

    labels = np.zeros((3, 5, 4, 4), np.uint16)
    labels[2, 1, 0, 0] = 7
    labels[0, 3, 1, 1] = 300
    reads = []

    class Counted:  # a lazy stack that records every read
        shape, dtype, ndim = labels.shape, labels.dtype, labels.ndim

        def __getitem__(self, key):
            reads.append(key)
            return labels[key]

    assert painted_planes(Counted()) == ([1, 3], 300)
    assert [key[1] for key in reads] == [0, 1, 2, 3, 4]
    assert painted_planes(labels, [0, 1]) == ([1], 7) and painted_planes(labels, [0, 2]) == ([], 0)
