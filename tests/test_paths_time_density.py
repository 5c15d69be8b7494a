"""nami_paths.time_density: support, exact moments, reproducibility, dtype/device."""

from __future__ import annotations

import math

import pytest
import torch

import nami
from nami_paths import LogitNormalTime, ModeTime, UniformTime

N = 200_000


def _registered():
    return [nami.build("time_density", c.qualified_name) for c in nami.components("time_density")]


@pytest.mark.parametrize("density", _registered(), ids=repr)
def test_support_shape_dtype_and_reproducibility(density):
    a = density.sample((3, 4), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    b = density.sample((3, 4), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert a.shape == (3, 4) and a.dtype == torch.float64 and torch.equal(a, b)
    t = density.sample(1000, generator=torch.Generator().manual_seed(1))
    assert t.shape == (1000,) and t.dtype == torch.get_default_dtype()
    assert bool(((t >= 0) & (t <= 1)).all())


def test_uniform_moments_and_equal_to_rand():
    t = UniformTime().sample(N, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(t, torch.rand(N, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    assert abs(float(t.mean()) - 0.5) < 4 * math.sqrt(1 / 12 / N)
    assert abs(float(t.var()) - 1 / 12) < 2e-3


@pytest.mark.parametrize("loc,scale", [(0.0, 1.0), (0.5, 0.6)])
def test_logit_normal_logit_moments(loc, scale):
    t = LogitNormalTime(loc=loc, scale=scale).sample(N, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    logit = torch.log(t) - torch.log1p(-t)
    assert abs(float(logit.mean()) - loc) < 4 * scale / math.sqrt(N)
    assert abs(float(logit.std()) - scale) < 0.01 * scale


@pytest.mark.parametrize("s", [-1.0, 0.0, 1.29])
def test_mode_moments_against_quadrature(s):
    d = ModeTime(scale=s)
    u = torch.linspace(0, 1, 200_001, dtype=torch.float64)
    f = d.transform(u)
    assert float(f[0]) == 1.0 and abs(float(f[-1])) < 1e-15
    assert bool((f[1:] <= f[:-1]).all())  # monotone
    mean, second = torch.trapezoid(f, u), torch.trapezoid(f**2, u)
    t = d.sample(N, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert abs(float(mean) - 0.5) < 1e-9  # symmetric about 1/2
    assert abs(float(t.mean()) - float(mean)) < 4 * math.sqrt(float(second - mean**2) / N)
    assert abs(float(t.var()) - float(second - mean**2)) < 2e-3


def test_mode_scale_validated():
    with pytest.raises(ValueError, match="scale"):
        ModeTime(scale=2.0)
    with pytest.raises(ValueError, match="scale"):
        LogitNormalTime(scale=0.0)
