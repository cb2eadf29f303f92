"""`propagate_layers` from napari's console, on napari's Qt-free ViewerModel (no display needed)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from _layers import first_frame_only, iou, sliding_square, viewer_with_a_nan_frame

pytest.importorskip("napari")
from napari.components import ViewerModel  # noqa: E402

from napari_vos import propagate_layers  # noqa: E402
from napari_vos._widgets.layer_job import current_frame  # noqa: E402

SCALE = (2.0, 0.5, 0.5)
TRANSLATE = (0.0, 4.0, 8.0)


TRUTH = sliding_square(6, (64, 64))[1]


@pytest.fixture
def viewer():
    v = ViewerModel()
    frames, truth = sliding_square(6, (64, 64))
    v.add_image(frames, name="video", scale=SCALE, translate=TRANSLATE, axis_labels=("t", "y", "x"))
    v.add_labels(first_frame_only(truth), name="painted", scale=SCALE, translate=TRANSLATE)
    return v


def test_propagate_layers_by_name_adds_a_following_labels_layer(viewer):
    n = len(viewer.layers)
    out = propagate_layers(viewer, "video", "painted", method="flow", device="cpu")

    assert len(viewer.layers) == n + 1 and out.maps == []
    layer = viewer.layers[-1]
    assert layer is out.labels and layer.name == "painted propagated (flow)"
    assert layer.data.shape == TRUTH.shape and layer.data.dtype == np.uint8  # the smallest type for id 1
    np.testing.assert_allclose(layer.scale, SCALE)
    np.testing.assert_allclose(layer.translate, TRANSLATE)
    assert tuple(layer.axis_labels) == ("t", "y", "x")  # the image's axis names
    for t in range(6):
        assert iou(layer.data[t] == 1, TRUTH[t] == 1) > 0.8, t
    meta = layer.metadata["napari_vos"]
    assert meta["method"] == "flow" and meta["frames_done"] == 5 and meta["annotated_frames"] == [0]
    assert out.result.labels is layer.data  # the engine wrote straight into the layer's array


def test_layers_as_objects_a_2d_annotation_and_a_backward_run(viewer):
    frame3 = TRUTH[3].copy()
    single = viewer.add_labels(frame3, name="frame 3 only")
    out = propagate_layers(viewer, viewer.layers["video"], single, method="flow", frame=3, device="cpu",
                           direction="backward", name="back")
    assert out.labels.name == "back"
    data = out.labels.data
    assert data[4:].max() == 0  # backward from 3: later frames untouched
    for t in range(4):
        assert iou(data[t] == 1, TRUTH[t] == 1) > 0.8, t
    assert out.labels.metadata["napari_vos"]["direction"] == "backward"
    assert out.labels.metadata["napari_vos"]["start_frame"] == 3


def test_maps_are_added_and_overlay_the_image(viewer):
    out = propagate_layers(viewer, "video", "painted", method="flow", device="cpu", maps=True, max_side=32)
    assert [m.name for m in out.maps] == ["painted propagated (flow) - flow_magnitude"]
    layer = out.maps[0]
    # working frame 32 x 32 for a 64 x 64 image: each map pixel covers 2 x 2 image pixels
    assert layer.data.shape == (6, 32, 32)
    np.testing.assert_allclose(layer.scale, (2.0, 1.0, 1.0))
    np.testing.assert_allclose(layer.translate, (0.0, 4.0 + 0.25, 8.0 + 0.25))
    assert layer.data[1:].max() > 0 and layer.data[0].max() == 0
    assert layer.metadata["napari_vos"]["map"] == "flow_magnitude"
    assert out.labels.data.shape == (6, 64, 64)  # labels come back at the image's size
    assert out.result.maps == {}  # the layer holds the maps; the engine kept no second copy


def test_every_painted_frame_is_an_annotation_unless_asked_otherwise(viewer):
    painted = viewer.layers["painted"]
    painted.data[5] = TRUTH[5]
    out = propagate_layers(viewer, "video", "painted", method="flow", device="cpu")
    assert out.result.annotated_frames == [0, 5]
    out = propagate_layers(viewer, "video", "painted", method="flow", device="cpu", all_painted=False)
    assert out.result.annotated_frames == [0]
    # an output layer (every frame painted) re-propagated from one corrected frame
    again = propagate_layers(viewer, "video", out.labels, method="flow", frame=0, device="cpu", all_painted=False)
    assert again.result.annotated_frames == [0]


def test_an_unpainted_start_frame_falls_back_to_the_nearest_painted_one(viewer):
    with pytest.warns(UserWarning, match="frame 4 is not painted; starting from painted frame 0"):
        out = propagate_layers(viewer, "video", "painted", method="flow", frame=4, device="cpu")
    assert out.labels.metadata["napari_vos"]["start_frame"] == 0


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.zeros((6, 32, 32), np.int32), "must match the image layer"),
        (np.zeros((6, 64, 64), np.int32), "empty on every frame"),
        (np.ones((6, 64, 64), np.int32), "nothing is left to propagate"),  # e.g. an earlier output layer
    ],
)
def test_bad_labels_raise_and_add_nothing(viewer, labels, message):
    viewer.add_labels(labels, name="bad")
    n = len(viewer.layers)
    with pytest.raises(ValueError, match=message):
        propagate_layers(viewer, "video", "bad", method="flow", device="cpu")
    assert len(viewer.layers) == n


def test_an_earlier_one_way_output_painted_on_every_frame_a_run_reaches_is_refused(viewer):
    # forward from frame 2 painted 2..5: re-run forward from 4 with every painted frame, nothing is left
    # to segment (it reported "done" with a copy); backward from 4 reaches the unpainted 0 and 1
    labels = np.zeros((6, 64, 64), np.int32)
    labels[2:, 20:30, 20:30] = 1
    viewer.add_labels(labels, name="earlier")
    n = len(viewer.layers)
    with pytest.raises(ValueError, match="every frame a forward run from 4 reaches in the labels layer 'earlier'"):
        propagate_layers(viewer, "video", "earlier", method="flow", frame=4, direction="forward", device="cpu")
    assert len(viewer.layers) == n
    out = propagate_layers(viewer, "video", "earlier", method="flow", frame=4, direction="backward", device="cpu")
    assert out.result.annotated_frames == [2, 3, 4, 5] and out.labels.data[0].any()


def test_an_earlier_output_with_an_erased_frame_is_not_taken_frame_by_frame_as_annotations(viewer):
    """Its propagated frames overrode a correction and the erased frame was segmented again."""
    first = propagate_layers(viewer, "video", "painted", method="flow", device="cpu").labels
    first.data[5] = 0  # the object left the field: erased
    first.data[3] = np.roll(first.data[3], 2, axis=1)  # and frame 3 corrected
    n = len(viewer.layers)
    with pytest.raises(ValueError, match=re.escape(f"the labels layer '{first.name}' is an earlier napari-vos output: "
                                                   "with 'use every painted frame' its 5 painted frames would all be "
                                                   "annotations")):
        propagate_layers(viewer, "video", first, method="flow", frame=3, device="cpu")
    assert len(viewer.layers) == n
    again = propagate_layers(viewer, "video", first, method="flow", frame=3, device="cpu", all_painted=False)
    assert again.result.annotated_frames == [3]


def test_an_object_painted_only_off_the_start_frame_is_named_with_its_frame_before_any_layer(viewer):
    viewer.layers["painted"].data[3, 50:54, 50:54] = 9  # a stray stroke of a new id on frame 3
    n = len(viewer.layers)
    with pytest.raises(ValueError, match=r"object id\(s\) \[9\] are not on the start frame 0 \(9 on frame 3\).*"
                                         "erase it where it is, or untick 'use every painted frame'"):
        propagate_layers(viewer, "video", "painted", method="flow", frame=0, device="cpu")
    assert len(viewer.layers) == n
    with pytest.raises(ValueError, match=r"frame 2 is not painted; starting from painted frame 0; object id"):
        propagate_layers(viewer, "video", "painted", method="flow", frame=2, direction="forward", device="cpu")


def test_wrong_names_and_kinds_are_clear_errors(viewer):
    with pytest.raises(ValueError, match="no layer named 'nope'.*labels layers: \\['painted'\\]"):
        propagate_layers(viewer, "video", "nope", method="flow")
    with pytest.raises(ValueError, match="'painted' is a Labels layer, not an image layer"):
        propagate_layers(viewer, "painted", "painted", method="flow")
    with pytest.raises(ValueError, match="direction"):
        propagate_layers(viewer, "video", "painted", method="flow", direction="sideways")
    n_layers = len(viewer.layers)
    with pytest.raises(ValueError, match=r"the image is a ndarray, not a layer: .*napari_vos.propagate\(video, labels\)"):
        propagate_layers(viewer, viewer.layers["video"].data, "painted", method="flow")
    with pytest.raises(ValueError, match="the labels is a ndarray, not a layer"):
        propagate_layers(viewer, "video", viewer.layers["painted"].data, method="flow")
    # Session keywords the layers set themselves: named, not "got multiple values for keyword argument"
    for key, value in (("rgb", False), ("keep_maps", True), ("out", np.zeros((6, 64, 64), np.uint8)),
                       ("maps_out", lambda name, shape: np.zeros(shape, np.float32))):
        with pytest.raises(ValueError, match=f"^{key} is not taken here: "):
            propagate_layers(viewer, "video", "painted", method="flow", maps=True, **{key: value})
    assert len(viewer.layers) == n_layers


def test_the_other_console_helpers_refuse_missing_names_and_other_kinds_of_layer(viewer, tmp_path):
    """measure_layers, show_tracks, split_divided_cells, save_ctc and save_labels_layer read viewer.layers[name] as
    it came: a bare KeyError for a name not there, an image's grey levels measured, tracked, split and written as
    object ids, and an AttributeError ('Labels' has no 'rgb') for a labels layer given as the image."""
    from napari_vos.console import measure_layers, save_ctc, save_labels_layer, show_tracks, split_divided_cells

    n_layers = len(viewer.layers)
    for helper in (measure_layers, show_tracks, split_divided_cells):
        with pytest.raises(ValueError, match="no layer named 'nope' in the viewer; labels layers: \\['painted'\\]"):
            helper(viewer, "nope")
        with pytest.raises(ValueError, match="layer 'video' is an Image layer, not a labels layer"):
            helper(viewer, "video")
    with pytest.raises(ValueError, match="layer 'painted' is a Labels layer, not an image layer"):
        measure_layers(viewer, "painted", "painted")  # the arguments the other way round
    with pytest.raises(ValueError, match="no layer named 'nope' in the viewer; image layers: \\['video'\\]"):
        measure_layers(viewer, "painted", "nope")
    with pytest.raises(ValueError, match="layer 'video' is an Image layer, not a labels layer"):
        save_ctc(viewer, "video", tmp_path / "01_RES")
    with pytest.raises(ValueError, match="save_labels_layer writes a Labels layer, got Image 'video'"):
        save_labels_layer(viewer.layers["video"], tmp_path / "video.tif")
    with pytest.raises(ValueError, match="got str: give the layer, viewer.layers\\[name\\]"):
        save_labels_layer("painted", tmp_path / "painted.tif")
    assert len(viewer.layers) == n_layers and not any(tmp_path.iterdir())
    assert len(measure_layers(viewer, "painted", "video").objects) == 1  # the right way round, by name


def test_a_damaged_or_mislabelled_labels_tiff_is_named_not_a_parsers_traceback(viewer, tmp_path):
    """open_labels_layer gave a bare IndexError for a TIFF with no pages and tifffile's TiffFileError for a
    GIF named .tif, where opening the same files as images says what is wrong."""
    from napari_vos.console import open_labels_layer

    (tmp_path / "pageless.tif").write_bytes(b"II*\x00" + b"\x00" * 20)
    (tmp_path / "gif.tif").write_bytes(b"GIF89a" + b"\x00" * 20)
    n_layers = len(viewer.layers)
    for name in ("pageless.tif", "gif.tif"):
        with pytest.raises(ValueError, match=f"{name} cannot be read as a TIFF \\(damaged, or not a TIFF\\?\\)"):
            open_labels_layer(viewer, tmp_path / name)
    assert len(viewer.layers) == n_layers


def test_an_engine_error_removes_the_empty_output_layer(viewer, tmp_path):
    from napari_vos.weights import CheckpointError

    n = len(viewer.layers)
    with pytest.raises(CheckpointError, match="does not exist"):
        propagate_layers(viewer, "video", "painted", method="frtm", device="cpu",
                         checkpoint=str(tmp_path / "none.safetensors"))
    assert len(viewer.layers) == n


def test_rgb_and_16_bit_images(viewer):
    rgb = np.repeat(viewer.layers["video"].data[..., None], 3, axis=-1)
    viewer.add_image(rgb, name="rgb", rgb=True, scale=SCALE)
    out = propagate_layers(viewer, "rgb", "painted", method="flow", device="cpu")
    assert out.labels.data.shape == (6, 64, 64)
    assert iou(out.labels.data[5] == 1, TRUTH[5] == 1) > 0.8
    deep = viewer.layers["video"].data.astype(np.uint16) * 200
    viewer.add_image(deep, name="16-bit")
    out = propagate_layers(viewer, "16-bit", "painted", method="flow", device="cpu")
    assert iou(out.labels.data[5] == 1, TRUTH[5] == 1) > 0.8


def test_current_frame_reads_the_slider_in_data_units(viewer):
    image = viewer.layers["video"]
    viewer.dims.set_point(0, 6.0)  # world t = 6 with scale 2 -> frame 3
    assert current_frame(viewer, image) == 3
    viewer.dims.set_point(0, 100.0)
    assert current_frame(viewer, image) == 5


def _add_pyramid(viewer):
    """The video as a two-level pyramid: level 0 at 128 x 128, level 1 the 64 x 64 original."""
    small = viewer.layers["video"].data
    big = np.repeat(np.repeat(small, 2, axis=1), 2, axis=2)
    return viewer.add_image([big, small], name="pyramid", multiscale=True, scale=SCALE, translate=TRANSLATE)


def test_a_multiscale_image_runs_on_the_level_the_labels_match(viewer):
    _add_pyramid(viewer)
    # labels painted at level 1 (64 x 64), placed over it: pixels twice the image's level-0 pixels
    level1_scale = (SCALE[0], 2 * SCALE[1], 2 * SCALE[2])
    viewer.add_labels(first_frame_only(TRUTH), name="coarse", scale=level1_scale, translate=TRANSLATE)
    out = propagate_layers(viewer, "pyramid", "coarse", method="flow", device="cpu", maps=True, max_side=32)
    assert out.labels.data.shape == (6, 64, 64)
    # the 32 x 32 map of the 64 x 64 level: each map pixel covers 2 x 2 level pixels (1 x 1 world units)
    np.testing.assert_allclose(out.maps[0].scale, (2.0, 2.0, 2.0))
    np.testing.assert_allclose(out.maps[0].translate, (0.0, 4.0 + 0.5, 8.0 + 0.5))
    np.testing.assert_allclose(out.labels.scale, level1_scale)
    np.testing.assert_allclose(out.labels.translate, TRANSLATE)
    assert iou(out.labels.data[5] == 1, TRUTH[5] == 1) > 0.8
    assert out.labels.metadata["napari_vos"]["image_level"] == 1
    # labels at full resolution: the run reads level 0 and the output has its pixels
    fine = np.repeat(np.repeat(first_frame_only(TRUTH), 2, axis=1), 2, axis=2)
    viewer.add_labels(fine, name="fine", scale=SCALE, translate=TRANSLATE)
    out = propagate_layers(viewer, "pyramid", "fine", method="flow", device="cpu")
    assert out.labels.data.shape == (6, 128, 128) and out.labels.metadata["napari_vos"]["image_level"] == 0
    np.testing.assert_allclose(out.labels.scale, SCALE)
    assert iou(out.labels.data[5] == 1, np.repeat(np.repeat(TRUTH[5], 2, 0), 2, 1) == 1) > 0.8


def test_labels_matching_no_level_of_a_multiscale_image_name_the_levels(viewer):
    _add_pyramid(viewer)
    viewer.add_labels(np.zeros((6, 100, 100), np.uint8), name="odd")
    n = len(viewer.layers)
    with pytest.raises(ValueError, match=r"one level of the multiscale image 'pyramid'.*\(6, 128, 128\).*"
                                         r"\(6, 64, 64\)"):
        propagate_layers(viewer, "pyramid", "odd", method="flow", device="cpu")
    assert len(viewer.layers) == n


def test_a_map_of_many_objects_is_one_layer_with_the_objects_on_its_first_axis(viewer):
    from napari_vos._widgets.layer_job import MAX_MAP_LAYERS, LayerJob
    from napari_vos.session import FrameResult

    cells = np.zeros((6, 64, 64), np.uint8)
    for i in range(12):  # twelve 4 x 4 cells painted on frame 0
        y, x = 4 + 10 * (i // 6), 4 + 10 * (i % 6)
        cells[0, y:y + 4, x:x + 4] = i + 1
    viewer.add_labels(cells, name="cells", scale=SCALE, translate=TRANSLATE)
    job = LayerJob(viewer, "video", "cells", method="flow", device="cpu", maps=True)
    n = len(viewer.layers)
    scores = np.arange(12 * 16 * 16, dtype=np.float32).reshape(12, 16, 16)  # 12 objects at stride 4
    job.show(FrameResult(2, np.zeros((64, 64), np.uint8), {"target_scores": scores, "one": scores[:1]}))
    assert 12 > MAX_MAP_LAYERS and len(viewer.layers) == n + 2  # not 12 + 1 layers
    stacked = job.map_layers[("target_scores", -1)]
    assert stacked.name == "cells propagated (flow) - target_scores (12 objects on the first axis)"
    assert stacked.data.shape == (12, 6, 16, 16)
    np.testing.assert_array_equal(stacked.data[:, 2], scores)
    assert not stacked.data[:, :2].any() and not stacked.data[:, 3:].any()
    # the object axis is a new leading axis; time and space overlay the image as a single map does
    single = job.map_layers[("one", 0)]
    assert single.data.shape == (6, 16, 16)
    np.testing.assert_allclose(stacked.scale, (1.0, *single.scale))
    np.testing.assert_allclose(stacked.translate, (0.0, *single.translate))
    assert stacked.contrast_limits == [0.0, float(scores.max())]
    assert stacked.metadata["napari_vos_map"]["object_ids"] == list(range(1, 13))
    assert tuple(stacked.axis_labels) == ("object", "t", "y", "x") and tuple(single.axis_labels) == ("t", "y", "x")


def test_many_small_cells_come_with_the_tip_printed_and_returned(capsys):
    from conftest import phase_cells_video

    v = ViewerModel()
    frames, labels = phase_cells_video(2, (256, 256), 9)
    v.add_image(frames, name="cells")
    v.add_labels(first_frame_only(labels), name="cell labels")
    out = propagate_layers(v, "cells", "cell labels", method="rgmp", device="cpu")
    assert out.advice is not None and out.advice.checkpoint == "rgmp-resnet18-cells"
    assert out.advice.text in capsys.readouterr().out
    assert propagate_layers(v, "cells", "cell labels", method="flow", device="cpu").advice is None


def test_channel_layers_join_the_image_or_are_refused_with_the_reason():
    from _layers import two_channel_video

    still, square, truth = two_channel_video(6)
    v = ViewerModel()
    v.add_image(still, name="phase")
    v.add_image(square, name="stain")
    v.add_labels(first_frame_only(truth), name="painted")
    out = propagate_layers(v, "phase", "painted", method="flow", device="cpu", channel_layers=["stain"])
    assert all(iou(out.labels.data[t] == 1, truth[t] == 1) > 0.8 for t in range(6))
    assert out.labels.metadata["napari_vos"]["channel_layers"] == ["stain"]
    n = len(v.layers)
    v.add_image(square[:, :32], name="cropped")
    v.add_image(np.stack([still] * 3, axis=-1), name="rgb", rgb=True)
    refused = {
        "cropped": "channel layer 'cropped' has shape \\(6, 32, 64\\) but the image is \\(6, 64, 64\\)",
        "phase": "'phase' is picked twice",
        "rgb": "must be a plain grey",
        "nope": "no layer named 'nope'",
    }
    for extra, why in refused.items():
        with pytest.raises(ValueError, match=why):
            propagate_layers(v, "phase", "painted", method="flow", device="cpu", channel_layers=[extra])
    with pytest.raises(ValueError, match="at most 2 channel layers"):
        propagate_layers(v, "phase", "painted", method="flow", device="cpu", channel_layers=["stain", "stain", "stain"])
    with pytest.raises(ValueError, match="is RGB and already has its channels"):
        propagate_layers(v, "rgb", "painted", method="flow", device="cpu", channel_layers=["stain"])
    assert len(v.layers) == n + 2  # no output layer was left behind by a refusal


def test_frames_a_one_way_run_does_not_reach_keep_the_labels_layers(viewer):
    first = propagate_layers(viewer, "video", "painted", method="flow", device="cpu").labels
    first.data = first.data.astype(np.uint16)
    first.data[1] = np.where(first.data[1] > 0, 300, 0)  # an id only uint16 holds, on a frame left as it is
    corrected = first.data[3].copy()
    out = propagate_layers(viewer, "video", first, method="flow", frame=3, direction="forward", device="cpu",
                           all_painted=False).labels
    assert out.data.dtype == np.uint16
    np.testing.assert_array_equal(out.data[:3], first.data[:3])  # before the corrected frame: as they were
    np.testing.assert_array_equal(out.data[3], corrected)
    for t in range(4, 6):
        assert iou(out.data[t] == 1, TRUTH[t] == 1) > 0.8, t
    assert out.metadata["napari_vos"]["frames_kept_from_labels"] == "0-2"
    assert out.metadata["napari_vos"]["frames_done"] == 2
    back = propagate_layers(viewer, "video", first, method="flow", frame=3, direction="backward", device="cpu",
                            all_painted=False).labels
    np.testing.assert_array_equal(back.data[4:], first.data[4:])
    assert back.metadata["napari_vos"]["frames_kept_from_labels"] == "4-5"
    both = propagate_layers(viewer, "video", first, method="flow", frame=3, device="cpu", all_painted=False).labels
    assert "frames_kept_from_labels" not in both.metadata["napari_vos"] and both.data[1].max() == 1


def test_a_run_ended_by_an_error_says_so_in_its_provenance():
    v = viewer_with_a_nan_frame(6, (64, 64), nan_at=4)
    with pytest.raises(ValueError, match="frame 4 contains NaN"):
        propagate_layers(v, "video", "painted", method="flow", device="cpu", direction="forward")
    meta = v.layers["painted propagated (flow)"].metadata["napari_vos"]
    assert meta["error"].startswith("ValueError: frame 4 contains NaN") and meta["frames_done"] == 3
    assert meta["cancelled"] is False


def test_an_unpainted_start_frame_falls_back_to_a_painted_frame_whose_run_reaches_it():
    frames, truth = sliding_square(8, (64, 64))
    v = ViewerModel()
    v.add_image(frames, name="video")
    painted = np.zeros_like(truth)
    painted[0], painted[5] = truth[0], truth[5]
    v.add_labels(painted, name="painted")
    with pytest.warns(UserWarning, match="starting from painted frame 5"):  # 0 is nearer, but backward from 0 misses 2
        out = propagate_layers(v, "video", "painted", method="flow", frame=2, direction="backward", device="cpu")
    assert out.labels.metadata["napari_vos"]["start_frame"] == 5
    with pytest.warns(UserWarning, match="starting from painted frame 0"):
        out = propagate_layers(v, "video", "painted", method="flow", frame=4, direction="forward", device="cpu")
    assert out.labels.metadata["napari_vos"]["start_frame"] == 0


def test_a_map_too_large_for_the_free_memory_is_left_out_with_a_warning(viewer, monkeypatch):
    from napari_vos._widgets import layer_job

    monkeypatch.setattr(layer_job, "_free_memory", lambda: 0)
    with pytest.warns(UserWarning, match=r"map\(s\) not shown.*flow_magnitude.*--maps DIR"):
        out = propagate_layers(viewer, "video", "painted", method="flow", device="cpu", maps=True)
    assert out.maps == [] and "flow_magnitude" in out.labels.metadata["napari_vos"]["maps_not_shown"]
    assert iou(out.labels.data[5], TRUTH[5]) > 0.5


def test_a_runs_maps_together_stay_within_the_memory_share(viewer, monkeypatch):
    """Each map was checked alone against the same free memory (arrays committed only as written):
    A-GAME's three maps of 45 % each were all shown."""
    from napari_vos._widgets import layer_job

    kwargs = dict(method="agame", device="cpu", maps=True, direction="forward", precision="fp32")
    full = propagate_layers(viewer, "video", "painted", **kwargs)
    sizes = [layer.data.nbytes for layer in full.maps]
    assert len(sizes) == 3 and len(set(sizes)) == 1
    monkeypatch.setattr(layer_job, "_free_memory", lambda: int(sizes[0] / layer_job.MAP_MEMORY_SHARE * 1.5))
    with pytest.warns(UserWarning, match=r"map\(s\) not shown"):
        out = propagate_layers(viewer, "video", "painted", **kwargs)
    assert len(out.maps) == 1 and len(out.labels.metadata["napari_vos"]["maps_not_shown"]) == 2


