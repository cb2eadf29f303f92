"""Fidelity to the papers (session 36 audits): what each method's paper asks for, and what the
engine promises every method (no painted object lost in a resize, float32 recurrent state)."""
from __future__ import annotations

import pytest
import torch

from napari_vos.methods.frtm_target import TargetModel, TargetModelSettings, residual_weights
from napari_vos.methods.rvos import RVOS
from napari_vos.methods.rvos_network import RVOSConfig, RVOSNetwork
from napari_vos.nn.sample_memory import SampleMemory

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = RVOSConfig(backbone="resnet18", hidden=(16, 8, 8, 8), skip=(16, 16, 8, 8), slots=4)
TINY_ZERO = RVOSConfig(backbone="resnet18", hidden=(16, 8, 8, 8), skip=(16, 16, 8, 8), slots=4, zero_shot=True)


def _thin_and_small_objects(h: int = 256, w: int = 256) -> torch.Tensor:
    """Three painted objects at the working size: a square, a 2-pixel-wide filament, a 2x2 spot."""
    obj = torch.zeros(3, h, w)
    obj[0, 40:120, 40:120] = 1  # 6400 px
    obj[1, 150:152, 20:220] = 1  # 400 px, 2 px wide
    obj[2, 200:202, 200:202] = 1  # 4 px
    return obj


# -- RVOS's own resize to the network input empties thin / small painted objects ---------------
def test_one_shot_start_keeps_every_painted_object_in_s_t_minus_1():
    """The engine keeps every painted object through its resize to the working size
    (nn/aggregation.object_masks: values of exactly 0.5 kept, an emptied object keeps one pixel,
    ObjectsUnderAPixel). RVOS resizes once more to its input size (256 x 448 area by default) and
    thresholds at > 0.5, so a thin or small object becomes an all-zero S_{t-1,i}: the network is told
    the object is nowhere."""
    torch.manual_seed(0)
    method = RVOS(RVOSNetwork(TINY).eval(), input_size=(64, 64))  # frame 256 x 256 -> network 64 x 64
    objects = _thin_and_small_objects()
    method.start(torch.rand(3, 256, 256), objects)
    painted = objects.sum((1, 2))
    given = method.previous[0].flatten(1).amax(1)
    assert (painted > 0).all()
    assert (given > 0).all(), f"objects given to RVOS as empty S_(t-1,i): {(given == 0).nonzero().flatten().tolist()}"


def test_zero_shot_matching_sees_every_painted_object():
    """Zero-shot matching thresholds the object masks the same way: a thin object becomes empty and is
    matched by the 'two empty masks have IoU 1' rule to whatever slot happens to be empty."""
    from napari_vos.methods import rvos as rvos_module

    seen = {}
    real = rvos_module.match_slots

    def spy(slot_probs, objects):
        seen["objects"] = objects.clone()
        return real(slot_probs, objects)

    torch.manual_seed(0)
    method = RVOS(RVOSNetwork(TINY_ZERO).eval(), input_size=(64, 64))
    rvos_module.match_slots = spy
    try:
        method.start(torch.rand(3, 256, 256), _thin_and_small_objects())
    finally:
        rvos_module.match_slots = real
    per_object = seen["objects"].flatten(1).amax(1)
    assert (per_object > 0).all(), f"objects matched as empty masks: {(per_object == 0).nonzero().flatten().tolist()}"


# -- RVOS's cell state is rounded to half precision by the state merge -------------------------
def test_rvos_cell_state_reaches_the_cell_in_float32_under_bf16_autocast():
    """docs/architecture.md ("Precision"): the ConvLSTM cell state of S2S and RVOS is kept in float32 under
    autocast. RVOS's StateMerge runs its 1x1 convolution on c under the autocast, so the cell receives
    a bf16 (fp16 on CUDA) c at every object and every frame."""
    torch.manual_seed(0)
    net = RVOSNetwork(TINY).eval()
    masks = torch.zeros(1, 2, 64, 96)
    masks[0, 0, 10:30, 10:40] = 1
    masks[0, 1, 30:50, 50:80] = 1
    received = []

    def record(_module, args):
        _x, state = args
        received.append(state[1].dtype)

    hooks = [cell.register_forward_pre_hook(record) for cell in net.decoder.cells]
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            feats = net.encode(torch.rand(1, 3, 64, 96))
            out = net.frame(feats, masks, None)
            received.clear()
            net.frame(feats, masks, out.states)  # frame 1: every state comes through the merge
    finally:
        for h in hooks:
            h.remove()
    assert received and all(d == torch.float32 for d in received), f"cell state dtypes given to the cells: {set(received)}"


