r"""Conformance checks of probability paths, noise schedules and interpolant noise (gamma).

:func:`check_path`: ``shapes`` (leading shapes and event shapes, dtype preserved),
``endpoints`` (:math:`x_{t=0} = x_0` and :math:`x_{t=1} = x_1` to 4 ulps), ``finite`` (near
and at the ends), ``velocity`` (:math:`u_t = \partial_t x_t` by forward-mode autograd at
interior times, also at a fixed latent ``z`` if ``interpolate`` takes one), and for affine paths
exposing :math:`a, s` the schedule checks.

:func:`check_schedule`: ``shapes``, ``finite`` (:math:`\alpha, \sigma` at and near both ends),
``sigma_nonnegative``, ``derivatives`` (``d_alpha``/``d_sigma`` or ``alpha_dot``/``sigma_dot``
match autograd at interior times and are finite near the ends).

:func:`check_gamma`: :math:`\gamma(0) = \gamma(1) = 0`, finite on :math:`[0, 1]`,
``gamma_dot`` matches autograd inside, ``gamma_gamma_dot`` (if present) equals the product.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor

from .examples import example_instance
from .report import Report, require

__all__ = ["check_path", "check_schedule", "check_gamma", "DERIVATIVE_NAMES"]

#: Attribute names under which a schedule may expose the derivatives of ``alpha`` and ``sigma``.
DERIVATIVE_NAMES = {"alpha": ("d_alpha", "alpha_dot"), "sigma": ("d_sigma", "sigma_dot")}

_ENDS = (0.0, 1e-6, 1e-3, 0.5, 1 - 1e-3, 1 - 1e-6, 1.0)


def _instance(obj: Any) -> Any:
    return example_instance(obj) if inspect.isclass(obj) or inspect.isroutine(obj) else obj


def _describe(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 120 else text[:117] + "..."


def _bcast(t: Tensor, x: Tensor) -> Tensor:
    return t.reshape(t.shape + (1,) * (x.ndim - t.ndim))


def _takes_z(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "z" in params


def _derivative(fn: Callable[[Tensor], Tensor], t: Tensor) -> tuple[Tensor, str]:
    r"""Elementwise :math:`\mathrm d f / \mathrm d t` by forward-mode autograd.

    ``fn`` maps times of shape ``t.shape`` to values whose leading shape is ``t.shape``.
    An operation without a forward-mode formula falls back to central differences
    (float64, step 1e-6; accurate to about 1e-9).
    """
    try:
        with warnings.catch_warnings():
            # torch scripts its forward-AD decompositions on first use and warns about it
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=DeprecationWarning)
            _, tangent = torch.func.jvp(fn, (t,), (torch.ones_like(t),))
        return tangent, "jvp"
    except (RuntimeError, NotImplementedError):
        h = 1e-6
        return (fn(t + h) - fn(t - h)) / (2 * h), "central differences"


def _close(a: Tensor, b: Tensor, rtol: float, atol: float) -> tuple[bool, float]:
    diff = (a - b).abs()
    ok = bool((diff <= atol + rtol * b.abs()).all())
    return ok, diff.max().item() if diff.numel() else 0.0


# --------------------------------------------------------------------------- paths


def check_path(
    path: Any,
    *,
    dtypes: Sequence[torch.dtype] = (torch.float32, torch.float64),
    device: torch.device | str = "cpu",
    raise_on_failure: bool = True,
) -> Report:
    """Run the path checks (see the module docstring) on ``path`` (an instance or a factory)."""
    path = _instance(path)
    report = Report("path", _describe(path))
    device = torch.device(device)

    def protocol() -> None:
        for m in ("interpolate", "velocity"):
            require(callable(getattr(path, m, None)), f"has no callable {m} method")

    report.run("protocol", protocol)
    if report.failures:
        return report.raise_for_failures() if raise_on_failure else report
    gen = torch.Generator().manual_seed(0)

    def rand(*shape: int, dtype: torch.dtype = torch.float64) -> Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)

    def times(*shape: int, dtype: torch.dtype = torch.float64, lo: float = 0.05, hi: float = 0.95) -> Tensor:
        u = torch.rand(*shape, generator=gen, dtype=torch.float64)
        return (lo + (hi - lo) * u).to(dtype=dtype, device=device)

    def shapes() -> None:
        for dtype in dtypes:
            for lead, event in (((5,), (3,)), ((2, 5), (3,)), ((5,), (2, 3))):
                x0, x1, t = rand(*lead, *event, dtype=dtype), rand(*lead, *event, dtype=dtype), times(*lead, dtype=dtype)
                for m in ("interpolate", "velocity"):
                    out = getattr(path, m)(x0, x1, t)
                    require(isinstance(out, Tensor) and out.shape == x0.shape,
                            f"{m} with x of shape {tuple(x0.shape)} and t of shape {tuple(t.shape)} returned "
                            f"{tuple(getattr(out, 'shape', ()))}")
                    require(out.dtype == dtype, f"{m} turned a {dtype} input into {out.dtype}")
                    require(out.device.type == device.type, f"{m} moved the result to {out.device}")

    def endpoints() -> None:
        for dtype in dtypes:
            eps = torch.finfo(dtype).eps
            x0, x1 = rand(6, 3, dtype=dtype), rand(6, 3, dtype=dtype)
            scale = x0.abs() + x1.abs()
            for value, want, label in ((0.0, x0, "x0"), (1.0, x1, "x1")):
                t = torch.full((6,), value, dtype=dtype, device=device)
                xt = path.interpolate(x0, x1, t)
                err = (xt - want).abs()
                require(bool((err <= 4 * eps * scale).all()),
                        f"interpolate at t={value:g} must give {label} (to 4 ulps), off by {err.max().item():.3g} ({dtype})")

    def finite() -> None:
        x0, x1 = rand(len(_ENDS), 3), rand(len(_ENDS), 3)
        t = torch.tensor(_ENDS, dtype=torch.float64, device=device)
        xt = path.interpolate(x0, x1, t)
        require(bool(torch.isfinite(xt).all()), f"interpolate is not finite at some t in {_ENDS}")
        near = t[1:-1]
        u = path.velocity(x0[1:-1], x1[1:-1], near)
        require(bool(torch.isfinite(u).all()), f"velocity is not finite at some t in {_ENDS[1:-1]}")

    def velocity() -> Optional[str]:
        x0, x1, t = rand(16, 3), rand(16, 3), times(16)
        with_z = _takes_z(path.interpolate) and _takes_z(path.velocity)
        variants = [None] + ([rand(16, 3)] if with_z else [])
        for z in variants:
            extra = {} if z is None else {"z": z}
            d_xt, how = _derivative(lambda tt: path.interpolate(x0, x1, tt, **extra), t)
            u = path.velocity(x0, x1, t, **extra)
            ok, diff = _close(u, d_xt, 1e-6, 1e-8)
            at = "" if z is None else " at a fixed z"
            require(ok, f"velocity differs from d interpolate / dt ({how}){at} by up to {diff:.3g}")
            report.measured["velocity_derivative"] = how
        return None

    report.run("shapes", shapes)
    report.run("endpoints", endpoints)
    report.run("finite", finite)
    report.run("velocity", velocity)
    if callable(getattr(path, "alpha", None)) and callable(getattr(path, "sigma", None)):
        sub = check_schedule(path, dtypes=dtypes, device=device, raise_on_failure=False)
        for name in ("finite", "sigma_nonnegative", "derivatives"):
            _copy_result(sub, report, name, f"schedule_{name}")
    return report.raise_for_failures() if raise_on_failure else report


def _copy_result(src: Report, dst: Report, name: str, as_name: str) -> None:
    dst.passed += [as_name for n in src.passed if n == name]
    dst.failures += [(as_name, m) for n, m in src.failures if n == name]
    dst.skipped += [(as_name, m) for n, m in src.skipped if n == name]


# --------------------------------------------------------------------------- schedules


def check_schedule(
    schedule: Any,
    *,
    dtypes: Sequence[torch.dtype] = (torch.float32, torch.float64),
    device: torch.device | str = "cpu",
    raise_on_failure: bool = True,
) -> Report:
    """Run the schedule checks (see the module docstring) on ``schedule``."""
    schedule = _instance(schedule)
    report = Report("schedule", _describe(schedule))
    device = torch.device(device)

    def protocol() -> None:
        for m in ("alpha", "sigma"):
            require(callable(getattr(schedule, m, None)), f"has no callable {m} method")

    report.run("protocol", protocol)
    if report.failures:
        return report.raise_for_failures() if raise_on_failure else report
    ends = torch.tensor(_ENDS, dtype=torch.float64, device=device)

    def shapes() -> None:
        for dtype in dtypes:
            for shape in ((7,), (2, 7)):
                t = ends.to(dtype).expand(shape)
                for m in ("alpha", "sigma"):
                    out = getattr(schedule, m)(t)
                    require(isinstance(out, Tensor) and out.shape == t.shape,
                            f"{m} of t with shape {tuple(t.shape)} returned shape {tuple(getattr(out, 'shape', ()))}")
                    require(out.dtype == dtype, f"{m} turned a {dtype} time into {out.dtype}")

    def finite() -> None:
        for m in ("alpha", "sigma"):
            out = getattr(schedule, m)(ends)
            bad = [v for v, ok in zip(_ENDS, torch.isfinite(out).tolist()) if not ok]
            require(not bad, f"{m}(t) is not finite at t = {bad}")

    def sigma_nonnegative() -> None:
        s = schedule.sigma(ends)
        require(bool((s >= 0).all()), f"sigma(t) must be >= 0, got {s.min().item():.3g}")

    def derivatives() -> Optional[str]:
        inner = torch.linspace(0.01, 0.99, 33, dtype=torch.float64, device=device)
        near = torch.tensor([1e-3, 1 - 1e-3], dtype=torch.float64, device=device)
        checked = []
        for base, names in DERIVATIVE_NAMES.items():
            name = next((n for n in names if callable(getattr(schedule, n, None))), None)
            if name is None:
                continue
            want, how = _derivative(getattr(schedule, base), inner)
            got = getattr(schedule, name)(inner)
            ok, diff = _close(got, want, 1e-5, 1e-8 * (1 + want.abs().max().item()))
            require(ok, f"{name} differs from d {base} / dt ({how}) by up to {diff:.3g} on [0.01, 0.99]")
            require(bool(torch.isfinite(getattr(schedule, name)(near)).all()),
                    f"{name} is not finite at t = 1e-3 or 1 - 1e-3")
            checked.append(name)
        if not checked:
            return "exposes no derivatives (d_alpha/d_sigma or alpha_dot/sigma_dot)"
        return None

    report.run("shapes", shapes)
    report.run("finite", finite)
    report.run("sigma_nonnegative", sigma_nonnegative)
    report.run("derivatives", derivatives)
    return report.raise_for_failures() if raise_on_failure else report


# --------------------------------------------------------------------------- gamma


def check_gamma(
    gamma: Any,
    *,
    device: torch.device | str = "cpu",
    raise_on_failure: bool = True,
) -> Report:
    """Run the interpolant-noise checks (see the module docstring) on ``gamma``."""
    gamma = _instance(gamma)
    report = Report("gamma", _describe(gamma))
    device = torch.device(device)

    def protocol() -> None:
        for m in ("gamma", "gamma_dot"):
            require(callable(getattr(gamma, m, None)), f"has no callable {m} method")

    report.run("protocol", protocol)
    if report.failures:
        return report.raise_for_failures() if raise_on_failure else report
    ends = torch.tensor(_ENDS, dtype=torch.float64, device=device)
    inner = torch.linspace(0.01, 0.99, 33, dtype=torch.float64, device=device)

    def endpoints() -> None:
        g = gamma.gamma(ends)
        require(g.shape == ends.shape, f"gamma of t with shape {tuple(ends.shape)} returned {tuple(g.shape)}")
        require(bool(torch.isfinite(g).all()), f"gamma(t) is not finite on {_ENDS}")
        require(abs(g[0].item()) <= 1e-12 and abs(g[-1].item()) <= 1e-12,
                f"gamma(0) and gamma(1) must be 0 (exact endpoints), got {g[0].item():.3g}, {g[-1].item():.3g}")

    def derivative() -> None:
        want, how = _derivative(gamma.gamma, inner)
        got = gamma.gamma_dot(inner)
        ok, diff = _close(got, want, 1e-5, 1e-8)
        require(ok, f"gamma_dot differs from d gamma / dt ({how}) by up to {diff:.3g} on [0.01, 0.99]")

    def product() -> Optional[str]:
        if not callable(getattr(gamma, "gamma_gamma_dot", None)):
            return "no gamma_gamma_dot"
        got = gamma.gamma_gamma_dot(inner)
        ok, diff = _close(got, gamma.gamma(inner) * gamma.gamma_dot(inner), 1e-6, 1e-10)
        require(ok, f"gamma_gamma_dot differs from gamma * gamma_dot by up to {diff:.3g}")
        require(bool(torch.isfinite(gamma.gamma_gamma_dot(ends)).all()), "gamma_gamma_dot is not finite on [0, 1]")
        return None

    report.run("endpoints", endpoints)
    report.run("derivative", derivative)
    report.run("gamma_gamma_dot", product)
    return report.raise_for_failures() if raise_on_failure else report
