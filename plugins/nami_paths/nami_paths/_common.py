"""Helpers shared by the losses of nami-paths (not public API)."""

from __future__ import annotations

import inspect
import math
from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from nami_core.errors import ShapeError
from nami_core.shapes import leading_shape, time_like
from nami_core.validation import one_of

_check_reduction = one_of("mean", "sum", "none")


def bcast(t: Tensor, x: Tensor) -> Tensor:
    """Append singleton event dims to ``t`` (leading shape) so it broadcasts against ``x``."""
    return t.reshape(t.shape + (1,) * (x.ndim - t.ndim))


def check_reduction(reduction: str) -> None:
    _check_reduction(None, "reduction", reduction)


def event_ndim_of(field: Any, name: str = "field") -> int:
    n = getattr(field, "event_ndim", None)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise TypeError(f"{name} must expose an integer attribute event_ndim >= 0, got {n!r}")
    return n


def check_pair(x_data: Tensor, x_noise: Tensor, event_ndim: int) -> torch.Size:
    """Check that data and noise have one shape; return their leading shape."""
    if x_data.shape != x_noise.shape:
        raise ShapeError(
            f"x_data and x_noise must have the same shape, got {tuple(x_data.shape)} and {tuple(x_noise.shape)}"
        )
    return leading_shape(x_data, event_ndim)


def resolve(kind: str, obj: Any) -> Any:
    """A component given as an instance, or a registry name built with default parameters."""
    if isinstance(obj, str):
        from nami_core.registry import build

        return build(kind, obj)
    return obj


def check_t_range(t_range: Any) -> Tuple[float, float]:
    try:
        lo, hi = (float(v) for v in t_range)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"t_range must be a pair (low, high), got {t_range!r}") from exc
    if not (0.0 <= lo < hi <= 1.0) or not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"t_range must satisfy 0 <= low < high <= 1, got {t_range!r}")
    return lo, hi


def draw_times(
    lead: torch.Size,
    like: Tensor,
    t_range: Tuple[float, float],
    time_density: Any,
    generator: Optional[torch.Generator],
) -> Tensor:
    r"""Times of shape ``lead`` on ``like``'s dtype/device: :math:`t = lo + (hi - lo)\,u` with
    :math:`u \sim` ``time_density`` (uniform by default). For ``t_range == (0, 1)`` and the
    uniform density this is exactly ``torch.rand(lead, generator=generator)`` (as ``fm_loss``)."""
    if time_density is None:
        u = torch.rand(lead, generator=generator, dtype=like.dtype, device=like.device)
    else:
        u = time_density.sample(lead, generator=generator, dtype=like.dtype, device=like.device)
    lo, hi = t_range
    if lo == 0.0 and hi == 1.0:
        return u
    return lo + (hi - lo) * u


def given_times(t: Any, x: Tensor, event_ndim: int) -> Tensor:
    """A user-given time (float or tensor) checked and broadcast to the leading shape of ``x``."""
    return time_like(t, x, event_ndim)


def accepts_keyword(fn: Any, name: str) -> bool:
    """Whether calling ``fn`` accepts the keyword argument ``name`` (or ``**kwargs``)."""
    target = getattr(fn, "forward", None) if isinstance(fn, torch.nn.Module) else fn
    if target is None:
        target = fn
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        (p.name == name and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)) or p.kind == p.VAR_KEYWORD
        for p in params
    )


def per_sample_mse(pred: Tensor, target: Tensor, event_ndim: int) -> Tensor:
    """Mean squared error over the event dims (as ``nami_core.losses.fm_loss``)."""
    if pred.shape != target.shape:
        raise ShapeError(f"field returned shape {tuple(pred.shape)}, expected {tuple(target.shape)}")
    dims = tuple(range(-event_ndim, 0))
    return (pred - target).square().mean(dim=dims) if dims else (pred - target).square()
