"""S2S++: ConvLSTM step, border-distance classes, merge weights, BPTT, propagation, flat memory, recipe."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_vos.methods.s2s import S2S, network_size
from napari_vos.methods.s2s_distance import BorderClasses
from napari_vos.methods.s2s_network import CONFIGS, BranchMerge, S2SConfig, S2SNetwork
from napari_vos.nn.convlstm import ConvLSTMCell

TINY = S2SConfig(encoder="resnet18", widths=(32, 16, 16, 8, 8, 8))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from napari_vos import weights
    from napari_vos.training.s2s_recipe import S2SRecipe

    torch.manual_seed(0)
    tensors, meta = S2SRecipe().export_tensors(S2SNetwork(TINY))
    path = tmp_path_factory.mktemp("s2s") / "s2s-tiny.safetensors"
    weights.save_checkpoint(path, tensors, meta)
    return str(path)


# -- ConvLSTM ----------------------------------------------------------------------------
def test_convlstm_scalar_step_by_hand():
    cell = ConvLSTMCell(1, 1, kernel_size=1)
    wx, wh, b = [0.5, -1.0, 2.0, 1.5], [0.3, 0.7, -0.4, 0.2], [0.1, 1.0, -0.2, 0.05]  # gates i, f, o, g
    with torch.no_grad():
        cell.gates.weight.copy_(torch.tensor([[x, h] for x, h in zip(wx, wh)]).view(4, 2, 1, 1))
        cell.gates.bias.copy_(torch.tensor(b))
    x, h, c = 0.8, -0.5, 0.25
    pre = [wx[k] * x + wh[k] * h + b[k] for k in range(4)]
    c_new = _sigmoid(pre[1]) * c + _sigmoid(pre[0]) * math.tanh(pre[3])
    h_new = _sigmoid(pre[2]) * math.tanh(c_new)
    with torch.no_grad():
        h_t, c_t = cell(torch.full((1, 1, 1, 1), x), (torch.full((1, 1, 1, 1), h), torch.full((1, 1, 1, 1), c)))
    assert float(c_t) == pytest.approx(c_new, abs=1e-6)
    assert float(h_t) == pytest.approx(h_new, abs=1e-6)


def test_convlstm_3x3_step_matches_explicit_convolution():
    torch.manual_seed(1)
    cell = ConvLSTMCell(2, 3, kernel_size=3)
    with torch.no_grad():
        cell.gates.bias.normal_()
    x, h, c = torch.randn(1, 2, 5, 6), torch.randn(1, 3, 5, 6), torch.randn(1, 3, 5, 6)
    h_t, c_t = cell(x, (h, c))
    w, bias = cell.gates.weight.detach().numpy(), cell.gates.bias.detach().numpy()
    inp = np.pad(torch.cat([x, h], 1)[0].numpy(), ((0, 0), (1, 1), (1, 1)))
    pre = np.zeros((12, 5, 6))
    for o in range(12):
        for y in range(5):
            for xx in range(6):
                pre[o, y, xx] = (w[o] * inp[:, y:y + 3, xx:xx + 3]).sum() + bias[o]
    i, f, o_, g = pre[0:3], pre[3:6], pre[6:9], pre[9:12]
    c_ref = _sigmoid(f) * c[0].numpy() + _sigmoid(i) * np.tanh(g)
    h_ref = _sigmoid(o_) * np.tanh(c_ref)
    np.testing.assert_allclose(c_t[0].detach().numpy(), c_ref, atol=1e-5)
    np.testing.assert_allclose(h_t[0].detach().numpy(), h_ref, atol=1e-5)


def test_convlstm_forget_bias_and_shared_input():
    cell = ConvLSTMCell(4, 2, kernel_size=5)
    assert torch.all(cell.gates.bias[2:4] == 1.0) and torch.all(cell.gates.bias[:2] == 0)
    x = torch.randn(1, 4, 6, 6)
    h, c = cell.zero_state(x.expand(3, -1, -1, -1))
    h1, _ = cell(x, (h, c))  # one input shared by three states
    h_ref, _ = cell(x.expand(3, -1, -1, -1).contiguous(), (h, c))
    assert h1.shape == (3, 2, 6, 6) and torch.allclose(h1, h_ref)


# -- border distance classes ---------------------------------------------------------------
def test_distance_classes_on_a_disk_match_the_analytic_distances():
    bc = BorderClasses(border=20, bin_size=1)
    assert bc.num_classes == 42
    yy, xx = np.mgrid[0:160, 0:160].astype(np.float64)
    r0, cy, cx = 45.3, 80.4, 79.7
    rho = np.hypot(yy - cy, xx - cx)
    mask = rho <= r0
    analytic = np.clip(r0 - rho, -20, 20)  # signed distance to the circle, inside positive, truncated at R
    signed = bc.signed_distance(mask)
    assert np.abs(signed - analytic).max() <= 0.75
    assert np.abs(signed - analytic).mean() <= 0.3
    n = bc.n_bins
    d = r0 - rho
    expected = np.where(d >= 0, np.where(d >= 20, 2 * n + 1, n + 1 + np.floor(d)),
                        np.where(-d >= 20, 0, n - np.floor(-d))).astype(np.int64)
    classes = bc.classes(mask)
    assert np.abs(classes - expected).max() <= 1
    assert (classes == expected).mean() >= 0.85
    assert classes[80, 80] == 41 and classes[0, 0] == 0  # deep inside / far outside
    assert set(np.unique(classes)) == set(range(42))  # every class is used on a big enough disk
    # classes grow with the signed distance
    order = np.argsort(signed.ravel(), kind="stable")
    assert np.all(np.diff(classes.ravel()[order]) >= 0)


def test_distance_classes_bins_empty_and_expected_distance():
    bc = BorderClasses(border=20, bin_size=10)
    assert bc.num_classes == 6  # Table III: border 20, bin 10 -> 6 classes
    assert np.all(bc.classes(np.zeros((8, 8))) == 0) and np.all(bc.classes(np.ones((8, 8))) == 5)
    bc = BorderClasses(20, 1)
    centers = bc.centers()
    assert centers[0] == -20 and centers[-1] == 20 and centers[20] == -0.5 and centers[21] == 0.5
    onehot = torch.nn.functional.one_hot(torch.tensor([[0, 20, 21, 41]]), 42).permute(0, 2, 1).float()
    assert torch.allclose(bc.expected_distance(onehot), torch.tensor([[-20.0, -0.5, 0.5, 20.0]]))
    with pytest.raises(ValueError):
        BorderClasses(20, 3)


# -- network ---------------------------------------------------------------------------------
def test_merge_weights_receive_gradients():
    torch.manual_seed(0)
    net = S2SNetwork(TINY)
    frames = torch.rand(1, 3, 3, 64, 64)
    masks = torch.zeros(1, 64, 64)
    masks[0, 20:40, 20:44] = 1
    logits, dist = net(frames, masks)
    (logits.mean() + dist.mean()).backward()
    merges = [m for m in net.modules() if isinstance(m, BranchMerge)]
    assert len(merges) == 5 + 2  # five decoder levels + two skip-memory initial states
    for m in merges:
        assert m.weights.grad is not None and torch.all(m.weights.grad.abs().sum(1) > 0), m
    # the skip-memory branch (third) of the stride-16 and stride-8 decoder levels
    assert net.decoder.merges[1].weights.shape[0] == 3 and net.decoder.merges[2].weights.shape[0] == 3
    assert net.decoder.merges[3].weights.shape[0] == 2


def test_branch_merge_softmax_is_over_the_branches():
    """Pins BranchMerge's weights as a softmax over the branches (per channel), not over the channels:
    equal weights average the branches, a large first weight selects the first branch."""
    merge = BranchMerge(2, 3)
    with torch.no_grad():
        merge.mix.weight.copy_(torch.eye(3).view(3, 3, 1, 1))  # the 1x1 mix the identity (bias 0)
        branches = [torch.ones(1, 3, 2, 2), 3 * torch.ones(1, 3, 2, 2)]
        torch.testing.assert_close(merge(branches), torch.full((1, 3, 2, 2), 2.0))
        merge.weights[0] = 10.0
        torch.testing.assert_close(merge(branches), torch.ones(1, 3, 2, 2), atol=1e-3, rtol=0)


def test_the_distance_class_probabilities_not_logits_enter_the_mask_merge():
    """Pins S2S++'s output head: the 1x1 merge sees the segmentation channels and the softmax of the
    distance-class logits (non-negative, one per pixel), not the logits themselves."""
    from napari_vos.methods.s2s_network import OutputHeads

    torch.manual_seed(0)
    heads = OutputHeads(TINY)
    n = TINY.border_classes.num_classes
    seen = []
    heads.merge.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    with torch.no_grad():
        _, dist_logits = heads(3 * torch.randn(2, TINY.widths[5], 8, 8))
    probs = seen[0][:, n:]
    assert probs.shape == (2, n, 8, 8)
    assert probs.min() >= 0
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 8, 8))
    torch.testing.assert_close(probs, torch.softmax(dist_logits, 1))


def test_loss_on_the_last_frame_reaches_the_initializer_through_time():
    torch.manual_seed(0)
    net = S2SNetwork(TINY)
    frames = torch.rand(1, 4, 3, 64, 64)
    masks = torch.zeros(1, 64, 64)
    masks[0, 10:30, 10:30] = 1
    logits, _ = net(frames, masks)
    logits[:, -1].sum().backward()
    init_grad = sum(float(p.grad.abs().sum()) for p in net.initializer.parameters() if p.grad is not None)
    rnn_grad = [float(cell.gates.weight.grad.abs().sum()) for cell in net.memory]
    assert init_grad > 0 and all(g > 0 for g in rnn_grad)
    # the mask channel of the initializer's first convolution is what tells the object apart
    assert float(net.initializer.pyramid.backbone.stem[0].weight.grad[:, 3].abs().sum()) > 0


def test_paper_configuration_is_vgg16_with_the_papers_memories():
    torch.manual_seed(0)
    net = S2SNetwork(CONFIGS["paper"])
    widths = [(c.in_ch, c.hidden_ch, c.kernel_size) for c in net.memory]
    assert widths == [(512, 512, 3), (512, 512, 3), (256, 256, 5)]  # VGG: 256 channels at stride 8
    assert [u.conv.out_channels for u in net.decoder.ups] == [512, 256, 128, 64, 64]
    assert all(u.conv.kernel_size == (5, 5) for u in net.decoder.ups)
    assert net.initializer.pyramid.blocks[0][0].in_channels == 4 and net.encoder.blocks[0][0].in_channels == 3
    assert net.heads.distance.out_channels == 42
    with torch.no_grad():
        pyr = net.encode(torch.rand(1, 3, 64, 96))
        assert [tuple(p.shape[1:]) for p in pyr] == [(64, 32, 48), (128, 16, 24), (256, 8, 12), (512, 4, 6), (512, 2, 3)]
        states = net.initial_states(torch.rand(1, 3, 64, 96), torch.zeros(2, 64, 96))
        logits, dist, states = net.step(pyr, states)
    assert logits.shape == (2, 64, 96) and dist.shape == (2, 42, 64, 96)
    assert [tuple(h.shape) for h, _ in states] == [(2, 512, 2, 3), (2, 512, 4, 6), (2, 256, 8, 12)]


def test_network_size_keeps_aspect_at_the_paper_area():
    assert network_size((480, 854)) == (256, 448)
    h, w = network_size((512, 512))
    assert h == w and h % 32 == 0 and abs(h * w - 256 * 448) < 0.15 * 256 * 448
    assert network_size((100, 100), input_size=(70, 90)) == (64, 96)


# -- the method --------------------------------------------------------------------------------
def _two_objects(size=(64, 96)):
    from conftest import moving_square_video

    frames, truth = moving_square_video(n_frames=5, size=size, step=3)
    objects = np.stack([truth[0] == 1, np.zeros_like(truth[0], bool)]).astype(np.float32)
    objects[1, 48:60, 70:90] = 1
    img = lambda t: torch.from_numpy(frames[t]).permute(2, 0, 1).float() / 255  # noqa: E731
    return img, torch.from_numpy(objects)


def test_objects_are_tracked_on_their_own():
    torch.manual_seed(0)
    net = S2SNetwork(TINY)
    img, objects = _two_objects()
    together = S2S(net, input_size=(64, 96), object_chunk=8)
    alone = S2S(net, input_size=(64, 96), object_chunk=1)
    first_only = S2S(net, input_size=(64, 96))
    together.start(img(0), objects)
    alone.start(img(0), objects)
    first_only.start(img(0), objects[:1])
    for t in range(1, 4):
        a, b, c = together.step(img(t)), alone.step(img(t)), first_only.step(img(t))
        assert a.probs.shape == (2, 64, 96)
        assert torch.allclose(a.probs, b.probs, atol=1e-5)
        assert torch.allclose(a.probs[:1], c.probs, atol=1e-5)  # object 1 does not see object 2
    assert a.maps["border_distance"].shape == (2, 64, 96)
    assert a.maps["memory_activity"].shape == (2, 2, 3)
    assert float(a.maps["border_distance"].abs().max()) <= 20.0


def test_remember_reinitialises_the_memories():
    torch.manual_seed(0)
    net = S2SNetwork(TINY)
    img, objects = _two_objects()
    m = S2S(net, input_size=(64, 96))
    m.start(img(0), objects)
    initial = [h.clone() for h, _ in m.states]
    m.step(img(1))
    assert not torch.allclose(m.states[0][0], initial[0])
    m.remember(img(0), objects)
    assert all(torch.allclose(h, h0) for (h, _), h0 in zip(m.states, initial))


def test_end_to_end_tiny_propagation(tiny_checkpoint):
    from conftest import moving_square_video
    from napari_vos import propagate
    from napari_vos.weights import sha256_of

    frames, truth = moving_square_video(n_frames=5, size=(64, 96))
    labels = truth[2] * 7  # object id 7 painted on frame 2
    result = propagate(frames, labels, method="s2s", frame=2, checkpoint=tiny_checkpoint, device="cpu",
                       maps=True, input_size=(64, 96))
    assert result.labels.shape == (5, 64, 96)
    assert set(np.unique(result.labels)) <= {0, 7}
    np.testing.assert_array_equal(result.labels[2], labels)
    assert result.maps["border_distance"].shape == (5, 1, 64, 96)
    assert result.maps["memory_activity"].shape == (5, 1, 2, 3)
    assert result.checkpoint_sha256 == sha256_of(tiny_checkpoint)
    assert result.frames_done == 4


class LazyStack:
    """A (T, H, W, 3) uint8 video whose frames are made when asked for and never stored."""

    def __init__(self, n: int, size=(32, 32)):
        self.shape = (n, *size, 3)
        self.dtype = np.dtype(np.uint8)
        self.reads = 0

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, t):
        self.reads += 1
        h, w = self.shape[1:3]
        frame = np.full((h, w, 3), 30, np.uint8)
        x0 = int(t) % (w - 10)
        frame[10:20, x0:x0 + 10] = 200
        return frame


def _tensor_bytes(obj, seen=None) -> int:
    """Bytes of all tensors reachable from a method's attributes, its network excluded."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.nn.Module):
        return 0
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple, set)):
        return sum(_tensor_bytes(v, seen) for v in obj)
    if hasattr(obj, "__dict__"):
        return sum(_tensor_bytes(v, seen) for v in vars(obj).values())
    return 0


