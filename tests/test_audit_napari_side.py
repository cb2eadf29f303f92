"""The napari side, from a mutation audit: `LayerJob`/`propagate_layers` on napari's Qt-free
ViewerModel (no display), the options field, and the Propagate dock widget in a real viewer (its
tests need a display: run them under `xvfb-run -a`). Each test pins a behaviour that a change to
the widget, layer_job.py, options.py or console.py could break unseen by the other tests."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from _layers import first_frame_only, iou, sliding_square, viewer_with_a_nan_frame
from _widget_run import needs_display
from _widget_run import click as _click
from _widget_run import setup_widget as _setup
from _widget_run import wait_done as _wait_done

pytest.importorskip("napari")
from napari.components import ViewerModel  # noqa: E402

from napari_vos import propagate_layers  # noqa: E402
from napari_vos._widgets.layer_job import LayerJob  # noqa: E402
from napari_vos._widgets.options import parse_options  # noqa: E402



@pytest.fixture
def viewer():
    v = ViewerModel()
    frames, truth = sliding_square(6, (64, 64))
    v.add_image(frames, name="video")
    v.add_labels(first_frame_only(truth), name="painted")
    return v


@pytest.fixture
def brighter(monkeypatch):
    import _zero_shot_method as zsm

    from napari_vos.methods import registry

    monkeypatch.setitem(registry.METHODS, zsm.NAME, zsm.TARGET)
    return zsm.NAME


# -- LayerJob / propagate_layers ----------------------------------------------------------------
def test_the_output_layer_keeps_the_images_units():
    v = ViewerModel()
    frames, truth = sliding_square(4, (48, 48))
    image = v.add_image(frames, name="video", units=("s", "um", "um"))
    v.add_labels(first_frame_only(truth), name="painted")
    out = propagate_layers(v, "video", "painted", method="flow", device="cpu")
    assert tuple(out.labels.units) == tuple(image.units)


def test_an_output_still_being_filled_is_refused_as_labels(viewer):
    """Another run's output gets its provenance when that run ends; until then it holds only the
    copied annotation and is no labels layer to start from."""
    filling = viewer.add_labels(np.array(viewer.layers["painted"].data), name="painted (flow)")
    filling.metadata["napari_vos_output"] = True
    with pytest.raises(ValueError, match="is the output of a run still going on"):
        propagate_layers(viewer, "video", "painted (flow)", method="flow", device="cpu")


def test_a_slider_beyond_a_shorter_layers_last_frame_picks_its_last_frame(viewer):
    from napari_vos._widgets.layer_job import current_frame

    viewer.add_image(np.zeros((10, 64, 64), np.uint8), name="longer")
    viewer.dims.set_current_step(0, 9)
    assert current_frame(viewer, viewer.layers["longer"]) == 9
    assert current_frame(viewer, viewer.layers["video"]) == 5


def test_an_annotated_frame_outside_the_stack_is_refused_before_a_layer_is_added(viewer):
    viewer.add_labels(sliding_square(6, (64, 64))[1][0], name="one frame")
    n = len(viewer.layers)
    for frame in (6, -1):
        with pytest.raises(ValueError, match=f"annotated frame {frame} is outside the stack"):
            LayerJob(viewer, "video", "one frame", method="flow", frame=frame, device="cpu")
    with pytest.raises(ValueError, match="annotated frame 10 is outside the stack"):
        propagate_layers(viewer, "video", "painted", method="flow", frame=10, device="cpu")  # (T, Y, X) labels
    assert len(viewer.layers) == n


def test_a_zero_shot_start_frame_outside_the_stack_is_refused_before_a_layer_is_added(viewer, brighter):
    n = len(viewer.layers)
    with pytest.raises(ValueError, match="start frame 6 is outside the stack"):
        LayerJob(viewer, "video", None, method=brighter, frame=6, device="cpu")
    assert len(viewer.layers) == n


def test_an_unpainted_frame_midway_between_two_painted_ones_starts_from_the_earlier(viewer):
    truth = sliding_square(6, (64, 64))[1]
    viewer.layers["painted"].data[4] = truth[4]
    with pytest.warns(UserWarning, match="frame 2 is not painted; starting from painted frame 0"):
        out = propagate_layers(viewer, "video", "painted", method="flow", frame=2, device="cpu")
    assert out.labels.metadata["napari_vos"]["start_frame"] == 0


def test_backward_without_a_frame_starts_from_the_last_painted_frame(viewer):
    truth = sliding_square(6, (64, 64))[1]
    painted = viewer.layers["painted"]
    painted.data[0] = 0
    painted.data[1], painted.data[4] = truth[1], truth[4]
    out = propagate_layers(viewer, "video", "painted", method="flow", direction="backward", device="cpu")
    meta = out.labels.metadata["napari_vos"]
    assert meta["start_frame"] == 4 and meta["annotated_frames"] == [1, 4] and meta["frames_total"] == 5
    for t in range(5):
        assert iou(out.labels.data[t] == 1, truth[t] == 1) > 0.8, t


def test_a_zero_shot_run_backward_without_a_frame_covers_every_frame(viewer, brighter):
    out = propagate_layers(viewer, "video", method=brighter, direction="backward", device="cpu")
    meta = out.labels.metadata["napari_vos"]
    assert meta["start_frame"] == 5 and meta["frames_done"] == 6 and meta["frames_total"] == 6
    assert all(out.labels.data[t].any() for t in range(6))


def test_one_way_runs_count_the_frames_they_cover(viewer):
    truth = sliding_square(6, (64, 64))[1]
    viewer.layers["painted"].data[3] = truth[3]
    forward = propagate_layers(viewer, "video", "painted", method="flow", frame=3, direction="forward",
                               all_painted=False, device="cpu")
    assert forward.labels.metadata["napari_vos"]["frames_total"] == 3  # frames 3, 4, 5
    assert forward.labels.metadata["napari_vos"]["cancelled"] is False
    viewer.layers["painted"].data[1] = truth[1]
    backward = propagate_layers(viewer, "video", "painted", method="flow", frame=1, direction="backward",
                                all_painted=False, device="cpu")  # frames 1 and 0: one to segment
    assert backward.labels.metadata["napari_vos"]["frames_total"] == 2
    assert iou(backward.labels.data[0] == 1, truth[0] == 1) > 0.8


def test_an_error_on_the_first_frame_to_segment_leaves_no_layer():
    v = viewer_with_a_nan_frame(5, (48, 48), nan_at=1)
    with pytest.raises(ValueError, match="frame 1 contains NaN"):
        propagate_layers(v, "video", "painted", method="flow", device="cpu", direction="forward")
    assert [lyr.name for lyr in v.layers] == ["video", "painted"]


def test_ctrl_c_mid_run_keeps_the_finished_frames_with_their_provenance(viewer, monkeypatch):
    from conftest import interrupt_reading_frame

    interrupt_reading_frame(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        propagate_layers(viewer, "video", "painted", method="flow", device="cpu", direction="forward")
    out = viewer.layers["painted propagated (flow)"]
    meta = out.metadata["napari_vos"]
    assert meta["error"].startswith("KeyboardInterrupt") and meta["frames_done"] == 2
    assert out.data[2].any() and not out.data[3:].any()


def test_a_cancel_after_the_last_frame_cancelled_nothing(viewer):
    job = LayerJob(viewer, "video", "painted", method="flow", device="cpu")
    for step in job.steps():
        job.show(step)
    job.cancel()
    assert job.finish().frames_done == 5
    assert job.output.metadata["napari_vos"]["cancelled"] is False


def _show_map(job, index, value):
    from napari_vos.session import FrameResult

    job.show(FrameResult(index, np.zeros((64, 64), np.uint8), {"score": value}))


def test_map_contrast_spans_every_frame_shown_and_a_size_change_is_ignored(viewer):
    job = LayerJob(viewer, "video", "painted", method="flow", device="cpu", maps=True)
    _show_map(job, 1, np.zeros((1, 16, 16), np.float32))
    _show_map(job, 2, np.full((1, 16, 16), 5.0, np.float32))
    layer = job.map_layers[("score", 0)]
    assert tuple(layer.contrast_limits) == (0.0, 5.0)
    _show_map(job, 3, np.full((1, 8, 8), 9.0, np.float32))  # another size mid-run: the first size is kept
    assert layer.data.shape == (6, 16, 16) and not layer.data[3].any()


def test_a_map_of_eight_objects_is_still_one_layer_per_object(viewer):
    cells = np.zeros((6, 64, 64), np.uint8)
    for i in range(8):
        y, x = 4 + 20 * (i // 4), 4 + 15 * (i % 4)
        cells[0, y:y + 4, x:x + 4] = i + 1
    viewer.add_labels(cells, name="cells")
    job = LayerJob(viewer, "video", "cells", method="flow", device="cpu", maps=True)
    n = len(viewer.layers)
    _show_map(job, 1, np.ones((8, 16, 16), np.float32))
    assert len(viewer.layers) == n + 8
    assert [job.map_layers[("score", k)].metadata["napari_vos_map"]["object_id"] for k in range(8)] == list(range(1, 9))


def test_deferred_map_layers_come_one_at_a_time_holding_the_frames_shown_before_them(viewer):
    # the widget's way (napari takes 0.1-0.3 s per layer): a frame's maps wait, filled as a layer
    # would be, and add_next_map_layer adds one per call; finish adds those still waiting
    cells = np.zeros((6, 64, 64), np.uint8)
    for i in range(3):
        cells[0, 4:8, 4 + 15 * i:8 + 15 * i] = i + 1
    viewer.add_labels(cells, name="cells")
    job = LayerJob(viewer, "video", "cells", method="flow", device="cpu", maps=True, defer_map_layers=True)
    n = len(viewer.layers)
    _show_map(job, 1, np.stack([np.full((16, 16), -1.0 + k, np.float32) for k in range(3)]))
    _show_map(job, 2, np.full((3, 16, 16), 4.0, np.float32))
    assert len(viewer.layers) == n and job.pending_map_layers == 3
    assert job.add_next_map_layer() and len(viewer.layers) == n + 1
    first = job.map_layers[("score", 0)]
    assert first.name == "cells propagated (flow) - score object 1"
    assert first.data[1].min() == -1.0 and first.data[2].min() == 4.0  # written before it was added
    assert tuple(first.contrast_limits) == (0.0, 4.0)  # from 0: the map has positive values
    _show_map(job, 3, np.full((3, 16, 16), 2.0, np.float32))  # a frame after the first layer came
    assert first.data[3].min() == 2.0 and job.pending_map_layers == 2
    assert job.add_next_map_layer() and not job.add_next_map_layer() and not job.add_next_map_layer()
    np.testing.assert_array_equal(job.map_layers[("score", 2)].data[1:4, 0, 0], [1.0, 4.0, 2.0])
    # a run ending before its maps' layers came adds them in finish; a discarded one drops them
    again = LayerJob(viewer, "video", "cells", method="flow", device="cpu", maps=True, defer_map_layers=True)
    for step in again.steps():
        again.show(step)
    waiting = again.pending_map_layers
    assert waiting and again.finish() is not None and again.pending_map_layers == 0
    assert again.output.metadata["napari_vos"]["map_layers"] == [lyr.name for lyr in again.map_layers.values()]
    assert len(again.map_layers) == waiting
    dropped = LayerJob(viewer, "video", "cells", method="flow", device="cpu", maps=True, defer_map_layers=True)
    before = len(viewer.layers)
    _show_map(dropped, 1, np.ones((3, 16, 16), np.float32))
    dropped.discard()
    assert dropped.pending_map_layers == 0 and len(viewer.layers) == before - 1  # its output layer went too


def test_an_object_kept_as_one_working_pixel_is_named_in_the_jobs_note(viewer):
    # the widget shows no Python warnings: the engine's note joins the status line's
    spot = np.zeros((6, 64, 64), np.uint8)
    spot[0, 30, 30] = 1
    spot[0, 40:60, 40:60] = 2
    viewer.add_labels(spot, name="spot")
    job = LayerJob(viewer, "video", "spot", method="flow", device="cpu", max_side=16, min_side=None)
    with pytest.warns(UserWarning, match="smaller than a pixel"):
        for step in job.steps():
            job.show(step)
    assert "object 1 of frame 0 is smaller than a pixel at the 16x16 working size" in job.note


def test_outputs_of_a_rotated_sheared_affine_image_overlay_it_maps_too():
    geometry = dict(scale=(1.0, 0.5, 0.25), translate=(0.0, 10.0, -3.0), rotate=30, shear=[0.2],
                    affine=np.array([[1, 0, 0, 0], [0, 1, 0, 5.0], [0, 0, 2.0, 0], [0, 0, 0, 1]]))
    v = ViewerModel()
    frames, truth = sliding_square(6, (64, 64))
    v.add_image(frames, name="video", **geometry)
    v.add_labels(first_frame_only(truth), name="painted", **geometry)
    cells = np.zeros((6, 64, 64), np.uint8)
    for i in range(12):
        cells[0, 4 + 10 * (i // 6):8 + 10 * (i // 6), 4 + 10 * (i % 6):8 + 10 * (i % 6)] = i + 1
    v.add_labels(cells, name="cells", **geometry)
    image = v.layers["video"]
    for labels, n_objects in (("painted", 1), ("cells", 12)):
        job = LayerJob(v, "video", labels, method="flow", device="cpu", maps=True)
        assert job.note == ""  # drawn as the image is
        _show_map(job, 1, np.ones((n_objects, 16, 16), np.float32))  # stride 4
        point = np.array([2.0, 40.0, 17.0])
        np.testing.assert_allclose(job.output.data_to_world(point), image.data_to_world(point), atol=1e-9)
        layer = next(iter(job.map_layers.values()))
        # map pixel (3, 5) covers image pixels 12..15, 20..23: its centre is image pixel (13.5, 21.5)
        at = [1.0, 3.0, 5.0] if n_objects == 1 else [7.0, 1.0, 3.0, 5.0]
        np.testing.assert_allclose(layer.data_to_world(at)[-3:], image.data_to_world([1.0, 13.5, 21.5]), atol=1e-9)
    # labels drawn unrotated over a rotated image: paired by index, and said
    v.add_labels(first_frame_only(truth), name="plain", scale=geometry["scale"], translate=geometry["translate"])
    assert "rotated, sheared or transformed" in LayerJob(v, "video", "plain", method="flow", device="cpu").note
    # one (Y, X) frame drawn as the image is: no note (its matrices are a dimension smaller)
    flat = {k: (value[1:] if k in ("scale", "translate") else value) for k, value in geometry.items() if k != "affine"}
    flat["affine"] = geometry["affine"][1:, 1:]
    v.add_labels(truth[0], name="one frame", **flat)
    assert LayerJob(v, "video", "one frame", method="flow", device="cpu", frame=0).note == ""


# -- the options field ---------------------------------------------------------------------------
def test_options_with_their_own_control_or_not_name_value_pairs_are_refused():
    for text in ("checkpoint='frtm-resnet18-vos'", "direction='forward'", "all_painted=False", "precision='fp16'"):
        with pytest.raises(ValueError, match="own control"):
            parse_options(text)
    with pytest.raises(ValueError, match="name=value pairs"):
        parse_options("**{'a': 1}")


# -- the Propagate dock widget ---------------------------------------------------------------------


@pytest.mark.gui
@needs_display
def test_widget_max_working_side_reaches_the_run(make_napari_viewer, qtbot):
    viewer, widget, truth = _setup(make_napari_viewer)
    viewer.dims.set_current_step(0, 0)
    widget.max_side_spin.setValue(32)
    _click(qtbot, widget.propagate_button)
    _wait_done(qtbot, widget)
    out = viewer.layers["painted propagated (flow)"]
    assert out.metadata["napari_vos"]["options"]["work_size"] == [32, 32]
    assert widget.status.text().startswith("done") and ", at 32x32 working size" in widget.status.text()
    assert out.data.shape == truth.shape


@pytest.mark.gui
@needs_display
def test_widget_unticked_every_painted_frame_uses_the_annotated_frame_alone(make_napari_viewer, qtbot):
    viewer, widget, truth = _setup(make_napari_viewer)
    viewer.layers["painted"].data[4] = truth[4]
    viewer.dims.set_current_step(0, 0)
    widget.all_painted.setChecked(False)
    _click(qtbot, widget.propagate_button)
    _wait_done(qtbot, widget)
    meta = viewer.layers["painted propagated (flow)"].metadata["napari_vos"]
    assert meta["annotated_frames"] == [0] and meta["frames_done"] == 5


@pytest.mark.gui
@needs_display
def test_widget_frame_choice_ends_at_the_last_frame(make_napari_viewer):
    _, widget, _ = _setup(make_napari_viewer, n_frames=7)
    assert (widget.frame_spin.minimum(), widget.frame_spin.maximum()) == (0, 6)


@pytest.mark.gui
@needs_display
def test_widget_an_error_after_some_frames_keeps_them_with_the_error_recorded(make_napari_viewer, qtbot):
    frames, truth = sliding_square(6, (64, 64))
    frames = frames.astype(np.float32)
    frames[4, 0, 0] = np.nan
    viewer, widget, _ = _setup(make_napari_viewer, video=(frames, truth))
    widget.direction_combo.setCurrentText("forward")
    _click(qtbot, widget.propagate_button)
    _wait_done(qtbot, widget)
    assert widget.status.text().startswith("error: frame 4 contains NaN")
    out = viewer.layers["painted propagated (flow)"]
    meta = out.metadata["napari_vos"]
    assert meta["error"].startswith("ValueError: frame 4 contains NaN") and meta["frames_done"] == 3
    assert out.data[3].any() and not out.data[4:].any()
    assert widget.propagate_button.isEnabled()


@pytest.mark.gui
@needs_display
def test_widget_map_layers_are_offered_neither_as_image_nor_as_channel(make_napari_viewer, qtbot):
    viewer, widget, _ = _setup(make_napari_viewer, n_frames=4)
    widget.maps_checkbox.setChecked(True)
    _click(qtbot, widget.propagate_button)
    _wait_done(qtbot, widget)
    maps = [lyr.name for lyr in viewer.layers if "napari_vos_map" in lyr.metadata]
    assert maps and viewer.layers[maps[0]].data.shape == (4, 64, 64)  # the image's frames and size
    images = [widget.image_combo.itemText(i) for i in range(widget.image_combo.count())]
    channels = [widget.channels_list.item(i).text() for i in range(widget.channels_list.count())]
    assert images == ["video"] and channels == []


@pytest.mark.gui
@needs_display
def test_widget_an_rgb_image_is_offered_no_channel_layers(make_napari_viewer):
    viewer, widget, _ = _setup(make_napari_viewer)
    grey = viewer.layers["video"].data
    viewer.add_image(np.stack([grey] * 3, axis=-1), name="colour", rgb=True)
    widget.image_combo.setCurrentText("colour")
    assert widget.channels_list.count() == 0 and widget.channels_list.isHidden()
    widget.image_combo.setCurrentText("video")
    assert widget.channels_list.count() == 0  # the RGB layer is not a channel of the grey one either


@pytest.mark.gui
@needs_display
def test_widget_removing_the_output_mid_run_cancels_and_removes_its_map_layers(make_napari_viewer, qtbot):
    viewer, widget, _ = _setup(make_napari_viewer, n_frames=200)
    widget.maps_checkbox.setChecked(True)
    widget.direction_combo.setCurrentText("forward")
    _click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: widget.progress.value() >= 3, timeout=30_000)
    job = widget.job
    assert widget.progress.value() == job.frames_shown  # the bar counts the frames shown, the start frame too
    # a map layer being filled (the image's frames and size) is no image or channel to pick once the
    # layer lists are refilled (here by a layer event; see findings: not yet at the map layer's own insertion)
    viewer.add_points(name="unrelated")
    assert job.map_layers and widget.channels_list.count() == 0
    assert [widget.image_combo.itemText(i) for i in range(widget.image_combo.count())] == ["video"]
    assert job.output.editable is False  # filled by the run: no stroke to be overwritten, no undo to undo it
    viewer.layers.remove(job.output)
    _wait_done(qtbot, widget, timeout=60_000)
    assert job.cancelled
    assert [lyr.name for lyr in viewer.layers] == ["video", "painted", "unrelated"]  # the map layers went too
    assert widget.status.text().startswith("stopped: the output layer was removed")


@pytest.mark.gui
@needs_display
def test_widget_an_error_after_the_output_was_removed_says_so_and_leaves_no_map_layer(make_napari_viewer, qtbot,
                                                                                      monkeypatch):
    from napari_vos.methods.flow import FlowMethod

    viewer, widget, _ = _setup(make_napari_viewer, n_frames=12)
    widget.maps_checkbox.setChecked(True)
    widget.direction_combo.setCurrentText("forward")
    removed, in_step = threading.Event(), threading.Event()
    step = FlowMethod.step
    calls = []

    def failing_once_removed(self, image):
        calls.append(image)
        if len(calls) > 3:  # held inside the step until the output is removed: no cancel can come in between
            in_step.set()
            removed.wait(60)
            raise RuntimeError("boom")
        return step(self, image)

    monkeypatch.setattr(FlowMethod, "step", failing_once_removed)
    _click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: in_step.is_set() and widget.progress.value() >= 3, timeout=30_000)
    viewer.layers.remove(widget.job.output)
    removed.set()
    _wait_done(qtbot, widget, timeout=60_000)
    assert [lyr.name for lyr in viewer.layers] == ["video", "painted"]
    said = widget.status.text()
    assert said.startswith("error: RuntimeError: boom; the output layer was removed") and "kept in" not in said


@pytest.mark.gui
@needs_display
def test_widget_output_is_paintable_again_after_the_run_and_deleted_maps_are_not_recorded(make_napari_viewer,
                                                                                          qtbot, monkeypatch):
    from napari_vos.methods.flow import FlowMethod

    viewer, widget, _ = _setup(make_napari_viewer, n_frames=8)
    widget.maps_checkbox.setChecked(True)
    # the run waits (from its third frame) until the map layer is removed: on a busy machine it could
    # otherwise end within one of waitUntil's polls, and widget.job (with its map layers) be gone
    removed, step, calls = threading.Event(), FlowMethod.step, []

    def step_after_removal(self, image):
        calls.append(1)
        if len(calls) >= 3:
            removed.wait(30)
        return step(self, image)

    monkeypatch.setattr(FlowMethod, "step", step_after_removal)
    _click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: bool(widget.job and widget.job.map_layers), timeout=30_000)
    doomed = next(iter(widget.job.map_layers.values()))
    viewer.layers.remove(doomed)
    removed.set()
    out = widget.job.output
    _wait_done(qtbot, widget, timeout=60_000)
    assert out.editable is True
    assert doomed.name not in out.metadata["napari_vos"]["map_layers"]


@pytest.mark.gui
@needs_display
def test_widget_rvos_with_zero_shot_typed_keeps_labels_none(make_napari_viewer, qtbot):
    from napari_vos._widgets.propagate_widget import NO_LABELS

    viewer, widget, _ = _setup(make_napari_viewer)
    widget.select_method("rvos")
    widget.options_edit.setText("zero_shot=True")
    widget.options_edit.editingFinished.emit()
    widget.labels_combo.setCurrentText(NO_LABELS)
    assert "needs a labels layer" not in widget.status.text()
    viewer.add_points(name="unrelated")  # a layer event refills the lists
    assert widget.labels_combo.currentText() == NO_LABELS


# -- session-32 audit of layer geometry: placement notes judged in pixels, saved placement restored --------
def _geometry_square(n_frames=5, size=(64, 64)):
    rng = np.random.default_rng(0)
    frames = (rng.random((n_frames, *size)) * 80).astype(np.uint8)
    truth = np.zeros((n_frames, *size), np.int32)
    for t in range(n_frames):
        frames[t, 20:40, 4 + 2 * t:24 + 2 * t] = 200
        truth[t, 20:40, 4 + 2 * t:24 + 2 * t] = 1
    painted = np.zeros_like(truth)
    painted[0] = truth[0]
    return frames, truth, painted


def _offset_in_pixels(image, labels, point=(1, 32, 32)):
    """Where labels pixel ``point`` lies, in image data coordinates, minus ``point``."""
    return np.asarray(image.world_to_data(labels.data_to_world(point))) - np.asarray(point)


# 1 ------------------------------------------------------------------------------------------
def test_labels_20_pixels_off_in_stage_coordinates_get_the_placement_note():
    """placement_note compares translates with rtol=1e-3: at stage coordinates of 20000 um the
    tolerance is 20 um (40 pixels at 0.5 um/px), so labels 20 pixels off are used silently."""
    frames, _, painted = _geometry_square()
    v = ViewerModel()
    image = v.add_image(frames, name="video", scale=(1, 0.5, 0.5), translate=(0, 20000, 15000))
    labels = v.add_labels(painted, name="painted", scale=(1, 0.5, 0.5), translate=(0, 20010, 15010))
    assert np.allclose(_offset_in_pixels(image, labels), [0, 20, 20])  # 20 pixels apart in the viewer
    job = LayerJob(v, "video", "painted", method="flow", device="cpu")
    assert "drawn at scale" in job.note


def test_labels_one_frame_late_at_a_late_start_time_get_the_time_note():
    """Same tolerance in time: an experiment starting at t=3600 s, 2 s a frame; labels one frame late."""
    frames, _, painted = _geometry_square()
    v = ViewerModel()
    image = v.add_image(frames, name="video", scale=(2, 1, 1), translate=(3600, 0, 0))
    labels = v.add_labels(painted, name="painted", scale=(2, 1, 1), translate=(3602, 0, 0))
    assert np.allclose(_offset_in_pixels(image, labels), [1, 0, 0])
    job = LayerJob(v, "video", "painted", method="flow", device="cpu")
    assert "frames are paired by index" in job.note


# 2 ------------------------------------------------------------------------------------------
def test_a_time_placement_given_by_the_images_affine_is_noted():
    """The affine's time row is compared nowhere: labels 2.5 frames away from the image get no note."""
    frames, _, painted = _geometry_square()
    affine = np.eye(4)
    affine[0, 0], affine[0, 3] = 2.0, 1.5  # 2 s a frame, starting at 1.5 s
    v = ViewerModel()
    image = v.add_image(frames, name="video", affine=affine)
    labels = v.add_labels(painted, name="painted")
    assert not np.allclose(_offset_in_pixels(image, labels), 0)
    job = LayerJob(v, "video", "painted", method="flow", device="cpu")
    assert job.note != ""


