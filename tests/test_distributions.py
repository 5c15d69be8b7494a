"""Base distributions against torch.distributions references."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Independent, Normal

import nami
from nami_core.errors import ShapeError


@pytest.mark.parametrize("event_shape", [(2,), (1, 4, 3)])
def test_standard_normal_matches_torch(event_shape):
    base = nami.StandardNormal(event_shape)
    ref = Independent(Normal(torch.zeros(event_shape), torch.ones(event_shape)), len(event_shape))
    x = torch.randn((5, 2) + event_shape)
    assert torch.allclose(base.log_prob(x), ref.log_prob(x), atol=1e-5)
    assert base.event_ndim == len(event_shape)
    assert base.sample((5, 2)).shape == (5, 2) + event_shape
    assert torch.allclose(base.entropy(), ref.entropy())
    assert isinstance(base, torch.distributions.Distribution)


def test_standard_normal_generator_reproducible_and_dtype():
    base = nami.StandardNormal(3, dtype=torch.float64)
    a = base.sample((4,), generator=torch.Generator().manual_seed(1))
    b = base.sample((4,), generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.dtype == torch.float64
    assert base.to(torch.float32).sample().dtype == torch.float32


def test_standard_normal_rsample_vs_sample():
    base = nami.StandardNormal((2,))
    assert base.has_rsample
    assert base.rsample((3,)).shape == (3, 2)


def test_diagonal_normal_matches_torch():
    loc = torch.tensor([1.0, -1.0, 0.5])
    scale = torch.tensor([0.5, 2.0, 1.0])
    base = nami.DiagonalNormal(loc, scale)
    ref = Independent(Normal(loc, scale), 1)
    x = torch.randn(7, 3)
    assert torch.allclose(base.log_prob(x), ref.log_prob(x))
    assert torch.allclose(base.entropy(), ref.entropy())
    s = base.sample((20000,), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(s.mean(0), loc, atol=0.05)
    assert torch.allclose(s.std(0), scale, atol=0.05)
    assert base.to(torch.float64).loc.dtype == torch.float64


def test_distribution_bad_input():
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        nami.DiagonalNormal(torch.zeros(2), torch.tensor([1.0, 0.0]))
    with pytest.raises(ShapeError, match="scalar"):
        nami.DiagonalNormal(torch.tensor(0.0), 1.0)
    with pytest.raises(ShapeError, match="event_shape"):
        nami.StandardNormal((2,)).log_prob(torch.zeros(3))
    with pytest.raises(ValueError, match="positive sizes"):
        nami.StandardNormal((0,))
