"""OSVOS-AT: attention maps (eq. 1), attention transfer (eq. 6), balanced loss (eq. 5), online
fine-tuning with progress and cancel, dense CRF, offline training recipe, end-to-end propagation."""
import math
import threading

import numpy as np
import pytest
import torch

from napari_vos.methods.osvos_at import OSVOSAT
from napari_vos.methods.osvos_at_finetune import FinetuneSettings, finetune, frame_loss
from napari_vos.methods.osvos_at_net import CONFIGS, OSVOSATNetwork, balanced_bce
from napari_vos.nn.losses import balance_weights
from napari_vos.nn.dense_crf import PermutohedralLattice, crf_foreground


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _square(n=5, seed=0):
    from conftest import moving_square_video

    frames, truth = moving_square_video(n_frames=n, size=(64, 64), step=3, seed=seed)
    return frames, truth


def _image(frames, t):
    return torch.from_numpy(frames[t]).permute(2, 0, 1).float() / 255


def _iou(a, b):
    a, b = np.asarray(a) > 0.5, np.asarray(b) > 0.5
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.mark.parametrize("config,size", [("light", 64), ("paper", 32)])
def test_attention_maps_are_in_unit_interval_and_shaped_like_their_features(config, size):
    torch.manual_seed(0)
    net = OSVOSATNetwork(CONFIGS[config]).eval()
    net.heads = net.heads.expanded(2)
    image = torch.rand(1, 3, size, size)
    with torch.no_grad():
        feats = net.features(image)
        attention = net.heads.attention_maps(feats)
        out = net(image)
    assert len(feats) == 4
    for x, a, s in zip(feats, attention, net.strides):
        assert a.shape == (1, 2, *x.shape[-2:])
        assert x.shape[-1] == size // s
        assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert out.logits.shape == (1, 2, size, size)
    assert all(torch.equal(u, a) for u, a in zip(out.attention_used, out.attention))  # teacher stream: A^i itself


def test_attention_maps_are_the_sigmoid_of_the_attention_convolution():
    """Pins eq. 1's non-linearity: A = sigmoid(conv(X)); a conv with weight 0 and bias 2 gives
    sigmoid(2) = 0.8808 everywhere."""
    from napari_vos.methods.osvos_at_net import AttentionHeads

    heads = AttentionHeads((4, 6), side_channels=2, n_objects=2)
    with torch.no_grad():
        for conv in heads.attention:
            conv.weight.zero_()
            conv.bias.fill_(2.0)
        maps = heads.attention_maps([torch.randn(1, 4, 5, 5), torch.randn(1, 6, 3, 3)])
    for a in maps:
        torch.testing.assert_close(a, torch.full_like(a, 1 / (1 + math.exp(-2.0))))


def test_eq6_student_output_changes_with_the_teacher_attention():
    torch.manual_seed(0)
    net = OSVOSATNetwork(CONFIGS["light"]).eval()
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        feats = net.features(image)
        alone = net.stream(feats, (64, 64))
        zero = net.stream(feats, (64, 64), [torch.zeros_like(a) for a in alone.attention])
        teacher_a = [torch.rand_like(a) for a in alone.attention]
        teacher_b = [torch.rand_like(a) for a in alone.attention]
        student_a = net.stream(feats, (64, 64), teacher_a)
        student_b = net.stream(feats, (64, 64), teacher_b)
    torch.testing.assert_close(zero.logits, alone.logits)
    for used, own, t in zip(student_a.attention_used, student_a.attention, teacher_a):
        torch.testing.assert_close(used, own + t)  # A_new = A_s + A_t
    assert (student_a.logits - alone.logits).abs().max() > 1e-4
    assert (student_a.logits - student_b.logits).abs().max() > 1e-4

    # the same through the method: the student's mask follows the teacher's maps; off when transfer is off
    frames, truth = _square()
    method = OSVOSAT(OSVOSATNetwork(CONFIGS["light"]), finetune_iterations=0, crf=False)  # the network's own
    method.start(_image(frames, 0), torch.from_numpy(truth[0][None]).float())
    first = method.step(_image(frames, 1)).probs
    method.teacher_attention = [a * 0.1 for a in method.teacher_attention]
    second = method.step(_image(frames, 1)).probs
    assert (first - second).abs().max() > 1e-5
    method.attention_transfer = False
    off = method.step(_image(frames, 1))
    with torch.no_grad():
        own = method.network(_image(frames, 1)[None])
    torch.testing.assert_close(off.probs, torch.sigmoid(own.logits[0]))


