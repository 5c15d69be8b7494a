"""Entry point of the nami-solvers plugin: registers the ODE and SDE solvers.

Declared in ``pyproject.toml`` as ``[project.entry-points.nami] solvers =
"nami_solvers.plugin"``; the registry calls :func:`nami_register` on first access.
"""

from __future__ import annotations

from nami_core.hookspecs import hookimpl

from .adaptive import Dopri5
from .rk import RK4, Euler, ExplicitRK, Heun, Midpoint
from .sde import EulerMaruyama, StochasticHeun

__all__ = ["nami_register", "SOLVERS"]

#: Registry name -> solver class registered under kind ``"solver"``.
SOLVERS = {
    "euler": Euler,
    "midpoint": Midpoint,
    "heun": Heun,
    "rk4": RK4,
    "explicit_rk": ExplicitRK,
    "dopri5": Dopri5,
    "euler_maruyama": EulerMaruyama,
    "stochastic_heun": StochasticHeun,
}


@hookimpl
def nami_register(register):  # type: ignore[no-untyped-def]
    """Register the solvers of :data:`SOLVERS` under kind ``"solver"``."""
    for name, cls in SOLVERS.items():
        register("solver", name, cls)
