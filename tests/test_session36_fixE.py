"""Session 36 audit fixes: an output saved mid-run, a one-frame labels stack's rotate/shear/affine,
the 5-D image message's axis order and pyramid recipe, a unitless time axis reopened, and the
inclusive range notation of ``frames_kept_from_labels``."""
from __future__ import annotations

import inspect
import itertools

import numpy as np
import pytest

pytest.importorskip("napari")
from napari.components import ViewerModel  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _same_place(a, b) -> bool:
    """Whether two layers of one shape put their corner pixels at the same world points."""
    corners = np.array(list(itertools.product(*[(0, s - 1) for s in a.data.shape])), float)
    return np.allclose([a.data_to_world(p) for p in corners], [b.data_to_world(p) for p in corners])


def _has_units() -> bool:
    return "units" in inspect.signature(ViewerModel().add_labels).parameters  # napari >= 0.6


# -- eco 1: an output saved while its run fills it ------------------------------------------------------
def test_an_output_saved_mid_run_reopens_as_an_unfinished_output(tmp_path):
    """Saved before the run's end (no provenance yet), the file had no record and reopened as
    hand-painted labels whose propagated frames 'use every painted frame' took as annotations."""
    from napari_vos._widgets.labels_writer import write_labels_tiff
    from napari_vos._widgets.layer_job import LayerJob, is_output, read_annotations
    from napari_vos.console import open_labels_layer
    from napari_vos.data.writers import read_tiff_provenance

    frames = np.zeros((6, 32, 32), np.uint8)
    painted = np.zeros((6, 32, 32), np.uint8)
    for t in range(6):
        frames[t, 8:20, 2 + 2 * t:14 + 2 * t] = 200
    painted[0, 8:20, 2:14] = 1
    viewer = ViewerModel()
    viewer.add_image(frames, name="video")
    viewer.add_labels(painted, name="painted")
    job = LayerJob(viewer, "video", "painted", method="flow", device="cpu", direction="forward")
    for i, step in enumerate(job.steps()):
        job.show(step)
        if i == 2:
            break  # still going on: frames 0-2 filled
    layer = job.output
    state = {"scale": layer.scale, "metadata": layer.metadata, "name": layer.name, "translate": layer.translate}
    path = write_labels_tiff(str(tmp_path / "mid.tif"), layer.data, state)[0]
    record = read_tiff_provenance(path)
    assert record is not None and record["complete"] is False
    assert "unknown" in record["frames_segmented"]
    opened = open_labels_layer(viewer, path)
    assert is_output(opened)
    with pytest.raises(ValueError, match="earlier napari-vos output"):
        read_annotations(opened, 6, (32, 32), None)


# -- eco 2: a one-frame (1, Y, X) labels stack with a transform -----------------------------------------
_PLACEMENTS = [dict(rotate=30), dict(shear=[0.1, 0.2, 0.3]),
               dict(affine=np.array([[1, 0, 0, 0], [0, 1, 0, 5.0], [0, 0, 2.0, 0], [0, 0, 0, 1]])),
               dict(scale=(1, 0.5, 0.5), units=("s", "um", "um"))]


@pytest.mark.parametrize("placement", _PLACEMENTS, ids=["rotate", "shear", "affine", "calibrated"])
def test_a_one_frame_labels_stack_with_a_transform_opens_where_it_was(tmp_path, placement):
    """One page reads back as (Y, X): a (3, 3) rotate or 3 shear values made napari refuse the 2-D
    data ('units ... must have length ndim=3'), a (4, 4) affine was dropped, and a calibrated layer
    opened as (Y, X)."""
    from napari_vos.console import open_labels_layer, save_labels_layer

    if "units" in placement and not _has_units():
        pytest.skip("napari < 0.6 has no units")
    viewer = ViewerModel()
    data = np.zeros((1, 20, 30), np.uint8)
    data[0, 5:9, 7:12] = 1
    layer = viewer.add_labels(data, name="one", **placement)
    opened = open_labels_layer(viewer, save_labels_layer(layer, tmp_path / "one.tif"))
    assert opened.data.shape == (1, 20, 30)
    assert _same_place(opened, layer)
    assert "napari_vos" not in opened.metadata  # a placement is no run's record


