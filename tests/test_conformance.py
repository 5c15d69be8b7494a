"""The conformance kit: every registered component passes it, and broken components fail it.

The first half runs the kit over every component the installed first-party plugins register
(``nami_core.registry.components(kind)``): components of plugins still in progress join as
they are registered. The second half feeds deliberately broken components to each check and
asserts that it fails, naming the defect: a check that cannot fail is a defect of the kit.
"""

from __future__ import annotations

import math
import textwrap

import attrs
import importlib_metadata
import pytest
import torch

from nami_core.conformance import (
    CHECKS,
    ConformanceError,
    NotInstantiable,
    Report,
    check_component,
    check_dataset,
    check_gamma,
    check_ode_solver,
    check_path,
    check_schedule,
    check_sde_solver,
    example_instance,
    registered_examples,
)
from nami_core.conformance.pytest_plugin import NamiCheck, conformance_params
from nami_core.protocols import Solution
from nami_core.registry import Registry, components
from nami_solvers import ButcherTableau, Euler, ExplicitRK, explicit_rk_solve
from nami_solvers.tableaus import HEUN, RK4

pytest_plugins = ["pytester"]

PLUGIN_MODULE = "nami_core.conformance.pytest_plugin"

#: Test instances of registered components whose constructor needs arguments (and which do
#: not declare conformance_example()).
EXAMPLES = {"nami-solvers:explicit_rk": lambda: ExplicitRK(tableau="ralston")}


@pytest.fixture
def kit() -> NamiCheck:
    """The kit bound to the CPU (the ``nami_check`` fixture of the plugin, without needing it)."""
    return NamiCheck(torch.device("cpu"))


# -- every registered component passes -------------------------------------------------------

@pytest.mark.parametrize("case", conformance_params("solver", examples=EXAMPLES))
def test_registered_solvers(case, kit):
    report = kit.case(case)
    assert report.ok
    if "order" in report.measured:  # fixed-step: the measured orders back the claim
        claimed = case.instance().order
        assert min(report.measured["order"].values()) == pytest.approx(claimed, abs=0.3)


@pytest.mark.parametrize("case", conformance_params("path", examples=EXAMPLES))
def test_registered_paths(case, kit):
    assert "velocity" in kit.case(case).passed


@pytest.mark.parametrize("case", conformance_params("schedule", examples=EXAMPLES))
def test_registered_schedules(case, kit):
    assert kit.case(case).ok


@pytest.mark.parametrize("case", conformance_params("gamma", examples=EXAMPLES))
def test_registered_gammas(case, kit):
    assert kit.case(case).ok


@pytest.mark.parametrize("case", conformance_params("dataset", examples=EXAMPLES))
def test_registered_datasets(case, kit):
    assert "reproducible" in kit.case(case).passed


@pytest.mark.parametrize(
    "info", [pytest.param(c, id=c.qualified_name) for c in components() if c.kind not in CHECKS]
)
def test_registered_components_of_other_kinds_satisfy_their_protocol(info):
    report = check_component(info.kind, info.factory)
    assert report.passed == ["protocol"]


def test_first_party_solvers_are_all_covered():
    names = {c.name.partition(":")[2] for c in registered_examples("solver")}
    assert {"euler", "midpoint", "heun", "rk4", "explicit_rk", "dopri5"} <= names


# -- helpers for broken components -------------------------------------------------------------

def fixed(tableau, steps=20, **kw):
    return ExplicitRK(tableau=tableau, steps=steps, **kw)


