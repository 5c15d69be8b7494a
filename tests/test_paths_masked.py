"""nami_paths.masked: padded objects stay exactly zero, do not count in the loss, and the
mask reaches the field."""

from __future__ import annotations

import pytest
import torch

import nami
from nami_core.losses import fm_loss
from nami_paths import CosinePath, masked_fm_loss, masked_sample

N, F = 5, 3


class SetField(torch.nn.Module):
    """A tiny DeepSets-style field on (N, F) events that uses the mask in its pooling."""

    event_ndim = 2

    def __init__(self, context_dim: int = 0):
        super().__init__()
        self.phi = torch.nn.Linear(F + 1, 8)
        self.rho = torch.nn.Linear(F + 1 + 8 + context_dim, F)
        self.seen_mask = None

    def forward(self, x, t, c=None, mask=None):
        self.seen_mask = mask
        tt = t[..., None, None].expand(*x.shape[:-1], 1)
        h = torch.tanh(self.phi(torch.cat([x, tt], -1)))
        m = torch.ones(x.shape[:-1], dtype=x.dtype) if mask is None else mask.to(x.dtype)
        pooled = (h * m[..., None]).sum(-2, keepdim=True) / m.sum(-1, keepdim=True)[..., None].clamp_min(1)
        feats = [x, tt, pooled.expand(*x.shape[:-1], 8)]
        if c is not None:
            feats.append(c[..., None, :].expand(*x.shape[:-1], c.shape[-1]))
        return self.rho(torch.cat(feats, -1))


class MaskBlind(torch.nn.Module):
    """A field whose signature has no mask: it must not be given one."""

    event_ndim = 2

    def forward(self, x, t, c=None):
        return torch.full_like(x, float("nan"))


