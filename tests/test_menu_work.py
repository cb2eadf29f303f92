"""The Layers > Track commands run off the GUI thread, in a real viewer: a progress bar in the
activity dock whose Cancel button stops the work, nothing added when the labels layer is removed
mid-run, a warning when the labels are painted during it, errors shown as napari shows them."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from _layers import dividing_cell
from _menu import progress_bars, run_menu_command, said
from _widget_run import click, needs_display


def _slowed_split(monkeypatch, seconds_per_frame: float = 0.05) -> list[str]:
    """Make the divisions pass sleep after each frame (a long stack in a short test); the names of the
    threads it ran on are returned as they come."""
    import napari_vos.divisions as divisions

    real = divisions.split_divisions
    threads: list[str] = []

    def slow(labels, *, progress=None, **kwargs):
        def step(done, total):
            threads.append(threading.current_thread().name)
            time.sleep(seconds_per_frame)
            if progress is not None:
                progress(done, total)
        return real(labels, progress=step, **kwargs)

    monkeypatch.setattr(divisions, "split_divisions", slow)
    return threads


@needs_display
@pytest.mark.gui
def test_split_divided_cells_runs_in_a_worker_with_a_progress_bar_and_adds_the_layer(make_napari_viewer, qtbot,
                                                                                       monkeypatch):
    from napari_vos._widgets.menu_work import running_work

    viewer = make_napari_viewer()
    threads = _slowed_split(monkeypatch, 0.02)
    viewer.add_labels(dividing_cell(), name="cells", scale=(2, 0.5, 0.5))
    from napari._app_model import get_app_model

    get_app_model().commands.execute_command("napari-vos.divided_labels").result()
    assert running_work() == 1 and "cells divided" not in viewer.layers  # returned at once: the GUI is free
    qtbot.waitUntil(lambda: len(progress_bars(viewer)) == 1, timeout=5000)
    assert "Split divided cells of 'cells'" in progress_bars(viewer)[0].description_label.text()
    assert progress_bars(viewer)[0].cancel_button.isVisibleTo(progress_bars(viewer)[0])
    qtbot.waitUntil(lambda: running_work() == 0, timeout=20000)
    divided = viewer.layers["cells divided"]
    assert set(np.unique(divided.data[5])) == {0, 1, 4, 5}
    np.testing.assert_allclose(divided.scale, (2, 0.5, 0.5))
    assert threads and threading.main_thread().name not in threads
    qtbot.waitUntil(lambda: not progress_bars(viewer), timeout=5000)  # the bar closed


@needs_display
@pytest.mark.gui
def test_the_progress_bars_cancel_button_stops_the_split_and_adds_nothing(make_napari_viewer, qtbot, monkeypatch):
    from napari_vos._widgets.menu_work import running_work

    viewer = make_napari_viewer()
    threads = _slowed_split(monkeypatch, 0.2)
    viewer.add_labels(dividing_cell(), name="cells")
    from napari._app_model import get_app_model

    get_app_model().commands.execute_command("napari-vos.divided_labels").result()
    qtbot.waitUntil(lambda: len(progress_bars(viewer)) == 1 and len(threads) >= 1, timeout=5000)
    click(qtbot, progress_bars(viewer)[0].cancel_button)
    qtbot.waitUntil(lambda: running_work() == 0, timeout=10000)
    assert [layer.name for layer in viewer.layers] == ["cells"]
    assert len(threads) < len(dividing_cell())  # stopped before the last frame
    assert any("cancelled; nothing added" in text for text in said())


@needs_display
@pytest.mark.gui
def test_removing_the_labels_layer_mid_run_stops_the_work(make_napari_viewer, qtbot, monkeypatch):
    from napari_vos._widgets.menu_work import running_work

    viewer = make_napari_viewer()
    threads = _slowed_split(monkeypatch, 0.2)
    viewer.add_labels(dividing_cell(), name="cells")
    from napari._app_model import get_app_model

    get_app_model().commands.execute_command("napari-vos.divided_labels").result()
    qtbot.waitUntil(lambda: len(threads) >= 1, timeout=5000)
    viewer.layers.remove("cells")
    qtbot.waitUntil(lambda: running_work() == 0, timeout=10000)
    assert len(viewer.layers) == 0
    assert any("labels layer was removed; nothing added" in text for text in said())


@needs_display
@pytest.mark.gui
def test_painting_the_labels_during_the_run_is_said(make_napari_viewer, qtbot, monkeypatch):
    from napari_vos._widgets.menu_work import running_work

    viewer = make_napari_viewer()
    threads = _slowed_split(monkeypatch, 0.1)
    layer = viewer.add_labels(dividing_cell(), name="cells")
    from napari._app_model import get_app_model

    get_app_model().commands.execute_command("napari-vos.divided_labels").result()
    qtbot.waitUntil(lambda: len(threads) >= 1, timeout=5000)
    layer.paint((len(layer.data) - 1, 2, 2), 7)  # a brush stroke on the last frame
    qtbot.waitUntil(lambda: running_work() == 0, timeout=10000)
    assert "cells divided" in viewer.layers
    assert any("'cells' was edited during the run" in text for text in said())


@needs_display
@pytest.mark.gui
def test_a_labels_layer_without_objects_gets_an_error_and_a_single_frame_one_is_refused_at_once(
        make_napari_viewer, qtbot):
    from napari._app_model import get_app_model

    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((3, 16, 16), np.uint8), name="empty")
    run_menu_command(qtbot, "napari-vos.labels_tracks")
    assert "empty tracks" not in viewer.layers
    assert sum("holds no object on any frame" in text for text in said("error")) == 1  # said once

    viewer.add_labels(np.zeros((16, 16), np.uint8), name="flat")
    with pytest.raises(ValueError, match=r"'flat' has shape \(16, 16\), not \(T, Y, X\)"):
        get_app_model().commands.execute_command("napari-vos.divided_labels").result()


@needs_display
@pytest.mark.gui
def test_closing_the_viewer_mid_run_adds_nothing_and_raises_nothing(make_napari_viewer, qtbot, monkeypatch):
    from napari._app_model import get_app_model

    from napari_vos._widgets.menu_work import running_work

    viewer = make_napari_viewer()
    threads = _slowed_split(monkeypatch, 0.2)
    viewer.add_labels(dividing_cell(), name="cells")
    get_app_model().commands.execute_command("napari-vos.divided_labels").result()
    qtbot.waitUntil(lambda: len(threads) >= 1, timeout=5000)
    viewer.close()
    qtbot.waitUntil(lambda: running_work() == 0, timeout=10000)
    assert len(threads) < len(dividing_cell())


def test_split_divided_cells_from_the_console_adds_the_layer_by_name():
    """The console twin of the menu command, synchronous: it returns the layer it added."""
    from napari.components import ViewerModel

    from napari_vos.console import split_divided_cells

    v = ViewerModel()
    v.add_labels(dividing_cell(), name="out", scale=(3, 1, 1))
    divided = split_divided_cells(v, "out")
    assert v.layers[-1] is divided and divided.name == "out divided"
    assert set(np.unique(divided.data[5])) == {0, 1, 4, 5}
    assert divided.metadata["napari_vos_divisions"]["lineage"]["4"][0] == 3
    np.testing.assert_allclose(divided.scale, (3, 1, 1))


@needs_display
@pytest.mark.gui
def test_an_unexpected_error_in_the_work_is_shown_once_and_adds_nothing(make_napari_viewer, qtbot, monkeypatch):
    import napari_vos.divisions as divisions

    def broken(labels, **kwargs):
        raise RuntimeError("disk went away")

    from napari.utils.notifications import notification_manager

    monkeypatch.setattr(divisions, "split_divisions", broken)
    viewer = make_napari_viewer()
    monkeypatch.setattr(notification_manager, "catch_error", True)  # as in napari; its tests print errors instead
    viewer.add_labels(dividing_cell(), name="cells")
    run_menu_command(qtbot, "napari-vos.divided_labels")
    assert [layer.name for layer in viewer.layers] == ["cells"]
    assert sum("disk went away" in text for text in said("error")) == 1


@needs_display
@pytest.mark.gui
def test_centroid_tracks_of_a_stopped_runs_output_are_added_with_a_warning(make_napari_viewer, qtbot):
    """Measure and the CTC folder said that a stopped run's output has no objects past the stop; the
    tracks, which end there, said nothing."""
    viewer = make_napari_viewer()
    viewer.add_labels(dividing_cell(), name="stopped",
                      metadata={"napari_vos": {"method": "flow", "complete": False, "frames_segmented": "0-3"}})
    run_menu_command(qtbot, "napari-vos.labels_tracks")
    assert "stopped tracks" in viewer.layers
    assert any("'stopped' is the output of a stopped run: it holds labels on frames 0-3 only" in text and "tracks end" in text
               for text in said("warning"))