def test_a_one_frame_file_written_before_layer_ndim_opens_from_its_rotate(tmp_path):
    """A file from before ``layer_ndim`` tells a (1, Y, X) layer by its 3 x 3 rotate alone, and a
    record entry that does not fit the layer's axes is left out rather than handed to napari."""
    from napari_vos.console import open_labels_layer
    from napari_vos.data.writers import write_tiff_labels

    rotate = [[1.0, 0, 0], [0, 0.6, -0.8], [0, 0.8, 0.6]]
    path = write_tiff_labels(tmp_path / "old.tif", np.ones((1, 8, 8), np.uint8),
                             provenance={"layer_rotate": rotate, "layer_affine": np.eye(3).tolist()})
    opened = open_labels_layer(ViewerModel(), path)
    assert opened.data.shape == (1, 8, 8)
    np.testing.assert_allclose(opened.rotate, rotate, atol=1e-9)


# -- eco 3: the 5-D image layer message ------------------------------------------------------------------
def _five_axis_message(**kwargs) -> str:
    from napari_vos._widgets.layer_job import LayerJob

    viewer = ViewerModel()
    viewer.add_image(name="image", **kwargs)
    viewer.add_labels(np.zeros((4, 32, 32), np.uint8), name="painted")
    with pytest.raises(ValueError) as err:
        LayerJob(viewer, "image", "painted", method="flow")
    return str(err.value)


def test_a_five_axis_multiscale_layer_gets_a_recipe_that_runs():
    """The recipe indexed layer.data, which for a pyramid is the list of levels (TypeError)."""
    base = np.zeros((4, 2, 3, 32, 32), np.uint8)
    message = _five_axis_message(data=[base, base[..., ::2, ::2]], multiscale=True)
    assert "[level[:, z] for level in layer.data], multiscale=True" in message, message
    assert "[level[:, :, z] for level in layer.data], multiscale=True" in message, message
    viewer = ViewerModel()
    layer = viewer.add_image([base, base[..., ::2, ::2]], multiscale=True)
    z = 2
    added = viewer.add_image([level[:, :, z] for level in layer.data], multiscale=True, channel_axis=1)
    assert len(added) == 2 and added[0].level_shapes[0].tolist() == [4, 32, 32]


def test_a_five_axis_layer_without_names_is_told_both_orders():
    """Only Fiji's (T, Z, C, Y, X) was named: bioio's and OME's (T, C, Z, Y, X) took the wrong index."""
    message = _five_axis_message(data=np.zeros((4, 2, 3, 32, 32), np.uint8))
    assert "viewer.add_image(layer.data[:, z], channel_axis=1) for (T, Z, C, Y, X)" in message, message
    assert "viewer.add_image(layer.data[:, :, z], channel_axis=1) for (T, C, Z, Y, X)" in message, message


def test_a_tczyx_layer_named_so_is_not_told_it_is_tzcyx():
    """napari >= 0.6 keeps the reader's axis names: a TCZYX layer gets its own index only."""
    if "axis_labels" not in inspect.signature(ViewerModel().add_image).parameters:
        pytest.skip("napari < 0.6 has no axis_labels")
    message = _five_axis_message(data=np.zeros((4, 2, 3, 32, 32), np.uint8), axis_labels=("t", "c", "z", "y", "x"))
    assert "(T, Z, C, Y, X)" not in message and "data[:, z], channel_axis=1" not in message, message
    assert "layer.data[:, :, z], channel_axis=1" in message, message


