r"""Conformance checks of ODE and SDE solvers.

:func:`check_ode_solver` checks a solver against the :class:`~nami_core.protocols.ODESolver`
protocol and against closed forms (:mod:`nami_core.conformance.problems`):

========================  ===================================================================
check                     what must hold
========================  ===================================================================
``protocol``              ``integrate(fn, y0, t0, t1, *, time_shape=(), trajectory=False)``
``nfe``                   ``Solution.nfe`` equals the number of calls of ``fn``
``endpoints``             with ``trajectory=True``: ``ts[0] == t0`` and ``ts[-1] == t1``
                          exactly, ``ys[0] == y0``, ``ys[-1] == y``, ``ts`` monotone, and
                          ``fn`` is never evaluated outside ``[t0, t1]``; in both directions
``directions``            :math:`\dot y = 1` gives :math:`y_0 + (t_1 - t_0)` (exact for any
                          consistent method) forwards and backwards; a round trip returns
``dtype``                 float32 and float64 (and the device) are preserved, ``t`` reaches
                          ``fn`` with the state's dtype, device and ``time_shape``
``time_shape``            states with leading shapes ``()``, ``(4,)``, ``(2, 4)``
``tuple_state``           a tuple state (the augmented likelihood state) is integrated
                          component-wise to the solver's accuracy
``no_mutation``           neither ``y0`` nor tensors returned by ``fn`` are modified
``autograd``              no graph under ``torch.no_grad``; gradients flow otherwise
``zero_length``           ``t0 == t1`` returns ``y0``
``convergence``           in float64 on the CPU. Fixed-step solvers (a ``steps`` parameter):
                          the order measured as :math:`\log_2(e_N / e_{2N})` on every
                          problem matches the solver's ``order`` (within 0.3 below, 0.6
                          above, taking the minimum over problems). Adaptive solvers
                          (``rtol``/``atol``): the error is within 100 x the tolerance and
                          falls at least tenfold from ``1e-3`` to ``1e-7``
========================  ===================================================================

:func:`check_sde_solver` is lighter: shapes, dtype, reproducibility from a
``torch.Generator``, the drift-only limit and the variance of pure noise.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any, Callable, Optional, Sequence

import attrs
import torch
from torch import Tensor

from nami_core.protocols import ODESolver, SDESolver

from .examples import example_instance
from .problems import PROBLEMS, gaussian_flow_problem, measured_order, relative_error
from .report import Report, require

__all__ = ["check_ode_solver", "check_sde_solver", "rebuild", "ORDER_SLACK_BELOW", "ORDER_SLACK_ABOVE"]

#: A measured order may fall this far below the claimed one.
ORDER_SLACK_BELOW = 0.3
#: ... and lie this far above it on *every* problem before the claim counts as too low.
ORDER_SLACK_ABOVE = 0.6
#: Errors below this (relative) are too close to float64 round-off to measure an order.
ERROR_FLOOR = 1e-11
#: Step counts tried for the measured order.
STEP_COUNTS = (2, 4, 8, 16, 32, 64, 128, 256)
#: Tolerances tried for adaptive solvers.
TOLERANCES = (1e-3, 1e-5, 1e-7)


def rebuild(obj: Any, **changes: Any) -> Any:
    """A copy of ``obj`` with some parameters changed (attrs classes and dataclasses).

    Raises:
        TypeError: ``obj`` is neither an attrs instance nor a dataclass instance.
    """
    if attrs.has(type(obj)):
        return attrs.evolve(obj, **changes)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **changes)
    raise TypeError(
        f"cannot rebuild {type(obj).__name__} with {sorted(changes)}: it is neither an attrs class nor "
        "a dataclass; pass make=... to the check"
    )


def _describe(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 120 else text[:117] + "..."


def _int_attr(obj: Any, name: str) -> Optional[int]:
    value = getattr(obj, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float_attr(obj: Any, name: str) -> Optional[float]:
    value = getattr(obj, name, None)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class _Counted:
    """A field wrapper recording calls and the times it was evaluated at."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.calls, self.times = fn, 0, []  # type: ignore[var-annotated]

    def __call__(self, y: Any, t: Tensor) -> Any:
        self.calls += 1
        if t.numel():
            self.times.append((t.min().item(), t.max().item()))
        return self.fn(y, t)


def _bcast(t: Tensor, y: Tensor) -> Tensor:
    return t.reshape(t.shape + (1,) * (y.ndim - t.ndim))


