r"""Fixed-step explicit Runge–Kutta solvers: one engine, many tableaus.

:func:`explicit_rk_solve` integrates :math:`\dot y = f(y, t)` with any explicit
:class:`~nami_solvers.tableaus.ButcherTableau` on a uniform grid of ``steps`` intervals
from ``t0`` to ``t1`` (either direction). The solver classes are thin configurations
around it: :class:`ExplicitRK` takes any tableau, and :class:`Euler`, :class:`Midpoint`,
:class:`Heun` and :class:`RK4` fix one.

With step :math:`h = (t_1 - t_0)/N` and grid :math:`t_n = t_0 + n h` one step is

.. math::

    k_i = f\Big(y_n + h \sum_{j<i} a_{ij} k_j,\; t_n + c_i h\Big),\quad i = 1..s,
    \qquad y_{n+1} = y_n + h \sum_{i=1}^{s} b_i k_i ,

and the method of order :math:`p` has global error :math:`O(h^p)` on a smooth problem.

The default step counts give every named solver the same budget of 100 evaluations of
the field: ``Euler(steps=100)``, ``Midpoint(steps=50)``, ``Heun(steps=50)``,
``RK4(steps=25)``, ``ExplicitRK(tableau=...)`` ``steps = max(1, 100 // stages)``.

References:
    J. C. Butcher, *Numerical Methods for Ordinary Differential Equations*, 3rd ed.,
    Wiley, 2016.

    E. Hairer, S. P. Nørsett, G. Wanner, *Solving Ordinary Differential Equations I:
    Nonstiff Problems*, 2nd ed., Springer, 1993.
"""

from __future__ import annotations

from typing import Callable, ClassVar, List, Optional, Sequence, Tuple

import attrs
import torch
from torch import Tensor

from nami_core.protocols import Solution, State, VectorField, check_solve_args
from nami_core.timegrid import check_steps, uniform_grid
from nami_core.validation import positive_int

from .tableaus import EULER, HEUN, MIDPOINT, RK4 as RK4_TABLEAU, ButcherTableau, as_tableau

__all__ = ["explicit_rk_solve", "ExplicitRK", "Euler", "Midpoint", "Heun", "RK4"]

#: Evaluations of the field that the default step counts buy.
DEFAULT_NFE = 100


def _stage_times(grid: Tensor, c: Sequence[float]) -> Tensor:
    """Float64 times of all stages, shape ``(steps * stages,)``, ordered step-major.

    Stage ``i`` of step ``n`` is at ``t_n + c_i (t_{n+1} - t_n)``; nodes ``c_i = 0`` and
    ``c_i = 1`` are taken from the grid exactly, so an endpoint is never missed by round-off.
    """
    left, right = grid[:-1, None], grid[1:, None]
    cs = torch.tensor(c, dtype=torch.float64)
    times = left + cs * (right - left)
    times = torch.where(cs == 0.0, left, times)
    times = torch.where(cs == 1.0, right, times)
    return times.reshape(-1)


def _stack_trajectory(ys: List[State], is_tuple: bool) -> State:
    if is_tuple:
        return tuple(torch.stack(parts) for parts in zip(*ys))
    return torch.stack(ys)  # type: ignore[arg-type]