@attrs.frozen(kw_only=True)
class Wrapped:
    """A fixed-step solver built on Euler whose ``integrate`` a test can sabotage."""

    steps: int = 50
    order = 1
    sabotage: str = "none"

    def integrate(self, fn, y0, t0, t1, *, time_shape=(), trajectory=False):
        s = self.sabotage
        if s == "dtype":
            y0 = y0.double() if isinstance(y0, torch.Tensor) else tuple(p.double() for p in y0)
        if s == "direction":
            t0, t1 = min(t0, t1), max(t0, t1)
        if s == "mutate" and isinstance(y0, torch.Tensor):
            y0.mul_(1.0)
            y0.add_(1e-3)
        if s == "outside":
            fn(y0, torch.full(tuple(time_shape), t1 + (t1 - t0), dtype=_first(y0).dtype))
        sol = explicit_rk_solve(Euler.tableau, self.steps, fn, y0, t0, t1,
                                time_shape=time_shape, trajectory=trajectory)
        if s == "detach":
            sol = Solution(y=sol.y.detach() if isinstance(sol.y, torch.Tensor) else sol.y, nfe=sol.nfe,
                           ts=sol.ts, ys=sol.ys)
        if s == "nfe":
            sol = Solution(y=sol.y, nfe=sol.nfe + 1, ts=sol.ts, ys=sol.ys)
        if s == "endpoint" and sol.ts is not None:
            sol = Solution(y=sol.y, nfe=sol.nfe, ts=sol.ts * (1 - 1e-9), ys=sol.ys)
        return sol


def _first(y):
    return y if isinstance(y, torch.Tensor) else y[0]


# -- broken solvers fail ---------------------------------------------------------------------

def test_wrong_order_claim_fails():
    # RK4's coefficients claimed as order 5 (ButcherTableau checks the conditions up to 4 only)
    overclaimed = ButcherTableau(c=RK4.c, a=RK4.a, b=RK4.b, order=5, name="rk4_claims_5")
    with pytest.raises(ConformanceError, match=r"convergence: claims order 5 but measures 4\.\d+"):
        check_ode_solver(fixed(overclaimed))
    # Heun's method claimed as order 1: measures 2 on every problem
    underclaimed = ButcherTableau(c=HEUN.c, a=HEUN.a, b=HEUN.b, order=1, name="heun_claims_1")
    with pytest.raises(ConformanceError, match="claims order 1 but measures at least 1.9.*too low"):
        check_ode_solver(fixed(underclaimed))
    # the override of the claim is honoured
    assert check_ode_solver(fixed(underclaimed), order=2).ok


@pytest.mark.parametrize("sabotage, check, message", [
    ("dtype", "dtype", "torch.float32 state on cpu: fn received .*torch.float64"),
    ("direction", "directions", "must give y0 \\+ \\(t1 - t0\\)"),
    ("mutate", "no_mutation", "modified y0 in place"),
    ("outside", "endpoints", "evaluated outside \\[t0, t1\\]"),
    ("detach", "autograd", "gradients do not flow"),
    ("nfe", "nfe", "Solution.nfe = \\d+ but fn was called \\d+ times"),
    ("endpoint", "endpoints", "must be exactly t0"),
])
def test_sabotaged_solver_fails_the_right_check(sabotage, check, message):
    assert check_ode_solver(Wrapped()).ok  # the unsabotaged solver passes
    report = check_ode_solver(Wrapped(sabotage=sabotage), raise_on_failure=False)
    failed = dict(report.failures)
    assert check in failed, report.summary()
    assert __import__("re").search(message, failed[check]), failed[check]
    with pytest.raises(ConformanceError, match=f"FAILED {check}"):
        report.raise_for_failures()


@attrs.frozen(kw_only=True)
class DeafAdaptive:
    """Claims to be adaptive but ignores its tolerances (fixed 30 Euler steps)."""

    rtol: float = 1e-5
    atol: float = 1e-6

    def integrate(self, fn, y0, t0, t1, *, time_shape=(), trajectory=False):
        return explicit_rk_solve(Euler.tableau, 30, fn, y0, t0, t1, time_shape=time_shape, trajectory=trajectory)


def test_adaptive_solver_ignoring_its_tolerance_fails():
    with pytest.raises(ConformanceError, match="convergence: .*more than 100 x the tolerance"):
        check_ode_solver(DeafAdaptive())


def test_solver_without_integrate_fails_protocol():
    class NotASolver:
        def solve(self, fn, y0, t0, t1): ...

    with pytest.raises(ConformanceError, match="lacks integrate"):
        check_component("solver", NotASolver())
    report = check_ode_solver(NotASolver(), raise_on_failure=False)
    assert [n for n, _ in report.failures] == ["protocol"]


