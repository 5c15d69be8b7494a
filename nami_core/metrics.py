r"""Metrics: held-out log-likelihood, bits per dimension and sample-to-data distances.

* :func:`nll` evaluates :math:`-\log p_\theta(x)` in batches without autograd.
* :func:`bits_per_dim` converts nats per sample to bits per dimension,
  :math:`\text{bpd} = \text{nll} / (D \ln 2)`.
* :func:`energy_distance` estimates the squared energy distance
  :math:`\mathcal E^2(P, Q) = 2\,\mathbb E\lVert X - Y\rVert - \mathbb E\lVert X - X'\rVert
  - \mathbb E\lVert Y - Y'\rVert` (zero iff :math:`P = Q`).
* :func:`mmd_rbf` estimates the squared maximum mean discrepancy with a Gaussian kernel
  whose bandwidth is the median pairwise distance of the pooled samples.

References:
    Székely, Rizzo. Energy statistics: A class of statistics based on distances. 2013.
    https://doi.org/10.1016/j.jspi.2013.03.018
    Gretton, Borgwardt, Rasch, Schölkopf, Smola. A Kernel Two-Sample Test. JMLR 2012.
    https://jmlr.org/papers/v13/gretton12a.html
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import Tensor

from .errors import ShapeError

__all__ = ["nll", "bits_per_dim", "energy_distance", "mmd_rbf", "pairwise_distances"]

LN2 = math.log(2.0)


def bits_per_dim(nll_nats: float | Tensor, dim: int) -> float | Tensor:
    r"""Bits per dimension :math:`\text{nll} / (D \ln 2)` of a negative log-likelihood in nats."""
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    return nll_nats / (dim * LN2)


def nll(process: Any, x: Tensor, *, batch_size: int = 500, estimator: Any = None) -> Tensor:
    r"""Per-row negative log-likelihood :math:`-\log p(x_i)` in nats, shape ``(n,)``.

    Args:
        process: a bound process with ``log_prob`` (e.g. ``fm(None)``).
        x: rows ``(n,) + event_shape``.
        batch_size: rows per ``log_prob`` call.
        estimator: divergence estimator (``None`` = the process's default, exact up to 128
            dimensions).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            out.append(-process.log_prob(x[start: start + batch_size], estimator=estimator))
    return torch.cat(out) if out else x.new_zeros((0,))


def _check_pair(x: Tensor, y: Tensor) -> None:
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ShapeError(f"x and y must be (n, d) and (m, d) arrays, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ShapeError("x and y need at least 2 rows each")


def pairwise_distances(x: Tensor, y: Tensor) -> Tensor:
    """Euclidean distances ``(n, m)`` computed in float64 (no cancellation from the
    ``|x|^2 + |y|^2 - 2 x.y`` expansion)."""
    return torch.cdist(x.double(), y.double(), compute_mode="donot_use_mm_for_euclid_dist")


def _mean_offdiag(k: Tensor) -> Tensor:
    n = k.shape[0]
    return (k.sum() - k.diagonal().sum()) / (n * (n - 1))


def energy_distance(x: Tensor, y: Tensor, *, unbiased: bool = True) -> float:
    r"""Squared energy distance between the samples ``x`` ``(n, d)`` and ``y`` ``(m, d)``.

    .. math:: \widehat{\mathcal E^2} = \frac{2}{nm}\sum_{i,j}\lVert x_i - y_j\rVert
        - \frac{1}{n(n-1)}\sum_{i\ne i'}\lVert x_i - x_{i'}\rVert
        - \frac{1}{m(m-1)}\sum_{j\ne j'}\lVert y_j - y_{j'}\rVert

    With ``unbiased=True`` (default) the within-sample means exclude the diagonal (a
    U-statistic, unbiased for :math:`\mathcal E^2`, may be slightly negative when
    :math:`P = Q`); with ``unbiased=False`` they include it (a V-statistic: the energy
    distance of the two empirical distributions, always >= 0; its square root equals
    :func:`scipy.stats.energy_distance` in one dimension).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a, b = torch.randn(500, 2, generator=g), torch.randn(500, 2, generator=g)
        >>> abs(energy_distance(a, b)) < 0.02, energy_distance(a, b + 1.0) > 0.5
        (True, True)
    """
    _check_pair(x, y)
    dxy = pairwise_distances(x, y).mean()
    dxx, dyy = pairwise_distances(x, x), pairwise_distances(y, y)
    if unbiased:
        return float(2.0 * dxy - _mean_offdiag(dxx) - _mean_offdiag(dyy))
    return float(2.0 * dxy - dxx.mean() - dyy.mean())


def mmd_rbf(x: Tensor, y: Tensor, *, bandwidth: Optional[float] = None) -> float:
    r"""Unbiased squared MMD with the Gaussian kernel
    :math:`k(a, b) = \exp(-\lVert a - b\rVert^2 / (2 h^2))`.

    ``bandwidth`` :math:`h` defaults to the median of the pairwise distances of the pooled
    samples (the median heuristic).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a, b = torch.randn(400, 2, generator=g), torch.randn(400, 2, generator=g)
        >>> abs(mmd_rbf(a, b)) < 0.01, mmd_rbf(a, b + 1.0) > 0.1
        (True, True)
    """
    _check_pair(x, y)
    dxx, dyy, dxy = pairwise_distances(x, x), pairwise_distances(y, y), pairwise_distances(x, y)
    if bandwidth is None:
        n, m = x.shape[0], y.shape[0]
        iu_x = torch.triu_indices(n, n, 1)
        iu_y = torch.triu_indices(m, m, 1)
        pooled = torch.cat([dxx[iu_x[0], iu_x[1]], dyy[iu_y[0], iu_y[1]], dxy.flatten()])
        bandwidth = float(pooled.median())
        if bandwidth <= 0:
            bandwidth = 1.0
    if not (bandwidth > 0 and math.isfinite(bandwidth)):
        raise ValueError(f"bandwidth must be a finite number > 0, got {bandwidth}")
    gamma = 1.0 / (2.0 * bandwidth**2)
    kxx, kyy, kxy = (torch.exp(-gamma * d.square()) for d in (dxx, dyy, dxy))
    return float(_mean_offdiag(kxx) + _mean_offdiag(kyy) - 2.0 * kxy.mean())
