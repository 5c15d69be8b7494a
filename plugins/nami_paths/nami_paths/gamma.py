r"""Noise schedules :math:`\gamma(t)` of stochastic interpolants.

A stochastic interpolant adds a latent Gaussian :math:`z \sim \mathcal N(0, I)` to a
deterministic path :math:`I(t, x_0, x_1)` between data :math:`x_0` (t = 0) and noise
:math:`x_1` (t = 1):

.. math::
    x_t = I(t, x_0, x_1) + \gamma(t)\, z, \qquad
    \partial_t x_t = \partial_t I(t, x_0, x_1) + \dot\gamma(t)\, z,

with :math:`\gamma(0) = \gamma(1) = 0` so that the endpoints stay exact. A schedule supplies
:math:`\gamma`, :math:`\dot\gamma` and the product :math:`\gamma\dot\gamma` in closed form.
For the Brownian choices :math:`\gamma = s\sqrt{t(1-t)}` the derivative
:math:`\dot\gamma = s(1-2t) / (2\sqrt{t(1-t)})` is unbounded at both ends while
:math:`\gamma\dot\gamma = s^2(1 - 2t)/2` stays bounded; the attribute ``t_range`` gives
the training time range on which the regression target has finite variance (see
:func:`nami_paths.stochastic.stochastic_fm_loss` and ``docs/paths.md``).

References:
    Albergo, Boffi, Vanden-Eijnden. Stochastic Interpolants: A Unifying Framework for Flows
    and Diffusions. 2023. https://arxiv.org/abs/2303.08797
"""

from __future__ import annotations

from typing import ClassVar, Tuple

import attrs
import torch
from torch import Tensor

from nami_core.validation import positive_float

__all__ = ["DEFAULT_EPS", "ZeroGamma", "ScaledBrownianGamma", "BrownianGamma"]

#: Default distance :math:`\varepsilon` of the training time range :math:`[\varepsilon, 1-\varepsilon]`
#: from the ends for schedules whose :math:`\dot\gamma` is unbounded. With it
#: :math:`|\dot\gamma| \le s / (2\sqrt{\varepsilon(1-\varepsilon)}) \approx 15.8\,s` and
#: :math:`\mathbb E_t[\dot\gamma^2] \approx 2.46\,s^2` for :math:`t \sim U[\varepsilon, 1-\varepsilon]`
#: (infinite on :math:`[0, 1]`); the excluded time is shorter than one step of a 500-step sampler.
DEFAULT_EPS = 1e-3


@attrs.frozen
class ZeroGamma:
    r"""No latent noise: :math:`\gamma \equiv 0`, so the stochastic interpolant is the path itself
    and :func:`~nami_paths.stochastic.stochastic_fm_loss` reduces to flow matching.

    References:
        Albergo, Boffi, Vanden-Eijnden. Stochastic Interpolants: A Unifying Framework for
        Flows and Diffusions. 2023. https://arxiv.org/abs/2303.08797

    Example:
        >>> g = ZeroGamma()
        >>> g.gamma(torch.tensor([0.0, 0.5, 1.0])), g.t_range
        (tensor([0., 0., 0.]), (0.0, 1.0))
    """

    #: Training time range: all of [0, 1] (the target is bounded).
    t_range: ClassVar[Tuple[float, float]] = (0.0, 1.0)
    #: ``True``: the schedule adds no noise (losses skip drawing ``z``).
    is_zero: ClassVar[bool] = True

    def gamma(self, t: Tensor) -> Tensor:
        r""":math:`\gamma(t) = 0`."""
        return torch.zeros_like(t)

    def gamma_dot(self, t: Tensor) -> Tensor:
        r""":math:`\dot\gamma(t) = 0`."""
        return torch.zeros_like(t)

    def gamma_gamma_dot(self, t: Tensor) -> Tensor:
        r""":math:`\gamma(t)\dot\gamma(t) = 0`."""
        return torch.zeros_like(t)


@attrs.frozen
class ScaledBrownianGamma:
    r"""Scaled Brownian-bridge noise :math:`\gamma(t) = s\sqrt{t(1-t)}`.

    .. math::
        \dot\gamma(t) = \frac{s\,(1 - 2t)}{2\sqrt{t(1-t)}}, \qquad
        \gamma(t)\dot\gamma(t) = \frac{s^2 (1 - 2t)}{2}.

    :math:`\gamma` vanishes exactly at t = 0 and t = 1, is largest (:math:`s/2`) at
    t = 1/2; :math:`\dot\gamma` is finite on (0, 1) and :math:`\pm\infty` at the ends.
    It is the noise of a Brownian bridge with diffusion coefficient :math:`s` pinned at
    :math:`x_0` and :math:`x_1`.

    Args:
        scale: :math:`s > 0`.

    Attributes:
        t_range: ``(DEFAULT_EPS, 1 - DEFAULT_EPS)``, the default training time range.

    References:
        Albergo, Boffi, Vanden-Eijnden. Stochastic Interpolants: A Unifying Framework for
        Flows and Diffusions. 2023. https://arxiv.org/abs/2303.08797

    Example:
        >>> g = ScaledBrownianGamma(2.0)
        >>> g.gamma(torch.tensor([0.0, 0.5, 1.0]))
        tensor([0., 1., 0.])
        >>> g.gamma_gamma_dot(torch.tensor([0.0, 0.25, 1.0]))
        tensor([ 2.,  1., -2.])
    """

    scale: float = attrs.field(default=1.0, converter=float, validator=positive_float)

    t_range: ClassVar[Tuple[float, float]] = (DEFAULT_EPS, 1.0 - DEFAULT_EPS)
    is_zero: ClassVar[bool] = False

    def gamma(self, t: Tensor) -> Tensor:
        r""":math:`\gamma(t) = s\sqrt{t(1-t)}` (exactly 0 at t = 0 and t = 1)."""
        return self.scale * (t * (1.0 - t)).sqrt()

    def gamma_dot(self, t: Tensor) -> Tensor:
        r""":math:`\dot\gamma(t) = s(1-2t) / (2\sqrt{t(1-t)})` (:math:`\pm\infty` at the ends)."""
        return (0.5 * self.scale) * (1.0 - 2.0 * t) / (t * (1.0 - t)).sqrt()

    def gamma_gamma_dot(self, t: Tensor) -> Tensor:
        r""":math:`\gamma(t)\dot\gamma(t) = s^2(1-2t)/2`, bounded on [0, 1]."""
        return (0.5 * self.scale * self.scale) * (1.0 - 2.0 * t)


@attrs.frozen
class BrownianGamma(ScaledBrownianGamma):
    r"""Brownian-bridge noise :math:`\gamma(t) = \sqrt{t(1-t)}` (:class:`ScaledBrownianGamma`
    with scale 1).

    .. math::
        \dot\gamma(t) = \frac{1 - 2t}{2\sqrt{t(1-t)}}, \qquad
        \gamma(t)\dot\gamma(t) = \frac{1 - 2t}{2}.

    References:
        Albergo, Boffi, Vanden-Eijnden. Stochastic Interpolants: A Unifying Framework for
        Flows and Diffusions. 2023. https://arxiv.org/abs/2303.08797

    Example:
        >>> g = BrownianGamma()
        >>> g.gamma(torch.tensor(0.5)), g.gamma_dot(torch.tensor(0.5))
        (tensor(0.5000), tensor(0.))
    """

    scale: float = attrs.field(default=1.0, init=False)
