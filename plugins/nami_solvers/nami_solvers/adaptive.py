r"""Adaptive explicit Runge–Kutta solvers with embedded error estimates: Dormand–Prince 5(4).

An embedded pair shares the stages :math:`k_i` of one tableau :math:`(c, A)` and has two
weight vectors: :math:`b` (order :math:`p`, propagates the solution) and :math:`\hat b`
(order :math:`\hat p`, only estimates the error). One step of size :math:`h` from
:math:`(t_n, y_n)` gives

.. math::

    y_{n+1} = y_n + h \sum_i b_i k_i, \qquad
    \mathrm{err} = h \sum_i (b_i - \hat b_i)\, k_i ,

and the step is accepted when the scaled RMS norm of the error is at most 1,

.. math::

    \|\mathrm{err}\| = \sqrt{\frac1N \sum_{m=1}^{N}
        \Big(\frac{\mathrm{err}_m}{\mathrm{atol} + \mathrm{rtol}\,\max(|y_{n,m}|, |y_{n+1,m}|)}\Big)^2}
    \;\le\; 1 ,

where :math:`m` runs over *all* elements of the state (every tensor of a tuple state, every
sample of the batch): one step size serves the whole batch. The next step size comes from the
PI controller of Gustafsson (HNW II, Section IV.2; HNW I, Section II.4), with
:math:`q = \min(p, \hat p)`,

.. math::

    h_{\text{new}} = h \cdot \min\!\Big(f_{\max}, \max\!\big(f_{\min},
        \text{safety}\cdot \|\mathrm{err}_n\|^{-1/(q+1) + 0.75\beta}\,
        \|\mathrm{err}_{n-1}\|^{\beta}\big)\Big),

(``beta = 0`` is the standard controller); after a rejected step the step size never grows.
The first step size is chosen by the algorithm of HNW I, Section II.4 (one extra evaluation)
unless ``first_step`` is given.

With the *first same as last* (FSAL) property the last stage is evaluated at
:math:`(t_{n+1}, y_{n+1})` and is the first stage of the next step, so Dormand–Prince costs
6 evaluations per step (accepted or rejected) after the first.

Requested output times (``t_eval``) are served in one of two ways (``interpolate``):

- ``True`` (default): by the continuous extension of the pair (for Dormand–Prince the
  fourth-order interpolant of Dormand & Prince / Shampine, a cubic Hermite polynomial plus a
  quartic correction), with no extra field evaluations;
- ``False``: the step is shortened to land on each requested time, so every output has the
  full fifth-order accuracy (at the cost of more steps).

Either way the returned times are exactly the requested ones, and the final state is the
state of the last step, which lands exactly on ``t1``.

References:
    J. R. Dormand, P. J. Prince, *A family of embedded Runge–Kutta formulae*, Journal of
    Computational and Applied Mathematics 6(1), 19–26, 1980.

    E. Hairer, S. P. Nørsett, G. Wanner, *Solving Ordinary Differential Equations I: Nonstiff
    Problems*, 2nd ed., Springer, 1993 (Section II.4: automatic step size control, starting
    step size; Section II.5: the DOPRI5 pair; Section II.6: dense output).

    L. F. Shampine, *Some practical Runge–Kutta formulas*, Mathematics of Computation
    46(173), 135–150, 1986 (dense output of the Dormand–Prince pair).

    E. Hairer, G. Wanner, *Solving Ordinary Differential Equations II: Stiff and
    Differential-Algebraic Problems*, 2nd ed., Springer, 1996 (Section IV.2: the PI
    step-size controller).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, List, Optional, Sequence, Tuple

import attrs
import torch
from torch import Tensor

from nami_core.errors import ShapeError, SolverError
from nami_core.protocols import Solution, State, VectorField, check_solve_args
from nami_core.validation import positive_int

from .rk import _stack_trajectory
from .tableaus import ButcherTableau, _order_conditions

__all__ = [
    "EmbeddedTableau",
    "hermite_rows",
    "DOPRI5",
    "AdaptiveSolution",
    "adaptive_rk_solve",
    "AdaptiveRK",
    "Dopri5",
]

_TOL = 1e-10


def _floats(value: Any) -> Tuple[float, ...]:
    return tuple(float(v) for v in value)


def _rows(value: Any) -> Optional[Tuple[Tuple[float, ...], ...]]:
    if value is None:
        return None
    return tuple(_floats(row) for row in value)


def _poly_rows(rows: Sequence[Sequence[float]], theta: float) -> List[float]:
    """``b_i(theta) = sum_k rows[i][k] theta^(k+1)`` for every stage ``i``."""
    out = []
    for row in rows:
        acc, power = 0.0, theta
        for coef in row:
            acc += coef * power
            power *= theta
        out.append(acc)
    return out


def hermite_rows(b: Sequence[float]) -> Tuple[Tuple[float, ...], ...]:
    r"""Dense-output rows of the cubic Hermite interpolant of an FSAL pair.

    The cubic through :math:`y_n, y_{n+1}` with slopes :math:`k_1 = f(y_n, t_n)` and
    :math:`k_s = f(y_{n+1}, t_{n+1})` (the FSAL stage), written as
    :math:`y(t_n + \theta h) = y_n + h \sum_i b_i(\theta) k_i` with

    .. math::

        b_i(\theta) = \theta b_i + \theta(1-\theta)(\delta_{i1} - b_i)
            + \theta^2 (1-\theta)(2 b_i - \delta_{i1} - \delta_{is}),

    returned as the coefficients of :math:`\theta, \theta^2, \theta^3` (third order).
    """
    s = len(b)
    rows = []
    for i, bi in enumerate(b):
        d1 = 1.0 if i == 0 else 0.0
        ds = 1.0 if i == s - 1 else 0.0
        x = d1 - bi
        y = 2.0 * bi - d1 - ds
        rows.append((bi + x, -x + y, -y))
    return tuple(rows)


@attrs.frozen
class EmbeddedTableau:
    r"""An embedded explicit Runge–Kutta pair :math:`(c, A, b, \hat b)`, optionally with dense output.

    Validated at construction: both :math:`(c, A, b)` and :math:`(c, A, \hat b)` must be
    explicit, consistent Butcher tableaus satisfying the order conditions of ``order`` and
    ``order_hat`` (checked up to order 4, see :class:`~nami_solvers.tableaus.ButcherTableau`),
    and the dense-output polynomials must be consistent
    (:math:`\sum_i b_i(\theta) = \theta`, :math:`b_i(1) = b_i`).

    Args:
        c, a, b: the propagating method, as for :class:`~nami_solvers.tableaus.ButcherTableau`.
        b_hat: the embedded weights :math:`\hat b` (error estimate).
        order: order :math:`p` of :math:`b`.
        order_hat: order :math:`\hat p` of :math:`\hat b`.
        dense: optional dense-output coefficients: row :math:`i` holds the coefficients of
            :math:`b_i(\theta)` in powers :math:`\theta, \theta^2, \dots` so that
            :math:`y(t_n + \theta h) = y_n + h \sum_i b_i(\theta) k_i`. Without it an FSAL pair
            uses the cubic Hermite interpolant (:func:`hermite_rows`).
        dense_order: order of the dense output (3 for the Hermite default).
        name: a label for reprs and error messages.
    """

    c: Tuple[float, ...] = attrs.field(converter=_floats)
    a: Tuple[Tuple[float, ...], ...] = attrs.field(converter=_rows)
    b: Tuple[float, ...] = attrs.field(converter=_floats)
    b_hat: Tuple[float, ...] = attrs.field(converter=_floats)
    order: int = attrs.field()
    order_hat: int = attrs.field()
    dense: Optional[Tuple[Tuple[float, ...], ...]] = attrs.field(default=None, converter=_rows)
    dense_order: Optional[int] = attrs.field(default=None)
    name: str = attrs.field(default="custom", validator=attrs.validators.instance_of(str))

    def __attrs_post_init__(self) -> None:
        method = self.tableau  # validates c, A, b and the order conditions of b
        if len(self.b_hat) != method.stages:
            raise ValueError(
                f"tableau {self.name!r}: b_hat must have {method.stages} entries, got {len(self.b_hat)}"
            )
        ButcherTableau(c=self.c, a=self.a, b=self.b_hat, order=self.order_hat,
                       name=f"{self.name} (embedded b_hat)")
        if self.dense is not None:
            if len(self.dense) != method.stages:
                raise ValueError(
                    f"tableau {self.name!r}: dense must have one row per stage ({method.stages}), "
                    f"got {len(self.dense)}"
                )
            width = max(len(r) for r in self.dense)
            sums = [sum(r[k] if k < len(r) else 0.0 for r in self.dense) for k in range(width)]
            if abs(sums[0] - 1.0) > _TOL or any(abs(v) > _TOL for v in sums[1:]):
                raise ValueError(
                    f"tableau {self.name!r}: dense output is not consistent: sum_i b_i(theta) "
                    f"must equal theta"
                )
            at_one = _poly_rows(self.dense, 1.0)
            if any(abs(x - y) > _TOL for x, y in zip(at_one, self.b)):
                raise ValueError(f"tableau {self.name!r}: dense output must satisfy b_i(1) = b_i")
            for theta in (0.25, 0.5, 0.75):
                bt = [v / theta for v in _poly_rows(self.dense, theta)]
                order = min(self.dense_order or 1, 4)
                # the conditions of a method with weights b_i(theta)/theta and step theta*h:
                # sum b_i(theta) Phi_i(c/theta-scaled) is checked through the scaled tableau
                scaled_c = [ci / theta for ci in self.c]
                scaled_a = [[aij / theta for aij in row] for row in method.a]
                for cond, value, required in _order_conditions(order, scaled_c, scaled_a, bt):
                    if abs(value - required) > 1e-8:
                        raise ValueError(
                            f"tableau {self.name!r}: dense output does not have order "
                            f"{self.dense_order} at theta={theta}: {cond} = {value}, must be {required}"
                        )

    @property
    def tableau(self) -> ButcherTableau:
        """The propagating method :math:`(c, A, b)` as a validated Butcher tableau."""
        return ButcherTableau(c=self.c, a=self.a, b=self.b, order=self.order, name=self.name)

    @property
    def stages(self) -> int:
        """Number of stages :math:`s`."""
        return len(self.b)

    @property
    def fsal(self) -> bool:
        """First same as last: the last stage is :math:`f(y_{n+1}, t_{n+1})`."""
        s = self.stages
        last = self.a[-1] + (0.0,) * (s - len(self.a[-1]))
        return (s > 1 and self.c[-1] == 1.0 and self.b[-1] == 0.0
                and all(abs(x - y) <= 0.0 for x, y in zip(last[: s - 1], self.b[: s - 1])))

    @property
    def error_order(self) -> int:
        r""":math:`q = \min(p, \hat p)`, the order the step-size controller assumes."""
        return min(self.order, self.order_hat)

    def dense_rows(self) -> Optional[Tuple[Tuple[float, ...], ...]]:
        """The dense-output rows in use: ``dense``, or the Hermite cubic of an FSAL pair."""
        if self.dense is not None:
            return self.dense
        if self.fsal:
            return hermite_rows(self.b)
        return None


def _dopri5_dense() -> Tuple[Tuple[float, ...], ...]:
    r"""Dense output of DOPRI5: Hermite cubic plus :math:`\theta^2(1-\theta)^2 d_i`."""
    d = (-12715105075 / 11282082432, 0.0, 87487479700 / 32700410799,
         -10690763975 / 1880347072, 701980252875 / 199316789632,
         -1453857185 / 822651844, 69997945 / 29380423)
    rows = []
    for (r1, r2, r3), di in zip(hermite_rows(_DP5_B), d):
        # theta^2 (1 - theta)^2 = theta^2 - 2 theta^3 + theta^4
        rows.append((r1, r2 + di, r3 - 2.0 * di, di))
    return tuple(rows)


_DP5_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)

DOPRI5 = EmbeddedTableau(
    c=(0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1),
    a=(
        (),
        (1 / 5,),
        (3 / 40, 9 / 40),
        (44 / 45, -56 / 15, 32 / 9),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
        (35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
    ),
    b=_DP5_B,
    b_hat=(5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40),
    order=5,
    order_hat=4,
    dense=_dopri5_dense(),
    dense_order=4,
    name="dopri5",
)
"""The Dormand–Prince 5(4) pair (Dormand & Prince 1980), FSAL, with the fourth-order
continuous extension of Shampine (1986) / HNW I, Section II.6."""


@attrs.frozen
class AdaptiveSolution(Solution):
    """:class:`~nami_core.protocols.Solution` of an adaptive solve, with step statistics.

    Attributes:
        n_accepted: accepted steps.
        n_rejected: rejected steps.
    """

    n_accepted: int = 0
    n_rejected: int = 0


# --------------------------------------------------------------------------- the engine


def _plan(coefs: Sequence[float]) -> Tuple[Tuple[int, float], ...]:
    return tuple((j, float(a)) for j, a in enumerate(coefs) if a != 0.0)


def _lincomb(base: Optional[Tuple[Tensor, ...]], ks: List[Tuple[Tensor, ...]],
             terms: Sequence[Tuple[int, float]], h: float) -> Tuple[Tensor, ...]:
    """``base + h * sum_j coef_j k_j`` (``base=None``: zero) into fresh tensors."""
    j0, a0 = terms[0]
    if base is None:
        out = [torch.mul(kp, h * a0) for kp in ks[j0]]
    else:
        out = [torch.add(yp, kp, alpha=h * a0) for yp, kp in zip(base, ks[j0])]
    for j, a in terms[1:]:
        ha = h * a
        for o, kp in zip(out, ks[j]):
            o.add_(kp, alpha=ha)
    return tuple(out)


def _rms_sq_sum(parts: Sequence[Tensor], scales: Sequence[Tensor]) -> Tensor:
    """Sum over all elements of ``(part / scale)^2`` (a 0-d tensor)."""
    total = None
    for p, s in zip(parts, scales):
        v = p.div(s).square().sum()
        total = v if total is None else total + v
    return total  # type: ignore[return-value]


def _time_list(t_eval: Any, t0: float, t1: float) -> List[float]:
    if isinstance(t_eval, Tensor):
        if t_eval.ndim != 1:
            raise ValueError(f"t_eval must be one-dimensional, got shape {tuple(t_eval.shape)}")
        values = [float(v) for v in t_eval.detach().cpu().double().tolist()]
    else:
        try:
            values = [float(v) for v in t_eval]
        except TypeError:
            raise TypeError(f"t_eval must be a sequence of floats or a 1-d tensor, got {t_eval!r}") from None
    if not values:
        raise ValueError("t_eval must hold at least one time")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"t_eval must be finite, got {values}")
    lo, hi = min(t0, t1), max(t0, t1)
    outside = [v for v in values if v < lo or v > hi]
    if outside:
        raise ValueError(f"t_eval must lie within [t0, t1] = [{t0}, {t1}], got {outside[:3]}")
    sign = 1.0 if t1 >= t0 else -1.0
    if any(sign * (b - a) < 0 for a, b in zip(values, values[1:])):
        raise ValueError(
            f"t_eval must be monotone in the direction of integration ({t0} -> {t1}), got {values}"
        )
    return values


def adaptive_rk_solve(
    tableau: EmbeddedTableau,
    fn: VectorField,
    y0: State,
    t0: float,
    t1: float,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    max_steps: int = 10_000,
    first_step: Optional[float] = None,
    safety: float = 0.9,
    min_factor: float = 0.2,
    max_factor: float = 10.0,
    beta: float = 0.04,
    interpolate: bool = True,
    t_eval: Any = None,
    time_shape: Sequence[int] = (),
    trajectory: bool = False,
    name: Optional[str] = None,
) -> AdaptiveSolution:
    r"""Integrate :math:`\dot y = f(y, t)` from ``t0`` to ``t1`` with an adaptive embedded RK pair.

    See the module docstring for the error norm, the controller and the output modes; the
    arguments after ``t1`` mirror :class:`AdaptiveRK`. The solve makes

    .. math:: \text{nfe} = 1 + [\text{first\_step is None}] + (s - 1)(n_{acc} + n_{rej})
              + [\text{not FSAL}]\,(n_{acc} - 1)

    evaluations of ``fn`` (for Dormand–Prince, :math:`s - 1 = 6` and FSAL holds).

    Args:
        tableau: the embedded pair.
        fn: right-hand side ``fn(y, t)``; ``t`` is a tensor of shape ``time_shape`` with the
            dtype and device of the (first) state tensor.
        y0: initial state: a tensor or a tuple of tensors (augmented state).
        t0, t1: start and end times (either direction; ``t0 == t1`` returns ``y0``, nfe 0).
        t_eval: requested output times (1-d, within ``[t0, t1]``, monotone in the
            direction of integration). Then ``ts`` holds exactly these times and ``ys`` the
            states there, whatever ``trajectory`` says.
        time_shape: leading shape of every state tensor (the shape of ``t``).
        trajectory: without ``t_eval``, return the accepted step times in ``ts`` (from
            ``t0`` to ``t1``, endpoints exact) and the states there in ``ys``.
        name: solver name used in error messages.

    Returns:
        :class:`AdaptiveSolution` (a :class:`~nami_core.protocols.Solution`).

    Raises:
        SolverError: the step size underflowed (:math:`|h| < 4\varepsilon\max(|t|, |t_1 - t_0|)`,
            :math:`\varepsilon` the machine epsilon of the state dtype), e.g. at a singularity,
            or ``max_steps`` steps were attempted without reaching ``t1``.
        ValueError: bad ``t0``, ``t1`` or ``t_eval``, or ``interpolate`` with a pair that has
            no dense output.
    """
    label = name or tableau.name
    args = check_solve_args(y0, t0, t1, time_shape)
    t0, t1, time_shape, is_tuple = args.t0, args.t1, args.time_shape, args.is_tuple
    dtype, device = args.first.dtype, args.first.device
    if not dtype.is_floating_point:
        raise TypeError(f"{label}: the state must be a floating-point tensor, got dtype {dtype}")
    parts0: Tuple[Tensor, ...] = tuple(y0) if is_tuple else (y0,)  # type: ignore[arg-type]
    if is_tuple:
        y0 = tuple(y0)
    requested = None if t_eval is None else _time_list(t_eval, t0, t1)
    dense = tableau.dense_rows() if interpolate else None
    if interpolate and requested is not None and dense is None:
        raise ValueError(
            f"{label}: tableau {tableau.name!r} has no dense output; use interpolate=False"
        )

    def out_state(parts: Tuple[Tensor, ...]) -> State:
        return parts if is_tuple else parts[0]

    def finish(y: Tuple[Tensor, ...], nfe: int, times: Optional[List[float]],
               states: Optional[List[Tuple[Tensor, ...]]], acc: int, rej: int) -> AdaptiveSolution:
        if times is None or states is None:
            return AdaptiveSolution(y=out_state(y), nfe=nfe, n_accepted=acc, n_rejected=rej)
        ts = torch.tensor(times, dtype=torch.float64).to(dtype=dtype, device=device)
        ys = _stack_trajectory([out_state(s) for s in states], is_tuple)
        return AdaptiveSolution(y=out_state(y), nfe=nfe, ts=ts, ys=ys, n_accepted=acc, n_rejected=rej)

    want_traj = trajectory and requested is None
    if t0 == t1:
        if requested is not None:
            return finish(parts0, 0, requested, [parts0] * len(requested), 0, 0)
        return finish(parts0, 0, [t0] if want_traj else None, [parts0] if want_traj else None, 0, 0)

    # ---- prepared once
    s = tableau.stages
    direction = 1.0 if t1 > t0 else -1.0
    span = abs(t1 - t0)
    eps = torch.finfo(dtype).eps
    q = tableau.error_order
    expo = 1.0 / (q + 1) - 0.75 * beta
    fsal = tableau.fsal
    stage_plans = [_plan(row[:i]) for i, row in enumerate(tableau.a)]
    weight_plan = _plan(tableau.b)
    err_plan = _plan([bi - bh for bi, bh in zip(tableau.b, tableau.b_hat)])
    cs = tableau.c
    n_parts = len(parts0)
    numel = sum(p.numel() for p in parts0)

    nfe = 0

    def tt(value: float) -> Tensor:
        return torch.full(time_shape, value, dtype=dtype, device=device)

    if is_tuple:
        def call(parts: Tuple[Tensor, ...], value: float) -> Tuple[Tensor, ...]:
            nonlocal nfe
            nfe += 1
            out = fn(parts, tt(value))
            if not isinstance(out, (tuple, list)) or len(out) != n_parts:
                raise TypeError(
                    f"{label}: fn must return a tuple of {n_parts} tensors for a tuple state, "
                    f"got {type(out).__name__}"
                )
            return tuple(out)
    else:
        def call(parts: Tuple[Tensor, ...], value: float) -> Tuple[Tensor, ...]:
            nonlocal nfe
            nfe += 1
            return (fn(parts[0], tt(value)),)

    def norm_of(parts: Sequence[Tensor], scales: Sequence[Tensor]) -> float:
        with torch.no_grad():
            return math.sqrt(_rms_sq_sum(parts, scales).item() / numel)

    y: Tuple[Tensor, ...] = parts0
    t = t0
    k1 = call(y, t0)
    for kp, yp in zip(k1, y):
        if not isinstance(kp, Tensor) or kp.shape != yp.shape:
            raise ShapeError(
                f"{label}: fn must return tensors shaped like the state {tuple(yp.shape)}, got "
                f"{type(kp).__name__} {tuple(getattr(kp, 'shape', ()))}"
            )

    # ---- initial step size (HNW I, Section II.4)
    if first_step is None:
        with torch.no_grad():
            sc = [p.abs().mul(rtol).add_(atol) for p in y]
            d0 = norm_of(y, sc)
            d1 = norm_of(k1, sc)
        if not (math.isfinite(d0) and math.isfinite(d1)):
            raise SolverError(
                f"{label}: the initial state or fn returned non-finite values at t={t0!r} "
                f"(integrating from t0={t0} to t1={t1})"
            )
        h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
        h0 = min(h0, span)
        y_probe = _lincomb(y, [k1], ((0, 1.0),), direction * h0)
        k_probe = call(y_probe, t0 + direction * h0)
        with torch.no_grad():
            d2 = norm_of([a - b for a, b in zip(k_probe, k1)], sc) / h0
        big = max(d1, d2)
        if not math.isfinite(big):
            h1 = h0 * 1e-3
        elif big <= 1e-15:
            h1 = max(1e-6, h0 * 1e-3)
        else:
            h1 = (0.01 / big) ** (1.0 / (q + 1))
        h_abs = min(100.0 * h0, h1, span)
    else:
        h_abs = min(float(first_step), span)

    # ---- stops: t1, and in step-to-hit mode every requested time on the way
    stops: List[float] = []
    if requested is not None and dense is None:
        stops = [v for v in dict.fromkeys(requested) if v != t0 and v != t1]
    stops.append(t1)
    stop_i = 0

    times: Optional[List[float]] = None
    states: Optional[List[Tuple[Tensor, ...]]] = None
    req_i = 0
    if requested is not None:
        times, states = [], []
        while req_i < len(requested) and requested[req_i] == t0:
            times.append(t0)
            states.append(y)
            req_i += 1
    elif want_traj:
        times, states = [t0], [y]

    accepted = rejected = 0
    err_prev = 1e-4
    last_rejected = False
    ks: List[Tuple[Tensor, ...]] = [k1] * s

    while True:
        if accepted + rejected >= max_steps:
            raise SolverError(
                f"{label}: max_steps={max_steps} steps attempted without reaching t1={t1} "
                f"(integrating from t0={t0}); stopped at t={t!r} with step size h={direction * h_abs:.3e} "
                f"({accepted} accepted, {rejected} rejected, {nfe} field evaluations). Raise max_steps, "
                "loosen rtol/atol, or check the field for stiffness or a singularity."
            )
        target = stops[stop_i]
        remaining = abs(target - t)
        landing = remaining <= 1.01 * h_abs
        if landing:
            h = target - t
            t_new = target
        else:
            hmin = 4.0 * eps * max(abs(t), span)
            if not h_abs >= hmin:  # also catches NaN
                raise SolverError(
                    f"{label}: step size underflow at t={t!r}: h={direction * h_abs:.3e} is below "
                    f"{hmin:.3e} (4 * eps * max(|t|, |t1 - t0|) for {dtype}) while integrating from "
                    f"t0={t0} to t1={t1} ({accepted} accepted, {rejected} rejected steps, {nfe} field "
                    "evaluations). The solution may blow up near this time (a singularity), the field "
                    "may return non-finite values, or the problem is too stiff for rtol/atol."
                )
            h = direction * h_abs
            t_new = t + h

        # ---- one attempted step
        ks[0] = k1
        for i in range(1, s):
            yi = _lincomb(y, ks, stage_plans[i], h) if stage_plans[i] else y
            ci = cs[i]
            ks[i] = call(yi, t_new if ci == 1.0 else (t if ci == 0.0 else t + ci * h))
            if fsal and i == s - 1:
                y_new = yi
        if not fsal:
            y_new = _lincomb(y, ks, weight_plan, h)
        with torch.no_grad():
            err = _lincomb(None, ks, err_plan, h)
            scales = [torch.maximum(a.abs(), b.abs()).mul_(rtol).add_(atol) for a, b in zip(y, y_new)]
            err_norm = norm_of(err, scales)

        if err_norm <= 1.0:  # accept (NaN compares False: rejected)
            accepted += 1
            t_prev, y_prev = t, y
            t, y = t_new, y_new
            done = landing and stop_i == len(stops) - 1
            if times is not None and states is not None:
                if requested is None:
                    times.append(t)
                    states.append(y)
                else:
                    while req_i < len(requested) and direction * (requested[req_i] - t) <= 0:
                        r = requested[req_i]
                        if r == t:
                            states.append(y)
                        else:
                            w = _poly_rows(dense, (r - t_prev) / h)  # type: ignore[arg-type]
                            states.append(_lincomb(y_prev, ks, _plan(w), h))
                        times.append(r)
                        req_i += 1
            if done:
                break
            if landing:
                stop_i += 1
            k1 = ks[-1] if fsal else call(y, t)
            if err_norm == 0.0:
                factor = max_factor
            else:
                factor = safety * err_norm ** (-expo) * err_prev ** beta
                factor = min(max_factor, max(min_factor, factor))
            if last_rejected:
                factor = min(factor, 1.0)
            err_prev = max(err_norm, 1e-4)
            new_abs = abs(h) * factor
            # a step shortened to land on a requested time should not shrink the next one
            h_abs = max(new_abs, h_abs) if landing else new_abs
            last_rejected = False
        else:
            rejected += 1
            if math.isfinite(err_norm):
                factor = max(min_factor, safety * err_norm ** (-1.0 / (q + 1)))
            else:
                factor = min_factor
            h_abs = abs(h) * min(factor, 1.0)
            last_rejected = True

    return finish(y, nfe, times, states, accepted, rejected)


# --------------------------------------------------------------------------- configurations


def _check_fraction(instance: Any, attribute: Any, value: float) -> None:
    if not (0.0 < value <= 1.0):
        raise ValueError(f"{attribute.name} must lie in (0, 1], got {value}")


def _check_nonneg(instance: Any, attribute: Any, value: float) -> None:
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value}")


def _check_first_step(instance: Any, attribute: Any, value: Optional[float]) -> None:
    if value is not None and not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"first_step must be None or a finite number > 0, got {value}")


def _opt_float(value: Any) -> Optional[float]:
    return None if value is None else float(value)


def _check_bool(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be a bool, got {value!r}")


def _as_embedded(value: Any) -> EmbeddedTableau:
    if isinstance(value, EmbeddedTableau):
        return value
    if isinstance(value, str):
        if value == DOPRI5.name:
            return DOPRI5
        raise ValueError(f"tableau must be an EmbeddedTableau or 'dopri5', got {value!r}")
    if isinstance(value, dict):
        return EmbeddedTableau(**value)
    raise TypeError(f"tableau must be an EmbeddedTableau, a name or a mapping, got {value!r}")


@attrs.frozen(kw_only=True)
class _AdaptiveSolver:
    """Shared controller settings, their validation, and :meth:`integrate`."""

    tableau: ClassVar[EmbeddedTableau]
    rtol: float = attrs.field(default=1e-5, converter=float, validator=_check_nonneg)
    atol: float = attrs.field(default=1e-6, converter=float, validator=_check_nonneg)
    max_steps: int = attrs.field(default=10_000, validator=positive_int)
    first_step: Optional[float] = attrs.field(default=None, converter=_opt_float, validator=_check_first_step)
    safety: float = attrs.field(default=0.9, converter=float, validator=_check_fraction)
    min_factor: float = attrs.field(default=0.2, converter=float, validator=_check_fraction)
    max_factor: float = attrs.field(default=10.0, converter=float)
    beta: float = attrs.field(default=0.04, converter=float, validator=_check_nonneg)
    interpolate: bool = attrs.field(default=True, validator=_check_bool)

    def __attrs_post_init__(self) -> None:
        if self.rtol == 0.0 and self.atol == 0.0:
            raise ValueError("rtol and atol must not both be 0")
        if not self.min_factor < 1.0:
            raise ValueError(f"min_factor must be < 1, got {self.min_factor}")
        if not self.max_factor > 1.0:
            raise ValueError(f"max_factor must be > 1, got {self.max_factor}")
        limit = 4.0 / (3.0 * (self.tableau.error_order + 1))
        if not self.beta < limit:
            raise ValueError(
                f"beta must be < {limit:.4g} (so that the controller exponent stays positive), got {self.beta}"
            )
        if self.interpolate and self.tableau.dense_rows() is None:
            raise ValueError(
                f"interpolate=True needs a tableau with dense output; {self.tableau.name!r} has none "
                "(pass interpolate=False)"
            )

    @property
    def order(self) -> int:
        """Order :math:`p` of the propagated solution."""
        return self.tableau.order

    @property
    def stages(self) -> int:
        """Stages per step (with FSAL, one fewer evaluation per step)."""
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
        t_eval: Any = None,
    ) -> AdaptiveSolution:
        """Integrate ``fn`` from ``t0`` to ``t1``; see :func:`adaptive_rk_solve`.

        ``t_eval`` (1-d, within ``[t0, t1]``, monotone towards ``t1``) requests outputs at
        those exact times (``ts``/``ys`` of the result).
        """
        return adaptive_rk_solve(
            self.tableau, fn, y0, t0, t1,
            rtol=self.rtol, atol=self.atol, max_steps=self.max_steps, first_step=self.first_step,
            safety=self.safety, min_factor=self.min_factor, max_factor=self.max_factor,
            beta=self.beta, interpolate=self.interpolate, t_eval=t_eval,
            time_shape=time_shape, trajectory=trajectory, name=type(self).__name__,
        )


@attrs.frozen(kw_only=True)
class AdaptiveRK(_AdaptiveSolver):
    r"""Adaptive explicit Runge–Kutta solver for a user-given embedded pair.

    Args:
        tableau: an :class:`EmbeddedTableau` (or ``"dopri5"``, or a mapping of its fields).
        rtol: relative tolerance (>= 0).
        atol: absolute tolerance (>= 0; not both 0).
        max_steps: bound on attempted steps (accepted + rejected); reaching it raises
            :class:`~nami_core.errors.SolverError`.
        first_step: initial step size; ``None`` selects it automatically (HNW I, II.4),
            which costs one evaluation.
        safety: safety factor of the controller, in (0, 1].
        min_factor, max_factor: bounds of the step-size ratio per step (``min_factor < 1 <
            max_factor``).
        beta: PI-controller coefficient :math:`\beta` (0: the standard controller;
            HNW recommend 0.04 for DOPRI5).
        interpolate: serve ``t_eval`` from the dense output (``True``) or by landing steps
            on the requested times (``False``).

    Example:
        >>> import torch
        >>> bs3 = EmbeddedTableau(c=(0, 1 / 2, 3 / 4, 1), a=((), (1 / 2,), (0, 3 / 4), (2 / 9, 1 / 3, 4 / 9)),
        ...                       b=(2 / 9, 1 / 3, 4 / 9, 0), b_hat=(7 / 24, 1 / 4, 1 / 3, 1 / 8),
        ...                       order=3, order_hat=2, name="bogacki_shampine")
        >>> sol = AdaptiveRK(tableau=bs3, rtol=1e-6).integrate(lambda y, t: -y, torch.ones(2, dtype=torch.float64), 0.0, 1.0)
        >>> abs(sol.y[0].item() - torch.e ** -1) < 1e-5
        True
    """

    tableau: EmbeddedTableau = attrs.field(converter=_as_embedded)  # type: ignore[misc]


@attrs.frozen(kw_only=True)
class Dopri5(_AdaptiveSolver):
    r"""Adaptive Dormand–Prince 5(4) solver (DOPRI5): fifth-order steps, fourth-order error
    estimate, FSAL (6 evaluations per step), fourth-order dense output.

    Number of field evaluations: ``1 + (first_step is None) + 6 * (accepted + rejected)``.
    Requested output times: ``integrate(..., t_eval=times)``; see :mod:`nami_solvers.adaptive`.

    Args:
        rtol: relative tolerance (>= 0).
        atol: absolute tolerance (>= 0; not both 0).
        max_steps: bound on attempted steps (accepted + rejected); reaching it raises
            :class:`~nami_core.errors.SolverError`, as does a step-size underflow.
        first_step: initial step size; ``None`` selects it automatically (HNW I, II.4).
        safety: safety factor of the controller, in (0, 1].
        min_factor, max_factor: bounds of the step-size ratio per step.
        beta: PI-controller coefficient (0: standard controller; default 0.04 as in HNW).
        interpolate: serve ``t_eval`` from the dense output (no extra evaluations) or, when
            ``False``, by shortening steps to land on each requested time.

    Example:
        >>> import torch
        >>> y0 = torch.ones(3, dtype=torch.float64)
        >>> sol = Dopri5(rtol=1e-8, atol=1e-10).integrate(lambda y, t: -y, y0, 0.0, 1.0,
        ...                                                t_eval=[0.5, 1.0])
        >>> sol.ts.tolist(), abs(sol.y[0].item() - torch.e ** -1) < 1e-8
        ([0.5, 1.0], True)
        >>> sol.nfe == 2 + 6 * (sol.n_accepted + sol.n_rejected)
        True
    """

    tableau: ClassVar[EmbeddedTableau] = DOPRI5
