"""Session 43's review of the day's new code, as a demanding microscopist would use it."""
from __future__ import annotations

import numpy as np
import pytest
from _open_files import closes_with_its_last_layer
from _widget_run import needs_display

def _execute(command_id: str) -> None:
    from napari._app_model import get_app_model

    get_app_model().commands.execute_command(command_id).result()


@pytest.mark.gui
@needs_display
def test_a_t_z_y_x_stack_saved_without_axis_names_is_not_opened_as_a_layer_per_x_column(make_napari_viewer,
                                                                                          monkeypatch, tmp_path):
    """tifffile.imwrite(path, volume) of a (T, Z, Y, X) array names no axes ("QQYX"). Before: Open image TIFF
    read it as (T, Y, X, C) and added 64 layers of (6, 5, 64) images, one per X column, with nothing said.
    Then the menu asked which Z plane and open_image_layers refused z=None; now both open the whole stack as
    one (T, Z, Y, X) layer (Propagate runs through the plane under the Z slider), and z=N one plane."""
    import tifffile
    from qtpy.QtWidgets import QFileDialog

    from napari_vos.console import open_image_layers

    volume = np.random.default_rng(0).integers(0, 255, (6, 5, 64, 64), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "volume.tif", volume)
    viewer = make_napari_viewer()
    (layer,) = open_image_layers(viewer, tmp_path / "volume.tif")
    assert layer.data.shape == (6, 5, 64, 64)
    np.testing.assert_array_equal(np.asarray(layer.data[2, 3]), volume[2, 3])
    (plane,) = open_image_layers(viewer, tmp_path / "volume.tif", z=3)
    assert plane.data.shape == (6, 64, 64)
    np.testing.assert_array_equal(np.asarray(plane.data[2]), volume[2, 3])
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *args: (str(tmp_path / "volume.tif"), "")))
    _execute("napari-vos.open_image")
    assert viewer.layers[-1].data.shape == (6, 5, 64, 64) and len(viewer.layers) == 3
    # a channel-last stack of 2 channels saved the same way still opens as 2 channels
    tifffile.imwrite(tmp_path / "two.tif", volume[:, :2].transpose(0, 2, 3, 1).copy())
    assert [layer.data.shape for layer in open_image_layers(viewer, tmp_path / "two.tif")] == [(6, 64, 64)] * 2


@pytest.mark.gui
@needs_display
@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/fd"), reason="counts open files through /proc")
def test_the_file_an_opened_image_reads_from_is_closed_once_its_layers_are_removed(make_napari_viewer, tmp_path):
    """Before: open_image_layers left the TIFF open for the rest of the session, its layers deleted or not (on
    Windows the file could then not be overwritten, renamed or deleted until napari quit; each file opened
    kept one more handle). Now it is closed when the last of its layers leaves the viewer, and read again
    (reopened) if a layer held elsewhere is shown once more."""
    import tifffile

    from napari_vos.console import open_image_layers

    video = np.random.default_rng(0).integers(0, 255, (5, 2, 16, 16), dtype=np.uint8)
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, video, imagej=True, metadata={"axes": "TCYX"})
    viewer = make_napari_viewer()
    layers = open_image_layers(viewer, path)
    closes_with_its_last_layer(viewer, path, layers, 4, video[4, 1], 3, video[3, 0])


@pytest.mark.gui
@needs_display
def test_a_stroke_undone_in_the_labels_layer_during_a_run_is_said_to_be_left_out(make_napari_viewer, qtbot):
    """Ctrl+Z in the run's labels layer mid-run (a second cell painted on frame 0 before Propagate, then
    undone as a mistake): napari's undo emits no paint event, so the run ended with 'done' and nothing
    said, its output keeping the undone cell for every frame. Now the end message names the frame."""
    from _layers import first_frame_only, sliding_square
    from _widget_run import click, wait_done

    from napari_vos._widgets.propagate_widget import PropagateWidget

    viewer = make_napari_viewer()
    frames, truth = sliding_square(150, (64, 96))
    viewer.add_image(frames, name="video")
    painted = viewer.add_labels(first_frame_only(truth), name="painted")
    painted.selected_label = 2
    painted.paint((0, 50, 80), 2)  # the brush: an undoable stroke
    assert np.any(np.asarray(painted.data[0]) == 2)
    widget = PropagateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.select_method("flow")
    widget.device_combo.setCurrentText("cpu")
    widget.direction_combo.setCurrentText("forward")
    click(qtbot, widget.propagate_button)
    qtbot.waitUntil(lambda: widget.job is not None and widget.job.frames_shown >= 2, timeout=60_000)
    painted.undo()
    assert not np.any(np.asarray(painted.data[0]) == 2)
    wait_done(qtbot, widget, timeout=120_000)
    said = widget.status.text()
    assert said.startswith("done:") and "'painted' was changed on frame 0 during the run" in said, said
    click(qtbot, widget.propagate_button)  # the next run, untouched, says nothing of it
    wait_done(qtbot, widget, timeout=120_000)
    assert "was changed" not in widget.status.text() and "was painted" not in widget.status.text()
