r"""Closed-form test problems of the conformance kit (float64 ground truth).

Each :class:`Problem` is an initial-value problem :math:`\dot y = f(y, t)`, :math:`y(t_0) = y_0`,
whose exact solution at :math:`t_1` is known, so a solver's error is measured, not guessed:

- ``linear``: :math:`\dot y = A y` with a non-normal :math:`A`, solved by the matrix exponential
  :math:`y(t) = e^{(t - t_0) A} y_0`; integrated forwards (0 -> 1).
- ``gaussian_flow``: the marginal velocity of Gaussian data :math:`\mathcal N(\mu, \sigma_d^2 I)`
  under the linear path (``shared/GROUND_TRUTH.md``), non-autonomous, with the exact flow map
  :math:`x_t - m(t) = (x_s - m(s))\sqrt{v(t)/v(s)}`; integrated backwards (0.9 -> 0.1), the
  sampling direction, away from the ends.
- ``rotation``: the nonlinear system :math:`\dot x = -r^2 y,\ \dot y = r^2 x` with
  :math:`r^2 = x^2 + y^2` conserved, so the exact solution is a rotation by :math:`r^2 (t_1 - t_0)`;
  it exercises the elementary differentials that linear problems cannot.
"""

from __future__ import annotations

import math
from typing import Callable, Tuple

import attrs
import torch
from torch import Tensor

from nami_core.testing.gaussian import GaussianFlowField, gaussian_flow_map

__all__ = ["Problem", "linear_problem", "gaussian_flow_problem", "rotation_problem", "PROBLEMS"]


@attrs.frozen
class Problem:
    """An initial-value problem with its exact solution.

    Attributes:
        name: short label used in reports.
        fn: right-hand side ``fn(y, t)``.
        y0: initial state (float64 unless built otherwise).
        t0, t1: start and end times.
        exact: exact state at ``t1``.
        time_shape: leading shape of the state (the shape of ``t``).
    """

    name: str
    fn: Callable[[Tensor, Tensor], Tensor]
    y0: Tensor
    t0: float
    t1: float
    exact: Tensor
    time_shape: Tuple[int, ...] = ()


def _rand(*shape: int, seed: int, dtype: torch.dtype, device: torch.device | str) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)


def linear_problem(dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> Problem:
    """``y' = A y`` with ``A = [[-1, 3], [0, -2]]`` (non-normal), ``y0 = (1, -0.5)``, 0 -> 1."""
    a = torch.tensor([[-1.0, 3.0], [0.0, -2.0]], dtype=torch.float64)
    y0 = torch.tensor([1.0, -0.5], dtype=torch.float64)
    exact = y0 @ torch.linalg.matrix_exp(a).T
    a_t = a.T.to(dtype=dtype, device=device)
    return Problem("linear", lambda y, t: y @ a_t, y0.to(dtype=dtype, device=device), 0.0, 1.0,
                   exact.to(dtype=dtype, device=device))


def gaussian_flow_problem(
    dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu", *, t0: float = 0.9, t1: float = 0.1
) -> Problem:
    """Exact flow-matching velocity of N(mu, 0.25 I) data (linear path) on a batch of 8 points in 3-D."""
    field = GaussianFlowField(torch.tensor([0.7, -1.2, 0.3], dtype=torch.float64), 0.5)
    x = _rand(8, 3, seed=0, dtype=torch.float64, device="cpu")
    exact = gaussian_flow_map(field, x, t0, t1)
    field = field.to(dtype=dtype, device=device)
    return Problem("gaussian_flow", lambda y, t: field(y, t), x.to(dtype=dtype, device=device), t0, t1,
                   exact.to(dtype=dtype, device=device), (8,))


def rotation_problem(dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> Problem:
    """The nonlinear rotation ``(x, y)' = r^2 (-y, x)`` on a batch of 6 points, 0 -> 1.5."""
    angle = torch.linspace(0.0, 5.0, 6, dtype=torch.float64)
    radius = torch.linspace(0.7, 1.2, 6, dtype=torch.float64)
    p0 = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=-1)
    t1 = 1.5
    turned = angle + radius**2 * t1
    exact = torch.stack([radius * turned.cos(), radius * turned.sin()], dim=-1)

    def fn(p: Tensor, t: Tensor) -> Tensor:
        r2 = (p * p).sum(-1, keepdim=True)
        return r2 * torch.stack([-p[..., 1], p[..., 0]], dim=-1)

    return Problem("rotation", fn, p0.to(dtype=dtype, device=device), 0.0, t1,
                   exact.to(dtype=dtype, device=device), (6,))


#: The problems a convergence check runs, by name.
PROBLEMS = {"linear": linear_problem, "gaussian_flow": gaussian_flow_problem, "rotation": rotation_problem}


def relative_error(y: Tensor, exact: Tensor) -> float:
    """Max-norm error relative to ``max(1, max |exact|)``."""
    scale = max(1.0, exact.abs().max().item())
    return (y - exact).abs().max().item() / scale


def measured_order(errors: list[tuple[int, float]], floor: float) -> tuple[float, int, int]:
    """Order from the finest pair ``(N, 2N)`` whose errors both lie above ``floor``.

    Returns ``(order, N, 2N)``; ``order`` is ``nan`` if no pair qualifies.
    """
    best = (math.nan, 0, 0)
    for (n_a, e_a), (n_b, e_b) in zip(errors, errors[1:]):
        if e_a > floor and e_b > floor and n_b == 2 * n_a:
            best = (math.log2(e_a / e_b), n_a, n_b)
    return best
