"""Native SDE solvers (nami_solvers.sde): convergence orders measured against closed forms."""

from __future__ import annotations

import math

import attrs
import numpy as np
import pytest
import torch

from nami_core.errors import ShapeError
from nami_core.protocols import SDESolver
from nami_solvers.sde import EulerMaruyama, StochasticHeun, sde_solve

F64 = torch.float64


def _slope(ns, errs):
    """Least-squares order p in err ~ C * N^-p."""
    return -float(np.polyfit(np.log(ns), np.log(errs), 1)[0])


def _gbm(method, ns, paths=4000, mu=0.5, s=0.6, seed=0):
    """Geometric Brownian motion dX = mu X dt + s X dW on [0, 1], X0 = 1, one Brownian path per
    sample shared by all step counts; returns mean |X_N - X_exact| for each N."""
    g = torch.Generator().manual_seed(seed)
    fine = max(ns)
    dw_fine = torch.randn(fine, paths, generator=g, dtype=F64) * math.sqrt(1.0 / fine)
    w1 = dw_fine.sum(0)
    ito = torch.exp((mu - 0.5 * s * s) + s * w1)
    strat = torch.exp(mu + s * w1)
    exact = ito if method == "euler_maruyama" else strat
    errs = []
    for n in ns:
        dw = dw_fine.reshape(n, fine // n, paths).sum(1)
        sol = sde_solve(method, n, lambda x, t: mu * x, lambda x, t: s * x, torch.ones(paths, dtype=F64),
                        0.0, 1.0, time_shape=(paths,), increments=dw)
        errs.append(float((sol.y - exact).abs().mean()))
    return errs


def test_euler_maruyama_strong_order_half():
    ns = [8, 16, 32, 64, 128]
    errs = _gbm("euler_maruyama", ns)
    assert abs(_slope(ns, errs) - 0.5) < 0.15


def test_heun_strong_order_one_to_stratonovich_solution():
    # Heun converges to the Stratonovich solution X0 exp(mu t + s W_t) (documented), with order 1
    ns = [8, 16, 32, 64, 128]
    errs = _gbm("heun", ns)
    assert abs(_slope(ns, errs) - 1.0) < 0.15


def test_euler_maruyama_weak_order_one():
    # Ornstein-Uhlenbeck dX = -X dt + 0.5 dW, X0 = 1: E[X_1] = e^-1
    theta, paths = 1.0, 400_000
    ns = [4, 8, 16]
    errs = []
    for i, n in enumerate(ns):
        g = torch.Generator().manual_seed(100 + i)
        sol = EulerMaruyama(steps=n).integrate_sde(
            lambda x, t: -theta * x, lambda x, t: torch.full_like(x, 0.5), torch.ones(paths, dtype=F64), 0.0, 1.0,
            time_shape=(paths,), generator=g)
        errs.append(abs(float(sol.y.mean()) - math.exp(-theta)))
    assert abs(_slope(ns, errs) - 1.0) < 0.2


@pytest.mark.parametrize("solver", [EulerMaruyama(steps=200), StochasticHeun(steps=100)], ids=["em", "heun"])
def test_ou_moments_forward_and_backward(solver):
    # forward: stationary OU started at 0 reaches variance s^2/(2 theta) (1 - e^{-2 theta T})
    theta, s, n = 1.0, 0.8, 20000
    g = torch.Generator().manual_seed(1)
    y = solver.integrate_sde(lambda x, t: -theta * x, lambda x, t: s * torch.ones_like(x),
                             torch.zeros(n, dtype=F64), 0.0, 1.0, time_shape=(n,), generator=g).y
    var = s * s / (2 * theta) * (1 - math.exp(-2 * theta))
    assert abs(float(y.mean())) < 5 * math.sqrt(var / n)
    assert abs(float(y.var()) - var) < 6 * var * math.sqrt(2 / n) + 0.01
    # backward in time (t1 < t0): pure noise dW accumulates variance |t1 - t0| = 1, not -1
    y = solver.integrate_sde(lambda x, t: torch.zeros_like(x), lambda x, t: torch.ones_like(x),
                             torch.zeros(n, dtype=F64), 1.0, 0.0, time_shape=(n,), generator=g).y
    assert abs(float(y.var()) - 1.0) < 6 * math.sqrt(2 / n)


def test_backward_drift_uses_negative_step():
    # with g = 0, integrating dy = y dt from t=1 to t=0 gives y(0) = y(1) e^{-1}
    y0 = torch.ones(3, dtype=F64)
    for solver, tol in [(EulerMaruyama(steps=1000), 1e-3), (StochasticHeun(steps=100), 1e-4)]:
        y = solver.integrate_sde(lambda y, t: y, lambda y, t: torch.zeros_like(y), y0, 1.0, 0.0).y
        assert torch.allclose(y, y0 * math.exp(-1.0), atol=tol)


def test_reproducible_and_nfe_and_time_rule():
    seen = []

    def drift(y, t):
        seen.append((tuple(t.shape), t.dtype))
        return -y

    y0 = torch.zeros(5, 2, dtype=torch.float32)
    for solver, nfe in [(EulerMaruyama(steps=7), 7), (StochasticHeun(steps=7), 14)]:
        a = solver.integrate_sde(drift, lambda y, t: torch.ones_like(y), y0, 0.0, 1.0, time_shape=(5,),
                                 generator=torch.Generator().manual_seed(3))
        b = solver.integrate_sde(drift, lambda y, t: torch.ones_like(y), y0, 0.0, 1.0, time_shape=(5,),
                                 generator=torch.Generator().manual_seed(3))
        c = solver.integrate_sde(drift, lambda y, t: torch.ones_like(y), y0, 0.0, 1.0, time_shape=(5,),
                                 generator=torch.Generator().manual_seed(4))
        assert a.nfe == nfe and torch.equal(a.y, b.y) and not torch.equal(a.y, c.y)
        assert a.y.dtype == torch.float32
    assert set(seen) == {((5,), torch.float32)}


def test_trajectory_and_zero_span():
    sol = EulerMaruyama(steps=4).integrate_sde(lambda y, t: -y, lambda y, t: torch.ones_like(y),
                                               torch.zeros(3, dtype=F64), 1.0, 0.0, time_shape=(3,),
                                               trajectory=True, generator=torch.Generator().manual_seed(0))
    assert sol.ts.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert sol.ys.shape == (5, 3) and torch.equal(sol.ys[-1], sol.y) and torch.equal(sol.ys[0], torch.zeros(3, dtype=F64))
    same = StochasticHeun(steps=3).integrate_sde(lambda y, t: y, lambda y, t: y, torch.ones(2), 0.5, 0.5)
    assert same.nfe == 0 and torch.equal(same.y, torch.ones(2))


def test_configs_are_validated_frozen_and_satisfy_protocol():
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        EulerMaruyama(steps=0)
    with pytest.raises(TypeError, match="steps"):
        StochasticHeun(steps=2.5)
    s = EulerMaruyama(steps=3)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        s.steps = 4  # type: ignore[misc]
    assert attrs.evolve(s, steps=5) == EulerMaruyama(steps=5)
    assert isinstance(s, SDESolver) and isinstance(StochasticHeun(), SDESolver)
    assert repr(s) == "EulerMaruyama(steps=3)"


def test_bad_inputs():
    f = lambda y, t: y  # noqa: E731
    with pytest.raises(ShapeError, match="time_shape"):
        EulerMaruyama(steps=2).integrate_sde(f, f, torch.zeros(3, 2), 0.0, 1.0, time_shape=(4,))
    with pytest.raises(ShapeError, match="increments"):
        sde_solve("euler_maruyama", 2, f, f, torch.zeros(3), 0.0, 1.0, increments=torch.zeros(3, 3))
    with pytest.raises(TypeError, match="Tensor"):
        EulerMaruyama(steps=2).integrate_sde(f, f, (torch.zeros(3),), 0.0, 1.0)
    with pytest.raises(ValueError, match="finite"):
        EulerMaruyama(steps=2).integrate_sde(f, f, torch.zeros(3), 0.0, math.inf)
    with pytest.raises(ValueError, match="method"):
        sde_solve("rk4", 2, f, f, torch.zeros(3), 0.0, 1.0)