# --------------------------------------------------------------------------- ODE solvers


def check_ode_solver(
    solver: Any,
    *,
    make: Optional[Callable[..., Any]] = None,
    order: Optional[int] = None,
    dtypes: Sequence[torch.dtype] = (torch.float32, torch.float64),
    device: torch.device | str = "cpu",
    raise_on_failure: bool = True,
) -> Report:
    """Run the ODE-solver checks (see the module docstring) on ``solver``.

    Args:
        solver: a solver instance, or a factory (class) that builds one with no arguments.
        make: ``make(**params)`` builds the solver with other ``steps`` (fixed step) or
            ``rtol``/``atol`` (adaptive); default: :func:`rebuild` of ``solver``.
        order: the claimed order; default ``solver.order``.
        dtypes: floating dtypes that must be preserved.
        device: device of the states.
        raise_on_failure: raise :class:`~nami_core.conformance.ConformanceError` listing the
            failures (else only return the report).

    Returns:
        The :class:`~nami_core.conformance.Report`; ``report.measured["order"]`` holds the
        measured orders by problem (fixed step), ``report.measured["errors"]`` the errors by
        tolerance (adaptive).
    """
    if inspect.isclass(solver) or inspect.isroutine(solver):
        factory = solver
        solver = example_instance(factory)
        if make is None and not (attrs.has(type(solver)) or dataclasses.is_dataclass(solver)):
            make = factory
    report = Report("solver", _describe(solver))
    device = torch.device(device)

    def build(**params: Any) -> Any:
        return make(**params) if make is not None else rebuild(solver, **params)

    report.run("protocol", lambda: _check_protocol(solver))
    if report.failures:  # nothing else can work
        return report.raise_for_failures() if raise_on_failure else report
    report.run("nfe", lambda: _check_nfe(solver, device))
    report.run("endpoints", lambda: _check_endpoints(solver, device))
    report.run("directions", lambda: _check_directions(solver, device))
    report.run("dtype", lambda: _check_dtypes(solver, dtypes, device))
    report.run("time_shape", lambda: _check_time_shapes(solver, device))
    report.run("tuple_state", lambda: _check_tuple_state(solver, device))
    report.run("no_mutation", lambda: _check_no_mutation(solver, device))
    report.run("autograd", lambda: _check_autograd(solver, device))
    report.run("zero_length", lambda: _check_zero_length(solver, device))
    claimed = order if order is not None else _int_attr(solver, "order")
    report.run("convergence", lambda: _check_convergence(solver, build, claimed, report))
    return report.raise_for_failures() if raise_on_failure else report


def _check_protocol(solver: Any) -> None:
    require(callable(getattr(solver, "integrate", None)), "has no callable integrate method")
    require(isinstance(solver, ODESolver), "does not satisfy nami_core.protocols.ODESolver")
    try:
        params = inspect.signature(solver.integrate).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    missing = [n for n in ("time_shape", "trajectory") if n not in params]
    require(not missing, f"integrate does not accept the keyword(s) {', '.join(missing)}")


def _check_nfe(solver: Any, device: torch.device) -> None:
    p = gaussian_flow_problem(torch.float64, device)
    fn = _Counted(p.fn)
    sol = solver.integrate(fn, p.y0, p.t0, p.t1, time_shape=p.time_shape)
    require(hasattr(sol, "y") and hasattr(sol, "nfe"), f"integrate must return a Solution, got {type(sol).__name__}")
    require(isinstance(sol.nfe, int) and not isinstance(sol.nfe, bool),
            f"Solution.nfe must be an int, got {sol.nfe!r}")
    require(sol.nfe == fn.calls, f"Solution.nfe = {sol.nfe} but fn was called {fn.calls} times")
    require(fn.calls > 0, "fn was never called")


