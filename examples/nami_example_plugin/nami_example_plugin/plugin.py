"""Entry point of nami-example-plugin (``[project.entry-points.nami] example = ...``).

The nami registry imports this module on first use and calls :func:`nami_register` with a
``register(kind, name, factory, *, aliases=())`` callback. Everything registered here is
reachable by its bare name (``"ssprk3_example"``) and by its qualified name
(``"nami-example-plugin:ssprk3_example"``).
"""

from __future__ import annotations

from nami_core.hookspecs import hookimpl

from .solvers import SSPRK3Example

__all__ = ["nami_register"]


@hookimpl
def nami_register(register):  # type: ignore[no-untyped-def]
    """Register the example solver under kind ``"solver"``."""
    register("solver", "ssprk3_example", SSPRK3Example)
