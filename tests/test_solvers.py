"""Tests of the nami-solvers plugin: fixed-step explicit Runge–Kutta solvers.

Ground truth from closed forms (GROUND_TRUTH.md): a non-normal linear ODE solved by the
matrix exponential, and the marginal velocity of Gaussian data under the linear path
(a = 1 - t, s = t), whose flow map is x_t - m(t) = (x_s - m(s)) sqrt(v(t) / v(s)).
Convergence orders are measured in float64, not assumed.
"""

from __future__ import annotations

import math

import attrs
import pytest
import torch

from nami_core.protocols import ODESolver, Solution
from nami_solvers import RK4, TABLEAUS, ButcherTableau, Euler, ExplicitRK, Heun, Midpoint
from nami_solvers.plugin import SOLVERS

F64 = torch.float64

# Ralston's second-order method, typed in by the user (not the built-in copy)
RALSTON = ButcherTableau(c=(0, 2 / 3), a=((), (2 / 3,)), b=(1 / 4, 3 / 4), order=2,
                         name="user_ralston")


def ralston(steps: int) -> ExplicitRK:
    return ExplicitRK(tableau=RALSTON, steps=steps)


# (factory, order, stages, step pair for the linear ODE, step pair and expected measured
# order for the Gaussian flow). Step pairs are the finest where the error is still far
# above float64 round-off. The explicit midpoint rule is superconvergent on the Gaussian
# problem: for z' = alpha(t) z its local error is
# h^3 z (alpha''/24 + alpha alpha'/4 + alpha^3/6), which vanishes identically for
# alpha = v'/(2v) with v quadratic in t (the linear path), so it measures order 3 there.
SOLVER_CASES = [
    pytest.param(Euler, 1, 1, (64, 128), (64, 128), 1, id="euler"),
    pytest.param(Midpoint, 2, 2, (32, 64), (32, 64), 3, id="midpoint"),
    pytest.param(Heun, 2, 2, (32, 64), (32, 64), 2, id="heun"),
    pytest.param(RK4, 4, 4, (16, 32), (32, 64), 4, id="rk4"),
    pytest.param(ralston, 2, 2, (32, 64), (32, 64), 2, id="explicit_rk-ralston"),
]
FACTORIES = [pytest.param(case.values[0], case.values[2], id=case.id) for case in SOLVER_CASES]

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# -- closed-form problems ------------------------------------------------------------------

A = torch.tensor([[-1.0, 3.0], [0.0, -2.0]], dtype=F64)  # non-normal
Y0 = torch.tensor([1.0, -0.5], dtype=F64)