def _check_endpoints(solver: Any, device: torch.device) -> None:
    for t0, t1 in ((1.0, 0.0), (0.0, 1.0), (0.9, 0.1), (0.3, -2.7)):
        y0 = torch.ones(3, dtype=torch.float64, device=device)
        fn = _Counted(lambda y, t: -y)
        sol = solver.integrate(fn, y0, t0, t1, trajectory=True)
        where = f"integrating {t0} -> {t1} with trajectory=True"
        require(sol.ts is not None and sol.ys is not None, f"{where}: Solution.ts/ys are None")
        ts, ys = sol.ts, sol.ys
        require(ts.ndim == 1 and ts.shape[0] >= 2, f"{where}: ts must be 1-d with >= 2 times, got shape {tuple(ts.shape)}")
        require(ts[0].item() == t0, f"{where}: ts[0] = {ts[0].item()!r}, must be exactly t0 = {t0}")
        require(ts[-1].item() == t1, f"{where}: ts[-1] = {ts[-1].item()!r}, must be exactly t1 = {t1}")
        steps = torch.diff(ts)
        require(bool(((steps >= 0) if t1 > t0 else (steps <= 0)).all()), f"{where}: ts is not monotone from t0 to t1")
        require(ys.shape == (ts.shape[0],) + y0.shape, f"{where}: ys has shape {tuple(ys.shape)}, expected "
                f"{(ts.shape[0],) + tuple(y0.shape)}")
        require(torch.equal(ys[0], y0), f"{where}: ys[0] differs from y0")
        require(torch.equal(ys[-1], sol.y), f"{where}: ys[-1] differs from the returned y")
        lo, hi = min(t0, t1), max(t0, t1)
        outside = [tt for tt in fn.times if tt[0] < lo or tt[1] > hi]
        require(not outside, f"{where}: fn was evaluated outside [t0, t1], at t = {outside[:1]}")


def _check_directions(solver: Any, device: torch.device) -> None:
    for t0, t1 in ((0.0, 1.0), (1.0, 0.0), (0.3, -2.7)):
        y0 = torch.tensor([0.5, -2.0], dtype=torch.float64, device=device)
        y = solver.integrate(lambda y, t: torch.ones_like(y), y0, t0, t1).y
        want = y0 + (t1 - t0)
        require(torch.allclose(y, want, rtol=0, atol=1e-10 * (1 + abs(t1 - t0))),
                f"dy/dt = 1 from t0={t0} to t1={t1} must give y0 + (t1 - t0) = {want.tolist()}, "
                f"got {y.tolist()} (wrong sign or length of the time step?)")
    y0 = torch.tensor([1.0, 2.0], dtype=torch.float64, device=device)
    there = solver.integrate(lambda y, t: -y, y0, 0.0, 1.0).y
    back = solver.integrate(lambda y, t: -y, there, 1.0, 0.0).y
    require(bool((there.abs() < y0.abs()).all()), f"dy/dt = -y from 0 to 1 must shrink y, got {there.tolist()}")
    require(torch.allclose(back, y0, rtol=5e-2, atol=0),
            f"dy/dt = -y from 0 to 1 and back must return to y0 = {y0.tolist()}, got {back.tolist()}")


def _check_dtypes(solver: Any, dtypes: Sequence[torch.dtype], device: torch.device) -> None:
    results = {}
    for dtype in dtypes:
        p = gaussian_flow_problem(dtype, device)
        seen: list[str] = []

        def fn(y: Tensor, t: Tensor, _p=p, _seen=seen, _dtype=dtype) -> Tensor:
            if t.dtype != _dtype or t.device != y.device or tuple(t.shape) != _p.time_shape:
                _seen.append(f"t with dtype {t.dtype}, device {t.device}, shape {tuple(t.shape)}")
            return _p.fn(y, t)

        sol = solver.integrate(fn, p.y0, p.t0, p.t1, time_shape=p.time_shape, trajectory=True)
        require(not seen, f"{dtype} state on {device}: fn received {seen[:1]}; expected dtype {dtype}, "
                f"device {device}, shape {p.time_shape}")
        y = sol.y
        require(y.dtype == dtype, f"a {dtype} state came back as {y.dtype}")
        require(y.device.type == device.type, f"a state on {device} came back on {y.device}")
        require(y.shape == p.y0.shape, f"a state of shape {tuple(p.y0.shape)} came back as {tuple(y.shape)}")
        if sol.ts is not None:
            require(sol.ts.dtype == dtype, f"with a {dtype} state, ts has dtype {sol.ts.dtype}")
            require(sol.ys.dtype == dtype, f"with a {dtype} state, ys has dtype {sol.ys.dtype}")
        results[dtype] = y.detach().to("cpu", torch.float64)
    if len(results) > 1:
        values = list(results.values())
        ref = values[-1]
        for dtype, y in results.items():
            diff = (y - ref).abs().max().item()
            require(diff <= 1e-3 * (1 + ref.abs().max().item()),
                    f"the {dtype} solve differs from the {list(results)[-1]} solve by {diff:.3g}")


