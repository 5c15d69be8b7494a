r"""Conversions between the predictions a diffusion model can make.

With :math:`x_t = \alpha x_0 + \sigma\varepsilon` (schedule coefficients at time t) a model predicts
one of

========== ================================================================ ===============================
name       quantity                                                         in terms of (x0, ε)
========== ================================================================ ===============================
``eps``    noise :math:`\hat\varepsilon = E[\varepsilon \mid x_t]`            :math:`\varepsilon`
``x0``     data :math:`\hat x_0 = E[x_0 \mid x_t]`                           :math:`x_0`
``score``  :math:`\nabla_x \log p_t(x_t)`                                   :math:`-\varepsilon/\sigma`
``v``      :math:`v = \alpha\varepsilon - \sigma x_0` (Salimans & Ho 2022)   :math:`\alpha\varepsilon - \sigma x_0`
``velocity`` probability-flow velocity :math:`u = dx_t/dt`                   :math:`\dot\alpha x_0 + \dot\sigma\varepsilon`
========== ================================================================ ===============================

The score identity is Tweedie's formula: :math:`\nabla\log p_t(x) = -E[\varepsilon\mid x_t=x]/\sigma`.
The velocity is the marginal velocity of the path, :math:`u = E[\dot\alpha x_0 + \dot\sigma\varepsilon
\mid x_t]`, equal to the probability-flow drift :math:`f - \tfrac12 g^2\nabla\log p_t` of
:mod:`~nami_diffusion.schedules`. Every prediction is an affine function of the pair
:math:`(\hat x_0, \hat\varepsilon)`, and with :math:`x = \alpha\hat x_0 + \sigma\hat\varepsilon` the pair
is recovered from any one of them:

.. math::
    \text{eps:}\ \hat x_0 = (x - \sigma\hat\varepsilon)/\alpha \qquad
    \text{x0:}\ \hat\varepsilon = (x - \alpha\hat x_0)/\sigma \qquad
    \text{score } s:\ \hat\varepsilon = -\sigma s,\ \hat x_0 = (x + \sigma^2 s)/\alpha

    \text{v:}\ \hat x_0 = \frac{\alpha x - \sigma v}{\alpha^2 + \sigma^2},\ 
               \hat\varepsilon = \frac{\sigma x + \alpha v}{\alpha^2 + \sigma^2} \qquad
    \text{velocity } u:\ \hat x_0 = \frac{\dot\sigma x - \sigma u}{\alpha\dot\sigma - \sigma\dot\alpha},\ 
               \hat\varepsilon = \frac{\alpha u - \dot\alpha x}{\alpha\dot\sigma - \sigma\dot\alpha}

(:math:`\alpha\dot\sigma - \sigma\dot\alpha = -\tfrac12\alpha\sigma\dot\lambda > 0`).

Singular points: a division by :math:`\sigma` (``x0 -> eps``, ``eps -> score``) is singular where
:math:`\sigma = 0` (VP at t = 0); :math:`\dot\sigma` is infinite there for VP, so ``velocity`` is too.
These conversions are evaluated only where regular: :class:`~nami_diffusion.Diffusion` integrates to
``t_end`` with :math:`\sigma(t_\text{end}) > 0` and lands on the data with a denoising step.
Divisions by :math:`\alpha` are regular for every schedule here (:math:`\alpha > 0` on [0, 1]).

All coefficients are computed in float32 or better; results have the promoted dtype of the inputs.

References:
    Ho, Jain, Abbeel. Denoising Diffusion Probabilistic Models. 2020. https://arxiv.org/abs/2006.11239
    Salimans, Ho. Progressive Distillation for Fast Sampling of Diffusion Models. 2022.
    https://arxiv.org/abs/2202.00512
    Efron. Tweedie's Formula and Selection Bias. 2011.
"""

from __future__ import annotations

from typing import Any, Tuple

import torch
from torch import Tensor

from .schedules import broadcast_to_state, collapse_time, compute_time

__all__ = ["PARAMETERIZATIONS", "check_parameterization", "to_x0_eps", "from_x0_eps", "convert"]

#: Names of the predictions a model can make.
PARAMETERIZATIONS: Tuple[str, ...] = ("eps", "x0", "score", "v", "velocity")


def check_parameterization(name: str, what: str = "parameterization") -> str:
    """Validate a parameterisation name (one of :data:`PARAMETERIZATIONS`)."""
    if name not in PARAMETERIZATIONS:
        raise ValueError(f"{what} must be one of {list(PARAMETERIZATIONS)}, got {name!r}")
    return name


