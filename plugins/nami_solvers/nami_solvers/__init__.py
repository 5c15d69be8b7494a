"""nami-solvers: fixed-step explicit Runge–Kutta ODE solvers for nami.

One engine (:func:`~nami_solvers.rk.explicit_rk_solve`) driven by Butcher tableaus
(:mod:`nami_solvers.tableaus`); :class:`Euler`, :class:`Midpoint`, :class:`Heun` and
:class:`RK4` fix a tableau, :class:`ExplicitRK` takes any. Registered under kind
``"solver"`` as ``euler``, ``midpoint``, ``heun``, ``rk4`` and ``explicit_rk``.
"""

from __future__ import annotations

from .rk import RK4, Euler, ExplicitRK, Heun, Midpoint, explicit_rk_solve
from .tableaus import TABLEAUS, ButcherTableau

__all__ = [
    "Euler",
    "Midpoint",
    "Heun",
    "RK4",
    "ExplicitRK",
    "ButcherTableau",
    "TABLEAUS",
    "explicit_rk_solve",
    "__version__",
]

__version__ = "0.1.0"