def _check_time_shapes(solver: Any, device: torch.device) -> None:
    for time_shape in ((), (4,), (2, 4)):
        y0 = torch.linspace(0.5, 1.5, 3, dtype=torch.float64, device=device).expand(time_shape + (3,)).clone()
        bad: list[tuple[int, ...]] = []

        def fn(y: Tensor, t: Tensor, _shape=time_shape, _bad=bad) -> Tensor:
            if tuple(t.shape) != _shape:
                _bad.append(tuple(t.shape))
            return -y * (1.0 + _bcast(t, y))

        sol = solver.integrate(fn, y0, 0.0, 1.0, time_shape=time_shape)
        require(not bad, f"time_shape={time_shape}: fn received t of shape {bad[:1]}")
        require(sol.y.shape == y0.shape, f"time_shape={time_shape}: y has shape {tuple(sol.y.shape)}, "
                f"expected {tuple(y0.shape)}")
        exact = y0 * math.exp(-1.5)
        require(torch.allclose(sol.y, exact, rtol=5e-2, atol=0),
                f"time_shape={time_shape}: dy/dt = -(1 + t) y from 0 to 1 gave {sol.y.flatten()[:3].tolist()}, "
                f"expected about {exact.flatten()[:3].tolist()}")


def _check_tuple_state(solver: Any, device: torch.device) -> None:
    p = gaussian_flow_problem(torch.float64, device)
    field = p.fn
    d = p.y0.shape[-1]

    def v(t: float) -> float:  # marginal variance of the problem (linear path, sigma_d = 0.5)
        return (1 - t) ** 2 * 0.25 + t**2

    def div(t: Tensor) -> Tensor:
        return d * (-2 * (1 - t) * 0.25 + 2 * t) / (2 * ((1 - t) ** 2 * 0.25 + t**2))

    logp0 = torch.zeros(p.time_shape, dtype=torch.float64, device=device)
    sol = solver.integrate(lambda s, t: (field(s[0], t), -div(t)), (p.y0, logp0), p.t0, p.t1,
                           time_shape=p.time_shape)
    require(isinstance(sol.y, tuple) and len(sol.y) == 2,
            f"a tuple state of 2 tensors came back as {type(sol.y).__name__}")
    x, logp = sol.y
    require(x.shape == p.y0.shape and logp.shape == logp0.shape,
            f"tuple state shapes changed: {tuple(x.shape)}, {tuple(logp.shape)}")
    plain = solver.integrate(p.fn, p.y0, p.t0, p.t1, time_shape=p.time_shape).y
    err_plain = relative_error(plain, p.exact)
    err_x = relative_error(x, p.exact)
    require(err_x <= max(100 * err_plain, 1e-5),
            f"the x part of a tuple state has error {err_x:.3g}, the plain solve {err_plain:.3g}")
    exact_l = -0.5 * d * math.log(v(p.t1) / v(p.t0))
    err_l = (logp - exact_l).abs().max().item() / (1 + abs(exact_l))
    require(err_l <= max(100 * err_plain, 1e-4),
            f"the log-density part of a tuple state has error {err_l:.3g} (exact {exact_l:.6g})")


def _check_no_mutation(solver: Any, device: torch.device) -> None:
    y0 = torch.linspace(-1.0, 1.0, 6, dtype=torch.float64, device=device).reshape(2, 3)
    const = torch.full((2, 3), 0.25, dtype=torch.float64, device=device)
    y0_copy, const_copy = y0.clone(), const.clone()
    solver.integrate(lambda y, t: const, y0, 0.0, 1.0, time_shape=(2,))
    require(torch.equal(y0, y0_copy), "integrate modified y0 in place")
    require(torch.equal(const, const_copy), "integrate modified a tensor returned by fn in place")
    solver.integrate(lambda y, t: y, y0, 0.0, 1.0, time_shape=(2,))  # fn returns its input
    require(torch.equal(y0, y0_copy), "integrate modified y0 in place when fn returns its input")


def _check_autograd(solver: Any, device: torch.device) -> None:
    w = torch.tensor(0.5, dtype=torch.float64, device=device, requires_grad=True)
    y0 = torch.ones(3, dtype=torch.float64, device=device)
    with torch.no_grad():
        y = solver.integrate(lambda y, t: w * y, y0, 0.0, 1.0).y
    require(y.grad_fn is None and not y.requires_grad, "under torch.no_grad the result has an autograd graph")
    y = solver.integrate(lambda y, t: w * y, y0, 0.0, 1.0).y
    require(y.requires_grad, "gradients do not flow through the solve (the result does not require grad)")
    (gw,) = torch.autograd.grad(y.sum(), w)
    want = 3 * math.exp(0.5)
    require(abs(gw.item() - want) <= 0.1 * want, f"d sum(y(1)) / dw = {gw.item():.6g}, expected about {want:.6g}")


