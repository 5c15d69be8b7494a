"""Tests of the adaptive Runge–Kutta engine and the Dormand–Prince 5(4) solver.

Ground truth from closed forms (GROUND_TRUTH.md): a non-normal linear ODE solved by the
matrix exponential; Gaussian data under the linear path (exact flow map and exact
log-density change); y' = y^2, whose solution 1 / (1 - t) blows up at t = 1.
"""

from __future__ import annotations

import math
import time

import attrs
import pytest
import torch

from nami_core.errors import SolverError
from nami_core.protocols import ODESolver, Solution
from nami_core.testing import GaussianFlowField, gaussian_flow_map
from nami_solvers import DOPRI5, AdaptiveRK, AdaptiveSolution, Dopri5, EmbeddedTableau, ExplicitRK
from nami_solvers.tableaus import _order_conditions

F64 = torch.float64
A = torch.tensor([[-1.0, 3.0], [0.0, -2.0]], dtype=F64)  # non-normal
Y0 = torch.tensor([1.0, -0.5], dtype=F64)


def linear_field(y, t):
    return y @ A.T


def linear_exact(y0, t0, t1):
    return y0 @ torch.linalg.matrix_exp(A * (t1 - t0)).T


def gaussian(dtype=F64):
    return GaussianFlowField(torch.tensor([0.7, -1.2, 0.3], dtype=dtype), 0.5)


