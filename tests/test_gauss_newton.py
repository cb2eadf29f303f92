"""The Gauss-Newton/CG solver: exact on linear least squares, lowers the FRTM loss, batched per object."""
import pytest
import torch
import torch.nn.functional as F

from napari_vos.methods.frtm_target import (TargetModel, TargetModelSettings, _TargetProblem, pixel_weights,
                                            target_scores)
from napari_vos.methods import frtm_target
from napari_vos.nn.gauss_newton import autograd_linearisation, conjugate_gradient, gauss_newton


def test_gn_matches_direct_least_squares():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 40, 6, generator=g)
    b = torch.randn(3, 40, generator=g)

    def residuals(x):
        return [torch.einsum("kij,kj->ki", a, x) - b, 0.1 * x]

    x = gauss_newton(residuals, [torch.zeros(3, 6)], [30])[0]
    # the same regularised problem solved directly: (A^T A + 0.01 I) x = A^T b
    ata = a.transpose(1, 2) @ a + 0.01 * torch.eye(6)
    direct = torch.linalg.solve(ata, (a.transpose(1, 2) @ b[..., None]))[..., 0]
    assert torch.allclose(x, direct, atol=1e-4)


def test_cg_solves_each_batch_element_independently():
    g = torch.Generator().manual_seed(1)
    m = torch.randn(2, 5, 5, generator=g)
    spd = m @ m.transpose(1, 2) + 5 * torch.eye(5)
    spd[1] *= 100.0  # very different scales: shared step sizes would fail
    rhs = torch.randn(2, 5, generator=g)
    x = conjugate_gradient(lambda v: [torch.einsum("kij,kj->ki", spd, v[0])], [rhs], iterations=10)[0]
    assert torch.allclose(torch.einsum("kij,kj->ki", spd, x), rhs, atol=1e-3)


def test_target_model_fit_lowers_loss_and_separates_target():
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(2, 16, 8, 8, generator=g)
    labels = torch.zeros(2, 1, 16, 16)
    labels[:, :, 4:10, 4:10] = 1.0
    feats[:, :4, 2:5, 2:5] += 3.0  # a feature signature where the target is
    weights = torch.tensor([0.5, 0.5])
    tm = TargetModel(TargetModelSettings(channels=8), 16, 1, torch.device("cpu"), g)
    before = tm.loss(feats, labels, weights)
    tm.fit(feats, labels, weights, initial=True)
    after = tm.loss(feats, labels, weights)
    assert after.item() < 0.5 * before.item()
    scores = tm.scores(feats)[:, 0]
    assert scores[:, 2:5, 2:5].mean() > scores[:, 6:, 6:].mean() + 0.3
    # the w1-fixed update also does not increase the loss
    tm.update(feats, labels, weights)
    assert tm.loss(feats, labels, weights).item() <= after.item() + 1e-4


def test_pixel_weights_eq4():
    y = torch.zeros(1, 10, 10)
    y[0, 0, :5] = 1  # 5 target pixels of 100: kappa_hat = 0.05 < kappa_min = 0.1
    v = pixel_weights(y, kappa_min=0.1)
    assert torch.allclose(v[0, 0, 0], torch.tensor(0.1 / 0.05))
    assert torch.allclose(v[0, 5, 5], torch.tensor(0.9 / 0.95))
    big = torch.zeros(1, 10, 10)
    big[0, :5] = 1  # kappa_hat = 0.5 >= kappa_min: weights are all 1
    assert torch.allclose(pixel_weights(big, 0.1), torch.ones(1, 10, 10))


def test_objects_are_solved_as_independent_problems():
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(1, 8, 6, 6, generator=g)
    labels = (torch.rand(1, 2, 12, 12, generator=g) > 0.6).float()
    w = torch.ones(1)
    settings = TargetModelSettings(channels=4)
    joint = TargetModel(settings, 8, 2, torch.device("cpu"), torch.Generator().manual_seed(5))
    w1, w2 = joint.w1.clone(), joint.w2.clone()
    joint.fit(feats, labels, w, initial=True)
    for k in range(2):
        single = TargetModel(settings, 8, 1, torch.device("cpu"))
        single.w1, single.w2 = w1[k:k + 1].clone(), w2[k:k + 1].clone()
        single.fit(feats, labels[:, k:k + 1], w, initial=True)
        assert torch.allclose(single.w2, joint.w2[k:k + 1], atol=1e-4)
        assert torch.allclose(target_scores(single.w1, single.w2, feats)[:, 0],
                              joint.scores(feats)[:, k], atol=1e-3)