def _check_zero_length(solver: Any, device: torch.device) -> None:
    y0 = torch.tensor([1.0, -2.0], dtype=torch.float64, device=device)
    y = solver.integrate(lambda y, t: -y, y0, 0.4, 0.4).y
    require(torch.equal(y, y0), f"integrating from t0 = t1 = 0.4 must return y0, got {y.tolist()}")


def _check_convergence(solver: Any, build: Callable[..., Any], claimed: Optional[int], report: Report) -> Optional[str]:
    steps = _int_attr(solver, "steps")
    rtol, atol = _float_attr(solver, "rtol"), _float_attr(solver, "atol")
    if steps is not None:
        return _fixed_step_order(build, claimed, report)
    if rtol is not None and atol is not None:
        return _adaptive_accuracy(build, report)
    return "the solver has neither a steps parameter (fixed step) nor rtol/atol (adaptive)"


def _fixed_step_order(build: Callable[..., Any], claimed: Optional[int], report: Report) -> Optional[str]:
    orders: dict[str, float] = {}
    for name, make_problem in PROBLEMS.items():
        p = make_problem()
        errors = []
        for n in STEP_COUNTS:
            y = build(steps=n).integrate(p.fn, p.y0, p.t0, p.t1, time_shape=p.time_shape).y
            e = relative_error(y, p.exact)
            require(math.isfinite(e), f"{name}: steps={n} gave a non-finite result")
            errors.append((n, e))
            if e < ERROR_FLOOR:
                break
        value, n_a, n_b = measured_order(errors, ERROR_FLOOR)
        require(math.isfinite(value), f"{name}: the error never rose above round-off ({errors}); cannot "
                "measure the order")
        orders[name] = round(value, 3)
        last = errors[-1][1]
        require(last < 5e-2, f"{name}: the solver does not converge: error {last:.3g} with steps={errors[-1][0]}")
    report.measured["order"] = orders
    if claimed is None:
        return "the solver declares no order (an int attribute 'order'); measured " + str(orders)
    low = min(orders.values())
    worst = min(orders, key=orders.get)  # type: ignore[arg-type]
    require(low >= claimed - ORDER_SLACK_BELOW,
            f"claims order {claimed} but measures {low:.2f} on the {worst!r} problem (orders by problem: {orders})")
    require(low <= claimed + ORDER_SLACK_ABOVE,
            f"claims order {claimed} but measures at least {low:.2f} on every problem ({orders}): the claim is too low")
    return None


def _adaptive_accuracy(build: Callable[..., Any], report: Report) -> None:
    measured: dict[str, dict[float, float]] = {}
    for name in ("linear", "gaussian_flow"):
        p = PROBLEMS[name]()
        errs = {}
        for tol in TOLERANCES:
            y = build(rtol=tol, atol=tol).integrate(p.fn, p.y0, p.t0, p.t1, time_shape=p.time_shape).y
            e = relative_error(y, p.exact)
            require(e <= 100 * tol, f"{name}: with rtol = atol = {tol:g} the error is {e:.3g}, more than 100 x the tolerance")
            errs[tol] = e
        values = list(errs.values())
        require(values[-1] < values[0] / 10,
                f"{name}: the error does not decrease with the tolerance ({errs})")
        measured[name] = errs
    report.measured["errors"] = measured


# --------------------------------------------------------------------------- SDE solvers