def test_save_labels_layer_keeps_dtype_calibration_and_provenance(viewer, tmp_path):
    from napari_vos.console import save_labels_layer
    from napari_vos.data.calibration import read_tiff_calibration
    from napari_vos.data.writers import read_tiff_provenance
    import tifffile

    viewer.layers["video"].units = ("s", "micrometer", "micrometer")
    out = propagate_layers(viewer, "video", "painted", method="flow", device="cpu").labels
    path = save_labels_layer(out, tmp_path / "labels.tif")
    back = tifffile.imread(path)
    assert back.dtype == np.uint16 and np.array_equal(back, out.data)  # the command line's TIFF type, not uint32
    cal = read_tiff_calibration(path)
    assert cal.pixel_size == (0.5, 0.5) and cal.unit == "µm" and cal.frame_interval == 2.0
    assert read_tiff_provenance(path)["output_layer"] == out.name == "painted propagated (flow)"


def test_a_saved_output_opens_again_at_its_scale_with_its_record(viewer, tmp_path):
    """The round trip a user makes the next day: save the output, open it beside the image."""
    from napari_vos.console import open_labels_layer, save_labels_layer
    import tifffile

    viewer.layers["video"].units = ("s", "micrometer", "micrometer")
    out = propagate_layers(viewer, "video", "painted", method="flow", device="cpu").labels
    path = save_labels_layer(out, tmp_path / "run.ome.tif")
    back = open_labels_layer(viewer, path)
    assert back.name == "run" and back.data.dtype == np.uint16 and np.array_equal(back.data, out.data)
    assert tuple(back.scale) == (2.0, 0.5, 0.5) == tuple(viewer.layers["video"].scale)
    assert tuple(back.translate) == tuple(viewer.layers["video"].translate) == tuple(TRANSLATE)
    assert "layer_translate" not in back.metadata["napari_vos"]
    assert [str(u) for u in back.units] == ["second", "micrometer", "micrometer"]
    assert back.metadata["napari_vos"]["output_layer"] == out.name
    # any integer labels TIFF opens, at scale 1 where it says nothing; other data are refused by name
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((12, 16), np.uint8))
    plain = open_labels_layer(viewer, tmp_path / "plain.tif", name="mine")
    assert plain.name == "mine" and tuple(plain.scale) == (1.0, 1.0) and "napari_vos" not in plain.metadata
    tifffile.imwrite(tmp_path / "float.tif", np.zeros((3, 12, 16), np.float32))
    with pytest.raises(ValueError, match=r"float32 data of shape \(3, 12, 16\), not integer"):
        open_labels_layer(viewer, tmp_path / "float.tif")
    with pytest.raises(ValueError, match="is not a file"):
        open_labels_layer(viewer, tmp_path)


