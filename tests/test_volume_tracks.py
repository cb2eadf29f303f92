"""Centroid tracks of (T, Z, Y, X) labels (a run through several Z planes, a 3D segmentation over time):
each id's 3D centroid per frame as napari's 3D + time Tracks rows (track, t, z, y, x), hand-made boxes
whose centroids are known, the layer's placement kept; a one-plane output keeps its rows at its plane;
the split of divided cells (2-D) refuses a volume by name."""
from __future__ import annotations

import numpy as np
import pytest
from _widget_run import needs_display

pytest.importorskip("napari")
from napari.components import ViewerModel  # noqa: E402

from napari_vos._widgets.plane_outputs import plane_volume  # noqa: E402
from napari_vos._widgets.tracks_layer import centroid_tracks, divided_layer_data, tracks_layer_data  # noqa: E402

SCALE = (5.0, 2.0, 0.5, 0.25)
UNITS = ("s", "um", "um", "um")
TRANSLATE = (0.0, 1.0, 10.0, -3.0)


def _rising_box(first: int = 4, second: int = 9, frames: int = 4) -> np.ndarray:
    """(T, 8, 20, 24) labels: ``first`` a 2x3x4 box one plane deeper each frame (centroid z 1.5 + t, y 6,
    x 9.5); ``second`` a still 1x2x2 box on plane 6 (z 6, y 15.5, x 20.5), gone on the last frame."""
    labels = np.zeros((frames, 8, 20, 24), np.int64)
    for t in range(frames):
        labels[t, 1 + t:3 + t, 5:8, 8:12] = first
        if t < frames - 1:
            labels[t, 6, 15:17, 20:22] = second
    return labels


def test_each_id_is_a_track_of_its_3d_centroids_in_frame_order():
    data, features = centroid_tracks(_rising_box())
    assert data.tolist() == [[4, t, 1.5 + t, 6.0, 9.5] for t in range(4)] + [[9, t, 6.0, 15.5, 20.5] for t in range(3)]
    assert features["label"].tolist() == [4] * 4 + [9] * 3
    assert features["volume_px"].tolist() == [24] * 4 + [4] * 3 and "area_px" not in features


@pytest.mark.parametrize("ids", [(-1, 5), (3, 2**40)])
def test_volume_ids_napari_cannot_track_are_renumbered_and_kept_as_the_label_feature(ids):
    data, features = centroid_tracks(_rising_box(*ids))
    assert sorted(set(data[:, 0])) == [1.0, 2.0]
    assert sorted(set(features["label"].tolist())) == sorted(ids)
    layer = ViewerModel().add_tracks(data, features=features)
    assert len(layer.data) == 7 and layer.ndim == 4


def test_the_3d_tracks_lie_where_the_volume_lies_and_step_by_the_z_scale():
    v = ViewerModel()
    labels = v.add_labels(_rising_box(), name="cells 3d", scale=SCALE, translate=TRANSLATE, units=UNITS)
    data, state, kind = tracks_layer_data(labels)
    tracks = v.add_tracks(data, **state)
    assert kind == "tracks" and tracks.name == "cells 3d tracks" and data.shape == (7, 5)
    np.testing.assert_allclose(tracks.scale, SCALE)
    np.testing.assert_allclose(tracks.translate, TRANSLATE)
    assert [str(u) for u in tracks.units] == ["second", "micrometer", "micrometer", "micrometer"]
    assert tracks.features["volume_px"].tolist() == [24] * 4 + [4] * 3
    world = np.array([tracks.data_to_world(row[1:]) for row in data[data[:, 0] == 4]])
    np.testing.assert_allclose(np.diff(world, axis=0), [[5.0, 2.0, 0.0, 0.0]] * 3)  # one plane (2 um) a frame
    np.testing.assert_allclose(world[0], [0.0, 1.0 + 1.5 * 2.0, 10.0 + 6 * 0.5, -3.0 + 9.5 * 0.25])


def test_a_run_through_several_planes_is_tracked_in_3d_and_a_one_plane_output_at_its_plane():
    v = ViewerModel()
    several = v.add_labels(_rising_box(), name="several", metadata={
        "napari_vos": {"method": "flow", "z_planes": 8, "z_planes_run": [1, 2, 3, 4, 6]}})
    data, state, _ = tracks_layer_data(several)
    np.testing.assert_array_equal(data, centroid_tracks(_rising_box())[0])
    flat = np.zeros((3, 20, 24), np.int64)
    flat[:, 5:8, 8:12] = 4
    flat[1:, 15:17, 20:22] = 7
    record = {"method": "flow", "z_plane": 2, "z_planes": 5}
    plane_output = v.add_labels(plane_volume(flat, 2, 5), name="plane", metadata={"napari_vos": record})
    plane_data, plane_state, _ = tracks_layer_data(plane_output)
    flat_data, flat_state, _ = tracks_layer_data(v.add_labels(flat, name="flat"))
    np.testing.assert_array_equal(plane_data, np.insert(flat_data, 2, 2.0, axis=1))
    assert "area_px" in plane_state["features"] and "volume_px" not in plane_state["features"]
    same = v.add_labels(plane_volume(flat, 2, 5), name="the same as a volume")  # no record: tracked in 3D
    volume_data, volume_state, _ = tracks_layer_data(same)
    np.testing.assert_array_equal(volume_data, plane_data)  # one plane holds it: the same rows
    assert volume_state["features"]["volume_px"].tolist() == plane_state["features"]["area_px"].tolist()