def check_sde_solver(
    solver: Any,
    *,
    dtypes: Sequence[torch.dtype] = (torch.float32, torch.float64),
    device: torch.device | str = "cpu",
    raise_on_failure: bool = True,
) -> Report:
    r"""Light checks of an SDE solver (:class:`~nami_core.protocols.SDESolver`).

    ``protocol``; ``dtype`` (shapes, dtype and device preserved, ``t`` reaches the drift with
    the state's dtype and ``time_shape``); ``reproducible`` (same generator seed, same path;
    another seed, another path); ``drift_only`` (zero diffusion reduces to the ODE
    :math:`\dot y = -y` to 5 %, in both directions); ``noise_scale`` (zero drift and diffusion
    :math:`g = 0.5`: the increment's variance is :math:`g^2 |t_1 - t_0|` to 15 % over 4000
    paths, in both directions); ``nfe`` (a non-negative int).
    """
    if inspect.isclass(solver) or inspect.isroutine(solver):
        solver = example_instance(solver)
    report = Report("solver", _describe(solver))
    device = torch.device(device)
    report.run("protocol", lambda: require(isinstance(solver, SDESolver), "has no callable integrate_sde method"))
    if report.failures:
        return report.raise_for_failures() if raise_on_failure else report

    def solve(drift: Any, diffusion: Any, y0: Tensor, t0: float, t1: float, seed: int = 0, **kw: Any) -> Any:
        g = torch.Generator(device=y0.device).manual_seed(seed)
        return solver.integrate_sde(drift, diffusion, y0, t0, t1, time_shape=y0.shape[:1], generator=g, **kw)

    def dtype_check() -> None:
        for dtype in dtypes:
            y0 = torch.ones(16, 3, dtype=dtype, device=device)
            bad: list[str] = []

            def drift(y: Tensor, t: Tensor, _bad=bad, _dtype=dtype) -> Tensor:
                if t.dtype != _dtype or tuple(t.shape) != (16,):
                    _bad.append(f"dtype {t.dtype}, shape {tuple(t.shape)}")
                return -y

            sol = solve(drift, lambda y, t: 0.3 * torch.ones_like(y), y0, 1.0, 0.0)
            require(not bad, f"{dtype}: the drift received t with {bad[:1]}")
            require(sol.y.dtype == dtype and sol.y.shape == y0.shape and sol.y.device.type == device.type,
                    f"a {dtype} state of shape {tuple(y0.shape)} came back as {sol.y.dtype} {tuple(sol.y.shape)} on {sol.y.device}")
            require(bool(torch.isfinite(sol.y).all()), f"{dtype}: non-finite result")

    def reproducible() -> None:
        y0 = torch.zeros(32, 2, dtype=torch.float64, device=device)
        a = solve(lambda y, t: -y, lambda y, t: torch.ones_like(y), y0, 1.0, 0.0, seed=1).y
        b = solve(lambda y, t: -y, lambda y, t: torch.ones_like(y), y0, 1.0, 0.0, seed=1).y
        c = solve(lambda y, t: -y, lambda y, t: torch.ones_like(y), y0, 1.0, 0.0, seed=2).y
        require(torch.equal(a, b), "two solves with the same generator seed differ")
        require(not torch.equal(a, c), "two solves with different generator seeds agree (is the generator used?)")

    def drift_only() -> None:
        y0 = torch.tensor([[1.0, 2.0]], dtype=torch.float64, device=device)
        for t0, t1 in ((0.0, 1.0), (1.0, 0.0)):
            y = solve(lambda y, t: -y, lambda y, t: torch.zeros_like(y), y0, t0, t1).y
            want = y0 * math.exp(-(t1 - t0))
            require(torch.allclose(y, want, rtol=5e-2, atol=0),
                    f"zero diffusion, dy = -y dt from {t0} to {t1}: got {y.tolist()}, expected {want.tolist()}")

    def noise_scale() -> None:
        y0 = torch.zeros(4000, 1, dtype=torch.float64, device=device)
        for t0, t1 in ((0.0, 0.8), (1.0, 0.2)):
            y = solve(lambda y, t: torch.zeros_like(y), lambda y, t: 0.5 * torch.ones_like(y), y0, t0, t1).y
            var, want = y.var().item(), 0.25 * abs(t1 - t0)
            require(abs(var - want) <= 0.15 * want,
                    f"dy = 0.5 dW from {t0} to {t1}: variance {var:.4g}, expected {want:.4g}")

    def nfe() -> None:
        y0 = torch.zeros(4, 2, dtype=torch.float64, device=device)
        sol = solve(lambda y, t: -y, lambda y, t: torch.ones_like(y), y0, 1.0, 0.0)
        require(isinstance(sol.nfe, int) and sol.nfe >= 0, f"Solution.nfe must be an int >= 0, got {sol.nfe!r}")

    report.run("dtype", dtype_check)
    report.run("reproducible", reproducible)
    report.run("drift_only", drift_only)
    report.run("noise_scale", noise_scale)
    report.run("nfe", nfe)
    return report.raise_for_failures() if raise_on_failure else report
