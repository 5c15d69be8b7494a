"""nami_paths.bridge: Brownian-bridge loss and the reverse-time SDE of a velocity + score pair.

Ground truth: Gaussian data x0 ~ N(mu, sd^2 I), independent noise x1 ~ N(0, I). The bridge
marginal is N(m, v I) with m = (1-t) mu, v = (1-t)^2 sd^2 + t^2 + sigma^2 t (1-t); its exact
velocity is -mu + v'/(2v) (x - m) and its exact score -(x - m)/v.
"""

from __future__ import annotations

import math

import pytest
import torch

import nami
from nami_core.fields import VelocityField
from nami_paths import BridgeSDE, BrownianBridgePath, bridge_loss, bridge_sample

MU = torch.tensor([1.0, -0.5], dtype=torch.float64)
SD = 0.5


def _var(t, sigma):
    return (1 - t) ** 2 * SD**2 + t**2 + sigma**2 * t * (1 - t)


def _dvar(t, sigma):
    return -2 * (1 - t) * SD**2 + 2 * t + sigma**2 * (1 - 2 * t)


class ExactVelocity(torch.nn.Module):
    event_ndim = 1

    def __init__(self, sigma):
        super().__init__()
        self.sigma = sigma

    def forward(self, x, t, c=None):
        t = t[..., None]
        return -MU + _dvar(t, self.sigma) / (2 * _var(t, self.sigma)) * (x - (1 - t) * MU)


class ExactScore(ExactVelocity):
    def forward(self, x, t, c=None):
        t = t[..., None]
        return -(x - (1 - t) * MU) / _var(t, self.sigma)


class EM:
    """A minimal Euler-Maruyama with signed drift step h and noise sqrt(|h|), for the sign test."""

    def __init__(self, steps):
        self.steps = steps

    def integrate_sde(self, drift, diffusion, y0, t0, t1, *, time_shape=(), generator=None, trajectory=False):
        h = (t1 - t0) / self.steps
        y = y0
        for k in range(self.steps):
            t = torch.full(tuple(time_shape), t0 + k * h, dtype=y0.dtype)
            z = torch.randn(y.shape, generator=generator, dtype=y.dtype)
            y = y + drift(y, t) * h + diffusion(y, t) * math.sqrt(abs(h)) * z
        return nami.Solution(y=y, nfe=self.steps)


