"""`napari_vos.console.save_ctc`: a labels layer as a Cell Tracking Challenge result folder from the
console, with the lineage of a Split divided cells layer."""
from __future__ import annotations

import numpy as np
import pytest
from _layers import dividing_cell

pytest.importorskip("napari")
from napari.components import ViewerModel  # noqa: E402


def test_save_ctc_writes_a_divided_layers_lineage_and_the_folder_passes_the_checks(tmp_path):
    import tifffile

    from napari_vos.console import save_ctc, split_divided_cells
    from napari_vos.ctc_export import check_ctc

    v = ViewerModel()
    v.add_labels(dividing_cell(), name="out")
    split_divided_cells(v, "out")
    result = save_ctc(v, "out divided", tmp_path / "01_RES")
    assert check_ctc(tmp_path / "01_RES") == []
    rows = [tuple(map(int, line.split())) for line in (tmp_path / "01_RES" / "res_track.txt").read_text().splitlines()]
    # ids 1 and 3 from frame 0 (tracks 1, 2), daughters 4 and 5 from frame 2 with parent track 2
    assert rows == [(1, 0, 5, 0), (2, 0, 1, 0), (3, 2, 5, 2), (4, 2, 5, 2)]
    assert result.divisions == 1 and result.daughters == 2
    assert tifffile.imread(tmp_path / "01_RES" / "mask005.tif").dtype == np.uint16

    plain = save_ctc(v, v.layers["out"], tmp_path / "plain")  # no lineage: the halves stay one id
    assert plain.divisions == 0 and len(plain.table) == 2
    with pytest.raises(ValueError, match="not empty"):
        save_ctc(v, "out", tmp_path / "plain")
    with pytest.raises(ValueError, match=r"not \(T, Y, X\)"):
        save_ctc(v, v.add_labels(np.ones((8, 8), np.uint8), name="flat"), tmp_path / "flat")
