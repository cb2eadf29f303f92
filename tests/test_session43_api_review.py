"""Session 43: a demanding scripting user's review of `napari_vos.propagate` / `Session` (plain Python,
napari's console): inputs that gave an unhelpful or misleading message, each found by trying it."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import moving_square_video

from napari_vos import propagate


def _video():
    frames, truth = moving_square_video(n_frames=4, size=(48, 64), step=2)
    return frames, truth[0]


def test_a_tifffile_zarr_store_is_named_with_how_to_open_it(tmp_path):
    """``tifffile.imread(path, aszarr=True)`` gives a zarr *store*, not an array: it was refused as
    "got shape ()" with advice about (T, Z, Y, X) stacks and channels, which it is not."""
    tifffile = pytest.importorskip("tifffile")
    frames, first = _video()
    tifffile.imwrite(tmp_path / "v.tif", frames, photometric="rgb")
    store = tifffile.imread(tmp_path / "v.tif", aszarr=True)
    try:
        with pytest.raises(ValueError, match=r"zarr store.*zarr\.open\(") as err:
            propagate(store, first, method="flow", device="cpu")
        assert "shape ()" not in str(err.value) and "(T, Z, Y, X)" not in str(err.value)
        with pytest.raises(ValueError, match=r"the labels are a zarr store"):
            propagate(frames, store, method="flow", device="cpu")
    finally:
        store.close()


def test_a_zarr_group_is_named_with_its_arrays(tmp_path):
    """A zarr group (an OME-Zarr image's levels, ``zarr.open(store)`` of a pyramid TIFF) failed inside
    zarr with "path=0 is not a string", which says nothing of what to pass."""
    zarr = pytest.importorskip("zarr")
    frames, first = _video()
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("0", shape=frames.shape, dtype=np.uint8)[:] = frames
    with pytest.raises(ValueError, match=r"zarr group.*'0'.*group\['0'\]"):
        propagate(zarr.open_group(str(tmp_path / "g.zarr"), mode="r"), first, method="flow", device="cpu")
    with pytest.raises(ValueError, match=r"the labels are a zarr group"):
        propagate(frames, group, method="flow", device="cpu")


def test_frames_too_small_say_how_small_they_are():
    """A one-pixel-high kymograph-like stack was refused as "the stack (6, 1, 96, 3) is empty or
    too small", naming no size; an empty stack likewise."""
    frames, first = _video()
    with pytest.raises(ValueError, match=r"1 pixel high.*at least 2 x 2"):
        propagate(frames[:, :1], first[:1], method="flow", device="cpu")
    with pytest.raises(ValueError, match=r"no frames"):
        propagate(frames[:0], first, method="flow", device="cpu")


def test_a_one_frame_labels_stack_for_a_longer_video_points_to_its_frame():
    """Labels of shape (1, Y, X) (one frame saved as a stack) for a 4-frame video were refused without
    saying that ``labels[0]`` is the frame's labels, as the (Y, X, 1) case does."""
    frames, first = _video()
    with pytest.raises(ValueError, match=r"labels\[0\]"):
        propagate(frames, first[None], method="flow", device="cpu")


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_checkpoint_is_the_shipped_one_as_the_messages_say(blank):
    """checkpoint="" (an empty field of a script's settings; "leave the checkpoint empty for frtm's
    shipped one", as the wrong-method error advises) was refused as "checkpoint . is a folder", though
    the method's build reads an empty checkpoint as its default."""
    from napari_vos import Session

    frames, first = _video()
    session = Session(frames, method="frtm", device="cpu", checkpoint=blank)
    assert session.checkpoint is None
    assert Session(frames, method="flow", device="cpu", checkpoint=blank).checkpoint is None  # none to take


def test_a_checkpoint_path_as_bytes_is_read_as_a_path():
    """A bytes path (os.fsencode, a path from a bytes listing) failed in pathlib with a TypeError."""
    from napari_vos import Session, weights

    path = weights.resolve(weights.default_checkpoint("frtm").name)[0]
    frames, first = _video()
    session = Session(frames, method="frtm", device="cpu", checkpoint=bytes(path))
    assert session.checkpoint == str(path)


def test_weights_lookup_of_a_blank_name_says_it_is_empty():
    from napari_vos import weights

    with pytest.raises(weights.CheckpointError, match="is empty"):
        weights.resolve("")


def test_a_dask_stack_of_unknown_length_says_how_to_make_it_known():
    """A dask array indexed by a boolean mask (frames picked by a condition) has an unknown frame count,
    (nan, Y, X): it failed with "cannot convert float NaN to integer", naming nothing."""
    da = pytest.importorskip("dask.array")
    frames, first = _video()
    picked = da.from_array(frames, chunks=(1, *frames.shape[1:]))[da.from_array(np.ones(len(frames), bool))]
    with pytest.raises(ValueError, match=r"unknown.*compute_chunk_sizes\(\)"):
        propagate(picked, first, method="flow", device="cpu")
    picked.compute_chunk_sizes()  # what the message says: then it runs
    assert propagate(picked, first, method="flow", device="cpu").labels.shape == frames.shape[:3]


def test_none_as_the_video_or_as_a_frame_s_labels_is_named():
    """propagate(None, ...) (a reader that returned nothing, an unset variable) was refused as "got shape
    ()" with advice about (T, Z, Y, X) stacks and channels; Session.annotate(0, None) as "got shape ()"."""
    from napari_vos import Session

    frames, first = _video()
    with pytest.raises(ValueError, match=r"the video is None") as err:
        propagate(None, first, method="flow", device="cpu")
    assert "(T, Z, Y, X)" not in str(err.value)
    with pytest.raises(ValueError, match=r"labels of frame 0 are None"):
        Session(frames, method="flow", device="cpu").annotate(0, None)


def test_a_four_axis_labels_stack_is_not_called_one_frame_s_labels():
    """A (T, Y, X, 1) labels stack (napari's labels saved with a channel axis) was refused as "labels of
    frame 0 must be a 2-D (Y, X) image for one frame", as if it had been taken for frame 0's labels."""
    frames, first = _video()
    stack = np.zeros((len(frames), *first.shape, 1), np.uint8)
    stack[0, ..., 0] = first
    with pytest.raises(ValueError, match=r"\(T, Y, X\).*labels\[\.\.\., 0\]"):
        propagate(frames, stack, method="flow", device="cpu")


def test_a_progress_that_cannot_be_called_is_refused_before_the_run():
    """A tqdm bar or a number given as progress= failed with Python's "'int' object is not callable"
    after the method was built and the first frame segmented."""
    from napari_vos import Session, propagate

    video = np.zeros((4, 16, 16), np.uint8)
    labels = np.zeros((16, 16), np.uint8)
    labels[4:9, 4:9] = 1
    calls = []
    with pytest.raises(TypeError, match="give a function, not 'int'"):
        propagate(video, labels, method="flow", device="cpu", progress=3)
    session = Session(video, method="flow", device="cpu")
    session.annotate(0, labels)
    with pytest.raises(TypeError, match="progress is called as progress"):
        session.run("forward", progress="bar")
    session.run("forward", progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (4, 4)  # the annotated frame counted