def test_balanced_loss_weights_match_eq5():
    target = torch.zeros(1, 1, 10, 10)
    target[0, 0, :2] = 1  # |Y+| = 20, |Y-| = 80
    w_pos, w_neg = balance_weights(target)
    assert math.isclose(float(w_neg / w_pos), 20 / 80, rel_tol=1e-6)  # (1 - beta) / beta = |Y+| / |Y-|
    assert math.isclose(float(w_pos + w_neg), 1.0, rel_tol=1e-6)
    assert math.isclose(float(w_pos * 20), float(w_neg * 80), rel_tol=1e-6)  # both classes weigh the same
    logits = torch.randn(1, 1, 10, 10)
    p = torch.sigmoid(logits)
    pos = target > 0.5
    expected = -(0.8 * torch.log(p[pos]).sum() + 0.2 * torch.log(1 - p[~pos]).sum()) / 100
    torch.testing.assert_close(balanced_bce(logits, target), expected, rtol=1e-5, atol=1e-6)
    # a student frame the object has left: alone its beta is 1 and its false positives cost nothing;
    # with the video's other student frame it shares beta (20 of 200 pixels are object: 0.9)
    frames = torch.cat([target, torch.zeros_like(target)])
    confident = torch.full((2, 1, 10, 10), 4.0)
    alone = balanced_bce(confident[1:], frames[1:])
    assert float(alone) == 0.0
    pooled = balanced_bce(confident, frames, images_per_beta=2)
    frame_1 = 0.1 * -torch.nn.functional.logsigmoid(torch.tensor(-4.0))  # (1 - beta) on each of its pixels
    per_image_0 = balanced_bce(confident[:1], frames[:1])  # frame 0 with the pooled beta, by hand:
    frame_0 = (0.9 * 20 * -torch.nn.functional.logsigmoid(torch.tensor(4.0))
               + 0.1 * 80 * -torch.nn.functional.logsigmoid(torch.tensor(-4.0))) / 100
    torch.testing.assert_close(pooled, (frame_0 + frame_1) / 2, rtol=1e-5, atol=1e-6)
    assert float(per_image_0) != float(frame_0)


def test_finetuning_lowers_the_loss_and_reports_progress_and_cancels():
    torch.manual_seed(0)
    frames, truth = _square()
    image, objects = _image(frames, 0), torch.from_numpy(truth[0][None]).float()
    net = OSVOSATNetwork(CONFIGS["light"])
    before = frame_loss(net, image, objects)
    calls = []
    settings = FinetuneSettings(iterations=12, lr=1e-3, crop=None, frozen_stages=3)
    with torch.inference_mode():  # the engine calls start() in inference mode
        report = finetune(net, [image], [objects], settings, progress=lambda *a: calls.append(a))
    after = frame_loss(net, image, objects)
    assert after < 0.7 * before, (before, after)
    assert [c[:2] for c in calls] == [(i, 12) for i in range(1, 13)]
    assert all(math.isfinite(c[2]) for c in calls) and not report.cancelled
    stem = [p.clone() for p in net.backbone.stem.parameters()]
    assert all(p.requires_grad for p in net.backbone.stem.parameters())  # frozen only while fine-tuning

    event = threading.Event()
    stop_at = lambda step, total, loss: event.set() if step == 3 else None  # noqa: E731
    report = finetune(net, [image], [objects], FinetuneSettings(iterations=50, crop=32), stop_at, event)
    assert report.cancelled and report.iterations == 3
    assert all(torch.equal(a, b) for a, b in zip(stem, net.backbone.stem.parameters()))


def test_finetuning_crops_without_the_object_still_pay_for_false_positives():
    # pins: a crop holding no pixel of an object takes the whole frame's beta for it; its own would be
    # 1, a loss of exactly 0 whatever the network predicts there; a crop holding the object keeps its own
    torch.manual_seed(0)
    frames, truth = _square()
    image = _image(frames, 0)
    objects = torch.zeros(1, 64, 64)
    objects[0, 2:10, 2:10] = 1  # a small object in a corner: most 32-pixel crops miss it
    net = OSVOSATNetwork(CONFIGS["light"])
    report = finetune(net, [image], [objects], FinetuneSettings(iterations=30, lr=1e-3, crop=32, augment=False))
    assert min(report.losses) > 0.0, report.losses
    w_pos, w_neg = balance_weights(objects[None])
    empty = torch.zeros(1, 1, 16, 16)
    confident = torch.full((1, 1, 16, 16), 4.0)  # false positives over a crop without the object
    loss = balanced_bce(confident, empty, weights=(w_pos, w_neg))
    torch.testing.assert_close(loss, w_neg[0, 0] * -torch.nn.functional.logsigmoid(torch.tensor(-4.0)))
    from napari_vos.methods.osvos_at_finetune import _crop_weights

    crop = torch.zeros(1, 2, 16, 16)
    crop[0, 0, :4] = 1  # object 1 fills a quarter of the crop, object 2 is not in it
    frame = (torch.tensor([[0.9, 0.8]]), torch.tensor([[0.1, 0.2]]))
    got = _crop_weights(crop, frame)
    torch.testing.assert_close(got[0], torch.tensor([[0.75, 0.8]]))
    torch.testing.assert_close(got[1], torch.tensor([[0.25, 0.2]]))


