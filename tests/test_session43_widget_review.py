"""Session 43's review of the Propagate dock in a real viewer, as a demanding microscopist drives it:
each test is a problem found by trying it (a misleading or stale message, a correction ignored without
a word), written before its fix. The GUI tests need a display: `xvfb-run -a`."""
from __future__ import annotations

import numpy as np
import pytest
from _layers import first_frame_only, sliding_square
from _widget_run import click, needs_display, wait_done

pytestmark = [needs_display, pytest.mark.gui]


def _docked(viewer, method: str = "flow"):
    from napari_vos._widgets.propagate_widget import PropagateWidget

    widget = PropagateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.select_method(method)
    widget.device_combo.setCurrentText("cpu")
    return widget


def _shown(label) -> str:
    """What a QLabel shows: its text as plain text, or what Qt renders of it as rich text."""
    from qtpy.QtCore import Qt
    from qtpy.QtGui import QTextDocument

    if label.textFormat() == Qt.TextFormat.PlainText or (label.textFormat() == Qt.TextFormat.AutoText
                                                         and not Qt.mightBeRichText(label.text())):
        return label.text()
    document = QTextDocument()
    document.setHtml(label.text())
    return document.toPlainText()


def test_layer_names_that_look_like_html_are_shown_as_typed_in_the_status_line(make_napari_viewer):
    """The status line took a message naming a layer '<cells> & 1h' for rich text: the name showed as
    ' & 1h' (Qt dropped '<cells>' as an unknown tag) and '<b>painted</b>' as a bold 'painted'."""
    viewer = make_napari_viewer()
    frames, truth = sliding_square(8, (64, 96))
    viewer.add_image(frames, name="<cells> & 1h")
    viewer.add_labels(first_frame_only(truth)[:5], name="<b>painted</b>")
    widget = _docked(viewer)
    assert "'<cells> & 1h'" in widget.status.text()
    assert "'<cells> & 1h'" in _shown(widget.status) and "'<b>painted</b>'" in _shown(widget.status)


def test_a_refusal_does_not_stay_once_the_layers_it_asked_for_are_there(make_napari_viewer, qtbot):
    """Propagate pressed with the painted labels opened but no image yet said "error: pick an image layer
    first"; the line still said so once the image was added, with both layers picked in the panel."""
    viewer = make_napari_viewer()
    frames, truth = sliding_square(8, (64, 96))
    viewer.add_labels(first_frame_only(truth), name="painted")
    widget = _docked(viewer)
    click(qtbot, widget.propagate_button)
    assert "pick an image layer first" in widget.status.text()
    viewer.add_image(frames, name="video")
    assert widget.image_combo.currentText() == "video" and widget.labels_combo.currentText() == "painted"
    assert "pick an image layer" not in widget.status.text()
    # a refusal whose layers still do not fit gives way to the line saying why
    viewer.layers["painted"].data = first_frame_only(truth)[:5]
    click(qtbot, widget.propagate_button)
    assert widget.status.text().startswith("error: labels layer 'painted' has shape (5, 64, 96)")
    viewer.add_image(frames, name="other")
    assert "do not match" in widget.status.text()