def explicit_rk_solve(
    tableau: ButcherTableau,
    steps: int,
    fn: VectorField,
    y0: State,
    t0: float,
    t1: float,
    *,
    time_shape: Sequence[int] = (),
    trajectory: bool = False,
) -> Solution:
    r"""Integrate :math:`\dot y = f(y, t)` from ``t0`` to ``t1`` with a fixed-step explicit RK method.

    Everything that does not depend on the state is prepared before the loop: the grid
    (:func:`~nami_core.timegrid.uniform_grid`, exact endpoints), every stage's time tensor
    (one transfer, then views), the products :math:`h a_{ij}` and :math:`h b_j` as Python
    floats with zero coefficients dropped, and the update function (tensor or tuple state).
    The loop evaluates the field and forms linear combinations into freshly allocated
    tensors; it never writes into ``y0`` nor into a tensor ``fn`` returned. The solver does
    not touch autograd: under :func:`torch.no_grad` no graph is built, otherwise gradients
    flow through the solve.

    Args:
        tableau: the explicit Runge–Kutta method.
        steps: number of uniform steps :math:`N \ge 1`.
        fn: the right-hand side ``fn(y, t)``; ``y`` has the structure of ``y0`` and ``t``
            is a tensor of shape ``time_shape`` with the dtype and device of the (first)
            state tensor. Returns the same structure as ``y``.
        y0: initial state at ``t0``: a tensor, or a tuple of tensors (augmented state).
        t0: initial time.
        t1: final time; ``t1 < t0`` integrates backwards, ``t1 == t0`` returns ``y0``
            unchanged with ``nfe == 0``.
        time_shape: the leading shape of every state tensor, the shape of ``t``.
        trajectory: also return the grid ``ts`` (shape ``(steps + 1,)``, state dtype) and
            the states on it, stacked along a new leading dimension (a tuple of stacks for a
            tuple state); ``ys[0]`` equals ``y0`` and ``ys[-1]`` equals ``y``.

    Returns:
        :class:`~nami_core.protocols.Solution` with ``nfe == steps * tableau.stages``.
    """
    check_steps(steps)
    args = check_solve_args(y0, t0, t1, time_shape)
    t0, t1, time_shape, is_tuple = args.t0, args.t1, args.time_shape, args.is_tuple
    dtype, device = args.first.dtype, args.first.device
    if is_tuple:
        y0 = tuple(y0)

    if t0 == t1:
        if not trajectory:
            return Solution(y=y0, nfe=0)
        ys0 = tuple(p.unsqueeze(0) for p in y0) if is_tuple else y0.unsqueeze(0)  # type: ignore[union-attr]
        return Solution(y=y0, nfe=0, ts=torch.tensor([t0], dtype=dtype, device=device), ys=ys0)

    s = tableau.stages
    h = (t1 - t0) / steps
    grid = uniform_grid(t0, t1, steps, dtype=torch.float64)

    # all stage times: one (steps * s,) tensor, cast and moved once, expanded, split into views
    times = _stage_times(grid, tableau.c).to(dtype=dtype, device=device)
    if time_shape:
        times = times.reshape((-1,) + (1,) * len(time_shape)).expand((-1,) + time_shape)
    stage_t = times.unbind(0)

    # h * a_ij and h * b_j as Python floats, zero coefficients dropped; each combination is
    # stored as (j0, coef0, rest): the first term allocates, the rest accumulate in place
    def plan(coefs: Sequence[float]) -> Optional[Tuple[int, float, Tuple[Tuple[int, float], ...]]]:
        terms = [(j, h * a) for j, a in enumerate(coefs) if a != 0.0]
        if not terms:
            return None
        return terms[0][0], terms[0][1], tuple(terms[1:])

    stage_plans = tuple(enumerate(plan(row[:i]) for i, row in enumerate(tableau.a)))
    weights = plan(tableau.b)
    if weights is None:  # unreachable for a validated tableau (sum(b) == 1)
        raise ValueError(f"tableau {tableau.name!r} has no non-zero weight b_j")

    # y + sum_j coef_j * k_j into a fresh tensor (or tuple of fresh tensors)
    combine: Callable[..., State]
    if is_tuple:
        def combine(y, ks, j0, a0, rest):  # type: ignore[no-untyped-def]
            out = [torch.add(yp, kp, alpha=a0) for yp, kp in zip(y, ks[j0])]
            for j, a in rest:
                for o, kp in zip(out, ks[j]):
                    o.add_(kp, alpha=a)
            return tuple(out)
    else:
        add = torch.add

        def combine(y, ks, j0, a0, rest):  # type: ignore[no-untyped-def]
            out = add(y, ks[j0], alpha=a0)
            for j, a in rest:
                out.add_(ks[j], alpha=a)
            return out

    y: State = y0
    ys: Optional[List[State]] = [y0] if trajectory else None

    if s == 1:
        # single-stage methods (Euler): y <- y + h b_1 f(y, t_n)
        hb = weights[1]
        if is_tuple:
            for t in stage_t:
                y = tuple(torch.add(yp, kp, alpha=hb) for yp, kp in zip(y, fn(y, t)))
                if ys is not None:
                    ys.append(y)
        else:
            add = torch.add
            for t in stage_t:
                y = add(y, fn(y, t), alpha=hb)
                if ys is not None:
                    ys.append(y)
    else:
        ks: List[State] = [y0] * s  # placeholders, overwritten before use
        stage_iter = iter(stage_t)
        for _ in range(steps):
            for i, p in stage_plans:
                ks[i] = fn(y if p is None else combine(y, ks, *p), next(stage_iter))
            y = combine(y, ks, *weights)
            if ys is not None:
                ys.append(y)

    nfe = steps * s
    if ys is None:
        return Solution(y=y, nfe=nfe)
    return Solution(y=y, nfe=nfe, ts=grid.to(dtype=dtype, device=device),
                    ys=_stack_trajectory(ys, is_tuple))


class _RKSolver:
    """Shared behaviour of the fixed-step explicit RK configurations."""

    __slots__ = ()

    tableau: ButcherTableau
    steps: int

    @property
    def order(self) -> int:
        """Order of accuracy of the method (global error :math:`O(h^{order})`)."""
        return self.tableau.order

    @property
    def stages(self) -> int:
        """Evaluations of the field per step."""
        return self.tableau.stages

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
        """Integrate ``fn`` from ``t0`` to ``t1``; see :func:`explicit_rk_solve`."""
        return explicit_rk_solve(self.tableau, self.steps, fn, y0, t0, t1,
                                 time_shape=time_shape, trajectory=trajectory)