def test_dense_crf_lattice_matches_brute_force_and_cleans_a_noisy_mask():
    torch.manual_seed(0)
    feats = torch.rand(300, 5) * 3
    values = (feats[:, :1] < 1.5).float()
    lattice = PermutohedralLattice(feats)
    approx = lattice.filter(values) / lattice.filter(torch.ones(300, 1))
    kernel = torch.exp(-0.5 * torch.cdist(feats, feats) ** 2)
    exact = kernel @ values / kernel.sum(1, keepdim=True)
    assert float((approx - exact).abs().mean()) < 0.03

    image = torch.zeros(3, 48, 48)
    image[:, 12:36, 12:36] = 0.8
    truth = image[0] > 0.5
    noisy = torch.where(truth, 0.7, 0.3) + 0.45 * (torch.rand(48, 48) - 0.5) * 2
    probs = noisy.clamp(0.01, 0.99)[None]
    refined = crf_foreground(image, probs)
    assert refined.shape == (1, 48, 48)
    assert _iou(refined[0] > 0.5, truth) > _iou(probs[0] > 0.5, truth) + 0.05
    assert _iou(refined[0] > 0.5, truth) > 0.95


def test_recipe_step_backbone_from_frtm_and_checkpoint_round_trip(tmp_path, random_frtm_checkpoint):
    from napari_vos import weights
    from napari_vos.training.loop import TrainSettings, train
    from napari_vos.training.recipes import make_recipe

    recipe = make_recipe("osvos_at", size=(64, 64), batch_size=1, init_checkpoint=random_frtm_checkpoint)
    recipe.n_student = 2
    frtm_state = weights.load_state_dict_file(random_frtm_checkpoint)
    net = recipe.build(torch.device("cpu"))
    torch.testing.assert_close(net.backbone.conv4[0].conv1.weight, frtm_state["backbone.conv4.0.conv1.weight"])
    batch = recipe.batch(np.random.default_rng(0))
    assert batch[0].frames.shape == (3, 64, 64, 3)
    loss, stats = recipe.loss(net, batch, torch.device("cpu"))
    assert math.isfinite(float(loss)) and {"teacher_loss", "student_loss", "student_iou"} <= set(stats)
    loss.backward()
    assert net.heads.attention[0].weight.grad.abs().sum() > 0

    model = train(recipe, tmp_path / "run", TrainSettings(steps=1, save_every=1, log_every=1), log=lambda s: None)
    tensors, meta = recipe.export_tensors(model)
    path = tmp_path / "osvos_at.safetensors"
    weights.save_checkpoint(path, tensors, meta)
    method = OSVOSAT.build(checkpoint=str(path), finetune_iterations=1)
    assert method.network.config == CONFIGS["light"] and method.checkpoint_sha256
    with pytest.raises(ValueError, match=r"finetune_iteration \(did you mean finetune_iterations\?\); osvos_at takes"):
        OSVOSAT.build(checkpoint=str(path), finetune_iteration=1)


def test_recipe_student_frames_of_one_video_share_one_beta(monkeypatch):
    """Pins the recipe's eq. 5 for the student stream: its t - 1 frames of a video share one beta
    (images_per_beta = n_student), the teacher frame has its own."""
    from napari_vos.training import osvos_at_recipe
    from napari_vos.training.clips import Clip
    from napari_vos.training.osvos_at_recipe import OSVOSATRecipe

    calls = []
    original = osvos_at_recipe.balanced_bce

    def recording(logits, target, images_per_beta=1):
        calls.append((logits.shape[0], images_per_beta))
        return original(logits, target, images_per_beta)

    monkeypatch.setattr(osvos_at_recipe, "balanced_bce", recording)
    torch.manual_seed(0)
    recipe = OSVOSATRecipe(size=(32, 32), batch_size=2, n_student=3)
    rng = np.random.default_rng(0)
    masks = np.zeros((4, 32, 32), np.float32)
    masks[:, 8:20, 10:24] = 1
    batch = [Clip(rng.random((4, 32, 32, 3), dtype=np.float32), masks) for _ in range(2)]
    recipe.loss(OSVOSATNetwork(CONFIGS["light"]), batch, torch.device("cpu"))
    assert calls == [(2, 1), (2 * 3, 3)]  # teacher: 2 videos x 1 frame; student: 2 videos x 3 frames


