r"""Toy 2-D data sets (kind ``dataset``): checkerboard, Gaussian ring, two spirals, Gaussian mixture.

Each is a frozen attrs configuration with ``sample(n, *, generator=None) -> Tensor`` of
shape ``(n,) + event_shape`` (float32), ``event_shape`` and ``dim``. Every random number
comes from ``generator`` (the global RNG when ``None``), so a seeded generator reproduces
a draw bitwise. The mixtures also give their exact ``log_prob``. (Two moons is a core
data set, ``"two_moons"``.)

References:
    Grathwohl, Chen, Bettencourt, Sutskever, Duvenaud. FFJORD: Free-form Continuous
    Dynamics for Scalable Reversible Generative Models. 2019. https://arxiv.org/abs/1810.01367
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import attrs
import torch
from torch import Tensor

from nami_core.validation import non_negative_float, positive_float, positive_int

__all__ = ["Checkerboard", "GaussianMixture", "GaussianRing", "TwoSpirals"]

_TWO = torch.Size((2,))


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    return n


def _even_cells(instance: Any, attribute: Any, value: int) -> None:
    positive_int(instance, attribute, value)
    if value % 2:
        raise ValueError(f"cells must be even, got {value}")


@attrs.frozen(kw_only=True)
class Checkerboard:
    r"""Uniform density on the dark squares of a ``cells`` × ``cells`` board on
    :math:`[-L, L]^2`.

    Square :math:`(i, j)` (column :math:`i`, row :math:`j`) is dark when :math:`i + j` is
    even; each of the :math:`\text{cells}^2/2` dark squares is equally likely. Each
    coordinate is marginally :math:`U[-L, L]` (mean 0, variance :math:`L^2/3`).

    Args:
        cells: squares per side (even, default 4).
        half_width: :math:`L > 0` (default 2).

    Example:
        >>> Checkerboard().sample(3, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([3, 2])
    """

    cells: int = attrs.field(default=4, validator=_even_cells)
    half_width: float = attrs.field(default=2.0, converter=float, validator=positive_float)

    event_shape = _TWO
    dim = 2

    def sample(self, n: int, *, generator: Optional[torch.Generator] = None) -> Tensor:
        """``n`` points, shape ``(n, 2)``."""
        n = _check_n(n)
        i = torch.randint(0, self.cells, (n,), generator=generator)
        j = 2 * torch.randint(0, self.cells // 2, (n,), generator=generator) + i % 2
        u = torch.rand(n, 2, generator=generator)
        cell = torch.stack([i, j], dim=-1).to(torch.float32)
        return (cell + u) * (2.0 * self.half_width / self.cells) - self.half_width


def _means(value: Any) -> Tuple[Tuple[float, ...], ...]:
    means = tuple(tuple(float(v) for v in row) for row in (value.tolist() if torch.is_tensor(value) else value))
    if not means or not means[0] or any(len(m) != len(means[0]) for m in means):
        raise ValueError(f"means must be a non-empty (K, d) array of equal-length rows, got {value!r}")
    if not all(math.isfinite(v) for m in means for v in m):
        raise ValueError("means must be finite")
    return means


def _floats(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return tuple(float(v) for v in (value.tolist() if torch.is_tensor(value) else value))


@attrs.frozen(kw_only=True)
class GaussianMixture:
    r"""Isotropic Gaussian mixture :math:`p(x) = \sum_k w_k\, \mathcal N(x; \mu_k, \sigma_k^2 I)`.

    Exact moments: :math:`\mathbb E[x] = \sum_k w_k \mu_k`,
    :math:`\mathbb E[x x^\top] = \sum_k w_k (\sigma_k^2 I + \mu_k\mu_k^\top)`.

    Args:
        means: :math:`K \times d` component means (default: three 2-D modes).
        std: :math:`\sigma` shared by all components, or one per component (> 0).
        weights: :math:`K` non-negative weights (normalised), default equal.

    Example:
        >>> gm = GaussianMixture(means=((-2.0, 0.0), (2.0, 0.0)), std=0.5)
        >>> gm.sample(4, generator=torch.Generator().manual_seed(0)).shape, gm.event_shape
        (torch.Size([4, 2]), torch.Size([2]))
        >>> gm.mean()
        tensor([0., 0.])
    """

    means: Tuple[Tuple[float, ...], ...] = attrs.field(
        default=((-2.0, -1.0), (2.0, -1.0), (0.0, 2.0)), converter=_means
    )
    std: Any = attrs.field(default=0.4, converter=_floats)
    weights: Optional[Tuple[float, ...]] = attrs.field(default=None, converter=_floats)

    def __attrs_post_init__(self) -> None:
        k = len(self.means)
        stds = (self.std,) * k if isinstance(self.std, float) else self.std
        if len(stds) != k or not all(math.isfinite(s) and s > 0 for s in stds):
            raise ValueError(f"std must be > 0, a number or one per component ({k}), got {self.std!r}")
        if self.weights is not None:
            if isinstance(self.weights, float) or len(self.weights) != k:
                raise ValueError(f"weights must have one entry per component ({k}), got {self.weights!r}")
            if not all(math.isfinite(w) and w >= 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError(f"weights must be finite, >= 0 and not all 0, got {self.weights!r}")

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size((len(self.means[0]),))

    @property
    def dim(self) -> int:
        return len(self.means[0])

    def components(self) -> Tuple[Tensor, Tensor, Tensor]:
        """``(means (K, d), stds (K,), weights (K,))`` as float64 tensors (weights normalised)."""
        k = len(self.means)
        mu = torch.tensor(self.means, dtype=torch.float64)
        std = torch.tensor((self.std,) * k if isinstance(self.std, float) else self.std, dtype=torch.float64)
        w = torch.ones(k, dtype=torch.float64) if self.weights is None else torch.tensor(self.weights, dtype=torch.float64)
        return mu, std, w / w.sum()

    def mean(self) -> Tensor:
        r"""Exact mean :math:`\sum_k w_k \mu_k` (float32)."""
        mu, _, w = self.components()
        return (w @ mu).to(torch.float32)

    def covariance(self) -> Tensor:
        r"""Exact covariance :math:`\sum_k w_k(\sigma_k^2 I + \mu_k\mu_k^\top) - m m^\top` (float64)."""
        mu, std, w = self.components()
        m = w @ mu
        second = torch.einsum("k,ki,kj->ij", w, mu, mu) + (w * std.square()).sum() * torch.eye(mu.shape[1], dtype=mu.dtype)
        return second - torch.outer(m, m)

    def sample(self, n: int, *, generator: Optional[torch.Generator] = None) -> Tensor:
        """``n`` points, shape ``(n, d)``: a component by weight, then its Gaussian."""
        n = _check_n(n)
        mu, std, w = self.components()
        if n == 0:
            return torch.empty(0, mu.shape[1])
        k = torch.multinomial(w, n, replacement=True, generator=generator)
        eps = torch.randn(n, mu.shape[1], generator=generator, dtype=torch.float64)
        return (mu[k] + std[k, None] * eps).to(torch.float32)

    def log_prob(self, x: Tensor) -> Tensor:
        r"""Exact :math:`\log p(x)` for ``x`` of shape ``(..., d)`` (in ``x``'s dtype)."""
        mu, std, w = (p.to(dtype=x.dtype, device=x.device) for p in self.components())
        d = mu.shape[1]
        sq = (x.unsqueeze(-2) - mu).square().sum(-1)  # (..., K)
        comp = -0.5 * sq / std.square() - d * torch.log(std) - 0.5 * d * math.log(2 * math.pi)
        return torch.logsumexp(comp + torch.log(w), dim=-1)


@attrs.frozen(kw_only=True)
class GaussianRing:
    r"""``modes`` equally weighted Gaussians on a circle: :math:`\mu_k = r(\cos\frac{2\pi k}{K}, \sin\frac{2\pi k}{K})`.

    A thin :class:`GaussianMixture` (:meth:`mixture`). Exact: :math:`\mathbb E[x] = 0` and
    :math:`\mathbb E\lVert x\rVert^2 = r^2 + 2\sigma^2`.

    Args:
        modes: number of modes :math:`K` (default 8).
        radius: :math:`r > 0` (default 2).
        std: :math:`\sigma > 0` of each mode (default 0.1).

    Example:
        >>> x = GaussianRing().sample(2000, generator=torch.Generator().manual_seed(0))
        >>> round(float(x.norm(dim=1).mean()), 1)
        2.0
    """

    modes: int = attrs.field(default=8, validator=positive_int)
    radius: float = attrs.field(default=2.0, converter=float, validator=positive_float)
    std: float = attrs.field(default=0.1, converter=float, validator=positive_float)

    event_shape = _TWO
    dim = 2

    def mixture(self) -> GaussianMixture:
        """The equivalent :class:`GaussianMixture`."""
        angles = [2.0 * math.pi * k / self.modes for k in range(self.modes)]
        means = tuple((self.radius * math.cos(a), self.radius * math.sin(a)) for a in angles)
        return GaussianMixture(means=means, std=self.std, weights=None)

    def sample(self, n: int, *, generator: Optional[torch.Generator] = None) -> Tensor:
        """``n`` points, shape ``(n, 2)``."""
        return self.mixture().sample(n, generator=generator)

    def log_prob(self, x: Tensor) -> Tensor:
        r"""Exact :math:`\log p(x)`."""
        return self.mixture().log_prob(x)


@attrs.frozen(kw_only=True)
class TwoSpirals:
    r"""Two interleaved Archimedean spirals, point-symmetric about the origin.

    With :math:`u \sim U[0, 1]`, :math:`\theta = 2\pi\,\text{turns}\,\sqrt u` and
    :math:`\rho = R\sqrt u`, a point is :math:`\pm\rho(\cos\theta, \sin\theta)` (sign by a
    fair coin, one sign per spiral) plus :math:`\mathcal N(0, \text{noise}^2 I)`. Exact:
    :math:`\mathbb E[x] = 0`, :math:`\mathbb E\lVert x\rVert^2 = R^2/2 + 2\,\text{noise}^2`.

    Args:
        turns: windings of each spiral (> 0, default 1.5).
        radius: outer radius :math:`R > 0` (default 3).
        noise: standard deviation of the added noise (>= 0, default 0.1).

    Example:
        >>> TwoSpirals().sample(5, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([5, 2])
    """

    turns: float = attrs.field(default=1.5, converter=float, validator=positive_float)
    radius: float = attrs.field(default=3.0, converter=float, validator=positive_float)
    noise: float = attrs.field(default=0.1, converter=float, validator=non_negative_float)

    event_shape = _TWO
    dim = 2

    def sample(self, n: int, *, generator: Optional[torch.Generator] = None) -> Tensor:
        """``n`` points, shape ``(n, 2)``."""
        n = _check_n(n)
        r = torch.rand(n, generator=generator).sqrt()
        sign = 2.0 * torch.randint(0, 2, (n,), generator=generator).to(torch.float32) - 1.0
        theta = (2.0 * math.pi * self.turns) * r
        pts = (sign * self.radius * r).unsqueeze(-1) * torch.stack([theta.cos(), theta.sin()], dim=-1)
        if self.noise > 0:
            pts = pts + self.noise * torch.randn(n, 2, generator=generator)
        return pts
