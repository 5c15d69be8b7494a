r"""Small wrappers that turn one kind of model into another (``model(x, t, c=None)`` in, same out).

Signs, derived once (Song et al. 2021; Anderson 1982). The forward SDE of a schedule is
:math:`dx = f(x,t)\,dt + g(t)\,dW` (t from 0 to 1), :math:`s = \nabla_x\log p_t` its score and

.. math:: u(x, t) = f(x, t) - \tfrac12 g(t)^2\, s(x, t)

the probability-flow velocity: :math:`\dot x = u` has the marginals :math:`p_t` in both directions
(:class:`MirrorVelocityFromScore`). For any :math:`\gamma(t) \ge 0` the SDE

.. math:: dx = \big[u(x,t) - \tfrac12\gamma(t)^2 s(x,t)\big]\,dt + \gamma(t)\,d\bar W,
          \qquad \text{integrated from } t = 1 \text{ down to } t = 0 \ (dt < 0),

has the same marginals (Fokker–Planck in the reversed time :math:`\tau = 1 - t`:
:math:`\partial_\tau p = \nabla\!\cdot(p\,(u - \tfrac12\gamma^2 s)) + \tfrac12\gamma^2\Delta p = \nabla\!\cdot(p u)
= -\partial_t p` because :math:`p\,s = \nabla p`). With :math:`\gamma = g` its drift is Anderson's
reverse-time drift :math:`f - g^2 s`. :class:`DriftFromVelocityScore` returns that drift with
respect to t: hand it to an SDE solver integrating from ``t0 = 1`` to ``t1 = 0``, which uses
:math:`|dt|` for the noise. (Integrating forward in time instead needs :math:`u + \tfrac12\gamma^2 s`;
using the plus sign when sampling backwards is the classic sign error, and the tests compare
against the Gaussian closed form to catch it.)

References:
    Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole. Score-Based Generative Modeling through
    Stochastic Differential Equations. 2021. https://arxiv.org/abs/2011.13456
    Anderson. Reverse-time diffusion equation models. Stochastic Processes and their
    Applications 12(3), 1982.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import torch
from torch import Tensor, nn

from .parameterization import check_parameterization, convert
from .schedules import broadcast_to_state, collapse_time, compute_time

__all__ = ["ConvertPrediction", "ScoreFromNoise", "DriftFromVelocityScore", "MirrorVelocityFromScore"]


def _event_ndim(*models: Any) -> int:
    for m in models:
        n = getattr(m, "event_ndim", None)
        if isinstance(n, int):
            return n
    raise TypeError("the wrapped model must expose an integer attribute event_ndim")


class ConvertPrediction(nn.Module):
    r"""Wrap a model predicting ``source`` so that it predicts ``target`` (see
    :mod:`nami_diffusion.parameterization`).

    Args:
        model: ``model(x, t, c=None)`` predicting ``source``, exposing ``event_ndim``.
        schedule: the noise schedule relating the two.
        source: what ``model`` predicts.
        target: what the wrapper returns.

    Example:
        >>> from nami_diffusion.schedules import VESchedule
        >>> from nami_diffusion.testing import GaussianDiffusionModel
        >>> s = VESchedule()
        >>> eps_model = GaussianDiffusionModel(torch.zeros(2), 1.0, s, "eps")
        >>> x0_model = ConvertPrediction(eps_model, s, source="eps", target="x0")
        >>> x0_model(torch.ones(1, 2), torch.zeros(1))  # E[x0 | x] = x / (1 + sigma_min^2)
        tensor([[0.9999, 0.9999]])
    """

    def __init__(self, model: Any, schedule: Any, *, source: str, target: str) -> None:
        super().__init__()
        self.model = model
        self.schedule = schedule
        self.source = check_parameterization(source, "source")
        self.target = check_parameterization(target, "target")
        self.event_ndim = _event_ndim(model)

    def forward(self, x: Tensor, t: Tensor, c: Optional[Tensor] = None) -> Tensor:
        pred = self.model(x, t, c)
        return convert(pred, x, t, self.schedule, source=self.source, target=self.target).to(x.dtype)


class ScoreFromNoise(ConvertPrediction):
    r"""Score model from a noise (eps) model: :math:`s_\theta(x, t) = -\hat\varepsilon_\theta(x, t)/\sigma(t)`.

    Tweedie's formula for :math:`x_t = \alpha x_0 + \sigma\varepsilon`. Singular where
    :math:`\sigma(t) = 0` (VP at t = 0): evaluate at :math:`t > 0` only.

    Args:
        model: eps-prediction model ``model(x, t, c=None)``.
        schedule: the noise schedule (:math:`\sigma(t)`).

    Example:
        >>> from nami_diffusion.schedules import VESchedule
        >>> eps_model = lambda x, t, c=None: torch.ones_like(x)
        >>> eps_model.event_ndim = 1
        >>> ScoreFromNoise(eps_model, VESchedule())(torch.zeros(1, 2), torch.full((1,), 0.5))
        tensor([[-1.4142, -1.4142]])
    """

    def __init__(self, model: Any, schedule: Any) -> None:
        super().__init__(model, schedule, source="eps", target="score")


DiffusionLike = Union[Any, Callable[[Tensor], Tensor], float]


def _g2(diffusion: DiffusionLike, t: Tensor) -> Tensor:
    """:math:`g(t)^2` from a schedule (``g2``/``diffusion``), a callable ``g(t)`` or a constant."""
    tc = compute_time(collapse_time(t))
    if hasattr(diffusion, "g2"):
        return diffusion.g2(tc)
    if hasattr(diffusion, "diffusion"):
        return diffusion.diffusion(tc) ** 2
    if callable(diffusion):
        return compute_time(diffusion(tc)) ** 2
    return torch.full_like(tc, float(diffusion) ** 2)


class DriftFromVelocityScore(nn.Module):
    r"""Reverse-time SDE drift :math:`b(x, t) = u(x, t) - \tfrac12 g(t)^2 s(x, t)` for sampling 1 → 0.

    Together with the diffusion :math:`g(t)` it defines :math:`dx = b\,dt + g\,d\bar W`, integrated
    from t = 1 to t = 0 (negative dt, noise scaled by :math:`\sqrt{|dt|}`), which has the marginals
    :math:`p_t` of the probability-flow ODE :math:`\dot x = u`. With ``u`` the probability-flow
    velocity of a schedule and ``g`` its diffusion, :math:`b = f - g^2 s` (Anderson's reverse drift).
    ``g`` need not be the schedule's: any :math:`\gamma(t) \ge 0` gives a valid sampler
    (γ = 0 is the ODE).

    Args:
        velocity: probability-flow velocity model ``velocity(x, t, c=None)``.
        score: score model ``score(x, t, c=None)``.
        diffusion: :math:`g`: a schedule (its ``g2``), a callable ``g(t)`` or a constant.

    Example:
        >>> from nami_diffusion.schedules import VPSchedule
        >>> from nami_diffusion.testing import GaussianDiffusionModel
        >>> s = VPSchedule()
        >>> u = GaussianDiffusionModel(torch.zeros(1), 1.0, s, "velocity")
        >>> score = GaussianDiffusionModel(torch.zeros(1), 1.0, s, "score")
        >>> x, t = torch.ones(1, 1), torch.full((1,), 0.5)
        >>> b = DriftFromVelocityScore(u, score, s)(x, t)
        >>> torch.allclose(b, s.drift(x, t) - s.g2(t) * score(x, t))  # f - g^2 s
        True
    """

    def __init__(self, velocity: Any, score: Any, diffusion: DiffusionLike) -> None:
        super().__init__()
        self.velocity = velocity
        self.score = score
        self.diffusion = diffusion
        self.event_ndim = _event_ndim(velocity, score)

    def g(self, t: Tensor) -> Tensor:
        """The diffusion :math:`g(t)` (shape of ``t``, float32 or better)."""
        return torch.sqrt(_g2(self.diffusion, t))

    def forward(self, x: Tensor, t: Tensor, c: Optional[Tensor] = None) -> Tensor:
        u = self.velocity(x, t, c)
        s = self.score(x, t, c)
        g2 = broadcast_to_state(_g2(self.diffusion, t), x)
        return (u - 0.5 * g2 * s).to(x.dtype)


class MirrorVelocityFromScore(nn.Module):
    r"""Probability-flow velocity from a score model: :math:`u(x, t) = f(x, t) - \tfrac12 g(t)^2 s(x, t)`.

    The deterministic "mirror" of the forward SDE: the ODE :math:`\dot x = u` transports
    :math:`p_t` exactly like the SDE does, so ODE solvers sample (t: 1 → 0) and compute likelihoods
    (t: 0 → 1) with it. For :math:`x_t = \alpha x_0 + \sigma\varepsilon`,
    :math:`u = \dot\alpha\hat x_0 + \dot\sigma\hat\varepsilon` (the path's marginal velocity).

    Args:
        score: score model ``score(x, t, c=None)``.
        schedule: the noise schedule (:math:`f`, :math:`g`).

    Example:
        >>> from nami_diffusion.schedules import VESchedule
        >>> from nami_diffusion.testing import GaussianDiffusionModel
        >>> s = VESchedule()
        >>> score = GaussianDiffusionModel(torch.zeros(1), 1.0, s, "score")
        >>> exact = GaussianDiffusionModel(torch.zeros(1), 1.0, s, "velocity")
        >>> x, t = torch.ones(3, 1), torch.full((3,), 0.5)
        >>> torch.allclose(MirrorVelocityFromScore(score, s)(x, t), exact(x, t))
        True
    """

    def __init__(self, score: Any, schedule: Any) -> None:
        super().__init__()
        self.score = score
        self.schedule = schedule
        self.event_ndim = _event_ndim(score)

    def forward(self, x: Tensor, t: Tensor, c: Optional[Tensor] = None) -> Tensor:
        s = self.score(x, t, c)
        tc = compute_time(collapse_time(t))
        f = broadcast_to_state(self.schedule.f_coef(tc), x)
        g2 = broadcast_to_state(self.schedule.g2(tc), x)
        return (f * x - 0.5 * g2 * s).to(x.dtype)
