"""The FRTM training probe: a closed-form weighted ridge fit that gradients can pass through."""
import torch

from napari_vos.methods.frtm_target import residual_pixel_weights
from napari_vos.training.frtm_recipe import FRTMRecipe
from napari_vos.training.ridge_probe import ridge_probe_loss, ridge_probe_scores


def test_probe_matches_a_primal_weighted_ridge_solve():
    g = torch.Generator().manual_seed(0)
    c, h, w = 6, 5, 4  # more equations (20) than unknowns (6): primal and dual forms must agree
    ref = torch.randn(1, c, h, w, generator=g, dtype=torch.float64)
    labels = (torch.rand(1, h, w, generator=g, dtype=torch.float64) > 0.7).double()
    val = torch.randn(1, 2, c, h, w, generator=g, dtype=torch.float64)
    scores = ridge_probe_scores(ref, labels, val, reg=0.1)

    x = ref[0].flatten(1).T  # (N, C)
    v = residual_pixel_weights(labels[0]).flatten()
    xv, yv = x * v[:, None], labels[0].flatten() * v
    lam = 0.1 * (xv * xv).sum(1).mean()
    weights = torch.linalg.solve(xv.T @ xv + lam * torch.eye(c, dtype=x.dtype), xv.T @ yv)
    expected = torch.einsum("c,mchw->mhw", weights, val[0])
    torch.testing.assert_close(scores[0], expected)


def test_probe_separates_an_object_with_a_distinct_feature_and_scales_freely():
    ref = torch.zeros(1, 3, 8, 8)
    ref[:, 0] = 1.0
    labels = torch.zeros(1, 8, 8)
    labels[:, 2:5, 2:5] = 1
    ref[:, 1] = labels  # channel 1 marks the object
    val = ref[:, None].clone()
    low = ridge_probe_scores(ref, labels, val, reg=1e-3)
    high = ridge_probe_scores(ref * 100, labels, val * 100, reg=1e-3)
    torch.testing.assert_close(low, high, rtol=1e-3, atol=1e-4)
    assert low[0, 0][labels[0] > 0].min() > 0.9 and low[0, 0][labels[0] == 0].abs().max() < 0.1
    assert ridge_probe_loss(low, labels[:, None]) < 0.01


def test_probe_loss_trains_features_through_both_frames():
    ref = torch.randn(2, 4, 6, 6, requires_grad=True)
    val = torch.randn(2, 3, 4, 6, 6, requires_grad=True)
    labels = (torch.rand(2, 6, 6) > 0.6).float()
    loss = ridge_probe_loss(ridge_probe_scores(ref, labels, val), labels[:, None].expand(2, 3, 6, 6))
    loss.backward()
    assert ref.grad.abs().sum() > 0 and val.grad.abs().sum() > 0


def test_recipe_reports_the_probe_only_when_conv4_trains():
    rng = __import__("numpy").random.default_rng(0)
    for first, expect in (("conv4", True), ("conv5", False)):
        recipe = FRTMRecipe(size=(64, 96), batch_size=1, synthetic_fraction=1.0, train_backbone_from=first)
        model = recipe.build(torch.device("cpu"))
        loss, stats = recipe.loss(model, recipe.batch(rng), torch.device("cpu"))
        assert torch.isfinite(loss) and ("probe_loss" in stats) == expect


def test_primal_and_dual_forms_give_the_same_scores():
    """Each branch of the solve against the other form's formula: more pixels than channels takes
    the primal branch (checked against the dual formula), fewer takes the dual one (against the primal)."""
    g = torch.Generator().manual_seed(3)
    for c, side in ((8, 6), (40, 4)):  # N = 36 > C = 8: primal branch; N = 16 <= C = 40: dual branch
        ref = torch.randn(2, c, side, side, generator=g, dtype=torch.float64)
        labels = (torch.rand(2, side, side, generator=g, dtype=torch.float64) > 0.6).double()
        val = torch.randn(2, 3, c, side, side, generator=g, dtype=torch.float64)
        v = residual_pixel_weights(labels).flatten(1)
        xv = ref.flatten(2).transpose(1, 2) * v[..., None]  # (B, N, C)
        yv = (labels.flatten(1) * v)[..., None]
        lam = 0.1 * xv.pow(2).sum(-1).mean(1)[:, None, None]
        n, eye = side * side, lambda k: torch.eye(k, dtype=xv.dtype)
        if n > c:  # dual formula: w = X^T (X X^T + lam I)^-1 y
            w = xv.transpose(1, 2) @ torch.linalg.solve(xv @ xv.transpose(1, 2) + lam * eye(n), yv)
        else:  # primal formula: w = (X^T X + lam I)^-1 X^T y
            w = torch.linalg.solve(xv.transpose(1, 2) @ xv + lam * eye(c), xv.transpose(1, 2) @ yv)
        expected = torch.einsum("bc,bmchw->bmhw", w[..., 0], val)
        torch.testing.assert_close(ridge_probe_scores(ref, labels, val, reg=0.1), expected)


def test_backward_through_a_few_hundred_pixels():
    """14x24 stride-16 maps (a 384x216 crop) with features that need grad: the solve must not fail."""
    g = torch.Generator().manual_seed(4)
    feats = torch.randn(4, 3, 256, 14, 24, generator=g).requires_grad_(True)
    labels = (torch.rand(4, 14, 24, generator=g) > 0.6).float()
    ridge_probe_scores(feats[:, 0], labels, feats[:, 1:]).sum().backward()
    assert torch.isfinite(feats.grad).all() and feats.grad.abs().sum() > 0
