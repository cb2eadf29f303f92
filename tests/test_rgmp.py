"""RGMP: global convolution, 4-channel Siamese encoder, eq. (1) in the recurrence, reference encoded once,
multi-scale averaging, simulated pairs, online fine-tuning, recipe smoke test, end-to-end propagation."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_vos.methods.rgmp import RGMP
from napari_vos.methods.rgmp_network import RGMPConfig, RGMPNetwork, object_probability
from napari_vos.methods.rgmp_pairs import PairSettings, crop_window, deform_mask, strategy1, strategy2
from napari_vos.nn.global_conv import GlobalConv, GlobalConvBlock

TINY = RGMPConfig(backbone="resnet18", channels=32, scales=(0.5, 0.75, 1.0))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from napari_vos import weights
    from napari_vos.training.rgmp_recipe import RGMPRecipe

    torch.manual_seed(0)
    tensors, meta = RGMPRecipe().export_tensors(RGMPNetwork(TINY))
    path = tmp_path_factory.mktemp("rgmp") / "rgmp-tiny.safetensors"
    weights.save_checkpoint(path, tensors, meta)
    return path


def _video(n=5, size=(64, 64)):
    from conftest import moving_square_video

    return moving_square_video(n_frames=n, size=size, step=4)


def _receptive_support(module, in_ch, size=(31, 33)):
    x = torch.randn(1, in_ch, *size, requires_grad=True)
    y = module(x)
    cy, cx = size[0] // 2, size[1] // 2
    y[0, :, cy, cx].sum().backward()
    support = x.grad[0].abs().sum(0) > 0
    ys, xs = torch.nonzero(support, as_tuple=True)
    return y.shape, (int(ys.min()) - cy, int(ys.max()) - cy, int(xs.min()) - cx, int(xs.max()) - cx), support


def test_global_conv_shapes_and_receptive_field():
    torch.manual_seed(0)
    gc = GlobalConv(6, 16, k=7)
    kernels = [tuple(c.kernel_size) for c in (gc.left1, gc.left2, gc.right1, gc.right2)]
    assert kernels == [(7, 1), (1, 7), (1, 7), (7, 1)]
    shape, extent, support = _receptive_support(gc, 6)
    assert shape == (1, 16, 31, 33)
    assert extent == (-3, 3, -3, 3)
    assert int(support.sum()) == 49  # the full 7x7 window, nothing outside it

    block = GlobalConvBlock(2 * 8, k=7)
    assert block.gc.left1.out_channels == 256 and block.residual.conv2.out_channels == 256
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in block.modules())
    shape, extent, support = _receptive_support(block, 16)
    assert shape == (1, 256, 31, 33)
    assert extent == (-5, 5, -5, 5)  # 7x7 widened by the residual block's two 3x3 convolutions
    assert int(support.sum()) == 121
    with pytest.raises(ValueError):
        GlobalConv(4, 4, k=6)


def test_encoder_is_a_four_channel_resnet_shared_by_both_streams():
    torch.manual_seed(0)
    net = RGMPNetwork(TINY).eval()
    enc = net.encoder
    conv1 = enc.backbone.stem[0]
    assert tuple(conv1.weight.shape) == (64, 3, 7, 7) and tuple(enc.mask_conv.weight.shape) == (64, 1, 7, 7)
    image, mask = torch.rand(1, 3, 64, 96), (torch.rand(1, 1, 64, 96) > 0.5).float()
    with torch.no_grad():
        feats = enc(image, mask)
        # the same network written as one 4-channel first layer: RGB filters + the added mask filters
        bb = enc.backbone
        w4 = torch.cat([conv1.weight, enc.mask_conv.weight], 1)
        x = F.conv2d(torch.cat([(image - bb.mean) / bb.std, mask], 1), w4, stride=2, padding=3)
        x = bb.stem[3](bb.stem[2](bb.stem[1](x)))
        for name in ("conv2", "conv3", "conv4", "conv5"):
            x = getattr(bb, name)(x)
        assert torch.allclose(feats["conv5"], x, atol=1e-4)
        assert [tuple(f.shape[-2:]) for f in feats.values()] == [(16, 24), (8, 12), (4, 6), (2, 3)]
        assert not torch.allclose(enc(image, torch.zeros_like(mask))["conv5"], feats["conv5"])
        logits = net(image, mask, torch.rand(1, 3, 64, 96), mask)
    assert logits.shape == (1, 2, 16, 24)  # two-channel mask output at 1/4 resolution
    assert net.decoder.gc.gc.left1.in_channels == 2 * 512  # reference and target conv5 concatenated
    # one encoder module, so the two streams share every parameter
    assert [n for n, _ in net.named_children()] == ["encoder", "decoder"]
    p = object_probability(logits, (64, 96))
    assert p.shape == (1, 64, 96) and float(p.min()) >= 0 and float(p.max()) <= 1


def test_reference_stream_is_encoded_once_per_video():
    torch.manual_seed(0)
    frames, truth = _video(6)
    net = RGMPNetwork(TINY)
    m = RGMP(net)
    calls = {"reference": 0, "encoder": 0}
    ref, enc = net.encode_reference, net.encoder.forward

    def count_ref(*a, **k):
        calls["reference"] += 1
        return ref(*a, **k)

    def count_enc(*a, **k):
        calls["encoder"] += 1
        return enc(*a, **k)

    net.encode_reference, net.encoder.forward = count_ref, count_enc
    img = lambda t: torch.from_numpy(frames[t]).permute(2, 0, 1).float() / 255  # noqa: E731
    objects = torch.from_numpy(np.stack([truth[0], 1 - truth[0]])).float()
    m.start(img(0), objects)
    assert calls == {"reference": 3, "encoder": 3}  # one reference encoding per scale, all objects batched
    for t in range(1, 6):
        step = m.step(img(t))
        assert step.probs.shape == (2, 64, 64)
        m.update(step.probs)
    assert calls == {"reference": 3, "encoder": 3 + 5 * 3}  # later frames run only the target stream


def test_multiscale_output_is_the_average_of_the_scales():
    torch.manual_seed(0)
    frames, truth = _video(2)
    net = RGMPNetwork(TINY)
    img0, img1 = (torch.from_numpy(frames[t]).permute(2, 0, 1).float() / 255 for t in (0, 1))
    obj = torch.from_numpy(truth[:1]).float()
    outs = {}
    for scales in ((0.5,), (1.0,), (0.5, 1.0)):
        m = RGMP(net, scales=scales)
        m.start(img0, obj)
        outs[scales] = m.step(img1).probs
    assert not torch.allclose(outs[(0.5,)], outs[(1.0,)], atol=1e-3)
    assert torch.allclose(outs[(0.5, 1.0)], (outs[(0.5,)] + outs[(1.0,)]) / 2, atol=1e-5)
    with pytest.raises(ValueError):
        RGMP(net, scales=(0.0,))


def test_softmax_aggregation_eq1_feeds_the_next_guidance(tiny_checkpoint, monkeypatch):
    """The engine aggregates RGMP's per-object outputs with eq. (1); the result is the next guidance."""
    from napari_vos import propagate

    # object probabilities (left half, right half) as the network will output them
    p_left, p_right = (0.6, 0.3), (0.2, 0.9)
    guidances = []

    def fake_segment(self, reference, image, guidance):
        guidances.append(guidance[:, 0].clone())
        k, _, h, w = image.shape
        logits = torch.zeros(k, 2, h // 4, w // 4)
        for i in range(k):
            logits[i, 1, :, : w // 8] = float(np.log(p_left[i] / (1 - p_left[i])))
            logits[i, 1, :, w // 8:] = float(np.log(p_right[i] / (1 - p_right[i])))
        return logits

    monkeypatch.setattr(RGMPNetwork, "segment", fake_segment)
    frames, _ = _video(3)
    labels = np.zeros((64, 64), np.int32)
    labels[5:20, 5:20], labels[40:60, 40:60] = 1, 2
    result = propagate(frames, labels, method="rgmp", checkpoint=str(tiny_checkpoint), device="cpu",
                       direction="forward", scales=(1.0,))
    assert torch.equal(guidances[0], torch.from_numpy(np.stack([labels == 1, labels == 2])).float())
    # by hand: left p_hat = (0.28, 0.6, 0.3) -> odds (0.3889, 1.5, 0.4286) / 2.3175
    #          right p_hat = (0.08, 0.2, 0.9) -> odds (0.0870, 0.25, 9.0) / 9.3370
    left, right = guidances[1][:, 20:44, 4:24], guidances[1][:, 20:44, 40:60]
    assert torch.allclose(left, torch.tensor([0.64726, 0.18493])[:, None, None].expand_as(left), atol=1e-4)
    assert torch.allclose(right, torch.tensor([0.026775, 0.963912])[:, None, None].expand_as(right), atol=1e-4)
    assert (result.labels[1:, 20:44, 4:24] == 1).all() and (result.labels[1:, 20:44, 40:60] == 2).all()


def test_simulated_pairs_follow_the_two_strategies():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 90, 120)
    mask = torch.zeros(90, 120)
    mask[30:60, 40:80] = 1
    for _ in range(5):
        pair = strategy1(image, mask, (64, 64), g)
        assert pair is not None
        assert pair.ref_image.shape == pair.image.shape == (3, 64, 64)
        assert pair.ref_mask.shape == pair.mask.shape == pair.guidance.shape == (1, 64, 64)
        for m in (pair.ref_mask, pair.mask, pair.guidance):
            assert set(torch.unique(m).tolist()) <= {0.0, 1.0}
    # guidance: a deformed copy of the target mask, overlapping it but not equal
    ious = []
    for _ in range(20):
        guide = deform_mask(mask[None], g)
        inter = float(((guide > 0) & (mask > 0)).sum())
        ious.append(inter / float(((guide > 0) | (mask > 0)).sum()))
    assert 0.4 < min(ious) and np.mean(ious) < 0.97

    # strategy 2: a foreground pasted on a background; the background's objects occlude it
    background = torch.rand(3, 80, 100)
    occluder = torch.ones(80, 100, dtype=torch.long)  # the background's object covers everything
    assert strategy2(image, mask, background, occluder, (64, 64), g, PairSettings(occlusion=1.0)) is None
    pair = strategy2(image, mask, background, occluder, (64, 64), g, PairSettings(occlusion=0.0))
    assert pair is not None and float(pair.mask.sum()) > 0


def test_crops_hold_at_least_half_the_object():
    g = torch.Generator().manual_seed(1)
    for trial in range(20):
        mask = torch.zeros(100, 140, dtype=torch.bool)
        y, x = int(torch.randint(0, 70, (1,))), int(torch.randint(0, 100, (1,)))
        mask[y:y + 30, x:x + 40] = True
        y0, x0 = crop_window(mask, (48, 48), g, 0.5)
        assert 0 <= y0 <= 52 and 0 <= x0 <= 92
        assert int(mask[y0:y0 + 48, x0:x0 + 48].sum()) >= 0.5 * int(mask.sum())


def test_online_finetuning_adapts_a_copy_inside_inference_mode():
    torch.manual_seed(0)
    frames, truth = _video(2)
    net = RGMPNetwork(TINY)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    m = RGMP(net, online_finetune=True, online_steps=3, online_lr=1e-3, online_size=(64, 64), scales=(1.0,))
    img = torch.from_numpy(frames[0]).permute(2, 0, 1).float() / 255
    with torch.inference_mode():  # as the engine calls start()
        m.start(img, torch.from_numpy(truth[:1]).float())
        m.step(img)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # the shared network is untouched
    tuned = m.network.state_dict()
    assert not torch.equal(tuned["decoder.predict.weight"], before["decoder.predict.weight"])
    assert not torch.equal(tuned["encoder.mask_conv.weight"], before["encoder.mask_conv.weight"])
    assert RGMP(net).network is net and not RGMP(net).online_finetune  # off by default, no copy


def test_online_finetuning_reports_each_step_and_stops_when_cancelled():
    import threading

    torch.manual_seed(0)
    frames, truth = _video(2)
    img = torch.from_numpy(frames[0]).permute(2, 0, 1).float() / 255
    objects = torch.from_numpy(truth[:1]).float()
    seen: list[tuple[int, int, float]] = []
    m = RGMP(RGMPNetwork(TINY), online_finetune=True, online_steps=4, online_size=(64, 64), scales=(1.0,),
             on_finetune=lambda step, total, loss: seen.append((step, total, loss)))
    losses = m.finetune(img, objects)
    assert [(s, t) for s, t, _ in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [loss for _, _, loss in seen] == losses and all(loss > 0 for loss in losses)
    stop = threading.Event()
    calls: list[int] = []

    def cancel_after_two(step: int, total: int, loss: float) -> None:
        calls.append(step)
        if step == 2:
            stop.set()  # what the widget's Cancel does while the method fine-tunes

    m = RGMP(RGMPNetwork(TINY), online_finetune=True, online_steps=50, online_size=(64, 64), scales=(1.0,),
             on_finetune=cancel_after_two, cancel_event=stop)
    assert len(m.finetune(img, objects)) == 2 and calls == [1, 2]


def test_a_both_way_run_fine_tunes_once_and_the_backward_pass_gets_the_same_weights(tiny_checkpoint):
    """From a middle frame, the backward pass takes the forward pass's tuned weights (it fine-tuned
    again, on the same frame with the same seed: twice the wait for the same labels); a cancelled
    fine-tuning is not kept."""
    import threading

    from napari_vos import propagate
    from napari_vos.methods.finetune_cache import cache_size, clear_finetune_cache

    frames, truth = _video(5, size=(64, 96))
    options = dict(method="rgmp", checkpoint=str(tiny_checkpoint), device="cpu", frame=2, direction="both",
                   online_finetune=True, online_steps=3, online_size=(64, 64), precision="fp32")
    labels = {}
    for reuse in (False, True):
        clear_finetune_cache()
        steps: list[int] = []
        labels[reuse] = propagate(frames, truth[2], reuse_finetune=reuse,
                                  on_finetune=lambda s, n, loss: steps.append(s), **options).labels
        assert steps == ([1, 2, 3] if reuse else [1, 2, 3, 1, 2, 3])
    np.testing.assert_array_equal(labels[True], labels[False])
    assert cache_size() == 1
    clear_finetune_cache()
    stop = threading.Event()  # the widget's Cancel while the method fine-tunes
    method = RGMP.build("cpu", str(tiny_checkpoint), online_finetune=True, online_steps=3, online_size=(64, 64),
                        scales=(1.0,), cancel_event=stop, on_finetune=lambda s, n, loss: stop.set())
    img = torch.from_numpy(frames[2]).permute(2, 0, 1).float() / 255
    method.start(img, torch.from_numpy(truth[2:3]).float())
    assert cache_size() == 0


def test_recipe_both_stages_train_export_and_load(tmp_path):
    from napari_vos.methods import registry
    from napari_vos.training.loop import TrainSettings, train
    from napari_vos.training.recipes import make_recipe

    pre = make_recipe("rgmp", size=(64, 64), batch_size=2, config="light")
    assert (pre.config, pre.stage) == ("light", "pretrain")
    model = train(pre, tmp_path / "pre", TrainSettings(steps=1, save_every=1, log_every=1), log=lambda s: None)
    tensors, meta = pre.export_tensors(model)
    from napari_vos import weights

    path = tmp_path / "rgmp-pre.safetensors"
    weights.save_checkpoint(path, tensors, meta)

    video = make_recipe("rgmp", size=(64, 96), batch_size=1, config="light:video", init_checkpoint=str(path))
    assert video.stage == "video" and video.recurrence == 5
    sample = video.video_sample(np.random.default_rng(0))
    assert sample.frames.shape == (6, 3, 64, 96) and sample.masks.shape == (6, 64, 96)
    net = video.build(torch.device("cpu"))
    assert torch.equal(net.decoder.predict.weight, tensors["decoder.predict.weight"].float())
    # batch norm keeps the pre-trained statistics through video fine-tuning (batches of 1-4 clips)
    net.train()
    bn = net.encoder.backbone.conv2[0].bn1
    assert not bn.training and net.decoder.training
    before = bn.running_mean.clone()
    assert pre.build(torch.device("cpu")).train().encoder.backbone.conv2[0].bn1.training  # pre-training: batches of 8
    calls, guidance_in_graph = [], []
    encode_reference, segment = net.encode_reference, net.segment
    net.encode_reference = lambda *a: calls.append(1) or encode_reference(*a)
    net.segment = lambda ref, img, guide: guidance_in_graph.append(guide.requires_grad) or segment(ref, img, guide)
    loss, stats = video.loss(net, [sample], torch.device("cpu"))
    loss.backward()
    assert len(calls) == 1 and torch.isfinite(loss)  # one reference encoding for the 5 unrolled steps
    assert torch.equal(bn.running_mean, before)
    # BPTT: the first guidance is ground truth, each later one the previous soft output, kept in the graph
    assert guidance_in_graph == [False, True, True, True, True]
    assert 0 <= stats["iou"] <= 1

    method = registry.create("rgmp", device="cpu", checkpoint=str(path), scales=[1.0])
    assert method.scales == (1.0,) and method.checkpoint_sha256 == weights.sha256_of(path)


def test_backbone_starts_from_another_methods_checkpoint(tmp_path):
    from napari_vos import weights
    from napari_vos.methods.frtm import CONFIGS as FRTM_CONFIGS, FRTMNetwork
    from napari_vos.training.frtm_recipe import FRTMRecipe
    from napari_vos.training.rgmp_recipe import RGMPRecipe

    torch.manual_seed(1)
    frtm = FRTMNetwork(FRTM_CONFIGS["fast"])
    path = tmp_path / "frtm.safetensors"
    weights.save_checkpoint(path, *FRTMRecipe().export_tensors(frtm))
    net = RGMPRecipe(config="light", init_checkpoint=str(path), train_backbone_from="conv3").build(torch.device("cpu"))
    w = frtm.backbone.conv4[0].conv1.weight.half().float()
    assert torch.equal(net.encoder.backbone.conv4[0].conv1.weight, w)
    assert not net.encoder.backbone.conv2[0].conv1.weight.requires_grad  # frozen leading stages
    assert net.encoder.backbone.conv3[0].conv1.weight.requires_grad and net.encoder.mask_conv.weight.requires_grad


def test_end_to_end_tiny_propagation(tiny_checkpoint):
    from napari_vos import propagate

    frames, truth = _video(5, size=(64, 96))
    result = propagate(frames, truth[0], method="rgmp", checkpoint=str(tiny_checkpoint), device="cpu", maps=True)
    assert result.labels.shape == (5, 64, 96)
    assert set(np.unique(result.labels)) <= {0, 1}
    assert (result.labels[0] == truth[0]).all()
    assert result.maps["object_probs"].shape == (5, 1, 16, 24)
    probs = result.maps["object_probs"][1:]
    assert probs.min() >= 0 and probs.max() <= 1
    assert result.checkpoint_sha256 is not None and result.method == "rgmp"


@pytest.mark.real_working_size
def test_small_objects_are_enlarged_to_the_object_side_rgmp_needs(tiny_checkpoint):
    """RGMP's stride-32 encoder loses 20-pixel cells at their own size: by default the engine enlarges
    the frames so the median annotated object is RGMP.min_object_side pixels across, labels come back
    at the video's size, and the working size is fixed once propagation starts."""
    from napari_vos import Session
    from napari_vos.methods.rgmp import RGMP

    frames, truth = _video(3, size=(64, 96))  # a 24 x 24 square: 27.1 px equivalent diameter
    scale = RGMP.min_object_side / (2 * np.sqrt(24 * 24 / np.pi))
    expected = (round(64 * scale), round(96 * scale))
    assert scale > 1
    session = Session(frames, method="rgmp", checkpoint=str(tiny_checkpoint), device="cpu")
    assert session.work_size == (64, 96)  # nothing annotated yet
    session.annotate(0, truth[0])
    assert session.work_size == expected
    out = list(session.propagate("forward"))
    assert [f.labels.shape for f in out] == [(64, 96)] * 3
    assert session.result().options["work_size"] == list(expected)
    tiny = np.zeros((64, 96), np.int32)
    tiny[0:3, 0:3] = 1
    session.annotate(2, tiny)  # a later, smaller annotation does not change the running geometry
    assert session.work_size == expected
    own = Session(frames, method="rgmp", checkpoint=str(tiny_checkpoint), device="cpu", min_object_side=None)
    own.annotate(0, truth[0])
    assert own.work_size == (64, 96)
    with pytest.raises(ValueError, match="min_object_side"):
        Session(frames, method="rgmp", checkpoint=str(tiny_checkpoint), device="cpu", min_object_side="big")


@pytest.mark.real_working_size
@pytest.mark.parametrize("min_object_side, scales", [(None, [0.5, 0.75, 1.0]), (20, [0.75, 1.0]),
                                                     ("auto", [1.0])])
def test_the_test_scales_follow_the_sessions_object_side(tiny_checkpoint, min_object_side, scales):
    """min_object_side=None gives the paper's three scales back; another side is the one the scales keep
    (a 24 x 24 square, 27.1 px across: 0.75 keeps 20 px, 0.5 does not; auto: 64 px, enlarged to it)."""
    from napari_vos import Session

    frames, truth = _video(3, size=(64, 96))
    session = Session(frames, method="rgmp", checkpoint=str(tiny_checkpoint), device="cpu",
                      min_object_side=min_object_side, min_side=None)
    session.annotate(0, truth[0])
    list(session.propagate("forward"))
    assert session.result().options["scales"] == scales
    # named as the method's own choice: a resumed run's planes may differ in them (plane_resume.check_same_run)
    assert session.result().provenance()["chosen_options"] == ["scales", "window"]


@pytest.mark.real_working_size
@pytest.mark.parametrize("side, expected", [(100, (0.75, 1.0)), (180, (0.5, 0.75, 1.0)), (30, (1.0,))])
def test_scales_that_would_shrink_the_object_below_the_object_side_are_left_out(side, expected):
    """The paper's scales (0.5, 0.75, 1) assume DAVIS-sized objects; a scale at which the median object
    is under min_object_side (64) pixels across is left out, unless the scales are given."""
    net = RGMPNetwork(TINY)
    area = np.pi * (side / 2) ** 2  # an object of equivalent diameter `side`
    obj = torch.zeros(1, 200, 200)
    obj.view(-1)[: int(round(area))] = 1
    image = torch.rand(3, 200, 200)
    m = RGMP(net, scales=None)
    assert m.scales == (0.5, 0.75, 1.0)
    m.start(image, obj)
    assert m.scales == expected and m.chosen_options() == {"scales": list(expected), "window": "full"}
    small = torch.zeros_like(obj)
    small[:, :5, :5] = 1
    m.remember(image, small)  # a later, smaller annotation does not change them
    assert m.scales == expected
    given = RGMP(net, scales=(0.5, 1.0))
    given.start(image, obj)
    assert given.scales == (0.5, 1.0)


@pytest.mark.real_working_size
def test_the_scales_used_are_in_the_provenance(tiny_checkpoint):
    from napari_vos import Session

    frames, truth = _video(3, size=(64, 96))
    session = Session(frames, method="rgmp", checkpoint=str(tiny_checkpoint), device="cpu", min_object_side=None,
                      scales=[0.5, 1.0])
    session.annotate(0, truth[0])  # a 24 x 24 square, left at its size: given scales are kept as given
    session.run("forward")
    assert session.result().options["scales"] == [0.5, 1.0]
    assert session.result().options["window"] == "full"  # one object: the paper's whole frame


def test_shipped_checkpoint_follows_a_moving_object():
    """The shipped checkpoint (the registry's default) tracks a moving square at its default scales
    (measured with the session-6 checkpoint: IoU 0.76-0.83 on frames 1-7)."""
    from conftest import square_tracking_ious

    from napari_vos import weights

    if not weights.list_checkpoints("rgmp"):
        pytest.skip("no RGMP checkpoint is registered")
    ious = square_tracking_ious("rgmp")
    assert min(ious) > 0.7, ious


def test_the_object_probability_map_is_made_only_when_maps_are_wanted(tiny_checkpoint, monkeypatch):
    """RGMP's map is a pass over K full frames: the engine asks for it (a lazy Step map) only with maps=True."""
    import napari_vos.methods.rgmp as rgmp_module
    from napari_vos import propagate

    calls = []
    pool = rgmp_module.F.adaptive_avg_pool2d
    monkeypatch.setattr(rgmp_module.F, "adaptive_avg_pool2d", lambda *a, **k: calls.append(1) or pool(*a, **k))
    frames, truth = _video(4, size=(64, 96))
    for maps in (False, True):
        calls.clear()
        result = propagate(frames, truth[0], method="rgmp", checkpoint=str(tiny_checkpoint), device="cpu",
                           direction="forward", maps=maps)
        assert len(calls) == (3 if maps else 0) and ("object_probs" in result.maps) is maps


def test_a_window_follows_its_guidance_as_a_whole_frame_search_would():
    """The next window's centre is searched inside the last window only: the same centre as over the
    whole frame when the guidance lies inside it, and the last centre when the object is lost."""
    from napari_vos.methods.rgmp import RGMP
    from napari_vos.methods.rgmp_windows import centre_of

    guidance = torch.zeros(200, 300)
    guidance[40:70, 250:290] = 0.9  # moved right, near the frame's edge
    last = (50, 260)  # the 96 px window around it reaches outside the frame
    assert RGMP._guidance_centre(guidance, 96, last) == centre_of(guidance) == (55, 270)
    assert RGMP._guidance_centre(torch.zeros(200, 300), 96, last) == last


def test_step_reuses_its_output_tensor_only_once_the_engine_has_replaced_it(tiny_checkpoint):
    """The (K, H, W) output is zeroed and reused frame after frame (a new one costs page faults), but
    never while it is still the guidance (a caller that skips update())."""
    from napari_vos.methods.rgmp import RGMP

    frames, truth = _video(4, size=(64, 96))
    method = RGMP.build(device="cpu", checkpoint=str(tiny_checkpoint))
    image = lambda t: torch.from_numpy(frames[t]).permute(2, 0, 1).float() / 255  # noqa: E731
    method.start(image(0), torch.from_numpy(truth[0] == 1).float()[None])
    first = method.step(image(1)).probs
    method.update(first.clone())
    second = method.step(image(2)).probs
    assert second.data_ptr() == first.data_ptr()  # reused, after update replaced the guidance
    third = method.step(image(3)).probs  # no update(): the guidance is still `second`
    assert third.data_ptr() != second.data_ptr() and second.abs().sum() > 0
