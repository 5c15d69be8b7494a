"""Tests of nami-example-plugin, written the way a plugin author writes them: with the
conformance kit of nami-core (``nami_core.conformance``)."""

from __future__ import annotations

import pytest

from nami_core.conformance import check_component, check_ode_solver
from nami_core.conformance.pytest_plugin import conformance_params
from nami_core.registry import Registry
from nami_example_plugin import SSPRK3Example

DIST = "nami-example-plugin"


def test_conformance_and_measured_order():
    # protocol, endpoints, directions, dtype, nfe, ... and the order measured on closed forms
    report = check_ode_solver(SSPRK3Example(steps=20))
    assert min(report.measured["order"].values()) == pytest.approx(3, abs=0.3)


@pytest.mark.parametrize("case", conformance_params("solver", distributions=[DIST]))
def test_every_registered_component(case):
    # parametrised over everything this plugin registers (found through its entry point)
    check_component(case.kind, case.instance())


def test_registered_under_its_names():
    registry = Registry()
    info = registry.get("solver", "ssprk3_example")
    assert info.factory is SSPRK3Example and info.qualified_name == f"{DIST}:ssprk3_example"
    assert registry.build("solver", f"{DIST}:ssprk3_example", steps=7) == SSPRK3Example(steps=7)
    (plugin,) = [p for p in registry.plugins() if p.distribution == DIST]
    assert plugin.status == "ok" and plugin.components == [("solver", "ssprk3_example")]


def test_configuration_is_validated():
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        SSPRK3Example(steps=0)
