r"""Stochastic interpolants and their flow-matching loss.

.. math::
    x_t = I(t, x_0, x_1) + \gamma(t)\,z, \qquad
    u_t = \partial_t I(t, x_0, x_1) + \dot\gamma(t)\,z, \qquad z \sim \mathcal N(0, I),

with :math:`I` a path (``path.interpolate``, :math:`\partial_t I` = ``path.velocity``; the
linear path :math:`(1-t)x_0 + t x_1` by default) and :math:`\gamma` a schedule from
:mod:`nami_paths.gamma`. Regressing a field on :math:`u_t` learns the drift :math:`b(x, t) =
\mathbb E[u_t \mid x_t = x]` of the probability-flow ODE whose marginals are those of
:math:`x_t` (Albergo et al. 2023, Theorem 2.6), so it is sampled like any flow-matching
model (integrate from t = 1 to t = 0).

Time range
----------
For Brownian :math:`\gamma = s\sqrt{t(1-t)}` the target term :math:`\dot\gamma z` has
:math:`\mathbb E[\dot\gamma(t)^2] = \infty` for :math:`t \sim U[0, 1]` (the integral of
:math:`(1-2t)^2 / (4t(1-t))` diverges logarithmically at both ends), so the loss has
infinite variance and single batches can be dominated by one sample near an end. The
default time range is therefore the schedule's ``t_range``: :math:`[\varepsilon,
1-\varepsilon]` with :math:`\varepsilon = 10^{-3}` for Brownian schedules (finite
:math:`\mathbb E[\dot\gamma^2] = s^2[\tfrac12\log\tfrac{1-\varepsilon}{\varepsilon} - (1 - 2\varepsilon)]/(1 - 2\varepsilon)
\approx 2.46\,s^2`) and all of :math:`[0, 1]` for :class:`~nami_paths.gamma.ZeroGamma`.
Measured numbers are in ``docs/paths.md``.

References:
    Albergo, Boffi, Vanden-Eijnden. Stochastic Interpolants: A Unifying Framework for Flows
    and Diffusions. 2023. https://arxiv.org/abs/2303.08797
    Albergo, Vanden-Eijnden. Building Normalizing Flows with Stochastic Interpolants. 2023.
    https://arxiv.org/abs/2209.15571
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import torch
from torch import Tensor

from nami_core.errors import ShapeError
from nami_core.losses import reduce_loss
from nami_core.shapes import expand_context

from ._common import (
    bcast,
    check_pair,
    check_reduction,
    check_t_range,
    draw_times,
    event_ndim_of,
    given_times,
    per_sample_mse,
    resolve,
)
from .gamma import DEFAULT_EPS, BrownianGamma

__all__ = ["stochastic_interpolant", "stochastic_fm_loss"]


def _default_range(gamma: Any) -> Tuple[float, float]:
    return tuple(getattr(gamma, "t_range", (DEFAULT_EPS, 1.0 - DEFAULT_EPS)))  # type: ignore[return-value]


def _is_zero(gamma: Any) -> bool:
    return bool(getattr(gamma, "is_zero", False))


def stochastic_interpolant(
    x0: Tensor,
    x1: Tensor,
    t: Tensor,
    z: Optional[Tensor] = None,
    *,
    gamma: Any = None,
    path: Any = None,
) -> Tuple[Tensor, Tensor]:
    r"""The stochastic interpolant and its time derivative for a fixed latent ``z``.

    .. math::
        x_t = I(t, x_0, x_1) + \gamma(t) z, \qquad
        \frac{\mathrm d x_t}{\mathrm d t} = \partial_t I(t, x_0, x_1) + \dot\gamma(t) z.

    Args:
        x0: data :math:`x_0`, shape ``lead + event_shape``.
        x1: noise :math:`x_1`, same shape.
        t: times of shape ``lead`` (the leading shape of ``x0``).
        z: latent :math:`z`, same shape as ``x0``; ``None`` (or a zero schedule) adds nothing.
        gamma: schedule with ``gamma`` and ``gamma_dot`` (default :class:`BrownianGamma`),
            or its registry name.
        path: path with ``interpolate`` and ``velocity`` (default: linear), or its registry name.

    Returns:
        ``(x_t, u_t)``, both shaped like ``x0``.

    References:
        Albergo, Boffi, Vanden-Eijnden. Stochastic Interpolants: A Unifying Framework for
        Flows and Diffusions. 2023. https://arxiv.org/abs/2303.08797

    Example:
        >>> x0, x1, z = torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2)
        >>> xt, ut = stochastic_interpolant(x0, x1, torch.tensor([0.5]), z)
        >>> xt, ut
        (tensor([[1., 1.]]), tensor([[1., 1.]]))
    """
    gamma = BrownianGamma() if gamma is None else resolve("gamma", gamma)
    path = resolve("path", path)
    if path is None:
        x_t = torch.lerp(x0, x1, bcast(t, x0))
        u_t = x1 - x0
    else:
        x_t = path.interpolate(x0, x1, t)
        u_t = path.velocity(x0, x1, t)
    if z is not None and not _is_zero(gamma):
        if z.shape != x0.shape:
            raise ShapeError(f"z must have the shape of x0 {tuple(x0.shape)}, got {tuple(z.shape)}")
        tb = bcast(t, x0)
        x_t = x_t + gamma.gamma(tb) * z
        u_t = u_t + gamma.gamma_dot(tb) * z
    return x_t, u_t


def stochastic_fm_loss(
    field: Any,
    x_data: Tensor,
    x_noise: Tensor,
    *,
    gamma: Any = None,
    path: Any = None,
    t: Optional[Tensor | float] = None,
    c: Optional[Tensor] = None,
    z: Optional[Tensor] = None,
    t_range: Optional[Sequence[float]] = None,
    time_density: Any = None,
    reduction: str = "mean",
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    r"""Flow-matching loss on a stochastic interpolant.

    .. math::
        \mathcal L(\theta) = \mathbb E_{t, x_0, x_1, z}
        \big\lVert b_\theta(x_t, t \mid c) - \partial_t I(t, x_0, x_1) - \dot\gamma(t) z \big\rVert^2,
        \quad x_t = I(t, x_0, x_1) + \gamma(t) z,

    averaged over the event elements, as :func:`nami_core.losses.fm_loss`. With
    :class:`~nami_paths.gamma.ZeroGamma` it *is* ``fm_loss``: the same times are drawn from
    the same generator (no ``z`` is drawn) and the same arithmetic is done, so the values
    are bitwise equal.

    Args:
        field: field ``field(x, t, c)`` exposing ``event_ndim``.
        x_data: data :math:`x_0`, shape ``lead + event_shape``.
        x_noise: noise :math:`x_1` (already paired, e.g. by a coupling), same shape.
        gamma: noise schedule (default :class:`~nami_paths.gamma.BrownianGamma`) or its
            registry name.
        path: deterministic part :math:`I` (``None``: linear) or its registry name.
        t: times (shape ``lead`` or broadcastable, in [0, 1]); ``None`` draws them from
            ``time_density`` mapped into ``t_range``. Given times are used as they are
            (a Brownian :math:`\dot\gamma` is infinite at t = 0 and t = 1).
        c: context ``lead + (k,)`` (or broadcastable ``batch_shape + (k,)``).
        z: latent noise shaped like ``x_data``; ``None`` draws :math:`\mathcal N(0, I)` from
            ``generator`` after the times.
        t_range: ``(low, high)`` for drawn times; ``None`` uses ``gamma.t_range``
            (``(1e-3, 1 - 1e-3)`` for Brownian schedules, ``(0, 1)`` for ``ZeroGamma``).
        time_density: density on [0, 1] of kind ``time_density`` (``None``: uniform).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (per-sample losses of shape ``lead``).
        generator: random generator for ``t`` and ``z``.

    References:
        Albergo, Boffi, Vanden-Eijnden. Stochastic Interpolants: A Unifying Framework for
        Flows and Diffusions. 2023. https://arxiv.org/abs/2303.08797

    Example:
        >>> from nami_core.fields import VelocityField
        >>> from nami_paths.gamma import ScaledBrownianGamma
        >>> _ = torch.manual_seed(0)
        >>> field = VelocityField(2, hidden=(16,))
        >>> x0, x1 = torch.randn(8, 2), torch.randn(8, 2)
        >>> stochastic_fm_loss(field, x0, x1, gamma=ScaledBrownianGamma(0.5), reduction="none").shape
        torch.Size([8])
    """
    check_reduction(reduction)
    event_ndim = event_ndim_of(field)
    lead = check_pair(x_data, x_noise, event_ndim)
    gamma = BrownianGamma() if gamma is None else resolve("gamma", gamma)
    zero = _is_zero(gamma)
    if t is None:
        rng = check_t_range(_default_range(gamma) if t_range is None else t_range)
        t = draw_times(lead, x_data, rng, resolve("time_density", time_density), generator)
    else:
        t = given_times(t, x_data, event_ndim)
    if zero:
        z = None
    elif z is None:
        z = torch.randn(x_data.shape, generator=generator, dtype=x_data.dtype, device=x_data.device)
    x_t, target = stochastic_interpolant(x_data, x_noise, t, z, gamma=gamma, path=path)
    pred = field(x_t, t, expand_context(c, lead))
    return reduce_loss(per_sample_mse(pred, target, event_ndim), reduction)