def test_s2s_initial_states_see_every_painted_object():
    """S2S++'s initializer is given each object's mask at the network's input size: a 2-pixel line
    and a 2 x 2 spot painted on a 256 x 256 frame run at 64 x 64 must reach it as masks, not zeros."""
    from napari_vos.methods.s2s import S2S
    from napari_vos.methods.s2s_network import S2SConfig, S2SNetwork

    torch.manual_seed(0)
    net = S2SNetwork(S2SConfig(encoder="resnet18", widths=(32, 16, 16, 8, 8, 8))).eval()
    given = []
    real = net.initial_states
    net.initial_states = lambda img, masks: (given.append(masks.clone()), real(img, masks))[1]
    method = S2S(net, input_size=(64, 64))
    method.start(torch.rand(3, 256, 256), _thin_and_small_objects())
    per_object = torch.cat(given).flatten(1).amax(1)
    assert (per_object > 0).all(), f"objects given to S2S as empty masks: {(per_object == 0).nonzero().flatten().tolist()}"


def test_masks_keeping_objects_follows_the_engine_rule():
    from napari_vos.nn.aggregation import masks_keeping_objects

    resized = torch.tensor([[[0.5, 0.2], [0.0, 0.1]], [[0.1, 0.3], [0.3, 0.0]], [[0.9, 0.4], [0.0, 0.0]],
                            [[0.0, 0.0], [0.0, 0.0]]])
    kept = masks_keeping_objects(resized)
    assert kept.tolist() == [[[1, 0], [0, 0]], [[0, 1], [1, 0]], [[1, 0], [0, 0]], [[0, 0], [0, 0]]]


# -- OSVOS-AT's VGG-16 ("paper") configuration has its own map strides (2, 4, 8, 16) -----------------------
def _vgg_osvos_at():
    from napari_vos.methods.osvos_at import OSVOSAT
    from napari_vos.methods.osvos_at_net import CONFIGS, OSVOSATNetwork

    torch.manual_seed(0)
    return OSVOSAT(OSVOSATNetwork(CONFIGS["paper"]), finetune_iterations=0, finetune_augment=False)


def test_osvos_at_paper_config_attention_maps_are_placed_on_their_own_grid():
    from napari_vos.data.map_geometry import map_placement

    method = _vgg_osvos_at()
    image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    objects = torch.zeros(1, 64, 64)
    objects[0, 10:30, 10:30] = 1
    method.start(image, objects)
    for name, a in method.step(image).maps.items():
        grid = method.map_grids[name]
        scale, _ = map_placement(tuple(a.shape[-2:]), (64, 64), (64, 64), (1, 1, 1), (0, 0, 0), grid)
        covered = (a.shape[-2] * scale[1], a.shape[-1] * scale[2])
        assert covered == (64.0, 64.0), f"{name}: map {tuple(a.shape[-2:])} placed with grid {grid} covers {covered}"


def test_a_session_places_maps_by_the_built_methods_grids(monkeypatch, tmp_path):
    """The map TIFFs (and the widget's map layers) read the grids of the method the Session built, not its class's."""
    import numpy as np

    from napari_vos import Session
    from napari_vos.data.map_tiffs import MapTiffs
    from napari_vos.data.calibration import Calibration
    from napari_vos.methods import registry

    monkeypatch.setattr(registry, "create", lambda *a, **k: _vgg_osvos_at())
    video = np.random.default_rng(0).integers(0, 255, (3, 64, 64), dtype=np.uint8)
    labels = np.zeros((64, 64), np.uint8)
    labels[10:30, 10:30] = 1
    maps = None

    def maps_out(name, shape):
        return maps(name, shape)

    session = Session(video, method="osvos_at", device="cpu", max_side=None, min_side=None, maps=True,
                      maps_out=maps_out)
    maps = MapTiffs(tmp_path, Calibration(), session)
    session.annotate(0, labels)
    session.run("forward")
    assert session.map_grids == {"attention_1": 2, "attention_2": 4, "attention_3": 8, "attention_4": 16}
    placement = {path.stem: info for path, info, _ in maps._files.values()}
    assert placement["attention_1"]["scale_in_image_pixels"] == [2.0, 2.0]
    assert placement["attention_4"]["scale_in_image_pixels"] == [16.0, 16.0]


# -- RGMP eq. (1): the background is the merged foreground's network output subtracted from 1 --------------
def _rgmp(**options):
    from napari_vos.methods.rgmp import RGMP
    from napari_vos.methods.rgmp_network import CONFIGS, RGMPNetwork

    torch.manual_seed(0)
    return RGMP(RGMPNetwork(CONFIGS["light"]).eval(), scales=[1.0], **options)


def _two_objects(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))
    objects = torch.zeros(2, size, size)
    objects[0, 10:30, 10:30] = 1
    objects[1, 10:30, 30:50] = 1
    return image, objects