def test_memory_of_a_long_stack_stays_flat(tiny_checkpoint, monkeypatch):
    from napari_vos import Session
    from napari_vos.methods import registry

    created = []
    original = registry.create

    def spy(*args, **kwargs):
        created.append(original(*args, **kwargs))
        return created[-1]

    monkeypatch.setattr(registry, "create", spy)
    video = LazyStack(200)
    labels = np.zeros((32, 32), np.int32)
    labels[10:20, 0:10] = 1
    session = Session(video, method="s2s", device="cpu", checkpoint=tiny_checkpoint, input_size=(32, 32))
    session.annotate(0, labels)
    held = {}
    for fr in session.propagate("forward"):
        if fr.index in (5, 199):
            held[fr.index] = _tensor_bytes(created[0])
    method = created[0]
    assert held[5] > 0 and held[199] == held[5]  # the states, and nothing per frame
    states_bytes = sum(h.numel() * h.element_size() + c.numel() * c.element_size() for h, c in method.states)
    assert held[199] == states_bytes
    assert session.result().frames_done == 199


# -- training ------------------------------------------------------------------------------------
def test_balanced_bce_matches_eq5_by_hand():
    from napari_vos.training.s2s_recipe import balanced_bce

    logits = torch.tensor([[[[2.0, -1.0], [0.5, -3.0]]]])  # one clip of one frame
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    beta = 3 / 4
    pos = -math.log(_sigmoid(2.0))
    neg = -math.log(1 - _sigmoid(-1.0)) - math.log(1 - _sigmoid(0.5)) - math.log(1 - _sigmoid(-3.0))
    expected = (beta * pos + (1 - beta) * neg) / 4
    assert float(balanced_bce(logits, target)[0, 0]) == pytest.approx(expected, rel=1e-5)
    # a frame the object has left: beta counted over the clip, so its false positives still cost
    clip_logits = torch.cat([logits, torch.full_like(logits, 4.0)], dim=1)
    clip_target = torch.cat([target, torch.zeros_like(target)], dim=1)
    losses = balanced_bce(clip_logits, clip_target)
    assert losses.shape == (1, 2) and float(losses[0, 1]) > 0.1
    beta_clip = 7 / 8
    assert float(losses[0, 1]) == pytest.approx((1 - beta_clip) * -math.log(1 - _sigmoid(4.0)), rel=1e-5)