def test_objects_solved_in_chunks_match_one_joint_solve():
    g = torch.Generator().manual_seed(4)
    feats = torch.randn(2, 8, 6, 6, generator=g)
    labels = (torch.rand(2, 5, 12, 12, generator=g) > 0.6).float()
    w = torch.tensor([0.3, 0.7])
    models = []
    for chunk in (5, 2):
        tm = TargetModel(TargetModelSettings(channels=4, objects_per_solve=chunk), 8, 5, torch.device("cpu"),
                         torch.Generator().manual_seed(6))
        tm.fit(feats, labels, w, initial=True)
        tm.update(feats, labels, w)
        models.append(tm)
    # identical up to float rounding amplified by the truncated CG (a coupled solve differs by O(1))
    assert torch.allclose(models[0].w2, models[1].w2, atol=2e-3)
    assert torch.allclose(models[0].scores(feats), models[1].scores(feats), atol=1e-2)


def _two_layer_residuals(settings, tm, feats, labels, weights, w1=None):
    """Eq. (2)'s residuals with D written layer by layer, for autograd to differentiate."""
    def scores(a, b):
        per_problem = feats.ndim == 5
        hidden = torch.einsum("kdc,kmchw->mkdhw" if per_problem else "kdc,mchw->mkdhw", a, feats)
        return F.conv2d(hidden.flatten(1, 2), b, padding=1, groups=b.shape[0])

    def residuals(*w):
        a, b = (w[0], w[1]) if w1 is None else (w1, w[0])
        regs = [settings.reg_w1 ** 0.5 * a] if w1 is None else []
        return [_data_residual_by_hand(scores(a, b), labels, weights, settings.kappa_min), *regs,
                settings.reg_w2 ** 0.5 * b]
    return residuals


def _data_residual_by_hand(scores, labels, weights, kappa_min):
    """Eq. (2)'s data residual sqrt(gamma) sqrt(v) (y - U(D)) written out here (its square weighted by
    eq. 4's v), not through the target model's own ``residual_weights``: (K, M, hl, wl)."""
    up = F.interpolate(scores, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    gamma = weights.view(-1, 1, 1, 1)
    return (gamma.sqrt() * pixel_weights(labels, kappa_min).sqrt() * (labels - up)).transpose(0, 1)


@pytest.mark.parametrize("per_problem", [False, True])
@pytest.mark.parametrize("fixed_w1", [False, True])
def test_hand_linearisation_matches_autograd(per_problem, fixed_w1):
    """The target model's J v and J^T u through the composite filter equal autograd's through the
    two layers, for the fit (w1 and w2) and the update (w2, w1 fixed); so do the fitted weights."""
    g = torch.Generator().manual_seed(7)
    settings = TargetModelSettings(channels=6)
    k, m, c = 3, 2, 10
    feats = torch.randn(*((k,) if per_problem else ()), m, c, 7, 9, generator=g)
    labels = (torch.rand(m, k, 14, 18, generator=g) > 0.6).float()
    weights = torch.tensor([0.3, 0.7])
    tm = TargetModel(settings, c, k, torch.device("cpu"), g)
    w1 = tm.w1 if fixed_w1 else None
    params = [tm.w2] if fixed_w1 else [tm.w1, tm.w2]
    by_autograd = autograd_linearisation(_two_layer_residuals(settings, tm, feats, labels, weights, w1))
    by_hand = _TargetProblem(settings, feats, labels, weights, w1=w1).linearise
    with torch.enable_grad():
        (r_a, j_a, t_a), (r_h, j_h, t_h) = by_autograd(params), by_hand(params)
        v = [torch.randn(p.shape, generator=g) for p in params]
        u = [torch.randn(r.shape, generator=g) for r in r_a]
        for a, b in [*zip(r_a, r_h), *zip(j_a(v), j_h(v)), *zip(t_a(u), t_h(u))]:
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    iters = [5, 10]
    fitted_a = gauss_newton(_two_layer_residuals(settings, tm, feats, labels, weights, w1), params, iters)
    fitted_h = gauss_newton(None, params, iters, linearise=by_hand)
    for a, b in zip(fitted_a, fitted_h):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-3)


