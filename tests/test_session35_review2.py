"""Session 35, second review of the day's changes: a collection's "set/seq" names saved as predictions,
the image-as-labels check in both directions, out of memory while a network is built, an older last.pt's
paths not told as changed settings."""
from __future__ import annotations

from pathlib import Path, PosixPath
from types import SimpleNamespace

import numpy as np
import pytest
import torch


# -- 1. eval --save-predictions on a collection of datasets --------------------------------------------

def _davis(root: Path, sequences: tuple[str, ...]) -> None:
    from PIL import Image

    for seq in sequences:
        (root / "JPEGImages" / seq).mkdir(parents=True)
        (root / "Annotations" / seq).mkdir(parents=True)
        for t in range(3):
            frame = np.zeros((32, 32, 3), np.uint8)
            frame[8 + t:16 + t, 8:16] = 200
            Image.fromarray(frame).save(root / "JPEGImages" / seq / f"{t:05d}.jpg")
            mask = np.zeros((32, 32), np.uint8)
            mask[8 + t:16 + t, 8:16] = 1
            Image.fromarray(mask).save(root / "Annotations" / seq / f"{t:05d}.png")


def test_save_prediction_keeps_a_collections_sub_folder_names(tmp_path):
    """A collection of datasets names its sequences 'sub/seq' (readers.open_dataset); those wrote
    predictions/sub/seq/*.png before a19aa64 and are refused since."""
    from napari_vos.evaluation.runner import save_prediction

    labels = np.zeros((2, 8, 8), np.uint8)
    labels[:, 2:4, 2:4] = 1
    written = save_prediction(tmp_path / "predictions", "setA/s1", labels)
    assert written == tmp_path / "predictions" / "setA" / "s1"
    assert sorted(p.name for p in written.iterdir()) == ["00000.png", "00001.png"]


@pytest.mark.parametrize("name", ["..", ".", "", "setA/..", "../x", "/abs"])
def test_save_prediction_still_refuses_names_leaving_its_folder(tmp_path, name):
    from napari_vos.evaluation.runner import save_prediction

    (tmp_path / "predictions").mkdir()
    with pytest.raises(ValueError):
        save_prediction(tmp_path / "predictions", name, np.zeros((1, 8, 8), np.uint8))


def test_eval_save_predictions_on_a_collection_of_davis_folders(tmp_path):
    from napari_vos import cli

    torch.set_num_threads(1)
    root = tmp_path / "coll"
    _davis(root / "setA", ("s1", "s2"))
    _davis(root / "setB", ("s1",))
    out = tmp_path / "out"
    rc = cli.main(["eval", "--method", "flow", "--data", str(root), "--out", str(out), "--save-predictions",
                   "--no-plot", "-q", "--device", "cpu"])
    assert rc in (0, None)
    for name in ("setA/s1", "setA/s2", "setB"):  # a folder of one sequence lends it its own name
        assert (out / "predictions" / name / "00000.png").is_file(), name


# -- 2. the "image given as labels" check ---------------------------------------------------------------

def _smooth_12bit_frame(side: int = 128) -> np.ndarray:
    """A microscope-like uint16 frame: smooth structure over an offset, plus camera noise."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.normal(0, 1, (side, side)), 3)
    image = (image - image.min()) / (image.max() - image.min()) * 1500 + 500
    return (image + rng.normal(0, 20, image.shape)).astype(np.uint16)


def test_a_realistic_intensity_frame_given_as_labels_is_refused():
    """1088 'objects' over every pixel: an image, not labels (the shipped check needs < 4 px per id,
    which a real frame only reaches at tens of thousands of grey levels on a small frame)."""
    from napari_vos.checks import labels_look_like_an_image, painted_ids

    frame = _smooth_12bit_frame()
    ids = painted_ids(frame)
    assert len(ids) > 1000
    assert labels_look_like_an_image(frame, ids, 0) is not None


@pytest.mark.parametrize("size", [1, 3])
def test_hundreds_of_tiny_separate_objects_are_labels_not_an_image(size):
    """300 seeds of 1 px, or 300 cells of 3 px: real labels (each id one small blob on a background),
    refused since a19aa64 as 'an image rather than labels'."""
    from napari_vos.checks import labels_look_like_an_image, painted_ids

    labels = np.zeros((256, 256), np.uint16)
    for k in range(300):
        y, x = divmod(k, 20)
        labels[12 * y + 3, 12 * x + 3:12 * x + 3 + size] = k + 1
    ids = painted_ids(labels)
    assert labels_look_like_an_image(labels, ids, 0) is None


# -- 3. a real out-of-memory error while the checkpoint's network is built -----------------------------

def test_out_of_memory_while_building_a_checkpoints_network_is_not_called_an_incompatible_checkpoint():
    from napari_vos.memory_errors import is_out_of_memory
    from napari_vos.methods import agame
    from napari_vos.methods.checkpoint import load_network
    from napari_vos.weights import CheckpointError

    def network(meta):
        if torch.empty(0).device.type != "meta":  # the real build, after the meta-device probe
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate "
                               "memory: you tried to allocate 4718592 bytes. Error code 12 (Cannot allocate memory)")
        return agame._network(meta)

    with pytest.raises(Exception) as caught:
        load_network("agame-resnet18-light", "agame", "A-GAME", network)
    assert not isinstance(caught.value, CheckpointError), caught.value
    assert is_out_of_memory(caught.value)


# -- 4. resuming a last.pt whose settings hold paths ----------------------------------------------------

def test_resume_does_not_report_a_path_turned_text_as_a_changed_setting():
    """last.pt files written before a19aa64 kept a Python caller's real_dirs as Path objects; the
    settings are now JSON text, so the same folder compares unequal ('changed settings')."""
    from napari_vos.training.loop import TrainSettings, _changes, _run_settings

    settings = TrainSettings(steps=10)
    recipe = SimpleNamespace(real_dirs=[Path("/data/davis")])
    before = {**_run_settings(settings, recipe), "real_dirs": [PosixPath("/data/davis")]}  # an older last.pt's
    assert _changes(before, _run_settings(settings, recipe)) == ""


def test_an_8bit_frame_given_as_labels_is_refused_and_confluent_cells_are_not():
    from scipy import ndimage

    from napari_vos.checks import labels_look_like_an_image, painted_ids

    rng = np.random.default_rng(1)
    frame = ndimage.gaussian_filter(rng.random((128, 128)), 3)
    frame = (255 * (frame - frame.min()) / np.ptp(frame)).astype(np.uint8)  # a smooth 8-bit image
    frame[frame == 0] = 1
    assert labels_look_like_an_image(frame, painted_ids(frame), 0) is not None
    points = rng.integers(0, 128, (100, 2))
    yy, xx = np.mgrid[:128, :128]
    nearest = np.argmin((yy[..., None] - points[:, 0]) ** 2 + (xx[..., None] - points[:, 1]) ** 2, axis=-1)
    cells = (nearest + 1).astype(np.int32)  # 100 confluent cells covering every pixel, one piece each
    assert labels_look_like_an_image(cells, painted_ids(cells), 0) is None