def test_names_stay_readable_over_correction_rounds_and_never_pair_with_an_old_map(viewer):
    first = propagate_layers(viewer, "video", "painted", method="flow", device="cpu", maps=True)
    assert [m.name for m in first.maps] == ["painted propagated (flow) - flow_magnitude"]
    # a correction round: the earlier output re-propagated forward from frame 3
    again = propagate_layers(viewer, "video", first.labels, method="flow", device="cpu", frame=3,
                             direction="forward", all_painted=False)
    assert again.labels.name == "painted propagated (flow) [1]"
    assert again.labels.metadata["napari_vos"]["labels_layer"] == "painted propagated (flow)"
    # the first output deleted, its map kept: the next output does not take the name the map points at
    viewer.layers.remove(first.labels)
    third = propagate_layers(viewer, "video", "painted", method="flow", device="cpu", maps=True)
    assert third.labels.name == "painted propagated (flow) [2]"
    assert [m.name for m in third.maps] == ["painted propagated (flow) [2] - flow_magnitude"]
    record = third.maps[0].metadata["napari_vos"]
    assert record["output_layer"] == third.labels.name and record["started"]


def test_napari_saves_labels_through_the_plugins_writer_when_asked(tmp_path):
    """napari's save (layer.save, the save dialog) offers the napari-vos labels TIFF beside its own,
    which stays the default."""
    import tifffile

    from napari_vos.data.calibration import read_tiff_calibration
    from napari_vos.data.writers import read_tiff_provenance

    import npe2

    npe2.PluginManager.instance().discover()  # as napari's app does at start (a bare ViewerModel does not)
    v = ViewerModel()
    frames, truth = sliding_square(4, (32, 32))
    v.add_image(frames, name="video", scale=(3.0, 0.25, 0.25), units=("s", "µm", "µm"))
    v.add_labels(first_frame_only(truth), name="painted", scale=(3.0, 0.25, 0.25), units=("s", "µm", "µm"))
    out = propagate_layers(v, "video", "painted", method="flow", device="cpu").labels
    ours = out.save(str(tmp_path / "ours.tif"), plugin="napari-vos")
    assert tifffile.imread(ours[0]).dtype == np.uint16
    cal = read_tiff_calibration(ours[0])
    assert cal.pixel_size == (0.25, 0.25) and cal.unit == "µm" and cal.frame_interval == 3.0
    assert read_tiff_provenance(ours[0])["method"] == "flow"
    default = out.save(str(tmp_path / "default.tif"))
    assert read_tiff_provenance(default[0]) is None  # napari's own writer: data only


