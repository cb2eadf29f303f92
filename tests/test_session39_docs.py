"""The user guide's §4, §5, §7 and §9 as the code does them (session 39 audit): the behaviours whose
wording the audit corrected, pinned so the guide and the code stay together."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _viewer_with_paint_on(frame, n=5, size=(48, 48)):
    from napari.components import ViewerModel

    viewer = ViewerModel()
    video = np.zeros((n, *size), np.uint8)
    for t in range(n):
        video[t, 10 + 2 * t:26 + 2 * t, 10:26] = 200
    painted = np.zeros(video.shape, np.uint8)
    painted[frame] = video[frame] > 0
    viewer.add_image(video, name="video")
    viewer.add_labels(painted, name="painted")
    return viewer


def test_unpainted_frame_no_painted_run_reaches_starts_from_the_nearest_painted():
    """§4 'annotated frame' / §7 propagate_layers: an unpainted frame starts from the nearest painted
    frame whose run reaches it, and where none does (backward from after the only painted frame), from
    the nearest painted frame all the same, with a warning, the picked frame not reached."""
    from napari_vos import propagate_layers

    viewer = _viewer_with_paint_on(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = propagate_layers(viewer, "video", "painted", method="flow", frame=3, direction="backward",
                               device="cpu")
    assert any("frame 3 is not painted; starting from painted frame 1" in str(w.message) for w in caught)
    record = out.labels.metadata["napari_vos"]
    assert record["start_frame"] == 1
    assert record["frames_segmented"] == "0-1"


def test_panel_more_options_refuse_max_side_which_has_its_own_control():
    """§9: in the panel, the full frame size is 'max working side' 0 ("full resolution"), not
    max_side=None typed under more options, which is refused; 0 reaches the engine as None."""
    from napari_vos._widgets.options import parse_options
    from napari_vos.session import Session

    with pytest.raises(ValueError, match="has its own control in the widget"):
        parse_options("max_side=None")
    assert Session(np.zeros((3, 32, 32), np.uint8), method="flow", device="cpu", max_side=0).max_side is None


def test_cells_tip_names_no_better_checkpoint_for_flow():
    """§4 'Which method?': the tip compares registered checkpoints' cells scores, so flow, which has
    none, gets no tip, while frtm on the same painting does."""
    from napari_vos.advice import method_advice

    painted = np.zeros((256, 256), np.uint16)
    for k in range(25):
        r, c = divmod(k, 5)
        painted[10 + 50 * r:31 + 50 * r, 10 + 50 * c:31 + 50 * c] = k + 1
    assert method_advice("flow", None, [painted]) is None
    tip = method_advice("frtm", None, [painted])
    if tip is None:  # a registry whose frtm checkpoint is the best on cells: nothing to compare here
        pytest.skip("no better-scored checkpoint than frtm's on the cells sample")
    assert tip.method == "rgmp" and tip.text.startswith("tip: 25 small objects")


def test_read_tiff_provenance_is_in_writers(tmp_path):
    """§4 'Saving': the record save_labels_layer writes reads back with
    napari_vos.data.writers.read_tiff_provenance(path)."""
    from napari_vos import propagate_layers
    from napari_vos.console import save_labels_layer
    from napari_vos.data.writers import read_tiff_provenance

    viewer = _viewer_with_paint_on(0)
    out = propagate_layers(viewer, "video", "painted", method="flow", device="cpu")
    save_labels_layer(out.labels, tmp_path / "labels.tif")
    record = read_tiff_provenance(tmp_path / "labels.tif")
    assert record["method"] == "flow" and record["output_layer"] == out.labels.name
