"""Each object's centroid path as a napari Tracks layer (`_widgets/tracks_layer.py`), from the Layers >
Track menu of a real viewer: hand-made centroids, the labels' placement kept, ids napari's Tracks
layer cannot take renumbered with the object's id kept as a feature."""
from __future__ import annotations

import numpy as np
import pytest
from _widget_run import needs_display

pytest.importorskip("napari")
from napari.components import ViewerModel  # noqa: E402

from napari_vos._widgets.tracks_layer import centroid_tracks, tracks_layer_data  # noqa: E402


def _two_objects(first: int = 1, second: int = 5) -> np.ndarray:
    labels = np.zeros((3, 20, 24), np.int64)
    labels[0, 2:4, 2:4] = first  # centroid (2.5, 2.5), then (3.5, 4.5); gone on frame 2
    labels[1, 3:5, 4:6] = first
    labels[:, 10:14, 10:12] = second  # (11.5, 10.5) on every frame
    return labels


def test_each_id_is_a_track_of_its_centroids_in_frame_order():
    data, features = centroid_tracks(_two_objects())
    assert data.tolist() == [[1, 0, 2.5, 2.5], [1, 1, 3.5, 4.5], [5, 0, 11.5, 10.5], [5, 1, 11.5, 10.5],
                             [5, 2, 11.5, 10.5]]
    assert features["label"].tolist() == [1, 1, 5, 5, 5] and features["area_px"].tolist() == [4, 4, 8, 8, 8]


@pytest.mark.parametrize("ids", [(-1, 5), (3, 2**40)])
def test_ids_napari_cannot_track_are_renumbered_and_kept_as_the_label_feature(ids):
    """napari's Tracks layer wrapped -1 to 2**32 and allocated a 32 GiB track graph."""
    data, features = centroid_tracks(_two_objects(*ids))
    assert sorted(set(data[:, 0])) == [1.0, 2.0]
    assert sorted(set(features["label"].tolist())) == sorted(ids)
    v = ViewerModel()
    layer = v.add_tracks(data, features=features)
    assert len(layer.data) == 5


def test_the_tracks_lie_where_the_labels_lie_and_what_cannot_be_tracked_is_refused():
    v = ViewerModel()
    labels = v.add_labels(_two_objects(), name="out", scale=(5, 0.5, 0.5), translate=(0, 10, -3),
                          units=("min", "µm", "µm"))
    data, state, kind = tracks_layer_data(labels)
    tracks = v.add_tracks(data, **state)
    assert kind == "tracks" and tracks.name == "out tracks"
    np.testing.assert_allclose(tracks.scale, (5, 0.5, 0.5))
    np.testing.assert_allclose(tracks.translate, (0, 10, -3))
    assert [str(u) for u in tracks.units] == ["minute", "micrometer", "micrometer"]
    with pytest.raises(ValueError, match="'one'.*not \\(T, Y, X\\)"):
        tracks_layer_data(v.add_labels(np.zeros((8, 8), np.uint8), name="one"))
    with pytest.raises(ValueError, match="'empty' holds no object"):
        tracks_layer_data(v.add_labels(np.zeros((2, 8, 8), np.uint8), name="empty"))


@needs_display
@pytest.mark.gui
def test_the_layers_track_menu_adds_the_active_labels_tracks(make_napari_viewer, qtbot):
    from _menu import run_menu_command
    from napari._app_model import get_app_model

    viewer = make_napari_viewer()
    viewer.add_labels(_two_objects(), name="cells propagated", scale=(2, 1, 1))
    app = get_app_model()
    titles = [item.command.title for item in app.menus.get_menu("napari/layers/track") if hasattr(item, "command")]
    assert "Centroid tracks (napari-vos)" in titles  # napari adds the plugin name
    run_menu_command(qtbot, "napari-vos.labels_tracks")
    tracks = viewer.layers["cells propagated tracks"]
    assert type(tracks).__name__ == "Tracks" and len(tracks.data) == 5
    np.testing.assert_allclose(tracks.scale, (2, 1, 1))


def test_show_tracks_from_the_console_adds_the_layer_by_name():
    from napari_vos.console import show_tracks

    v = ViewerModel()
    v.add_labels(_two_objects(), name="out", scale=(3, 1, 1))
    tracks = show_tracks(v, "out")
    assert v.layers[-1] is tracks and tracks.name == "out tracks" and len(tracks.data) == 5
    np.testing.assert_allclose(tracks.scale, (3, 1, 1))
