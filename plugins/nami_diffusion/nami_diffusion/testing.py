r"""Exact diffusion models for Gaussian and Gaussian-mixture data (ground truth for tests and benchmarks).

For data :math:`x_0 \sim \mathcal N(\mu, s^2 I)` in d dimensions and the schedule
:math:`x_t = \alpha x_0 + \sigma\varepsilon`, the marginal is :math:`p_t = \mathcal N(\alpha\mu, v I)`,
:math:`v = \alpha^2 s^2 + \sigma^2`, and

.. math::
    \nabla\log p_t(x) = -\frac{x - \alpha\mu}{v},\quad
    E[x_0\mid x_t = x] = \mu + \frac{\alpha s^2}{v}(x - \alpha\mu),\quad
    E[\varepsilon\mid x_t = x] = \frac{\sigma}{v}(x - \alpha\mu),

    u(x, t) = \dot\alpha\mu + \frac{\dot v}{2v}(x - \alpha\mu),\qquad
    \tfrac12\dot v = \alpha\dot\alpha s^2 + \sigma\dot\sigma = \alpha\dot\alpha s^2 + \tfrac12 g^2 + \tfrac{\dot\alpha}{\alpha}\sigma^2 .

(the last form is regular where :math:`\dot\sigma = \infty`, VP at t = 0). A mixture
:math:`\sum_k w_k\,\mathcal N(\mu_k, s_k^2 I)` stays a mixture with responsibilities
:math:`r_k(x) \propto w_k\,\mathcal N(x; \alpha\mu_k, v_k I)`, and every posterior mean is the
responsibility-weighted sum of the component ones: an exact non-linear denoiser.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from .parameterization import check_parameterization, from_x0_eps
from .schedules import broadcast_to_state, collapse_time, compute_time

__all__ = ["GaussianDiffusionModel", "GaussianMixtureModel", "gaussian_marginal_log_prob"]


def gaussian_marginal_log_prob(x: Tensor, mean: Tensor, var: Tensor | float) -> Tensor:
    r"""Log-density of :math:`\mathcal N(\text{mean}, \text{var}\, I)` over the last dimension."""
    d = x.shape[-1]
    var = torch.as_tensor(var, dtype=x.dtype, device=x.device)
    return -0.5 * ((x - mean) ** 2).sum(-1) / var - 0.5 * d * torch.log(2 * math.pi * var)


class GaussianDiffusionModel(nn.Module):
    r"""Exact prediction of kind ``parameterization`` for Gaussian data :math:`\mathcal N(\mu(c), s^2 I)`.

    Args:
        mu: data mean, shape ``(d,)``.
        sigma_d: data standard deviation :math:`s > 0`.
        schedule: the noise schedule.
        parameterization: ``"eps"``, ``"x0"``, ``"score"``, ``"v"`` or ``"velocity"``.
        context_weight: optional ``(d, k)`` matrix :math:`W`, :math:`\mu(c) = \mu + W c`.

    Attributes:
        calls: number of forward calls made (to check the evaluations a sampler promises).
    """

    event_ndim = 1

    def __init__(self, mu: Tensor, sigma_d: float, schedule: Any, parameterization: str = "eps",
                 context_weight: Optional[Tensor] = None) -> None:
        super().__init__()
        self.register_buffer("mu", torch.as_tensor(mu))
        self.sigma_d = float(sigma_d)
        self.schedule = schedule
        self.parameterization = check_parameterization(parameterization)
        self.register_buffer("W", context_weight)
        self.calls = 0

    def mean(self, c: Optional[Tensor] = None) -> Tensor:
        """Data mean for context ``c``."""
        if self.W is None or c is None:
            return self.mu
        return self.mu + c @ self.W.T

    def variance(self, t: Tensor) -> Tensor:
        """Marginal variance :math:`v(t) = \\alpha^2 s^2 + \\sigma^2` (per dimension)."""
        t = compute_time(t)
        a, s = self.schedule.alpha(t), self.schedule.sigma(t)
        return a * a * self.sigma_d**2 + s * s

    def log_prob(self, x: Tensor, t: Tensor | float, c: Optional[Tensor] = None) -> Tensor:
        """Exact marginal log-density :math:`\\log p_t(x)` (``t`` scalar or leading shape)."""
        t = compute_time(t).to(x.dtype)
        a = broadcast_to_state(self.schedule.alpha(t), x)
        v = self.variance(t)
        return gaussian_marginal_log_prob(x, a * self.mean(c), v)

    def forward(self, x: Tensor, t: Tensor, c: Optional[Tensor] = None) -> Tensor:
        self.calls += 1
        sch = self.schedule
        tc = compute_time(collapse_time(t))
        a, s = (broadcast_to_state(q, x) for q in (sch.alpha(tc), sch.sigma(tc)))
        v = a * a * self.sigma_d**2 + s * s
        r = x - a * self.mean(c)
        p = self.parameterization
        if p == "score":
            out = -r / v
        elif p == "velocity":
            da, f, g2 = (broadcast_to_state(q, x) for q in (sch.d_alpha(tc), sch.f_coef(tc), sch.g2(tc)))
            half_dv = a * da * self.sigma_d**2 + 0.5 * g2 + f * s * s
            out = da * self.mean(c) + half_dv / v * r
        else:
            x0 = self.mean(c) + a * self.sigma_d**2 / v * r
            eps = s / v * r
            out = from_x0_eps(x0, eps, x, t, sch, p)
        return out.to(x.dtype)


class GaussianMixtureModel(nn.Module):
    r"""Exact prediction for isotropic Gaussian-mixture data :math:`\sum_k w_k \mathcal N(\mu_k, s_k^2 I)`.

    Args:
        weights: mixture weights, shape ``(K,)`` (normalised here).
        means: component means, shape ``(K, d)``.
        stds: component standard deviations, shape ``(K,)``, > 0.
        schedule: the noise schedule.
        parameterization: kind of prediction returned.

    Attributes:
        calls: number of forward calls made.
    """

    event_ndim = 1

    def __init__(self, weights: Sequence[float] | Tensor, means: Tensor, stds: Sequence[float] | Tensor,
                 schedule: Any, parameterization: str = "x0") -> None:
        super().__init__()
        means = torch.as_tensor(means)
        w = torch.as_tensor(weights, dtype=means.dtype)
        self.register_buffer("weights", w / w.sum())
        self.register_buffer("means", means)
        self.register_buffer("stds", torch.as_tensor(stds, dtype=means.dtype))
        self.schedule = schedule
        self.parameterization = check_parameterization(parameterization)
        self.calls = 0

    def posterior(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(x0_hat, score)`` at ``x`` (shape ``lead + (d,)``), ``t`` of shape ``lead``."""
        tc = compute_time(collapse_time(t))
        a = broadcast_to_state(self.schedule.alpha(tc), x).unsqueeze(-1)  # lead + (1, 1)
        s = broadcast_to_state(self.schedule.sigma(tc), x).unsqueeze(-1)
        d = x.shape[-1]
        v = a * a * self.stds[:, None] ** 2 + s * s  # lead + (K, 1)
        r = x.unsqueeze(-2) - a * self.means  # lead + (K, d)
        logits = torch.log(self.weights) - 0.5 * d * torch.log(v[..., 0]) - 0.5 * (r * r).sum(-1) / v[..., 0]
        resp = torch.softmax(logits, dim=-1).unsqueeze(-1)  # lead + (K, 1)
        x0 = (resp * (self.means + a * self.stds[:, None] ** 2 / v * r)).sum(-2)
        score = (resp * (-r / v)).sum(-2)
        return x0.to(x.dtype), score.to(x.dtype)

    def forward(self, x: Tensor, t: Tensor, c: Optional[Tensor] = None) -> Tensor:
        self.calls += 1
        x0, score = self.posterior(x, t)
        p = self.parameterization
        if p == "score":
            return score
        s = broadcast_to_state(self.schedule.sigma(compute_time(collapse_time(t))), x)
        eps = (-s * score).to(x.dtype)
        return from_x0_eps(x0, eps, x, t, self.schedule, p).to(x.dtype)

    def sample(self, n: int, *, generator: Optional[torch.Generator] = None) -> Tensor:
        """``n`` exact samples of the data distribution."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.means.shape[-1], generator=generator, dtype=self.means.dtype)
        return self.means[k] + self.stds[k, None] * z

    def data_mean(self) -> Tensor:
        """Exact mean of the data distribution."""
        return (self.weights[:, None] * self.means).sum(0)

    def data_cov(self) -> Tensor:
        """Exact covariance of the data distribution."""
        m = self.data_mean()
        d = self.means.shape[-1]
        eye = torch.eye(d, dtype=self.means.dtype)
        second = sum(w * (s**2 * eye + torch.outer(mu, mu)) for w, mu, s in zip(self.weights, self.means, self.stds))
        return second - torch.outer(m, m)