def test_sequences_are_ordered_and_augmented_alike():
    from napari_vos.training.ordered_clips import FlipAffine, sample_ordered_clip

    t, h, w = 12, 40, 48
    frames = np.zeros((t, h, w, 3), np.uint8)
    labels = np.zeros((t, h, w), np.int32)
    for i in range(t):
        frames[i] = 10 * i + 20
        labels[i, 10:30, 12:36] = 1
    rng = np.random.default_rng(3)
    clip = sample_ordered_clip(frames, labels, 5, rng, (32, 32), max_step=2, backward=False,
                               augment=FlipAffine(flip=False, affine=None), visible_only=True)
    steps = np.round(np.diff(clip.frames[:, 16, 16, 0] * 255 / 10), 3)
    assert np.all(steps == steps[0]) and steps[0] in (1, 2)  # in order, one stride
    same = np.repeat(frames[:1], t, 0)
    clip = sample_ordered_clip(same, labels, 4, np.random.default_rng(5), (32, 32), max_step=1, backward=False,
                               augment=FlipAffine(), visible_only=True)
    assert np.allclose(clip.frames, clip.frames[:1]) and np.array_equal(clip.masks, np.repeat(clip.masks[:1], 4, 0))
    assert 0 < clip.masks[0].mean() < 1


