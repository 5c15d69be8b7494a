"""The conformance kit: checks a plugin author runs against a component.

Each check function takes a component (an instance, or a factory that
:func:`example_instance` can build), runs named checks against the kind's protocol and
against closed forms, and returns a :class:`Report`; by default it raises
:class:`ConformanceError` listing every failed check, so it reads naturally in a test::

    from nami_core.conformance import check_ode_solver

    def test_my_solver():
        check_ode_solver(MySolver(steps=20))

=========================  =========================================================
:func:`check_component`    any kind: protocol, then the kind's checks
:func:`check_ode_solver`   endpoints, directions, dtype, nfe, measured order / tolerance
:func:`check_sde_solver`   shapes, dtype, reproducibility from a generator, noise scale
:func:`check_path`         endpoints, u = d x_t / dt (forward-mode autograd)
:func:`check_schedule`     finite at the ends, derivatives match autograd
:func:`check_gamma`        gamma(0) = gamma(1) = 0, gamma_dot matches autograd
:func:`check_dataset`      shapes, finite, reproducible from a generator
=========================  =========================================================

The pytest plugin :mod:`nami_core.conformance.pytest_plugin` (entry point ``pytest11``) adds
fixtures (``nami_check``, ``nami_device``, ``nami_register``) and
:func:`~nami_core.conformance.pytest_plugin.conformance_params` to parametrise a test over every
registered component of a kind. See ``docs/plugins.md``.
"""

from __future__ import annotations

from .components import CHECKS, check_component
from .datasets import check_dataset
from .examples import EXAMPLE_HOOK, Case, example_instance, registered_examples
from .paths import check_gamma, check_path, check_schedule
from .problems import PROBLEMS, Problem
from .report import ConformanceError, NotInstantiable, Report
from .solvers import check_ode_solver, check_sde_solver, rebuild

__all__ = [
    "check_component",
    "check_ode_solver",
    "check_sde_solver",
    "check_path",
    "check_schedule",
    "check_gamma",
    "check_dataset",
    "example_instance",
    "registered_examples",
    "rebuild",
    "Case",
    "Report",
    "ConformanceError",
    "NotInstantiable",
    "Problem",
    "PROBLEMS",
    "CHECKS",
    "EXAMPLE_HOOK",
]
