"""FlowMatching / FlowMatchingProcess against closed-form Gaussian ground truth."""

from __future__ import annotations

import math

import pytest
import torch

import nami
from nami_core.errors import ShapeError
from nami_core.testing import GaussianFlowField, gaussian_flow_map, gaussian_log_prob
from nami_paths import CosinePath, LinearPath
from nami_solvers import RK4, Euler, Heun, Midpoint

D = 3
MU = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
SIGMA_D = 0.6
SOLVERS = [Euler(steps=200), Midpoint(steps=50), Heun(steps=50), RK4(steps=20)]


def make_fm(solver, path=None, dtype=torch.float64, context_weight=None):
    field = GaussianFlowField(MU.to(dtype), SIGMA_D, path=path, context_weight=context_weight)
    return nami.FlowMatching(field, nami.StandardNormal((D,), dtype=dtype), solver, path=path)


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("path", [None, CosinePath()], ids=["linear", "cosine"])
def test_samples_match_target_moments(solver, path):
    n = 20000
    g = torch.Generator().manual_seed(0)
    x = make_fm(solver, path)().sample((n,), generator=g)
    assert x.shape == (n, D) and x.dtype == torch.float64
    # Monte Carlo error of the mean is sigma/sqrt(n); 5 standard errors plus solver bias.
    se_mean = SIGMA_D / math.sqrt(n)
    assert torch.allclose(x.mean(0), MU, atol=5 * se_mean + 0.01)
    cov = torch.cov(x.T)
    se_var = SIGMA_D**2 * math.sqrt(2.0 / n)
    assert torch.allclose(cov, SIGMA_D**2 * torch.eye(D, dtype=torch.float64), atol=6 * se_var + 0.01)


@pytest.mark.parametrize("path", [None, CosinePath()], ids=["linear", "cosine"])
def test_decode_matches_exact_flow_map(path):
    fm = make_fm(RK4(steps=40), path)
    z = torch.randn(64, D, dtype=torch.float64)
    x = fm().decode(z)
    exact = gaussian_flow_map(fm.field, z, 1.0, 0.0)
    assert torch.allclose(x, exact, atol=1e-7)


@pytest.mark.parametrize("estimator", [None, nami.ExactDivergence(), nami.HutchinsonDivergence(probes=1),
                                       nami.HutchinsonDivergence(probes=3, distribution="gaussian")],
                         ids=["default", "exact", "hutch-rademacher", "hutch-gaussian"])
def test_log_prob_matches_closed_form(estimator):
    fm = make_fm(RK4(steps=100))
    x = MU + SIGMA_D * torch.randn(100, D, dtype=torch.float64)
    with torch.no_grad():
        lp = fm().log_prob(x, estimator=estimator)
    exact = gaussian_log_prob(x, MU, SIGMA_D**2)
    assert lp.shape == (100,) and lp.dtype == torch.float64
    if isinstance(estimator, nami.HutchinsonDivergence) and estimator.distribution == "gaussian":
        # Isotropic Jacobian: a Gaussian probe gives div * |eps|^2 / d, unbiased but not exact.
        assert (lp - exact).mean().abs() < 0.5
    else:
        assert torch.allclose(lp, exact, atol=1e-8, rtol=0)


def test_sample_and_log_prob_consistent_with_log_prob():
    fm = make_fm(RK4(steps=100))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        x, lp = fm().sample_and_log_prob((50,), generator=g)
        exact = gaussian_log_prob(x, MU, SIGMA_D**2)
    assert x.shape == (50, D) and lp.shape == (50,)
    assert torch.allclose(lp, exact, atol=1e-8)


def test_encode_decode_round_trip():
    fm = make_fm(RK4(steps=40))
    x = MU + SIGMA_D * torch.randn(32, D, dtype=torch.float64)
    p = fm()
    z = p.encode(x)
    assert torch.allclose(z, gaussian_flow_map(fm.field, x, 0.0, 1.0), atol=1e-8)
    assert torch.allclose(p.decode(z), x, atol=1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_preserved_end_to_end(dtype):
    fm = make_fm(RK4(steps=8), dtype=dtype)
    p = fm()
    x = p.sample((7,))
    assert x.dtype == dtype
    assert p.log_prob(x.detach()).dtype == dtype
    xs, lp = p.sample_and_log_prob((4,))
    assert xs.dtype == dtype and lp.dtype == dtype
    assert p.encode(x).dtype == dtype
    ts, traj = p.trajectory((5,))
    assert ts.dtype == dtype and traj.dtype == dtype


def test_module_double_moves_base():
    field = nami.VelocityField(2, hidden=(8,))
    fm = nami.FlowMatching(field, nami.StandardNormal((2,)), Euler(steps=3))
    fm.double()
    x = fm().sample((4,))
    assert x.dtype == torch.float64 and fm.base.dtype == torch.float64


def test_conditional_shapes_and_moments():
    k = 2
    W = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]], dtype=torch.float64)
    fm = make_fm(RK4(steps=20), context_weight=W)
    c = torch.tensor([[0.0, 0.0], [1.0, 1.0], [-2.0, 0.5]], dtype=torch.float64)  # batch_shape (3,)
    p = fm(c)
    assert p.batch_shape == (3,) and p.event_shape == (D,)
    n = 8000
    x = p.sample((n,), generator=torch.Generator().manual_seed(3))
    assert x.shape == (n, 3, D)
    means = MU + c @ W.T
    assert torch.allclose(x.mean(0), means, atol=5 * SIGMA_D / math.sqrt(n) + 0.01)
    lp = p.log_prob(x[:10])
    assert lp.shape == (10, 3)
    assert torch.allclose(lp, gaussian_log_prob(x[:10], means, SIGMA_D**2), atol=1e-6)
    x2, lp2 = p.sample_and_log_prob((2, 5))
    assert x2.shape == (2, 5, 3, D) and lp2.shape == (2, 5, 3)
    ts, traj = p.trajectory((4,))
    assert traj.shape == (21, 4, 3, D) and ts.shape == (21,)
    assert ts[0] == 1.0 and ts[-1] == 0.0


