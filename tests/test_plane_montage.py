"""Several Z planes of a (T, Z, Y, X) result side by side in one overlay: `plane_montage`, `napari-vos overlay
--z all` / `--z 1,3`, and `propagate --z painted --overlay`."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_vos.cli import main
from napari_vos.data.animated_images import read_animated_clip
from napari_vos.data.plane_montage import GAP, montage_grid, plane_montage, planes_to_draw
from napari_vos.data.writers import davis_palette
from test_cli_z_planes import T, Y, X, Z, _run, _squares


def test_the_grid_is_nearest_a_square_picture():
    assert montage_grid(1, (40, 56)) == (1, 1)
    assert montage_grid(4, (32, 32)) == (2, 2)
    assert montage_grid(40, (512, 512)) == (6, 7)
    assert montage_grid(3, (10, 100)) == (3, 1)  # wide planes stack up
    assert montage_grid(3, (100, 10)) == (1, 3)  # tall ones side by side
    with pytest.raises(ValueError, match="at least one Z plane"):
        montage_grid(0, (8, 8))


def test_the_planes_asked_for_are_checked_against_the_stack():
    assert planes_to_draw("all", 3, "it") == [0, 1, 2]
    assert planes_to_draw([2, 0, 2], 3, "it") == [0, 2] and planes_to_draw(1, 3, "it") == [1]
    with pytest.raises(ValueError, match=r"Z plane\(s\) 5 asked for, but the labels has 3 Z planes \(0-2\)"):
        planes_to_draw([1, 5], 3, "the labels")
    with pytest.raises(ValueError, match="a Z plane, a list of them or 'all'"):
        planes_to_draw("painted", 3, "it")


def test_overlay_z_takes_one_plane_a_list_or_all():
    import argparse

    from napari_vos.cli_overlay import _overlay_planes_arg

    assert _overlay_planes_arg("3") == 3 and _overlay_planes_arg("3,1,1") == [1, 3]
    assert _overlay_planes_arg("1-3") == [1, 2, 3] and _overlay_planes_arg(" ALL ") == "all"
    with pytest.raises(argparse.ArgumentTypeError, match="a list of planes \\(2,5 or 2-5\\) or 'all', got 'every'"):
        _overlay_planes_arg("every")


def test_each_plane_lies_in_its_cell_row_by_row_with_the_gaps_filled():
    stack = np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 3, 4, 5) + 100
    frames = plane_montage(lambda t, z: stack[t, z], 2, [0, 1, 2], fill_median=True)
    rows, columns = montage_grid(3, (4, 5))
    assert (rows, columns) == (2, 2) and len(frames) == 2
    picture = frames[1]
    assert picture.shape == (2 * 4 + GAP, 2 * 5 + GAP) and picture.dtype == np.uint16
    np.testing.assert_array_equal(picture[:4, :5], stack[1, 0])
    np.testing.assert_array_equal(picture[:4, 5 + GAP:], stack[1, 1])
    np.testing.assert_array_equal(picture[4 + GAP:, :5], stack[1, 2])
    # the gaps and the empty last cell hold the frame's median: no new extreme for a percentile stretch
    median = np.median(np.stack([stack[1, z][::4, ::4] for z in range(3)]))
    assert (picture[4:4 + GAP] == np.uint16(median)).all() and (picture[4 + GAP:, 5 + GAP:] == np.uint16(median)).all()
    labels = plane_montage(lambda t, z: np.full((4, 5), z + 1, np.uint8), 2, [0, 2], fill_median=False)[0]
    assert labels.shape == (4, 2 * 5 + GAP) and (labels[:, 5:5 + GAP] == 0).all()
    assert set(np.unique(labels[:, :5])) == {1} and set(np.unique(labels[:, 5 + GAP:])) == {3}
    rgb = plane_montage(lambda t, z: np.full((4, 5, 3), (10, 20, 30), np.uint8), 1, [0, 1, 2], fill_median=True)[0]
    assert rgb.shape == (2 * 4 + GAP, 2 * 5 + GAP, 3) and (rgb[4:4 + GAP] == (10, 20, 30)).all()


def test_the_lines_between_cells_are_drawn_white():
    from napari_vos.data.plane_montage import montage_gaps

    gaps = montage_gaps(3, (4, 5))  # 2 x 2 cells, the last one left over: not drawn
    assert gaps.shape == (2 * 4 + GAP, 2 * 5 + GAP)
    assert gaps[4:4 + GAP].all() and gaps[:, 5:5 + GAP].all()
    assert not gaps[:4, :5].any() and not gaps[4 + GAP:, 5 + GAP:].any()
    assert gaps.sum() == GAP * (2 * 5 + GAP) + GAP * (2 * 4 + GAP) - GAP * GAP
    assert not montage_gaps(1, (4, 5)).any()


def _tile(picture: np.ndarray, i: int, columns: int) -> np.ndarray:
    row, column = divmod(i, columns)
    return picture[row * (Y + GAP):row * (Y + GAP) + Y, column * (X + GAP):column * (X + GAP) + X]


def _tinted(tile: np.ndarray, object_id: int) -> bool:
    """Whether the tile holds pixels of the object's outline colour."""
    return bool((np.abs(tile.astype(int) - davis_palette()[object_id]).sum(-1) <= 30).any())


