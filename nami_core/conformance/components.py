"""One entry point for every kind: :func:`check_component`."""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch

from nami_core.protocols import missing_methods

from .datasets import check_dataset
from .examples import example_instance
from .paths import check_gamma, check_path, check_schedule
from .report import Report, require
from .solvers import check_ode_solver, check_sde_solver

__all__ = ["check_component", "CHECKS"]


def _solver(obj: Any, *, device: Any = "cpu", **kw: Any) -> Report:
    report = Report("solver", repr(obj)[:120])
    has_ode = callable(getattr(obj, "integrate", None))
    has_sde = callable(getattr(obj, "integrate_sde", None))
    if has_ode:
        report.merge(check_ode_solver(obj, device=device, raise_on_failure=False, **kw))
    if has_sde:
        sde = check_sde_solver(obj, device=device, raise_on_failure=False)
        sde.passed = [f"sde_{n}" for n in sde.passed]
        sde.failures = [(f"sde_{n}", m) for n, m in sde.failures]
        sde.skipped = [(f"sde_{n}", m) for n, m in sde.skipped]
        report.merge(sde)
    return report


#: Behavioural checks by kind; other kinds get the protocol check only.
CHECKS: dict[str, Callable[..., Report]] = {
    "solver": _solver,
    "path": lambda obj, device="cpu", **kw: check_path(obj, device=device, raise_on_failure=False, **kw),
    "schedule": lambda obj, device="cpu", **kw: check_schedule(obj, device=device, raise_on_failure=False, **kw),
    "gamma": lambda obj, device="cpu", **kw: check_gamma(obj, device=device, raise_on_failure=False, **kw),
    "dataset": lambda obj, device="cpu", **kw: check_dataset(obj, raise_on_failure=False, **kw),
}


def check_component(
    kind: str,
    obj: Any,
    *,
    device: torch.device | str = "cpu",
    raise_on_failure: bool = True,
    **options: Any,
) -> Report:
    """Check ``obj`` against the protocol of ``kind`` and run that kind's behavioural checks.

    Args:
        kind: component kind (``"solver"``, ``"path"``, ``"schedule"``, ``"gamma"``,
            ``"dataset"``; any other kind gets the protocol check only).
        obj: the component: an instance, or its factory (built with
            :func:`~nami_core.conformance.example_instance`).
        device: device of the test tensors.
        raise_on_failure: raise :class:`~nami_core.conformance.ConformanceError` listing every
            failure (else only return the report).
        **options: passed to the kind's check (e.g. ``make=`` or ``order=`` for solvers).

    Returns:
        The :class:`~nami_core.conformance.Report`.

    Raises:
        NotInstantiable: ``obj`` is a factory that cannot be built for testing.

    Example:
        >>> from nami_core.conformance import check_component
        >>> class Half:  # a 'schedule' with alpha = 1 - t/2, sigma = t/2 and its derivatives
        ...     def alpha(self, t): return 1 - t / 2
        ...     def sigma(self, t): return t / 2
        ...     def d_alpha(self, t): return -0.5 + 0 * t
        ...     def d_sigma(self, t): return 0.5 + 0 * t
        >>> check_component("schedule", Half()).ok
        True
    """
    kind_c = kind.strip().lower().replace("-", "_")
    is_factory = inspect.isclass(obj) or inspect.isroutine(obj)
    if kind_c not in CHECKS:  # protocol only: the factory (or instance) itself is checked
        report = Report(kind_c, repr(obj)[:120])
        missing = missing_methods(kind_c, obj)
        report.run("protocol", lambda: require(not missing, f"lacks {', '.join(missing)}, required of a {kind_c}"))
        report.skip("behaviour", f"no behavioural checks for kind {kind_c!r}")
        return report.raise_for_failures() if raise_on_failure else report
    instance = example_instance(obj) if is_factory else obj
    report = Report(kind_c, repr(instance)[:120])
    missing = missing_methods(kind_c, instance)
    report.run("protocol_methods",
               lambda: require(not missing, f"lacks {', '.join(missing)}, required of a {kind_c} (nami_core.protocols)"))
    if not missing:
        report.merge(CHECKS[kind_c](instance, device=device, **options))
    return report.raise_for_failures() if raise_on_failure else report
