"""Intermediate maps (session-32 audit): placed on the grid each method declares (not a guess from
the shape), a zero-shot run finding nothing writes no empty map file, re-runs keep the maps of frames
they do not reach (by object id) and a corrected frame keeps no earlier run's map."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _disks(T, H, W, centers, r=9, move=(0, 0), seed=0):
    from _layers import coloured_disks

    return coloured_disks(T, H, W, centers, r=r, move=move, seed=seed)


def _map_record(tmp_path, session, name):
    """Run ``session`` forward with the CLI's MapTiffs as maps_out; the map file's placement record."""
    from napari_vos.data.calibration import Calibration
    from napari_vos.data.map_tiffs import MapTiffs
    from napari_vos.data.writers import read_tiff_provenance

    files = session.maps_out = MapTiffs(tmp_path / "maps", Calibration(), session)
    session.run("forward")
    files.close(session.result().provenance())
    return read_tiff_provenance(tmp_path / "maps" / f"{name}.tif")


@pytest.fixture(scope="module")
def s2s_checkpoint(tmp_path_factory):
    from napari_vos import weights
    from napari_vos.methods.s2s_network import S2SConfig, S2SNetwork
    from napari_vos.training.s2s_recipe import S2SRecipe

    torch.manual_seed(0)
    tensors, meta = S2SRecipe().export_tensors(S2SNetwork(S2SConfig(encoder="resnet18",
                                                                     widths=(32, 16, 16, 8, 8, 8))))
    path = tmp_path_factory.mktemp("s2s") / "s2s-tiny.safetensors"
    weights.save_checkpoint(path, tensors, meta)
    return str(path)


def _rvos_checkpoint(tmp_path, no_objects: bool) -> str:
    from napari_vos import weights
    from napari_vos.methods.rvos_network import RVOSConfig, RVOSNetwork
    from napari_vos.training.rvos_recipe import RVOSRecipe

    torch.manual_seed(0)
    net = RVOSNetwork(RVOSConfig(backbone="resnet18", hidden=(16, 8, 8, 8), skip=(16, 16, 8, 8), slots=4,
                                 zero_shot=True))
    if no_objects:  # every slot's "object present" score ~0: the stopping rule finds no object
        for m in net.modules():
            if hasattr(m, "stop_head"):
                torch.nn.init.zeros_(m.stop_head.weight)
                torch.nn.init.constant_(m.stop_head.bias, -10.0)
    tensors, meta = RVOSRecipe(stage="zero").export_tensors(net)
    path = tmp_path / "rvos-zero.safetensors"
    weights.save_checkpoint(path, tensors, meta)
    return str(path)


# -- 1. map_stride guesses the grid: a fitted grid near a power of two is taken for a padded one --

def test_s2s_memory_activity_is_placed_on_its_fitted_grid(tmp_path, s2s_checkpoint):
    """S2S's memory_activity is the network input (a resize of the whole working frame) / 32:
    each map pixel spans work/map working pixels. map_stride reads 2 x 3 over 100 x 160 as a padded
    stride-64 grid: the map is laid 128 x 192 px over a 100 x 160 image (CLI record and layers)."""
    from napari_vos import Session

    vid, gt = _disks(3, 100, 160, ((30, 40), (70, 120)), r=12)
    s = Session(vid, method="s2s", checkpoint=s2s_checkpoint, maps=True, device="cpu", input_area=64 * 112)
    s.annotate(0, gt[0])
    record = _map_record(tmp_path, s, "memory_activity")
    stack = s.result().maps["memory_activity"]
    h, w = stack.shape[-2:]
    assert s.work_size == (100, 160)  # the video's own size: image pixels are working pixels
    assert record["scale_in_image_pixels"] == pytest.approx([100 / h, 160 / w])  # [50, 53.3], not [64, 64]


def test_frtm_target_scores_of_a_thin_channel_are_placed_on_the_stride_16_grid(tmp_path):
    """A 320 x 40 channel: FRTM pads the width to 64 and gives 4 target-score columns at stride 16;
    map_stride(40, 4) takes them for a fitted grid of stride 10, so the score of an object at x = 29
    is drawn at x = 14.5."""
    from napari_vos import Session

    vid, gt = _disks(3, 320, 40, ((100, 29), (240, 10)), move=(2, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SmallWorkingSize
        s = Session(vid, method="frtm", maps=True, device="cpu", max_side=320)
        s.annotate(0, gt[0])
        record = _map_record(tmp_path, s, "target_scores")
    assert s.work_size == (320, 40)
    assert record["scale_in_image_pixels"] == pytest.approx([16.0, 16.0])
    assert record["translate_in_image_pixels"] == pytest.approx([7.5, 7.5])


# -- 2. --maps with a zero-shot run that finds no object ----------------------------------------

def test_maps_to_tiff_of_a_zero_shot_run_that_finds_no_object(tmp_path):
    """RVOS zero-shot finding no object gives (0, h, w) maps; the run without --maps writes empty
    labels, with --maps (MapTiffs) it fails with 'ImageJ hyperstack shape and axes do not match'."""
    from napari_vos import Session

    ckpt = _rvos_checkpoint(tmp_path, no_objects=True)
    video = (np.random.default_rng(0).random((3, 64, 96)) * 255).astype(np.uint8)
    from napari_vos.data.calibration import Calibration
    from napari_vos.data.map_tiffs import MapTiffs

    s2 = Session(video, method="rvos", checkpoint=ckpt, zero_shot=True, maps=True, device="cpu",
                 input_size=(64, 96))
    s2.maps_out = MapTiffs(tmp_path / "maps", Calibration(), s2)
    result = s2.run("forward")  # raises ValueError on the current code
    assert result.object_ids == []
    assert not np.asarray(result.labels).any()


# -- 3. a zero-shot "both" run whose passes find different numbers of objects ---------------------

def test_zero_shot_both_keeps_the_forward_pass_maps(tmp_path, monkeypatch):
    """Forward from frame 2 finds 2 slots, the backward pass (a fresh run) 1: the backward pass makes
    a new map stack, and the frames the forward pass segmented (2-4) lose their maps (zeros) while
    their labels stay; with maps_out the same map's array is asked for twice (the CLI's TIFF is
    replaced)."""
    import napari_vos.methods.rvos as rvos
    from napari_vos import Session

    counts = iter([2, 1])
    monkeypatch.setattr(rvos, "count_objects", lambda scores, threshold=0.5: next(counts))
    ckpt = _rvos_checkpoint(tmp_path, no_objects=False)
    video = (np.random.default_rng(0).random((5, 64, 96)) * 255).astype(np.uint8)
    asked = []

    def make(name, shape):
        asked.append((name, shape))
        return np.zeros(shape, np.float32)

    s = Session(video, method="rvos", checkpoint=ckpt, zero_shot=True, maps=True, maps_out=make,
                device="cpu", input_size=(64, 96))
    result = s.run("both", start=2)
    stack = np.asarray(result.maps["convlstm_output"])
    assert np.asarray(result.labels)[2:].any()
    # the backward pass found one object, the forward pass two: object 1's maps of frames 2-4 are kept
    assert all(stack[t].any() for t in range(2, 5)), "the forward pass's maps were dropped"
    assert [shape[1] for _, shape in asked] == [2, 1]


# -- 4. re-runs of one Session ---------------------------------------------------------------------

def _two_object_video():
    return _disks(6, 90, 150, ((30, 40), (62, 112)), r=12, move=(1, -1))


def test_a_corrected_frame_has_no_stale_map():
    """Docs: frames the run did not segment (the annotated ones) are zeros. After a correction at
    frame 3 and a forward re-run from it, frame 3's map is still the first run's prediction."""
    from napari_vos import Session

    vid, gt = _two_object_video()
    one = (gt == 1).astype(np.uint8)
    s = Session(vid, method="agame", maps=True, device="cpu", max_side=150)
    s.annotate(0, one[0])
    s.run("forward")
    s.annotate(3, one[3])
    result = s.run("forward", start=3)
    assert not np.asarray(result.maps["target_posterior"])[3].any()


def test_a_rerun_with_a_new_object_keeps_the_maps_of_frames_it_does_not_reach():
    """User guide §7: running the same Session again writes into result.maps, frames a one-way
    re-run does not reach keep the earlier run's output. A correction that adds an object makes a
    new map stack: frames 1-2 keep their labels but their maps become zeros."""
    from napari_vos import Session

    vid, gt = _two_object_video()
    one = (gt == 1).astype(np.uint8)
    s = Session(vid, method="agame", maps=True, device="cpu", max_side=150)
    s.annotate(0, one[0])
    first = {k: np.array(v) for k, v in s.run("forward").maps.items()}
    s.annotate(3, gt[3])  # object 2 appears in the correction
    result = s.run("forward", start=3)
    stack = np.asarray(result.maps["target_posterior"])
    assert stack[1:3].any(), "frames 1-2 (not reached by the re-run) lost their maps"
    ids = result.object_ids
    np.testing.assert_array_equal(stack[1:3, ids.index(1)], first["target_posterior"][1:3, 0])


def test_every_method_declares_the_grid_of_each_of_its_maps():
    """map_placement guesses only for a map no method declares; every shipped method declares all."""
    from napari_vos.methods import registry

    for name in registry.METHODS:
        cls = registry.method_class(name)
        assert set(cls.map_grids) == set(cls.map_names), name
        assert all(g is None or (isinstance(g, int) and g >= 1) for g in cls.map_grids.values()), name
