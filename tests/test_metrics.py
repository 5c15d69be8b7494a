"""Metrics against direct numpy/scipy computations and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.spatial.distance import cdist

from nami_core.metrics import bits_per_dim, energy_distance, mmd_rbf, nll


def _np_energy(x, y, unbiased):
    dxy, dxx, dyy = cdist(x, y).mean(), cdist(x, x), cdist(y, y)
    if unbiased:
        n, m = len(x), len(y)
        return 2 * dxy - dxx.sum() / (n * (n - 1)) - dyy.sum() / (m * (m - 1))
    return 2 * dxy - dxx.mean() - dyy.mean()


@pytest.mark.parametrize("unbiased", [True, False])
def test_energy_distance_matches_numpy(unbiased):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 3)), rng.normal(size=(90, 3)) + 0.3
    ours = energy_distance(torch.from_numpy(x).float(), torch.from_numpy(y).float(), unbiased=unbiased)
    ref = _np_energy(x.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64), unbiased)
    assert ours == pytest.approx(ref, rel=1e-10, abs=1e-12)


def test_energy_distance_1d_matches_scipy():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=300), rng.normal(size=200) * 2
    ours = energy_distance(torch.from_numpy(x)[:, None], torch.from_numpy(y)[:, None], unbiased=False)
    assert math.sqrt(ours) == pytest.approx(stats.energy_distance(x, y), rel=1e-10)


def _abs_normal_mean(mu, sigma):
    """E|N(mu, sigma^2)|."""
    return sigma * math.sqrt(2 / math.pi) * math.exp(-mu**2 / (2 * sigma**2)) + mu * (1 - 2 * stats.norm.cdf(-mu / sigma))


def test_energy_distance_same_vs_shifted_against_closed_form():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2000, 1, generator=g), torch.randn(2000, 1, generator=g)
    same = energy_distance(a, b)
    assert abs(same) < 0.01
    mu = 1.0
    shifted = energy_distance(a, b + mu)
    # 1-D N(0,1) vs N(mu,1): 2 E|N(mu, 2)| - 2 E|N(0, 2)|
    exact = 2 * _abs_normal_mean(mu, math.sqrt(2)) - 2 * _abs_normal_mean(0.0, math.sqrt(2))
    assert shifted == pytest.approx(exact, abs=0.04)
    assert shifted > 20 * abs(same)


def test_mmd_matches_numpy_with_median_heuristic():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(60, 2)), rng.normal(size=(70, 2)) + 0.5
    pooled = np.concatenate([x, y])
    d = cdist(pooled, pooled)
    h = np.median(d[np.triu_indices(len(pooled), 1)])
    k = np.exp(-d**2 / (2 * h**2))
    n, m = len(x), len(y)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    ref = (kxx.sum() - n) / (n * (n - 1)) + (kyy.sum() - m) / (m * (m - 1)) - 2 * kxy.mean()
    assert mmd_rbf(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(ref, rel=1e-10)
    assert mmd_rbf(torch.from_numpy(x), torch.from_numpy(y), bandwidth=0.7) == pytest.approx(
        (np.exp(-cdist(x, x) ** 2 / 0.98).sum() - n) / (n * (n - 1))
        + (np.exp(-cdist(y, y) ** 2 / 0.98).sum() - m) / (m * (m - 1))
        - 2 * np.exp(-cdist(x, y) ** 2 / 0.98).mean(), rel=1e-10)


def test_mmd_same_vs_shifted():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(500, 2, generator=g), torch.randn(500, 2, generator=g)
    assert abs(mmd_rbf(a, b)) < 0.005
    assert mmd_rbf(a, b + 1.0) > 0.1


def test_bits_per_dim_is_exact():
    assert bits_per_dim(10.0, 4) == 10.0 / (4 * math.log(2))
    assert bits_per_dim(64 * math.log(2), 64) == pytest.approx(1.0, rel=1e-15)
    with pytest.raises(ValueError):
        bits_per_dim(1.0, 0)


def test_nll_batches_equal_one_call():
    class Gauss:
        def log_prob(self, x, estimator=None):
            return torch.distributions.Normal(0.0, 2.0).log_prob(x).sum(-1)

    x = torch.randn(23, 3, generator=torch.Generator().manual_seed(0))
    ref = -torch.distributions.Normal(0.0, 2.0).log_prob(x).sum(-1)
    assert torch.equal(nll(Gauss(), x, batch_size=5), ref)
    assert nll(Gauss(), x, batch_size=5).shape == (23,)


def test_shape_errors():
    from nami_core.errors import ShapeError

    with pytest.raises(ShapeError):
        energy_distance(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ShapeError):
        mmd_rbf(torch.zeros(1, 2), torch.zeros(5, 2))