def test_end_to_end_tiny_propagation_two_objects_finetune_once(tmp_path):
    import napari_vos
    from napari_vos import weights
    from napari_vos.training.osvos_at_recipe import OSVOSATRecipe

    torch.manual_seed(0)
    path = tmp_path / "osvos_at-random.safetensors"
    weights.save_checkpoint(path, *OSVOSATRecipe().export_tensors(OSVOSATNetwork(CONFIGS["light"])))
    frames, truth = _square()
    labels = truth[2].copy()
    labels[40:56, 40:60] = 2
    calls = []
    result = napari_vos.propagate(frames, labels, method="osvos_at", frame=2, device="cpu", checkpoint=str(path),
                                  maps=True, finetune_iterations=2, finetune_crop=None,
                                  on_finetune=lambda *a: calls.append(a))
    assert result.labels.shape == (5, 64, 64)
    np.testing.assert_array_equal(result.labels[2], labels)
    assert set(np.unique(result.labels)) <= {0, 1, 2}
    assert len(calls) == 2  # the backward pass reuses the forward pass's fine-tuned network
    for i, stride in enumerate((4, 8, 16, 32), start=1):
        assert result.maps[f"attention_{i}"].shape == (5, 2, 64 // stride, 64 // stride)
    assert result.maps["attention_1"].max() <= 2.0 and result.maps["attention_1"].min() >= 0.0


def test_remember_finetunes_on_all_annotated_frames_and_makes_the_new_frame_the_teacher():
    torch.manual_seed(0)
    frames, truth = _square()
    calls = []
    method = OSVOSAT(OSVOSATNetwork(CONFIGS["light"]), finetune_iterations=0, remember_iterations=2,
                     finetune_crop=None, on_finetune=lambda *a: calls.append(a))
    method.start(_image(frames, 0), torch.from_numpy(truth[0][None]).float())
    before = [a.clone() for a in method.teacher_attention]
    head = method.network.heads.fuse_weight.clone()
    method.remember(_image(frames, 4), torch.from_numpy(truth[4][None]).float())
    assert len(method.annotated) == 2 and [c[:2] for c in calls] == [(1, 2), (2, 2)]
    assert not torch.equal(head, method.network.heads.fuse_weight)
    expected = method.network.heads.attention_maps(method.network.features(_image(frames, 4)[None]))
    for a, b, e in zip(before, method.teacher_attention, expected):
        assert not torch.equal(a, b)
        torch.testing.assert_close(b, e)


@pytest.mark.real_working_size
def test_shipped_checkpoint_follows_a_moving_object():
    """The shipped parent, fine-tuned with its stored defaults on frame 0, segments a moving square at
    the working size a user gets (the 96x128 video enlarged to the 480-pixel shorter side)."""
    from conftest import moving_square_video, square_tracking_ious

    from napari_vos import Session, weights

    if not weights.list_checkpoints("osvos_at"):
        pytest.skip("no OSVOS-AT checkpoint is registered")
    frames, _ = moving_square_video(n_frames=8, size=(96, 128))
    session = Session(frames, method="osvos_at", device="cpu")
    assert session.work_size == (480, 640)
    ious = square_tracking_ious("osvos_at")
    assert min(ious) > 0.75, ious


def test_a_correction_fine_tunes_alike_whether_the_start_came_from_the_cache(tmp_path):
    """The fine-tuning seeds follow the annotated frames, so a second run of the same session (its
    start's fine-tuning taken from the cache) gives the same labels after a correction."""
    import napari_vos
    from napari_vos import weights
    from napari_vos.methods import osvos_at
    from napari_vos.methods.finetune_cache import cache_size
    from napari_vos.training.osvos_at_recipe import OSVOSATRecipe

    torch.manual_seed(0)
    path = tmp_path / "osvos_at-random.safetensors"
    weights.save_checkpoint(path, *OSVOSATRecipe().export_tensors(OSVOSATNetwork(CONFIGS["light"])))
    frames, truth = _square()
    osvos_at.clear_finetune_cache()
    runs = []
    for _ in range(2):  # the first run fills the cache, the second starts from it
        session = napari_vos.Session(frames, method="osvos_at", device="cpu", checkpoint=str(path),
                                     finetune_iterations=3, remember_iterations=3, finetune_crop=None)
        session.annotate(0, truth[0])
        session.annotate(2, truth[2])
        runs.append(session.run("forward").labels.copy())
    assert cache_size() == 1
    np.testing.assert_array_equal(runs[0], runs[1])
    osvos_at.clear_finetune_cache()
    assert cache_size() == 0
