"""DDIM, DPM-Solver++ and EDM Heun: model-call counts, landing on the data, measured orders,
2M vs 1st order on an exact Gaussian-mixture denoiser, grids, moments."""

from __future__ import annotations

import math

import attrs
import numpy as np
import pytest
import torch

import nami
from nami_diffusion.grids import noise_levels
from nami_diffusion.process import Diffusion
from nami_diffusion.samplers import DDIM, DPMSolverPP, EDMHeun
from nami_diffusion.schedules import EDMSchedule, VESchedule, VPSchedule
from nami_diffusion.testing import GaussianDiffusionModel, GaussianMixtureModel

F64 = torch.float64
SCHEDULES = [VPSchedule(), VESchedule(), EDMSchedule()]
IDS = ["vp", "ve", "edm"]


def mixture(schedule):
    means = torch.tensor([[-1.0, 0.5], [1.5, -0.5], [0.0, 2.0]], dtype=F64)
    return GaussianMixtureModel([0.3, 0.5, 0.2], means, [0.3, 0.5, 0.4], schedule, "x0")


def noise(schedule, n=300, seed=0):
    return torch.randn(n, 2, dtype=F64, generator=torch.Generator().manual_seed(seed)) * schedule.prior_std


def run(sampler, model, schedule, z, **kw):
    return sampler.sample_diffusion(model, schedule, z, 1.0, schedule.default_t_end, time_shape=z.shape[:1], **kw)


_REFS: dict = {}


def reference(schedule, z):
    """The probability-flow solution to t_end, then the final denoising step (what every sampler
    approximates), by DPM-Solver++(2M) with many steps (error ~1e-5 here), cached."""
    key = (repr(schedule), tuple(z.shape), float(z.sum()))
    if key not in _REFS:
        _REFS[key] = run(DPMSolverPP(steps=300), mixture(schedule), schedule, z).y
    return _REFS[key]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
@pytest.mark.parametrize("sampler, calls", [
    (DDIM(steps=7), 7), (DDIM(steps=7, eta=1.0), 7), (DPMSolverPP(steps=7), 7), (DPMSolverPP(steps=7, order=1), 7),
    (EDMHeun(steps=7), 13), (EDMHeun(steps=7, s_churn=10.0), 13), (EDMHeun(steps=7, final_zero=False), 14),
    (EDMHeun(steps=1), 1), (DPMSolverPP(steps=1), 1),
], ids=lambda v: repr(v) if not isinstance(v, int) else str(v))
def test_exact_model_call_counts(schedule, sampler, calls):
    model = mixture(schedule)
    sol = run(sampler, model, schedule, noise(schedule, 20), generator=torch.Generator().manual_seed(0))
    assert sol.nfe == calls and model.calls == calls
    assert torch.isfinite(sol.y).all()


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
@pytest.mark.parametrize("sampler", [DDIM(steps=6), DPMSolverPP(steps=6), EDMHeun(steps=6)], ids=repr)
def test_last_step_lands_exactly_on_the_data_prediction(schedule, sampler):
    model = mixture(schedule)
    outputs = []

    def denoise(x, t):
        outputs.append(model(x, t))
        return outputs[-1]

    sol = run(sampler, denoise, schedule, noise(schedule, 10), trajectory=True)
    assert torch.equal(sol.y, outputs[-1])
    assert sol.ts[0] == 1.0 and sol.ts[-1] == 0.0 and len(sol.ts) == 7
    assert sol.ys.shape == (7, 10, 2) and torch.equal(sol.ys[-1], sol.y)


@pytest.mark.parametrize("schedule", [VPSchedule(), EDMSchedule()], ids=["vp", "edm"])
def test_dpm_solver_pp_2m_beats_first_order_at_equal_evaluations(schedule):
    z = noise(schedule)
    ref = reference(schedule, z)
    for nfe in (10, 20):
        e1 = (run(DPMSolverPP(steps=nfe, order=1), mixture(schedule), schedule, z).y - ref).norm(dim=-1).mean()
        e2 = (run(DPMSolverPP(steps=nfe, order=2), mixture(schedule), schedule, z).y - ref).norm(dim=-1).mean()
        assert e2 < 0.5 * e1, (nfe, float(e1), float(e2))


@pytest.mark.parametrize("make, order", [
    (lambda n: DDIM(steps=n, spacing="logsnr"), 1.0),
    (lambda n: DPMSolverPP(steps=n, lower_order_final=False), 2.0),
    (lambda n: EDMHeun(steps=n, spacing="logsnr"), 2.0),
], ids=["ddim", "dpmpp2m", "edm_heun"])
def test_measured_convergence_order(make, order):
    s = VPSchedule()
    z = noise(s, 200)
    ref = reference(s, z)
    ns = [20, 40, 80]
    errs = [float((run(make(n), mixture(s), s, z).y - ref).norm(dim=-1).mean()) for n in ns]
    measured = -float(np.polyfit(np.log(ns), np.log(errs), 1)[0])
    assert abs(measured - order) < 0.25, (errs, measured)


