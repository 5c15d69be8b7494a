"""Shape helpers for the ``sample_shape + batch_shape + event_shape`` convention."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from .errors import ShapeError

__all__ = ["leading_shape", "check_event_shape", "time_like", "expand_context", "as_size"]


def as_size(shape: int | Sequence[int] | torch.Size | None) -> torch.Size:
    """Turn ``None``, an int or a sequence of ints into a ``torch.Size``."""
    if shape is None:
        return torch.Size()
    if isinstance(shape, int):
        return torch.Size((shape,))
    return torch.Size(tuple(int(s) for s in shape))


def leading_shape(x: Tensor, event_ndim: int) -> torch.Size:
    """``x.shape`` without its trailing ``event_ndim`` dimensions."""
    if x.ndim < event_ndim:
        raise ShapeError(f"x must have at least {event_ndim} dimensions (event_ndim), got shape {tuple(x.shape)}")
    return x.shape[: x.ndim - event_ndim]


def check_event_shape(x: Tensor, event_shape: torch.Size, name: str = "x") -> torch.Size:
    """Check that ``x`` ends with ``event_shape``; return its leading shape."""
    n = len(event_shape)
    if x.ndim < n or tuple(x.shape[x.ndim - n:]) != tuple(event_shape):
        raise ShapeError(
            f"{name} must have shape (..., {', '.join(map(str, event_shape))}) "
            f"(trailing event_shape {tuple(event_shape)}), got {tuple(x.shape)}"
        )
    return x.shape[: x.ndim - n]


def time_like(t: float | Tensor, x: Tensor, event_ndim: int) -> Tensor:
    """A time tensor with the leading shape of ``x`` and its dtype and device.

    Raises:
        ValueError: if a time lies outside ``[0, 1]``.
    """
    shape = leading_shape(x, event_ndim)
    if not torch.is_tensor(t):
        t = float(t)
        if not (0.0 <= t <= 1.0):
            raise ValueError(f"t must lie in [0, 1], got {t}")
        return torch.full(shape, t, dtype=x.dtype, device=x.device)
    if t.numel() and (bool((t < 0).any()) or bool((t > 1).any()) or bool(torch.isnan(t).any())):
        raise ValueError(
            f"t must lie in [0, 1], got values in [{float(t.min())}, {float(t.max())}]"
        )
    try:
        return t.to(dtype=x.dtype, device=x.device).expand(shape)
    except RuntimeError as exc:
        raise ShapeError(
            f"t of shape {tuple(t.shape)} does not broadcast to the leading shape {tuple(shape)} of x"
        ) from exc


def expand_context(c: Optional[Tensor], lead: torch.Size) -> Optional[Tensor]:
    """Broadcast a context ``batch_shape + (k,)`` to ``lead + (k,)`` (a view, no copy)."""
    if c is None:
        return None
    if c.shape[:-1] == lead:
        return c
    try:
        return c.expand(*lead, c.shape[-1])
    except RuntimeError as exc:
        raise ShapeError(
            f"context of shape {tuple(c.shape)} (batch_shape + (k,)) does not broadcast to "
            f"the leading shape {tuple(lead)} of x"
        ) from exc
