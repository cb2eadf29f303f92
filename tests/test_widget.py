"""The Propagate dock widget in a real napari viewer (needs a display: run under `xvfb-run -a`).

Every run clicks the real Propagate (and Cancel) buttons and waits for the thread worker.
The weight-free flow method keeps the runs to a few seconds on CPU.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from _layers import first_frame_only, iou, sliding_square, two_channel_video
from _widget_run import SCALE, TRANSLATE
from _widget_run import click as _click
from _widget_run import setup_widget as _setup
from _widget_run import wait_done as _wait_done

# napari's canvas needs OpenGL on a real (or virtual) display; without one Qt would abort the run
if os.environ.get("QT_QPA_PLATFORM") == "offscreen" or (
        sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))):
    pytest.skip("the napari widget tests need a display: run them under `xvfb-run -a`", allow_module_level=True)
pytest.importorskip("napari")
from napari.utils.notifications import notification_manager  # noqa: E402
from qtpy.QtCore import Qt  # noqa: E402

from napari_vos._widgets.propagate_widget import PropagateWidget  # noqa: E402

pytestmark = pytest.mark.gui



def test_propagate_button_fills_a_new_labels_layer(make_napari_viewer, qtbot):
    viewer, widget, truth = _setup(make_napari_viewer)
    viewer.dims.set_current_step(0, 0)
    progress: list[int] = []
    widget.progress.valueChanged.connect(progress.append)
    n_layers = len(viewer.layers)

    _click(qtbot, widget.propagate_button)
    assert not widget.propagate_button.isEnabled() or widget.worker is None
    _wait_done(qtbot, widget)

    assert len(viewer.layers) == n_layers + 1
    out = viewer.layers["painted propagated (flow)"]
    assert out.data.shape == truth.shape and out.data.dtype == np.uint8  # the smallest type for the ids
    np.testing.assert_allclose(out.scale, SCALE)
    np.testing.assert_allclose(out.translate, TRANSLATE)
    assert out.data[0].tolist() == truth[0].tolist()
    for t in range(1, len(truth)):  # the object was followed, not just copied
        assert iou(out.data[t] == 1, truth[t] == 1) > 0.8, t
    assert iou(out.data[-1] == 1, truth[0] == 1) < 0.8
    meta = out.metadata["napari_vos"]
    assert meta["method"] == "flow" and meta["annotated_frames"] == [0]
    assert meta["frames_done"] == len(truth) - 1 and meta["cancelled"] is False
    assert meta["image_layer"] == "video" and meta["labels_layer"] == "painted"
    # the bar advanced frame by frame as the frames arrived
    assert progress[-len(truth):] == list(range(1, len(truth) + 1))
    assert widget.status.text().startswith("done")
    assert widget.propagate_button.isEnabled() and not widget.cancel_button.isEnabled()


def test_status_names_the_working_size_when_it_is_not_the_images(make_napari_viewer, qtbot):
    viewer, widget, truth = _setup(make_napari_viewer)  # 64 x 64 frames
    widget.options_edit.setText("min_side=128")
    _click(qtbot, widget.propagate_button)
    _wait_done(qtbot, widget)
    text = widget.status.text()
    assert text.startswith("done") and ", at 128x128 working size" in text and "starting from painted frame 0" in text
    assert viewer.layers["painted propagated (flow)"].data.shape == truth.shape
    widget.options_edit.setText("")
    _click(qtbot, widget.propagate_button)
    _wait_done(qtbot, widget)
    assert widget.status.text().startswith("done") and "working size" not in widget.status.text()


def test_precision_choice_reaches_the_engine_and_the_provenance(make_napari_viewer, qtbot):
    viewer, widget, truth = _setup(make_napari_viewer, method="frtm")  # a method with a network
    assert widget.precision_combo.currentText() == "auto" and "precision" not in widget.options()
    widget.precision_combo.setCurrentText("bf16")
    assert widget.options()["precision"] == "bf16"
    _click(qtbot, widget.propagate_button)
    _wait_done(qtbot, widget, timeout=60_000)
    meta = viewer.layers["painted propagated (frtm)"].metadata["napari_vos"]
    assert meta["options"]["precision"] == "bf16"
    assert widget.status.text().startswith(f"done: {len(truth)} frames with frtm on cpu (bf16), ")
    assert meta["frames_done"] == len(truth) - 1  # (a 64 px square is too small for FRTM to follow)


def test_cancel_stops_within_a_frame(make_napari_viewer, qtbot, monkeypatch):
    import time

    from napari_vos.methods.flow import FlowMethod

    original = FlowMethod.step
    # 50 ms a frame, as slow as a small real run: a 64 x 64 flow frame takes ~1 ms, so on a loaded
    # machine many finished frames could queue for the GUI before it even sees the click
    monkeypatch.setattr(FlowMethod, "step", lambda self, image: (time.sleep(0.05), original(self, image))[1])
    viewer, widget, truth = _setup(make_napari_viewer, n_frames=120)
    widget.direction_combo.setCurrentText("forward")
    _click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: widget.progress.value() >= 3, timeout=30_000)
    at_click = widget.progress.value()
    _click(qtbot, widget.cancel_button)
    _wait_done(qtbot, widget)

    out = viewer.layers["painted propagated (flow)"]
    meta = out.metadata["napari_vos"]
    assert meta["cancelled"] is True
    shown = widget.progress.value()
    assert at_click <= shown <= at_click + 2  # the frame in progress (and one queued) at most
    assert meta["frames_done"] <= shown  # engine frames (the start frame is not one)
    assert out.data[shown + 1:].max() == 0  # nothing written after the stop
    assert out.data[1].max() == 1
    assert widget.status.text().startswith("cancelled")
    assert widget.propagate_button.isEnabled()


def test_mismatched_labels_are_an_error_not_a_crash(make_napari_viewer, qtbot):
    viewer, widget, _ = _setup(make_napari_viewer)
    viewer.add_labels(np.zeros((6, 32, 32), np.int32), name="wrong size")
    widget.labels_combo.setCurrentText("wrong size")
    assert "do not match" in widget.status.text()
    errors: list = []
    notification_manager.notification_ready.connect(errors.append)
    n_layers = len(viewer.layers)

    _click(qtbot, widget.propagate_button)

    assert widget.worker is None and len(viewer.layers) == n_layers
    assert "must match the image layer" in widget.status.text()
    assert any("must match the image layer" in str(e.message) for e in errors)
    assert widget.propagate_button.isEnabled()


def test_a_multiscale_image_propagates_on_the_level_of_the_painted_labels(make_napari_viewer, qtbot):
    viewer, widget, truth = _setup(make_napari_viewer)
    small = viewer.layers["video"].data
    big = np.repeat(np.repeat(small, 2, axis=1), 2, axis=2)
    viewer.add_image([big, small], name="pyramid", multiscale=True, scale=SCALE, translate=TRANSLATE)
    viewer.layers["painted"].scale = (SCALE[0], 2 * SCALE[1], 2 * SCALE[2])  # over level 1, as napari draws it
    widget.image_combo.setCurrentText("pyramid")
    widget.labels_combo.setCurrentText("painted")  # 64 x 64: level 1
    assert widget.status.text() == ""
    _click(qtbot, widget.propagate_button)
    _wait_done(qtbot, widget)
    out = viewer.layers["painted propagated (flow)"]
    assert out.data.shape == truth.shape and out.metadata["napari_vos"]["image_level"] == 1
    assert widget.status.text().startswith("done") and ", on level 1 (64x64)" in widget.status.text()
    np.testing.assert_allclose(out.scale, (SCALE[0], 2 * SCALE[1], 2 * SCALE[2]))
    assert iou(out.data[-1] == 1, truth[-1] == 1) > 0.8
    viewer.add_labels(np.zeros((6, 100, 100), np.uint8), name="odd")
    widget.labels_combo.setCurrentText("odd")
    assert "do not match" in widget.status.text() and "(6, 128, 128) or (6, 64, 64)" in widget.status.text()


def test_a_second_channel_layer_is_offered_ticked_and_read_with_the_image(make_napari_viewer, qtbot):
    still, square, truth = two_channel_video()
    viewer, widget, _ = _setup(make_napari_viewer, video=(still, truth))
    assert widget.channels_list.isHidden() and widget.channels_list.count() == 0  # nothing to offer yet
    viewer.add_image(square, name="stain", scale=SCALE, translate=TRANSLATE)
    viewer.add_image(square[:, :32], name="other size")
    viewer.add_image(np.stack([still] * 3, axis=-1), name="rgb", rgb=True)
    offered = [widget.channels_list.item(i).text() for i in range(widget.channels_list.count())]
    assert offered == ["stain"] and not widget.channels_list.isHidden()  # not the image, a wrong size or RGB

    _click(qtbot, widget.propagate_button)  # the image alone: nothing moves in it
    _wait_done(qtbot, widget)
    alone = viewer.layers["painted propagated (flow)"]
    assert iou(alone.data[-1] == 1, truth[-1] == 1) < 0.5 and "channel_layers" not in alone.metadata["napari_vos"]

    widget.channels_list.item(0).setCheckState(Qt.CheckState.Checked)
    assert widget.channel_choice == ["stain"]
    _click(qtbot, widget.propagate_button)
    assert "channels video, stain" in widget.status.text()
    _wait_done(qtbot, widget)
    out = viewer.layers["painted propagated (flow) [1]"]
    assert widget.status.text().startswith("done")
    assert min(iou(out.data[t] == 1, truth[t] == 1) for t in range(len(truth))) > 0.8
    assert out.metadata["napari_vos"]["channel_layers"] == ["stain"]
    np.testing.assert_allclose(out.scale, SCALE)
    # the tick survives a refresh of the layer list, and the stain cannot also be the image
    viewer.add_labels(np.zeros_like(truth), name="more paint")
    assert widget.channel_choice == ["stain"]
    widget.image_combo.setCurrentText("stain")
    assert [widget.channels_list.item(i).text() for i in range(widget.channels_list.count())] == ["video"]


def test_engine_error_in_the_worker_is_reported_and_cleaned_up(make_napari_viewer, qtbot, tmp_path):
    viewer, widget, _ = _setup(make_napari_viewer)
    widget.select_method("frtm")
    missing = tmp_path / "missing.safetensors"
    widget.checkpoint_edit.setText(str(missing))
    n_layers = len(viewer.layers)

    _click(qtbot, widget.propagate_button)
    _wait_done(qtbot, widget)

    assert "error" in widget.status.text() and "missing.safetensors" in widget.status.text()
    assert len(viewer.layers) == n_layers  # the empty output layer was removed again
    assert widget.propagate_button.isEnabled()


def _two_objects_with_frtm_maps(make_napari_viewer, request, n_frames):
    """The docked widget on a sliding square and a second painted object, FRTM (a random
    checkpoint) with "show intermediate maps" ticked: one target-scores layer per object."""
    viewer, widget, truth = _setup(make_napari_viewer, n_frames=n_frames)
    # the checkpoint fixture imports torchvision: only after the widget guarded the process (gl_guard.py)
    random_frtm_checkpoint = request.getfixturevalue("random_frtm_checkpoint")
    viewer.layers["painted"].data[0, 50:60, 4:14] = 2
    widget.select_method("frtm")
    widget.checkpoint_edit.setText(random_frtm_checkpoint)
    widget.maps_checkbox.setChecked(True)
    return viewer, widget, truth


def test_map_layers_a_run_ended_before_are_added_one_per_turn_then_the_run_ends(make_napari_viewer, qtbot, request,
                                                                                monkeypatch):
    """finish() added every waiting map layer in one turn (29 OSVOS-AT layers froze the viewer for
    3.4 s); now the controls stay locked while they are added one per turn, then the run ends."""
    from napari_vos._widgets.layer_job import LayerJob

    viewer, widget, truth = _two_objects_with_frtm_maps(make_napari_viewer, request, n_frames=3)
    widget._map_timer.timeout.disconnect()  # none added while the run goes on
    waiting_at_finish, turns = [], []
    finish = LayerJob.finish
    monkeypatch.setattr(LayerJob, "finish", lambda job, *a, **k: (waiting_at_finish.append(job.pending_map_layers),
                                                                   finish(job, *a, **k))[1])
    added = LayerJob.add_next_map_layer

    def one_layer(job):
        turns.append(widget.propagate_button.isEnabled())
        return added(job)

    monkeypatch.setattr(LayerJob, "add_next_map_layer", one_layer)
    _click(qtbot, widget.propagate_button)
    _wait_done(qtbot, widget, timeout=60_000)
    assert widget.status.text().startswith("done"), widget.status.text()
    assert waiting_at_finish == [0] and len(turns) >= 2 and not any(turns)  # locked while the layers came
    out = viewer.layers["painted propagated (frtm)"]
    assert [lyr.name for lyr in viewer.layers if lyr.name.startswith(out.name + " - ")] == \
        [f"{out.name} - target_scores object {k}" for k in (1, 2)]
    assert out.metadata["napari_vos"]["map_layers"] == [f"{out.name} - target_scores object {k}" for k in (1, 2)]


def test_maps_become_image_layers_over_the_image(make_napari_viewer, qtbot, request):
    # FRTM's target scores: one coarse (stride 16) map per object, which must be scaled onto the image
    viewer, widget, truth = _two_objects_with_frtm_maps(make_napari_viewer, request, n_frames=4)
    shown = widget._on_frame
    maps_after_frame = []  # the map layers in the viewer as each frame's turn ends

    def on_frame(frame):
        shown(frame)
        maps_after_frame.append(sum(lyr.name.startswith("painted propagated (frtm) - ") for lyr in viewer.layers))

    widget._on_frame = on_frame  # the worker connects to it on the click

    _click(qtbot, widget.propagate_button)
    _wait_done(qtbot, widget, timeout=60_000)

    assert widget.status.text().startswith("done"), widget.status.text()
    # the first frame's maps wait for their layers, added one per event-loop turn after it
    assert maps_after_frame[:2] == [0, 0] and len(maps_after_frame) == 4
    out = viewer.layers["painted propagated (frtm)"]
    assert out.data.shape == truth.shape
    maps = [lyr for lyr in viewer.layers if lyr.name.startswith(out.name + " - ")]
    assert [m.name for m in maps] == [f"{out.name} - target_scores object {k}" for k in (1, 2)]
    for k, layer in zip((1, 2), maps):
        assert layer.data.shape == (4, 4, 4)  # 64 px / stride 16
        np.testing.assert_allclose(layer.scale, (1.0, 0.5 * 16, 0.25 * 16))
        # map pixel 0 is centred on image pixels 0..15, i.e. at 7.5
        np.testing.assert_allclose(layer.translate, (0.0, 10.0 + 0.5 * 7.5, -3.0 + 0.25 * 7.5))
        assert np.abs(layer.data[1:]).max() > 0 and np.abs(layer.data[0]).max() == 0  # frame 0 is the annotation
        assert layer.colormap.name == "magma"
        assert layer.metadata["napari_vos"]["object_id"] == k
    meta = out.metadata["napari_vos"]
    assert meta["map_layers"] == [m.name for m in maps]
    assert meta["checkpoint"] == request.getfixturevalue("random_frtm_checkpoint") and len(meta["checkpoint_sha256"]) == 64


def test_a_typed_annotated_frame_stays_through_a_method_change_and_layer_events(make_napari_viewer, qtbot):
    """A (Y, X) mask of frame 3 with 3 typed in the widget: looking at another method, adding or
    renaming a layer, the end of a run keep the 3 (it went back to the slider's frame and the mask
    annotated frame 0); a new image, or the slider, moves it."""
    viewer, widget, truth = _setup(make_napari_viewer)
    viewer.add_labels(truth[3].astype(np.int32), name="mask of frame 3", scale=SCALE[1:], translate=TRANSLATE[1:])
    widget.labels_combo.setCurrentText("mask of frame 3")
    viewer.dims.set_current_step(0, 0)
    widget.frame_spin.setValue(3)
    widget.select_method("rgmp")
    widget.select_method("flow")
    viewer.add_points(name="notes")
    viewer.layers["notes"].name = "my notes"
    assert widget.frame_spin.value() == 3
    _click(qtbot, widget.propagate_button)
    _wait_done(qtbot, widget)
    out = viewer.layers["mask of frame 3 propagated (flow)"]
    assert out.metadata["napari_vos"]["start_frame"] == 3
    assert iou(out.data[3] == 1, truth[3] == 1) == 1.0
    assert widget.frame_spin.value() == 3  # the run's end leaves it too (the next run starts there again)
    viewer.add_image(np.zeros((6, 128, 128), np.uint8), name="finer", scale=(1, 0.25, 0.25))  # new Y/X steps
    assert widget.frame_spin.value() == 3
    viewer.dims.set_current_step(0, 1)
    assert widget.frame_spin.value() == 1  # the slider moves it
    widget.frame_spin.setValue(4)
    viewer.add_image(np.zeros((4, 8, 8), np.uint8), name="other")
    widget.image_combo.setCurrentText("other")
    assert widget.frame_spin.value() == 1  # a new image starts from the frame in view


def test_annotated_frame_follows_the_slider_and_every_painted_frame_counts(make_napari_viewer, qtbot):
    viewer, widget, truth = _setup(make_napari_viewer)
    painted = viewer.layers["painted"]
    painted.data[4] = truth[4]
    viewer.dims.set_current_step(0, 4)
    assert widget.frame_spin.value() == 4

    _click(qtbot, widget.propagate_button)
    _wait_done(qtbot, widget)

    out = viewer.layers["painted propagated (flow)"]
    meta = out.metadata["napari_vos"]
    assert meta["annotated_frames"] == [0, 4] and meta["start_frame"] == 4
    for t in range(len(truth)):
        assert iou(out.data[t] == 1, truth[t] == 1) > 0.8, t


def test_manifest_docks_the_widget_and_opens_the_cell_sample(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-vos", "cells")
    assert [lyr.name for lyr in viewer.layers] == ["cells (phase contrast)", "cell labels"]
    assert viewer.layers["cells (phase contrast)"].data.dtype == np.uint16
    _, widget = viewer.window.add_plugin_dock_widget("napari-vos", "Propagate")
    assert isinstance(widget, PropagateWidget)
    assert widget.image_combo.currentText() == "cells (phase contrast)"
    assert widget.labels_combo.currentText() == "cell labels"
    assert widget.status.text() == ""  # the layers match
    # docked through the manifest the widget sees proxies of the layers: the channel list still
    # leaves out the image itself, and a renamed labels layer stays picked
    phase = viewer.layers["cells (phase contrast)"].data
    viewer.add_image((phase > phase.mean()).astype(np.uint8), name="stain")
    assert [widget.channels_list.item(i).text() for i in range(widget.channels_list.count())] == ["stain"]
    viewer.layers["cell labels"].name = "cells painted"
    assert widget.labels_combo.currentText() == "cells painted"
    # ready methods by name; implemented-but-unshipped ones last, saying they need a checkpoint file
    from napari_vos.methods import registry

    offered = [(widget.method_combo.itemData(i), widget.method_combo.itemText(i))
               for i in range(widget.method_combo.count())]
    ready = registry.available_methods()
    assert [name for name, _ in offered] == ready + [m for m in registry.available_methods(True) if m not in ready]
    for name, text in offered:
        assert text == name if name in ready else text == f"{name} (needs a checkpoint file)"
    with pytest.raises(ValueError, match="not offered"):
        widget.select_method("no-such-method")
    # the options field shows each method's own options
    for name in ("flow", "frtm"):
        widget.select_method(name)
        assert widget.options_edit.placeholderText() == f"e.g. {registry.example_options(name)}"
    assert "decode_window" in widget.options_edit.placeholderText()
    # the checkpoint field names the shipped default and completes the method's other registered ones
    from napari_vos import weights

    for name in ready:
        widget.select_method(name)
        names = [c.name for c in weights.list_checkpoints(name)]
        if not names:  # flow: no weights
            continue
        assert weights.default_checkpoint(name).name in widget.checkpoint_edit.placeholderText()
        model = widget.checkpoint_edit.completer().model()
        shown = [model.data(model.index(i, 0), Qt.ItemDataRole.DisplayRole) for i in range(model.rowCount())]
        assert sorted(shown) == sorted(names)


def test_closing_the_viewer_mid_run_stops_the_engine(make_napari_viewer, qtbot):
    viewer, widget, _ = _setup(make_napari_viewer, n_frames=200)
    _click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: widget.progress.value() >= 2, timeout=30_000)
    job, worker = widget.job, widget.worker
    viewer.close()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=10_000)
    assert job.cancelled and job.session.result().frames_done < 100


def _random_checkpoint(method: str, folder) -> str:
    """A checkpoint of untrained weights for a method that fine-tunes before its first frame."""
    import torch

    from napari_vos import weights

    torch.manual_seed(0)
    if method == "osvos_at":
        from napari_vos.methods.osvos_at_net import CONFIGS, OSVOSATNetwork
        from napari_vos.training.osvos_at_recipe import OSVOSATRecipe

        tensors = OSVOSATRecipe().export_tensors(OSVOSATNetwork(CONFIGS["light"]))
    else:
        from napari_vos.methods.rgmp_network import RGMPConfig, RGMPNetwork
        from napari_vos.training.rgmp_recipe import RGMPRecipe

        tensors = RGMPRecipe().export_tensors(RGMPNetwork(RGMPConfig(backbone="resnet18", channels=32)))
    path = folder / f"{method}-random.safetensors"
    weights.save_checkpoint(path, *tensors)
    return str(path)


FINETUNE_OPTIONS = {
    "osvos_at": "finetune_iterations=5000, finetune_crop=None",  # OSVOS-AT's online training
    "rgmp": "online_finetune=True, online_steps=5000, online_size=(64, 64), scales=(1.0,)",  # RGMP's add-on
}


@pytest.mark.parametrize("method", sorted(FINETUNE_OPTIONS))
def test_finetuning_shows_its_steps_and_cancel_stops_it(make_napari_viewer, qtbot, tmp_path, method):
    """A method that fine-tunes before its first frame: the bar counts its steps and Cancel ends it early."""
    viewer, widget, _ = _setup(make_napari_viewer)
    widget.select_method(method)
    widget.checkpoint_edit.setText(_random_checkpoint(method, tmp_path))
    widget.options_edit.setText(FINETUNE_OPTIONS[method])
    _click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: widget.status.text().startswith("fine-tuning"), timeout=60_000)
    assert widget.progress.maximum() == 5000 and 0 <= widget.progress.value() < 5000
    job = widget.job
    _click(qtbot, widget.cancel_button)
    _wait_done(qtbot, widget, timeout=60_000)
    assert job.finetune is not None and job.finetune[0] < 5000  # stopped after the iteration in progress
    # no frame was segmented: no empty output layer is left, and the bar no longer counts steps
    assert f"painted propagated ({method})" not in viewer.layers
    assert widget.status.text() == "cancelled before any frame was segmented; the output layer was removed"
    assert widget.progress.maximum() == len(viewer.layers["video"].data)
    assert widget.propagate_button.isEnabled()


def test_widget_opens_without_torch_and_lists_accelerators_when_the_device_list_opens(make_napari_viewer,
                                                                                      monkeypatch):
    from napari_vos._widgets import propagate_widget
    from napari_vos.methods import registry

    def no_import(*args, **kwargs):
        raise AssertionError("the widget imported a method class or torch while opening")

    monkeypatch.setattr(registry, "method_class", no_import)
    monkeypatch.setattr(propagate_widget, "available_devices", no_import)
    viewer = make_napari_viewer()
    widget = PropagateWidget(viewer)
    assert [widget.device_combo.itemText(i) for i in range(widget.device_combo.count())] == ["auto", "cpu"]
    widget.select_method("flow")
    assert not widget.checkpoint_edit.isEnabled()
    widget.select_method("frtm")
    assert widget.checkpoint_edit.isEnabled()
    monkeypatch.setattr(propagate_widget, "available_devices", lambda: ["auto", "cpu", "cuda"])
    widget.device_combo.probe()
    widget.device_combo.probe()  # once only
    assert [widget.device_combo.itemText(i) for i in range(widget.device_combo.count())] == ["auto", "cpu", "cuda"]


def test_many_small_cells_under_a_method_measured_poor_on_cells_get_a_tip(make_napari_viewer, qtbot):
    """Painted cells under RGMP's default checkpoint: the status names the cells checkpoint, at the
    start and on the done line, and a button takes it; with that checkpoint chosen, no tip."""
    from conftest import phase_cells_video

    viewer, widget, _ = _setup(make_napari_viewer, video=phase_cells_video(3, (256, 256), 9), method="rgmp")
    _click(qtbot, widget.propagate_button)
    assert "tip: 9 small objects" in widget.status.text() and "rgmp-resnet18-cells" in widget.status.text()
    _wait_done(qtbot, widget, timeout=120_000)
    assert widget.status.text().startswith("done") and "rgmp-resnet18-cells" in widget.status.text()
    # one click on the tip's button picks its method and checkpoint
    assert not widget.advice_button.isHidden()  # (the test viewer is not shown: isVisible stays False)
    assert widget.advice_button.text() == "use rgmp with checkpoint rgmp-resnet18-cells"
    widget.select_method("flow")
    _click(qtbot, widget.advice_button)
    assert widget.method == "rgmp" and widget.checkpoint_edit.text() == "rgmp-resnet18-cells"
    assert widget.advice_button.isHidden()
    assert widget.status.text() == "rgmp with checkpoint rgmp-resnet18-cells chosen: Propagate runs it"
    _click(qtbot, widget.propagate_button)
    _wait_done(qtbot, widget, timeout=120_000)
    assert widget.status.text().startswith("done") and "tip" not in widget.status.text()
    assert viewer.layers["painted propagated (rgmp) [1]"].metadata["napari_vos"]["checkpoint"] == "rgmp-resnet18-cells"


def test_the_labels_choice_prefers_a_painted_layer_and_picks_follow_renamed_layers(make_napari_viewer, qtbot):
    from napari_vos._widgets.propagate_widget import NO_LABELS

    viewer = make_napari_viewer()
    widget = PropagateWidget(viewer)  # the usual order: the panel first, then the layers
    viewer.window.add_dock_widget(widget)
    widget.select_method("flow")
    frames, truth = sliding_square(6, (64, 64))
    viewer.add_image(frames, name="video")
    assert widget.labels_combo.currentText() == NO_LABELS and "needs a labels layer" in widget.status.text()
    viewer.add_labels(first_frame_only(truth), name="painted")
    assert widget.labels_combo.currentText() == "painted" and widget.status.text() == ""
    viewer.add_labels(first_frame_only(truth), name="other")
    widget.labels_combo.setCurrentText("other")
    widget.select_method("cosnet")  # zero-shot: "none", locked
    assert widget.labels_combo.currentText() == NO_LABELS and not widget.labels_combo.isEnabled()
    widget.select_method("flow")  # back: the layer picked before
    assert widget.labels_combo.currentText() == "other" and widget.labels_combo.isEnabled()
    viewer.add_image(frames, name="video 2")
    widget.image_combo.setCurrentText("video 2")
    viewer.layers["other"].name = "other renamed"
    viewer.layers["video 2"].name = "video 2 renamed"
    assert widget.labels_combo.currentText() == "other renamed"
    assert widget.image_combo.currentText() == "video 2 renamed"


def test_typed_checkpoints_and_options_stay_with_their_method(make_napari_viewer, qtbot):
    viewer, widget, _ = _setup(make_napari_viewer)
    widget.select_method("rgmp")
    widget.checkpoint_edit.setText("rgmp-resnet18-cells")
    widget.options_edit.setText("scales=[1.0]")
    widget.select_method("frtm")
    assert widget.checkpoint_edit.text() == "" and widget.options_edit.text() == ""
    widget.select_method("rgmp")
    assert widget.checkpoint_edit.text() == "rgmp-resnet18-cells" and widget.options_edit.text() == "scales=[1.0]"


def test_status_and_layers_after_runs_that_end_early_or_have_nothing_to_do(make_napari_viewer, qtbot):
    viewer, widget, truth = _setup(make_napari_viewer, n_frames=8)
    n_layers = len(viewer.layers)
    widget.direction_combo.setCurrentText("backward")  # from frame 0: nothing to propagate
    _click(qtbot, widget.propagate_button)
    assert "nothing to propagate: backward from frame 0" in widget.status.text()
    assert len(viewer.layers) == n_layers and widget.worker is None
    widget.direction_combo.setCurrentText("both")
    _click(qtbot, widget.propagate_button)
    _wait_done(qtbot, widget)
    done = widget.status.text()
    assert done.startswith("done")
    out = viewer.layers["painted propagated (flow)"]
    assert widget.labels_combo.itemText(0) == "painted"  # the output is listed after the painted layer
    viewer.add_points(name="unrelated")  # a layer event keeps the run's line
    assert widget.status.text() == done
    assert widget.image_combo.findText(out.name) < 0
    # a run whose output layer the user deletes stops, says so and leaves no layer
    viewer.layers.remove("unrelated")
    big_video, big_truth = sliding_square(200, (64, 64))
    viewer.layers["video"].data = big_video
    viewer.layers["painted"].data = first_frame_only(big_truth)
    _click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: widget.progress.value() >= 2, timeout=30_000)
    viewer.layers.remove(widget.job.output)
    _wait_done(qtbot, widget)
    assert widget.status.text().startswith("stopped: the output layer was removed")
    assert [lyr.name for lyr in viewer.layers] == ["video", "painted", out.name]


def test_closing_the_dock_mid_run_stops_the_engine(make_napari_viewer, qtbot):
    viewer, widget, _ = _setup(make_napari_viewer, n_frames=200)
    _click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: widget.progress.value() >= 2, timeout=30_000)
    job, worker = widget.job, widget.worker
    viewer.window.remove_dock_widget(widget)  # the dock's X
    qtbot.waitUntil(lambda: not worker.is_running, timeout=10_000)
    assert job.cancelled and job.session.result().frames_done < 100


def test_a_map_too_large_for_the_free_memory_is_not_shown(make_napari_viewer, qtbot, monkeypatch):
    """A map whose layers would take more than half the free memory is left out: the run goes on
    without it, and the status line and the provenance say so; at exactly half it is shown."""
    from napari_vos._widgets import layer_job

    viewer, widget, truth = _setup(make_napari_viewer, n_frames=4)
    widget.maps_checkbox.setChecked(True)
    _click(qtbot, widget.propagate_button)
    _wait_done(qtbot, widget)
    out = viewer.layers["painted propagated (flow)"]
    (shown,) = [lyr for lyr in viewer.layers if lyr.name.startswith(out.name + " - ")]
    need = shown.data.nbytes  # flow's magnitude, (T, h, w) float32
    assert shown.name == f"{out.name} - flow_magnitude" and "not shown" not in widget.status.text()

    for free, shows in ((2 * need, True), (2 * need - 1, False)):
        monkeypatch.setattr(layer_job, "_free_memory", lambda free=free: free)
        for layer in list(viewer.layers):
            if layer.name.startswith(out.name):
                viewer.layers.remove(layer)
        _click(qtbot, widget.propagate_button)
        _wait_done(qtbot, widget)
        out = viewer.layers["painted propagated (flow)"]
        maps = [lyr.name for lyr in viewer.layers if lyr.name.startswith(out.name + " - ")]
        assert out.data[1:].any()  # the labels are propagated either way
        if shows:
            assert maps == [shown.name] and "maps_not_shown" not in out.metadata["napari_vos"]
        else:
            assert maps == [] and out.metadata["napari_vos"]["maps_not_shown"] == {"flow_magnitude": need}
            assert "map(s) not shown" in widget.status.text() and "flow_magnitude" in widget.status.text()


def test_out_of_memory_is_told_as_what_to_change(make_napari_viewer, qtbot, monkeypatch):
    """A GPU running out of memory mid-run: the status line says what to change, the frames done stay."""
    import torch

    from napari_vos.methods.flow import FlowMethod

    viewer, widget, truth = _setup(make_napari_viewer)
    original, calls = FlowMethod.step, []

    def step(self, image):
        calls.append(1)
        if len(calls) == 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has ...")
        return original(self, image)

    monkeypatch.setattr(FlowMethod, "step", step)
    _click(qtbot, widget.propagate_button)
    _wait_done(qtbot, widget)
    text = widget.status.text()
    assert text.startswith("error: the GPU ran out of memory (CUDA out of memory)") and "max side" in text
    out = viewer.layers["painted propagated (flow)"]
    assert out.data[1:3].any() and "OutOfMemoryError" in out.metadata["napari_vos"]["error"]
