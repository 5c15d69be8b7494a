"""Denoising score matching: targets, weightings, time sampling, EDM preconditioning."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import nami
from nami_core.errors import ShapeError
from nami_diffusion.losses import EDMPrecond, dsm_loss, edm_precond_coefs, sample_time
from nami_diffusion.parameterization import PARAMETERIZATIONS
from nami_diffusion.process import Diffusion
from nami_diffusion.schedules import EDMSchedule, VESchedule, VPSchedule
from nami_diffusion.testing import GaussianDiffusionModel
from nami_solvers import RK4

F64 = torch.float64
MU = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
SD = 0.6
N = 64


def batch(seed=0, n=N):
    g = torch.Generator().manual_seed(seed)
    x0 = MU + SD * torch.randn(n, 3, generator=g, dtype=F64)
    eps = torch.randn(n, 3, generator=g, dtype=F64)
    t = 0.05 + 0.95 * torch.rand(n, generator=g, dtype=F64)
    return x0, eps, t


class Perturbed(nn.Module):
    """The exact model plus a fixed error in data space, expressed in its own parameterisation."""

    event_ndim = 1

    def __init__(self, schedule, p, delta):
        super().__init__()
        self.exact = GaussianDiffusionModel(MU, SD, schedule, "x0")
        self.schedule, self.p, self.delta = schedule, p, delta

    def forward(self, x, t, c=None):
        from nami_diffusion.parameterization import from_x0_eps

        x0 = self.exact(x, t) + self.delta
        a, s = self.schedule.alpha(t)[:, None], self.schedule.sigma(t)[:, None]
        eps = (x - a * x0) / s
        return from_x0_eps(x0, eps, x, t, self.schedule, self.p)


@pytest.mark.parametrize("schedule", [VPSchedule(), EDMSchedule()], ids=["vp", "edm"])
@pytest.mark.parametrize("weighting", ["eps", "x0", "v", "likelihood", "min_snr", "edm", lambda t: 1.0 + t])
def test_weightings_are_the_same_loss_in_every_parameterization(schedule, weighting):
    x0, eps, t = batch()
    delta = torch.tensor([0.1, -0.2, 0.05], dtype=F64)
    losses = [dsm_loss(Perturbed(schedule, p, delta), schedule, x0, parameterization=p, weighting=weighting,
                       t=t, noise=eps, reduction="none") for p in PARAMETERIZATIONS]
    for p, loss in zip(PARAMETERIZATIONS, losses):
        assert torch.allclose(loss, losses[1], rtol=1e-7), p  # losses[1] is "x0"


def test_native_weighting_is_the_plain_mse_and_named_weights_reproduce_losses():
    s = VPSchedule()
    x0, eps, t = batch(1)
    model = GaussianDiffusionModel(MU, SD, s, "eps")
    x_t = s.marginal(x0, eps, t)
    plain = (model(x_t, t) - eps).square().mean(-1)
    assert torch.allclose(dsm_loss(model, s, x0, t=t, noise=eps, reduction="none"), plain)
    # the x0 model with weighting "eps" is the eps-MSE (Ho et al.'s simple loss) ...
    x0_model = GaussianDiffusionModel(MU, SD, s, "x0")
    assert torch.allclose(dsm_loss(x0_model, s, x0, parameterization="x0", weighting="eps", t=t, noise=eps,
                                   reduction="none"), plain, rtol=1e-9)
    # ... and the score model with weighting "eps" is Song et al.'s sigma^2-weighted score loss
    score = GaussianDiffusionModel(MU, SD, s, "score")
    ssq = (score(x_t, t) + eps / s.sigma(t)[:, None]).square().mean(-1) * s.sigma(t) ** 2
    assert torch.allclose(dsm_loss(score, s, x0, parameterization="score", weighting="eps", t=t, noise=eps,
                                   reduction="none"), ssq, rtol=1e-9)
    lik = (score(x_t, t) + eps / s.sigma(t)[:, None]).square().mean(-1) * s.g2(t)
    assert torch.allclose(dsm_loss(score, s, x0, parameterization="score", weighting="likelihood", t=t, noise=eps,
                                   reduction="none"), lik, rtol=1e-9)
    assert torch.allclose(dsm_loss(model, s, x0, t=t, noise=eps, reduction="sum"), plain.sum())


def test_exact_model_attains_the_posterior_variance_and_is_the_minimiser():
    # E ||eps_hat - eps||^2 / d = Var(eps | x_t) = 1 - sigma^2 / v  at a fixed t
    s = VESchedule()
    n, t = 40000, 0.4
    x0, eps, _ = batch(2, n)
    tt = torch.tensor(t, dtype=F64)
    v = SD**2 + float(s.sigma(tt)) ** 2
    model = GaussianDiffusionModel(MU, SD, s, "eps")
    loss = float(dsm_loss(model, s, x0, t=t, noise=eps))
    expected = 1 - float(s.sigma(tt)) ** 2 / v
    assert loss == pytest.approx(expected, rel=0.02)
    worse = Perturbed(s, "eps", torch.full((3,), 0.05, dtype=F64))
    assert float(dsm_loss(worse, s, x0, t=t, noise=eps)) > loss


def test_edm_preconditioning_and_weighting():
    s = EDMSchedule()
    x0, eps, t = batch(3)
    net = nn.Linear(3, 3).double()
    net_calls = []

    class Net(nn.Module):
        event_ndim = 1

        def forward(self, x, c_noise, c=None):
            net_calls.append(c_noise)
            return net(x) * (1 + c_noise[:, None])

    model = EDMPrecond(Net(), s)
    loss = dsm_loss(model, s, x0, parameterization="x0", weighting="edm", t=t, noise=eps, reduction="none")
    sig = s.sigma(t)
    c_skip, c_out, c_in, c_noise = edm_precond_coefs(sig, 0.5)
    x_t = x0 + sig[:, None] * eps
    f = Net()(c_in[:, None] * x_t, c_noise)
    f_target = (x0 - c_skip[:, None] * x_t) / c_out[:, None]
    assert torch.allclose(loss, (f - f_target).square().mean(-1), rtol=1e-9)  # lambda * c_out^2 = 1
    assert net_calls[0].shape == (N,)  # c_noise follows the time rule
    # Karras et al. Table 1 values at sigma = sigma_data: c_skip = 1/2, c_out = c_in^-1 / 2 ...
    cs, co, ci, cn = edm_precond_coefs(torch.tensor(0.5, dtype=F64), 0.5)
    assert float(cs) == pytest.approx(0.5) and float(co) == pytest.approx(0.5 / math.sqrt(2))
    assert float(ci) == pytest.approx(1 / math.sqrt(0.5)) and float(cn) == pytest.approx(0.25 * math.log(0.5))
    # the preconditioned model is a valid x0 model for any schedule (VP: x~ = x / alpha)
    v = VPSchedule()
    out = EDMPrecond(Net(), v, sigma_data=0.5)(v.marginal(x0, eps, t), t)
    assert out.shape == x0.shape and torch.isfinite(out).all()


def test_time_sampling_densities():
    g = torch.Generator().manual_seed(4)
    vp, edm = VPSchedule(), EDMSchedule()
    t = sample_time(vp, (20000,), generator=g, dtype=F64)
    assert float(t.min()) >= 1e-5 and float(t.max()) <= 1.0 and abs(float(t.mean()) - 0.5) < 0.01
    t = sample_time(edm, (20000,), time_sampling="lognormal", generator=g, dtype=F64)
    log_sigma = torch.log(edm.sigma(t))
    assert abs(float(log_sigma.mean()) + 1.2) < 0.03 and abs(float(log_sigma.std()) - 1.2) < 0.03
    t = sample_time(vp, (20000,), time_sampling="logsnr", t_min=1e-3, generator=g, dtype=F64)
    lam = vp.log_snr(t)
    lo, hi = float(vp.log_snr(torch.tensor(1.0))), float(vp.log_snr(torch.tensor(1e-3)))
    assert abs(float(lam.mean()) - 0.5 * (lo + hi)) < 0.1
    assert sample_time(vp, (3,), dtype=torch.float16).dtype == torch.float16
    with pytest.raises(ValueError, match="time_sampling"):
        sample_time(vp, (3,), time_sampling="beta")
    with pytest.raises(ValueError, match="t_min"):
        sample_time(vp, (3,), time_sampling="logsnr", t_min=0.0)


def test_training_reduces_the_loss_and_diffusion_loss_delegates():
    torch.manual_seed(0)
    s = VPSchedule()

    class Net(nn.Module):
        event_ndim = 1

        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 32), nn.SiLU(), nn.Linear(32, 3))

        def forward(self, x, t, c=None):
            return self.body(torch.cat([x, t[:, None]], -1))

    net = Net()
    d = Diffusion(net, s, RK4(steps=4), event_shape=(3,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    data = (MU + SD * torch.randn(256, 3, dtype=F64)).float()
    g = torch.Generator().manual_seed(0)
    first = None
    for _ in range(60):
        loss = d.loss(data, generator=g)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first
    assert nami.dsm_loss is dsm_loss


def test_bad_inputs():
    s = VPSchedule()
    model = GaussianDiffusionModel(MU, SD, s, "score")
    x0, eps, t = batch(5)
    with pytest.raises(ValueError, match="weighting must be one of"):
        dsm_loss(model, s, x0, parameterization="score", weighting="snr2")
    with pytest.raises(ValueError, match="reduction"):
        dsm_loss(model, s, x0, reduction="max")
    with pytest.raises(ShapeError, match="noise"):
        dsm_loss(model, s, x0, noise=eps[:3])
    class Wrong(nn.Module):
        event_ndim = 1

        def forward(self, x, t, c=None):
            return x[..., :2]

    with pytest.raises(ShapeError, match="model returned shape"):
        dsm_loss(Wrong(), s, x0)
    with pytest.raises(ValueError, match="not finite"):
        dsm_loss(model, s, x0, parameterization="score", t=0.0)  # score target -eps/sigma(0) = inf
    with pytest.raises(TypeError, match="event_ndim"):
        dsm_loss(lambda x, t, c=None: x, s, x0)
    with pytest.raises(ValueError, match="parameterization"):
        dsm_loss(model, s, x0, parameterization="noise")
