"""Review of session 34's napari/CLI changes: the docked panel (napari's proxy viewer), the labels
choice after a correction round, the output's colormap, checksums of annotations a stopped run did
not reach, the CLI's method help for a method left out of TRAITS. The two widget tests need a
display; the others run on napari's Qt-free ViewerModel."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
from napari.components import ViewerModel  # noqa: E402

from _layers import first_frame_only, two_disks  # noqa: E402
from _widget_run import menu_docked_widget, needs_display, wait_done  # noqa: E402

from napari_vos import propagate_layers  # noqa: E402
from napari_vos._widgets.layer_job import LayerJob  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def viewer_with_painted(frames=(0,), T: int = 6) -> ViewerModel:
    vid, gt = two_disks(T)
    v = ViewerModel()
    v.add_image(vid, name="video")
    painted = np.zeros_like(gt)
    for f in frames:
        painted[f] = gt[f]
    v.add_labels(painted, name="painted")
    return v


# -- finding 1 -----------------------------------------------------------------------------------
def test_a_run_from_the_docked_widget_proxy_viewer_is_not_refused():
    """Docked through the manifest (Plugins > Propagate), the widget's viewer is napari's
    PublicOnlyProxy: `copy.deepcopy(self.labels.colormap)` (layer_job.py:543) raises
    NotImplementedError('object proxy must define __deepcopy__()'), so every run with a labels
    layer fails before its output layer is made."""
    from napari.utils._proxies import PublicOnlyProxy

    v = viewer_with_painted()
    job = LayerJob(PublicOnlyProxy(v), "video", "painted", "flow", 0, device="cpu", direction="forward")
    assert job.output.name == "painted propagated (flow)"


# -- finding 2 -----------------------------------------------------------------------------------
def _run(widget, qtbot) -> None:
    widget.propagate_button.click()
    wait_done(qtbot, widget, timeout=60_000)


@needs_display
def test_the_labels_pick_moves_to_the_new_output_when_the_output_was_never_picked_by_hand(make_napari_viewer, qtbot):
    """The only labels layer is an earlier output (a saved output opened again; the painted layer
    gone): the combo shows it without the user picking it, so `_picks['labels']` is None and
    `self._picks['labels'] is job.labels` (propagate_widget.py:785) is False: the next round
    reads the old output again, the correction made in the new one ignored, nothing said."""
    from napari_vos._widgets.propagate_widget import PropagateWidget

    vid, gt = two_disks()
    viewer = make_napari_viewer()
    viewer.add_image(vid, name="video")
    viewer.add_labels(first_frame_only(gt), name="painted")
    a = propagate_layers(viewer, "video", "painted", method="flow", device="cpu", direction="forward").labels
    viewer.layers.remove("painted")
    widget = PropagateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.select_method("flow")
    widget.device_combo.setCurrentText("cpu")
    widget.direction_combo.setCurrentText("forward")
    assert widget.labels_combo.currentText() == a.name
    a.data[3][a.data[3] == 2] = 0
    viewer.dims.set_current_step(0, 3)
    widget.all_painted.setChecked(False)
    _run(widget, qtbot)
    b = viewer.layers["painted propagated (flow) [1]"]
    assert widget.labels_combo.currentText() == b.name and "labels now" in widget.status.text()


@needs_display
def test_the_labels_pick_moves_to_the_new_output_when_docked_through_the_manifest(make_napari_viewer, qtbot):
    """As tests/test_session34_proofread.py's widget test, docked as users dock it: the widget sees
    proxies (a new one at each access), so the `is` test never holds. (Today this fails earlier,
    on finding 1.)"""
    vid, gt = two_disks()
    viewer = make_napari_viewer()
    viewer.add_image(vid, name="video")
    viewer.add_labels(first_frame_only(gt), name="painted")
    widget = menu_docked_widget(viewer, direction="forward")
    viewer.dims.set_current_step(0, 0)
    widget.labels_combo.setCurrentText("painted")
    _run(widget, qtbot)
    assert "painted propagated (flow)" in viewer.layers, widget.status.text()
    a = viewer.layers["painted propagated (flow)"]
    a.data[3][a.data[3] == 2] = 0
    viewer.dims.set_current_step(0, 3)
    widget.labels_combo.setCurrentText(a.name)
    widget.all_painted.setChecked(False)
    _run(widget, qtbot)
    b = viewer.layers["painted propagated (flow) [1]"]
    assert widget.labels_combo.currentText() == b.name and "labels now" in widget.status.text()


# -- finding 3 -----------------------------------------------------------------------------------
def test_the_output_does_not_take_the_painted_layers_show_selected_label_state():
    """The painted layer shows only label 2 ('show selected', a proofreading toggle): the copied
    colormap carries use_selection=True, selection=2 into the output, whose own
    show_selected_label says False: object 1 is transparent in the output and the layer
    controls show nothing to untick."""
    v = viewer_with_painted()
    painted = v.layers["painted"]
    painted.selected_label = 2
    painted.show_selected_label = True
    out = propagate_layers(v, "video", "painted", method="flow", device="cpu", direction="forward").labels
    assert out.data[1].max() >= 1
    assert out.colormap.use_selection == out.show_selected_label
    assert out.get_color(1)[3] > 0  # object 1 is drawn


# -- finding 4 -----------------------------------------------------------------------------------
def test_a_cancelled_runs_unreached_annotation_is_not_named_as_edited():
    """Frames 0 and 5 painted, forward, cancelled after frame 2: the session wrote annotation 5
    into the output (Session.annotate) but the run never showed it, so its checksum is None and
    frame_edits.edited_frames takes its paint for an edit made after the run."""
    v = viewer_with_painted(frames=(0, 5), T=8)
    job = LayerJob(v, "video", "painted", "flow", 0, device="cpu", direction="forward")
    steps = job.steps()
    for _ in range(3):
        job.show(next(steps))
    job.cancel()
    list(steps)
    job.finish()
    assert job.output.data[5].any()  # the annotation, as the run left it
    again = LayerJob(v, "video", job.output.name, "flow", 2, device="cpu", direction="forward", all_painted=False)
    assert "changed after its run" not in again.note, again.note


# -- finding 5 -----------------------------------------------------------------------------------
def test_method_help_reads_the_flags_of_a_method_left_out_of_traits(tmp_path, monkeypatch):
    """docs/architecture.md 'Adding a method': TRAITS is optional ('a method left out is read off
    its class') and 'the CLI's method help ... follow the registry'; `method_help_text` reads only
    registry.TRAITS.get(name), so such a zero-shot, weight-free method gets no note."""
    (tmp_path / "review1_fake_method.py").write_text(
        "class Fake:\n    needs_annotation = False\n    accepts_annotation = False\n    needs_checkpoint = False\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from napari_vos.cli_options import method_help_text
    from napari_vos.methods import registry

    monkeypatch.setitem(registry.METHODS, "fakezs", "review1_fake_method:Fake")
    assert registry.traits("fakezs").needs_annotation is False
    assert "fakezs (zero-shot, no weights)" in method_help_text()
