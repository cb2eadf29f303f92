"""What a long, large stack costs: the labels stack grows with the frames segmented, frames and
labels are read about once each, chunked stacks are not decoded once per frame unnoticed.
Small self-made inputs; reads are counted, nothing is timed."""
from __future__ import annotations

import collections
import sys

import numpy as np
import pytest

from napari_vos import Session


def _resident_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_an_id_above_255_widens_the_labels_without_committing_the_whole_stack():
    """Session's labels start as lazily zeroed uint8; widening them for id 300 must not write every
    page of the uint16 stack (astype did: 16 GiB at annotate() for 2000 frames of 2048 x 2048)."""
    t, h, w = 64, 1024, 1024  # uint16 labels: 128 MiB
    video = np.broadcast_to(np.zeros((1, h, w), np.uint8), (t, h, w))  # a view: no memory
    labels = np.zeros((h, w), np.int32)
    labels[10:50, 10:50] = 300
    session = Session(video, method="flow", device="cpu")
    before = _resident_mib()
    session.annotate(0, labels)
    assert session.labels.dtype == np.uint16
    assert _resident_mib() - before < 32  # the annotation's frame, not the 128 MiB stack


def test_frames_written_before_the_labels_widen_are_kept():
    frames = np.zeros((5, 24, 24), np.uint8)
    frames[:, 6:14, 6:14] = 200
    first = np.zeros((24, 24), np.uint8)
    first[6:14, 6:14] = 3
    session = Session(frames, method="flow", device="cpu")
    session.annotate(0, first)
    steps = session.propagate("forward")
    next(steps), next(steps)  # frames 0 and 1 written as uint8
    later = np.zeros((24, 24), np.int32)
    later[6:14, 6:14] = 3
    later[16:20, 16:20] = 700
    session.annotate(4, later)  # widens to uint16 mid-run
    list(steps)
    assert session.labels.dtype == np.uint16
    assert (session.labels[0] == first).all() and (session.labels[1][6:14, 6:14] == 3).all()
    assert (session.labels[4] == later).all()


def test_the_command_line_reads_a_labels_stack_about_once(tmp_path, monkeypatch):
    """One pass finds the painted frames and the largest id; only the painted frame is read again
    (for the Session) and frame 0 may be peeked for the shape. It was read 2-5 times per frame."""
    tifffile = pytest.importorskip("tifffile")
    import napari_vos.data.readers as readers
    from napari_vos.cli import main

    t, h, w = 12, 32, 40
    video = np.random.default_rng(0).integers(100, 1000, (t, h, w)).astype(np.uint16)
    video[:, 8:20, 8:20] += 2000
    tifffile.imwrite(tmp_path / "video.tif", video, imagej=True, metadata={"axes": "TYX"})
    labels = np.zeros((t, h, w), np.uint16)
    labels[4, 8:20, 8:20] = 300
    tifffile.imwrite(tmp_path / "labels.tif", labels, imagej=True, metadata={"axes": "TYX"})
    reads: collections.Counter = collections.Counter()
    real = readers.open_tiff_frames

    def counting(path, z=None):
        frames = real(path, z=z)
        if "labels" in str(path):
            load = frames._loader
            frames._loader = lambda i: (reads.update([i]), load(i))[1]
        return frames

    monkeypatch.setattr(readers, "open_tiff_frames", counting)
    assert main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o",
                 str(tmp_path / "out.tif"), "--method", "flow", "--device", "cpu"]) == 0
    assert reads[4] <= 2 and all(n <= 1 for i, n in reads.items() if i not in (0, 4)), dict(reads)
    assert reads[0] <= 2
    out = tifffile.imread(tmp_path / "out.tif")
    assert out.dtype == np.uint16 and (out[4] == labels[4]).all() and (out[5][10:18, 10:18] == 300).all()