def randn(*shape, dtype=F64, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


class Counter:
    """Wraps a field and counts its evaluations."""

    def __init__(self, fn):
        self.fn, self.calls, self.times = fn, 0, []

    def __call__(self, y, t):
        self.calls += 1
        self.times.append(t.reshape(-1)[0].item() if t.numel() else t.item())
        return self.fn(y, t)


# Bogacki–Shampine 3(2): FSAL, Hermite dense output by default
BS3 = EmbeddedTableau(c=(0, 1 / 2, 3 / 4, 1), a=((), (1 / 2,), (0, 3 / 4), (2 / 9, 1 / 3, 4 / 9)),
                      b=(2 / 9, 1 / 3, 4 / 9, 0), b_hat=(7 / 24, 1 / 4, 1 / 3, 1 / 8),
                      order=3, order_hat=2, dense_order=3, name="bs3")
# Heun–Euler 2(1): not FSAL, no dense output
HEUN_EULER = EmbeddedTableau(c=(0, 1), a=((), (1,)), b=(1 / 2, 1 / 2), b_hat=(1, 0),
                             order=2, order_hat=1, name="heun_euler")


# -- the tableau ---------------------------------------------------------------------------

def test_dopri5_tableau_properties():
    assert DOPRI5.stages == 7 and DOPRI5.fsal and DOPRI5.order == 5 and DOPRI5.order_hat == 4
    assert DOPRI5.error_order == 4 and DOPRI5.dense_order == 4
    assert BS3.fsal and not HEUN_EULER.fsal and HEUN_EULER.dense_rows() is None


@pytest.mark.parametrize("theta", [0.1, 1 / 3, 0.5, 0.9])
def test_dense_output_satisfies_fourth_order_conditions(theta):
    # y(t + theta h) = y + h sum b_i(theta) k_i satisfies sum b_i(theta) Phi_i(tree) =
    # theta^rho / gamma(tree) for every tree of up to 4 nodes
    rows = DOPRI5.dense
    bt = [sum(coef * theta ** (k + 1) for k, coef in enumerate(r)) for r in rows]
    a = DOPRI5.tableau.a
    conds = _order_conditions(4, [c / theta for c in DOPRI5.c],
                              [[x / theta for x in row] for row in a], [v / theta for v in bt])
    for name, value, required in conds:
        assert value == pytest.approx(required, abs=1e-12), name
    at_one = [sum(r) for r in rows]
    assert at_one == pytest.approx(list(DOPRI5.b), abs=1e-14)


@pytest.mark.parametrize("weights, order", [("b", 5), ("b_hat", 4)])
def test_pair_orders_measured_with_the_fixed_step_engine(weights, order):
    # the propagating weights are 5th order and the embedded ones 4th order (measured,
    # beyond the order conditions ButcherTableau checks, which stop at 4)
    from nami_solvers import ButcherTableau

    tab = ButcherTableau(c=DOPRI5.c, a=DOPRI5.a, b=getattr(DOPRI5, weights), order=min(order, 4))
    exact = linear_exact(Y0, 0.0, 1.0)
    e = [(ExplicitRK(tableau=tab, steps=n).integrate(linear_field, Y0, 0.0, 1.0).y - exact)
         .norm().item() for n in (16, 32)]
    assert e[1] > 1e-11
    assert math.log2(e[0] / e[1]) == pytest.approx(order, abs=0.2)


def test_bad_embedded_tableaus():
    with pytest.raises(ValueError, match="b_hat must have 2 entries"):
        EmbeddedTableau(c=(0, 1), a=((), (1,)), b=(0.5, 0.5), b_hat=(1,), order=2, order_hat=1)
    with pytest.raises(ValueError, match="embedded"):
        EmbeddedTableau(c=(0, 1), a=((), (1,)), b=(0.5, 0.5), b_hat=(1, 0), order=2, order_hat=2)
    with pytest.raises(ValueError, match="dense output"):
        EmbeddedTableau(c=(0, 1), a=((), (1,)), b=(0.5, 0.5), b_hat=(1, 0), order=2, order_hat=1,
                        dense=((1.0,), (0.1,)))
    bad_dense = [list(r) for r in DOPRI5.dense]
    for row, delta in ((2, 1e-3), (3, -1e-3)):  # += delta (theta^2 - theta^3): b_i(1) and the
        bad_dense[row][1] += delta              # sum over i stay, 4th order is lost
        bad_dense[row][2] -= delta
    with pytest.raises(ValueError, match="does not have order 4"):
        attrs.evolve(DOPRI5, dense=bad_dense)


# -- accuracy ------------------------------------------------------------------------------

@pytest.mark.parametrize("t0, t1", [(0.0, 1.0), (1.0, 0.0)])
def test_linear_ode_error_scales_with_tolerance(t0, t1):
    exact = linear_exact(Y0, t0, t1)
    errors, nfes = [], []
    for rtol in (1e-4, 1e-6, 1e-8, 1e-10):
        sol = Dopri5(rtol=rtol, atol=rtol * 1e-2).integrate(linear_field, Y0, t0, t1)
        err = (sol.y - exact).norm().item()
        assert err <= 10 * rtol * exact.norm().item()
        errors.append(err)
        nfes.append(sol.nfe)
    assert all(a > b for a, b in zip(errors, errors[1:]))
    assert all(a < b for a, b in zip(nfes, nfes[1:]))
    # a 5th-order method: 100x tighter tolerance costs about 100^(1/5) = 2.5x the work
    assert nfes[-1] / nfes[-2] < 4


@pytest.mark.parametrize("t0, t1", [(1.0, 0.0), (0.0, 1.0)])
def test_gaussian_flow_error_scales_with_tolerance(t0, t1):
    g = gaussian()
    x = randn(64, 3)
    exact = gaussian_flow_map(g, x, t0, t1)
    errors = []
    for rtol in (1e-3, 1e-5, 1e-7, 1e-9):
        sol = Dopri5(rtol=rtol, atol=rtol).integrate(lambda y, t: g(y, t), x, t0, t1, time_shape=(64,))
        err = (sol.y - exact).abs().max().item()
        assert err <= 20 * rtol * (1 + exact.abs().max().item())
        errors.append(err)
    assert all(a > b for a, b in zip(errors, errors[1:]))


def test_augmented_likelihood_state():
    # d(log p)/dt = -div u, with div u = d v'/(2v): -int = -(d/2) log(v(t1)/v(t0))
    g = gaussian()
    x = randn(16, 3)
    calls = Counter(lambda s, t: (g(s[0], t), -3 * _dv(t) / (2 * _v(t))))
    sol = Dopri5(rtol=1e-8, atol=1e-10).integrate(calls, (x, torch.zeros(16, dtype=F64)), 0.0, 1.0,
                                                  time_shape=(16,), trajectory=True)
    assert isinstance(sol.y, tuple) and len(sol.y) == 2
    exact_logp = -1.5 * math.log(_v(torch.tensor(1.0)) / _v(torch.tensor(0.0)))
    torch.testing.assert_close(sol.y[1], torch.full((16,), exact_logp, dtype=F64), atol=1e-7, rtol=0)
    torch.testing.assert_close(sol.y[0], gaussian_flow_map(g, x, 0.0, 1.0), atol=1e-7, rtol=0)
    assert sol.nfe == calls.calls
    assert isinstance(sol.ys, tuple) and sol.ys[0].shape == (sol.n_accepted + 1, 16, 3)
    assert sol.ys[1].shape == (sol.n_accepted + 1, 16)


def _v(t):
    return (1 - t) ** 2 * 0.25 + t**2


def _dv(t):
    return -2 * (1 - t) * 0.25 + 2 * t


def test_one_step_size_for_the_whole_batch():
    # the RMS error norm is invariant to repeating the batch: same steps, same nfe
    g = gaussian()
    x = randn(4, 3)
    one = Dopri5().integrate(lambda y, t: g(y, t), x, 1.0, 0.0, time_shape=(4,))
    many = Dopri5().integrate(lambda y, t: g(y, t), x.repeat(25, 1), 1.0, 0.0, time_shape=(100,))
    assert one.nfe == many.nfe
    torch.testing.assert_close(many.y[:4], one.y, atol=1e-12, rtol=0)


# -- evaluation counts -----------------------------------------------------------------------

@pytest.mark.parametrize("first_step", [None, 0.5])
def test_nfe_is_exact(first_step):
    # y' = -30 (y - cos t): a first step of 0.5 is rejected, and the automatic choice may be
    counted = Counter(lambda y, t: -30.0 * (y - torch.cos(t)))
    sol = Dopri5(rtol=1e-6, atol=1e-8, first_step=first_step).integrate(
        counted, torch.zeros(3, dtype=F64), 0.0, 2.0)
    assert isinstance(sol, AdaptiveSolution) and isinstance(sol, Solution)
    extra = 1 if first_step is None else 0
    assert sol.nfe == counted.calls == 1 + extra + 6 * (sol.n_accepted + sol.n_rejected)
    if first_step is not None:
        assert sol.n_rejected >= 1


def test_nfe_of_a_pair_without_fsal():
    counted = Counter(lambda y, t: -y)
    sol = AdaptiveRK(tableau=HEUN_EULER, interpolate=False, rtol=1e-4, atol=1e-6).integrate(
        counted, torch.ones(2, dtype=F64), 0.0, 1.0)
    # k1 of every accepted step but the last is a fresh evaluation
    assert sol.nfe == counted.calls == 2 + 1 * (sol.n_accepted + sol.n_rejected) + sol.n_accepted - 1
    assert abs(sol.y[0].item() - math.exp(-1)) < 1e-3


def test_bogacki_shampine_pair_through_the_same_engine():
    exact = linear_exact(Y0, 0.0, 1.0)
    errors = [(AdaptiveRK(tableau=BS3, rtol=r, atol=r * 1e-2).integrate(linear_field, Y0, 0.0, 1.0).y
               - exact).norm().item() for r in (1e-4, 1e-7)]
    assert errors[1] < errors[0] / 100 and errors[1] < 1e-6
    sol = AdaptiveRK(tableau=BS3, rtol=1e-8, atol=1e-10).integrate(linear_field, Y0, 0.0, 1.0,
                                                                 t_eval=[0.25, 0.5])
    torch.testing.assert_close(sol.ys[1], linear_exact(Y0, 0.0, 0.5), atol=1e-6, rtol=0)


# -- failures: never a hang ------------------------------------------------------------------

def test_max_steps_raises_solver_error():
    with pytest.raises(SolverError, match=r"max_steps=5 .* t=.* step size h="):
        Dopri5(max_steps=5).integrate(lambda y, t: -y, torch.ones(3), 0.0, 50.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blow_up_raises_solver_error_quickly(dtype):
    # y' = y^2, y(0) = 1: y = 1 / (1 - t) blows up at t = 1
    start = time.perf_counter()
    with pytest.raises(SolverError, match="step size underflow at t=") as info:
        Dopri5().integrate(lambda y, t: y * y, torch.ones(4, dtype=dtype), 0.0, 2.0)
    assert time.perf_counter() - start < 5.0
    t_reached = float(str(info.value).split("at t=")[1].split(":")[0])
    assert t_reached == pytest.approx(1.0, abs=1e-4)


def test_non_finite_field_raises_solver_error():
    with pytest.raises(SolverError, match="non-finite values at t=0.0"):
        Dopri5().integrate(lambda y, t: y * float("nan"), torch.ones(2), 0.0, 1.0)
    # with a given first step the NaN error estimate rejects every step until h underflows
    with pytest.raises(SolverError, match="underflow"):
        Dopri5(first_step=0.1).integrate(lambda y, t: y * float("nan"), torch.ones(2), 0.0, 1.0)


# -- endpoints, output times, directions ------------------------------------------------------

@pytest.mark.parametrize("t0, t1", [(1.0, 0.0), (0.0, 1.0), (0.3, -2.7)])
def test_trajectory_endpoints_exact(t0, t1):
    counted = Counter(lambda y, t: -y)
    sol = Dopri5().integrate(counted, torch.ones(2, dtype=F64), t0, t1, trajectory=True)
    assert sol.ts[0].item() == t0 and sol.ts[-1].item() == t1
    assert sol.ts.shape == (sol.n_accepted + 1,)
    assert torch.equal(sol.ys[-1], sol.y) and torch.equal(sol.ys[0], torch.ones(2, dtype=F64))
    steps = torch.diff(sol.ts)
    assert bool(((steps > 0) if t1 > t0 else (steps < 0)).all())
    assert min(counted.times) >= min(t0, t1) and max(counted.times) <= max(t0, t1)
    assert counted.times[-1] == t1
    torch.testing.assert_close(sol.y, torch.ones(2, dtype=F64) * math.exp(-(t1 - t0)), rtol=1e-4, atol=0)


@pytest.mark.parametrize("interpolate", [True, False])
@pytest.mark.parametrize("t0, t1, t_eval", [
    (1.0, 0.0, [1.0, 0.9, 0.61, 0.61, 0.25, 0.0]),
    (0.0, 1.0, torch.tensor([0.1, 0.333, 0.5])),
])
def test_requested_times_hit_exactly(interpolate, t0, t1, t_eval):
    g = gaussian()
    x = randn(8, 3)
    solver = Dopri5(rtol=1e-7, atol=1e-9, interpolate=interpolate)
    sol = solver.integrate(lambda y, t: g(y, t), x, t0, t1, time_shape=(8,), t_eval=t_eval)
    wanted = torch.as_tensor(t_eval, dtype=F64)
    assert torch.equal(sol.ts, wanted)
    assert sol.ys.shape == (len(wanted), 8, 3)
    for tk, yk in zip(wanted.tolist(), sol.ys):
        torch.testing.assert_close(yk, gaussian_flow_map(g, x, t0, tk), atol=1e-6, rtol=0)
    plain = solver.integrate(lambda y, t: g(y, t), x, t0, t1, time_shape=(8,))
    if interpolate:  # dense output costs nothing and leaves the solve unchanged
        assert sol.nfe == plain.nfe and torch.equal(sol.y, plain.y)
    else:
        assert sol.nfe >= plain.nfe
    if wanted[0].item() == t0:
        assert torch.equal(sol.ys[0], x)


def test_hit_mode_is_more_accurate_between_steps():
    # loose tolerance: the 4th-order interpolant is visibly worse than landing on the times
    exact = [linear_exact(Y0, 0.0, tk) for tk in (0.13, 0.41, 0.77)]
    errs = {}
    for interp in (True, False):
        sol = Dopri5(rtol=1e-3, atol=1e-5, interpolate=interp).integrate(
            linear_field, Y0, 0.0, 1.0, t_eval=[0.13, 0.41, 0.77])
        errs[interp] = max((yk - ek).norm().item() for yk, ek in zip(sol.ys, exact))
    assert errs[False] < errs[True] < 1e-2


@pytest.mark.parametrize("trajectory", [False, True])
def test_zero_length_interval(trajectory):
    y0 = torch.randn(3)
    sol = Dopri5().integrate(lambda y, t: pytest.fail("no evaluation expected"), y0, 0.4, 0.4,
                             trajectory=trajectory)
    assert sol.y is y0 and sol.nfe == 0
    if trajectory:
        assert sol.ts.tolist() == [pytest.approx(0.4)]
    sol = Dopri5().integrate(lambda y, t: y, y0, 0.4, 0.4, t_eval=[0.4, 0.4])
    assert sol.ys.shape == (2, 3)


# -- dtype, device, autograd -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("time_shape", [(), (5,), (2, 5)])
def test_dtype_and_time_shape_preserved(dtype, time_shape):
    g = gaussian(dtype)
    x = randn(*time_shape, 3, dtype=dtype)

    def fn(y, t):
        assert t.shape == time_shape and t.dtype == dtype and t.device == y.device
        return g(y, t) if time_shape else g(y.unsqueeze(0), t.unsqueeze(0)).squeeze(0)

    sol = Dopri5().integrate(fn, x, 1.0, 0.0, time_shape=time_shape, t_eval=[0.5, 0.0])
    assert sol.y.dtype == dtype and sol.y.shape == x.shape
    assert sol.ts.dtype == dtype and sol.ys.dtype == dtype


def test_gradients_flow_and_no_graph_under_no_grad():
    w = torch.tensor(0.5, dtype=F64, requires_grad=True)
    y0 = torch.ones(3, dtype=F64)
    with torch.no_grad():
        sol = Dopri5().integrate(lambda y, t: w * y, y0, 0.0, 1.0)
    assert sol.y.grad_fn is None
    sol = Dopri5(rtol=1e-9, atol=1e-10).integrate(lambda y, t: w * y, y0, 0.0, 1.0)
    (gw,) = torch.autograd.grad(sol.y.sum(), w)
    assert gw.item() == pytest.approx(3 * math.exp(0.5), rel=1e-6)


def test_inputs_are_not_mutated():
    y0 = torch.randn(4, 2)
    copy = y0.clone()
    Dopri5().integrate(lambda y, t: y, y0, 0.0, 1.0, t_eval=[0.5])
    assert torch.equal(y0, copy)


# -- configuration and registry ---------------------------------------------------------------

def test_config_is_a_frozen_attrs_class():
    solver = Dopri5(rtol=1e-4)
    assert isinstance(solver, ODESolver) and solver.order == 5 and solver.stages == 7
    assert Dopri5(**attrs.asdict(solver)) == solver
    assert "rtol=0.0001" in repr(solver)
    assert hash(solver) == hash(Dopri5(rtol=1e-4))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        solver.rtol = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        Dopri5(1e-4)  # keyword-only


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(rtol=-1.0), ValueError, "rtol must be a finite number >= 0, got -1.0"),
    (dict(atol=float("nan")), ValueError, "atol must be"),
    (dict(rtol=0.0, atol=0.0), ValueError, "rtol and atol must not both be 0"),
    (dict(max_steps=0), ValueError, "max_steps must be >= 1, got 0"),
    (dict(max_steps=2.5), TypeError, "max_steps must be an int"),
    (dict(first_step=0.0), ValueError, "first_step must be None or"),
    (dict(safety=1.5), ValueError, "safety must lie in"),
    (dict(min_factor=1.0), ValueError, "min_factor must be < 1"),
    (dict(max_factor=1.0), ValueError, "max_factor must be > 1"),
    (dict(beta=0.5), ValueError, "beta must be <"),
    (dict(interpolate="yes"), TypeError, "interpolate must be a bool"),
])
def test_bad_config(kwargs, error, message):
    with pytest.raises(error, match=message):
        Dopri5(**kwargs)