def test_the_command_draws_every_plane_of_a_labels_tiff_side_by_side(tmp_path, capsys):
    truth = _squares(tmp_path)
    tifffile.imwrite(tmp_path / "truth.tif", truth, imagej=True, metadata={"axes": "TZYX"})
    assert main(["overlay", str(tmp_path / "video.tif"), str(tmp_path / "truth.tif"), "--z", "all", "-o",
                 str(tmp_path / "all.gif")]) == 0
    rows, columns = montage_grid(Z, (Y, X))
    assert f"Z planes 0-3 side by side in {rows} row(s) of {columns}, row by row" in capsys.readouterr().out
    frames, _ = read_animated_clip(tmp_path / "all.gif")
    assert len(frames) == T and frames[0].shape[:2] == (rows * (Y + GAP) - GAP, columns * (X + GAP) - GAP)
    assert (np.asarray(frames[3])[Y:Y + GAP] == 255).all()  # the line between the rows
    for z in range(Z):  # each plane's own square (id z + 1) in its own cell, none of another's
        assert _tinted(_tile(frames[3], z, columns), z + 1)
        assert not any(_tinted(_tile(frames[3], z, columns), other + 1) for other in range(Z) if other != z)
    # a list: those planes only
    assert main(["overlay", str(tmp_path / "video.tif"), str(tmp_path / "truth.tif"), "--z", "1,3", "-o",
                 str(tmp_path / "two.gif")]) == 0
    frames, _ = read_animated_clip(tmp_path / "two.gif")
    rows, columns = montage_grid(2, (Y, X))
    assert frames[0].shape[:2] == (rows * (Y + GAP) - GAP, columns * (X + GAP) - GAP)
    assert _tinted(_tile(frames[0], 0, columns), 2) and _tinted(_tile(frames[0], 1, columns), 4)


def test_propagate_through_several_planes_draws_the_planes_run(tmp_path, capsys):
    _squares(tmp_path)  # painted on planes 1 and 3
    assert _run(tmp_path, "--z", "painted", "--overlay", str(tmp_path / "run.gif")) == 0
    assert "Z planes 1, 3 side by side" in capsys.readouterr().out
    frames, _ = read_animated_clip(tmp_path / "run.gif")
    rows, columns = montage_grid(2, (Y, X))
    assert len(frames) == T and frames[0].shape[:2] == (rows * (Y + GAP) - GAP, columns * (X + GAP) - GAP)
    assert _tinted(_tile(frames[5], 0, columns), 2) and _tinted(_tile(frames[5], 1, columns), 4)


@pytest.mark.parametrize("case, words", [
    ("plane outside", "Z plane(s) 7 asked for, but the labels"),
    ("one-plane labels", "is no 3D + time TIFF stack (T, Z, Y, X): --z with several planes draws those"),
    ("other video", "but the video"),
])
def test_what_a_montage_cannot_draw_is_refused(tmp_path, capsys, case, words):
    truth = _squares(tmp_path)
    labels, video, z = tmp_path / "truth.tif", tmp_path / "video.tif", "all"
    tifffile.imwrite(labels, truth, imagej=True, metadata={"axes": "TZYX"})
    if case == "plane outside":
        z = "1,7"
    elif case == "one-plane labels":
        tifffile.imwrite(labels, truth[:, 0])
    elif case == "other video":
        video = tmp_path / "other.tif"
        tifffile.imwrite(video, np.zeros((T, 3, Y, X), np.uint8), imagej=True, metadata={"axes": "TZYX"})
    assert main(["overlay", str(video), str(labels), "--z", z, "-o", str(tmp_path / "o.gif")]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "o.gif").exists()