def test_a_correction_painted_into_the_output_is_named_when_the_next_run_reads_the_first_layer(
        make_napari_viewer, qtbot):
    """Painted on frame 0, propagated, then frame 5 of the output corrected and Propagate pressed again:
    the labels choice was still the first painted layer, so the run started from frame 0 again and the
    correction was in none of the new output's frames, with nothing said. The status line now names the
    corrected frame and how to propagate from it."""
    viewer = make_napari_viewer()
    frames, truth = sliding_square(8, (64, 96))
    viewer.add_image(frames, name="video")
    viewer.add_labels(first_frame_only(truth), name="painted")
    widget = _docked(viewer)
    viewer.dims.set_current_step(0, 0)
    click(qtbot, widget.propagate_button)
    wait_done(qtbot, widget)
    output = viewer.layers["painted propagated (flow)"]
    assert widget.labels_combo.currentText() == "painted"
    viewer.dims.set_current_step(0, 5)
    output.data[5, 0:6, 0:6] = 2  # a second cell, corrected in
    click(qtbot, widget.propagate_button)
    wait_done(qtbot, widget)
    said = widget.status.text()
    assert said.startswith("done: 8 frames"), said
    assert "frame 5 of 'painted propagated (flow)' was changed after its run" in said, said
    assert "pick 'painted propagated (flow)' as labels" in said, said
    # a run from the corrected output itself, as the note says, gets no such note
    widget.labels_combo.setCurrentText("painted propagated (flow)")
    widget.all_painted.setChecked(False)
    widget.direction_combo.setCurrentText("forward")
    click(qtbot, widget.propagate_button)
    wait_done(qtbot, widget)
    newest = viewer.layers[-1]
    assert 2 in newest.data[7] and np.array_equal(newest.data[:5], output.data[:5])
    assert "changed after its run" not in widget.status.text()


def test_a_channel_layer_drawn_elsewhere_than_the_image_is_named_when_it_is_read_with_it(make_napari_viewer, qtbot):
    """A second channel opened from its own file at scale 1 beside the calibrated image (or with a stage
    offset) was ticked under 'add channels' and read pixel by pixel with the image, though napari showed
    it elsewhere, with nothing said (a labels layer drawn elsewhere gets a note). Now the status line
    says so; a channel layer placed as the image is (napari's channel_axis split) gets no note."""
    from qtpy.QtCore import Qt

    viewer = make_napari_viewer()
    frames, truth = sliding_square(8, (64, 96))
    viewer.add_image(np.stack([frames, 255 - frames], 1), channel_axis=1, name=["c0", "c1"], scale=(1, 0.5, 0.5))
    viewer.add_image(frames // 2, name="c2 file", translate=(0, 10, 0))
    viewer.add_labels(first_frame_only(truth), name="painted", scale=(1, 0.5, 0.5))
    widget = _docked(viewer)
    widget.image_combo.setCurrentText("c0")
    viewer.dims.set_current_step(0, 0)
    offered = [widget.channels_list.item(i) for i in range(widget.channels_list.count())]
    assert [item.text() for item in offered] == ["c1", "c2 file"]
    offered[0].setCheckState(Qt.CheckState.Checked)
    click(qtbot, widget.propagate_button)
    wait_done(qtbot, widget)
    assert widget.status.text().startswith("done: 8 frames") and "channel layer" not in widget.status.text()
    offered = [widget.channels_list.item(i) for i in range(widget.channels_list.count())]
    offered[0].setCheckState(Qt.CheckState.Unchecked)
    offered[1].setCheckState(Qt.CheckState.Checked)
    click(qtbot, widget.propagate_button)
    wait_done(qtbot, widget)
    said = widget.status.text()
    assert said.startswith("done: 8 frames"), said
    assert ("the channel layer 'c2 file' is drawn at scale (1, 1), offset (10, 0) but the image 'c0' at (0.5, 0.5), "
            "(0, 0)") in said, said


def test_a_labels_layer_named_like_the_none_entry_is_still_a_labels_layer(make_napari_viewer, qtbot):
    """A labels layer named "none (zero-shot methods)", the text of the panel's no-labels entry, was listed
    twice in the labels choice and taken for no labels whichever was picked: flow refused with "flow needs
    a labels layer". The layer is now read as the layer, and the last entry as no labels."""
    from napari_vos._widgets.propagate_widget import NO_LABELS

    viewer = make_napari_viewer()
    frames, truth = sliding_square(8, (64, 96))
    viewer.add_image(frames, name="video")
    viewer.add_labels(first_frame_only(truth), name=NO_LABELS)
    widget = _docked(viewer)
    viewer.dims.set_current_step(0, 0)
    combo = widget.labels_combo
    assert [combo.itemText(i) for i in range(combo.count())] == [NO_LABELS, NO_LABELS]
    assert combo.currentIndex() == 0 and widget.labels_choice == NO_LABELS and widget.status.text() == ""
    combo.setCurrentIndex(1)  # the no-labels entry
    assert widget.labels_choice is None and "flow needs a labels layer" in widget.status.text()
    combo.setCurrentIndex(0)
    assert widget.labels_choice == NO_LABELS and widget.status.text() == ""
    viewer.add_points(name="points")  # a refill keeps the pick
    assert combo.currentIndex() == 0
    click(qtbot, widget.propagate_button)
    wait_done(qtbot, widget)
    assert widget.status.text().startswith("done: 8 frames"), widget.status.text()
    assert np.array_equal(viewer.layers[f"{NO_LABELS} propagated (flow)"].data[7], truth[7])


def _long_run(viewer, qtbot, n: int = 150):
    """A flow run on an n-frame sliding square, followed until it has shown two frames."""
    frames, truth = sliding_square(n, (64, 96))
    viewer.add_image(frames, name="video")
    viewer.add_labels(first_frame_only(truth), name="painted")
    widget = _docked(viewer)
    widget.direction_combo.setCurrentText("forward")
    click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: widget.job is not None and widget.job.frames_shown >= 2, timeout=60_000)
    return widget