def test_adaptive_rk_without_dense_output_refuses_interpolate():
    with pytest.raises(ValueError, match="interpolate=True needs a tableau with dense output"):
        AdaptiveRK(tableau=HEUN_EULER)
    assert AdaptiveRK(tableau="dopri5").tableau is DOPRI5


@pytest.mark.parametrize("t_eval, error, message", [
    ([], ValueError, "at least one"),
    ([0.5, 2.0], ValueError, "within"),
    ([0.5, 0.2], ValueError, "monotone"),
    ([float("nan")], ValueError, "finite"),
    (torch.zeros(2, 2), ValueError, "one-dimensional"),
    (0.5, TypeError, "t_eval must be a sequence"),
])
def test_bad_t_eval(t_eval, error, message):
    with pytest.raises(error, match=message):
        Dopri5().integrate(lambda y, t: y, torch.ones(2), 0.0, 1.0, t_eval=t_eval)


def test_bad_state():
    with pytest.raises(TypeError, match="y0"):
        Dopri5().integrate(lambda y, t: y, [1.0], 0.0, 1.0)
    with pytest.raises(ValueError, match="time_shape"):
        Dopri5().integrate(lambda y, t: y, torch.ones(3, 2), 0.0, 1.0, time_shape=(2,))
    with pytest.raises(ValueError, match="shaped like the state"):
        Dopri5().integrate(lambda y, t: y.sum(), torch.ones(3), 0.0, 1.0)
    with pytest.raises(TypeError, match="floating-point"):
        Dopri5().integrate(lambda y, t: y, torch.ones(3, dtype=torch.int64), 0.0, 1.0)


def test_registered_as_dopri5():
    from nami_core.registry import Registry

    reg = Registry()
    solver = reg.build("solver", "dopri5", rtol=1e-4)
    assert isinstance(solver, Dopri5) and solver.rtol == 1e-4
    assert reg.get("solver", "nami-solvers:dopri5").factory is Dopri5
    import nami

    assert nami.Dopri5 is Dopri5
