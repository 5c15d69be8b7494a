"""nami_paths.datasets: reproducible draws, shapes, exact moments."""

from __future__ import annotations

import math

import pytest
import torch

import nami
from nami_paths import Checkerboard, GaussianMixture, GaussianRing, TwoSpirals

N = 100_000


def _registered():
    return [
        (c.name, nami.build("dataset", c.qualified_name))
        for c in nami.components("dataset")
        if c.distribution == "nami-paths"
    ]


def test_names():
    assert {n for n, _ in _registered()} == {"checkerboard", "gaussian_ring", "two_spirals", "gaussian_mixture"}
    assert isinstance(nami.build("dataset", "eight_gaussians"), GaussianRing)


@pytest.mark.parametrize("name,ds", _registered(), ids=lambda v: v if isinstance(v, str) else "")
def test_reproducible_shapes(name, ds):
    a = ds.sample(257, generator=torch.Generator().manual_seed(0))
    b = ds.sample(257, generator=torch.Generator().manual_seed(0))
    c = ds.sample(257, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (257,) + tuple(ds.event_shape) and a.dtype == torch.float32
    assert ds.dim == ds.event_shape[0] == 2
    assert ds.sample(0).shape == (0, 2)
    torch.manual_seed(3)
    d = ds.sample(5)
    torch.manual_seed(3)
    assert torch.equal(d, ds.sample(5))
    with pytest.raises(ValueError, match="n must"):
        ds.sample(-1)


def _sample(ds):
    return ds.sample(N, generator=torch.Generator().manual_seed(0)).double()


def test_gaussian_ring_radius_and_moments():
    ring = GaussianRing(modes=8, radius=3.0, std=0.05)
    x = _sample(ring)
    r = x.norm(dim=1)
    assert abs(float((r**2).mean()) - (9.0 + 2 * 0.05**2)) < 0.01
    assert abs(float(r.mean()) - 3.0) < 0.01
    assert x.mean(0).abs().max() < 0.03
    # every mode is used, about equally: angles cluster at the 8 means
    k = torch.round(torch.atan2(x[:, 1], x[:, 0]) / (2 * math.pi / 8)) % 8
    counts = torch.bincount(k.long(), minlength=8).double() / N
    assert torch.allclose(counts, torch.full((8,), 1 / 8, dtype=torch.float64), atol=0.01)


def test_gaussian_mixture_moments_and_log_prob():
    gm = GaussianMixture(means=((-2.0, 0.0), (3.0, 1.0), (0.0, 4.0)), std=(0.3, 0.5, 0.2), weights=(2, 1, 1))
    x = _sample(gm)
    assert torch.allclose(x.mean(0).float(), gm.mean(), atol=0.03)
    assert torch.allclose(torch.cov(x.T), gm.covariance(), atol=0.06)
    assert torch.allclose(gm.mean(), torch.tensor([-0.25, 1.25]))
    # log_prob is a normalised density: a grid integral is 1
    grid = torch.linspace(-6, 7, 521, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    p = gm.log_prob(torch.stack([xx, yy], -1)).exp()
    h = float(grid[1] - grid[0])
    assert abs(float(p.sum()) * h * h - 1.0) < 1e-3
    single = GaussianMixture(means=((1.0, 2.0),), std=0.5)
    pt = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    ref = torch.distributions.MultivariateNormal(torch.tensor([1.0, 2.0], dtype=torch.float64),
                                                 0.25 * torch.eye(2, dtype=torch.float64)).log_prob(pt)
    assert torch.allclose(single.log_prob(pt), ref)


def test_gaussian_mixture_validation():
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture(means=((0.0,), (1.0,)), weights=(1.0,))
    with pytest.raises(ValueError, match="std"):
        GaussianMixture(means=((0.0,), (1.0,)), std=-1.0)
    with pytest.raises(ValueError, match="means"):
        GaussianMixture(means=((0.0, 1.0), (1.0,)))
    assert GaussianMixture(means=torch.zeros(2, 3)).event_shape == (3,)


def test_checkerboard_support_and_moments():
    cb = Checkerboard(cells=4, half_width=2.0)
    x = _sample(cb)
    assert float(x.abs().max()) <= 2.0
    i = torch.floor((x[:, 0] + 2.0)).long()
    j = torch.floor((x[:, 1] + 2.0)).long()
    assert bool(((i + j) % 2 == 0).all())  # only dark squares
    assert x.mean(0).abs().max() < 0.02
    assert torch.allclose(x.var(0), torch.full((2,), 4.0 / 3, dtype=torch.float64), rtol=0.02)
    with pytest.raises(ValueError, match="even"):
        Checkerboard(cells=3)


def test_two_spirals_moments():
    sp = TwoSpirals(turns=1.5, radius=3.0, noise=0.1)
    x = _sample(sp)
    assert x.mean(0).abs().max() < 0.03
    assert abs(float(x.square().sum(1).mean()) - (4.5 + 2 * 0.01)) < 0.05
