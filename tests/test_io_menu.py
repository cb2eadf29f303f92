"""File > IO Utilities > Overlay movie... and Cell Tracking Challenge result folder... in a real viewer:
the dialogs' answers, the files written off the GUI thread, Cancel (in the dialog, in the replace
question, on the progress bar) writing nothing, and what is refused at once."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from _layers import dividing_cell
from _menu import answer_save_dialog, run_menu_command, said
from _widget_run import click, needs_display

pytestmark = [needs_display, pytest.mark.gui]


def _folder_dialog(monkeypatch, answer: str) -> None:
    from qtpy.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda parent, caption, start: answer))


def _replace_answer(monkeypatch, yes: bool) -> list[str]:
    """The replace question answers Yes or Cancel; the questions asked are returned."""
    from qtpy.QtWidgets import QMessageBox

    asked: list[str] = []

    def question(parent, title, text, buttons, default):
        asked.append(text)
        return QMessageBox.Yes if yes else QMessageBox.Cancel

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    return asked


def _menu_titles() -> list[str]:
    from napari._app_model import get_app_model

    return [item.command.title for item in get_app_model().menus.get_menu("napari/file/io_utilities")
            if hasattr(item, "command")]


def _execute(command_id: str) -> None:
    from napari._app_model import get_app_model

    get_app_model().commands.execute_command(command_id).result()


def test_the_overlay_menu_writes_the_gif_as_napari_shows_the_image(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    from PIL import Image

    viewer = make_napari_viewer()
    labels = dividing_cell()
    video = viewer.add_image((labels > 0).astype(np.uint16) * 1000, name="video", contrast_limits=(0, 1000))
    layer = viewer.add_labels(labels, name="cells")
    assert "Overlay movie (labels over the image)... (napari-vos)" in _menu_titles()
    viewer.layers.selection = {video, layer}
    asked = answer_save_dialog(monkeypatch, str(tmp_path / "cells.gif"))
    run_menu_command(qtbot, "napari-vos.export_overlay")
    assert asked[0].endswith("cells.mp4")
    with Image.open(tmp_path / "cells.gif") as gif:
        assert gif.n_frames == len(labels) and gif.size == (labels.shape[2], labels.shape[1])
        gif.seek(0)
        picture = np.asarray(gif.convert("RGB"))
    outside = picture[labels[0] == 0]
    assert outside.max() < 20  # the background at the low contrast limit: black, no object colour
    assert any("cells.gif" in text and f"{len(labels)} frames" in text for text in said("info"))
    assert [p.name for p in tmp_path.iterdir()] == ["cells.gif"]  # no partial file left


def test_the_overlay_menu_refuses_a_wrong_selection_and_mismatched_layers_before_asking_for_a_name(
        make_napari_viewer, qtbot, monkeypatch, tmp_path):
    viewer = make_napari_viewer()
    labels = viewer.add_labels(dividing_cell(), name="cells")
    asked = answer_save_dialog(monkeypatch, str(tmp_path / "x.gif"))
    viewer.layers.selection = {labels}
    with pytest.raises(ValueError, match="select the image and the labels"):
        _execute("napari-vos.export_overlay")
    assert asked == []
    other = viewer.add_image(np.zeros((3, 30, 44), np.uint8), name="other video")
    viewer.layers.selection = {labels, other}
    with pytest.raises(ValueError, match="'other video'"):
        _execute("napari-vos.export_overlay")
    assert list(tmp_path.iterdir()) == []


def test_cancelling_the_overlay_on_its_progress_bar_leaves_no_file(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    import napari_vos.data.overlay_movies as overlay_movies
    from napari._qt.widgets.qt_progress_bar import QtLabeledProgressBar

    from napari_vos._widgets.menu_work import running_work

    real, drawn = overlay_movies.overlay_frame, []

    def slow(*args, **kwargs):  # a long movie in a short test
        drawn.append(threading.current_thread().name)
        time.sleep(0.2)
        return real(*args, **kwargs)

    monkeypatch.setattr(overlay_movies, "overlay_frame", slow)
    viewer = make_napari_viewer()
    labels = dividing_cell()
    video = viewer.add_image(labels.astype(np.uint8), name="video")
    layer = viewer.add_labels(labels, name="cells")
    viewer.layers.selection = {video, layer}
    answer_save_dialog(monkeypatch, str(tmp_path / "cells.gif"))
    _execute("napari-vos.export_overlay")
    bars = lambda: viewer.window._qt_window._activity_dialog.findChildren(QtLabeledProgressBar)  # noqa: E731
    qtbot.waitUntil(lambda: len(bars()) == 1 and len(drawn) >= 1, timeout=5000)
    assert threading.main_thread().name not in drawn
    click(qtbot, bars()[0].cancel_button)
    qtbot.waitUntil(lambda: running_work() == 0, timeout=10000)
    assert len(drawn) < len(labels) and list(tmp_path.iterdir()) == []
    assert any("nothing written" in text for text in said())


def _divided_layer(viewer):
    from napari.layers import Layer

    from napari_vos._widgets.tracks_layer import divided_layer_data

    source = viewer.add_labels(dividing_cell(), name="cells")
    divided = viewer.add_layer(Layer.create(*divided_layer_data(source)))
    viewer.layers.selection = {divided}
    return divided


def test_the_ctc_menu_writes_the_result_folder_with_the_divided_layers_lineage(make_napari_viewer, qtbot,
                                                                              monkeypatch, tmp_path):
    import tifffile

    viewer = make_napari_viewer()
    divided = _divided_layer(viewer)
    assert "Cell Tracking Challenge result folder... (napari-vos)" in _menu_titles()
    folder = tmp_path / "01_RES"
    folder.mkdir()
    _folder_dialog(monkeypatch, str(folder))
    asked = _replace_answer(monkeypatch, yes=True)
    run_menu_command(qtbot, "napari-vos.export_ctc")
    assert asked == []  # an empty folder is not asked about
    frames = len(divided.data)
    assert sorted(p.name for p in folder.iterdir()) == [f"mask{t:03d}.tif" for t in range(frames)] + ["res_track.txt"]
    first = tifffile.imread(folder / "mask000.tif")
    assert first.dtype == np.uint16
    rows = [tuple(map(int, line.split())) for line in (folder / "res_track.txt").read_text().splitlines()]
    mother = int(first[10, 20])  # the track of id 3, the cell that divides
    assert sorted(row[3] for row in rows) == [0, 0, mother, mother]  # its daughters' tracks name it
    assert any("1 division kept" in text for text in said("info"))


def test_the_ctc_menu_asks_before_replacing_and_cancel_keeps_the_folder(make_napari_viewer, qtbot, monkeypatch,
                                                                       tmp_path):
    viewer = make_napari_viewer()
    _divided_layer(viewer)
    folder = tmp_path / "01_RES"
    folder.mkdir()
    (folder / "mask000.tif").write_bytes(b"old")
    (folder / "notes.txt").write_text("mine")
    _folder_dialog(monkeypatch, str(folder))
    asked = _replace_answer(monkeypatch, yes=False)
    run_menu_command(qtbot, "napari-vos.export_ctc")
    assert "1 of them a CTC result's (mask000.tif)" in asked[0] and "the 1 other item are kept" in asked[0]
    assert sorted(p.name for p in folder.iterdir()) == ["mask000.tif", "notes.txt"]
    assert (folder / "mask000.tif").read_bytes() == b"old"
    _replace_answer(monkeypatch, yes=True)
    run_menu_command(qtbot, "napari-vos.export_ctc")
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "res_track.txt").is_file()
    assert (folder / "mask000.tif").read_bytes() != b"old"
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    _folder_dialog(monkeypatch, "")  # Cancel in the folder dialog
    run_menu_command(qtbot, "napari-vos.export_ctc")
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    (folder / "cells.tif").write_bytes(b"a stack")  # CTC's software would read it as a mask
    _folder_dialog(monkeypatch, str(folder))
    asked = _replace_answer(monkeypatch, yes=True)
    with pytest.raises(ValueError, match="cells.tif"):
        _execute("napari-vos.export_ctc")
    assert asked == [] and (folder / "cells.tif").read_bytes() == b"a stack"


def test_the_ctc_menu_refuses_an_image_a_single_frame_and_an_unfinished_run(make_napari_viewer, monkeypatch, tmp_path):
    viewer = make_napari_viewer()
    _folder_dialog(monkeypatch, str(tmp_path))
    viewer.layers.selection = {viewer.add_image(np.zeros((3, 8, 8), np.uint8), name="video")}
    with pytest.raises(ValueError, match="select one"):
        _execute("napari-vos.export_ctc")
    viewer.layers.selection = {viewer.add_labels(np.zeros((8, 8), np.uint8), name="flat")}
    with pytest.raises(ValueError, match=r"'flat' has shape \(8, 8\)"):
        _execute("napari-vos.export_ctc")
    running = viewer.add_labels(dividing_cell(), name="run", metadata={"napari_vos_output": True})
    viewer.layers.selection = {running}
    with pytest.raises(ValueError, match="still being filled"):
        _execute("napari-vos.export_ctc")
    assert list(tmp_path.iterdir()) == []


def test_open_labels_tiff_gives_a_labels_layer_at_its_calibration_with_its_record(make_napari_viewer, monkeypatch,
                                                                                 tmp_path):
    import tifffile
    from qtpy.QtWidgets import QFileDialog

    from napari_vos.data.calibration import Calibration
    from napari_vos.data.writers import write_tiff_labels

    answer = {"path": ""}
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *args: (answer["path"], "")))
    path = write_tiff_labels(tmp_path / "out.tif", dividing_cell(), calibration=Calibration((0.5, 0.5), "µm", 2.0, "min"),
                             provenance={"method": "flow"})
    viewer = make_napari_viewer()
    assert "Open labels TIFF (calibration and run record)... (napari-vos)" in _menu_titles()
    _execute("napari-vos.open_labels")  # Cancel in the dialog
    assert len(viewer.layers) == 0
    answer["path"] = str(path)
    _execute("napari-vos.open_labels")
    (layer,) = viewer.layers
    assert layer._type_string == "labels" and layer.name == "out"
    np.testing.assert_allclose(layer.scale, (2.0, 0.5, 0.5))
    assert layer.metadata["napari_vos"]["method"] == "flow"
    np.testing.assert_array_equal(layer.data, dividing_cell())
    assert any("a flow run's output" in text for text in said("info"))
    tifffile.imwrite(tmp_path / "picture.tif", np.zeros((3, 8, 8), np.float32))
    answer["path"] = str(tmp_path / "picture.tif")
    with pytest.raises(ValueError, match="float32"):
        _execute("napari-vos.open_labels")
    assert len(viewer.layers) == 1


def test_the_overlay_is_not_written_over_the_video_it_is_drawn_from(make_napari_viewer, monkeypatch, tmp_path):
    """The save dialog's overwrite question is easily answered Yes: a movie named as the file the image
    was opened from would have replaced the video."""
    from napari.layers._source import layer_source

    viewer = make_napari_viewer()
    labels = dividing_cell()
    movie = tmp_path / "video.mp4"
    movie.write_bytes(b"a movie a reader plugin opened")
    with layer_source(path=str(movie)):  # as napari records the file a reader opened
        video = viewer.add_image(labels.astype(np.uint8), name="video")
    layer = viewer.add_labels(labels, name="cells")
    viewer.layers.selection = {video, layer}
    before = movie.read_bytes()
    answer_save_dialog(monkeypatch, str(movie))
    with pytest.raises(ValueError, match="was opened from"):
        _execute("napari-vos.export_overlay")
    assert movie.read_bytes() == before


def test_no_save_replaces_the_tiff_an_opened_image_is_read_from(make_napari_viewer, tmp_path):
    """Open image TIFF reads its file a frame at a time: saving the labels (or an overlay) under its name, the
    save dialog's overwrite question answered Yes, replaced the image on disk with the labels."""
    import tifffile

    from napari_vos.console import open_image_layers

    viewer = make_napari_viewer()
    source = tmp_path / "cells.tif"
    labels = dividing_cell()
    tifffile.imwrite(source, (labels * 100 + 7).astype(np.uint16), imagej=True, metadata={"axes": "TYX"})
    before = source.read_bytes()
    [image] = open_image_layers(viewer, source)
    layer = viewer.add_labels(labels, name="cells")
    with pytest.raises(Exception, match="cells.tif is the file 'cells' was opened from: the labels would replace it"):
        layer.save(str(source), plugin="napari-vos")
    assert source.read_bytes() == before
    assert layer.save(str(tmp_path / "labels.tif"), plugin="napari-vos") == [str(tmp_path / "labels.tif")]
    # the overlay's writer, given the name of a movie napari's File > Open read the video from
    from napari.layers._source import layer_source

    movie = tmp_path / "video.gif"
    movie.write_bytes(b"a movie a reader plugin opened")
    with layer_source(path=str(movie)):
        video = viewer.add_image(labels.astype(np.uint8), name="video")
    viewer.layers.selection = {video, layer}
    with pytest.raises(Exception, match="video.gif is the file 'video' was opened from: the overlay would replace it"):
        viewer.layers.save(str(movie), selected=True, plugin="napari-vos")
    assert movie.read_bytes() == b"a movie a reader plugin opened"
