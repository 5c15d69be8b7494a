"""nami-paths: endpoints exact and the target equals d x_t / dt by autograd."""

from __future__ import annotations

import pytest
import torch

from nami_paths import CosinePath, LinearPath

PATHS = [LinearPath(), CosinePath()]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: type(p).__name__)
def test_endpoints_exact(path):
    x0, x1 = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    assert torch.equal(path.interpolate(x0, x1, torch.zeros(4, dtype=torch.float64)), x0)
    assert torch.equal(path.interpolate(x0, x1, torch.ones(4, dtype=torch.float64)), x1)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: type(p).__name__)
def test_velocity_is_time_derivative(path):
    x0, x1 = torch.randn(6, 2, 3, dtype=torch.float64), torch.randn(6, 2, 3, dtype=torch.float64)
    t = torch.rand(6, dtype=torch.float64, requires_grad=True)
    xt = path.interpolate(x0, x1, t)
    # d x_t / dt per sample: forward-mode via jvp with unit tangent in t
    _, dxdt = torch.func.jvp(lambda tt: path.interpolate(x0, x1, tt), (t.detach(),), (torch.ones_like(t),))
    assert torch.allclose(path.velocity(x0, x1, t.detach()), dxdt, atol=1e-12)
    assert xt.shape == x0.shape


@pytest.mark.parametrize("path", PATHS, ids=lambda p: type(p).__name__)
def test_coefficient_derivatives(path):
    t = torch.linspace(0.01, 0.99, 17, dtype=torch.float64)
    for f, df in [(path.alpha, path.d_alpha), (path.sigma, path.d_sigma)]:
        _, d = torch.func.jvp(f, (t,), (torch.ones_like(t),))
        assert torch.allclose(df(t), d, atol=1e-12)


# --- every registered path, including the stochastic ones at fixed z --------------------

import inspect  # noqa: E402

import nami  # noqa: E402
from nami_paths import BrownianBridgePath  # noqa: E402


def _registered_paths():
    return [(c.qualified_name, nami.build("path", c.qualified_name)) for c in nami.components("path")]


def _takes_z(path) -> bool:
    return "z" in inspect.signature(path.interpolate).parameters


def test_registry_lists_the_paths():
    names = {c.qualified_name for c in nami.components("path")}
    assert {"nami-paths:linear", "nami-paths:cosine", "nami-paths:brownian_bridge"} <= names


@pytest.mark.parametrize("name,path", _registered_paths(), ids=lambda v: v if isinstance(v, str) else "")
def test_registered_path_endpoints_and_derivative(name, path):
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    z = torch.randn(5, 3, generator=g, dtype=torch.float64) if _takes_z(path) else None
    extra = () if z is None else (z,)
    zeros, ones = torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    assert torch.equal(path.interpolate(x0, x1, zeros, *extra), x0)
    assert torch.equal(path.interpolate(x0, x1, ones, *extra), x1)
    t = torch.linspace(0.02, 0.98, 5, dtype=torch.float64)
    _, dxdt = torch.func.jvp(lambda tt: path.interpolate(x0, x1, tt, *extra), (t,), (torch.ones_like(t),))
    assert torch.allclose(path.velocity(x0, x1, t, *extra), dxdt, atol=1e-10)


def test_brownian_bridge_marginal_and_score():
    p = BrownianBridgePath(0.7)
    t = torch.full((4,), 0.3, dtype=torch.float64)
    x0, x1 = torch.zeros(4, 2, dtype=torch.float64), torch.ones(4, 2, dtype=torch.float64)
    z = torch.randn(4, 2, dtype=torch.float64)
    gam = 0.7 * (0.3 * 0.7) ** 0.5
    assert torch.allclose(p.interpolate(x0, x1, t, z), 0.3 + gam * z)
    assert torch.allclose(p.interpolate(x0, x1, t), torch.full((4, 2), 0.3, dtype=torch.float64))
    # conditional score = grad_x log N(x; mean, gamma^2 I) at x_t
    x = p.interpolate(x0, x1, t, z).requires_grad_(True)
    logp = torch.distributions.Normal(torch.full_like(x, 0.3), gam).log_prob(x).sum()
    (grad,) = torch.autograd.grad(logp, x)
    assert torch.allclose(p.score(t, z), grad, atol=1e-10)
    assert p.gamma.scale == 0.7
    with pytest.raises(ValueError):
        BrownianBridgePath(0.0)
