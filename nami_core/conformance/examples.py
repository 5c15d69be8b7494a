"""Test instances of components: the ``conformance_example()`` convention.

The checks need an instance of a component. :func:`example_instance` builds one from a
registered factory:

1. if the factory has a ``conformance_example`` attribute (a classmethod, staticmethod or
   function taking no arguments), its result is the instance to test, so a component
   whose constructor needs arguments (a tableau, a network, a data file) can still be
   checked;
2. otherwise the factory is called with no arguments;
3. if that is impossible (required parameters), :class:`NotInstantiable` is raised, which
   the pytest plugin turns into a skip whose reason names the missing parameters.

A test author can also pass ``examples={"name": lambda: Component(...)}`` (keyed by registry
name or qualified name) to :func:`registered_examples` to supply instances for components they
do not own.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, Optional

import attrs

from .report import NotInstantiable

__all__ = ["EXAMPLE_HOOK", "example_instance", "Case", "registered_examples"]

#: Name of the optional factory attribute that builds a ready-to-test instance.
EXAMPLE_HOOK = "conformance_example"


def _required_params(factory: Any) -> list[str]:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return []
    return [
        p.name for p in sig.parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def example_instance(factory: Any, *, name: Optional[str] = None) -> Any:
    """An instance of ``factory`` to run the checks on (see the module docstring).

    Raises:
        NotInstantiable: the factory needs arguments and declares no ``conformance_example``,
            or building it raised :class:`ImportError` (an optional dependency is missing).
    """
    label = name or getattr(factory, "__qualname__", repr(factory))
    hook = getattr(factory, EXAMPLE_HOOK, None)
    try:
        if callable(hook):
            return hook()
        required = _required_params(factory)
        if required:
            raise NotInstantiable(
                f"{label} cannot be built without arguments (it requires {', '.join(required)}) and "
                f"declares no {EXAMPLE_HOOK}() to build a test instance"
            )
        return factory()
    except ImportError as exc:
        raise NotInstantiable(f"{label} needs a missing optional dependency: {exc}") from exc


@attrs.frozen
class Case:
    """A registered component and how to build its test instance.

    Attributes:
        kind: component kind.
        name: qualified name (``"dist:name"``).
        factory: the registered factory.
        make: builds the test instance (may raise :class:`NotInstantiable`).
    """

    kind: str
    name: str
    factory: Any
    make: Callable[[], Any]

    def instance(self) -> Any:
        """Build the test instance."""
        return self.make()


def registered_examples(
    kind: str,
    *,
    registry: Any = None,
    examples: Optional[Mapping[str, Callable[[], Any]]] = None,
    distributions: Optional[set[str]] = None,
) -> list[Case]:
    """One :class:`Case` per registered component of ``kind`` (sorted by name).

    Args:
        kind: component kind (``"solver"``, ``"path"``, ...); unknown kinds give ``[]``.
        registry: a :class:`~nami_core.registry.Registry`; default: the default registry.
        examples: test-instance builders by registry name or qualified name; they take
            precedence over ``conformance_example()``.
        distributions: only components of these distributions (normalised names).
    """
    if registry is None:
        from nami_core.registry import default_registry

        registry = default_registry()
    from nami_core.registry import normalize_distribution

    examples = dict(examples or {})
    cases = []
    for info in registry.components(kind):
        if distributions is not None and normalize_distribution(info.distribution) not in distributions:
            continue
        builder = examples.get(info.qualified_name) or examples.get(info.name)
        if builder is None:
            builder = (lambda f=info.factory, n=info.qualified_name: example_instance(f, name=n))
        cases.append(Case(info.kind, info.qualified_name, info.factory, builder))
    return cases
