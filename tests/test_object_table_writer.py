"""File > Save Selected Layers with a labels layer (and its image) selected, as napari-vos object
measurements: two CSV tables in the layer's units; and `measure_layers` from the console."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from _layers import sliding_square
from _save_dialog import save_as

pytest.importorskip("napari")
from napari.components import ViewerModel  # noqa: E402


@pytest.fixture(autouse=True)
def _plugins():
    import npe2

    npe2.PluginManager.instance().discover()


def _save_as_tables(layers, path):
    return save_as(layers, path, "measurements")


def _read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_labels_and_their_image_save_as_two_tables_in_the_layers_units(tmp_path):
    frames, truth = sliding_square(4, (48, 64))
    v = ViewerModel()
    image = v.add_image(frames, name="video", scale=(5, 0.5, 0.5), units=("min", "µm", "µm"))
    labels = v.add_labels(truth, name="video labels", scale=(5, 0.5, 0.5), units=("min", "µm", "µm"))
    written = _save_as_tables([image, labels], tmp_path / "cells")  # the dialog's name, no extension typed
    assert written == [str(tmp_path / "cells.csv"), str(tmp_path / "cells.tracks.csv")]
    objects, tracks = _read(written[0]), _read(written[1])
    assert [r["frame"] for r in objects] == ["0", "1", "2", "3"] and objects[3]["time_min"] == "15.0"
    assert objects[0]["area_um2"] == "100.0"  # 20x20 pixels of 0.5 µm
    inside = frames[0][truth[0] > 0]
    assert float(objects[0]["intensity_mean"]) == pytest.approx(inside.mean(), rel=1e-6)
    assert float(tracks[0]["speed_um_per_min"]) == pytest.approx(2 * 0.5 / 5)  # 2 px a frame


def test_labels_alone_save_without_intensities(tmp_path):
    _, truth = sliding_square(3, (32, 40))
    v = ViewerModel()
    labels = v.add_labels(truth, name="labels")
    written = _save_as_tables([labels], tmp_path / "t.csv")
    row = _read(written[0])[0]
    assert "intensity_mean" not in row and "area_um2" not in row and row["area_px"] == "400"


@pytest.mark.parametrize("name", ["t.xlsx", "t.tif"])
def test_a_name_for_another_format_is_refused_and_nothing_is_written(tmp_path, name):
    from napari_vos._widgets.object_table_writer import TablesNotWritten, write_object_tables

    _, truth = sliding_square(3, (32, 40))
    with pytest.raises(TablesNotWritten, match="t.csv"):
        write_object_tables(str(tmp_path / name), [(truth, {"name": "labels"}, "labels")])
    assert list(tmp_path.iterdir()) == []


def test_labels_of_another_shape_than_the_image_are_refused_naming_both(tmp_path):
    from napari_vos._widgets.object_table_writer import TablesNotWritten, write_object_tables

    frames, truth = sliding_square(3, (32, 40))
    with pytest.raises(TablesNotWritten, match="'video'.*propagated on"):
        write_object_tables(str(tmp_path / "t.csv"), [(truth, {"name": "labels"}, "labels"),
                                                      (frames[:2], {"name": "video"}, "image")])


def test_an_output_a_run_is_still_filling_is_refused(tmp_path):
    from napari_vos._widgets.object_table_writer import TablesNotWritten, write_object_tables

    _, truth = sliding_square(3, (32, 40))
    filling = {"name": "out", "metadata": {"napari_vos_output": True}}
    with pytest.raises(TablesNotWritten, match="still being filled"):
        write_object_tables(str(tmp_path / "t.csv"), [(truth, filling, "labels")])
    done = {"name": "out", "metadata": {"napari_vos_output": True, "napari_vos": {"complete": False,
                                                                                    "frames_segmented": "0-1"}}}
    with pytest.warns(UserWarning, match="stopped run"):
        write_object_tables(str(tmp_path / "t.csv"), [(truth, done, "labels")])


def test_measure_layers_from_the_console_returns_both_tables_and_writes_them_when_asked(tmp_path):
    import napari_vos

    frames, truth = sliding_square(3, (32, 40))
    v = ViewerModel()
    v.add_image(np.repeat(frames[..., None], 3, axis=-1), rgb=True, name="movie")
    v.add_labels(truth, name="movie labels", scale=(1, 2, 2), units=("pixel", "nm", "nm"))
    out = napari_vos.measure_layers(v, "movie labels", "movie", path=tmp_path / "m.csv")
    assert len(out.objects) == 3 and len(out.tracks) == 1
    assert out.objects.columns["area_nm2"][0] == 1600.0 and "intensity_mean_c2" in out.objects.names
    assert "time_s" not in out.objects.names  # a time axis scaled 1 without a unit is frames, not seconds
    assert (tmp_path / "m.csv").is_file() and (tmp_path / "m.tracks.csv").is_file()
    assert list(out.objects.to_pandas().columns) == out.objects.names


def test_multiscale_labels_are_measured_at_their_finest_level():
    """A writer is handed a multiscale layer's levels as a list (of arrays of different shapes); the tables are of
    the finest level, as before plane outputs were measured (a look at the list's dimensions raised then)."""
    from napari_vos._widgets.object_table_writer import layer_tables

    _, truth = sliding_square(3, (32, 40))
    objects, _ = layer_tables([truth, truth[:, ::2, ::2]], {"multiscale": True, "name": "pyramid",
                                                            "scale": (1.0, 0.5, 0.5), "units": ("s", "µm", "µm")})
    rows = list(objects.rows())
    assert len(rows) == 3 and rows[0]["area_px"] == 400 and rows[0]["area_um2"] == pytest.approx(100.0)
