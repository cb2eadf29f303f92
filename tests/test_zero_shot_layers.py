"""The no-annotation path from napari: `propagate_layers` without labels (console, no display) and the
Propagate widget with labels "none" (real viewer: run under `xvfb-run -a`), with a tiny test method."""
from __future__ import annotations


import numpy as np
import pytest
from _layers import first_frame_only, iou, sliding_square

pytest.importorskip("napari")
from napari.components import ViewerModel  # noqa: E402

import _zero_shot_method as zsm  # noqa: E402
from napari_vos import propagate_layers  # noqa: E402
from napari_vos.methods import registry  # noqa: E402

SCALE = (1.0, 0.5, 0.25)
from _widget_run import needs_display  # noqa: E402


@pytest.fixture
def brighter(monkeypatch):
    monkeypatch.setitem(registry.METHODS, zsm.NAME, zsm.TARGET)
    return zsm.NAME


def test_propagate_layers_without_labels(brighter):
    viewer = ViewerModel()
    frames, truth = sliding_square(5, (48, 48))
    viewer.add_image(frames, name="video", scale=SCALE)
    out = propagate_layers(viewer, "video", method=brighter, device="cpu", maps=True)
    assert out.labels.name == f"video segmented ({brighter})"
    assert out.labels.data.shape == truth.shape and out.labels.data.dtype == np.uint8
    np.testing.assert_allclose(out.labels.scale, SCALE)
    assert all(iou(out.labels.data[t] == 1, truth[t] == 1) > 0.8 for t in range(5))
    meta = out.labels.metadata["napari_vos"]
    assert meta["labels_layer"] is None and meta["annotated_frames"] == [] and meta["frames_done"] == 5
    assert [m.name for m in out.maps] == [f"video segmented ({brighter}) - excess"]


def test_labels_refused_or_required_with_clear_messages(brighter):
    viewer = ViewerModel()
    frames, truth = sliding_square(4, (32, 32))
    viewer.add_image(frames, name="video")
    viewer.add_labels(first_frame_only(truth), name="painted")
    with pytest.raises(ValueError, match="choose no labels layer"):
        propagate_layers(viewer, "video", "painted", method=brighter)
    with pytest.raises(ValueError, match="needs a labels layer"):
        propagate_layers(viewer, "video", method="flow")
    assert len(viewer.layers) == 2  # nothing added


@pytest.mark.gui
@needs_display
def test_widget_runs_a_zero_shot_method_with_labels_none(brighter, make_napari_viewer, qtbot):
    from qtpy.QtCore import Qt

    from napari_vos._widgets.propagate_widget import NO_LABELS, PropagateWidget

    viewer = make_napari_viewer()
    frames, truth = sliding_square(5, (48, 48))
    viewer.add_image(frames, name="video", scale=SCALE)
    viewer.add_labels(first_frame_only(truth), name="painted", scale=SCALE)
    widget = PropagateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.labels_combo.currentText() == "painted"  # a painted layer stays the default
    widget.select_method(brighter)  # takes no annotation: labels go to "none" and are locked
    assert widget.labels_combo.currentText() == NO_LABELS and not widget.labels_combo.isEnabled()
    assert widget.status.text() == ""
    widget.device_combo.setCurrentText("cpu")
    n_layers = len(viewer.layers)
    qtbot.mouseClick(widget.propagate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    assert len(viewer.layers) == n_layers + 1
    out = viewer.layers[f"video segmented ({brighter})"]
    assert all(iou(out.data[t] == 1, truth[t] == 1) > 0.8 for t in range(5))
    assert widget.status.text().startswith("done")
    # back to a method that needs labels: "none" is explained, and Propagate says so
    widget.select_method("flow")
    assert widget.labels_combo.isEnabled()
    widget.labels_combo.setCurrentText(NO_LABELS)
    assert "needs a labels layer" in widget.status.text()
    qtbot.mouseClick(widget.propagate_button, Qt.MouseButton.LeftButton)
    assert widget.worker is None and "needs a labels layer" in widget.status.text()
