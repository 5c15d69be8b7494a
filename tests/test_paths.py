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
