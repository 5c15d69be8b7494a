"""The Diffusion process against the Gaussian closed forms: samples, likelihood, encode/decode,
reverse SDE, guidance, endpoints, shapes and errors."""

from __future__ import annotations

import math

import pytest
import torch

import nami
from nami_core.errors import ShapeError
from nami_diffusion.process import Diffusion
from nami_diffusion.samplers import DPMSolverPP
from nami_diffusion.schedules import EDMSchedule, VESchedule, VPSchedule
from nami_diffusion.testing import GaussianDiffusionModel, gaussian_marginal_log_prob
from nami_solvers import RK4, Euler, Heun
from nami_solvers.sde import EulerMaruyama, StochasticHeun

F64 = torch.float64
D = 2
MU = torch.tensor([1.0, -2.0], dtype=F64)
SD = 0.6
SCHEDULES = [VPSchedule(), VESchedule(), EDMSchedule()]
IDS = ["vp", "ve", "edm"]
PARAMS = ["eps", "x0", "score", "v", "velocity"]


def make(schedule, solver, p="eps", **kw):
    model = GaussianDiffusionModel(MU, SD, schedule, p)
    return Diffusion(model, schedule, solver, parameterization=p, event_shape=(D,), **kw).double()


def target_moments(schedule, t_end):
    t = torch.tensor(t_end, dtype=F64)
    a = float(schedule.alpha(t))
    var = a * a * SD**2 + float(schedule.sigma(t)) ** 2
    return a * MU, var


def check_moments(x, mean, var, extra=0.0):
    n = x.shape[0]
    assert torch.allclose(x.mean(0), mean, atol=5 * math.sqrt(var / n) + extra)
    cov = torch.cov(x.T)
    assert torch.allclose(cov, var * torch.eye(D, dtype=F64), atol=6 * var * math.sqrt(2 / n) + extra)


def exact_log_prob(schedule, x, t_end):
    """log p_{t_end}(x) of the probability-flow model: exact flow map to t = 1 and the N(0, s1^2) prior."""
    ts = torch.tensor([t_end, 1.0], dtype=F64)
    a = schedule.alpha(ts)
    v = a**2 * SD**2 + schedule.sigma(ts) ** 2
    x1 = a[1] * MU + (x - a[0] * MU) * torch.sqrt(v[1] / v[0])
    log_det = 0.5 * D * torch.log(v[1] / v[0])
    prior = gaussian_marginal_log_prob(x1, torch.zeros(D, dtype=F64), schedule.prior_std**2)
    return prior + log_det, x1


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
@pytest.mark.parametrize("p", PARAMS)
def test_probability_flow_log_prob_and_encode_are_exact(schedule, p):
    d = make(schedule, RK4(steps=100), p)
    g = torch.Generator().manual_seed(1)
    mean, var = target_moments(schedule, d.t_end)
    x = mean + math.sqrt(var) * torch.randn(16, D, generator=g, dtype=F64)
    expected, x1 = exact_log_prob(schedule, x, d.t_end)
    with torch.no_grad():
        lp = d().log_prob(x)
        z = d().encode(x)
    assert lp.shape == (16,) and lp.dtype == F64
    assert torch.allclose(lp, expected, atol=2e-5)
    assert torch.allclose(z, x1, atol=2e-4 * schedule.prior_std)
    # the model's density is the exact marginal up to the prior's mismatch at t = 1 (log p1 vs prior)
    model = d.model
    p1 = model.log_prob(x1, 1.0)
    prior = gaussian_marginal_log_prob(x1, torch.zeros(D, dtype=F64), schedule.prior_std**2)
    assert torch.allclose(lp - prior + p1, model.log_prob(x, d.t_end), atol=2e-5)


@pytest.mark.parametrize("estimator", [nami.ExactDivergence(), nami.HutchinsonDivergence(probes=1)],
                         ids=["exact", "hutchinson"])