# -- SDE solvers -------------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class TinyEM:
    """Euler–Maruyama written here to exercise the SDE checks (``noise`` sabotages it)."""

    steps: int = 100
    noise: str = "ok"

    def integrate_sde(self, drift, diffusion, y0, t0, t1, *, time_shape=(), generator=None, trajectory=False):
        h = (t1 - t0) / self.steps
        y = y0
        for n in range(self.steps):
            t = torch.full(tuple(time_shape), t0 + n * h, dtype=y0.dtype, device=y0.device)
            if self.noise == "global":
                z = torch.randn(y.shape, dtype=y.dtype)
            else:
                z = torch.randn(y.shape, dtype=y.dtype, generator=generator)
            scale = abs(h) if self.noise == "no_sqrt" else math.sqrt(abs(h))
            y = y + h * drift(y, t) + scale * diffusion(y, t) * z
        return Solution(y=y, nfe=2 * self.steps)


def test_sde_checks():
    report = check_sde_solver(TinyEM())
    assert set(report.passed) >= {"protocol", "dtype", "reproducible", "drift_only", "noise_scale", "nfe"}
    with pytest.raises(ConformanceError, match="reproducible: two solves with the same generator seed differ"):
        check_sde_solver(TinyEM(noise="global"))
    with pytest.raises(ConformanceError, match="noise_scale: dy = 0.5 dW .* variance"):
        check_sde_solver(TinyEM(noise="no_sqrt"))
    assert "sde_noise_scale" in check_component("solver", TinyEM()).passed


# -- paths, schedules, gamma -------------------------------------------------------------------

class Linear:
    """The linear path, written out (a, s = 1 - t, t) so tests can break pieces of it."""

    def alpha(self, t):
        return 1 - t

    def sigma(self, t):
        return t

    def d_alpha(self, t):
        return -torch.ones_like(t)

    def d_sigma(self, t):
        return torch.ones_like(t)

    def interpolate(self, x0, x1, t):
        tb = t.reshape(t.shape + (1,) * (x0.ndim - t.ndim))
        return self.alpha(tb) * x0 + self.sigma(tb) * x1

    def velocity(self, x0, x1, t):
        tb = t.reshape(t.shape + (1,) * (x0.ndim - t.ndim))
        return self.d_alpha(tb) * x0 + self.d_sigma(tb) * x1


class WrongVelocity(Linear):
    def velocity(self, x0, x1, t):
        return 1.1 * super().velocity(x0, x1, t)


class MissedEndpoint(Linear):
    def sigma(self, t):
        return 0.999 * t + 0.0005


class DropsDtype(Linear):
    def interpolate(self, x0, x1, t):
        return super().interpolate(x0, x1, t).float()


class WrongDerivative(Linear):
    def d_sigma(self, t):
        return 1.01 * torch.ones_like(t)


class InfiniteAtZero(Linear):
    def sigma(self, t):
        return t / t.sqrt() * t.sqrt() + torch.where(t == 0, torch.inf, 0.0)


class NoVelocity:
    def interpolate(self, x0, x1, t):
        return x0


def test_good_path_passes():
    report = check_path(Linear())
    assert {"shapes", "endpoints", "finite", "velocity", "schedule_derivatives"} <= set(report.passed)
    assert report.measured["velocity_derivative"] == "jvp"


@pytest.mark.parametrize("path, check, message", [
    (WrongVelocity(), "velocity", "velocity differs from d interpolate / dt"),
    (MissedEndpoint(), "endpoints", "interpolate at t=0 must give x0"),
    (DropsDtype(), "shapes", "interpolate turned a torch.float64 input into torch.float32"),
    (WrongDerivative(), "schedule_derivatives", "d_sigma differs from d sigma / dt"),
    (InfiniteAtZero(), "schedule_finite", r"sigma\(t\) is not finite at t = \[0.0\]"),
])
def test_broken_paths_fail(path, check, message):
    report = check_path(path, raise_on_failure=False)
    failed = dict(report.failures)
    assert check in failed, report.summary()
    assert __import__("re").search(message, failed[check]), failed[check]