class _ChunkedStack:
    """A (T, Y, X) stack with zarr-like chunks of several frames, tiled in Y/X, that counts the frames
    it decodes (a zarr decodes whole chunks: a frame of an 8-frame chunk costs 8)."""

    def __init__(self, data: np.ndarray, frames_per_chunk: int) -> None:
        self.data, self.shape, self.dtype = data, data.shape, data.dtype
        self.chunks = (frames_per_chunk, data.shape[1] // 2, data.shape[2] // 2)
        self.decoded = 0

    def __getitem__(self, index):
        part = self.data[index]
        self.decoded += part.shape[0] if isinstance(index, slice) else self.chunks[0]
        return part


def _run_chunked(monkeypatch, budget: int) -> tuple[_ChunkedStack, Session]:
    import napari_vos.data.frames as frames

    monkeypatch.setattr(frames, "_block_budget", lambda: budget)
    data = np.random.default_rng(0).integers(0, 4000, (24, 16, 16)).astype(np.uint16)
    stack = _ChunkedStack(data, 8)
    labels = np.zeros((16, 16), np.int32)
    labels[4:10, 4:10] = 1
    session = Session(stack, method="flow", device="cpu")
    session.annotate(0, labels)
    list(session.propagate("forward"))
    return stack, session


def test_a_chunk_row_that_fits_the_budget_is_decoded_about_once(monkeypatch):
    stack, session = _run_chunked(monkeypatch, budget=2**20)
    assert stack.decoded <= 2 * 24 and not any("chunks span" in n for n in session.notes)


def test_a_chunk_row_too_large_to_keep_is_noted_with_how_to_rechunk(monkeypatch):
    """zarr's own chunks for 2000 x 2048 x 2048 uint16 are (125, 128, 128): each frame read decodes
    125 frames. Scaled down: 8-frame chunks over a 1 KiB budget."""
    from napari_vos.session import SlowChunks

    with pytest.warns(SlowChunks, match=r"span 8 frames .* rechunk"):
        stack, session = _run_chunked(monkeypatch, budget=1024)
    assert stack.decoded > 2 * 24  # the cost the note is about
    assert any("video.rechunk({0: 1})" in n for n in session.notes)


@pytest.mark.parametrize("free, budget", [(100 * 2**20, 256 * 2**20), (4 * 2**30, 2**30), (64 * 2**30, 2 * 2**30)])
def test_the_chunk_budget_is_a_quarter_of_the_free_memory_within_bounds(monkeypatch, free, budget):
    psutil = pytest.importorskip("psutil")
    from napari_vos.data.frames import _block_budget

    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("Memory", (), {"available": free})())
    assert _block_budget() == budget


def test_cosnet_embeds_its_reference_frames_once_per_run():
    """A "both" run builds a method per pass; the second takes the first's embedded references
    from the run's memo instead of reading and embedding the same frames again."""
    from napari_vos.methods.cosnet import reference_frames

    class Counting:
        def __init__(self, data: np.ndarray) -> None:
            self.data, self.shape, self.dtype = data, data.shape, data.dtype
            self.reads: collections.Counter = collections.Counter()

        def __getitem__(self, i):
            self.reads[int(i)] += 1
            return self.data[i]

    t = 12
    video = Counting(np.random.default_rng(0).integers(0, 255, (t, 32, 32, 3)).astype(np.uint8))
    session = Session(video, method="cosnet", device="cpu")
    list(session.propagate("both", start=6))
    sampled = set(np.linspace(0, t - 1, 8).astype(int))  # the frames the 8-bit range check samples
    for i in reference_frames(t, 5):
        if i != 6:  # the start frame is segmented by both passes
            assert video.reads[i] == 2 + (i in sampled), (i, dict(video.reads))


def test_a_dask_stack_in_one_chunk_along_t_is_decoded_once_or_noted(monkeypatch):
    """A dask array with one chunk along T (zarr chunks of (T, 256, 256)) decodes every frame of the
    stack for any frame read: kept whole when it fits, noted when it does not."""
    import dask.array as da

    import napari_vos.data.frames as frames
    from napari_vos.data.frames import FrameSource

    computed = collections.Counter()
    data = np.random.default_rng(0).integers(0, 4000, (12, 16, 16)).astype(np.uint16)

    def block(x):
        computed["blocks"] += 1
        return x

    stack = da.from_array(data, chunks=(12, 8, 8)).map_blocks(block, dtype=data.dtype)
    source = FrameSource(stack)
    for i in range(12):
        source.raw(i)
    assert computed["blocks"] <= 2 * 4  # each of the 4 (12, 8, 8) blocks about once, not once per frame
    monkeypatch.setattr(frames, "_block_budget", lambda: 1024)
    assert FrameSource(stack).frames_decoded_per_frame() == 12
