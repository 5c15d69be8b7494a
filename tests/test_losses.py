"""fm_loss: exact values, reductions, paths and bad input."""

from __future__ import annotations

import pytest
import torch

import nami
from nami_core.errors import ShapeError
from nami_paths import CosinePath, LinearPath


class Zero(torch.nn.Module):
    event_ndim = 1

    def forward(self, x, t, c=None):
        return torch.zeros_like(x)


class Linear(torch.nn.Module):
    """u(x, t, c) = 2 x + t + sum(c)."""

    event_ndim = 1

    def forward(self, x, t, c=None):
        out = 2 * x + t[..., None]
        return out if c is None else out + c.sum(-1, keepdim=True)


def test_zero_field_loss_is_mean_squared_target():
    x0, x1 = torch.randn(10, 3), torch.randn(10, 3)
    loss = nami.fm_loss(Zero(), x0, x1, reduction="none")
    assert torch.allclose(loss, (x1 - x0).square().mean(-1))
    assert torch.allclose(nami.fm_loss(Zero(), x0, x1), (x1 - x0).square().mean())
    assert torch.allclose(nami.fm_loss(Zero(), x0, x1, reduction="sum"), (x1 - x0).square().mean(-1).sum())


def test_explicit_t_and_context_exact_value():
    x0, x1 = torch.randn(4, 2), torch.randn(4, 2)
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    c = torch.randn(4, 3)
    xt = (1 - t[:, None]) * x0 + t[:, None] * x1
    pred = 2 * xt + t[:, None] + c.sum(-1, keepdim=True)
    expected = (pred - (x1 - x0)).square().mean(-1)
    assert torch.allclose(nami.fm_loss(Linear(), x0, x1, t, c, reduction="none"), expected)


@pytest.mark.parametrize("path", [LinearPath(), CosinePath()])
def test_path_argument(path):
    x0, x1 = torch.randn(5, 2), torch.randn(5, 2)
    t = torch.rand(5)
    expected = (2 * path.interpolate(x0, x1, t) + t[:, None] - path.velocity(x0, x1, t)).square().mean(-1)
    assert torch.allclose(nami.fm_loss(Linear(), x0, x1, t, path=path, reduction="none"), expected)


def test_linear_default_equals_linear_path():
    x0, x1, t = torch.randn(6, 2), torch.randn(6, 2), torch.rand(6)
    assert torch.equal(nami.fm_loss(Linear(), x0, x1, t), nami.fm_loss(Linear(), x0, x1, t, path=LinearPath()))


def test_multi_dim_events():
    class F(torch.nn.Module):
        event_ndim = 2

        def forward(self, x, t, c=None):
            assert t.shape == x.shape[:-2]
            return torch.zeros_like(x)

    x0, x1 = torch.randn(3, 4, 2, 5), torch.randn(3, 4, 2, 5)
    out = nami.fm_loss(F(), x0, x1, reduction="none")
    assert out.shape == (3, 4)
    assert torch.allclose(out, (x1 - x0).square().mean((-2, -1)))


def test_bad_input():
    with pytest.raises(ShapeError, match="same shape"):
        nami.fm_loss(Zero(), torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="t must lie in \\[0, 1\\]"):
        nami.fm_loss(Zero(), torch.zeros(3, 2), torch.zeros(3, 2), t=torch.tensor([0.0, 0.5, 1.2]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        nami.fm_loss(Zero(), torch.zeros(3, 2), torch.zeros(3, 2), reduction="avg")
    with pytest.raises(TypeError, match="event_ndim"):
        nami.fm_loss(lambda x, t, c=None: x, torch.zeros(3, 2), torch.zeros(3, 2))


def test_path_by_registry_name():
    x0, x1, t = torch.randn(6, 2), torch.randn(6, 2), torch.rand(6)
    assert torch.equal(nami.fm_loss(Linear(), x0, x1, t, path="cosine"), nami.fm_loss(Linear(), x0, x1, t, path=CosinePath()))
    with pytest.raises(nami.ComponentNotFoundError, match="cosine"):
        nami.fm_loss(Linear(), x0, x1, t, path="cosin")
