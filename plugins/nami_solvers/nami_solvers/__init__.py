"""nami-solvers: explicit Runge–Kutta ODE solvers for nami.

Fixed step: one engine (:func:`~nami_solvers.rk.explicit_rk_solve`) driven by Butcher
tableaus (:mod:`nami_solvers.tableaus`); :class:`Euler`, :class:`Midpoint`, :class:`Heun` and
:class:`RK4` fix a tableau, :class:`ExplicitRK` takes any. Adaptive: one engine
(:func:`~nami_solvers.adaptive.adaptive_rk_solve`) driven by embedded pairs
(:class:`~nami_solvers.adaptive.EmbeddedTableau`); :class:`Dopri5` fixes the Dormand–Prince
5(4) pair, :class:`AdaptiveRK` takes any. Registered under kind ``"solver"`` as ``euler``,
``midpoint``, ``heun``, ``rk4``, ``explicit_rk`` and ``dopri5``.
"""

from __future__ import annotations

from .adaptive import DOPRI5, AdaptiveRK, AdaptiveSolution, Dopri5, EmbeddedTableau, adaptive_rk_solve
from .rk import RK4, Euler, ExplicitRK, Heun, Midpoint, explicit_rk_solve
from .sde import EulerMaruyama, StochasticHeun, sde_solve
from .tableaus import TABLEAUS, ButcherTableau

__all__ = [
    "EulerMaruyama",
    "StochasticHeun",
    "sde_solve",
    "Euler",
    "Midpoint",
    "Heun",
    "RK4",
    "ExplicitRK",
    "ButcherTableau",
    "TABLEAUS",
    "explicit_rk_solve",
    "Dopri5",
    "AdaptiveRK",
    "AdaptiveSolution",
    "EmbeddedTableau",
    "DOPRI5",
    "adaptive_rk_solve",
    "__version__",
]

__version__ = "0.1.0"
