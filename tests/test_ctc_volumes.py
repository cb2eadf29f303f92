"""(T, Z, Y, X) labels as a Cell Tracking Challenge 3D result: each mask a (Z, Y, X) uint16 stack of pages,
res_track.txt as for 2-D (an id back after a gap a new track); from the library, the console, the IO menu
in a real viewer and `napari-vos ctc` on a (T, Z, Y, X) labels TIFF (--z still one plane in 2-D)."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from _menu import run_menu_command, said
from _widget_run import needs_display


def _volumes() -> np.ndarray:
    """(T=5, Z=3, Y=10, X=12) labels: id 4 a box rising one plane a frame (planes 0-1, 1-2, 2, 2, 2), id 9 a
    voxel on frames 0-1 and 3-4 (missing on frame 2: two tracks, the second the first's child)."""
    labels = np.zeros((5, 3, 10, 12), np.int32)
    for t in range(5):
        z = min(t, 2)
        labels[t, z:z + 2, 2:5, 3:7] = 4
    labels[[0, 1, 3, 4], 0, 8, 10] = 9
    return labels


def _table(folder) -> list[tuple[int, ...]]:
    return [tuple(map(int, line.split())) for line in (folder / "res_track.txt").read_text().splitlines()]


def test_volumes_are_written_as_3d_masks_that_pass_the_ctc_checks(tmp_path):
    from napari_vos.ctc_export import check_ctc, ctc_tracks, write_ctc

    labels = _volumes()
    result = write_ctc(tmp_path / "01_RES", labels)
    assert result.frames == 5 and result.gaps == 1 and check_ctc(tmp_path / "01_RES") == []
    masks = [tifffile.imread(tmp_path / "01_RES" / f"mask{t:03d}.tif") for t in range(5)]
    assert all(m.shape == (3, 10, 12) and m.dtype == np.uint16 for m in masks)
    rows = _table(tmp_path / "01_RES")
    box, dot = int(masks[0][0, 3, 4]), int(masks[0][0, 8, 10])
    assert (box, 0, 4, 0) in rows and (dot, 0, 1, 0) in rows
    back = int(masks[3][0, 8, 10])
    assert (back, 3, 4, dot) in rows and len(rows) == 3  # the voxel back after its gap: a child track
    assert np.array_equal(masks[1] > 0, labels[1] > 0) and masks[2][0].max() == 0
    stack, table = ctc_tracks(labels)  # the same, held whole
    assert stack.shape == labels.shape and np.array_equal(stack, np.stack(masks)) and table.tolist() == result.table.tolist()
    with pytest.raises(ValueError, match=r"labels of shape \(2, 2, 3, 4, 5\): a CTC result is a \(T, Y, X\) labels "
                                         r"stack, or a \(T, Z, Y, X\) one for a 3D data set"):
        write_ctc(tmp_path / "five", np.zeros((2, 2, 3, 4, 5), np.uint16))


def test_a_volume_of_three_planes_is_no_rgb_mask(tmp_path):
    """tifffile writes a (3, Y, X) array as one planar RGB image unless told otherwise: each mask is 3 pages."""
    from napari_vos.ctc_export import write_ctc

    write_ctc(tmp_path / "r", _volumes())
    with tifffile.TiffFile(tmp_path / "r" / "mask000.tif") as tif:
        assert len(tif.pages) == 3 and tif.pages[0].photometric == tifffile.PHOTOMETRIC.MINISBLACK


def test_the_ctc_command_writes_a_volume_tiff_as_3d_masks_and_one_plane_with_z(tmp_path, capsys):
    from napari_vos.cli import main

    path = tmp_path / "labels.tif"
    tifffile.imwrite(path, _volumes().astype(np.uint16), imagej=True, metadata={"axes": "TZYX"})
    assert main(["ctc", str(path), "-o", str(tmp_path / "3d")]) == 0
    assert tifffile.imread(tmp_path / "3d" / "mask000.tif").shape == (3, 10, 12)
    assert "3 tracks over 5 frames of 3 Z planes (mask000.tif ... mask004.tif" in capsys.readouterr().out
    assert main(["ctc", str(path), "-o", str(tmp_path / "plane2"), "--z", "2"]) == 0
    assert tifffile.imread(tmp_path / "plane2" / "mask000.tif").shape == (10, 12)
    out = capsys.readouterr().out
    assert "over 5 frames (mask000.tif" in out and "Z planes" not in out
    assert _table(tmp_path / "plane2") == [(1, 1, 4, 0)]  # the box reaches plane 2 on frame 1


@needs_display
@pytest.mark.gui
def test_the_ctc_menu_writes_a_volume_layer_as_3d_masks(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    from qtpy.QtWidgets import QFileDialog

    viewer = make_napari_viewer()
    layer = viewer.add_labels(_volumes(), name="nuclei")
    viewer.layers.selection = {layer}
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *args: str(tmp_path / "01_RES")))
    run_menu_command(qtbot, "napari-vos.export_ctc")
    assert tifffile.imread(tmp_path / "01_RES" / "mask004.tif").shape == (3, 10, 12)
    assert len(_table(tmp_path / "01_RES")) == 3
    assert any("3 tracks over 5 frames of 3 Z planes (3D masks), 1 gap split into new tracks" in text
               for text in said("info")), said("info")