def _pairs(n, seed):
    g = torch.Generator().manual_seed(seed)
    x0 = MU + SD * torch.randn(n, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    return x0, x1, z


def test_loss_matches_formula_at_fixed_t_and_z():
    torch.manual_seed(0)
    v, s = VelocityField(2, hidden=(8,)).double(), VelocityField(2, hidden=(8,)).double()
    x0, x1, z = _pairs(16, 1)
    t = torch.linspace(0.1, 0.9, 16, dtype=torch.float64)
    out = bridge_loss(v, s, x0, x1, sigma=0.8, t=t, z=z, reduction="none")
    p = BrownianBridgePath(0.8)
    xt, ut = p.interpolate(x0, x1, t, z), p.velocity(x0, x1, t, z)
    gam = p.gamma.gamma(t)[:, None]
    assert torch.allclose(out.flow, (v(xt, t) - ut).square().mean(-1))
    assert torch.allclose(out.score, (gam * s(xt, t) + z).square().mean(-1))
    # the gamma-weighted score loss is the gamma^2-weighted regression on -z / gamma
    assert torch.allclose(out.score, (gam**2 * (s(xt, t) - p.score(t, z)).square()).mean(-1))
    total = bridge_loss(v, s, x0, x1, path=p, t=t, z=z)
    assert torch.allclose(total.total, out.flow.mean() + out.score.mean())


@pytest.mark.parametrize("t0", [0.2, 0.6])
def test_exact_fields_attain_irreducible_losses(t0):
    sigma, n = 0.7, 100_000
    x0, x1, z = _pairs(n, 2)
    out = bridge_loss(ExactVelocity(sigma), ExactScore(sigma), x0, x1, sigma=sigma, t=t0, z=z)
    t = torch.tensor(t0, dtype=torch.float64)
    g = BrownianBridgePath(sigma).gamma
    var, dvar = _var(t, sigma), _dvar(t, sigma)
    flow_expected = SD**2 + 1 + g.gamma_dot(t) ** 2 - (dvar / 2) ** 2 / var  # Var(u_t | x_t)
    score_expected = 1 - g.gamma(t) ** 2 / var  # Var(z | x_t)
    assert abs(float(out.flow) - float(flow_expected)) < 0.02 * float(flow_expected)
    assert abs(float(out.score) - float(score_expected)) < 0.02 * float(score_expected)


def test_default_times_avoid_the_ends():
    seen = {}

    class Rec(torch.nn.Module):
        event_ndim = 1

        def forward(self, x, t, c=None):
            seen["t"] = t
            return torch.zeros_like(x)

    x0, x1, _ = _pairs(5000, 3)
    out = bridge_loss(Rec(), Rec(), x0, x1, sigma=1.0, generator=torch.Generator().manual_seed(0))
    assert float(seen["t"].min()) >= 1e-3 and float(seen["t"].max()) <= 1 - 1e-3
    assert torch.isfinite(out.total)
    with pytest.raises(TypeError, match="sigma"):
        bridge_loss(Rec(), Rec(), x0, x1)
    with pytest.raises(ValueError, match="contradicts"):
        bridge_loss(Rec(), Rec(), x0, x1, sigma=1.0, path=BrownianBridgePath(2.0))


def _moments(x):
    return x.mean(0), x.var(0)


@pytest.mark.parametrize("sigma", [0.5, 1.5])
def test_reverse_sde_drift_recovers_gaussian_data(sigma):
    """Integrating dx = (v - g^2/2 s) dt + g dW from t=1 to 0 maps N(0, I) to N(mu, sd^2 I)."""
    n = 10_000
    x1 = torch.randn(n, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    v, s = ExactVelocity(sigma), ExactScore(sigma)
    x = bridge_sample(v, s, x1, sigma=sigma, solver=EM(300), generator=torch.Generator().manual_seed(5))
    mean, var = _moments(x)  # tolerance: 4 standard errors plus the O(h) weak bias of Euler-Maruyama
    assert torch.allclose(mean, MU, atol=0.03)
    assert torch.allclose(var, torch.full((2,), SD**2, dtype=torch.float64), rtol=0.05)
    # the forward-time sign would be wrong here: variance visibly off
    sde = BridgeSDE(velocity_field=v, score_field=s, diffusion_coef=sigma, reverse=False)
    y = EM(100).integrate_sde(sde.drift, sde.diffusion, x1, 1.0, 0.0, time_shape=(n,),
                              generator=torch.Generator().manual_seed(5)).y
    assert not torch.allclose(y.var(0), torch.full((2,), SD**2, dtype=torch.float64), rtol=0.2)


def test_forward_sde_recovers_the_noise_marginal():
    sigma, n = 1.0, 10_000
    x0 = MU + SD * torch.randn(n, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    sde = BridgeSDE(velocity_field=ExactVelocity(sigma), score_field=ExactScore(sigma), diffusion_coef=sigma, reverse=False)
    y = EM(300).integrate_sde(sde.drift, sde.diffusion, x0, 0.0, 1.0, time_shape=(n,),
                              generator=torch.Generator().manual_seed(7)).y
    mean, var = _moments(y)
    assert torch.allclose(mean, torch.zeros(2, dtype=torch.float64), atol=0.03)
    assert torch.allclose(var, torch.ones(2, dtype=torch.float64), rtol=0.05)


def test_sampling_with_the_registered_euler_maruyama():
    try:
        solver = nami.build("solver", "euler_maruyama", steps=300)
    except LookupError:
        pytest.skip("nami-solvers does not register 'euler_maruyama' yet")
    sigma, n = 1.0, 20_000
    x1 = torch.randn(n, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    x = bridge_sample(ExactVelocity(sigma), ExactScore(sigma), x1, sigma=sigma, solver=solver,
                      generator=torch.Generator().manual_seed(9))
    mean, var = _moments(x)
    assert x.dtype == torch.float64
    assert torch.allclose(mean, MU, atol=0.03)
    assert torch.allclose(var, torch.full((2,), SD**2, dtype=torch.float64), rtol=0.05)


def test_context_reaches_both_fields_and_g_zero_is_the_ode():
    seen = []

    class F(torch.nn.Module):
        event_ndim = 1

        def forward(self, x, t, c=None):
            seen.append(None if c is None else tuple(c.shape))
            return torch.zeros_like(x)

    c = torch.randn(3)
    sde = BridgeSDE(velocity_field=F(), score_field=F(), diffusion_coef=0.5, context=c)
    sde.drift(torch.randn(7, 2), torch.rand(7))
    assert seen == [(7, 3), (7, 3)]
    seen.clear()
    BridgeSDE(velocity_field=F(), score_field=F(), diffusion_coef=0.0).drift(torch.randn(7, 2), torch.rand(7))
    assert seen == [None]  # the score is not evaluated when g = 0
    with pytest.raises(TypeError, match="SDE solver"):
        bridge_sample(F(), F(), torch.randn(3, 2), sigma=1.0, solver=nami.build("solver", "euler", steps=2))


def test_facade():
    assert nami.BrownianBridgePath is BrownianBridgePath
    assert nami.build("path", "brownian_bridge", sigma=0.3) == BrownianBridgePath(0.3)
