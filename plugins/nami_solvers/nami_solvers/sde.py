r"""Fixed-step solvers for Itô SDEs with diagonal noise: Euler–Maruyama and stochastic Heun.

Both integrate

.. math:: dy = f(y, t)\,dt + g(y, t) \odot dW_t

from ``t0`` to ``t1`` on the uniform grid :math:`t_n = t_0 + n h`, :math:`h = (t_1 - t_0)/N`, in
either direction. The Brownian increment of a step is :math:`\Delta W_n = \sqrt{|h|}\,z_n`,
:math:`z_n \sim \mathcal N(0, I)`: when :math:`t_1 < t_0` (a reverse-time SDE sampled from t = 1 to
t = 0) the drift is integrated with the negative step :math:`h` and the noise with
:math:`\sqrt{|h|}`, so the caller supplies the drift with respect to t (for a diffusion model
:math:`f - g^2\nabla\log p_t`, see :mod:`nami_diffusion.wrappers`).

Reproducibility: step :math:`n` draws ``z_n = torch.randn(y0.shape, generator=generator,
dtype=y0.dtype, device=y0.device)``, in order, once per step; the same generator state gives
the same path. ``sde_solve(..., increments=dW)`` takes the increments instead (one Brownian path
shared by several step sizes, for strong-convergence studies).

Orders on a smooth problem: Euler–Maruyama has strong order 1/2 and weak order 1 (strong order 1
for additive noise). Stochastic Heun is the predictor–corrector

.. math::
    \tilde y = y_n + f(y_n, t_n) h + g(y_n, t_n)\Delta W_n,\qquad
    y_{n+1} = y_n + \tfrac12\big(f(y_n, t_n) + f(\tilde y, t_{n+1})\big) h
              + \tfrac12\big(g(y_n, t_n) + g(\tilde y, t_{n+1})\big)\Delta W_n ;

for additive noise (``g`` independent of ``y``, the diffusion-model case) the Itô and Stratonovich
SDEs coincide and it is strong order 1, weak order 2 in the drift; for state-dependent ``g`` it
converges to the Stratonovich solution, so use Euler–Maruyama there.

``Solution.nfe`` counts evaluations of the drift (the expensive model calls); the diffusion is
evaluated as often.

References:
    Kloeden, Platen. Numerical Solution of Stochastic Differential Equations. Springer, 1992.
    Higham. An Algorithmic Introduction to Numerical Simulation of Stochastic Differential
    Equations. SIAM Review 43(3), 2001.
    Karras, Aittala, Aila, Laine. Elucidating the Design Space of Diffusion-Based Generative
    Models. 2022. https://arxiv.org/abs/2206.00364
"""

from __future__ import annotations

import math
from typing import Callable, List, Optional, Sequence

import attrs
import torch
from torch import Tensor

from nami_core.errors import ShapeError
from nami_core.protocols import Solution, check_solve_args
from nami_core.timegrid import check_steps, uniform_grid
from nami_core.validation import one_of, positive_int

__all__ = ["sde_solve", "EulerMaruyama", "StochasticHeun"]

SDEFn = Callable[[Tensor, Tensor], Tensor]


