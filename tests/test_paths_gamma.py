"""nami_paths.gamma: gamma schedules match their derivatives, finite inside, exact at the ends."""

from __future__ import annotations

import math

import attrs
import pytest
import torch

import nami
from nami_paths import BrownianGamma, ScaledBrownianGamma, ZeroGamma

GAMMAS = [ZeroGamma(), BrownianGamma(), ScaledBrownianGamma(0.3), ScaledBrownianGamma(2.5)]


def _registered():
    return [nami.build("gamma", c.qualified_name) for c in nami.components("gamma")]


@pytest.mark.parametrize("g", GAMMAS + _registered(), ids=repr)
def test_derivatives_by_autograd(g):
    t = torch.linspace(1e-4, 1 - 1e-4, 101, dtype=torch.float64)
    _, d = torch.func.jvp(g.gamma, (t,), (torch.ones_like(t),))
    assert torch.allclose(g.gamma_dot(t), d, rtol=1e-10, atol=1e-10)
    _, d2 = torch.func.jvp(lambda s: 0.5 * g.gamma(s).square(), (t,), (torch.ones_like(t),))
    assert torch.allclose(g.gamma_gamma_dot(t), d2, rtol=1e-10, atol=1e-12)
    assert torch.allclose(g.gamma_gamma_dot(t), g.gamma(t) * g.gamma_dot(t), atol=1e-10)
    for f in (g.gamma, g.gamma_dot, g.gamma_gamma_dot):
        assert torch.isfinite(f(t)).all()


@pytest.mark.parametrize("g", GAMMAS, ids=repr)
def test_zero_at_ends_and_bounded_product(g):
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
    assert torch.equal(g.gamma(ends), torch.zeros(2, dtype=torch.float64))
    assert torch.isfinite(g.gamma_gamma_dot(ends)).all()
    lo, hi = g.t_range
    assert 0.0 <= lo < hi <= 1.0
    inside = torch.tensor([lo, hi], dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    assert torch.isfinite(g.gamma_dot(inside)).all()


def test_closed_forms():
    t = torch.tensor([0.25], dtype=torch.float64)
    g = ScaledBrownianGamma(2.0)
    assert torch.allclose(g.gamma(t), torch.tensor([2.0 * math.sqrt(0.1875)], dtype=torch.float64))
    assert torch.allclose(g.gamma_dot(t), torch.tensor([2.0 * 0.5 / (2 * math.sqrt(0.1875))], dtype=torch.float64))
    assert torch.allclose(g.gamma_gamma_dot(t), torch.tensor([1.0], dtype=torch.float64))
    assert BrownianGamma().scale == 1.0
    assert ZeroGamma().t_range == (0.0, 1.0) and BrownianGamma().t_range == (1e-3, 1 - 1e-3)


def test_dtype_preserved():
    for dtype in (torch.float32, torch.float64):
        t = torch.rand(3, dtype=dtype)
        for g in GAMMAS:
            assert g.gamma(t).dtype == dtype and g.gamma_dot(t).dtype == dtype


def test_configs_validated_and_frozen():
    with pytest.raises(ValueError, match="scale"):
        ScaledBrownianGamma(0.0)
    with pytest.raises(ValueError, match="scale"):
        ScaledBrownianGamma(float("nan"))
    with pytest.raises(TypeError):
        BrownianGamma(2.0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        ScaledBrownianGamma(1.0).scale = 2.0
    assert nami.build("gamma", "scaled_brownian", scale=3) == ScaledBrownianGamma(3.0)
