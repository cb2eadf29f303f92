"""After a Propagate run in a real viewer: the first run's notification names where the objects' paths
and numbers are, and following it (Layers > Track > Centroid tracks, the measurements save type)
gives a Tracks layer and the CSV tables of the output, at the image's scale."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from _save_dialog import save_as
from _widget_run import SCALE, needs_display
from _widget_run import click as _click
from _widget_run import setup_widget as _setup
from _widget_run import wait_done as _wait_done

pytest.importorskip("napari")
pytestmark = [pytest.mark.gui, needs_display]


def test_the_first_run_says_where_the_tracks_and_measurements_are_and_they_are_there(make_napari_viewer, qtbot,
                                                                                       tmp_path):
    from _menu import run_menu_command
    from napari.utils.notifications import notification_manager

    viewer, widget, truth = _setup(make_napari_viewer)
    said: list[str] = []
    notification_manager.notification_ready.connect(lambda n: said.append(str(n.message)))
    _click(qtbot, widget.propagate_button)
    _wait_done(qtbot, widget)
    ready = [text for text in said if text.endswith("ready") or "ready;" in text]
    assert len(ready) == 1 and "Centroid tracks" in ready[0] and "object measurements" in ready[0]
    assert "Overlay movie" in ready[0]

    output = viewer.layers["painted propagated (flow)"]
    viewer.layers.selection.active = output
    run_menu_command(qtbot, "napari-vos.labels_tracks")
    tracks = viewer.layers["painted propagated (flow) tracks"]
    assert sorted(set(tracks.data[:, 1])) == list(range(len(truth)))  # the square on every frame
    np.testing.assert_allclose(tracks.scale, SCALE)

    written = save_as([viewer.layers["video"], output], tmp_path / "square", "measurements")
    with open(written[0], newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == list(range(len(truth)))
    assert "intensity_mean" in rows[0] and "area_units2" in rows[0]  # the layer's scale has no unit

    said.clear()
    _click(qtbot, widget.propagate_button)
    _wait_done(qtbot, widget)
    ready = [text for text in said if "ready" in text]
    assert len(ready) == 1 and "Centroid tracks" not in ready[0]  # said once


def test_stray_parts_drop_typed_in_more_options_reaches_the_run_and_its_record(make_napari_viewer, qtbot):
    viewer, widget, truth = _setup(make_napari_viewer)
    widget.options_edit.setText('stray_parts="drop"')
    _click(qtbot, widget.propagate_button)
    _wait_done(qtbot, widget)
    out = viewer.layers["painted propagated (flow)"]
    assert out.metadata["napari_vos"]["options"]["stray_parts"] == "drop"
    assert (out.data[-1] == 1).sum() > 0.8 * (truth[-1] == 1).sum()
