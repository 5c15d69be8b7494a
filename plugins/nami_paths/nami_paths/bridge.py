r"""Brownian bridges: the path, a joint velocity + score loss, and the SDE that samples them.

The Brownian bridge with diffusion coefficient :math:`\sigma` pinned at data :math:`x_0`
(t = 0) and noise :math:`x_1` (t = 1) has the Gaussian marginals

.. math::
    x_t = (1-t)\,x_0 + t\,x_1 + \sigma\sqrt{t(1-t)}\;z, \qquad z \sim \mathcal N(0, I).

Training (simulation-free Schrödinger-bridge matching, [SF]²M): regress a velocity field
on :math:`u_t = x_1 - x_0 + \dot\gamma(t) z` (the conditional probability-flow velocity,
:math:`\gamma = \sigma\sqrt{t(1-t)}`) and a score field on the conditional score
:math:`\nabla_x \log p_t(x \mid x_0, x_1) = -z/\gamma(t)`. With the pairs drawn from the
entropic OT plan with regularisation :math:`2\sigma^2` (``SinkhornCoupling(reg=2*sigma**2)``)
the learned pair describes the Schrödinger bridge; with independent pairs, the bridge
between the two marginals of the Brownian-bridge mixture.

Sampling: the marginal flow :math:`v` and score :math:`s = \nabla\log p_t` give, for any
:math:`g \ge 0`, SDEs with the same marginals :math:`p_t`. Forward in time (0 → 1),
Fokker–Planck gives :math:`\partial_t p = -\nabla\cdot(p\,v)` for

.. math:: \mathrm d x = \big(v + \tfrac{g^2}{2} s\big)\,\mathrm d t + g\,\mathrm d W_t,

because :math:`\tfrac{g^2}{2}\Delta p = \tfrac{g^2}{2}\nabla\cdot(p\,s)`. Backwards (1 → 0),
write :math:`\tau = 1 - t`: :math:`y_\tau = x_{1-\tau}` has velocity :math:`-v`, so
:math:`\mathrm d y = (-v + \tfrac{g^2}{2} s)\,\mathrm d\tau + g\,\mathrm d W_\tau`. A solver
that integrates from ``t0 = 1`` to ``t1 = 0`` takes signed steps :math:`h = -\mathrm d\tau`,
so the drift it must be handed is

.. math:: b(x, t) = v(x, t) - \tfrac{g^2}{2}\, s(x, t) \qquad (\text{reverse time}),

with diffusion :math:`g` (the noise increment has variance :math:`g^2 |h|`). The
Schrödinger bridge uses :math:`g = \sigma`.

References:
    Tong, Malkin, Fatras, Atanackovic, Zhang, Huguet, Wolf, Bengio. Simulation-Free
    Schrödinger Bridges via Score and Flow Matching. 2024. https://arxiv.org/abs/2307.03672
    Albergo, Boffi, Vanden-Eijnden. Stochastic Interpolants: A Unifying Framework for Flows
    and Diffusions. 2023. https://arxiv.org/abs/2303.08797
    Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole. Score-Based Generative Modeling
    through Stochastic Differential Equations. 2021. https://arxiv.org/abs/2011.13456
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

import attrs
import torch
from torch import Tensor

from nami_core.errors import ShapeError
from nami_core.losses import reduce_loss
from nami_core.shapes import expand_context, leading_shape
from nami_core.validation import non_negative_float, positive_float

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
from .gamma import ScaledBrownianGamma

__all__ = ["BrownianBridgePath", "BridgeLoss", "bridge_loss", "BridgeSDE", "bridge_sample"]


@attrs.frozen
class BrownianBridgePath:
    r"""Brownian-bridge path :math:`x_t = (1-t)x_0 + t x_1 + \sigma\sqrt{t(1-t)}\,z`.

    Its conditional velocity is :math:`u_t = x_1 - x_0 + \dot\gamma(t) z` with
    :math:`\gamma = \sigma\sqrt{t(1-t)}` (:attr:`gamma`), and its conditional score is
    :math:`-z/\gamma(t)`. ``interpolate``/``velocity`` follow the
    :class:`~nami_core.protocols.Path` protocol: without ``z`` they give the mean path (the
    linear interpolation and :math:`x_1 - x_0`), so a loss that adds :math:`\gamma z`
    itself (:func:`~nami_paths.stochastic.stochastic_fm_loss` with ``gamma=path.gamma``,
    :func:`bridge_loss`) stays consistent. Endpoints are exact: :math:`\gamma(0) = \gamma(1) = 0`.

    Args:
        sigma: diffusion coefficient :math:`\sigma > 0` of the bridge.

    References:
        Tong, Malkin, Fatras, Atanackovic, Zhang, Huguet, Wolf, Bengio. Simulation-Free
        Schrödinger Bridges via Score and Flow Matching. 2024. https://arxiv.org/abs/2307.03672

    Example:
        >>> p = BrownianBridgePath(0.5)
        >>> x0, x1, z = torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2)
        >>> p.interpolate(x0, x1, torch.tensor([0.5]), z)
        tensor([[0.7500, 0.7500]])
        >>> p.gamma
        ScaledBrownianGamma(scale=0.5)
    """

    sigma: float = attrs.field(default=1.0, converter=float, validator=positive_float)

    @property
    def gamma(self) -> ScaledBrownianGamma:
        r"""The noise schedule :math:`\gamma(t) = \sigma\sqrt{t(1-t)}`."""
        return ScaledBrownianGamma(self.sigma)

    def interpolate(self, x0: Tensor, x1: Tensor, t: Tensor, z: Optional[Tensor] = None) -> Tensor:
        r""":math:`x_t = (1-t)x_0 + t x_1 + \gamma(t) z` (``z = None``: the mean path)."""
        tb = bcast(t, x0)
        x_t = torch.lerp(x0, x1, tb)
        return x_t if z is None else x_t + self.gamma.gamma(tb) * z

    def velocity(self, x0: Tensor, x1: Tensor, t: Tensor, z: Optional[Tensor] = None) -> Tensor:
        r""":math:`u_t = x_1 - x_0 + \dot\gamma(t) z = \mathrm d x_t/\mathrm d t` at fixed ``z``."""
        u = x1 - x0
        return u if z is None else u + self.gamma.gamma_dot(bcast(t, x0)) * z

    def score(self, t: Tensor, z: Tensor) -> Tensor:
        r"""Conditional score :math:`\nabla_x \log p_t(x_t \mid x_0, x_1) = -z / \gamma(t)`
        (``t`` has the leading shape of ``z``; infinite at t = 0 and t = 1)."""
        return -z / self.gamma.gamma(bcast(t, z))


class BridgeLoss(NamedTuple):
    """The two terms of :func:`bridge_loss` (each reduced as requested)."""

    flow: Tensor
    score: Tensor

    @property
    def total(self) -> Tensor:
        """``flow + score``: the sum to minimise when both fields are trained together."""
        return self.flow + self.score


def bridge_loss(
    velocity_field: Any,
    score_field: Any,
    x_data: Tensor,
    x_noise: Tensor,
    *,
    sigma: Optional[float] = None,
    path: Optional[BrownianBridgePath] = None,
    t: Optional[Tensor | float] = None,
    c: Optional[Tensor] = None,
    z: Optional[Tensor] = None,
    t_range: Optional[Sequence[float]] = None,
    time_density: Any = None,
    reduction: str = "mean",
    generator: Optional[torch.Generator] = None,
) -> BridgeLoss:
    r"""Joint flow + score matching loss on a Brownian bridge ([SF]²M).

    .. math::
        \mathcal L_{\text{flow}} = \mathbb E\,\lVert v_\theta(x_t, t) - (x_1 - x_0 + \dot\gamma(t) z)\rVert^2,
        \qquad
        \mathcal L_{\text{score}} = \mathbb E\,\lVert \gamma(t)\, s_\phi(x_t, t) + z\rVert^2,

    with :math:`x_t = (1-t)x_0 + t x_1 + \gamma(t) z`, :math:`\gamma = \sigma\sqrt{t(1-t)}`,
    both averaged over event elements. The score term is the score-matching loss
    :math:`\lVert s_\phi - (-z/\gamma)\rVert^2` weighted by :math:`\lambda(t) = \gamma(t)^2`:
    the weighting keeps its target (:math:`-z`) bounded although :math:`-z/\gamma` is not, and
    does not move the minimiser, :math:`s^\ast = -\mathbb E[z \mid x_t]/\gamma = \nabla\log p_t`.
    The flow target contains :math:`\dot\gamma z`, so times are drawn in ``t_range`` (default
    :math:`[10^{-3}, 1 - 10^{-3}]`, see :mod:`nami_paths.stochastic`).

    Args:
        velocity_field: :math:`v_\theta(x, t, c)` exposing ``event_ndim``.
        score_field: :math:`s_\phi(x, t, c)` with the same ``event_ndim``.
        x_data: data :math:`x_0`, shape ``lead + event_shape``.
        x_noise: paired noise :math:`x_1`, same shape.
        sigma: bridge diffusion :math:`\sigma` (give this or ``path``).
        path: a :class:`BrownianBridgePath`.
        t, c, z, t_range, time_density, reduction, generator: as in
            :func:`~nami_paths.stochastic.stochastic_fm_loss`.

    Returns:
        :class:`BridgeLoss` ``(flow, score)``; ``.total`` is their sum.

    References:
        Tong, Malkin, Fatras, Atanackovic, Zhang, Huguet, Wolf, Bengio. Simulation-Free
        Schrödinger Bridges via Score and Flow Matching. 2024. https://arxiv.org/abs/2307.03672

    Example:
        >>> from nami_core.fields import VelocityField
        >>> _ = torch.manual_seed(0)
        >>> v, s = VelocityField(2, hidden=(16,)), VelocityField(2, hidden=(16,))
        >>> out = bridge_loss(v, s, torch.randn(8, 2), torch.randn(8, 2), sigma=0.5)
        >>> out.flow.shape, out.score.shape, bool(out.total > 0)
        (torch.Size([]), torch.Size([]), True)
    """
    check_reduction(reduction)
    path = _bridge_path(sigma, path)
    event_ndim = event_ndim_of(velocity_field, "velocity_field")
    if event_ndim_of(score_field, "score_field") != event_ndim:
        raise ShapeError(
            f"velocity_field.event_ndim ({event_ndim}) and score_field.event_ndim "
            f"({score_field.event_ndim}) differ"
        )
    lead = check_pair(x_data, x_noise, event_ndim)
    gamma = path.gamma
    if t is None:
        rng = check_t_range(gamma.t_range if t_range is None else t_range)
        t = draw_times(lead, x_data, rng, resolve("time_density", time_density), generator)
    else:
        t = given_times(t, x_data, event_ndim)
    if z is None:
        z = torch.randn(x_data.shape, generator=generator, dtype=x_data.dtype, device=x_data.device)
    elif z.shape != x_data.shape:
        raise ShapeError(f"z must have the shape of x_data {tuple(x_data.shape)}, got {tuple(z.shape)}")
    x_t = path.interpolate(x_data, x_noise, t, z)
    u_t = path.velocity(x_data, x_noise, t, z)
    c_lead = expand_context(c, lead)
    flow = per_sample_mse(velocity_field(x_t, t, c_lead), u_t, event_ndim)
    s = score_field(x_t, t, c_lead)
    if s.shape != z.shape:
        raise ShapeError(f"score_field returned shape {tuple(s.shape)}, expected {tuple(z.shape)}")
    score = per_sample_mse(gamma.gamma(bcast(t, s)) * s, -z, event_ndim)
    return BridgeLoss(reduce_loss(flow, reduction), reduce_loss(score, reduction))


def _bridge_path(sigma: Optional[float], path: Optional[BrownianBridgePath]) -> BrownianBridgePath:
    if path is None:
        if sigma is None:
            raise TypeError("give the bridge's sigma= or a path=BrownianBridgePath(sigma)")
        return BrownianBridgePath(sigma)
    path = resolve("path", path)
    if not isinstance(path, BrownianBridgePath):
        raise TypeError(f"path must be a BrownianBridgePath, got {path!r}")
    if sigma is not None and float(sigma) != path.sigma:
        raise ValueError(f"sigma={sigma} contradicts path.sigma={path.sigma}")
    return path


@attrs.frozen(kw_only=True)
class BridgeSDE:
    r"""The SDE of a trained velocity + score pair, in Itô form :math:`\mathrm d x = f\,\mathrm dt + g\,\mathrm dW`.

    .. math::
        f(x, t) = v(x, t) \mp \tfrac{g^2}{2}\, s(x, t), \qquad g(x, t) = g,

    with the minus sign for ``reverse=True`` (integrate from t = 1 to t = 0, the sampling
    direction; see the module docstring for the derivation) and the plus sign forwards
    (t = 0 to t = 1). Given the exact :math:`v` and :math:`s` both SDEs have the marginals
    :math:`p_t` of the bridge for any :math:`g`; :math:`g = \sigma` is the Schrödinger bridge.
    :math:`g = 0` gives the probability-flow ODE :math:`\dot x = v`. ``drift``/``diffusion``
    are the names an SDE solver's ``integrate_sde`` takes (aliases of ``f``/``g``).

    Args:
        velocity_field: :math:`v(x, t, c)` (its ``event_ndim`` is used, default 1).
        score_field: :math:`s(x, t, c)`.
        diffusion_coef: :math:`g \ge 0` (typically the bridge's :math:`\sigma`).
        reverse: ``True`` for the time-reversed drift used when sampling (1 → 0).
        context: optional context ``batch_shape + (k,)`` handed to both fields.

    References:
        Tong, Malkin, Fatras, Atanackovic, Zhang, Huguet, Wolf, Bengio. Simulation-Free
        Schrödinger Bridges via Score and Flow Matching. 2024. https://arxiv.org/abs/2307.03672
        Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole. Score-Based Generative Modeling
        through Stochastic Differential Equations. 2021. https://arxiv.org/abs/2011.13456

    Example:
        >>> v = lambda x, t, c=None: torch.zeros_like(x)
        >>> s = lambda x, t, c=None: -x
        >>> sde = BridgeSDE(velocity_field=v, score_field=s, diffusion_coef=2.0)
        >>> sde.f(torch.ones(1, 2), torch.ones(1)), sde.g(torch.ones(1, 2), torch.ones(1))
        (tensor([[2., 2.]]), tensor([[2., 2.]]))
    """

    velocity_field: Any
    score_field: Any
    diffusion_coef: float = attrs.field(default=1.0, converter=float, validator=non_negative_float)
    reverse: bool = True
    context: Optional[Tensor] = attrs.field(default=None, eq=False)

    @property
    def event_ndim(self) -> int:
        return int(getattr(self.velocity_field, "event_ndim", 1))

    def _c(self, x: Tensor) -> Optional[Tensor]:
        if self.context is None:
            return None
        return expand_context(self.context, leading_shape(x, self.event_ndim))

    def f(self, x: Tensor, t: Tensor) -> Tensor:
        r"""Drift :math:`v \mp \tfrac{g^2}{2} s` (minus for ``reverse``)."""
        c = self._c(x)
        v = self.velocity_field(x, t, c)
        if self.diffusion_coef == 0.0:
            return v
        k = 0.5 * self.diffusion_coef * self.diffusion_coef
        s = self.score_field(x, t, c)
        return v - k * s if self.reverse else v + k * s

    def g(self, x: Tensor, t: Tensor) -> Tensor:
        """Diagonal diffusion: :math:`g` in every element of ``x``."""
        return torch.full_like(x, self.diffusion_coef)

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        """Alias of :meth:`f` (the name ``integrate_sde`` uses)."""
        return self.f(x, t)

    def diffusion(self, x: Tensor, t: Tensor) -> Tensor:
        """Alias of :meth:`g`."""
        return self.g(x, t)


def bridge_sample(
    velocity_field: Any,
    score_field: Any,
    x1: Tensor,
    *,
    sigma: float,
    solver: Any,
    c: Optional[Tensor] = None,
    g: Optional[float] = None,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    r"""Sample a trained velocity + score pair by integrating its reverse-time SDE from t = 1 to 0.

    Integrates :math:`\mathrm dx = (v - \tfrac{g^2}{2}s)\,\mathrm dt + g\,\mathrm dW` from
    ``x1`` (noise at t = 1) down to t = 0 with an SDE solver (``integrate_sde``, e.g.
    ``nami.build("solver", "euler_maruyama", steps=100)``), without autograd.

    Args:
        velocity_field, score_field: the trained pair (``event_ndim`` read from the first).
        x1: initial noise, shape ``lead + event_shape``.
        sigma: the bridge's :math:`\sigma`; the default diffusion :math:`g = \sigma`.
        solver: SDE solver instance or registry name.
        c: context ``batch_shape + (k,)`` (broadcast to the leading shape of ``x1``).
        g: diffusion coefficient overriding ``sigma`` (0 gives the probability-flow ODE).
        generator: random generator for the Brownian increments.

    Returns:
        Samples at t = 0, shaped like ``x1``.

    References:
        Tong, Malkin, Fatras, Atanackovic, Zhang, Huguet, Wolf, Bengio. Simulation-Free
        Schrödinger Bridges via Score and Flow Matching. 2024. https://arxiv.org/abs/2307.03672

    Example:
        >>> class EM:  # a minimal Euler-Maruyama solver for the example
        ...     def integrate_sde(self, drift, diffusion, y0, t0, t1, *, time_shape=(), generator=None, trajectory=False):
        ...         y, h = y0, (t1 - t0) / 10
        ...         for k in range(10):
        ...             t = torch.full(time_shape, t0 + k * h)
        ...             y = y + drift(y, t) * h + diffusion(y, t) * abs(h) ** 0.5 * torch.randn(y.shape, generator=generator)
        ...         return type("S", (), {"y": y})()
        >>> v = lambda x, t, c=None: torch.zeros_like(x)
        >>> s = lambda x, t, c=None: -x
        >>> bridge_sample(v, s, torch.zeros(3, 2), sigma=1.0, solver=EM()).shape
        torch.Size([3, 2])
    """
    solver = resolve("solver", solver)
    if not callable(getattr(solver, "integrate_sde", None)):
        raise TypeError(f"solver must be an SDE solver with an integrate_sde method, got {solver!r}")
    sde = BridgeSDE(
        velocity_field=velocity_field,
        score_field=score_field,
        diffusion_coef=float(sigma) if g is None else g,
        reverse=True,
        context=c,
    )
    lead = leading_shape(x1, sde.event_ndim)
    with torch.no_grad():
        sol = solver.integrate_sde(sde.drift, sde.diffusion, x1, 1.0, 0.0, time_shape=tuple(lead), generator=generator)
    return sol.y
