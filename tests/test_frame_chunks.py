"""Stacks chunked over several frames (dask, zarr) are decoded a chunk at a time, not once per frame."""
import numpy as np
import pytest

from napari_vos.data.frames import FrameSource


class ChunkedStack:
    """A (T, Y, X) stack with zarr-like ``chunks`` that counts how many frames each read decodes."""

    def __init__(self, data: np.ndarray, frames_per_chunk: int) -> None:
        self.data, self.shape, self.dtype = data, data.shape, data.dtype
        self.chunks = (frames_per_chunk, *data.shape[1:])
        self.decoded = 0

    def __getitem__(self, index):
        part = self.data[index]
        self.decoded += part.shape[0] if isinstance(index, slice) else self.chunks[0]  # a frame costs its chunk
        return part


def test_sequential_reads_decode_each_chunk_once_and_give_the_same_frames():
    data = np.random.default_rng(0).integers(0, 4000, (10, 6, 7)).astype(np.uint16)
    stack = ChunkedStack(data, 4)
    source = FrameSource(stack)
    for i in list(range(10)) + list(range(9, -1, -1)) + [-1]:  # forward, then backward, then a negative index
        assert np.array_equal(source.raw(i), data[i])
    # forward 3 chunks (4 + 4 + 2 frames), backward the same 3 again; a frame by frame read decodes 4 per frame
    assert stack.decoded == 2 * 10


def test_dask_and_zarr_chunks_are_recognised_and_large_or_irregular_ones_are_not():
    import dask.array as da
    import zarr

    from napari_vos.data.frames import _frames_per_chunk

    v = np.zeros((20, 8, 8), np.uint16)
    assert _frames_per_chunk(da.from_array(v, chunks=(8, 4, 4)), v.shape) == 8  # last chunk of 4 frames: fine
    assert _frames_per_chunk(da.from_array(v, chunks=((5, 10, 5), 8, 8)), v.shape) == 1  # irregular
    assert _frames_per_chunk(zarr.array(v, chunks=(5, 8, 8)), v.shape) == 5
    assert _frames_per_chunk(da.from_array(v, chunks=(1, 8, 8)), v.shape) == 1
    assert _frames_per_chunk(v, v.shape) == 1  # numpy: no chunks
    huge = da.zeros((64, 4096, 4096), np.uint16, chunks=(64, 1024, 1024))  # 2 GiB a chunk of frames: not kept
    assert _frames_per_chunk(huge, huge.shape) == 1
    source = FrameSource(da.from_array(v + np.arange(20, dtype=np.uint16)[:, None, None], chunks=(8, 4, 4)))
    assert [int(source.raw(i)[0, 0]) for i in (19, 0, 9)] == [19, 0, 9]


@pytest.mark.parametrize("channels", [None, [1]])
def test_chunked_colour_stacks_pick_channels_as_before(channels):
    import dask.array as da

    v = np.random.default_rng(1).integers(0, 255, (6, 5, 4, 3)).astype(np.uint8)
    plain, chunked = FrameSource(v, channels=channels), FrameSource(da.from_array(v, chunks=(3, 5, 4, 3)),
                                                                    channels=channels)
    for i in range(6):
        assert np.array_equal(plain[i], chunked[i])