def painted_planes_run(viewer):
    """The output of a real run (flow, CPU) through every painted Z plane of a (5, 4, 48, 48) image at scale
    (5, 2, 0.5, 0.5): a 2 x 12 x 12 box on planes 1 and 2 moving 2 pixels right a frame, painted on frame 0."""
    from napari_vos.console import propagate_layers

    video = np.full((5, 4, 48, 48), 20, np.uint8)
    for t in range(5):
        video[t, 1:3, 10:22, 8 + 2 * t:20 + 2 * t] = 220
    painted = np.zeros(video.shape, np.uint8)
    painted[0, 1:3, 10:22, 8:20] = 3
    viewer.add_image(video, name="volume", scale=(5, 2, 0.5, 0.5))
    viewer.add_labels(painted, name="painted", scale=(5, 2, 0.5, 0.5))
    return propagate_layers(viewer, "volume", "painted", method="flow", device="cpu", plane="painted").labels


def test_a_run_through_every_painted_plane_is_tracked_in_3d():
    viewer = ViewerModel()
    out = painted_planes_run(viewer)
    assert out.metadata["napari_vos"]["z_planes_run"] == [1, 2] and "z_plane" not in out.metadata["napari_vos"]
    data, state, _ = tracks_layer_data(out)
    assert data.shape == (5, 5) and data[:, 0].tolist() == [3] * 5 and data[:, 1].tolist() == list(range(5))
    np.testing.assert_allclose(data[:, 2:4], [[1.5, 15.5]] * 5)  # between its two planes
    np.testing.assert_allclose(np.diff(data[:, 4]), 2.0, atol=0.5)
    assert np.all(np.abs(state["features"]["volume_px"] - 288) <= 29)  # 2 x 12 x 12, within 10 %


class _Volumes:
    """A (T, Z, Y, X) stack that records each read (a lazy reader's stand-in)."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels, self.reads = labels, []
        self.shape, self.dtype, self.ndim = labels.shape, labels.dtype, labels.ndim

    def __getitem__(self, key):
        self.reads.append(key)
        return self.labels[key]


def test_lazy_volumes_are_read_one_frame_at_a_time():
    import dask.array as da

    lazy = _Volumes(_rising_box())
    data, _ = centroid_tracks(lazy)
    assert lazy.reads == [0, 1, 2, 3]
    np.testing.assert_array_equal(data, centroid_tracks(_rising_box())[0])
    chunks = da.from_array(_rising_box(), chunks=(1, 8, 20, 24))
    layer = ViewerModel().add_labels(chunks, name="dask")
    np.testing.assert_array_equal(tracks_layer_data(layer)[0], data)


def test_a_split_volumes_lineage_is_the_tracks_graph():
    labels = np.zeros((4, 6, 16, 16), np.uint8)
    labels[:2, 2:4, 4:12, 4:12] = 2  # the mother, then two daughters
    labels[2:, 2:4, 4:8, 4:8] = 5
    labels[2:, 2:4, 9:13, 9:13] = 6
    lineage = {"2": [0, 0, 1], "5": [2, 2, 3], "6": [2, 2, 3]}
    layer = ViewerModel().add_labels(labels, name="split", metadata={"napari_vos_divisions": {"lineage": lineage}})
    data, state, _ = tracks_layer_data(layer)
    assert state["graph"] == {5: [2], 6: [2]} and data.shape[1] == 5


def test_a_volumes_divided_cells_are_refused_naming_the_layer_and_its_ctc_result_is_3d(tmp_path):
    import tifffile

    from napari_vos.console import save_ctc

    v = ViewerModel()
    volume = v.add_labels(_rising_box(), name="volume")
    split, _, _ = divided_layer_data(volume)  # split in 3D: nothing divides here
    np.testing.assert_array_equal(split, volume.data)
    result = save_ctc(v, volume, tmp_path / "ctc")  # CTC's 3D masks
    assert result.frames == 4 and tifffile.imread(tmp_path / "ctc" / "mask000.tif").shape == (8, 20, 24)
    five = v.add_labels(np.zeros((2, 2, 3, 8, 8), np.uint8), name="five axes")
    with pytest.raises(ValueError, match=r"'five axes' has shape \(2, 2, 3, 8, 8\), not \(T, Y, X\) \(nor "
                                         r"\(T, Z, Y, X\)\)"):
        tracks_layer_data(five)


@needs_display
@pytest.mark.gui
def test_the_track_menu_draws_a_volumes_3d_tracks_and_splits_its_divided_cells_in_3d(make_napari_viewer, qtbot):
    from _layers import DIVIDING_GAPS, dividing_ball
    from _menu import run_menu_command

    viewer = make_napari_viewer()
    viewer.add_labels(_rising_box(), name="cells 3d", scale=SCALE, units=UNITS)
    run_menu_command(qtbot, "napari-vos.labels_tracks")
    tracks = viewer.layers["cells 3d tracks"]
    assert type(tracks).__name__ == "Tracks" and tracks.data.shape == (7, 5)
    np.testing.assert_array_equal(tracks.data[:4, 2], [1.5, 2.5, 3.5, 4.5])
    assert tracks.features["volume_px"].tolist() == [24] * 4 + [4] * 3
    np.testing.assert_allclose(tracks.scale, SCALE)
    viewer.add_labels(dividing_ball(), name="dividing", scale=SCALE, units=UNITS)
    run_menu_command(qtbot, "napari-vos.divided_labels")
    divided = viewer.layers["dividing divided"]
    assert divided.data.shape == dividing_ball().shape and set(np.unique(divided.data[-1]).tolist()) == {0, 2, 3, 4}
    np.testing.assert_allclose(divided.scale, SCALE)
    assert divided.metadata["napari_vos_divisions"]["lineage"]["3"] == [1, 3, len(DIVIDING_GAPS) - 1]
    run_menu_command(qtbot, "napari-vos.labels_tracks")  # the split's tracks: the lineage as their graph
    assert viewer.layers["dividing divided tracks"].graph == {3: [1], 4: [1]}