def test_log_prob_estimators_and_sample_and_log_prob(estimator):
    s = VPSchedule()
    d = make(s, RK4(steps=60))
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        x, lp = d().sample_and_log_prob((32,), estimator=estimator, generator=g)
        again = d().log_prob(x, estimator=estimator, generator=g)
    expected, _ = exact_log_prob(s, x, d.t_end)
    # isotropic Jacobian: Rademacher Hutchinson is exact
    assert torch.allclose(lp, expected, atol=1e-4) and torch.allclose(again, expected, atol=1e-4)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
def test_decode_inverts_encode(schedule):
    d = make(schedule, RK4(steps=60), "v")
    mean, var = target_moments(schedule, d.t_end)
    x = mean + math.sqrt(var) * torch.randn(8, D, dtype=F64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        back = d().decode(d().encode(x))
    assert torch.allclose(back, x, atol=1e-4)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
@pytest.mark.parametrize("p", ["eps", "x0", "v"])
def test_ode_samples_match_target_moments(schedule, p):
    d = make(schedule, Heun(steps=40), p)
    x = d().sample((4000,), generator=torch.Generator().manual_seed(4))
    assert x.shape == (4000, D) and x.dtype == F64
    check_moments(x, *target_moments(schedule, d.t_end), extra=0.01)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
@pytest.mark.parametrize("solver", [EulerMaruyama(steps=400), StochasticHeun(steps=100)], ids=["em", "heun"])
def test_reverse_sde_samples_match_target_moments(schedule, solver):
    d = make(schedule, solver, "score")
    x = d().sample((4000,), generator=torch.Generator().manual_seed(5))
    check_moments(x, *target_moments(schedule, d.t_end), extra=0.015)


def test_reverse_sde_noise_scale_keeps_marginals_and_sign():
    s = VPSchedule()
    for noise in [0.0, 0.5, 2.0]:
        d = make(s, EulerMaruyama(steps=300), "eps", sde_noise=noise)
        x = d().sample((4000,), generator=torch.Generator().manual_seed(6))
        check_moments(x, *target_moments(s, d.t_end), extra=0.015)
    # drift = f - g^2 score (Anderson), spelled out
    d = make(s, EulerMaruyama(steps=10), "eps")
    x = torch.randn(5, D, dtype=F64)
    t = torch.full((5,), 0.4, dtype=F64)
    score = GaussianDiffusionModel(MU, SD, s, "score")(x, t)
    expected = s.f_coef(t)[:, None] * x - s.g2(t)[:, None] * score
    assert torch.allclose(d().reverse_drift(x, t), expected, atol=1e-10)


def test_final_denoising_step_and_singular_end_time():
    s = VPSchedule()
    d = make(s, Euler(steps=20), "eps", final_step="denoise")
    model = d.model
    z = torch.randn(7, D, dtype=F64, generator=torch.Generator().manual_seed(7))
    model.calls = 0
    with torch.no_grad():
        x = d().decode(z)
        x_end = make(s, Euler(steps=20), "eps")().decode(z)
    assert model.calls == 21  # 20 steps + 1 denoising call
    assert torch.allclose(x, model.mean() + s.alpha(1e-3) * SD**2 / (s.alpha(1e-3) ** 2 * SD**2 + s.sigma(1e-3) ** 2)
                          * (x_end - s.alpha(1e-3) * MU), atol=1e-12)
    ts, xs = d().trajectory(z=z)
    assert ts[0] == 1.0 and ts[-1] == 0.0 and torch.equal(xs[-1], x)
    # sigma(t_end) = 0 is singular for an ODE/SDE solver: refused with a clear error
    for solver in [RK4(steps=4), EulerMaruyama(steps=4)]:
        with pytest.raises(ValueError, match="singular"):
            make(s, solver, t_end=0.0)
    # a sampler lands on the data with a final denoising step instead
    x = make(s, DPMSolverPP(steps=10, spacing="uniform"), t_end=0.0)().sample((10,))
    assert torch.isfinite(x).all()
    with pytest.raises(ValueError, match="tractable"):
        d().sample_and_log_prob((3,))


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
@pytest.mark.parametrize("p", PARAMS)
def test_no_nan_at_default_end_times(schedule, p):
    for solver in [Euler(steps=5), RK4(steps=3), EulerMaruyama(steps=5), StochasticHeun(steps=3), DPMSolverPP(steps=4)]:
        d = make(schedule, solver, p, final_step="none" if isinstance(solver, DPMSolverPP) else "denoise")
        ts, xs = d().trajectory((6,), generator=torch.Generator().manual_seed(8))
        assert torch.isfinite(xs).all(), (type(solver).__name__, p)


def make_conditional():
    s = VPSchedule()
    w = torch.tensor([[1.0], [2.0]], dtype=F64)  # mu(c) = MU + W c
    model = GaussianDiffusionModel(MU, SD, s, "eps", context_weight=w)
    return s, model


def test_classifier_free_guidance_scale_zero_and_one_are_exact():
    s, model = make_conditional()
    c = torch.tensor([[0.5], [-1.0], [2.0]], dtype=F64)
    x = torch.randn(4, 3, D, dtype=F64)
    t = torch.full((4, 3), 0.3, dtype=F64)
    cond, uncond = model(x, t, c.expand(4, 3, 1)), model(x, t, None)
    for w, expected in [(0.0, uncond), (1.0, cond)]:
        d = Diffusion(model, s, RK4(steps=2), event_shape=(D,), guidance_scale=w).double()
        model.calls = 0
        out = d(c).predict(x, t, "eps")
        assert torch.equal(out, expected) and model.calls == 1
    d = Diffusion(model, s, RK4(steps=2), event_shape=(D,), guidance_scale=3.0).double()
    assert torch.allclose(d(c).predict(x, t, "eps"), uncond + 3.0 * (cond - uncond), atol=1e-12)
    # in any parameterisation: the guided x0 is the same affine combination
    x0c = GaussianDiffusionModel(MU, SD, s, "x0", context_weight=model.W)(x, t, c.expand(4, 3, 1))
    x0u = GaussianDiffusionModel(MU, SD, s, "x0", context_weight=model.W)(x, t, None)
    assert torch.allclose(d(c).predict(x, t, "x0"), x0u + 3.0 * (x0c - x0u), atol=1e-10)
    # a null context tensor is used for the unconditional call
    d = Diffusion(model, s, RK4(steps=2), event_shape=(D,), guidance_scale=0.0,
                  null_context=torch.tensor([0.0], dtype=F64)).double()
    assert torch.allclose(d(c).predict(x, t, "eps"), model(x, t, torch.zeros(4, 3, 1, dtype=F64)))


def test_guided_sampling_moves_the_mean():
    # CFG with scale w on Gaussian means: the guided score is that of N(mu_u + w (mu_c - mu_u), .)
    # (same covariance), so samples have that mean
    s, model = make_conditional()
    c = torch.tensor([[1.0]], dtype=F64)
    w = 2.0
    d = Diffusion(model, s, RK4(steps=30), event_shape=(D,), guidance_scale=w).double()
    x = d(c).sample((4000,), generator=torch.Generator().manual_seed(9))
    assert x.shape == (4000, 1, D)
    mean, var = target_moments(s, d.t_end)
    shift = float(s.alpha(torch.tensor(d.t_end, dtype=F64))) * w * (model.W @ c[0])
    check_moments(x[:, 0], mean + shift, var, extra=0.01)


def test_guidance_hook_adds_a_score_correction():
    s = VESchedule()
    model = GaussianDiffusionModel(MU, SD, s, "x0")
    delta = torch.tensor([0.3, -0.1], dtype=F64)
    calls = []

    def hook(x, t, c):
        calls.append(c)
        return delta.expand_as(x)

    d = Diffusion(model, s, RK4(steps=2), parameterization="x0", event_shape=(D,), guidance=hook).double()
    x = torch.randn(5, D, dtype=F64)
    t = torch.full((5,), 0.4, dtype=F64)
    exact_score = GaussianDiffusionModel(MU, SD, s, "score")(x, t)
    assert torch.allclose(d().score(x, t), exact_score + delta, atol=1e-10)
    u = d().velocity(x, t)
    assert torch.allclose(u, -0.5 * s.g2(t)[:, None] * (exact_score + delta), atol=1e-9)  # f = 0 for VE
    assert calls and calls[0] is None


def test_conditional_shapes_and_per_context_means():
    s, model = make_conditional()
    c = torch.tensor([[0.0], [1.0], [-2.0]], dtype=F64)
    d = Diffusion(model, s, DPMSolverPP(steps=15), event_shape=(D,), ode_solver=RK4(steps=5)).double()
    x = d(c).sample((3000,), generator=torch.Generator().manual_seed(10))
    assert x.shape == (3000, 3, D)
    for i in range(3):
        mean = MU + (model.W @ c[i])
        assert torch.allclose(x[:, i].mean(0), mean, atol=0.05)
    ts, xs = d(c).trajectory((2,))
    assert xs.shape == (len(ts), 2, 3, D) and ts[0] == 1.0 and ts[-1] == 0.0
    with pytest.raises(ShapeError, match="context"):
        d(c).log_prob(torch.zeros(4, 2, D, dtype=F64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_preserved_end_to_end(dtype):
    s = VPSchedule()
    model = GaussianDiffusionModel(MU.to(dtype), SD, s, "eps")
    for solver in [RK4(steps=4), EulerMaruyama(steps=4), DPMSolverPP(steps=4)]:
        d = Diffusion(model, s, solver, event_shape=(D,)).to(dtype)
        x = d().sample((5,))
        assert x.dtype == dtype
    d = Diffusion(model, s, RK4(steps=4), event_shape=(D,)).to(dtype)
    assert d().log_prob(x).dtype == dtype


def test_registry_names_and_facade():
    assert nami.Diffusion is Diffusion and nami.DPMSolverPP is DPMSolverPP
    model = GaussianDiffusionModel(MU, SD, VPSchedule(), "eps")
    d = nami.Diffusion(model, "vp", "dpm_solver_pp", event_shape=(D,))
    assert isinstance(d.schedule, VPSchedule) and isinstance(d.solver, DPMSolverPP) and d.solver_kind == "sampler"
    assert nami.Diffusion(model, "vp", "rk4", event_shape=(D,)).solver_kind == "ode"
    assert nami.Diffusion(model, "ve", "euler_maruyama", event_shape=(D,)).solver_kind == "sde"
    assert nami.EulerMaruyama is EulerMaruyama and nami.StochasticHeun is StochasticHeun
    with pytest.raises(nami.ComponentNotFoundError, match="rk5"):
        nami.Diffusion(model, "vp", "rk5", event_shape=(D,))


def test_bad_configurations():
    s = VPSchedule()
    model = GaussianDiffusionModel(MU, SD, s, "eps")
    with pytest.raises(ValueError, match="parameterization must be one of"):
        Diffusion(model, s, RK4(), parameterization="noise", event_shape=(D,))
    with pytest.raises(ShapeError, match="event_ndim"):
        Diffusion(model, s, RK4(), event_shape=(1, D))
    with pytest.raises(TypeError, match="event_shape is required"):
        Diffusion(model, s, RK4())
    with pytest.raises(ValueError, match="t_end must lie in"):
        Diffusion(model, s, RK4(), event_shape=(D,), t_end=1.0)
    with pytest.raises(ValueError, match="final_step"):
        Diffusion(model, s, RK4(), event_shape=(D,), final_step="clip")
    with pytest.raises(TypeError, match="integrate"):
        Diffusion(model, s, object(), event_shape=(D,))
    with pytest.raises(TypeError, match="schedule must provide"):
        Diffusion(model, object(), RK4(), event_shape=(D,))
    d = Diffusion(model, s, DPMSolverPP(), event_shape=(D,)).double()
    with pytest.raises(TypeError, match="ode_solver"):
        d().log_prob(torch.zeros(3, D, dtype=F64))
    assert d().log_prob.__self__ is not None
    ok = Diffusion(model, s, DPMSolverPP(), event_shape=(D,), ode_solver=RK4(steps=10)).double()
    assert ok().log_prob(torch.zeros(3, D, dtype=F64)).shape == (3,)
    with pytest.raises(ShapeError, match="event_shape"):
        ok().log_prob(torch.zeros(3, D + 1, dtype=F64))
    with pytest.raises(ValueError, match="t_from"):
        ok().transport(torch.zeros(3, D, dtype=F64), 0.0, 1.0)