def _decoder_entries(method, image, objects) -> list[int]:
    entries: list[int] = []
    segment = method.network.segment
    method.network.segment = lambda ref, img, guidance: (entries.append(int(guidance.shape[0])),
                                                         segment(ref, img, guidance))[1]
    method.start(image, objects)
    entries.clear()
    method.step(image)
    return entries


def test_rgmp_runs_one_merged_foreground_pass_for_the_background():
    image, objects = _two_objects()
    method = _rgmp(window="full", background="merged")
    assert sum(_decoder_entries(method, image, objects)) == 3  # K objects + the merged foreground
    step = method.step(image)
    assert step.background is not None and tuple(step.background.shape) == (64, 64)
    assert bool(((step.background >= 0) & (step.background <= 1)).all())


@pytest.mark.parametrize("options, k", [({"window": "full"}, 2), ({"window": "full", "background": "merged"}, 1),
                                        ({"window": "objects", "background": "merged"}, 2)])
def test_rgmp_runs_no_merged_pass_for_one_object_windows_or_the_product(options, k):
    image, objects = _two_objects()
    method = _rgmp(**options)
    assert sum(_decoder_entries(method, image, objects[:k])) == k
    assert method.step(image).background is None


def test_rgmp_background_option_is_checked():
    with pytest.raises(ValueError, match="background must be 'merged' or 'product'"):
        _rgmp(background="union")


def test_soft_aggregate_takes_a_given_background_on_both_paths():
    from napari_vos.nn import aggregation

    probs = torch.zeros(9, 40, 40)
    for k in range(9):
        probs[k, 4 * k:4 * k + 4, 4 * k:4 * k + 6] = 0.6
    background = torch.full((40, 40), 0.9)
    dense = aggregation._dense_aggregate(probs, background)
    sparse = aggregation.soft_aggregate(probs, background=background)
    assert torch.allclose(dense, sparse, atol=1e-6)
    # a pixel of object 0: odds 1.5 against the given background's 9 (the product would give 0.4 -> 0.667)
    assert sparse[1, 0, 0].item() == pytest.approx(1.5 / (1.5 + 9 + 8 * 1e-7), rel=1e-5)
    with pytest.raises(ValueError, match="background of shape"):
        aggregation.soft_aggregate(probs, background=background[:10])


def test_a_session_aggregates_rgmp_with_its_merged_background(monkeypatch):
    import numpy as np

    from napari_vos import Session, session as session_module
    from napari_vos.methods import registry

    monkeypatch.setattr(registry, "create", lambda *a, **k: _rgmp(window="full", background="merged"))
    given = []
    real = session_module.soft_aggregate
    monkeypatch.setattr(session_module, "soft_aggregate",
                        lambda probs, out=None, background=None: (given.append(background), real(probs, out, background))[1])
    video = np.random.default_rng(0).integers(0, 255, (3, 64, 64), dtype=np.uint8)
    labels = np.zeros((64, 64), np.uint8)
    labels[10:30, 10:30], labels[10:30, 30:50] = 1, 2
    session = Session(video, method="rgmp", device="cpu", max_side=None, min_side=None, min_object_side=None)
    session.annotate(0, labels)
    session.run("forward")
    assert len(given) == 2 and all(b is not None and tuple(b.shape) == (64, 64) for b in given)


# -- FRTM eq. (4): binary target pixels, and the target's share of the loss is kappa --------------------------


def test_target_share_of_the_loss_is_kappa_for_a_small_object():
    """FRTM 3.1: kappa = max(kappa_min, kappa_hat) is "the desired target influence". The data term of
    eq. 2 weights each squared residual by (sqrt(gamma) v)^2, so the target's share of the loss must be
    kappa (the authors' code takes sqrt of eq. 4 for that reason). The code squares eq. 4's weights:
    a 16-pixel object in a 64x64 map gets 76 % of the loss instead of 10 %."""
    for side in (4, 8):
        y = torch.zeros(1, 1, 64, 64)
        y[..., :side, :side] = 1
        w2 = residual_weights(y, torch.ones(1), 0.1) ** 2  # per-pixel weight of the squared residual
        share = float((w2 * y).sum() / w2.sum())
        assert abs(share - 0.1) < 0.01, f"{side}x{side} object: target share of the loss {share:.3f}, kappa is 0.1"


def test_a_faint_leak_is_not_weighted_as_a_tiny_target():
    """Eq. 4 is defined on binary labels; a label map with no pixel >= 0.5 (the object has left) has no
    target pixel, kappa_hat = 0, and every pixel is background. The code takes kappa_hat from the soft
    mass, so one stride-8 cell at p = 0.05 gets v = 643 against 0.9 for the rest of the frame."""
    y = torch.zeros(1, 1, 60, 107)
    y[..., 10, 10] = 0.05
    v = residual_weights(y, torch.ones(1), 0.1)
    assert float(v.max()) <= 1.0, f"a 0.05 leak weighs {float(v.max()):.0f}"


