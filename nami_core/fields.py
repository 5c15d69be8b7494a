r"""A reference MLP velocity field.

:class:`VelocityField` maps :math:`(x, t, c) \mapsto u_\theta(x, t \mid c)` for vector events
(``event_ndim = 1``). Time enters through sinusoidal features
:math:`[\sin(2\pi f_k t), \cos(2\pi f_k t)]_k` concatenated with ``t`` itself, which lets a
small network represent the sharp time dependence of flow-matching fields near t = 0.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .errors import ShapeError

__all__ = ["VelocityField"]

_ACTIVATIONS = {"silu": nn.SiLU, "gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}


class VelocityField(nn.Module):
    r"""MLP velocity field for events of shape ``(dim,)``, optionally conditional.

    Args:
        dim: event size.
        hidden: widths of the hidden layers.
        context_dim: size of the context vector (0 = unconditional).
        time_features: number of sinusoidal frequencies for t (0 = raw t only).
        activation: one of ``silu``, ``gelu``, ``relu``, ``tanh``, ``elu``.

    Call ``field(x, t, c=None)`` with ``x`` of shape ``lead + (dim,)``, ``t`` of shape ``lead``
    (or broadcastable to it) and ``c`` of shape ``lead + (context_dim,)``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> field = VelocityField(2, hidden=(32, 32), context_dim=3)
        >>> field(torch.randn(5, 2), torch.rand(5), torch.randn(5, 3)).shape
        torch.Size([5, 2])
    """

    event_ndim = 1

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (128, 128, 128),
        *,
        context_dim: int = 0,
        time_features: int = 8,
        activation: str = "silu",
    ) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be an int >= 1, got {dim!r}")
        if isinstance(context_dim, bool) or not isinstance(context_dim, int) or context_dim < 0:
            raise ValueError(f"context_dim must be an int >= 0, got {context_dim!r}")
        if not isinstance(time_features, int) or time_features < 0:
            raise ValueError(f"time_features must be an int >= 0, got {time_features!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        hidden = tuple(int(h) for h in hidden)
        if not hidden or any(h < 1 for h in hidden):
            raise ValueError(f"hidden must be a non-empty sequence of positive widths, got {hidden}")
        self.dim = dim
        self.context_dim = context_dim
        self.hidden = hidden
        self.time_features = time_features
        self.activation = activation
        self.register_buffer("freqs", 2.0 * math.pi * torch.arange(1, time_features + 1, dtype=torch.float32))
        widths = (dim + 1 + 2 * time_features + context_dim, *hidden)
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), _ACTIVATIONS[activation]()]
        layers.append(nn.Linear(widths[-1], dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, t: Tensor, c: Optional[Tensor] = None) -> Tensor:
        if x.shape[-1] != self.dim:
            raise ShapeError(f"x must have shape (..., {self.dim}), got {tuple(x.shape)}")
        lead = x.shape[:-1]
        t = t.expand(lead).unsqueeze(-1) if t.shape != lead else t.unsqueeze(-1)
        feats = [x, t]
        if self.time_features:
            ft = t * self.freqs
            feats += [ft.sin(), ft.cos()]
        if self.context_dim:
            if c is None:
                raise ShapeError(f"this field is conditional (context_dim={self.context_dim}); pass c")
            if c.shape[-1] != self.context_dim:
                raise ShapeError(f"c must have shape (..., {self.context_dim}), got {tuple(c.shape)}")
            feats.append(c.expand(*lead, self.context_dim) if c.shape[:-1] != lead else c)
        elif c is not None:
            raise ShapeError("this field is unconditional (context_dim=0) but a context c was given")
        return self.net(torch.cat(feats, dim=-1))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, context_dim={self.context_dim}, time_features={self.time_features}"