def test_recipe_step_export_and_backbone_init(tmp_path):
    from napari_vos import weights
    from napari_vos.nn.backbones import ResNetFeatures
    from napari_vos.training.recipes import make_recipe
    from napari_vos.training.s2s_recipe import load_initial_weights

    torch.manual_seed(0)
    frtm_like = {f"backbone.{k}": v for k, v in ResNetFeatures("resnet18").state_dict().items()}
    frtm_path = tmp_path / "frtm.safetensors"
    weights.save_checkpoint(frtm_path, frtm_like, {"method": "frtm"})
    recipe = make_recipe("s2s", size=(64, 64), batch_size=2, init_checkpoint=str(frtm_path))
    recipe.min_length, recipe.max_length = 3, 3
    net = recipe.build(torch.device("cpu"))
    assert net.freeze_batchnorm
    assert torch.equal(net.encoder.backbone.conv3[0].conv1.weight, frtm_like["backbone.conv3.0.conv1.weight"])
    stem = net.initializer.pyramid.backbone.stem[0].weight
    assert torch.equal(stem[:, :3], frtm_like["backbone.stem.0.weight"]) and stem.shape[1] == 4
    batch = recipe.batch(np.random.default_rng(0))
    assert batch["frames"].shape == (2, 3, 3, 64, 64) and batch["distance"].shape == (2, 3, 64, 64)
    assert int(batch["distance"].max()) <= 41
    net.train()
    assert not net.encoder.backbone.stem[1].training  # frozen batch-norm statistics
    loss, stats = recipe.loss(net, batch, torch.device("cpu"))
    loss.backward()
    assert torch.isfinite(loss) and {"seg", "dist", "iou"} <= set(stats)
    tensors, meta = recipe.export_tensors(net)
    path = tmp_path / "s2s.safetensors"
    weights.save_checkpoint(path, tensors, meta)
    method = S2S.build(checkpoint=str(path))
    assert method.network.config == CONFIGS["light"]
    fresh = S2SNetwork(CONFIGS["light"])
    assert load_initial_weights(fresh, weights.load_state_dict_file(str(path))) == "s2s"


def test_an_init_checkpoint_of_another_network_is_a_clear_error():
    from napari_vos.methods.rgmp_network import RGMPConfig, RGMPNetwork
    from napari_vos.methods.s2s_network import CONFIGS, S2SNetwork
    from napari_vos.training.s2s_recipe import load_initial_weights

    rgmp = RGMPNetwork(RGMPConfig(backbone="resnet18", channels=32)).state_dict()  # a 4-channel conv1
    with pytest.raises(ValueError, match="do not fit this S2S configuration"):
        load_initial_weights(S2SNetwork(CONFIGS["light"]), rgmp)
