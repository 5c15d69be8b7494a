r"""Base distributions: the standard normal and a diagonal normal.

Both are :class:`torch.distributions.Distribution` subclasses (``sample``, ``rsample``,
``log_prob``, ``event_shape``, ``batch_shape``), expose ``event_ndim`` and accept an
optional ``generator`` for reproducible draws. :meth:`to` returns a copy on another
dtype/device; :class:`~nami_core.process.FlowMatching` moves its base with the module
(``fm.double()``, ``fm.to("cuda")``).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from .errors import ShapeError
from .shapes import as_size, check_event_shape

__all__ = ["StandardNormal", "DiagonalNormal"]

_LOG_2PI = math.log(2.0 * math.pi)


class StandardNormal(Distribution):
    r"""Standard normal :math:`\mathcal N(0, I)` over events of shape ``event_shape``.

    .. math:: \log p(x) = -\tfrac12 \lVert x \rVert^2 - \tfrac{D}{2}\log 2\pi,
              \quad D = \prod \text{event\_shape}.

    Args:
        event_shape: shape of one event, e.g. ``(2,)`` or ``(1, 8, 8)``.
        dtype: dtype of samples (default float32).
        device: device of samples.

    Example:
        >>> base = StandardNormal((2,))
        >>> base.sample((3,)).shape
        torch.Size([3, 2])
        >>> float(base.log_prob(torch.zeros(2)))  # -log(2 pi)
        -1.8378770351409912
    """

    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 1)
    has_rsample = True

    def __init__(
        self,
        event_shape: int | Sequence[int],
        *,
        dtype: torch.dtype = torch.float32,
        device: Optional[torch.device | str] = None,
    ) -> None:
        shape = as_size(event_shape)
        if any(s < 1 for s in shape):
            raise ValueError(f"event_shape must contain positive sizes, got {tuple(shape)}")
        self._proto = torch.zeros((), dtype=dtype, device=device)
        super().__init__(batch_shape=torch.Size(), event_shape=shape, validate_args=False)

    @property
    def event_ndim(self) -> int:
        """Number of trailing dimensions of one event."""
        return len(self.event_shape)

    @property
    def dtype(self) -> torch.dtype:
        return self._proto.dtype

    @property
    def device(self) -> torch.device:
        return self._proto.device

    @property
    def mean(self) -> Tensor:
        return self._proto.new_zeros(self.event_shape)

    @property
    def variance(self) -> Tensor:
        return self._proto.new_ones(self.event_shape)

    def rsample(self, sample_shape: Sequence[int] = torch.Size(), *, generator: Optional[torch.Generator] = None) -> Tensor:
        shape = as_size(sample_shape) + self.event_shape
        return torch.randn(shape, dtype=self.dtype, device=self.device, generator=generator)

    def sample(self, sample_shape: Sequence[int] = torch.Size(), *, generator: Optional[torch.Generator] = None) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, generator=generator)

    def log_prob(self, value: Tensor) -> Tensor:
        check_event_shape(value, self.event_shape, "value")
        dims = tuple(range(-self.event_ndim, 0))
        d = self.event_shape.numel()
        return -0.5 * value.square().sum(dim=dims) - 0.5 * d * _LOG_2PI

    def entropy(self) -> Tensor:
        d = self.event_shape.numel()
        return self._proto.new_tensor(0.5 * d * (1.0 + _LOG_2PI))

    def to(self, *args: Any, **kwargs: Any) -> "StandardNormal":
        """Copy on another dtype and/or device (same arguments as ``Tensor.to``)."""
        return self._apply_tensors(lambda t: t.to(*args, **kwargs))

    def _apply_tensors(self, fn: Callable[[Tensor], Tensor]) -> "StandardNormal":
        proto = fn(self._proto)
        return StandardNormal(self.event_shape, dtype=proto.dtype, device=proto.device)

    def __repr__(self) -> str:
        return f"StandardNormal(event_shape={tuple(self.event_shape)}, dtype={self.dtype})"


class DiagonalNormal(Distribution):
    r"""Normal with diagonal covariance :math:`\mathcal N(\mu, \operatorname{diag}(s^2))`.

    ``loc`` and ``scale`` broadcast to one event; every dimension of ``loc`` is an event
    dimension (``event_shape = loc.shape``).

    .. math:: \log p(x) = \sum_i \Big[-\tfrac12 \big(\tfrac{x_i-\mu_i}{s_i}\big)^2
              - \log s_i - \tfrac12 \log 2\pi\Big]

    Example:
        >>> base = DiagonalNormal(torch.zeros(2), torch.full((2,), 2.0))
        >>> base.sample((5,)).shape
        torch.Size([5, 2])
    """

    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 1)
    has_rsample = True

    def __init__(self, loc: Tensor, scale: Tensor | float) -> None:
        loc = torch.as_tensor(loc)
        if not loc.is_floating_point():
            loc = loc.to(torch.get_default_dtype())
        scale = torch.as_tensor(scale, dtype=loc.dtype, device=loc.device)
        try:
            loc, scale = torch.broadcast_tensors(loc, scale)
        except RuntimeError as exc:
            raise ShapeError(f"loc {tuple(loc.shape)} and scale {tuple(scale.shape)} do not broadcast") from exc
        if loc.ndim == 0:
            raise ShapeError("loc must have at least one dimension (the event shape), got a scalar")
        if not bool(torch.isfinite(loc).all()):
            raise ValueError("loc must be finite")
        if not bool((scale > 0).all()) or not bool(torch.isfinite(scale).all()):
            raise ValueError("scale must be finite and > 0 everywhere")
        self.loc = loc.contiguous()
        self.scale = scale.contiguous()
        super().__init__(batch_shape=torch.Size(), event_shape=loc.shape, validate_args=False)

    @property
    def event_ndim(self) -> int:
        return len(self.event_shape)

    @property
    def dtype(self) -> torch.dtype:
        return self.loc.dtype

    @property
    def device(self) -> torch.device:
        return self.loc.device

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def variance(self) -> Tensor:
        return self.scale.square()

    def rsample(self, sample_shape: Sequence[int] = torch.Size(), *, generator: Optional[torch.Generator] = None) -> Tensor:
        shape = as_size(sample_shape) + self.event_shape
        eps = torch.randn(shape, dtype=self.dtype, device=self.device, generator=generator)
        return self.loc + self.scale * eps

    def sample(self, sample_shape: Sequence[int] = torch.Size(), *, generator: Optional[torch.Generator] = None) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, generator=generator)

    def log_prob(self, value: Tensor) -> Tensor:
        check_event_shape(value, self.event_shape, "value")
        dims = tuple(range(-self.event_ndim, 0))
        z = (value - self.loc) / self.scale
        return (-0.5 * z.square() - self.scale.log() - 0.5 * _LOG_2PI).sum(dim=dims)

    def entropy(self) -> Tensor:
        return (0.5 * (1.0 + _LOG_2PI) + self.scale.log()).sum()

    def to(self, *args: Any, **kwargs: Any) -> "DiagonalNormal":
        """Copy on another dtype and/or device (same arguments as ``Tensor.to``)."""
        return self._apply_tensors(lambda t: t.to(*args, **kwargs))

    def _apply_tensors(self, fn: Callable[[Tensor], Tensor]) -> "DiagonalNormal":
        return DiagonalNormal(fn(self.loc), fn(self.scale))

    def __repr__(self) -> str:
        return f"DiagonalNormal(event_shape={tuple(self.event_shape)}, dtype={self.dtype})"
