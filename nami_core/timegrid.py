r"""Time grids for fixed-step solvers, built once per solve.

A grid of ``steps`` intervals from ``t0`` to ``t1`` has ``steps + 1`` points; the first and
last points are exactly ``t0`` and ``t1`` (no round-off at the endpoints), in either
direction.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

__all__ = ["uniform_grid", "check_steps"]


def check_steps(steps: int, name: str = "steps") -> int:
    """Validate an integer step count (>= 1)."""
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"{name} must be an int >= 1, got {steps!r}")
    if steps < 1:
        raise ValueError(f"{name} must be >= 1, got {steps}")
    return steps


def uniform_grid(
    t0: float,
    t1: float,
    steps: int,
    *,
    dtype: torch.dtype = torch.float64,
    device: Optional[torch.device | str] = None,
) -> Tensor:
    r"""Uniform grid :math:`t_k = t_0 + (t_1 - t_0) k / N`, :math:`k = 0..N`.

    Computed in float64 and cast once; endpoints are set exactly.

    Example:
        >>> uniform_grid(1.0, 0.0, 4)
        tensor([1.0000, 0.7500, 0.5000, 0.2500, 0.0000], dtype=torch.float64)
    """
    check_steps(steps)
    k = torch.arange(steps + 1, dtype=torch.float64)
    grid = t0 + (t1 - t0) * (k / steps)
    grid[0] = t0
    grid[-1] = t1
    return grid.to(dtype=dtype, device=device)