# -- docs 1: a time axis without a unit ------------------------------------------------------------------
def test_open_labels_layer_keeps_an_unitless_time_axis(tmp_path):
    """A layer scaled (600, 0.65, 0.65) without units came back with its time axis in seconds (and
    napari then stopped drawing units for every layer); an ImageJ file with a frame interval and no
    time unit still opens in seconds, as ImageJ means it."""
    import tifffile

    from napari_vos.console import open_labels_layer, save_labels_layer

    if not _has_units():
        pytest.skip("napari < 0.6 has no units")
    viewer = ViewerModel()
    labels = np.zeros((3, 16, 16), np.uint8)
    labels[:, 4:8, 4:8] = 1
    layer = viewer.add_labels(labels, scale=(600, 0.65, 0.65), name="out")
    opened = open_labels_layer(viewer, save_labels_layer(layer, tmp_path / "out.tif"))
    np.testing.assert_allclose(opened.scale, layer.scale)
    assert [str(u) for u in opened.units] == [str(u) for u in layer.units]
    assert "napari_vos" not in opened.metadata
    tifffile.imwrite(tmp_path / "fiji.tif", labels, imagej=True, metadata={"axes": "TYX", "finterval": 600})
    fiji = open_labels_layer(viewer, tmp_path / "fiji.tif")
    assert fiji.scale[0] == 600 and str(fiji.units[0]) == "second"


# -- docs 2: frames_kept_from_labels in the record's own range notation ----------------------------------
def test_frames_kept_from_labels_uses_the_records_own_range_notation(tmp_path):
    """[0, 2] (half-open: frames 0 and 1) beside frames_segmented "2-4" read as if frame 2, the
    corrected start frame, had been kept from the labels."""
    import tifffile

    from napari_vos.cli import main
    from napari_vos.data.writers import read_tiff_provenance

    rng = np.random.default_rng(0)
    video = (rng.random((5, 32, 48)) * 80).astype(np.uint8)
    video[:, 8:20, 8:20] += 150
    stack = np.zeros((5, 32, 48), np.uint16)
    stack[:, 8:20, 8:20] = 1  # an earlier output: every frame painted
    tifffile.imwrite(tmp_path / "video.tif", video, photometric="minisblack")
    tifffile.imwrite(tmp_path / "corrected.tif", stack, photometric="minisblack")
    out = tmp_path / "new.tif"
    assert main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "corrected.tif"), "-o", str(out),
                 "--frame", "2", "--direction", "forward", "--keep-other-frames", "--method", "flow",
                 "--device", "cpu"]) == 0
    record = read_tiff_provenance(out)
    assert record["frames_segmented"] == "2-4"
    assert record["frames_kept_from_labels"] == "0-1"


def test_the_widgets_frames_kept_from_labels_is_inclusive_too():
    """The widget's record wrote the same half-open [start, stop) list."""
    from napari_vos.console import propagate_layers

    frames = np.zeros((5, 32, 32), np.uint8)
    painted = np.zeros((5, 32, 32), np.uint8)
    for t in range(5):
        frames[t, 8:20, 2 + 2 * t:14 + 2 * t] = 200
        painted[t, 8:20, 2 + 2 * t:14 + 2 * t] = 1  # an earlier output, every frame
    viewer = ViewerModel()
    viewer.add_image(frames, name="video")
    viewer.add_labels(painted, name="painted")
    out = propagate_layers(viewer, "video", "painted", method="flow", frame=3, direction="backward",
                           device="cpu", all_painted=False).labels
    assert out.metadata["napari_vos"]["frames_kept_from_labels"] == "4"


def test_an_older_one_frame_file_with_a_shear_matrix_opens_with_its_three_axes(tmp_path):
    """A record of before layer_ndim whose only placement is a 3 x 3 shear matrix (as the writer keeps
    a shear given as a matrix) places a (1, Y, X) layer: the file opens with its leading axis."""
    from napari_vos.console import open_labels_layer
    from napari_vos.data.writers import write_tiff_labels

    shear = [[1.0, 0.0, 0.2], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    labels = np.zeros((1, 16, 16), np.uint16)
    labels[0, 4:8, 4:8] = 1
    path = write_tiff_labels(tmp_path / "one.tif", labels, provenance={"method": "frtm", "layer_shear": shear})
    opened = open_labels_layer(ViewerModel(), path)
    assert opened.data.shape == (1, 16, 16)