def _coefs(schedule: Any, t: Tensor, x: Tensor, velocity: bool = False) -> Tuple[Tensor, ...]:
    tc = compute_time(collapse_time(t))
    out = [schedule.alpha(tc), schedule.sigma(tc)]
    if velocity:
        out += [schedule.d_alpha(tc), schedule.d_sigma(tc)]
    return tuple(broadcast_to_state(c, x) for c in out)


def to_x0_eps(pred: Tensor, x: Tensor, t: Tensor, schedule: Any, parameterization: str) -> Tuple[Tensor, Tensor]:
    r"""The pair :math:`(\hat x_0, \hat\varepsilon)` from a prediction of kind ``parameterization``.

    Args:
        pred: the model output, shaped like ``x``.
        x: the noisy state :math:`x_t`, shape ``lead + event_shape``.
        t: times of shape ``lead`` (the time rule).
        schedule: the noise schedule.
        parameterization: one of :data:`PARAMETERIZATIONS`.

    Returns:
        ``(x0, eps)`` in the promoted dtype of ``pred`` and ``x``.

    Example:
        >>> import torch
        >>> from nami_diffusion.schedules import VPSchedule
        >>> s, t = VPSchedule(), torch.tensor([0.5], dtype=torch.float64)
        >>> x0, eps = torch.randn(1, 3, dtype=torch.float64), torch.randn(1, 3, dtype=torch.float64)
        >>> x = s.marginal(x0, eps, t)
        >>> v = from_x0_eps(x0, eps, x, t, s, "v")
        >>> all(torch.allclose(a, b) for a, b in zip(to_x0_eps(v, x, t, s, "v"), (x0, eps)))
        True
    """
    dtype = _dtype(pred, x)
    if parameterization == "velocity":
        a, s, da, ds = _coefs(schedule, t, x, velocity=True)
        det = a * ds - s * da
        x0 = (ds * x - s * pred) / det
        eps = (a * pred - da * x) / det
    else:
        a, s = _coefs(schedule, t, x)
        if parameterization == "eps":
            eps = pred
            x0 = (x - s * pred) / a
        elif parameterization == "x0":
            x0 = pred
            eps = (x - a * pred) / s
        elif parameterization == "score":
            eps = -s * pred
            x0 = (x + s * s * pred) / a
        elif parameterization == "v":
            n = a * a + s * s
            x0 = (a * x - s * pred) / n
            eps = (s * x + a * pred) / n
        else:
            check_parameterization(parameterization)
            raise AssertionError  # pragma: no cover
    return x0.to(dtype), eps.to(dtype)


def from_x0_eps(x0: Tensor, eps: Tensor, x: Tensor, t: Tensor, schedule: Any, target: str) -> Tensor:
    r"""The prediction of kind ``target`` from the pair :math:`(\hat x_0, \hat\varepsilon)`.

    Args:
        x0: data prediction.
        eps: noise prediction.
        x: the noisy state (used for its shape only; the pair determines everything).
        t: times of shape ``lead``.
        schedule: the noise schedule.
        target: one of :data:`PARAMETERIZATIONS`.
    """
    dtype = _dtype(x0, eps)
    if target == "eps":
        return eps
    if target == "x0":
        return x0
    if target == "velocity":
        _, _, da, ds = _coefs(schedule, t, x, velocity=True)
        return (da * x0 + ds * eps).to(dtype)
    a, s = _coefs(schedule, t, x)
    if target == "score":
        return (-eps / s).to(dtype)
    if target == "v":
        return (a * eps - s * x0).to(dtype)
    check_parameterization(target, "target")
    raise AssertionError  # pragma: no cover


def convert(pred: Tensor, x: Tensor, t: Tensor, schedule: Any, *, source: str, target: str) -> Tensor:
    """Convert a prediction of kind ``source`` into kind ``target`` (see the module table).

    Example:
        >>> import torch
        >>> from nami_diffusion.schedules import VESchedule
        >>> s = VESchedule()
        >>> x, t = torch.zeros(2, 1), torch.full((2,), 0.5)
        >>> eps = torch.ones(2, 1)
        >>> convert(eps, x, t, s, source="eps", target="score")  # -eps / sigma, sigma(0.5) = 0.7071
        tensor([[-1.4142],
                [-1.4142]])
    """
    check_parameterization(source, "source")
    check_parameterization(target, "target")
    if source == target:
        return pred
    if source == "eps" and target == "score":  # the common direct case, one division
        _, s = _coefs(schedule, t, x)
        return (-pred / s).to(_dtype(pred, x))
    x0, eps = to_x0_eps(pred, x, t, schedule, source)
    return from_x0_eps(x0, eps, x, t, schedule, target)


def _dtype(a: Tensor, b: Tensor) -> torch.dtype:
    return torch.promote_types(a.dtype, b.dtype)