def linear_field(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return y @ A.T


def linear_exact(y0: torch.Tensor, t0: float, t1: float) -> torch.Tensor:
    return y0 @ torch.linalg.matrix_exp(A * (t1 - t0)).T


class GaussianFlow:
    """Exact marginal velocity of N(mu, sd^2 I) data under the linear path a=1-t, s=t."""

    def __init__(self, mu: torch.Tensor, sd: float) -> None:
        self.mu, self.sd = mu, sd

    def v(self, t):  # marginal variance
        return (1 - t) ** 2 * self.sd**2 + t**2

    def dv(self, t):
        return -2 * (1 - t) * self.sd**2 + 2 * t

    def m(self, t):  # marginal mean
        return (1 - t) * self.mu

    def velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tt = t[..., None]
        return -self.mu + self.dv(tt) / (2 * self.v(tt)) * (x - self.m(tt))

    def divergence(self, t: torch.Tensor) -> torch.Tensor:
        return self.mu.shape[-1] * self.dv(t) / (2 * self.v(t))

    def flow(self, x: torch.Tensor, s: float, t: float) -> torch.Tensor:
        return self.m(t) + (x - self.m(s)) * math.sqrt(self.v(t) / self.v(s))


def gaussian(dtype=F64, device="cpu") -> GaussianFlow:
    return GaussianFlow(torch.tensor([0.7, -1.2, 0.3], dtype=dtype, device=device), 0.5)


def randn(*shape, dtype=F64, device="cpu", seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype).to(device)


# -- convergence order ---------------------------------------------------------------------

@pytest.mark.parametrize("make, order, stages, n_lin, n_gauss, gauss_order", SOLVER_CASES)
def test_order_linear_ode(make, order, stages, n_lin, n_gauss, gauss_order):
    exact = linear_exact(Y0, 0.0, 1.0)
    e = [(make(steps=n).integrate(linear_field, Y0, 0.0, 1.0).y - exact).norm().item()
         for n in n_lin]
    assert e[1] > 1e-12  # far above round-off
    assert math.log2(e[0] / e[1]) == pytest.approx(order, abs=0.2)


@pytest.mark.parametrize("make, order, stages, n_lin, n_gauss, gauss_order", SOLVER_CASES)
def test_order_gaussian_flow(make, order, stages, n_lin, n_gauss, gauss_order):
    g = gaussian()
    x = randn(8, 3)
    exact = g.flow(x, 0.9, 0.1)
    e = [(make(steps=n).integrate(g.velocity, x, 0.9, 0.1, time_shape=(8,)).y - exact)
         .norm().item() for n in n_gauss]
    assert e[1] > 1e-12
    assert math.log2(e[0] / e[1]) == pytest.approx(gauss_order, abs=0.2)


@pytest.mark.parametrize("make, order, stages, n_lin, n_gauss, gauss_order", SOLVER_CASES)
def test_round_trip(make, order, stages, n_lin, n_gauss, gauss_order):
    # data -> noise -> data recovers the start to the accuracy the order predicts
    g = gaussian()
    x0 = randn(8, 3, seed=1)
    errors = []
    for n in n_gauss:
        solver = make(steps=n)
        x1 = solver.integrate(g.velocity, x0, 0.0, 1.0, time_shape=(8,)).y
        back = solver.integrate(g.velocity, x1, 1.0, 0.0, time_shape=(8,)).y
        forward_error = (x1 - g.flow(x0, 0.0, 1.0)).norm().item()
        errors.append((back - x0).norm().item())
        assert errors[-1] <= 2 * forward_error
    assert errors[1] <= errors[0] * 2 ** -(order - 0.2)


def test_gradient_through_solve_matches_expm():
    y0 = Y0.clone().requires_grad_(True)
    jac = torch.stack([
        torch.autograd.grad(RK4(steps=100).integrate(linear_field, y0, 0.0, 1.0).y[i], y0)[0]
        for i in range(2)
    ])
    torch.testing.assert_close(jac, torch.linalg.matrix_exp(A), atol=1e-8, rtol=0)


# -- endpoints, directions, trajectory ------------------------------------------------------

@pytest.mark.parametrize("make, stages", FACTORIES)
@pytest.mark.parametrize("t0, t1", [(0.9, 0.1), (0.1, 0.9), (1.0, 0.0), (0.0, 1.0), (0.3, -2.7)])
def test_endpoints_exact(make, stages, t0, t1):
    seen = []

    def fn(y, t):
        seen.append(t.item())
        return -y

    sol = make(steps=7).integrate(fn, torch.ones(2, dtype=F64), t0, t1, trajectory=True)
    assert sol.ts.shape == (8,)
    assert sol.ts[0].item() == t0 and sol.ts[-1].item() == t1
    assert seen[0] == t0
    assert min(seen) >= min(t0, t1) and max(seen) <= max(t0, t1)
    if make(steps=1).tableau.c[-1] == 1.0:  # a last stage at c = 1 hits t1 exactly
        assert seen[-1] == t1


def test_stage_times_rk4():
    seen = []
    RK4(steps=2).integrate(lambda y, t: seen.append(t.item()) or y, torch.zeros(()), 0.0, 1.0)
    assert seen == [0.0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1.0]


@pytest.mark.parametrize("make, stages", FACTORIES)
@pytest.mark.parametrize("trajectory", [False, True])
def test_zero_length_interval_is_a_no_op(make, stages, trajectory):
    calls = []
    y0 = torch.randn(3, 2)
    sol = make(steps=5).integrate(lambda y, t: calls.append(1) or y, y0, 0.4, 0.4,
                                  trajectory=trajectory)
    assert sol.y is y0 and sol.nfe == 0 and not calls
    if trajectory:
        assert sol.ts.tolist() == [pytest.approx(0.4)] and torch.equal(sol.ys[0], y0)


@pytest.mark.parametrize("make, stages", FACTORIES)
def test_nfe_and_trajectory_shapes(make, stages):
    calls = []
    g = gaussian()

    def fn(x, t):
        calls.append(1)
        return g.velocity(x, t)

    x = randn(5, 3)
    sol = make(steps=6).integrate(fn, x, 1.0, 0.0, time_shape=(5,), trajectory=True)
    assert isinstance(sol, Solution)
    assert sol.nfe == len(calls) == 6 * stages
    assert sol.ts.shape == (7,) and sol.ts.dtype == F64
    torch.testing.assert_close(sol.ts, torch.linspace(1.0, 0.0, 7, dtype=F64))
    assert sol.ys.shape == (7, 5, 3)
    assert torch.equal(sol.ys[0], x) and torch.equal(sol.ys[-1], sol.y)
    plain = make(steps=6).integrate(g.velocity, x, 1.0, 0.0, time_shape=(5,))
    assert plain.ts is None and plain.ys is None
    assert torch.equal(plain.y, sol.y)


# -- dtype, device, shapes -----------------------------------------------------------------

@pytest.mark.parametrize("make, stages", FACTORIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("time_shape", [(), (4,), (2, 4)])
def test_dtype_device_and_time_shape(make, stages, dtype, device, time_shape):
    g = gaussian(dtype, device)
    x = randn(*time_shape, 3, dtype=dtype, device=device)

    def fn(y, t):
        assert t.shape == time_shape and t.dtype == dtype and t.device == y.device
        return g.velocity(y, t)

    sol = make(steps=4).integrate(fn, x, 0.9, 0.1, time_shape=time_shape, trajectory=True)
    assert sol.y.dtype == dtype and sol.y.device == x.device and sol.y.shape == x.shape
    assert sol.ts.dtype == dtype and sol.ts.device == x.device
    assert sol.ys.shape == (5,) + x.shape
    # same algorithm in float64 on the CPU: agrees to the precision of ``dtype``
    g64 = gaussian()
    ref = make(steps=4).integrate(g64.velocity, x.cpu().double(), 0.9, 0.1,
                                  time_shape=time_shape).y
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(sol.y.cpu().double(), ref, atol=tol, rtol=tol)


# -- augmented (tuple) state ---------------------------------------------------------------

@pytest.mark.parametrize("make, stages", FACTORIES)
def test_tuple_state_matches_components(make, stages):
    # (x, delta log p): the likelihood augmentation d(log p)/dt = -div u
    g = gaussian()
    x = randn(6, 3)
    logp = torch.zeros(6, dtype=F64)
    calls = []

    def aug(state, t):
        assert isinstance(state, tuple) and t.shape == (6,)
        calls.append(1)
        y, _ = state
        return g.velocity(y, t), -g.divergence(t)

    solver = make(steps=20)
    sol = solver.integrate(aug, (x, logp), 0.1, 0.9, time_shape=(6,), trajectory=True)
    assert isinstance(sol.y, tuple) and sol.nfe == len(calls) == 20 * stages
    x_only = solver.integrate(g.velocity, x, 0.1, 0.9, time_shape=(6,)).y
    l_only = solver.integrate(lambda l, t: -g.divergence(t), logp, 0.1, 0.9, time_shape=(6,)).y
    torch.testing.assert_close(sol.y[0], x_only, atol=1e-14, rtol=0)
    torch.testing.assert_close(sol.y[1], l_only, atol=1e-14, rtol=0)
    # closed form: -int div u dt = -(d/2) log(v(t1)/v(t0))
    exact = torch.full((6,), -1.5 * math.log(g.v(0.9) / g.v(0.1)), dtype=F64)
    tol = {1: 0.2, 2: 5e-3, 4: 1e-5}[solver.order]  # a few h^p, h = 0.04
    torch.testing.assert_close(sol.y[1], exact, atol=tol, rtol=0)
    assert isinstance(sol.ys, tuple)
    assert sol.ys[0].shape == (21, 6, 3) and sol.ys[1].shape == (21, 6)
    assert torch.equal(sol.ys[0][0], x) and torch.equal(sol.ys[1][-1], sol.y[1])


# -- no hidden mutation, autograd ----------------------------------------------------------

@pytest.mark.parametrize("make, stages", FACTORIES)
def test_inputs_and_field_outputs_are_never_mutated(make, stages):
    y0 = torch.randn(4, 2)
    y0_copy = y0.clone()
    const = torch.randn(4, 2)
    const_copy = const.clone()
    make(steps=3).integrate(lambda y, t: const, y0, 0.0, 1.0)
    assert torch.equal(y0, y0_copy) and torch.equal(const, const_copy)
    # a field that returns (a view of) its input: y' = y
    for identity in (lambda y, t: y, lambda y, t: y.view_as(y)):
        sol = make(steps=50).integrate(identity, y0.double(), 0.0, 1.0)
        torch.testing.assert_close(sol.y, y0.double() * math.e, rtol=5e-2, atol=0)
    assert torch.equal(y0, y0_copy)


@pytest.mark.parametrize("make, stages", FACTORIES)
def test_no_graph_under_no_grad_and_gradients_otherwise(make, stages):
    w = torch.tensor(0.5, requires_grad=True)
    y0 = torch.tensor([0.5, 1.0, 2.0], requires_grad=True)
    with torch.no_grad():
        sol = make(steps=4).integrate(lambda y, t: w * y, y0, 0.0, 1.0)
    assert not sol.y.requires_grad and sol.y.grad_fn is None
    sol = make(steps=4).integrate(lambda y, t: w * y, y0, 0.0, 1.0)
    assert sol.y.requires_grad
    gw, gy = torch.autograd.grad(sol.y.sum(), (w, y0))
    # y(1) = y0 exp(w): d sum y / dw = sum(y0) e^w, d sum y / d y0 = e^w (to solver accuracy)
    tol = 0.2 if stages == 1 else 2e-2
    torch.testing.assert_close(gw, 3.5 * torch.tensor(0.5).exp(), atol=0, rtol=tol)
    torch.testing.assert_close(gy, torch.full((3,), 0.5).exp(), atol=0, rtol=tol)


# -- configuration -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "cls, steps, order, stages",
    [(Euler, 100, 1, 1), (Midpoint, 50, 2, 2), (Heun, 50, 2, 2), (RK4, 25, 4, 4)],
)
def test_named_solver_config(cls, steps, order, stages):
    solver = cls()
    assert solver.steps == steps and solver.order == order and solver.stages == stages
    assert solver.tableau is TABLEAUS[cls.__name__.lower()]
    assert isinstance(solver, ODESolver)
    assert repr(cls(steps=7)) == f"{cls.__name__}(steps=7)"
    assert cls(**attrs.asdict(cls(steps=7))) == cls(steps=7)
    assert hash(cls(steps=7)) == hash(cls(steps=7))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        solver.steps = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        cls(7)  # keyword-only


def test_explicit_rk_config():
    solver = ExplicitRK(tableau=RALSTON)
    assert solver.steps == 50 and solver.order == 2 and solver.stages == 2
    assert ExplicitRK(tableau="rk38").steps == 25
    assert ExplicitRK(tableau="rk38").tableau is TABLEAUS["rk38"]
    assert ExplicitRK(**attrs.asdict(solver)) == solver  # round-trips through a dict
    with pytest.raises(ValueError, match="tableau"):
        ExplicitRK(tableau="no_such_method")
    with pytest.raises(TypeError, match="tableau"):
        ExplicitRK(tableau=3)


@pytest.mark.parametrize("name", sorted(TABLEAUS))
def test_builtin_tableaus_reach_their_order(name):
    tab = TABLEAUS[name]
    n = {1: (64, 128), 2: (32, 64), 3: (16, 32), 4: (16, 32)}[tab.order]
    exact = linear_exact(Y0, 0.0, 1.0)
    e = [(ExplicitRK(tableau=tab, steps=k).integrate(linear_field, Y0, 0.0, 1.0).y - exact)
         .norm().item() for k in n]
    assert math.log2(e[0] / e[1]) == pytest.approx(tab.order, abs=0.2)


def test_plugin_registers_the_solvers():
    from nami_solvers import Dopri5, EulerMaruyama, StochasticHeun

    assert SOLVERS == {"euler": Euler, "midpoint": Midpoint, "heun": Heun, "rk4": RK4,
                       "explicit_rk": ExplicitRK, "dopri5": Dopri5,
                       "euler_maruyama": EulerMaruyama, "stochastic_heun": StochasticHeun}
    from nami_solvers import plugin

    registered = []
    plugin.nami_register(lambda kind, name, factory, **kw: registered.append((kind, name, factory)))
    assert registered == [("solver", n, c) for n, c in SOLVERS.items()]


@pytest.mark.parametrize("name, cls", [("euler", Euler), ("midpoint", Midpoint), ("heun", Heun),
                                       ("rk4", RK4)])
def test_registry_build(name, cls):
    try:
        from nami_core.registry import build
    except ImportError:
        pytest.skip("nami_core.registry is not available")
    solver = build("solver", name, steps=3)
    assert isinstance(solver, cls) and solver.steps == 3


# -- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("make", [Euler, Midpoint, Heun, RK4, ralston])
@pytest.mark.parametrize("steps, error, message", [
    (0, ValueError, "steps must be >= 1, got 0"),
    (-1, ValueError, "steps must be >= 1, got -1"),
    (1.5, TypeError, "steps must be an int"),
    (True, TypeError, "steps must be an int"),
    ("3", TypeError, "steps must be an int"),
])
def test_bad_steps(make, steps, error, message):
    with pytest.raises(error, match=message):
        make(steps=steps)


@pytest.mark.parametrize("kwargs, message", [
    (dict(c=(0.5,), a=((0.5,),), b=(1,)), "not explicit"),
    (dict(c=(0, 1), a=((0, 0), (1, 1)), b=(0.5, 0.5)), "not explicit"),
    (dict(c=(0, 0.3), a=((), (0.5,)), b=(0, 1)), "not consistent"),
    (dict(c=(0, 0.5), a=((), (0.5,)), b=(0.5, 0.6)), "sum\\(b\\)"),
    (dict(c=(0, 0.5), a=((), (0.5,)), b=(0.5, 0.5), order=2), "does not have order 2"),
    (dict(c=(0,), a=((),), b=(1,), order=0), "order must be"),
    (dict(c=(0, 1), a=((),), b=(0.5, 0.5)), "entries"),
    (dict(c=(), a=(), b=()), "at least one"),
    (dict(c=(0, float("nan")), a=((), (float("nan"),)), b=(0.5, 0.5)), "finite"),
])
def test_bad_tableau(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ButcherTableau(**kwargs)


def test_bad_state_and_times():
    solver = Euler(steps=2)
    with pytest.raises(TypeError, match="y0"):
        solver.integrate(lambda y, t: y, [1.0, 2.0], 0.0, 1.0)
    with pytest.raises(TypeError, match="y0"):
        solver.integrate(lambda y, t: y, (), 0.0, 1.0)
    with pytest.raises(ValueError, match="time_shape"):
        solver.integrate(lambda y, t: y, torch.zeros(3, 2), 0.0, 1.0, time_shape=(2,))
    with pytest.raises(ValueError, match="finite"):
        solver.integrate(lambda y, t: y, torch.zeros(3), 0.0, float("inf"))