def test_strokes_in_the_labels_layer_during_a_run_are_said_to_be_left_out(make_napari_viewer, qtbot):
    """A stroke painted into the run's labels layer while it ran (a second cell on frame 3) was left out
    of the run, which had read the labels at its start, with nothing said."""
    viewer = make_napari_viewer()
    widget = _long_run(viewer, qtbot)
    painted = viewer.layers["painted"]
    painted.selected_label = 2
    painted.paint((3, 50, 80), 2)  # the brush, as a stroke lays it down
    wait_done(qtbot, widget, timeout=120_000)
    said = widget.status.text()
    assert said.startswith("done:") and "'painted' was painted on frame 3 during the run" in said, said
    assert not np.any(np.asarray(viewer.layers["painted propagated (flow)"].data) == 2)  # indeed left out
    click(qtbot, widget.propagate_button)  # the next run, untouched, says nothing of it
    wait_done(qtbot, widget, timeout=120_000)
    assert "was painted" not in widget.status.text()


def test_an_image_whose_data_is_replaced_during_a_run_is_said_to_be_read_as_it_was(make_napari_viewer, qtbot):
    """`layer.data = other` on the run's image mid-run: the run finished on the earlier array and its
    output was recorded against the image layer, with nothing said."""
    viewer = make_napari_viewer()
    widget = _long_run(viewer, qtbot)
    widget.cancel()  # a cancelled run says so too
    viewer.layers["video"].data = np.zeros((150, 64, 96), np.uint8)
    wait_done(qtbot, widget, timeout=120_000)
    said = widget.status.text()
    assert said.startswith("cancelled:") and "the data of 'video' was replaced during the run" in said, said


def test_a_run_ending_in_an_error_names_strokes_painted_during_it_too(make_napari_viewer, qtbot, monkeypatch):
    """The end message of a run that failed part-way named the frames kept but not the strokes painted
    into its labels layer meanwhile (the done and cancelled messages did)."""
    import threading

    from napari_vos.methods.flow import FlowMethod

    original, calls, painted = FlowMethod.step, [], threading.Event()

    def step(self, image):
        calls.append(1)
        if len(calls) == 3:
            painted.wait(30)  # the stroke is laid down before the run fails
            raise ValueError("frame 3 contains NaN or infinite values; fill or mask them first")
        return original(self, image)

    monkeypatch.setattr(FlowMethod, "step", step)
    viewer = make_napari_viewer()
    widget = _long_run(viewer, qtbot, n=8)
    layer = viewer.layers["painted"]
    layer.selected_label = 2
    layer.paint((4, 50, 80), 2)
    painted.set()
    wait_done(qtbot, widget, timeout=60_000)
    said = widget.status.text()
    assert said.startswith("error: frame 3 contains NaN") and "'painted' was painted on frame 4 during the run" in said