def _data(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0, x1 = torch.randn(n, N, F, generator=g), torch.randn(n, N, F, generator=g)
    sizes = torch.randint(0, N + 1, (n,), generator=g)
    mask = torch.arange(N)[None, :] < sizes[:, None]
    return x0, x1, mask


@pytest.mark.parametrize("path", [None, CosinePath()])
def test_all_ones_mask_equals_fm_loss(path):
    torch.manual_seed(0)
    field = SetField()
    x0, x1, _ = _data()
    ones = torch.ones(8, N, dtype=torch.bool)
    a = masked_fm_loss(field, x0, x1, ones, path=path, generator=torch.Generator().manual_seed(1))
    b = fm_loss(field, x0, x1, path=path, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(a, b, rtol=1e-6, atol=0)
    for red in ("none", "sum"):
        a = masked_fm_loss(field, x0, x1, ones, path=path, reduction=red, generator=torch.Generator().manual_seed(1))
        b = fm_loss(field, x0, x1, path=path, reduction=red, generator=torch.Generator().manual_seed(1))
        assert torch.allclose(a, b, rtol=1e-6, atol=0)


def test_all_zero_mask_is_exactly_zero_with_zero_gradient():
    field = SetField()
    x0, x1, _ = _data()
    zeros = torch.zeros(8, N)
    for red in ("mean", "sum", "none"):
        loss = masked_fm_loss(field, x0, x1, zeros, reduction=red)
        assert torch.equal(loss, torch.zeros_like(loss))
    masked_fm_loss(field, x0, x1, zeros).backward()
    assert all(p.grad is None or torch.equal(p.grad, torch.zeros_like(p.grad)) for p in field.parameters())


def test_padded_slots_do_not_matter_and_normalisation():
    torch.manual_seed(0)
    field = SetField()
    x0, x1, mask = _data()
    t = torch.rand(8)
    a = masked_fm_loss(field, x0, x1, mask, t, reduction="none")
    pad = ~mask[..., None]
    junk0 = x0.masked_fill(pad, 1e6)
    junk1 = x1.masked_fill(pad, -7.0)
    b = masked_fm_loss(field, junk0, junk1, mask, t, reduction="none")
    assert torch.equal(a, b)
    # per-sample loss = squared error over real object-features / (count * F)
    m = mask[..., None].float()
    xt = (1 - t[:, None, None]) * x0 * m + t[:, None, None] * x1 * m
    pred = field(xt, t, mask=mask)
    err = ((pred - (x1 - x0) * m) ** 2 * m).sum((-2, -1))
    count = mask.sum(-1) * F
    expected = torch.where(count > 0, err / count.clamp_min(1), torch.zeros_like(err))
    assert torch.allclose(a, expected, atol=1e-6)
    mean = masked_fm_loss(field, x0, x1, mask, t)
    assert torch.allclose(mean, err.sum() / count.sum(), atol=1e-6)
    assert field.seen_mask is not None and torch.equal(field.seen_mask, mask)


def test_mask_is_not_given_to_fields_without_the_parameter():
    x0, x1, mask = _data()
    loss = masked_fm_loss(MaskBlind(), x0, x1, torch.zeros(8, N, dtype=torch.bool))
    assert torch.equal(loss, torch.tensor(0.0))  # NaN predictions at padded slots are dropped
    with pytest.raises(TypeError):
        masked_fm_loss(MaskBlind(), x0, x1, mask, pass_mask=True)


def test_mask_shape_errors():
    x0, x1, _ = _data()
    with pytest.raises(ValueError, match="mask"):
        masked_fm_loss(SetField(), x0, x1, torch.ones(8, N + 1))
    with pytest.raises(ValueError, match="reduction"):
        masked_fm_loss(SetField(), x0, x1, torch.ones(8, N), reduction="avg")


@pytest.mark.parametrize("solver", ["euler", "rk4"])
def test_masked_sample_keeps_padded_slots_exactly_zero(solver):
    torch.manual_seed(0)
    field = SetField()
    fm = nami.FlowMatching(field, nami.StandardNormal((N, F)), nami.build("solver", solver, steps=8))
    _, _, mask = _data(16, seed=3)
    x = masked_sample(fm, mask, generator=torch.Generator().manual_seed(0))
    assert x.shape == (16, N, F)
    assert torch.equal(x[~mask], torch.zeros_like(x[~mask]))
    assert (x[mask] != 0).all()
    assert torch.equal(field.seen_mask, mask)
    y = masked_sample(fm, mask, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, y)


def test_masked_sample_rhs_zeroes_the_velocity():
    """Padded slots stay zero at every solver stage, even when the field returns NaN there."""
    states = []

    class Loud(torch.nn.Module):
        event_ndim = 2

        def forward(self, x, t, c=None, mask=None):
            states.append(x.clone())
            return torch.where(mask[..., None], -x, torch.full_like(x, float("nan")))

    fm = nami.FlowMatching(Loud(), nami.StandardNormal((N, F)), nami.build("solver", "rk4", steps=3))
    mask = torch.tensor([[True, True, False, False, False], [True] * N])
    x = masked_sample(fm, mask)
    assert torch.isfinite(x).all()
    for s in states:
        assert torch.equal(s[~mask], torch.zeros_like(s[~mask]))


def test_masked_sample_shapes_and_context():
    torch.manual_seed(0)
    field = SetField(context_dim=2)
    fm = nami.FlowMatching(field, nami.StandardNormal((N, F)), nami.build("solver", "euler", steps=2))
    c = torch.randn(4, 2)
    one = torch.tensor([True, True, True, False, False])
    x = masked_sample(fm, one, (6,), c=c)
    assert x.shape == (6, 4, N, F) and torch.equal(x[..., 3:, :], torch.zeros(6, 4, 2, F))
    process = fm(c)
    mask = torch.ones(6, 4, N, dtype=torch.bool)
    assert masked_sample(process, mask).shape == (6, 4, N, F)
    with pytest.raises(ValueError, match="batch_shape"):
        masked_sample(process, torch.ones(6, 3, N, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask"):
        masked_sample(process, torch.ones(6, 4, N + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="already bound"):
        masked_sample(process, mask, c=c)


def test_facade():
    assert nami.masked_fm_loss is masked_fm_loss and nami.masked_sample is masked_sample