# 3 ------------------------------------------------------------------------------------------
def test_labels_that_overlay_the_image_exactly_get_no_note():
    """An image placed by an affine and labels placed by the same scale lie pixel on pixel, but the
    note says they are 'rotated, sheared or transformed (affine) otherwise than the image'."""
    frames, _, painted = _geometry_square()
    v = ViewerModel()
    image = v.add_image(frames, name="video", affine=np.diag([1.0, 0.5, 0.5, 1.0]))
    labels = v.add_labels(painted, name="painted", scale=(1, 0.5, 0.5))
    assert np.allclose(_offset_in_pixels(image, labels), 0)
    job = LayerJob(v, "video", "painted", method="flow", device="cpu")
    assert job.note == ""


# 4 ------------------------------------------------------------------------------------------
def test_a_saved_output_of_a_rotated_image_opens_where_it_was(tmp_path):
    """open_labels_layer 'opens it where it was' (user guide, section 4): it restores scale and
    translate only, so an output of a rotated/sheared/affine image comes back elsewhere."""
    from napari_vos import propagate_layers
    from napari_vos.console import open_labels_layer, save_labels_layer

    frames, _, painted = _geometry_square(4, (48, 48))
    affine = np.array([[1, 0, 0, 0], [0, 1, 0.3, 5], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    geometry = dict(scale=(2, 0.5, 0.5), translate=(1, 10, 20), rotate=30, affine=affine)
    v = ViewerModel()
    v.add_image(frames, name="video", **geometry)
    v.add_labels(painted, name="painted", **geometry)
    out = propagate_layers(v, "video", "painted", method="flow", device="cpu").labels
    back = open_labels_layer(v, save_labels_layer(out, tmp_path / "labels.tif"))
    for point in [(1, 20, 20), (3, 0, 47)]:
        np.testing.assert_allclose(back.data_to_world(point), out.data_to_world(point), atol=1e-6)


# 5 ------------------------------------------------------------------------------------------
def test_map_layers_lie_where_the_output_layer_lies_when_the_image_moves_mid_run():
    """The output layer takes the image's placement when the run starts, a map layer when its first
    frame comes (`_new_map` calls `_placement()` again): an image recalibrated mid-run splits them."""
    frames, _, painted = _geometry_square()
    v = ViewerModel()
    v.add_image(frames, name="video", scale=(1, 0.5, 0.25), translate=(0, 10, -3))
    v.add_labels(painted, name="painted", scale=(1, 0.5, 0.25), translate=(0, 10, -3))
    job = LayerJob(v, "video", "painted", method="flow", device="cpu", maps=True, max_side=32)
    steps = job.steps()
    v.layers["video"].scale = (1, 1, 1)  # the user corrects the pixel size while the run goes on
    for step in steps:
        job.show(step)
    job.finish()
    out = job.output
    (layer,) = job.map_layers.values()
    # map pixel (2, 3) covers output pixels 4..5, 6..7 (stride 2): centre (4.5, 6.5)
    np.testing.assert_allclose(layer.data_to_world((1, 2, 3)), out.data_to_world((1, 4.5, 6.5)), atol=1e-6)


def test_a_flipped_output_saves_and_opens_where_it_was(tmp_path):
    """A layer flipped by a negative scale (napari's way to mirror an axis) crashes the labels
    writer inside tifffile with 'struct.error: argument out of range' (a negative resolution)."""
    from napari_vos.console import open_labels_layer, save_labels_layer

    v = ViewerModel()
    data = np.zeros((3, 16, 16), np.uint8)
    data[:, 2:5, 3:9] = 1
    layer = v.add_labels(data, name="flipped", scale=(1, -0.5, 0.5), translate=(0, 30, 0))
    back = open_labels_layer(v, save_labels_layer(layer, tmp_path / "flipped.tif"))
    np.testing.assert_allclose(back.data_to_world((1, 3, 4)), layer.data_to_world((1, 3, 4)), atol=1e-6)


def test_a_one_channel_last_axis_is_told_to_drop_it():
    """(T, Y, X, 1) was refused as "(T, Y, X, C) with 1 channels ... tick the others"."""
    v = ViewerModel()
    v.add_image(np.zeros((4, 32, 32, 1), np.uint8), name="video")
    v.add_labels(np.zeros((4, 32, 32, 1), np.uint8), name="painted")
    with pytest.raises(ValueError, match=r"has a last axis of 1 \(T, Y, X, 1\).*data\[\.\.\., 0\]"):
        LayerJob(v, "video", "painted", method="flow", device="cpu")