def test_unconditional_shapes():
    p = make_fm(Euler(steps=4))()
    assert p.batch_shape == ()
    assert p.sample().shape == (D,)
    assert p.sample((2, 3)).shape == (2, 3, D)
    assert p.log_prob(torch.zeros(D, dtype=torch.float64)).shape == ()


def test_rsample_gradients_flow_and_sample_has_no_graph():
    field = nami.VelocityField(2, hidden=(8,))
    fm = nami.FlowMatching(field, nami.StandardNormal((2,)), Midpoint(steps=4))
    x = fm().sample((5,))
    assert not x.requires_grad
    y = fm().rsample((5,))
    y.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in field.parameters())


@pytest.mark.parametrize("estimator", [nami.ExactDivergence(), nami.HutchinsonDivergence(probes=2)])
def test_log_prob_is_trainable(estimator):
    torch.manual_seed(0)
    field = nami.VelocityField(2, hidden=(8,)).double()
    fm = nami.FlowMatching(field, nami.StandardNormal((2,), dtype=torch.float64), RK4(steps=4))
    x = torch.randn(6, 2, dtype=torch.float64)
    nll = -fm().log_prob(x, estimator=estimator).mean()
    nll.backward()
    grads = [p.grad for p in field.parameters()]
    assert all(g is not None for g in grads)
    # Finite-difference check of one parameter entry (probes fixed through the generator).
    w = field.net[0].weight
    g_auto = w.grad[0, 0].item()
    eps = 1e-6
    def nll_at(delta):
        with torch.no_grad():
            w[0, 0] += delta
            val = -fm().log_prob(x, estimator=estimator, generator=torch.Generator().manual_seed(0)).mean().item()
            w[0, 0] -= delta
        return val
    if isinstance(estimator, nami.HutchinsonDivergence):
        field.zero_grad()
        (-fm().log_prob(x, estimator=estimator, generator=torch.Generator().manual_seed(0)).mean()).backward()
        g_auto = w.grad[0, 0].item()
    g_fd = (nll_at(eps) - nll_at(-eps)) / (2 * eps)
    assert g_auto == pytest.approx(g_fd, rel=1e-5, abs=1e-8)


# -- bad input ---------------------------------------------------------------------------

def test_wrong_event_shape():
    p = make_fm(Euler(steps=2))()
    with pytest.raises(ShapeError, match="event_shape"):
        p.log_prob(torch.zeros(4, D + 1, dtype=torch.float64))
    with pytest.raises(ShapeError, match="event_shape"):
        p.decode(torch.zeros(4, 2, dtype=torch.float64))


def test_context_batch_mismatch():
    W = torch.zeros(D, 2, dtype=torch.float64)
    p = make_fm(Euler(steps=2), context_weight=W)(torch.zeros(3, 2, dtype=torch.float64))
    with pytest.raises(ShapeError, match="context"):
        p.log_prob(torch.zeros(5, 4, D, dtype=torch.float64))


def test_time_outside_unit_interval():
    p = make_fm(Euler(steps=2))()
    with pytest.raises(ValueError, match="t_from must lie in \\[0, 1\\]"):
        p.transport(torch.zeros(2, D, dtype=torch.float64), 1.5, 0.0)
    with pytest.raises(ValueError, match="t_to must lie in \\[0, 1\\]"):
        p.transport(torch.zeros(2, D, dtype=torch.float64), 1.0, -0.1)


def test_field_base_event_mismatch():
    with pytest.raises(ShapeError, match="event_ndim"):
        nami.FlowMatching(nami.VelocityField(2), nami.StandardNormal((1, 2)), Euler())


def test_solver_by_name():
    fm = nami.FlowMatching(nami.VelocityField(2, hidden=(8,)), nami.StandardNormal((2,)), "rk4", path="cosine")
    assert isinstance(fm.solver, RK4) and isinstance(fm.path, CosinePath)


def test_dtype_mismatch_is_a_clear_error():
    p = make_fm(Euler(steps=2), dtype=torch.float32)()
    with pytest.raises(TypeError, match="x has dtype torch.float64 but the model works in torch.float32"):
        p.log_prob(torch.zeros(3, D, dtype=torch.float64))


def test_sde_solver_refused_with_hint():
    from nami_core.errors import InvalidComponentError
    from nami_solvers import EulerMaruyama

    with pytest.raises(InvalidComponentError, match="an SDE solver; flow matching needs an ODE solver"):
        make_fm(EulerMaruyama(steps=3))
