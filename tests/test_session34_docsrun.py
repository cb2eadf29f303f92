"""The documented paths, executed (session 34 audit): the panel docked from the Plugins menu runs,
`--z` reads plain (T, Z, Y, X) labels at that plane, a flag and an --option for one setting are refused."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _square_video(n=5, size=(48, 48)):
    video = np.zeros((n, *size), np.uint8)
    truth = np.zeros((n, *size), np.uint8)
    for t in range(n):
        video[t, 10 + 2 * t:26 + 2 * t, 10:26] = 200
        truth[t, 10 + 2 * t:26 + 2 * t, 10:26] = 1
    return video, truth


def test_widget_docked_through_the_manifest_propagates(make_napari_viewer, qtbot):
    """The user guide's main path: *Plugins -> Propagate (napari-vos)*, paint, click Propagate. napari
    hands a manifest widget PublicOnlyProxy layers; copy.deepcopy(labels.colormap) of a proxy raised
    NotImplementedError and every run ended with 'error: NotImplementedError: object proxy must
    define __deepcopy__()'."""
    from qtpy.QtCore import Qt

    viewer = make_napari_viewer()
    video, truth = _square_video()
    painted = np.zeros_like(truth)
    painted[0] = truth[0]
    viewer.add_image(video, name="video")
    viewer.add_labels(painted, name="painted")
    _, widget = viewer.window.add_plugin_dock_widget("napari-vos", "Propagate")
    widget.image_combo.setCurrentText("video")
    widget.labels_combo.setCurrentText("painted")
    widget.select_method("flow")
    widget.device_combo.setCurrentText("cpu")
    viewer.dims.set_current_step(0, 0)
    qtbot.mouseClick(widget.propagate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert not widget.status.text().startswith("error"), widget.status.text()
    assert "painted propagated (flow)" in [layer.name for layer in viewer.layers]



def test_cli_reads_plain_tzyx_labels_at_z(tmp_path):
    """user guide §8/§9: a 4-D array saved by a plain tifffile.imwrite is read as (T, Z, Y, X) when --z
    picks a plane, and 'labels painted over the same TZYX stack are read at that plane too'. The video
    is; the labels were refused ('labels of frame 0 must be a 2-D (Y, X) image ... (5, 14, 64, 64)')."""
    tifffile = pytest.importorskip("tifffile")
    from napari_vos.cli import main

    video, truth = _square_video(n=4)
    vid = np.repeat(video[:, None], 3, axis=1)  # (T, Z=3, Y, X)
    lab = np.zeros(vid.shape, np.uint16)
    lab[0, 2] = truth[0]
    tifffile.imwrite(tmp_path / "tzyx.tif", vid)
    tifffile.imwrite(tmp_path / "tzyx_labels.tif", lab)
    rc = main(["propagate", str(tmp_path / "tzyx.tif"), str(tmp_path / "tzyx_labels.tif"),
               "-o", str(tmp_path / "out.tif"), "--z", "2", "--method", "flow", "--device", "cpu"])
    assert rc == 0
    out = tifffile.imread(tmp_path / "out.tif")
    assert out.shape == truth.shape and out[-1].any()




def test_a_flag_and_an_option_for_the_same_setting_are_refused(tmp_path, capsys):
    """--max-side 512 --option max_side=128 ran at 128 without a word."""
    tifffile = pytest.importorskip("tifffile")
    from napari_vos.cli import main

    video, truth = _square_video(n=3)
    tifffile.imwrite(tmp_path / "v.tif", video)
    tifffile.imwrite(tmp_path / "l.tif", truth[0])
    rc = main(["propagate", str(tmp_path / "v.tif"), str(tmp_path / "l.tif"), "-o", str(tmp_path / "o.tif"),
               "--method", "flow", "--device", "cpu", "--max-side", "512", "--option", "max_side=128"])
    assert rc == 2 and "--option max_side=... is not a method option: use --max-side" in capsys.readouterr().err
