r"""Exact flow-matching quantities for Gaussian data :math:`x_0 \sim \mathcal N(\mu, \sigma_d^2 I)`.

Under an affine path :math:`x_t = a(t)x_0 + s(t)\varepsilon` the marginal is
:math:`p_t = \mathcal N(m(t), v(t) I)` with :math:`m = a\mu`, :math:`v = a^2\sigma_d^2 + s^2`,
and the marginal (probability-flow) velocity is

.. math:: u(x, t) = \dot a(t)\,\mu + \frac{\dot v(t)}{2 v(t)}\,(x - m(t)),
          \qquad \nabla\!\cdot u = d\,\frac{\dot v}{2v}.

The mean may depend on a context, :math:`\mu(c) = \mu_0 + W c`, which gives an exact
conditional field.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import Tensor, nn

__all__ = ["GaussianFlowField", "gaussian_log_prob", "gaussian_flow_map"]


def _linear_coeffs(t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return 1.0 - t, t, torch.full_like(t, -1.0), torch.ones_like(t)


class GaussianFlowField(nn.Module):
    r"""Exact velocity field of Gaussian data under an affine path.

    Args:
        mu: data mean, shape ``(d,)``.
        sigma_d: data standard deviation (isotropic), > 0.
        path: object with ``alpha``, ``sigma``, ``d_alpha``, ``d_sigma`` (``None`` = linear).
        context_weight: optional ``(d, k)`` matrix :math:`W`; then :math:`\mu(c) = \mu + W c`.
    """

    event_ndim = 1

    def __init__(self, mu: Tensor, sigma_d: float, path: Any = None, context_weight: Optional[Tensor] = None) -> None:
        super().__init__()
        self.register_buffer("mu", torch.as_tensor(mu))
        self.sigma_d = float(sigma_d)
        self.path = path
        self.register_buffer("W", context_weight)
        self.calls = 0

    def coeffs(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if self.path is None:
            return _linear_coeffs(t)
        p = self.path
        return p.alpha(t), p.sigma(t), p.d_alpha(t), p.d_sigma(t)

    def mean(self, c: Optional[Tensor] = None) -> Tensor:
        if self.W is None or c is None:
            return self.mu
        return self.mu + c @ self.W.T

    def variance(self, t: Tensor) -> Tensor:
        a, s, _, _ = self.coeffs(t)
        return a * a * self.sigma_d**2 + s * s

    def forward(self, x: Tensor, t: Tensor, c: Optional[Tensor] = None) -> Tensor:
        self.calls += 1
        a, s, da, ds = (q.unsqueeze(-1) for q in self.coeffs(t))
        mu = self.mean(c)
        v = a * a * self.sigma_d**2 + s * s
        dv = 2.0 * a * da * self.sigma_d**2 + 2.0 * s * ds
        return da * mu + dv / (2.0 * v) * (x - a * mu)


def gaussian_log_prob(x: Tensor, mean: Tensor, var: float | Tensor) -> Tensor:
    r"""Log-density of :math:`\mathcal N(\text{mean}, \text{var}\cdot I)` summed over the last dim."""
    d = x.shape[-1]
    var = torch.as_tensor(var, dtype=x.dtype)
    return -0.5 * ((x - mean) ** 2).sum(-1) / var - 0.5 * d * torch.log(2 * math.pi * var)


def gaussian_flow_map(field: GaussianFlowField, x_s: Tensor, s: float, t: float, c: Optional[Tensor] = None) -> Tensor:
    r"""Exact flow map :math:`x_t = m(t) + (x_s - m(s))\sqrt{v(t)/v(s)}`."""
    ts = torch.tensor([s, t], dtype=x_s.dtype)
    a, _, _, _ = field.coeffs(ts)
    v = field.variance(ts)
    mu = field.mean(c)
    return a[1] * mu + (x_s - a[0] * mu) * torch.sqrt(v[1] / v[0])