def test_ddim_is_first_order_dpm_solver_pp():
    s = VESchedule()
    z = noise(s, 50)
    a = run(DDIM(steps=9, spacing="logsnr"), mixture(s), s, z).y
    b = run(DPMSolverPP(steps=9, order=1), mixture(s), s, z).y
    assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
@pytest.mark.parametrize("sampler, bias", [
    (DDIM(steps=200, eta=1.0, spacing="logsnr"), 0.03),  # ancestral sampling: O(1/N) variance deficit
    (EDMHeun(steps=30, s_churn=40.0), 0.01), (DPMSolverPP(steps=25), 0.01), (DDIM(steps=60), 0.01),
], ids=repr)
def test_gaussian_samples_match_target_moments(schedule, sampler, bias):
    mu, sd, n = torch.tensor([1.0, -2.0], dtype=F64), 0.6, 4000
    model = GaussianDiffusionModel(mu, sd, schedule, "eps")
    d = Diffusion(model, schedule, sampler, event_shape=(2,)).double()
    x = d().sample((n,), generator=torch.Generator().manual_seed(1))
    # final_zero: samples are E[x0 | x_t_end], variance sd^4 a^2 / v(t_end) = sd^2 (1 - O(sigma~^2))
    var = sd**2
    assert torch.allclose(x.mean(0), mu, atol=5 * sd / math.sqrt(n) + 0.01)
    assert torch.allclose(torch.cov(x.T), var * torch.eye(2, dtype=F64), atol=6 * var * math.sqrt(2 / n) + bias)


def test_stochastic_samplers_are_reproducible():
    s = EDMSchedule()
    z = noise(s, 30)
    for sampler in [DDIM(steps=5, eta=0.5), EDMHeun(steps=5, s_churn=20.0)]:
        a = run(sampler, mixture(s), s, z, generator=torch.Generator().manual_seed(3)).y
        b = run(sampler, mixture(s), s, z, generator=torch.Generator().manual_seed(3)).y
        c = run(sampler, mixture(s), s, z, generator=torch.Generator().manual_seed(4)).y
        assert torch.equal(a, b) and not torch.equal(a, c)


def test_grids():
    s = EDMSchedule()
    # Karras grid: sigma_i = (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho, then 0
    ts, sig = noise_levels(s, 5, 1.0, 0.0, spacing="karras", rho=7.0)
    k = torch.arange(5, dtype=F64) / 4
    expected = (80 ** (1 / 7) + k * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert torch.allclose(sig[:-1], expected, rtol=1e-12) and sig[-1] == 0.0
    assert ts[0] == 1.0 and ts[-2] == 0.0 and ts[-1] == 0.0
    # log-SNR uniform
    v = VPSchedule()
    ts, sig = noise_levels(v, 6, 1.0, 1e-3, spacing="logsnr", final_zero=False)
    lam = v.log_snr(ts)
    assert torch.allclose(lam[1:] - lam[:-1], torch.full((6,), float(lam[1] - lam[0]), dtype=F64), rtol=1e-9)
    assert ts[0] == 1.0 and ts[-1] == 1e-3 and len(ts) == 7
    # uniform, and VP ending at sigma = 0 by itself
    ts, sig = noise_levels(v, 4, 1.0, 0.0, spacing="uniform")
    assert ts.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0] and sig[-1] == 0.0 and torch.all(sig[1:] < sig[:-1])
    with pytest.raises(ValueError, match="karras"):
        noise_levels(v, 4, 1.0, 0.0, spacing="karras")
    with pytest.raises(ValueError, match="t_end < t_start"):
        noise_levels(v, 4, 0.5, 0.7)


def test_configs_validated_and_registered():
    with pytest.raises(ValueError, match="steps must be >= 1"):
        DPMSolverPP(steps=0)
    with pytest.raises(ValueError, match="order must be one of"):
        DPMSolverPP(order=3)
    with pytest.raises(ValueError, match="spacing must be one of"):
        DDIM(spacing="cosine")
    with pytest.raises(ValueError, match="eta"):
        DDIM(eta=-1.0)
    with pytest.raises(ValueError, match="s_tmax"):
        EDMHeun(s_tmax=float("nan"))
    assert attrs.evolve(EDMHeun(), steps=5).steps == 5
    assert nami.build("sampler", "dpm_solver_pp", steps=10) == DPMSolverPP(steps=10)
    assert nami.build("sampler", "edm_heun") == EDMHeun() and nami.build("sampler", "ddim") == DDIM()
