"""Hook specifications of the nami plugin system.

A plugin distribution declares an entry point in the group ``nami`` that points at a
module (or object) with a hook implementation::

    # pyproject.toml
    [project.entry-points.nami]
    my_solvers = "my_solvers.plugin"

    # my_solvers/plugin.py
    from nami_core.hookspecs import hookimpl

    @hookimpl
    def nami_register(register):
        register("solver", "my_euler", MyEuler)

``register(kind, name, factory, *, aliases=())`` records a component; the registry knows
which distribution registered it, so the component is also reachable under the
qualified name ``"<distribution>:<name>"``.
"""

from __future__ import annotations

import pluggy

__all__ = ["PROJECT", "hookspec", "hookimpl", "NamiHookSpecs"]

PROJECT = "nami"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class NamiHookSpecs:
    """The hooks a nami plugin may implement."""

    @hookspec
    def nami_register(self, register):  # type: ignore[no-untyped-def]
        """Register components.

        Args:
            register: callable ``register(kind, name, factory, *, aliases=())``. ``kind``
                is one of the component kinds (``"solver"``, ``"path"``, ``"schedule"``,
                ``"sde"``, ``"dataset"``, ...), ``name`` the registry name (lower case,
                ``[a-z0-9_]``), ``factory`` a class whose instances satisfy the kind's
                protocol (:mod:`nami_core.protocols`).
        """
