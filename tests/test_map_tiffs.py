"""Maps kept outside memory: Session(maps_out=...), memory-mapped TIFF maps and their final record."""
import json

import numpy as np
import pytest
import tifffile

from napari_vos.data import writers
from napari_vos.data.calibration import Calibration, read_tiff_calibration
from napari_vos.data.map_tiffs import UNCLOSED, MapTiffs
from napari_vos.data.writers import open_tiff_map, read_tiff_provenance, rewrite_tiff_provenance
from napari_vos.session import Session


def _session(square_video, **options):
    frames, truth = square_video
    session = Session(frames, method="flow", device="cpu", maps=True, **options)
    session.annotate(0, truth[0])
    return session


def test_maps_out_receives_each_map_and_gets_what_memory_would_hold(square_video, tmp_path):
    """A memmap from ``maps_out`` holds exactly the maps an in-memory run keeps, and is the Result's."""
    made = {}

    def on_disk(name, shape):
        made[name] = np.lib.format.open_memmap(tmp_path / f"{name}.npy", mode="w+", dtype=np.float32, shape=shape)
        return made[name]

    in_memory, on_file = _session(square_video), _session(square_video, maps_out=on_disk)
    for s in (in_memory, on_file):
        list(s.propagate("both"))
    assert set(made) == {"flow_magnitude"} and on_file.result().maps["flow_magnitude"] is made["flow_magnitude"]
    np.testing.assert_array_equal(made["flow_magnitude"], in_memory.maps["flow_magnitude"])
    assert np.abs(made["flow_magnitude"][1:]).max() > 0


def test_maps_out_misuse_is_named(square_video):
    with pytest.raises(ValueError, match="maps_out must return a writable array of shape"):
        list(_session(square_video, maps_out=lambda name, shape: np.zeros(shape[1:], np.float32)).propagate())
    with pytest.raises(ValueError, match="maps_out .* needs maps=True and keep_maps=True"):
        frames, truth = square_video
        s = Session(frames, method="flow", device="cpu", maps_out=lambda name, shape: np.zeros(shape))
        s.annotate(0, truth[0])
        list(s.propagate())
    with pytest.raises(ValueError, match="needs maps=True and keep_maps=True"):
        list(_session(square_video, keep_maps=False, maps_out=lambda name, shape: np.zeros(shape)).propagate())


@pytest.mark.parametrize("bigtiff", [False, True])
def test_open_map_file_is_written_in_place_and_its_record_replaced(tmp_path, monkeypatch, bigtiff):
    """ImageJ (and, from `BIGTIFF_FROM` on, BigTIFF) map files are filled frame by frame through the
    memory map; the record can be replaced by a longer one and the pixels stay."""
    if bigtiff:
        monkeypatch.setattr(writers, "BIGTIFF_FROM", 1024)
    path = tmp_path / "m.tif"
    cal = Calibration(pixel_size=(0.5, 0.25), unit="µm")
    stack = open_tiff_map(path, (4, 2, 6, 8), cal, {"map": "m", "complete": False})
    assert stack.shape == (4, 2, 6, 8) and not stack.any()
    stack[2] = 1.5
    stack.flush()
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej is not bigtiff and tif.is_bigtiff is bigtiff
    final = {"map": "m", "frames_segmented": "0-2", "note": "x" * 300}
    rewrite_tiff_provenance(path, final)
    assert read_tiff_provenance(path) == final
    data = tifffile.imread(path)
    assert data.shape == (4, 2, 6, 8) and (data[2] == 1.5).all() and not data[[0, 1, 3]].any()
    assert read_tiff_calibration(path).pixel_size == pytest.approx((0.5, 0.25), rel=1e-3)
    with pytest.raises(ValueError, match=r"\(T, h, w\) or \(T, K, h, w\)"):
        open_tiff_map(tmp_path / "bad.tif", (6, 8))


def test_write_tiff_map_takes_a_file_backed_stack_frame_by_frame(tmp_path):
    source = np.lib.format.open_memmap(tmp_path / "s.npy", mode="w+", dtype=np.float64, shape=(3, 5, 7))
    source[:] = np.arange(3 * 5 * 7).reshape(3, 5, 7)
    path = writers.write_tiff_map(tmp_path / "m.tif", source, None, {"map": "s"})
    np.testing.assert_array_equal(tifffile.imread(path), source.astype(np.float32))
    assert read_tiff_provenance(path) == {"map": "s"}


def test_map_files_hold_finished_frames_before_the_run_ends(square_video, tmp_path):
    """While the run goes on (or after it died without closing them), the files hold every finished
    frame and say they were not closed; `close` gives them the final record and their placement."""
    frames, truth = square_video
    session = _session(square_video, max_side=48)  # 64 x 96 frames at a 32 x 48 working size
    files = session.maps_out = MapTiffs(tmp_path / "maps", Calibration(pixel_size=(2.0, 2.0), unit="µm"), session)
    run = session.propagate("forward")
    for _ in range(4):  # the annotated frame and frames 1-3
        next(run)
    (path,) = files.paths
    assert isinstance(session.maps["flow_magnitude"], np.memmap)
    kept = session.maps["flow_magnitude"]  # (T, 1, h, w); tifffile squeezes the single object
    on_disk = tifffile.imread(path).reshape(kept.shape)  # another handle, no flush: what a killed run leaves
    np.testing.assert_array_equal(on_disk[:4], kept[:4])
    assert on_disk[1:4].any() and not on_disk[4:].any()
    record = read_tiff_provenance(path)
    assert record["complete"] is False and record["frames_segmented"] == UNCLOSED and record["method"] == "flow"
    list(run)
    assert files.close({"method": "flow", "frames_done": len(frames) - 1}) == [path]
    record = read_tiff_provenance(path)
    scale = record.pop("scale_in_image_pixels")
    assert record == {"method": "flow", "frames_done": len(frames) - 1, "map": "flow_magnitude",
                      "translate_in_image_pixels": record["translate_in_image_pixels"]}
    h, w = tifffile.imread(path).shape[-2:]
    assert scale == pytest.approx([64 / h, 96 / w])
    assert read_tiff_calibration(path).pixel_size == pytest.approx((2.0 * 64 / h, 2.0 * 96 / w), rel=1e-3)
    assert json.loads(json.dumps(record))  # a plain record