def test_gauss_newton_needs_residuals_or_a_linearisation():
    with pytest.raises(ValueError, match="residual function or a linearisation"):
        gauss_newton(None, [torch.zeros(1, 2)], [1])


def test_eq2_loss_with_default_settings_weights_pixels_by_eq4_and_samples_by_gamma():
    """Pins eq. 2 with the default settings: each squared error weighted by eq. 4's v (kappa_min = 0.1)
    and the sample weights gamma, in the loss and in the hand linearisation's residual."""
    settings = TargetModelSettings(channels=4)  # the defaults otherwise; kappa_min not passed
    tm = TargetModel(settings, 8, 1, torch.device("cpu"))
    tm.w1, tm.w2 = torch.zeros_like(tm.w1), torch.zeros_like(tm.w2)  # D(x) = 0: the residual is sqrt(gamma v) y
    feats = torch.randn(2, 8, 5, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.zeros(2, 1, 10, 10)
    labels[0, 0, 0, :5] = 1  # 5 of 100 pixels: kappa_hat = 0.05 < 0.1, v = 0.1 / 0.05 = 2 on the target
    labels[1, 0, :5] = 1  # 50 of 100 pixels: kappa = kappa_hat, v = 1
    gamma = torch.tensor([0.36, 0.64])
    expected = 0.5 * (0.36 * 5 * 2.0 + 0.64 * 50 * 1.0)  # 17.8
    assert tm.loss(feats, labels, gamma).item() == pytest.approx(expected, rel=1e-5)
    residuals = _TargetProblem(settings, feats, labels, gamma).linearise([tm.w1, tm.w2])[0]
    assert (0.5 * residuals[0].pow(2).sum()).item() == pytest.approx(expected, rel=1e-5)


def test_cg_runs_exactly_the_given_number_of_iterations():
    """Pins CG's iteration count: on A = diag(1, 2, 3), b = 1 one step gives x = 0.5 b (the
    steepest-descent step), three give the exact solution."""
    a = torch.tensor([[1.0, 2.0, 3.0]])
    b = [torch.ones(1, 3)]
    one = conjugate_gradient(lambda v: [a * v[0]], b, iterations=1)[0]
    torch.testing.assert_close(one, torch.full((1, 3), 0.5))
    three = conjugate_gradient(lambda v: [a * v[0]], b, iterations=3)[0]
    torch.testing.assert_close(three, torch.tensor([[1.0, 0.5, 1 / 3]]))


@pytest.mark.parametrize("config, initial, refit, update", [
    # section 3.5, Ours-fast: N_GN = 4 steps, N_CGi = 5 CG iterations in the first, N_CG = 10 in the
    # others; the every-t_s update one GN step of N_CGu = 5
    ("fast", [5, 10, 10, 10], [10, 10, 10, 10], [5]),
    # Ours: N_GN = 5, N_CGi = 5, N_CG = 10, N_CGu = 10
    ("full", [5, 10, 10, 10, 10], [10, 10, 10, 10, 10], [10]),
])
def test_fit_and_update_run_the_papers_gauss_newton_schedules(monkeypatch, config, initial, refit, update):
    """Pins the GN/CG schedules fit(initial=True), fit(initial=False) and update hand to the solver."""
    from napari_vos.methods.frtm import CONFIGS

    schedules = []
    original = frtm_target.gauss_newton

    def recording(residuals, params, cg_iterations, linearise=None):
        schedules.append(list(cg_iterations))
        return original(residuals, params, cg_iterations, linearise=linearise)

    monkeypatch.setattr(frtm_target, "gauss_newton", recording)
    g = torch.Generator().manual_seed(8)
    feats = torch.randn(2, 8, 4, 4, generator=g)
    labels = (torch.rand(2, 1, 8, 8, generator=g) > 0.6).float()
    w = torch.tensor([0.5, 0.5])
    settings = CONFIGS[config].target
    tm = TargetModel(TargetModelSettings(**{**settings.__dict__, "channels": 4}), 8, 1, torch.device("cpu"), g)
    tm.fit(feats, labels, w, initial=True)
    tm.fit(feats, labels, w, initial=False)
    tm.update(feats, labels, w)
    assert schedules == [initial, refit, update]
