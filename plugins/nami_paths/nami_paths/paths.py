r"""Affine probability paths between data (t = 0) and noise (t = 1).

An affine path interpolates :math:`x_t = a(t)\,x_0 + s(t)\,x_1` with :math:`a(0)=1, s(0)=0`
and :math:`a(1)=0, s(1)=1`; its conditional velocity (the flow-matching target) is
:math:`u_t = \dot a(t)\,x_0 + \dot s(t)\,x_1`. A named path only supplies
:math:`a, s, \dot a, \dot s`.

References:
    Lipman, Chen, Ben-Hamu, Nickel, Le. Flow Matching for Generative Modeling. 2023.
    https://arxiv.org/abs/2210.02747
    Albergo, Vanden-Eijnden. Building Normalizing Flows with Stochastic Interpolants. 2023.
    https://arxiv.org/abs/2209.15571
"""

from __future__ import annotations

import math

import attrs
import torch
from torch import Tensor

__all__ = ["AffinePath", "LinearPath", "CosinePath"]


def _bcast(t: Tensor, x: Tensor) -> Tensor:
    """Append singleton event dims to ``t`` (leading shape) so it broadcasts against ``x``."""
    return t.reshape(t.shape + (1,) * (x.ndim - t.ndim))


class AffinePath:
    r"""Base class: subclasses define ``alpha``, ``sigma``, ``d_alpha``, ``d_sigma`` of ``t``."""

    def alpha(self, t: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def sigma(self, t: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def d_alpha(self, t: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def d_sigma(self, t: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def interpolate(self, x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
        r""":math:`x_t = a(t)\,x_0 + s(t)\,x_1` (``t`` has the leading shape of ``x0``)."""
        tb = _bcast(t, x0)
        return self.alpha(tb) * x0 + self.sigma(tb) * x1

    def velocity(self, x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
        r"""Conditional target :math:`u_t = \dot a(t)\,x_0 + \dot s(t)\,x_1 = \mathrm{d}x_t/\mathrm{d}t`."""
        tb = _bcast(t, x0)
        return self.d_alpha(tb) * x0 + self.d_sigma(tb) * x1


@attrs.frozen
class LinearPath(AffinePath):
    r"""Linear (rectified-flow / optimal-transport) path :math:`a = 1 - t,\ s = t`,
    target :math:`u_t = x_1 - x_0`.

    Example:
        >>> p = LinearPath()
        >>> p.interpolate(torch.zeros(2), torch.ones(2), torch.tensor(0.25))
        tensor([0.2500, 0.2500])
    """

    def alpha(self, t: Tensor) -> Tensor:
        return 1.0 - t

    def sigma(self, t: Tensor) -> Tensor:
        return t

    def d_alpha(self, t: Tensor) -> Tensor:
        return torch.full_like(t, -1.0)

    def d_sigma(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def interpolate(self, x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
        return torch.lerp(x0, x1, _bcast(t, x0))

    def velocity(self, x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
        return x1 - x0


@attrs.frozen
class CosinePath(AffinePath):
    r"""Cosine (variance-preserving trigonometric) path
    :math:`a = \cos(\pi t / 2),\ s = \sin(\pi t / 2)`, so :math:`a^2 + s^2 = 1`.

    Endpoints are exact: :math:`a(1)` is set to 0 rather than ``cos(pi/2) = 6e-17``.

    Example:
        >>> p = CosinePath()
        >>> p.interpolate(torch.zeros(2), torch.ones(2), torch.tensor(1.0))
        tensor([1., 1.])
    """

    def alpha(self, t: Tensor) -> Tensor:
        return torch.where(t == 1, torch.zeros_like(t), torch.cos(0.5 * math.pi * t))

    def sigma(self, t: Tensor) -> Tensor:
        return torch.sin(0.5 * math.pi * t)

    def d_alpha(self, t: Tensor) -> Tensor:
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def d_sigma(self, t: Tensor) -> Tensor:
        return torch.where(t == 1, torch.zeros_like(t), 0.5 * math.pi * torch.cos(0.5 * math.pi * t))