def sde_solve(
    method: str,
    steps: int,
    drift: SDEFn,
    diffusion: SDEFn,
    y0: Tensor,
    t0: float,
    t1: float,
    *,
    time_shape: Sequence[int] = (),
    generator: Optional[torch.Generator] = None,
    trajectory: bool = False,
    increments: Optional[Tensor] = None,
) -> Solution:
    r"""Integrate :math:`dy = f\,dt + g \odot dW` with ``method`` ``"euler_maruyama"`` or ``"heun"``.

    Args:
        method: ``"euler_maruyama"`` or ``"heun"``.
        steps: number of uniform steps :math:`N \ge 1`.
        drift: ``f(y, t)`` with respect to t, same shape as ``y``.
        diffusion: ``g(y, t)``, broadcastable to ``y`` (diagonal noise; e.g. shape
            ``time_shape + (1,) * event_ndim`` for a noise level that depends on t only).
        y0: initial state at ``t0`` (a tensor).
        t0: initial time.
        t1: final time (``t1 < t0`` integrates backwards, noise scaled by :math:`\sqrt{|h|}`).
        time_shape: leading shape of ``y0``; ``t`` handed to ``f`` and ``g`` has this shape and
            the dtype and device of ``y0``.
        generator: random generator for the Brownian increments (on ``y0``'s device).
        trajectory: also return the grid and the states on it (stacked on a new leading dim).
        increments: optional Brownian increments :math:`\Delta W_n` of shape ``(steps,) + y0.shape``
            (already scaled, variance :math:`|h|`), used instead of drawing from ``generator``: to
            drive several solvers with one Brownian path (coarse increments are sums of fine ones).

    Returns:
        :class:`~nami_core.protocols.Solution`; ``nfe`` = drift evaluations
        (``steps`` for Euler–Maruyama, ``2 * steps`` for Heun).
    """
    check_steps(steps)
    one_of("euler_maruyama", "heun")(None, "method", method)
    args = check_solve_args(y0, t0, t1, time_shape, allow_tuple=False)
    t0, t1, time_shape = args.t0, args.t1, args.time_shape
    dtype, device = y0.dtype, y0.device
    if t0 == t1:
        if not trajectory:
            return Solution(y=y0, nfe=0)
        return Solution(y=y0, nfe=0, ts=torch.tensor([t0], dtype=dtype, device=device), ys=y0.unsqueeze(0))

    h = (t1 - t0) / steps
    sqrt_h = math.sqrt(abs(h))
    grid = uniform_grid(t0, t1, steps, dtype=torch.float64)
    times = grid.to(dtype=dtype, device=device)
    if time_shape:
        times = times.reshape((-1,) + (1,) * len(time_shape)).expand((-1,) + time_shape)
    ts = times.unbind(0)
    shape = y0.shape
    if increments is not None:
        if tuple(increments.shape) != (steps,) + tuple(shape):
            raise ShapeError(f"increments must have shape (steps,) + y0.shape = {(steps,) + tuple(shape)}, "
                             f"got {tuple(increments.shape)}")
        dws = increments.to(dtype=dtype, device=device).unbind(0)

        def noise(n: int) -> Tensor:
            return dws[n]
    else:
        def noise(n: int) -> Tensor:
            return torch.randn(shape, generator=generator, dtype=dtype, device=device).mul_(sqrt_h)

    y = y0
    ys: Optional[List[Tensor]] = [y0] if trajectory else None
    if method == "euler_maruyama":
        for n in range(steps):
            t = ts[n]
            y = torch.add(y, drift(y, t), alpha=h).addcmul_(diffusion(y, t), noise(n))
            if ys is not None:
                ys.append(y)
        nfe = steps
    else:
        for n in range(steps):
            t, tn = ts[n], ts[n + 1]
            dw = noise(n)
            f0, g0 = drift(y, t), diffusion(y, t)
            y_pred = torch.add(y, f0, alpha=h).addcmul_(g0, dw)
            f1, g1 = drift(y_pred, tn), diffusion(y_pred, tn)
            y = (torch.add(y, f0 + f1, alpha=0.5 * h)).addcmul_(g0 + g1, dw, value=0.5)
            if ys is not None:
                ys.append(y)
        nfe = 2 * steps
    if ys is None:
        return Solution(y=y, nfe=nfe)
    return Solution(y=y, nfe=nfe, ts=grid.to(dtype=dtype, device=device), ys=torch.stack(ys))


class _SDESolver:
    __slots__ = ()
    method: str
    steps: int

    def integrate_sde(
        self,
        drift: SDEFn,
        diffusion: SDEFn,
        y0: Tensor,
        t0: float,
        t1: float,
        *,
        time_shape: Sequence[int] = (),
        generator: Optional[torch.Generator] = None,
        trajectory: bool = False,
        increments: Optional[Tensor] = None,
    ) -> Solution:
        """Integrate the SDE from ``t0`` to ``t1``; see :func:`sde_solve`."""
        return sde_solve(self.method, self.steps, drift, diffusion, y0, t0, t1, time_shape=time_shape,
                         generator=generator, trajectory=trajectory, increments=increments)


@attrs.frozen(kw_only=True)
class EulerMaruyama(_SDESolver):
    r"""Euler–Maruyama: :math:`y_{n+1} = y_n + f(y_n, t_n)\,h + g(y_n, t_n)\sqrt{|h|}\,z_n`.

    Strong order 1/2 (1 for additive noise), weak order 1; one drift evaluation per step.

    Args:
        steps: number of uniform steps (default 100).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> sol = EulerMaruyama(steps=10).integrate_sde(
        ...     lambda y, t: -y, lambda y, t: torch.ones_like(y), torch.zeros(3), 0.0, 1.0, generator=g)
        >>> sol.nfe, sol.y.shape
        (10, torch.Size([3]))
    """

    method = "euler_maruyama"
    steps: int = attrs.field(default=100, validator=positive_int)


@attrs.frozen(kw_only=True)
class StochasticHeun(_SDESolver):
    r"""Stochastic Heun (predictor–corrector trapezoidal rule); two drift evaluations per step.

    Strong order 1 for additive noise (Itô = Stratonovich there); for state-dependent noise it
    approximates the Stratonovich SDE.

    Args:
        steps: number of uniform steps (default 50, i.e. 100 drift evaluations).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> sol = StochasticHeun(steps=5).integrate_sde(
        ...     lambda y, t: -y, lambda y, t: torch.ones_like(y), torch.zeros(3), 1.0, 0.0, generator=g)
        >>> sol.nfe
        10
    """

    method = "heun"
    steps: int = attrs.field(default=50, validator=positive_int)
