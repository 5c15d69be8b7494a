r"""Divergence estimators for likelihoods by the instantaneous change of variables.

For an ODE :math:`\dot x = u(x, t)` the log-density along a trajectory obeys
:math:`\frac{d}{dt}\log p_t(x_t) = -\nabla\!\cdot u(x_t, t)`, so with t = 0 data and
t = 1 noise

.. math:: \log p_0(x_0) = \log p_1(x_1) + \int_0^1 \nabla\!\cdot u(x_t, t)\,dt .

An estimator is a configuration; ``estimator.bind(x, event_ndim, generator=...)`` returns a
callable ``div(fn, x, t) -> (u, div_u)`` that evaluates the field once (on replicated inputs)
and its divergence, vectorised over the batch. Binding happens once per solve, so Hutchinson
probes stay fixed for the whole solve (the estimate is then the divergence of one fixed
random linear functional, which keeps the ODE smooth for the solver).

References:
    Chen, Rubanova, Bettencourt, Duvenaud. Neural Ordinary Differential Equations. 2018.
    https://arxiv.org/abs/1806.07366
    Grathwohl, Chen, Bettencourt, Sutskever, Duvenaud. FFJORD. 2019.
    https://arxiv.org/abs/1810.01367
    Hutchinson. A stochastic estimator of the trace of the influence matrix. 1989.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import attrs
import torch
from torch import Tensor

from .validation import one_of, positive_int

__all__ = ["ExactDivergence", "HutchinsonDivergence", "BoundDivergence", "default_estimator",
           "integrate_with_divergence", "EXACT_MAX_DIM"]

#: ``log_prob`` uses the exact divergence up to this many event elements, Hutchinson above.
EXACT_MAX_DIM = 128

Fn = Callable[[Tensor, Tensor], Tensor]
BoundDivergence = Callable[[Fn, Tensor, Tensor], Tuple[Tensor, Tensor]]


def _replicate(x: Tensor, n: int, keep_graph: bool) -> Tensor:
    """``n`` copies of ``x`` stacked on a new leading dim, as a tensor autograd can target."""
    rep = x.unsqueeze(0).expand(n, *x.shape)
    if keep_graph and x.requires_grad:
        return rep.clone()
    return rep.detach().clone().requires_grad_(True)


@attrs.frozen(kw_only=True)
class ExactDivergence:
    r"""Exact divergence :math:`\sum_i \partial u_i / \partial x_i` for any event shape.

    The field is evaluated once on ``D`` stacked copies of the batch (``D`` = number of event
    elements, or ``chunk_size`` copies at a time), and one backward pass returns every
    diagonal Jacobian entry: the work is vectorised over the batch and the event, with no
    Python loop over samples.

    Args:
        chunk_size: copies evaluated at once (bounds memory for large events); ``None`` = all.

    Example:
        >>> div = ExactDivergence().bind(torch.zeros(4, 3), 1)
        >>> u, d = div(lambda x, t: 2.0 * x, torch.randn(4, 3), torch.zeros(4))
        >>> d
        tensor([6., 6., 6., 6.])
    """

    chunk_size: Optional[int] = attrs.field(default=None, validator=attrs.validators.optional(positive_int))

    def bind(self, x: Tensor, event_ndim: int, *, generator: Optional[torch.Generator] = None) -> BoundDivergence:
        """Return ``div(fn, x, t) -> (fn(x, t), divergence)`` for states shaped like ``x``."""
        event_shape = x.shape[x.ndim - event_ndim:]
        d = event_shape.numel()
        chunk = d if self.chunk_size is None else min(self.chunk_size, d)

        # Gather indices, built once per solve: replica i of a chunk picks its own entry start + i.
        n_lead = x.ndim - event_ndim
        chunks = [
            (n, torch.arange(start, start + n, device=x.device).view(n, *([1] * n_lead), 1))
            for start, n in ((s0, min(chunk, d - s0)) for s0 in range(0, d, chunk))
        ]

        def div(fn: Fn, x: Tensor, t: Tensor) -> Tuple[Tensor, Tensor]:
            lead = x.shape[: x.ndim - event_ndim]
            keep = torch.is_grad_enabled()
            total = None
            u = None
            with torch.enable_grad():
                for n, idx in chunks:
                    xr = _replicate(x, n, keep)
                    out = fn(xr, t.unsqueeze(0).expand(n, *t.shape))
                    if u is None:
                        u = out[0]
                    index = idx.expand(n, *lead, 1)
                    # picked[i] = out[i, ..., start + i]: the i-th replica's own output entry
                    picked = out.reshape(n, *lead, d).gather(-1, index)
                    (g,) = torch.autograd.grad(picked.sum(), xr, create_graph=keep)
                    g = g.reshape(n, *lead, d).gather(-1, index)
                    part = g.sum(dim=(0, -1))
                    total = part if total is None else total + part
            assert u is not None and total is not None
            if not keep:
                u, total = u.detach(), total.detach()
            return u, total

        return div


@attrs.frozen(kw_only=True)
class HutchinsonDivergence:
    r"""Hutchinson's stochastic trace estimator
    :math:`\nabla\!\cdot u \approx \frac1P\sum_{p=1}^P \varepsilon_p^\top J_u\,\varepsilon_p`.

    Probes :math:`\varepsilon_p` are Rademacher (:math:`\pm1`, lowest variance) or Gaussian,
    drawn once when the estimator is bound (once per solve) in the state's dtype and device.
    One evaluation on ``P`` stacked copies and one vector–Jacobian product per call.

    Args:
        probes: number of probes averaged (P >= 1).
        distribution: ``"rademacher"`` or ``"gaussian"``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> div = HutchinsonDivergence(probes=2).bind(torch.zeros(4, 3), 1, generator=g)
        >>> u, d = div(lambda x, t: 2.0 * x, torch.randn(4, 3), torch.zeros(4))
        >>> d  # exact for a multiple of the identity with Rademacher probes
        tensor([6., 6., 6., 6.])
    """

    probes: int = attrs.field(default=1, validator=positive_int)
    distribution: str = attrs.field(default="rademacher", validator=one_of("rademacher", "gaussian"))

    def bind(self, x: Tensor, event_ndim: int, *, generator: Optional[torch.Generator] = None) -> BoundDivergence:
        """Draw the probes for states shaped like ``x`` and return the bound estimator."""
        p = self.probes
        shape = (p, *x.shape)
        if self.distribution == "rademacher":
            eps = torch.randint(0, 2, shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1
        else:
            eps = torch.randn(shape, generator=generator, dtype=x.dtype, device=x.device)
        dims = tuple(range(-event_ndim, 0))

        def div(fn: Fn, x: Tensor, t: Tensor) -> Tuple[Tensor, Tensor]:
            keep = torch.is_grad_enabled()
            with torch.enable_grad():
                xr = _replicate(x, p, keep)
                out = fn(xr, t.unsqueeze(0).expand(p, *t.shape))
                (vjp,) = torch.autograd.grad(out, xr, grad_outputs=eps, create_graph=keep)
                est = (vjp * eps).sum(dim=dims).mean(dim=0)
            u = out[0]
            if not keep:
                u, est = u.detach(), est.detach()
            return u, est

        return div


def default_estimator(event_numel: int) -> ExactDivergence | HutchinsonDivergence:
    """Exact divergence for events of at most :data:`EXACT_MAX_DIM` elements, else Hutchinson."""
    if event_numel <= EXACT_MAX_DIM:
        return ExactDivergence()
    return HutchinsonDivergence(probes=1)


def integrate_with_divergence(
    solver: Any,
    fn: Fn,
    x: Tensor,
    t_from: float,
    t_to: float,
    *,
    event_ndim: int,
    time_shape: Tuple[int, ...],
    estimator: Any = None,
    generator: Optional[torch.Generator] = None,
) -> Tuple[Tensor, Tensor]:
    r"""Solve :math:`\dot x = u(x, t)` together with :math:`\dot\ell = \nabla\!\cdot u(x, t)`.

    Returns ``(x(t_to), ℓ)`` with :math:`\ell = \int_{t_\text{from}}^{t_\text{to}} \nabla\!\cdot
    u(x_t, t)\,dt`, so that for data at t = 0 and noise at t = 1
    :math:`\log p_0(x_0) = \log p_1(x_1) + \ell` when integrating from 0 to 1, and
    :math:`\log p_0(x_0) = \log p_1(x_1) - \ell` when integrating from 1 to 0.

    Args:
        solver: an ODE solver (``integrate``) that accepts tuple states.
        fn: the velocity ``fn(x, t)`` (any leading shape; ``t`` of that leading shape).
        x: the initial state, shape ``time_shape + event_shape``.
        t_from, t_to: the interval.
        event_ndim: number of event dimensions of ``x``.
        time_shape: the leading shape of ``x``.
        estimator: divergence estimator (default :func:`default_estimator`).
        generator: random generator for Hutchinson probes (drawn once for the solve).
    """
    if estimator is None:
        estimator = default_estimator(x.shape[x.ndim - event_ndim:].numel())
    div = estimator.bind(x, event_ndim, generator=generator)

    def augmented(state: Tuple[Tensor, Tensor], t: Tensor) -> Tuple[Tensor, Tensor]:
        return div(fn, state[0], t)

    sol = solver.integrate(augmented, (x, x.new_zeros(time_shape)), t_from, t_to, time_shape=time_shape)
    return sol.y
