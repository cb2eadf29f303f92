"""The output of a run through one Z plane of a (T, Z, Y, X) image is tracked, split, measured and exported
as a CTC result on its plane: the same numbers as that plane as a time-lapse, tracks and split cells at
the plane's depth where the layer lies; labels painted on other planes are refused by name, not dropped."""
from __future__ import annotations

import numpy as np
import pytest
from _layers import dividing_cell
from _widget_run import needs_display

pytest.importorskip("napari")
from napari.components import ViewerModel  # noqa: E402
from napari.layers import Layer  # noqa: E402

from napari_vos._widgets.object_table_writer import layer_inputs, layer_tables  # noqa: E402
from napari_vos._widgets.plane_outputs import plane_volume  # noqa: E402
from napari_vos._widgets.tracks_layer import divided_layer_data, tracks_layer_data  # noqa: E402

Z, PLANE = 4, 2
SCALE = (5.0, 2.0, 0.5, 0.5)
UNITS = ("s", "um", "um", "um")
TRANSLATE = (0.0, 1.0, 10.0, -3.0)


def _plane_output(viewer, cells: np.ndarray | None = None, name: str = "cells (flow, Z plane 2)"):
    """A run's output through Z plane 2 of a (T, 4, 30, 44) image, as the widget adds it."""
    cells = dividing_cell() if cells is None else cells
    record = {"method": "flow", "z_plane": PLANE, "z_planes": Z}
    return viewer.add_labels(plane_volume(cells, PLANE, Z), name=name, scale=SCALE, translate=TRANSLATE,
                             units=UNITS, metadata={"napari_vos": record})


def _time_lapse(viewer, cells: np.ndarray | None = None):
    """The same labels as a (T, Y, X) layer at the plane's (T, Y, X) placement."""
    cells = dividing_cell() if cells is None else cells
    return viewer.add_labels(cells, name="flat", scale=SCALE[:1] + SCALE[2:], translate=TRANSLATE[:1] + TRANSLATE[2:],
                             units=UNITS[:1] + UNITS[2:])


def test_a_plane_outputs_tracks_are_the_planes_tracks_at_its_depth():
    viewer = ViewerModel()
    out, flat = _plane_output(viewer), _time_lapse(viewer)
    data, state, kind = tracks_layer_data(out)
    flat_data, flat_state, _ = tracks_layer_data(flat)
    assert data.shape[1] == 5 and np.all(data[:, 2] == PLANE)
    np.testing.assert_array_equal(np.delete(data, 2, axis=1), flat_data)
    tracks = viewer.add_tracks(data, **state)
    np.testing.assert_allclose(tracks.scale, SCALE)
    np.testing.assert_allclose(tracks.translate, TRANSLATE)
    np.testing.assert_array_equal(tracks.features["label"], flat_state["features"]["label"])


def test_labels_on_another_plane_are_refused_and_a_volume_that_is_no_plane_output_is_split_in_3d():
    viewer = ViewerModel()
    out = _plane_output(viewer)
    out.data[3, 0, 1, 1] = 7  # a stroke on plane 0: tracks of plane 2 alone would leave it out unsaid
    with pytest.raises(ValueError, match=r"Z plane 2 but holds labels on plane\(s\) 0 too: tracks are found on "
                                         r"the run's plane only"):
        tracks_layer_data(out)
    with pytest.raises(ValueError, match=r"plane\(s\) 0 too: divisions"):
        divided_layer_data(out)
    with pytest.raises(ValueError, match=r"plane\(s\) 0 too: the measurements"):
        layer_tables(*layer_inputs(out))
    volume = viewer.add_labels(plane_volume(dividing_cell(), PLANE, Z), name="painted volume")
    split, _, _ = divided_layer_data(volume)  # a volume that is no plane output is split in 3D, as it is tracked
    assert split.shape == (6, 4, 30, 44) and not np.delete(split, PLANE, axis=1).any()