def _default_steps(self: "ExplicitRK") -> int:
    return max(1, DEFAULT_NFE // self.tableau.stages)


@attrs.frozen(kw_only=True)
class ExplicitRK(_RKSolver):
    r"""Fixed-step explicit Runge–Kutta solver for a user-given Butcher tableau.

    Args:
        tableau: a :class:`~nami_solvers.tableaus.ButcherTableau`, the name of a built-in
            one (``"ralston"``, ``"rk3"``, ``"ssprk3"``, ``"rk38"``, ...), or a mapping of
            its fields (what :func:`attrs.asdict` gives, so the configuration round-trips).
        steps: number of uniform steps; default ``max(1, 100 // stages)``.

    Example:
        >>> import torch
        >>> from nami_solvers.tableaus import ButcherTableau
        >>> ralston = ButcherTableau(c=(0, 2 / 3), a=((), (2 / 3,)), b=(1 / 4, 3 / 4), order=2)
        >>> solver = ExplicitRK(tableau=ralston, steps=20)
        >>> y0 = torch.ones(3, dtype=torch.float64)
        >>> sol = solver.integrate(lambda y, t: -y, y0, 0.0, 1.0)
        >>> sol.nfe, round(sol.y[0].item(), 3)  # exp(-1) = 0.36788...
        (40, 0.368)
    """

    tableau: ButcherTableau = attrs.field(converter=as_tableau)
    steps: int = attrs.field(default=attrs.Factory(_default_steps, takes_self=True),
                             validator=positive_int)


@attrs.frozen(kw_only=True)
class Euler(_RKSolver):
    r"""Forward Euler, order 1: :math:`y_{n+1} = y_n + h f(y_n, t_n)`.

    Args:
        steps: number of uniform steps (default 100, i.e. 100 evaluations).

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> x1 = torch.randn(4, 2)
        >>> sol = Euler(steps=10).integrate(lambda x, t: x, x1, 1.0, 0.0, time_shape=(4,))
        >>> sol.nfe, torch.allclose(sol.y, x1 * 0.9 ** 10)
        (10, True)
    """

    tableau: ClassVar[ButcherTableau] = EULER
    steps: int = attrs.field(default=DEFAULT_NFE // EULER.stages, validator=positive_int)


@attrs.frozen(kw_only=True)
class Midpoint(_RKSolver):
    r"""Explicit midpoint rule, order 2.

    .. math::

        y_{n+1} = y_n + h f\big(y_n + \tfrac{h}{2} f(y_n, t_n),\; t_n + \tfrac{h}{2}\big)

    Args:
        steps: number of uniform steps (default 50, i.e. 100 evaluations).

    Example:
        >>> import torch
        >>> y = Midpoint(steps=10).integrate(lambda y, t: 2 * t, torch.zeros(()), 0.0, 1.0).y
        >>> round(y.item(), 6)  # exact for a field linear in t
        1.0
    """

    tableau: ClassVar[ButcherTableau] = MIDPOINT
    steps: int = attrs.field(default=DEFAULT_NFE // MIDPOINT.stages, validator=positive_int)


@attrs.frozen(kw_only=True)
class Heun(_RKSolver):
    r"""Heun's method (explicit trapezoidal rule), order 2.

    .. math::

        \tilde y = y_n + h f(y_n, t_n), \qquad
        y_{n+1} = y_n + \tfrac{h}{2}\big(f(y_n, t_n) + f(\tilde y, t_{n+1})\big)

    Args:
        steps: number of uniform steps (default 50, i.e. 100 evaluations).

    Example:
        >>> import torch
        >>> sol = Heun(steps=4).integrate(lambda y, t: 3 * t, torch.zeros(()), 1.0, 0.0)
        >>> sol.nfe, round(sol.y.item(), 4)
        (8, -1.5)
    """

    tableau: ClassVar[ButcherTableau] = HEUN
    steps: int = attrs.field(default=DEFAULT_NFE // HEUN.stages, validator=positive_int)


@attrs.frozen(kw_only=True)
class RK4(_RKSolver):
    r"""The classical fourth-order Runge–Kutta method.

    .. math::

        k_1 = f(y_n, t_n),\quad
        k_2 = f(y_n + \tfrac{h}{2} k_1, t_n + \tfrac{h}{2}),\quad
        k_3 = f(y_n + \tfrac{h}{2} k_2, t_n + \tfrac{h}{2}),\quad
        k_4 = f(y_n + h k_3, t_n + h),

        y_{n+1} = y_n + \tfrac{h}{6}(k_1 + 2 k_2 + 2 k_3 + k_4).

    Args:
        steps: number of uniform steps (default 25, i.e. 100 evaluations).

    Example:
        >>> import torch
        >>> y0 = torch.ones((), dtype=torch.float64)
        >>> sol = RK4(steps=10).integrate(lambda y, t: -y, y0, 0.0, 1.0)
        >>> sol.nfe, abs(sol.y.item() - torch.e ** -1) < 1e-6
        (40, True)
    """

    tableau: ClassVar[ButcherTableau] = RK4_TABLEAU
    steps: int = attrs.field(default=DEFAULT_NFE // RK4_TABLEAU.stages, validator=positive_int)
