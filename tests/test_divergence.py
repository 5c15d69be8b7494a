"""Divergence estimators against autograd Jacobians."""

from __future__ import annotations

import pytest
import torch

import nami


def jacobian_trace(f, x, t, event_ndim):
    lead = x.shape[: x.ndim - event_ndim]
    xf = x.reshape(-1, *x.shape[x.ndim - event_ndim:])
    tf = t.reshape(-1)
    d = xf[0].numel()

    def single(xx, tt):
        return f(xx[None], tt[None])[0]

    J = torch.func.vmap(torch.func.jacrev(single))(xf, tf).reshape(-1, d, d)
    return J.diagonal(dim1=-2, dim2=-1).sum(-1).reshape(lead)


def nonlinear(x, t):
    flat = x.flatten(-1) if x.ndim else x
    return torch.tanh(x * 1.3 + x.roll(1, -1)) * (1 + t.reshape(t.shape + (1,) * (x.ndim - t.ndim))) + x.flip(-1) ** 2


@pytest.mark.parametrize("shape,event_ndim", [((5, 3), 1), ((2, 4, 3), 1), ((3, 2, 4), 2), ((6, 1, 2, 2), 3)])
@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_exact_divergence_matches_jacobian_trace(shape, event_ndim, chunk):
    x = torch.randn(shape, dtype=torch.float64)
    t = torch.rand(shape[: len(shape) - event_ndim], dtype=torch.float64)
    with torch.no_grad():
        u, div = nami.ExactDivergence(chunk_size=chunk).bind(x, event_ndim)(nonlinear, x, t)
    assert torch.allclose(u, nonlinear(x, t))
    assert div.shape == t.shape and div.dtype == torch.float64
    assert torch.allclose(div, jacobian_trace(nonlinear, x, t, event_ndim), atol=1e-12)
    assert not div.requires_grad


@pytest.mark.parametrize("dist", ["rademacher", "gaussian"])
def test_hutchinson_unbiased_and_fixed_probes(dist):
    x = torch.randn(4, 3, dtype=torch.float64)
    t = torch.rand(4, dtype=torch.float64)
    est = nami.HutchinsonDivergence(probes=40000, distribution=dist)
    with torch.no_grad():
        _, div = est.bind(x, 1, generator=torch.Generator().manual_seed(0))(nonlinear, x, t)
    exact = jacobian_trace(nonlinear, x, t, 1)
    assert torch.allclose(div, exact, atol=0.08)
    bound = nami.HutchinsonDivergence(probes=2, distribution=dist).bind(x, 1, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = bound(nonlinear, x, t)[1]
        b = bound(nonlinear, x, t)[1]
    assert torch.equal(a, b)  # probes fixed for the bound (per-solve) estimator


def test_rademacher_exact_for_isotropic_jacobian():
    x = torch.randn(8, 5, dtype=torch.float64)
    t = torch.rand(8, dtype=torch.float64)
    f = lambda x, t: (3.0 * t)[..., None] * x  # noqa: E731
    with torch.no_grad():
        _, div = nami.HutchinsonDivergence(probes=1).bind(x, 1)(f, x, t)
    assert torch.allclose(div, 15.0 * t)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("est", [nami.ExactDivergence(), nami.HutchinsonDivergence(probes=2)])
def test_follows_dtype_and_keeps_graph(dtype, est):
    w = torch.tensor(0.7, dtype=dtype, requires_grad=True)
    x = torch.randn(3, 2, dtype=dtype)
    t = torch.rand(3, dtype=dtype)
    f = lambda x, t: torch.sin(w * x)  # noqa: E731
    u, div = est.bind(x, 1)(f, x, t)
    assert div.dtype == dtype and u.dtype == dtype
    assert div.requires_grad
    (g,) = torch.autograd.grad(div.sum(), w)
    # d/dw sum_i w cos(w x_i) = sum_i cos(w x_i) - w x_i sin(w x_i)
    expected = (torch.cos(w * x) - w * x * torch.sin(w * x)).sum()
    assert torch.allclose(g, expected.detach(), atol=1e-5)


def test_bad_config():
    with pytest.raises(ValueError, match="probes must be >= 1"):
        nami.HutchinsonDivergence(probes=0)
    with pytest.raises(ValueError, match="distribution must be one of"):
        nami.HutchinsonDivergence(distribution="uniform")
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        nami.ExactDivergence(chunk_size=0)
