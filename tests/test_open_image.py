"""File > IO Utilities > Open image TIFF (calibration)... and `console.open_image_layers` (session 43): napari's
File > Open gives a calibrated TIFF time-lapse scale 1, so the Propagate outputs lay at scale 1 too; the
layers opened here lie at the file's pixel size and frame interval, read a frame at a time."""
from __future__ import annotations

import numpy as np
import pytest
from _menu import said
from _widget_run import needs_display

pytestmark = [needs_display, pytest.mark.gui]


def _calibrated_tcyx(path, frames: int = 6):
    """An ImageJ hyperstack (T, C, Y, X) of 16-bit phase + a flat channel, 0.65 µm pixels, 600 s apart."""
    import tifffile

    video = np.zeros((frames, 2, 40, 50), np.uint16)
    for t in range(frames):
        video[t, 0, 10:20, 10 + t:20 + t] = 3000
        video[t, 1] = 100 + t
    tifffile.imwrite(path, video, imagej=True, resolution=(1 / 0.65, 1 / 0.65),
                     metadata={"axes": "TCYX", "unit": "um", "finterval": 600})
    return video


def _execute(command_id: str) -> None:
    from napari._app_model import get_app_model

    get_app_model().commands.execute_command(command_id).result()


def test_a_hyperstack_opens_one_layer_per_channel_at_its_calibration_and_outputs_keep_it(make_napari_viewer,
                                                                                          tmp_path):
    import dask.array as da

    from napari_vos.console import open_image_layers, propagate_layers

    video = _calibrated_tcyx(tmp_path / "cells.tif")
    viewer = make_napari_viewer()
    layers = open_image_layers(viewer, tmp_path / "cells.tif")
    assert [layer.name for layer in layers] == ["cells ch0", "cells ch1"]
    for c, layer in enumerate(layers):
        assert isinstance(layer.data, da.Array) and layer.data.chunks[0] == (1,) * 6  # a frame a chunk: lazy
        np.testing.assert_allclose(layer.scale, (600, 0.65, 0.65))
        assert [str(u) for u in layer.units] == ["second", "micrometer", "micrometer"]
        np.testing.assert_array_equal(np.asarray(layer.data[3]), video[3, c])
    painted = np.zeros((6, 40, 50), np.uint8)
    painted[0, 10:20, 10:20] = 1
    viewer.add_labels(painted, name="painted", scale=layers[0].scale)
    out = propagate_layers(viewer, "cells ch0", "painted", method="flow", device="cpu")
    np.testing.assert_allclose(out.labels.scale, (600, 0.65, 0.65))
    assert np.count_nonzero(np.asarray(out.labels.data[5]) == 1) > 50


def test_colour_and_plain_stacks_and_bad_files(make_napari_viewer, tmp_path):
    import tifffile

    from napari_vos.console import open_image_layers

    viewer = make_napari_viewer()
    colour = np.random.default_rng(0).integers(0, 255, (4, 16, 24, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "colour.tif", colour, photometric="rgb")
    (layer,) = open_image_layers(viewer, tmp_path / "colour.tif")
    assert layer.rgb and layer.data.shape == (4, 16, 24, 3)
    np.testing.assert_array_equal(np.asarray(layer.data[2]), colour[2])
    plain = np.arange(3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8)
    tifffile.imwrite(tmp_path / "plain.tif", plain)
    (layer,) = open_image_layers(viewer, tmp_path / "plain.tif", name="mine")
    assert layer.name == "mine" and not layer.rgb
    np.testing.assert_allclose(layer.scale, (1, 1, 1))
    with pytest.raises(ValueError, match="is not a file"):
        open_image_layers(viewer, tmp_path / "missing.tif")
    (tmp_path / "broken.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError):
        open_image_layers(viewer, tmp_path / "broken.tif")
    assert len(viewer.layers) == 2


def test_the_menu_opens_the_file_the_dialog_names(make_napari_viewer, monkeypatch, tmp_path):
    from qtpy.QtWidgets import QFileDialog

    _calibrated_tcyx(tmp_path / "cells.tif")
    answer = {"path": ""}
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *args: (answer["path"], "")))
    viewer = make_napari_viewer()
    _execute("napari-vos.open_image")  # Cancel in the dialog
    assert len(viewer.layers) == 0
    answer["path"] = str(tmp_path / "cells.tif")
    _execute("napari-vos.open_image")
    assert [layer.name for layer in viewer.layers] == ["cells ch0", "cells ch1"]
    assert any("opened cells.tif as 'cells ch0', 'cells ch1': 6 frames of (40, 50) at pixel size 0.65 micrometer, "
               "600 second between frames" in text for text in said("info")), said()


def test_the_menu_opens_a_3d_time_lapse_whole_without_asking_for_a_plane(make_napari_viewer, monkeypatch, tmp_path):
    """A (T, Z, Y, X) stack: before, the menu asked which Z plane to open (a QInputDialog) and opened that one
    as (T, Y, X); now it opens the whole stack at its Z step, read a plane at a time, and says that Propagate
    runs through the plane under the Z slider."""
    import tifffile
    from qtpy.QtWidgets import QFileDialog, QInputDialog

    stack = np.zeros((4, 5, 16, 16), np.uint16)
    for z in range(5):
        stack[:, z] = 10 * z
    tifffile.imwrite(tmp_path / "volume.tif", stack, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "TZYX", "unit": "um", "spacing": 1.5})
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *args: (str(tmp_path / "volume.tif"), "")))

    def no_question(*args):
        raise AssertionError("the menu asked for a Z plane")

    monkeypatch.setattr(QInputDialog, "getInt", staticmethod(no_question))
    viewer = make_napari_viewer()
    _execute("napari-vos.open_image")
    (layer,) = viewer.layers
    assert layer.data.shape == (4, 5, 16, 16) and layer.data.chunks[:2] == ((1,) * 4, (1,) * 5)
    np.testing.assert_allclose(layer.scale, (1, 1.5, 0.5, 0.5))
    assert int(np.asarray(layer.data[1, 3]).max()) == 30
    assert any("opened volume.tif as 'volume': a 3D + time stack of 5 Z planes, 4 frames of (16, 16) at pixel size "
               "0.5 micrometer, Z step 1.5 micrometer, no frame interval in the file; Propagate runs through the "
               "plane under the Z slider" in text for text in said("info")), said()
