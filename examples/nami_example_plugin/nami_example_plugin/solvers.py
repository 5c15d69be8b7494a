r"""The SSPRK3 solver: a Butcher tableau fed to the explicit Runge–Kutta engine of nami-solvers.

The three-stage, third-order strong-stability-preserving method of Shu & Osher (1988),

.. math::

    \begin{array}{c|ccc}
        0   &     &     &     \\
        1   & 1   &     &     \\
        1/2 & 1/4 & 1/4 &     \\ \hline
            & 1/6 & 1/6 & 2/3
    \end{array}

(nami-solvers ships the same tableau as ``"ssprk3"``; this plugin defines it again to show how a
third party adds a method).

References:
    C.-W. Shu, S. Osher, *Efficient implementation of essentially non-oscillatory
    shock-capturing schemes*, Journal of Computational Physics 77(2), 439–471, 1988.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

import attrs

from nami_core.protocols import Solution, State, VectorField
from nami_core.validation import positive_int
from nami_solvers import ButcherTableau, explicit_rk_solve

__all__ = ["SSPRK3_TABLEAU", "SSPRK3Example"]

SSPRK3_TABLEAU = ButcherTableau(
    c=(0, 1, 1 / 2), a=((), (1,), (1 / 4, 1 / 4)), b=(1 / 6, 1 / 6, 2 / 3), order=3, name="ssprk3_example"
)


@attrs.frozen(kw_only=True)
class SSPRK3Example:
    r"""Fixed-step SSPRK3 solver (order 3, 3 evaluations per step).

    A frozen attrs class, so the registry can rebuild it from ``(kind, name, params)`` and the
    conformance kit can vary ``steps`` to measure the order.

    Args:
        steps: number of uniform steps (default 33, about 100 evaluations).

    Example:
        >>> import torch
        >>> sol = SSPRK3Example(steps=10).integrate(lambda y, t: -y, torch.ones((), dtype=torch.float64), 0.0, 1.0)
        >>> sol.nfe, round(sol.y.item(), 4)  # exp(-1) = 0.36788
        (30, 0.3679)
    """

    tableau: ClassVar[ButcherTableau] = SSPRK3_TABLEAU
    steps: int = attrs.field(default=33, validator=positive_int)

    @property
    def order(self) -> int:
        """Order of accuracy (checked by the conformance kit, which measures it)."""
        return self.tableau.order

    @classmethod
    def conformance_example(cls) -> "SSPRK3Example":
        """The instance the conformance kit tests (a convention of ``nami_core.conformance``)."""
        return cls(steps=20)

    def integrate(
        self,
        fn: VectorField,
        y0: State,
        t0: float,
        t1: float,
        *,
        time_shape: Sequence[int] = (),
        trajectory: bool = False,
    ) -> Solution:
        """Integrate ``fn`` from ``t0`` to ``t1`` (the :class:`~nami_core.protocols.ODESolver` protocol)."""
        return explicit_rk_solve(self.tableau, self.steps, fn, y0, t0, t1,
                                 time_shape=time_shape, trajectory=trajectory)