def test_a_plane_output_is_split_on_its_plane_into_a_layer_of_its_shape_that_keeps_its_record(tmp_path):
    from napari_vos.console import open_labels_layer, save_labels_layer, show_tracks

    viewer = ViewerModel()
    out, flat = _plane_output(viewer), _time_lapse(viewer)
    labels, state, kind = divided_layer_data(out)
    flat_labels, flat_state, _ = divided_layer_data(flat)
    assert kind == "labels" and labels.shape == out.data.shape
    np.testing.assert_array_equal(labels[:, PLANE], flat_labels)
    assert not np.delete(labels, PLANE, axis=1).any()
    assert state["metadata"]["napari_vos"]["z_plane"] == PLANE
    assert state["metadata"]["napari_vos_divisions"]["lineage"] == flat_state["metadata"]["napari_vos_divisions"][
        "lineage"]
    divided = viewer.add_layer(Layer.create(labels, state, kind))
    np.testing.assert_allclose(divided.scale, SCALE)
    tracks = show_tracks(viewer, divided)  # the daughters' tracks name their mother's, at the plane's depth
    assert tracks.graph and np.all(tracks.data[:, 2] == PLANE)
    path = save_labels_layer(divided, tmp_path / "divided.tif")  # saved as its plane, with the lineage
    again = open_labels_layer(viewer, path, name="again")
    np.testing.assert_array_equal(again.data, labels)
    assert again.metadata["napari_vos"]["divisions_split"]


def test_a_plane_outputs_measurements_are_its_planes_with_that_plane_of_the_image(tmp_path):
    viewer = ViewerModel()
    cells = dividing_cell()
    video = np.zeros((len(cells), Z, *cells.shape[1:]), np.uint16)
    video[:, PLANE] = cells.astype(np.uint16) * 100
    video[:, 0] = 999  # another plane's intensities: not the ones measured
    image = viewer.add_image(video, name="volume", scale=SCALE, units=UNITS)
    out, flat = _plane_output(viewer, cells), _time_lapse(viewer, cells)
    objects, tracks = layer_tables(*layer_inputs(out, image))
    flat_image = viewer.add_image(video[:, PLANE], name="flat image", scale=SCALE[:1] + SCALE[2:])
    flat_objects, flat_tracks = layer_tables(*layer_inputs(flat, flat_image))
    assert list(objects.rows()) == list(flat_objects.rows()) and list(tracks.rows()) == list(flat_tracks.rows())
    row = next(r for r in objects.rows() if r["label"] == 3 and r["frame"] == 0)
    assert float(row["intensity_mean"]) == 300 and float(row["area_um2"]) == 100 * 0.25
    wrong = viewer.add_image(video[:, :3], name="three planes")
    with pytest.raises(ValueError, match=r"is \(6, 4, 30, 44\) but the image layer 'three planes' is \(6, 3, 30, 44\)"):
        layer_tables(*layer_inputs(out, wrong))


def test_a_plane_outputs_ctc_result_is_its_plane(tmp_path):
    import tifffile

    from napari_vos.console import save_ctc

    viewer = ViewerModel()
    out, flat = _plane_output(viewer), _time_lapse(viewer)
    result = save_ctc(viewer, out, tmp_path / "plane")
    flat_result = save_ctc(viewer, flat, tmp_path / "flat")
    assert result.frames == len(dividing_cell())
    np.testing.assert_array_equal(result.table, flat_result.table)
    for t in range(result.frames):
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "plane" / f"mask{t:03d}.tif"),
                                      tifffile.imread(tmp_path / "flat" / f"mask{t:03d}.tif"))


@needs_display
@pytest.mark.gui
def test_the_track_measure_and_ctc_menus_take_a_plane_output(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    from _menu import answer_save_dialog, run_menu_command, said
    from qtpy.QtWidgets import QFileDialog

    viewer = make_napari_viewer()
    cells = dividing_cell()
    video = np.repeat((cells.astype(np.uint16) * 100)[:, None], Z, axis=1)
    image = viewer.add_image(video, name="volume", scale=SCALE)
    out = _plane_output(viewer)
    viewer.layers.selection = {out, image}
    answer_save_dialog(monkeypatch, str(tmp_path / "cells.csv"))
    run_menu_command(qtbot, "napari-vos.measure_objects")
    rows = (tmp_path / "cells.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * len(cells) and any("intensities of 'volume'" in text for text in said("info"))
    viewer.layers.selection.active = out
    run_menu_command(qtbot, "napari-vos.labels_tracks")
    tracks = viewer.layers["cells (flow, Z plane 2) tracks"]
    assert tracks.data.shape[1] == 5 and np.all(tracks.data[:, 2] == PLANE)
    viewer.layers.selection = {out}
    folder = tmp_path / "01_RES"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda parent, caption, start: str(folder)))
    run_menu_command(qtbot, "napari-vos.export_ctc")
    assert (folder / "res_track.txt").exists() and len(list(folder.glob("mask*.tif"))) == len(out.data)
    assert any("frames of Z plane 2" in text for text in said("info"))


