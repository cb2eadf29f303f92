"""Session 35, napari layers as scientists have them: time and space units (napari 0.6 on draws every
layer in the viewer's common units), zarr 3 labels stacks (no len()), a pyramid's data given to
propagate(), a (T, 1, Y, X) OME layer, and axis names kept through save and open."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from _layers import first_frame_only, sliding_square

pytest.importorskip("napari")
from napari.components import ViewerModel  # noqa: E402

from napari_vos import propagate, propagate_layers  # noqa: E402
from napari_vos._widgets.layer_job import current_frame  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _notes(viewer, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        propagate_layers(viewer, "video", "painted", method="flow", **kw)
    return [str(w.message) for w in caught]


def _placed_notes(image_scale, image_units, labels_scale, labels_units):
    """The notes of a flow run on a sliding square whose image and painted labels are placed as given."""
    frames, truth = sliding_square(5, (64, 64))
    viewer = ViewerModel()
    viewer.add_image(frames, name="video", scale=image_scale, units=image_units)
    viewer.add_labels(first_frame_only(truth), name="painted", scale=labels_scale, units=labels_units)
    return _notes(viewer)


# -- 1. units: napari >= 0.6 draws every layer in the viewer's common units -------------------------
def test_the_annotated_frame_is_the_image_frame_napari_shows_when_layers_use_other_time_units():
    """Image timed in minutes, another layer in seconds: napari puts the slider in seconds and shows
    image frame 1 at 30 s; current_frame read 30 as 30 minutes (frame 60, clamped to 5)."""
    frames, _ = sliding_square(6, (64, 64))
    viewer = ViewerModel()
    image = viewer.add_image(frames, name="video", scale=(0.5, 1, 1), units=("min", "pixel", "pixel"))
    viewer.add_points(np.array([[30.0, 10, 10]]), name="spots", units=("s", "pixel", "pixel"))
    viewer.dims.set_point(0, 30.0)
    shown = int(round(image._slicing_state.data_slice.point[0]))  # the frame napari draws
    assert shown == 1
    assert current_frame(viewer, image) == shown


def test_labels_in_other_but_equivalent_spatial_units_get_no_misplacement_note():
    """Image 0.1 um pixels, labels 100 nm pixels: napari draws them over each other; the note said
    they lie elsewhere and told the user to give the labels the image's numbers (which would move
    them 1000-fold)."""
    notes = _placed_notes((1, 0.1, 0.1), ("s", "um", "um"), (1, 100, 100), ("s", "nm", "nm"))
    assert not [n for n in notes if "drawn at scale" in n]


def test_labels_timed_in_seconds_over_an_image_timed_in_minutes_get_no_time_note():
    notes = _placed_notes((0.5, 1, 1), ("min", "pixel", "pixel"), (30, 1, 1), ("s", "pixel", "pixel"))
    assert not [n for n in notes if "time scale" in n]


def test_labels_with_the_images_numbers_in_other_units_are_noted():
    """Same numbers, nm instead of um: napari draws the labels 1000x smaller than the image, yet
    their pixels are paired with the image's without a word."""
    notes = _placed_notes((1, 0.1, 0.1), ("s", "um", "um"), (1, 0.1, 0.1), ("s", "nm", "nm"))
    assert any("painted" in n for n in notes)


# -- 2. a zarr (v3) labels stack: zarr.Array has no len() ------------------------------------------
@pytest.fixture
def zarr_labels(tmp_path):
    zarr = pytest.importorskip("zarr")
    frames, truth = sliding_square(5, (64, 64))
    z = zarr.open_array(str(tmp_path / "labels.zarr"), mode="w", shape=truth.shape, dtype=np.int32,
                        chunks=(1, 64, 64))
    z[:] = first_frame_only(truth)
    return frames, z


def test_propagate_takes_a_zarr_labels_stack(zarr_labels):
    frames, labels = zarr_labels
    result = propagate(frames, labels, method="flow")
    assert all(np.asarray(result.labels[t]).any() for t in range(5))


def test_propagate_layers_takes_a_zarr_backed_labels_layer(zarr_labels):
    frames, labels = zarr_labels
    viewer = ViewerModel()
    viewer.add_image(frames, name="video")
    viewer.add_labels(labels, name="painted")
    out = propagate_layers(viewer, "video", "painted", method="flow")
    assert all(out.labels.data[t].any() for t in range(5))


def test_write_tiff_labels_takes_a_zarr_stack(zarr_labels, tmp_path):
    from napari_vos.data.writers import write_tiff_labels

    _, labels = zarr_labels
    path = write_tiff_labels(tmp_path / "out.tif", labels)
    assert Path(path).is_file()


# -- 3. a multiscale layer's data handed to propagate() --------------------------------------------
def test_a_multiscale_layers_data_is_named_as_a_pyramid_not_a_frame_size_riddle():
    frames, truth = sliding_square(4, (128, 128))
    viewer = ViewerModel()
    image = viewer.add_image([frames, frames[:, ::2, ::2].copy()], name="video", multiscale=True)
    with pytest.raises(ValueError) as err:
        propagate(image.data, first_frame_only(truth), method="flow")
    message = str(err.value)
    assert "multiscale" in message or "pyramid" in message or "level" in message, message


# -- 4. a time-lapse with a singleton axis, as OME readers give it -----------------------------------
def test_a_multiscale_refusal_prints_plain_numbers():
    frames, _ = sliding_square(4, (128, 128))
    viewer = ViewerModel()
    f4 = frames[:, None]
    viewer.add_image([f4, f4[..., ::2, ::2].copy()], name="video", multiscale=True)
    viewer.add_labels(np.zeros((4, 128, 128), np.uint8), name="painted")
    with pytest.raises(ValueError) as err:
        propagate_layers(viewer, "video", "painted", method="flow")
    assert "np.int64" not in str(err.value), str(err.value)


def test_a_singleton_axis_is_named_as_one():
    """A (T, 1, Y, X) layer (OME-Zarr's z=1, napari-omero's kept singletons) is a 2-D time-lapse; the
    refusal talked of Z planes and projections without saying the axis has length 1."""
    frames, truth = sliding_square(4, (64, 64))
    viewer = ViewerModel()
    viewer.add_image(frames[:, None], name="video")
    viewer.add_labels(first_frame_only(truth)[:, None], name="painted")
    try:
        propagate_layers(viewer, "video", "painted", method="flow")
    except ValueError as err:  # refusing is acceptable if it says what the axis is and how to drop it
        assert "length 1" in str(err) or "[:, 0]" in str(err), str(err)


def test_axis_names_survive_save_and_open(tmp_path):
    from napari_vos.console import open_labels_layer, save_labels_layer

    viewer = ViewerModel()
    layer = viewer.add_labels(np.ones((3, 16, 16), np.uint8), name="out", axis_labels=("t", "y", "x"))
    path = save_labels_layer(layer, tmp_path / "out.tif")
    assert tuple(open_labels_layer(viewer, path).axis_labels) == ("t", "y", "x")
    plain = viewer.add_labels(np.ones((3, 16, 16), np.uint8), name="plain")  # napari's numbers are not recorded
    path = save_labels_layer(plain, tmp_path / "plain.tif")
    from napari_vos.data.writers import read_tiff_provenance

    assert "layer_axis_labels" not in (read_tiff_provenance(path) or {})
