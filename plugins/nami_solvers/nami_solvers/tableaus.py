r"""Butcher tableaus of explicit Runge–Kutta methods.

An :math:`s`-stage explicit Runge–Kutta method is fixed by its Butcher tableau

.. math::

    \begin{array}{c|c}
        c & A \\ \hline
          & b^\top
    \end{array}
    \qquad
    A = (a_{ij}) \text{ strictly lower triangular},\quad
    c_i = \sum_j a_{ij},\quad \sum_j b_j = 1 .

:class:`ButcherTableau` holds and validates one; the module also holds the classical
tableaus the named solvers use (:data:`EULER`, :data:`MIDPOINT`, :data:`HEUN`, :data:`RK4`)
and a few more (:data:`RALSTON`, :data:`RK3`, :data:`SSPRK3`, :data:`RK38`), all listed in
:data:`TABLEAUS`.

References:
    J. C. Butcher, *Numerical Methods for Ordinary Differential Equations*, 3rd ed.,
    Wiley, 2016.

    E. Hairer, S. P. Nørsett, G. Wanner, *Solving Ordinary Differential Equations I:
    Nonstiff Problems*, 2nd ed., Springer, 1993 (Section II.1–II.2: order conditions).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence, Tuple

import attrs

__all__ = [
    "ButcherTableau",
    "EULER",
    "MIDPOINT",
    "HEUN",
    "RALSTON",
    "RK3",
    "SSPRK3",
    "RK4",
    "RK38",
    "TABLEAUS",
    "as_tableau",
]

#: Absolute tolerance of the consistency (row-sum, weight-sum) and order-condition checks.
_TOL = 1e-10


def _floats(value: Any) -> Tuple[float, ...]:
    return tuple(float(v) for v in value)


def _matrix(value: Any) -> Tuple[Tuple[float, ...], ...]:
    # pad each row with zeros to a square matrix (the ragged lower-triangular form is accepted)
    rows = [_floats(row) for row in value]
    return tuple(row + (0.0,) * (len(rows) - len(row)) for row in rows)


def _order_conditions(order: int, c: Sequence[float], a: Sequence[Sequence[float]],
                      b: Sequence[float]) -> list[tuple[str, float, float]]:
    """Order conditions up to ``min(order, 4)``: ``(condition, value, required)`` triples.

    The conditions are the rooted-tree conditions of Hairer, Nørsett & Wanner (1993),
    Table II.2.1, for trees of up to four nodes.
    """
    s = len(b)
    rng = range(s)
    ac = [sum(a[i][j] * c[j] for j in rng) for i in rng]  # (A c)_i
    out: list[tuple[str, float, float]] = [("sum_i b_i", sum(b), 1.0)]
    if order >= 2:
        out.append(("sum_i b_i c_i", sum(b[i] * c[i] for i in rng), 1 / 2))
    if order >= 3:
        out.append(("sum_i b_i c_i^2", sum(b[i] * c[i] ** 2 for i in rng), 1 / 3))
        out.append(("sum_ij b_i a_ij c_j", sum(b[i] * ac[i] for i in rng), 1 / 6))
    if order >= 4:
        aac = [sum(a[i][j] * ac[j] for j in rng) for i in rng]
        out.append(("sum_i b_i c_i^3", sum(b[i] * c[i] ** 3 for i in rng), 1 / 4))
        out.append(("sum_ij b_i c_i a_ij c_j", sum(b[i] * c[i] * ac[i] for i in rng), 1 / 8))
        out.append(("sum_ij b_i a_ij c_j^2",
                    sum(b[i] * a[i][j] * c[j] ** 2 for i in rng for j in rng), 1 / 12))
        out.append(("sum_ijk b_i a_ij a_jk c_k", sum(b[i] * aac[i] for i in rng), 1 / 24))
    return out


@attrs.frozen
class ButcherTableau:
    r"""Coefficients :math:`(c, A, b)` of an explicit Runge–Kutta method.

    One step of size :math:`h` from :math:`(t_n, y_n)` computes the stages

    .. math::

        k_i = f\Big(y_n + h \sum_{j<i} a_{ij} k_j,\; t_n + c_i h\Big),
        \qquad y_{n+1} = y_n + h \sum_i b_i k_i .

    Validated at construction: the method must be explicit (:math:`a_{ij} = 0` for
    :math:`j \ge i`), consistent (:math:`c_i = \sum_j a_{ij}`, :math:`\sum_i b_i = 1`),
    finite, and satisfy the order conditions of the claimed ``order`` (checked up to
    order 4; higher orders are taken on trust).

    Args:
        c: nodes :math:`c_i`, length :math:`s`.
        a: the matrix :math:`A`, given as :math:`s` rows; a row may be shorter than
            :math:`s` (missing entries are zero), so the ragged lower-triangular form
            ``((), (a21,), (a31, a32), ...)`` is accepted. Stored as a full square matrix.
        b: weights :math:`b_i`, length :math:`s`.
        order: the order of accuracy :math:`p` (global error :math:`O(h^p)`).
        name: a label for reprs and error messages.

    Raises:
        ValueError: if the tableau is malformed, not explicit, not consistent, or does not
            satisfy the order conditions of ``order``.

    Example:
        >>> ralston = ButcherTableau(c=(0, 2 / 3), a=((), (2 / 3,)), b=(1 / 4, 3 / 4),
        ...                          order=2, name="ralston")
        >>> ralston.stages
        2
        >>> ralston.a
        ((0.0, 0.0), (0.6666666666666666, 0.0))
    """

    c: Tuple[float, ...] = attrs.field(converter=_floats)
    a: Tuple[Tuple[float, ...], ...] = attrs.field(converter=_matrix)
    b: Tuple[float, ...] = attrs.field(converter=_floats)
    order: int = attrs.field(default=1)
    name: str = attrs.field(default="custom", validator=attrs.validators.instance_of(str))

    def __attrs_post_init__(self) -> None:
        name, s = self.name, len(self.b)
        if s < 1:
            raise ValueError(f"tableau {name!r}: b must have at least one entry")
        if len(self.c) != s or len(self.a) != s:
            raise ValueError(
                f"tableau {name!r}: c, a and b must all have s = len(b) = {s} entries, "
                f"got len(c) = {len(self.c)}, len(a) = {len(self.a)}"
            )
        if any(len(row) > s for row in self.a):
            raise ValueError(f"tableau {name!r}: rows of a must have at most {s} entries")
        values = [*self.c, *self.b, *(v for row in self.a for v in row)]
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"tableau {name!r}: coefficients must be finite")
        if isinstance(self.order, bool) or not isinstance(self.order, int) or self.order < 1:
            raise ValueError(f"tableau {name!r}: order must be an int >= 1, got {self.order!r}")
        square = self.a
        for i, row in enumerate(square):
            if any(v != 0.0 for v in row[i:]):
                raise ValueError(
                    f"tableau {name!r} is not explicit: a[{i}][j] must be 0 for j >= {i}, "
                    f"got row {row}"
                )
            if abs(sum(row) - self.c[i]) > _TOL:
                raise ValueError(
                    f"tableau {name!r} is not consistent: c[{i}] = {self.c[i]} but "
                    f"sum_j a[{i}][j] = {sum(row)}"
                )
        if abs(sum(self.b) - 1.0) > _TOL:
            raise ValueError(f"tableau {name!r} is not consistent: sum(b) = {sum(self.b)}, must be 1")
        for cond, value, required in _order_conditions(self.order, self.c, square, self.b):
            if abs(value - required) > _TOL:
                raise ValueError(
                    f"tableau {name!r} does not have order {self.order}: "
                    f"{cond} = {value}, must be {required}"
                )

    @property
    def stages(self) -> int:
        """Number of stages :math:`s` (evaluations of the field per step)."""
        return len(self.b)


EULER = ButcherTableau(c=(0,), a=((),), b=(1,), order=1, name="euler")
"""Forward Euler: :math:`y_{n+1} = y_n + h f(y_n, t_n)`."""

MIDPOINT = ButcherTableau(c=(0, 1 / 2), a=((), (1 / 2,)), b=(0, 1), order=2, name="midpoint")
"""Explicit midpoint rule (Runge 1895), order 2."""

HEUN = ButcherTableau(c=(0, 1), a=((), (1,)), b=(1 / 2, 1 / 2), order=2, name="heun")
"""Heun's method (explicit trapezoidal rule), order 2."""

