r"""The conditional flow-matching loss.

.. math::
    \mathcal L(\theta) = \mathbb E_{t, x_0, x_1}
    \big\lVert u_\theta(x_t, t \mid c) - u_t(x_t \mid x_0, x_1) \big\rVert^2,
    \qquad x_t = a(t)\,x_0 + s(t)\,x_1,\ u_t = \dot a(t)\,x_0 + \dot s(t)\,x_1,

with data :math:`x_0` (t = 0), noise :math:`x_1` (t = 1) and, by default, the linear path
:math:`a = 1 - t,\ s = t` (so :math:`u_t = x_1 - x_0`). The squared error is averaged over
the event elements.

References:
    Lipman, Chen, Ben-Hamu, Nickel, Le. Flow Matching for Generative Modeling. 2023.
    https://arxiv.org/abs/2210.02747
    Liu, Gong, Liu. Flow Straight and Fast: Rectified Flow. 2023. https://arxiv.org/abs/2209.03003
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from .errors import ShapeError
from .registry import resolve
from .shapes import expand_context, leading_shape, time_like
from .validation import one_of

__all__ = ["fm_loss", "reduce_loss"]

_check_reduction = one_of("mean", "sum", "none")


def reduce_loss(per_sample: Tensor, reduction: str) -> Tensor:
    """Apply ``reduction`` (``"mean"``, ``"sum"`` or ``"none"``) to per-sample losses."""
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


def _event_ndim(field: Any) -> int:
    n = getattr(field, "event_ndim", None)
    if not isinstance(n, int) or n < 0:
        raise TypeError(f"field must expose an integer attribute event_ndim >= 0, got {n!r}")
    return n


def fm_loss(
    field: Any,
    x_data: Tensor,
    x_noise: Tensor,
    t: Optional[Tensor | float] = None,
    c: Optional[Tensor] = None,
    *,
    path: Any = None,
    reduction: str = "mean",
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    r"""Conditional flow-matching loss of ``field`` on pairs ``(x_data, x_noise)``.

    Args:
        field: velocity field ``field(x, t, c)`` exposing ``event_ndim``.
        x_data: data samples :math:`x_0`, shape ``lead + event_shape``.
        x_noise: noise samples :math:`x_1`, same shape.
        t: times of shape ``lead`` (or broadcastable) in [0, 1]; ``None`` draws
            :math:`t \sim U[0, 1]`.
        c: context of shape ``lead + (k,)`` (or ``batch_shape + (k,)``, broadcast).
        path: a path component (``interpolate``, ``velocity``), its registry name (``"cosine"``)
            or ``None`` for the linear path.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (per-sample losses of shape ``lead``).
        generator: random generator for ``t``.

    Example:
        >>> from nami_core.fields import VelocityField
        >>> _ = torch.manual_seed(0)
        >>> field = VelocityField(2, hidden=(16,))
        >>> fm_loss(field, torch.randn(8, 2), torch.randn(8, 2), reduction="none").shape
        torch.Size([8])
    """
    _check_reduction(None, "reduction", reduction)
    event_ndim = _event_ndim(field)
    if x_data.shape != x_noise.shape:
        raise ShapeError(f"x_data and x_noise must have the same shape, got {tuple(x_data.shape)} and {tuple(x_noise.shape)}")
    lead = leading_shape(x_data, event_ndim)
    if t is None:
        t = torch.rand(lead, generator=generator, dtype=x_data.dtype, device=x_data.device)
    else:
        t = time_like(t, x_data, event_ndim)
    path = resolve("path", path)
    if path is None:
        tb = t.reshape(lead + (1,) * event_ndim)
        x_t = torch.lerp(x_data, x_noise, tb)
        target = x_noise - x_data
    else:
        x_t = path.interpolate(x_data, x_noise, t)
        target = path.velocity(x_data, x_noise, t)
    pred = field(x_t, t, expand_context(c, lead))
    if pred.shape != target.shape:
        raise ShapeError(f"field returned shape {tuple(pred.shape)}, expected {tuple(target.shape)}")
    dims = tuple(range(-event_ndim, 0))
    per_sample = (pred - target).square().mean(dim=dims) if dims else (pred - target).square()
    return reduce_loss(per_sample, reduction)