def test_save_labels_layer_writes_a_one_frame_layer_and_refuses_other_shapes_by_name(viewer, tmp_path):
    from napari_vos.console import save_labels_layer
    from napari_vos.data.calibration import read_tiff_calibration
    import tifffile

    mask = np.zeros((12, 16), np.uint8)
    mask[2:6, 3:9] = 4
    viewer.add_labels(mask, name="one frame", scale=(0.5, 0.25), units=("micrometer", "micrometer"))
    path = save_labels_layer(viewer.layers["one frame"], str(tmp_path / "one.tif"))
    assert isinstance(path, Path) and np.array_equal(np.squeeze(tifffile.imread(path)), mask)
    cal = read_tiff_calibration(path)
    assert cal.pixel_size == (0.5, 0.25) and cal.unit == "µm" and cal.frame_interval is None
    viewer.add_labels(np.zeros((2, 2, 3, 8, 8), np.uint8), name="five axes")
    with pytest.raises(ValueError, match=r"'five axes' has shape \(2, 2, 3, 8, 8\): save it with napari's own writer"):
        save_labels_layer(viewer.layers["five axes"], tmp_path / "z.tif")
    assert not (tmp_path / "z.tif").exists()


@pytest.mark.parametrize("name, is_output, base", [
    ("painted propagated (flow)", True, "painted"),
    ("painted propagated (flow) [1]", True, "painted"),  # a numbered output re-propagated
    ("video segmented (cosnet)", True, "video"),  # a zero-shot output used as labels
    ("a propagated (x) segmented (y) [3]", True, "a"),
    ("cells propagated (manual)", False, "cells propagated (manual)"),  # the user's own layer keeps its name
])
def test_an_outputs_base_name_drops_every_run_suffix_and_only_an_outputs(name, is_output, base):
    from types import SimpleNamespace

    from napari_vos._widgets.layer_job import base_name

    layer = SimpleNamespace(name=name, metadata={"napari_vos_output": True} if is_output else {})
    assert base_name(layer) == base