def test_a_plane_outputs_overlay_is_drawn_over_that_plane_of_the_image(tmp_path):
    """The overlay of a plane output is the plane's, over that plane of the image, at the image's frame rate."""
    from napari_vos._widgets.overlay_writer import overlay_arguments

    viewer = ViewerModel()
    cells = dividing_cell()
    video = np.full((len(cells), Z, *cells.shape[1:]), 999, np.uint16)
    video[:, PLANE] = cells.astype(np.uint16) * 100
    video_scale = (0.04, *SCALE[1:])  # 25 frames a second
    image = viewer.add_image(video, name="volume", scale=video_scale, units=UNITS, contrast_limits=(0, 300))
    flat_image = viewer.add_image(video[:, PLANE], name="flat volume", scale=video_scale[:1] + video_scale[2:],
                                  units=UNITS[:1] + UNITS[2:], contrast_limits=(0, 300))
    out, flat = _plane_output(viewer, cells), _time_lapse(viewer, cells)
    _, drawn = overlay_arguments(str(tmp_path / "plane.gif"), [image.as_layer_data_tuple(), out.as_layer_data_tuple()])
    _, flat_drawn = overlay_arguments(str(tmp_path / "flat.gif"), [flat_image.as_layer_data_tuple(),
                                                                   flat.as_layer_data_tuple()])
    np.testing.assert_array_equal(np.asarray(drawn["video"]), flat_drawn["video"])
    np.testing.assert_array_equal(np.asarray(drawn["labels"]), flat_drawn["labels"])
    assert drawn["fps"] == flat_drawn["fps"] == pytest.approx(25)
    from napari_vos.data.overlay_movies import write_overlay_movie

    written = [write_overlay_movie(tmp_path / name, **arguments) for name, arguments in
               (("plane.gif", drawn), ("flat.gif", flat_drawn))]
    assert written[0].read_bytes() == written[1].read_bytes()
    wrong = viewer.add_image(video[:, :3], name="three planes")
    with pytest.raises(ValueError, match=r"'three planes' is \(6, 3, 30, 44\): select the \(T, Z, Y, X\) image"):
        overlay_arguments(str(tmp_path / "wrong.gif"), [wrong.as_layer_data_tuple(), out.as_layer_data_tuple()])


def test_a_plane_output_of_a_pyramids_coarse_level_is_measured_and_drawn_over_that_level():
    """A plane output at a (T, Z, Y, X) pyramid's coarse level: its intensities and its overlay come from
    that level's plane."""
    from napari_vos._widgets.overlay_writer import overlay_arguments

    viewer = ViewerModel()
    cells = dividing_cell()
    fine = np.zeros((len(cells), Z, cells.shape[1] * 2, cells.shape[2] * 2), np.uint16)
    coarse = np.zeros((len(cells), Z, *cells.shape[1:]), np.uint16)
    coarse[:, PLANE] = cells.astype(np.uint16) * 100
    image = viewer.add_image([fine, coarse], name="pyramid", multiscale=True)
    out = _plane_output(viewer, cells)
    objects, _ = layer_tables(*layer_inputs(out, image))
    row = next(r for r in objects.rows() if r["label"] == 3 and r["frame"] == 0)
    assert float(row["intensity_mean"]) == 300
    _, drawn = overlay_arguments("pyramid.gif", [image.as_layer_data_tuple(), out.as_layer_data_tuple()])
    np.testing.assert_array_equal(np.asarray(drawn["video"]), coarse[:, PLANE])
    other = viewer.add_image([fine, fine[:, :, ::4, ::4]], name="other pyramid", multiscale=True)
    with pytest.raises(ValueError, match=r"is \(6, 4, 30, 44\) but the image layer 'other pyramid' is "
                                         r"\(6, 4, 60, 88\) or \(6, 4, 15, 22\): select the labels"):
        layer_tables(*layer_inputs(out, other))