def test_path_missing_a_method_fails_protocol():
    with pytest.raises(ConformanceError, match="lacks velocity, required of a path"):
        check_component("path", NoVelocity())


def test_schedule_checks():
    assert check_schedule(Linear()).ok
    with pytest.raises(ConformanceError, match="derivatives: d_sigma differs"):
        check_schedule(WrongDerivative())

    class NegativeSigma(Linear):
        def sigma(self, t):
            return -t

        def d_sigma(self, t):
            return -torch.ones_like(t)

    with pytest.raises(ConformanceError, match="sigma_nonnegative"):
        check_schedule(NegativeSigma())

    class NoDerivatives:
        def alpha(self, t):
            return 1 - t

        def sigma(self, t):
            return t

    report = check_schedule(NoDerivatives())
    assert report.ok and dict(report.skipped)["derivatives"].startswith("exposes no derivatives")


class SqrtGamma:
    def gamma(self, t):
        return (t * (1 - t)).sqrt()

    def gamma_dot(self, t):
        return (1 - 2 * t) / (2 * (t * (1 - t)).sqrt())


def test_gamma_checks():
    assert check_gamma(SqrtGamma()).ok

    class NotPinned(SqrtGamma):
        def gamma(self, t):
            return super().gamma(t) + 0.1

    class WrongDot(SqrtGamma):
        def gamma_dot(self, t):
            return -super().gamma_dot(t)

    with pytest.raises(ConformanceError, match=r"gamma\(0\) and gamma\(1\) must be 0"):
        check_gamma(NotPinned())
    with pytest.raises(ConformanceError, match="gamma_dot differs"):
        check_gamma(WrongDot())


# -- data sets ---------------------------------------------------------------------------------

class Blobs:
    dim = 2

    def sample(self, n, *, generator=None):
        return torch.randn(n, 2, generator=generator)


def test_dataset_checks():
    assert check_dataset(Blobs()).ok

    class IgnoresGenerator(Blobs):
        def sample(self, n, *, generator=None):
            return torch.randn(n, 2)

    class WrongDim(Blobs):
        dim = 3

    class Integers(Blobs):
        def sample(self, n, *, generator=None):
            return torch.randint(0, 5, (n, 2), generator=generator)

    with pytest.raises(ConformanceError, match="reproducible: two draws with the same generator seed differ"):
        check_dataset(IgnoresGenerator())
    with pytest.raises(ConformanceError, match="declares dim = 3"):
        check_dataset(WrongDim())
    with pytest.raises(ConformanceError, match="floating point"):
        check_dataset(Integers())

    class NeedsOptional(Blobs):
        def sample(self, n, *, generator=None):
            raise ImportError("No module named 'not_installed'")

    with pytest.raises(NotInstantiable, match="not_installed"):
        check_dataset(NeedsOptional())


# -- the conformance_example convention ----------------------------------------------------------

@attrs.frozen(kw_only=True)
class NeedsTableau:
    tableau: ButcherTableau
    steps: int = 10

    @property
    def order(self):
        return self.tableau.order

    def integrate(self, fn, y0, t0, t1, *, time_shape=(), trajectory=False):
        return explicit_rk_solve(self.tableau, self.steps, fn, y0, t0, t1, time_shape=time_shape,
                                 trajectory=trajectory)


@attrs.frozen(kw_only=True)
class DeclaresExample(NeedsTableau):
    @classmethod
    def conformance_example(cls):
        return cls(tableau=RK4)


def test_example_instance_convention():
    assert example_instance(DeclaresExample).tableau is RK4
    assert example_instance(Blobs).dim == 2
    with pytest.raises(NotInstantiable, match="requires tableau.*conformance_example"):
        example_instance(NeedsTableau)

    def broken_factory():
        import not_a_real_module  # noqa: F401

    with pytest.raises(NotInstantiable, match="missing optional dependency"):
        example_instance(broken_factory)