def test_an_image_opened_from_a_calibrated_tiff_at_scale_1_is_told_what_the_file_says(tmp_path):
    """napari's TIFF reader opens a calibrated file at scale 1, so the outputs lie at scale 1 too: the
    run says what the file holds and how to give it to the layer; a layer the user scaled says nothing."""
    import tifffile

    frames, truth = sliding_square(4, (48, 48))
    path = tmp_path / "timelapse.tif"
    tifffile.imwrite(path, frames, imagej=True, resolution=(1 / 0.65, 1 / 0.65),
                     metadata={"axes": "TYX", "unit": "um", "finterval": 600.0})
    import npe2

    npe2.PluginManager.instance().discover()  # as napari's app does at start (a bare ViewerModel does not)
    v = ViewerModel()
    image = v.open(path)[0]
    assert tuple(image.scale) == (1.0, 1.0, 1.0) and image.source.path  # napari's reader drops it
    v.add_labels(first_frame_only(truth), name="painted")
    with pytest.warns(UserWarning, match=r"timelapse\.tif gives 0\.65 x 0\.65 µm pixels, 600 s between frames.*"
                      r"viewer\.layers\['timelapse'\]\.scale = \(600, 0\.65, 0\.65\)"):
        out = propagate_layers(v, image, "painted", method="flow", device="cpu")
    assert tuple(out.labels.scale) == (1.0, 1.0, 1.0)
    image.scale = (600.0, 0.65, 0.65)
    v.layers["painted"].scale = (600.0, 0.65, 0.65)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = propagate_layers(v, image, "painted", method="flow", device="cpu")
    assert tuple(again.labels.scale) == (600.0, 0.65, 0.65)
