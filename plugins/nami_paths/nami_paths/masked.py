r"""Flow matching on variable-cardinality data: sets of objects padded to a fixed size.

An event is ``(N, F)``: up to ``N`` objects with ``F`` features each (more generally
``event_shape[:-1]`` object slots times a trailing feature axis). A **mask** of shape
``lead + event_shape[:-1]`` (bool, or 0/1 numbers; nonzero = real object) says which slots
hold real objects. The conventions:

* **Padded slots are exactly zero**: the noise is zeroed there, and when sampling the
  velocity is set to zero there inside the solver's right-hand side, so every solver step
  leaves them at 0 (and the result is zeroed once more, also against NaN from a field).
* **Padded slots contribute nothing to the loss**: the squared error is zeroed there and
  normalised by the number of real object-features (``sum(mask) * F``).
* **The mask reaches the field** as the keyword argument ``mask=`` (shape
  ``lead + event_shape[:-1]``, as given, e.g. bool) when the field's ``forward``/``__call__``
  accepts a ``mask`` parameter (or ``**kwargs``); ``field(x, t, c)`` otherwise. Set
  ``pass_mask=`` to force either. A set field (DeepSets, a transformer) uses it to ignore
  padded slots in its pooling/attention.

References:
    Zaheer, Kottur, Ravanbakhsh, Poczos, Salakhutdinov, Smola. Deep Sets. 2017.
    https://arxiv.org/abs/1703.06114
    Lipman, Chen, Ben-Hamu, Nickel, Le. Flow Matching for Generative Modeling. 2023.
    https://arxiv.org/abs/2210.02747
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from nami_core.errors import ShapeError
from nami_core.shapes import as_size, expand_context

from ._common import (
    accepts_keyword,
    bcast,
    check_pair,
    check_reduction,
    draw_times,
    event_ndim_of,
    given_times,
    resolve,
)

__all__ = ["masked_fm_loss", "masked_sample"]


def _keep(mask: Tensor, shape: torch.Size, name: str = "mask") -> Tensor:
    """Bool mask broadcast to ``shape[:-1]`` with a trailing singleton feature axis."""
    try:
        m = mask.expand(shape[:-1])
    except RuntimeError as exc:
        raise ShapeError(
            f"{name} of shape {tuple(mask.shape)} does not broadcast to {tuple(shape[:-1])} "
            f"(the data's shape {tuple(shape)} without its trailing feature axis)"
        ) from exc
    return (m if m.dtype == torch.bool else m != 0).unsqueeze(-1)


def _call(field: Any, pass_mask: bool, x: Tensor, t: Tensor, c: Optional[Tensor], mask: Tensor) -> Tensor:
    return field(x, t, c, mask=mask) if pass_mask else field(x, t, c)


def masked_fm_loss(
    field: Any,
    x_data: Tensor,
    x_noise: Tensor,
    mask: Tensor,
    t: Optional[Tensor | float] = None,
    c: Optional[Tensor] = None,
    *,
    path: Any = None,
    time_density: Any = None,
    reduction: str = "mean",
    generator: Optional[torch.Generator] = None,
    pass_mask: Optional[bool] = None,
) -> Tensor:
    r"""Flow-matching loss on padded sets: only real objects count.

    With :math:`m_{n} \in \{0, 1\}` the mask, :math:`x_1 \leftarrow m \odot x_1`,
    :math:`x_0 \leftarrow m \odot x_0`, and :math:`x_t`, :math:`u_t` from the path,

    .. math::
        \ell_i = \frac{\sum_{n, f} m_{i n}\,\big(u_\theta(x_t, t \mid c, m)_{i n f} - u_{t, i n f}\big)^2}
                      {F \sum_n m_{i n}},

    (0 for an empty set). ``reduction="none"`` returns :math:`\ell_i` (shape ``lead``),
    ``"sum"`` their sum, and ``"mean"`` the error per real object-feature over the whole
    batch, :math:`\sum_i F\,|m_i|\,\ell_i / \sum_i F\,|m_i|` (so larger sets weigh more; it
    is 0 when the batch has no real object). With an all-ones mask this is
    :func:`nami_core.losses.fm_loss` (same times for the same generator).

    Args:
        field: field ``field(x, t, c[, mask=...])`` with ``event_ndim >= 1``.
        x_data: data, shape ``lead + event_shape`` (padded slots may hold anything).
        x_noise: noise, same shape.
        mask: ``lead + event_shape[:-1]`` (or broadcastable), bool or 0/1.
        t: times (``lead``), ``None`` draws them from ``time_density`` (default uniform on [0, 1]).
        c: context ``lead + (k,)`` or broadcastable.
        path: path or registry name (``None``: linear).
        time_density: density of kind ``time_density`` for drawn times.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        generator: random generator for ``t``.
        pass_mask: hand ``mask=`` to the field (``None``: when its signature accepts it).

    References:
        Lipman, Chen, Ben-Hamu, Nickel, Le. Flow Matching for Generative Modeling. 2023.
        https://arxiv.org/abs/2210.02747

    Example:
        >>> field = lambda x, t, c=None, mask=None: torch.zeros_like(x)
        >>> field.event_ndim = 2
        >>> x0, x1 = torch.ones(2, 3, 2), torch.zeros(2, 3, 2)
        >>> mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
        >>> masked_fm_loss(field, x0, x1, mask, t=0.5, reduction="none")
        tensor([1., 0.])
    """
    check_reduction(reduction)
    event_ndim = event_ndim_of(field)
    if event_ndim < 1:
        raise ShapeError("masked_fm_loss needs a field with event_ndim >= 1 (objects x features)")
    lead = check_pair(x_data, x_noise, event_ndim)
    mask = mask.to(x_data.device)
    keep = _keep(mask, x_data.shape)
    if pass_mask is None:
        pass_mask = accepts_keyword(field, "mask")
    if t is None:
        t = draw_times(lead, x_data, (0.0, 1.0), resolve("time_density", time_density), generator)
    else:
        t = given_times(t, x_data, event_ndim)
    zero = x_data.new_zeros(())
    x_data = torch.where(keep, x_data, zero)
    x_noise = torch.where(keep, x_noise, zero)
    path = resolve("path", path)
    if path is None:
        x_t = torch.lerp(x_data, x_noise, bcast(t, x_data))
        target = x_noise - x_data
    else:
        x_t = path.interpolate(x_data, x_noise, t)
        target = path.velocity(x_data, x_noise, t)
    pred = _call(field, pass_mask, x_t, t, expand_context(c, lead), mask.expand(keep.shape[:-1]))
    if pred.shape != target.shape:
        raise ShapeError(f"field returned shape {tuple(pred.shape)}, expected {tuple(target.shape)}")
    dims = tuple(range(-event_ndim, 0))
    err = torch.where(keep, (pred - target).square(), zero).sum(dim=dims)
    count = keep.expand(x_data.shape).sum(dim=dims).to(err.dtype)
    if reduction == "mean":
        return err.sum() / count.sum().clamp_min(1.0)
    per_sample = err / count.clamp_min(1.0)
    return per_sample.sum() if reduction == "sum" else per_sample


def masked_sample(
    model: Any,
    mask: Tensor,
    sample_shape: Optional[Sequence[int]] = None,
    *,
    c: Optional[Tensor] = None,
    solver: Any = None,
    generator: Optional[torch.Generator] = None,
    pass_mask: Optional[bool] = None,
) -> Tensor:
    r"""Sample padded sets from a flow-matching model, keeping padded slots exactly zero.

    Draws :math:`x_1` from the model's base, zeroes the padded slots, and integrates
    :math:`\dot x = m \odot u_\theta(x, t \mid c, m)` from t = 1 to t = 0 (no autograd), so
    padded slots never move from 0 under any explicit solver.

    Args:
        model: a :class:`~nami_core.process.FlowMatching` configuration (bound here with
            ``c``) or an already bound :class:`~nami_core.process.FlowMatchingProcess`.
        mask: ``lead + event_shape[:-1]``, bool or 0/1: which object slots are real. Its
            leading shape is ``sample_shape + batch_shape``; with ``sample_shape`` given,
            the mask is broadcast to ``sample_shape + batch_shape + event_shape[:-1]``.
        sample_shape: number of draws (``None``: read from the mask).
        c: context ``batch_shape + (k,)`` when ``model`` is a configuration.
        solver: ODE solver overriding the model's (instance or registry name).
        generator: random generator for the noise.
        pass_mask: hand ``mask=`` to the field (``None``: when its signature accepts it).

    Returns:
        Samples of shape ``sample_shape + batch_shape + event_shape``, zero at padded slots.

    Example:
        >>> import nami
        >>> class Field(torch.nn.Module):
        ...     event_ndim = 2
        ...     def forward(self, x, t, c=None, mask=None):
        ...         return -x
        >>> fm = nami.FlowMatching(Field(), nami.StandardNormal((3, 2)), nami.build("solver", "euler", steps=4))
        >>> mask = torch.tensor([[True, True, False], [True, False, False]])
        >>> x = masked_sample(fm, mask, generator=torch.Generator().manual_seed(0))
        >>> x.shape, bool((x[0, 2] == 0).all() and (x[1, 1:] == 0).all())
        (torch.Size([2, 3, 2]), True)
    """
    process = model if hasattr(model, "batch_shape") and hasattr(model, "context") else model(c)
    if c is not None and process is model:
        raise ValueError("c is only used with a FlowMatching configuration; this process is already bound")
    field, base = process.field, process.base
    solver = process.solver if solver is None else resolve("solver", solver)
    event_shape = torch.Size(process.event_shape)
    event_ndim = len(event_shape)
    if event_ndim < 1:
        raise ShapeError("masked_sample needs events with a trailing feature axis (event_ndim >= 1)")
    obj_shape = event_shape[:-1]
    n_obj = len(obj_shape)
    if mask.ndim < n_obj or tuple(mask.shape[mask.ndim - n_obj:]) != tuple(obj_shape):
        raise ShapeError(
            f"mask must have shape (..., {', '.join(map(str, obj_shape))}) (event_shape {tuple(event_shape)} "
            f"without its feature axis), got {tuple(mask.shape)}"
        )
    batch_shape = torch.Size(process.batch_shape)
    if sample_shape is None:
        lead = mask.shape[: mask.ndim - n_obj]
        nb = len(batch_shape)
        tail = lead[len(lead) - nb:] if len(lead) >= nb else None
        if nb and (tail is None or any(a not in (1, b) for a, b in zip(tail, batch_shape))):
            raise ShapeError(f"mask's leading shape {tuple(lead)} must end with batch_shape {tuple(batch_shape)}")
        lead = lead[: len(lead) - nb] + batch_shape if nb else lead
    else:
        lead = as_size(sample_shape) + batch_shape
    shape = lead + event_shape
    _keep(mask, shape)  # shape check before any work
    if pass_mask is None:
        pass_mask = accepts_keyword(field, "mask")
    context = process.context
    c_lead = None if context is None else expand_context(context, lead)

    with torch.no_grad():
        z = base.sample(lead, generator=generator)
        mask_b = mask.to(z.device).expand(shape[:-1])
        drop = ~_keep(mask_b, shape)

        def rhs(x: Tensor, t: Tensor) -> Tensor:
            return _call(field, pass_mask, x, t, c_lead, mask_b).masked_fill(drop, 0.0)

        z = z.masked_fill(drop, 0.0)
        y = solver.integrate(rhs, z, 1.0, 0.0, time_shape=tuple(lead)).y
        return y.masked_fill(drop, 0.0)