def test_conformance_params_over_a_registry(kit):
    reg = Registry(autoload=False)
    reg.register("solver", "needs_tableau", NeedsTableau)
    reg.register("solver", "rk4_example", DeclaresExample)
    reg.register("dataset", "blobs", Blobs)
    params = conformance_params("solver", registry=reg)
    assert [p.id for p in params] == ["local:needs_tableau", "local:rk4_example"]
    with pytest.raises(pytest.skip.Exception, match="requires tableau"):
        kit.case(params[0].values[0])
    assert kit.case(params[1].values[0]).measured["order"]["linear"] == pytest.approx(4, abs=0.3)
    overridden = conformance_params("solver", registry=reg,
                                    examples={"needs_tableau": lambda: ExplicitRK(tableau="rk38")})
    assert kit.case(overridden[0].values[0]).ok
    assert conformance_params("schedule", registry=reg) == []
    assert [p.id for p in conformance_params("dataset", registry=reg, distributions=["local"])] == ["local:blobs"]


def test_check_component_takes_factories_and_other_kinds():
    assert check_component("dataset", Blobs).ok  # a factory is built with example_instance
    report = check_component("coupling", type("C", (), {"pair": lambda self, x0, x1: (x0, x1)}))
    assert report.passed == ["protocol"] and "no behavioural checks" in dict(report.skipped)["behaviour"]
    with pytest.raises(ConformanceError, match="lacks pair"):
        check_component("coupling", type("D", (), {}))


def test_report_summary_lists_every_failure():
    report = check_ode_solver(Wrapped(sabotage="dtype"), raise_on_failure=False)
    assert isinstance(report, Report) and not report.ok
    text = report.summary()
    assert text.splitlines()[0].startswith("solver Wrapped(") and "FAILED dtype" in text
    with pytest.raises(AssertionError):  # ConformanceError is an AssertionError for pytest
        report.raise_for_failures()


# -- the pytest plugin ----------------------------------------------------------------------------

def _plugin_installed() -> bool:
    return any(ep.value == PLUGIN_MODULE for ep in importlib_metadata.entry_points(group="pytest11"))


def test_pytest_plugin_fixtures(pytester):
    pytester.makepyfile(textwrap.dedent("""
        import pytest, torch
        from nami_core.conformance import ConformanceError
        from nami_core.conformance.pytest_plugin import conformance_params
        from nami_core.registry import get

        class Blobs:
            def sample(self, n, *, generator=None):
                return torch.randn(n, 2, generator=generator)

        def test_device(nami_device):
            assert nami_device == torch.device("cpu")

        def test_check(nami_check):
            from nami_solvers import RK4
            assert nami_check.ode_solver(RK4(steps=8)).ok
            with pytest.raises(ConformanceError):
                nami_check.dataset(type("Bad", (), {"sample": lambda self, n, generator=None: torch.randn(n, 2)})())

        def test_register(nami_register, nami_check):
            nami_register("dataset", "blobs_for_one_test", Blobs)
            assert get("dataset", "local:blobs_for_one_test").factory is Blobs
            case = [p for p in conformance_params("dataset") if p.id == "local:blobs_for_one_test"][0]
            assert nami_check.case(case.values[0]).ok

        def test_unregistered_afterwards():
            with pytest.raises(LookupError):
                get("dataset", "local:blobs_for_one_test")

        def test_not_instantiable_skips(nami_check):
            class Needs:
                def __init__(self, x): ...
                def sample(self, n, *, generator=None): ...
            nami_check.component("dataset", Needs)
    """))
    args = ["-q", "-p", "no:cacheprovider", "--nami-device", "cpu"]
    if not _plugin_installed():
        args = ["-p", PLUGIN_MODULE] + args
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=4, skipped=1)


def test_pytest11_entry_point_is_declared():
    """nami-core must ship the plugin under the ``pytest11`` entry point (root pyproject)."""
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text()).get("project", {}).get("entry-points", {}).get("pytest11", {})
    if PLUGIN_MODULE not in declared.values():
        pytest.skip("the root pyproject.toml does not declare [project.entry-points.pytest11] "
                    f"nami = {PLUGIN_MODULE!r} yet")
    assert _plugin_installed(), "declared in pyproject.toml but not installed: reinstall nami-core (pip install -e .)"
