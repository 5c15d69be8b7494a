"""pytest plugin of the conformance kit.

Installed with nami-core under the ``pytest11`` entry point ``nami``, so every pytest run in an
environment with nami-core has it (without the entry point: ``pytest -p
nami_core.conformance.pytest_plugin``). It imports nothing heavy until a fixture is used.

Fixtures:
    ``nami_check``: the checks of :mod:`nami_core.conformance` bound to the test device, as
        methods (``nami_check.ode_solver(solver)``, ``.path``, ``.schedule``, ``.gamma``,
        ``.dataset``, ``.sde_solver``, ``.component(kind, obj)``, ``.case(case)``); a failure
        raises :class:`~nami_core.conformance.ConformanceError` listing every failed check, a
        component that cannot be built for testing skips the test.
    ``nami_device``: the test device, from ``--nami-device`` (or ``NAMI_TEST_DEVICE``;
        default ``cpu``); CUDA without a GPU skips.
    ``nami_register``: ``register(kind, name, factory, *, aliases=())`` into the default
        registry for the duration of one test (unregistered afterwards).

Helper:
    :func:`conformance_params` lists every registered component of a kind as
    ``pytest.param`` objects, for ``@pytest.mark.parametrize``::

        from nami_core.conformance.pytest_plugin import conformance_params

        @pytest.mark.parametrize("case", conformance_params("solver"))
        def test_solvers(case, nami_check):
            nami_check.case(case)
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional, Sequence

import pytest

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from nami_core.conformance import Case, Report

__all__ = ["conformance_params", "NamiCheck", "nami_check", "nami_device", "nami_register", "ENV_DEVICE"]

#: Environment variable read when ``--nami-device`` is not given.
ENV_DEVICE = "NAMI_TEST_DEVICE"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nami", "nami conformance kit")
    group.addoption(
        "--nami-device", action="store", default=None, dest="nami_device", metavar="DEVICE",
        help=f"torch device of the nami conformance checks (default: ${ENV_DEVICE} or cpu)",
    )


def conformance_params(
    kind: str,
    *,
    registry: Any = None,
    examples: Optional[Mapping[str, Callable[[], Any]]] = None,
    distributions: Optional[Sequence[str]] = None,
) -> list[Any]:
    """Every registered component of ``kind`` as a ``pytest.param`` (id: its qualified name).

    Instances are built when the test runs (``nami_check.case(case)`` or ``case.instance()``),
    not at collection.

    Args:
        kind: component kind.
        registry: a :class:`~nami_core.registry.Registry` (default: the default registry).
        examples: test-instance builders by registry name or qualified name, for components
            that need constructor arguments and declare no ``conformance_example()``.
        distributions: only components of these distributions (e.g. ``["my-plugin"]``).
    """
    from nami_core.conformance import registered_examples
    from nami_core.registry import normalize_distribution

    dists = None if distributions is None else {normalize_distribution(d) for d in distributions}
    cases = registered_examples(kind, registry=registry, examples=examples, distributions=dists)
    return [pytest.param(case, id=case.name) for case in cases]


class NamiCheck:
    """The conformance checks bound to a device (the ``nami_check`` fixture)."""

    def __init__(self, device: "torch.device") -> None:
        self.device = device

    def _call(self, fn: Callable[..., "Report"], *args: Any, **kwargs: Any) -> "Report":
        from nami_core.conformance import NotInstantiable

        try:
            return fn(*args, **kwargs)
        except NotInstantiable as exc:
            pytest.skip(str(exc))

    def component(self, kind: str, obj: Any, **options: Any) -> "Report":
        """:func:`~nami_core.conformance.check_component` on this device."""
        from nami_core.conformance import check_component

        return self._call(check_component, kind, obj, device=self.device, **options)

    __call__ = component

    def case(self, case: "Case", **options: Any) -> "Report":
        """Build the instance of a :class:`~nami_core.conformance.Case` and check it."""
        from nami_core.conformance import NotInstantiable, check_component

        try:
            instance = case.instance()
        except NotInstantiable as exc:
            pytest.skip(str(exc))
        return self._call(check_component, case.kind, instance, device=self.device, **options)

    def ode_solver(self, solver: Any, **options: Any) -> "Report":
        """:func:`~nami_core.conformance.check_ode_solver` on this device."""
        from nami_core.conformance import check_ode_solver

        return self._call(check_ode_solver, solver, device=self.device, **options)

    def sde_solver(self, solver: Any, **options: Any) -> "Report":
        """:func:`~nami_core.conformance.check_sde_solver` on this device."""
        from nami_core.conformance import check_sde_solver

        return self._call(check_sde_solver, solver, device=self.device, **options)

    def path(self, path: Any, **options: Any) -> "Report":
        """:func:`~nami_core.conformance.check_path` on this device."""
        from nami_core.conformance import check_path

        return self._call(check_path, path, device=self.device, **options)

    def schedule(self, schedule: Any, **options: Any) -> "Report":
        """:func:`~nami_core.conformance.check_schedule` on this device."""
        from nami_core.conformance import check_schedule

        return self._call(check_schedule, schedule, device=self.device, **options)

    def gamma(self, gamma: Any, **options: Any) -> "Report":
        """:func:`~nami_core.conformance.check_gamma` on this device."""
        from nami_core.conformance import check_gamma

        return self._call(check_gamma, gamma, device=self.device, **options)

    def dataset(self, dataset: Any, **options: Any) -> "Report":
        """:func:`~nami_core.conformance.check_dataset` (data sets are drawn on the CPU)."""
        from nami_core.conformance import check_dataset

        return self._call(check_dataset, dataset, **options)


@pytest.fixture(scope="session")
def nami_device(request: pytest.FixtureRequest) -> "torch.device":
    """The device of the conformance checks (``--nami-device``, ``$NAMI_TEST_DEVICE``, ``cpu``)."""
    import torch

    value = request.config.getoption("nami_device", default=None) or os.environ.get(ENV_DEVICE) or "cpu"
    device = torch.device(value)
    if device.type == "cuda" and not torch.cuda.is_available():
        pytest.skip(f"--nami-device={value} but CUDA is not available")
    return device


@pytest.fixture
def nami_check(nami_device: "torch.device") -> NamiCheck:
    """The conformance checks bound to ``nami_device`` (see :class:`NamiCheck`)."""
    return NamiCheck(nami_device)


@pytest.fixture
def nami_register() -> Iterator[Callable[..., Any]]:
    """``register(kind, name, factory, *, aliases=())`` into the default registry for one test."""
    from nami_core.errors import ComponentNotFoundError
    from nami_core.registry import LOCAL, default_registry

    registry = default_registry()
    added: list[tuple[str, str]] = []

    def register(kind: str, name: str, factory: Any, *, aliases: Sequence[str] = ()) -> Any:
        registry.register(kind, name, factory, aliases=aliases, source=LOCAL)
        added.append((kind, name))
        return factory

    yield register
    for kind, name in reversed(added):
        try:
            registry.unregister(kind, name, source=LOCAL)
        except ComponentNotFoundError:
            pass
