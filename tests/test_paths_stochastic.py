"""nami_paths.stochastic: the stochastic interpolant and its flow-matching loss."""

from __future__ import annotations

import pytest
import torch

import nami
from nami_core.fields import VelocityField
from nami_core.losses import fm_loss
from nami_paths import (
    BrownianGamma,
    CosinePath,
    LogitNormalTime,
    ScaledBrownianGamma,
    ZeroGamma,
    stochastic_fm_loss,
    stochastic_interpolant,
)


class Recorder(torch.nn.Module):
    """Returns zeros and remembers the (x, t) it saw."""

    event_ndim = 1

    def forward(self, x, t, c=None):
        self.x, self.t, self.c = x, t, c
        return torch.zeros_like(x)


@pytest.mark.parametrize("path", [None, CosinePath()], ids=["linear", "cosine"])
@pytest.mark.parametrize("reduction", ["mean", "none", "sum"])
def test_zero_gamma_equals_fm_loss_exactly(path, reduction):
    torch.manual_seed(0)
    field = VelocityField(3, hidden=(16,))
    x0, x1 = torch.randn(32, 3), torch.randn(32, 3)
    a = stochastic_fm_loss(field, x0, x1, gamma=ZeroGamma(), path=path, reduction=reduction,
                           generator=torch.Generator().manual_seed(7))
    b = fm_loss(field, x0, x1, path=path, reduction=reduction, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    t = torch.rand(32)
    assert torch.equal(stochastic_fm_loss(field, x0, x1, gamma="zero", t=t, path=path, reduction=reduction),
                       fm_loss(field, x0, x1, t, path=path, reduction=reduction))


def test_fixed_t_and_z_give_the_formula():
    field = Recorder()
    x0, x1, z = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    t = torch.linspace(0.1, 0.9, 6, dtype=torch.float64)
    g = ScaledBrownianGamma(0.5)
    loss = stochastic_fm_loss(field, x0, x1, gamma=g, t=t, z=z, reduction="none")
    tb = t[:, None]
    xt = (1 - tb) * x0 + tb * x1 + g.gamma(tb) * z
    u = x1 - x0 + g.gamma_dot(tb) * z
    assert torch.allclose(field.x, xt) and torch.equal(field.t, t)
    assert torch.allclose(loss, u.square().mean(-1))


def test_default_time_range_and_reproducibility():
    field = Recorder()
    x0, x1 = torch.randn(4000, 2), torch.randn(4000, 2)
    a = stochastic_fm_loss(field, x0, x1, generator=torch.Generator().manual_seed(3))
    t = field.t
    assert float(t.min()) >= 1e-3 and float(t.max()) <= 1 - 1e-3 and t.dtype == x0.dtype
    b = stochastic_fm_loss(field, x0, x1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.isfinite(a)
    stochastic_fm_loss(field, x0, x1, t_range=(0.2, 0.3), time_density=LogitNormalTime(),
                       generator=torch.Generator().manual_seed(3))
    assert float(field.t.min()) >= 0.2 and float(field.t.max()) <= 0.3
    stochastic_fm_loss(field, x0, x1, t_range=(0.0, 1.0), time_density="uniform",
                       generator=torch.Generator().manual_seed(3))
    assert torch.equal(field.t, torch.rand(4000, generator=torch.Generator().manual_seed(3)))


def test_bad_arguments():
    field = Recorder()
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="t_range"):
        stochastic_fm_loss(field, x, x, t_range=(0.5, 0.2))
    with pytest.raises(ValueError, match="reduction"):
        stochastic_fm_loss(field, x, x, reduction="avg")
    with pytest.raises(ValueError):
        stochastic_fm_loss(field, x, torch.randn(3, 2))
    with pytest.raises(ValueError, match="z must"):
        stochastic_fm_loss(field, x, x, z=torch.randn(4, 3))
    with pytest.raises(ValueError, match="t must"):
        stochastic_fm_loss(field, x, x, t=1.5)


class ExactDrift(torch.nn.Module):
    r"""Exact drift of x_t = (1-t) x0 + t x1 + gamma z for x0 ~ N(mu, sd^2 I), x1 ~ N(0, I)."""

    event_ndim = 1

    def __init__(self, mu, sd, gamma):
        super().__init__()
        self.mu, self.sd, self.g = mu, sd, gamma

    def forward(self, x, t, c=None):
        t = t[..., None]
        gg = self.g.gamma(t) ** 2
        v = (1 - t) ** 2 * self.sd**2 + t**2 + gg
        dv = -2 * (1 - t) * self.sd**2 + 2 * t + 2 * self.g.gamma_gamma_dot(t)
        m = (1 - t) * self.mu
        return -self.mu + dv / (2 * v) * (x - m)


def test_exact_drift_attains_the_irreducible_loss():
    """E||b(x_t) - u_t||^2 per element = Var(u_t | x_t) = (sd^2 + 1 + gamma_dot^2) - (v'/2)^2 / v."""
    g = torch.Generator().manual_seed(0)
    n, sd, t0 = 200_000, 0.5, 0.3
    mu = torch.tensor([1.0, -2.0], dtype=torch.float64)
    gam = BrownianGamma()
    x0 = mu + sd * torch.randn(n, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    loss = stochastic_fm_loss(ExactDrift(mu, sd, gam), x0, x1, gamma=gam, t=t0, z=z)
    t = torch.tensor(t0, dtype=torch.float64)
    v = (1 - t) ** 2 * sd**2 + t**2 + gam.gamma(t) ** 2
    dv = -2 * (1 - t) * sd**2 + 2 * t + 2 * gam.gamma_gamma_dot(t)
    expected = sd**2 + 1 + gam.gamma_dot(t) ** 2 - (dv / 2) ** 2 / v
    assert abs(float(loss) - float(expected)) < 0.01 * float(expected)
    # any other field f pays exactly E||f - b||^2 more (Pythagoras); here the gamma-free drift
    wrong = ExactDrift(mu, sd, ZeroGamma())
    worse = stochastic_fm_loss(wrong, x0, x1, gamma=gam, t=t0, z=z)
    tt = torch.full((n,), t0, dtype=torch.float64)
    xt, _ = stochastic_interpolant(x0, x1, tt, z, gamma=gam)
    gap = (wrong(xt, tt) - ExactDrift(mu, sd, gam)(xt, tt)).square().mean()
    assert abs(float(worse - loss) - float(gap)) < 0.2 * float(gap)


def test_interpolant_endpoints_and_derivative_fixed_z():
    x0, x1, z = (torch.randn(5, 2, 3, dtype=torch.float64) for _ in range(3))
    for gamma in (BrownianGamma(), ScaledBrownianGamma(0.2), ZeroGamma()):
        for path in (None, CosinePath(), "linear"):
            xa, _ = stochastic_interpolant(x0, x1, torch.zeros(5, dtype=torch.float64), z, gamma=gamma, path=path)
            xb, _ = stochastic_interpolant(x0, x1, torch.ones(5, dtype=torch.float64), z, gamma=gamma, path=path)
            assert torch.equal(xa, x0) and torch.equal(xb, x1)
            t = torch.linspace(0.05, 0.95, 5, dtype=torch.float64)
            _, dx = torch.func.jvp(lambda s: stochastic_interpolant(x0, x1, s, z, gamma=gamma, path=path)[0],
                                   (t,), (torch.ones_like(t),))
            assert torch.allclose(stochastic_interpolant(x0, x1, t, z, gamma=gamma, path=path)[1], dx, atol=1e-10)


def test_facade_names():
    assert nami.stochastic_fm_loss is stochastic_fm_loss
    assert nami.ZeroGamma is ZeroGamma and nami.BrownianGamma is BrownianGamma
    assert nami.ScaledBrownianGamma is ScaledBrownianGamma