def _frames(seed: int, c: int = 64, h: int = 24, w: int = 24) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    d = torch.zeros(c)
    d[:8] = 1.0
    frames = []
    for i in range(14):
        x = torch.randn(c, h, w, generator=g) * 0.5 + 0.5  # background features with a common mean
        if i < 5:
            x[:, 5:8, 5:8] += d[:, None, None] * 2  # the target, present on the annotated frame only
        frames.append(x)
    return frames


def test_one_leaking_cell_does_not_lift_the_whole_background():
    """The object leaves; S leaks p = 0.3 on ONE plain-background cell (stride 8) for 8 frames. After the
    every-t_s refit (Algorithm 1, w1 fixed) the target model's mean background score should stay near 0;
    with kappa_hat from the soft labels that one cell outweighs the frame and the whole background
    rises from 0.01 to 0.15 (0.018 when eq. 4 is evaluated on the binarised label)."""
    c, h, w = 64, 24, 24
    frames = _frames(0, c, h, w)
    mem = SampleMemory(80, 0.1)
    for i in range(5):
        y = torch.zeros(1, 2 * h, 2 * w)
        y[0, 10:16, 10:16] = 1
        mem.add(frames[i], y, same_weight=i > 0)
    tm = TargetModel(TargetModelSettings(), c, 1, torch.device("cpu"), torch.Generator().manual_seed(1))
    tm.fit(mem.features, mem.labels, mem.weights, initial=True)
    for i in range(5, 13):
        y = torch.zeros(1, 2 * h, 2 * w)
        y[0, 40, 40] = 0.3
        mem.add(frames[i], y)
    tm.update(mem.features, mem.labels, mem.weights)
    background = float(tm.scores(frames[13][None])[0, 0].mean())
    assert background < 0.05, f"mean background score after the refit {background:.3f}"


def test_a_method_with_a_zero_shot_option_names_it_when_run_without_labels(tmp_path):
    """RVOS with no annotation: the refusal names zero_shot=True (its zero-shot configuration)."""
    import numpy as np

    from napari_vos import Session, weights
    from napari_vos.training.rvos_recipe import RVOSRecipe

    tensors, meta = RVOSRecipe(stage="teacher").export_tensors(RVOSNetwork(TINY))
    weights.save_checkpoint(tmp_path / "rvos.safetensors", tensors, meta)
    session = Session(np.zeros((3, 32, 32), np.uint8), method="rvos", device="cpu",
                      checkpoint=str(tmp_path / "rvos.safetensors"))
    with pytest.raises(ValueError, match="zero_shot=True"):
        session.run("forward")


def test_rgmp_background_option_reaches_the_method_and_the_record():
    from napari_vos.methods import registry

    registry.check_options("rgmp", {"background": "merged"})
    with pytest.raises(ValueError, match="background must be"):
        registry.check_options("rgmp", {"background": "union"})
    image, objects = _two_objects()
    for options, chosen in (({"window": "full"}, None), ({"window": "full", "background": "merged"}, "merged"),
                            ({"window": "objects", "background": "merged"}, "product")):
        method = _rgmp(**options)
        method.start(image, objects)
        assert method.chosen_options().get("background") == chosen


# -- OSVOS-AT: the paper's DenseCRF post-processing, on by default below 8 objects ---------------------------
@pytest.mark.parametrize("crf, k, used", [("auto", 2, True), ("auto", 8, False), (True, 8, True), (False, 2, False)])
def test_osvos_at_crf_auto_runs_the_dense_crf_for_few_objects(crf, k, used, monkeypatch):
    from napari_vos.methods import osvos_at as module
    from napari_vos.methods.osvos_at import OSVOSAT
    from napari_vos.methods.osvos_at_net import CONFIGS, OSVOSATNetwork

    calls = []
    real = module.crf_foreground
    monkeypatch.setattr(module, "crf_foreground", lambda *a, **kw: (calls.append(1), real(*a, **kw))[1])
    torch.manual_seed(0)
    method = OSVOSAT(OSVOSATNetwork(CONFIGS["light"]), finetune_iterations=0, crf=crf)
    image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    objects = torch.zeros(k, 64, 64)
    for i in range(k):
        objects[i, 8 * (i // 4) + 4: 8 * (i // 4) + 10, 16 * (i % 4) + 2: 16 * (i % 4) + 10] = 1
    method.start(image, objects)
    method.step(image)
    assert bool(calls) == used
    assert method.chosen_options() == {"crf": used}


def test_osvos_at_crf_option_is_checked():
    from napari_vos.methods import registry

    registry.check_options("osvos_at", {"crf": "auto"})
    with pytest.raises(ValueError, match="crf takes True, False or 'auto'"):
        registry.check_options("osvos_at", {"crf": "yes"})