RALSTON = ButcherTableau(c=(0, 2 / 3), a=((), (2 / 3,)), b=(1 / 4, 3 / 4), order=2,
                         name="ralston")
"""Ralston's second-order method (minimum local error bound among 2-stage methods)."""

RK3 = ButcherTableau(c=(0, 1 / 2, 1), a=((), (1 / 2,), (-1, 2)), b=(1 / 6, 2 / 3, 1 / 6),
                     order=3, name="rk3")
"""Kutta's third-order method."""

SSPRK3 = ButcherTableau(c=(0, 1, 1 / 2), a=((), (1,), (1 / 4, 1 / 4)),
                        b=(1 / 6, 1 / 6, 2 / 3), order=3, name="ssprk3")
"""Strong-stability-preserving third-order method of Shu & Osher (1988)."""

RK4 = ButcherTableau(c=(0, 1 / 2, 1 / 2, 1), a=((), (1 / 2,), (0, 1 / 2), (0, 0, 1)),
                     b=(1 / 6, 1 / 3, 1 / 3, 1 / 6), order=4, name="rk4")
"""The classical fourth-order Runge–Kutta method."""

RK38 = ButcherTableau(c=(0, 1 / 3, 2 / 3, 1), a=((), (1 / 3,), (-1 / 3, 1), (1, -1, 1)),
                      b=(1 / 8, 3 / 8, 3 / 8, 1 / 8), order=4, name="rk38")
"""Kutta's 3/8 rule, fourth order."""

#: Built-in tableaus by name.
TABLEAUS: Mapping[str, ButcherTableau] = {
    t.name: t for t in (EULER, MIDPOINT, HEUN, RALSTON, RK3, SSPRK3, RK4, RK38)
}


def as_tableau(value: Any) -> ButcherTableau:
    """Convert a tableau, the name of a built-in tableau, or a mapping of its fields.

    The mapping form is what :func:`attrs.asdict` produces, so a solver configuration
    round-trips through ``attrs.asdict`` and a config file.

    Raises:
        ValueError: for an unknown name.
        TypeError: for anything else that is not a tableau.
    """
    if isinstance(value, ButcherTableau):
        return value
    if isinstance(value, str):
        try:
            return TABLEAUS[value]
        except KeyError:
            raise ValueError(
                f"tableau must be a ButcherTableau or one of {sorted(TABLEAUS)}, got {value!r}"
            ) from None
    if isinstance(value, Mapping):
        return ButcherTableau(**value)
    raise TypeError(f"tableau must be a ButcherTableau, a name or a mapping, got {value!r}")
