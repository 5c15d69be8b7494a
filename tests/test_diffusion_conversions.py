"""Parameterisation conversions and the seed's wrappers against the Gaussian closed forms."""

from __future__ import annotations

import itertools

import pytest
import torch

import nami
from nami_diffusion.parameterization import PARAMETERIZATIONS, convert, from_x0_eps, to_x0_eps
from nami_diffusion.schedules import EDMSchedule, VESchedule, VPSchedule
from nami_diffusion.testing import GaussianDiffusionModel
from nami_diffusion.wrappers import ConvertPrediction, DriftFromVelocityScore, MirrorVelocityFromScore, ScoreFromNoise

F64 = torch.float64
MU = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
SD = 0.6
SCHEDULES = [VPSchedule(), VESchedule(), EDMSchedule()]
IDS = ["vp", "ve", "edm"]


def exact(schedule, x, t):
    """Every prediction for Gaussian data, from GROUND_TRUTH.md (independent of the library's maths)."""
    a, s = schedule.alpha(t)[:, None], schedule.sigma(t)[:, None]
    da, ds = schedule.d_alpha(t)[:, None], schedule.d_sigma(t)[:, None]
    v = a**2 * SD**2 + s**2
    dv = 2 * a * da * SD**2 + 2 * s * ds
    r = x - a * MU
    x0 = MU + a * SD**2 * r / v
    eps = s * r / v
    return {
        "eps": eps,
        "x0": x0,
        "score": -r / v,
        "v": a * eps - s * x0,
        "velocity": da * MU + dv / (2 * v) * r,
    }


def states(schedule, t):
    g = torch.Generator().manual_seed(0)
    a, s = schedule.alpha(t)[:, None], schedule.sigma(t)[:, None]
    v = a**2 * SD**2 + s**2
    return a * MU + v.sqrt() * torch.randn(len(t), 3, generator=g, dtype=F64)


T = torch.tensor([0.05, 0.2, 0.5, 0.8, 1.0], dtype=F64)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
@pytest.mark.parametrize("source, target", list(itertools.permutations(PARAMETERIZATIONS, 2)))
def test_convert_matches_closed_form(schedule, source, target):
    x = states(schedule, T)
    truth = exact(schedule, x, T)
    out = convert(truth[source], x, T, schedule, source=source, target=target)
    assert torch.allclose(out, truth[target], rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
@pytest.mark.parametrize("p", PARAMETERIZATIONS)
def test_exact_models_and_pair_round_trip(schedule, p):
    x = states(schedule, T)
    truth = exact(schedule, x, T)
    model = GaussianDiffusionModel(MU, SD, schedule, p)
    assert torch.allclose(model(x, T), truth[p], rtol=1e-9, atol=1e-10)
    x0, eps = to_x0_eps(truth[p], x, T, schedule, p)
    assert torch.allclose(x0, truth["x0"], rtol=1e-8) and torch.allclose(eps, truth["eps"], rtol=1e-8, atol=1e-10)
    assert torch.allclose(from_x0_eps(x0, eps, x, T, schedule, p), truth[p], rtol=1e-8, atol=1e-9)
    # x_t = alpha x0 + sigma eps holds for the pair recovered from any prediction
    assert torch.allclose(schedule.marginal(x0, eps, T), x, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
def test_score_from_noise(schedule):
    x = states(schedule, T)
    score = ScoreFromNoise(GaussianDiffusionModel(MU, SD, schedule, "eps"), schedule)
    assert score.event_ndim == 1
    assert torch.allclose(score(x, T), exact(schedule, x, T)["score"], rtol=1e-10)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
def test_mirror_velocity_is_probability_flow(schedule):
    x = states(schedule, T)
    u = MirrorVelocityFromScore(GaussianDiffusionModel(MU, SD, schedule, "score"), schedule)
    assert torch.allclose(u(x, T), exact(schedule, x, T)["velocity"], rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
def test_drift_from_velocity_score_is_reverse_drift(schedule):
    # Anderson's reverse drift f - g^2 s (with respect to t, for sampling 1 -> 0), written out:
    x = states(schedule, T)
    truth = exact(schedule, x, T)
    f = schedule.f_coef(T)[:, None] * x
    g2 = schedule.g2(T)[:, None]
    expected = f - g2 * truth["score"]
    vel = GaussianDiffusionModel(MU, SD, schedule, "velocity")
    score = GaussianDiffusionModel(MU, SD, schedule, "score")
    drift = DriftFromVelocityScore(vel, score, schedule)
    assert torch.allclose(drift(x, T), expected, rtol=1e-8, atol=1e-8)
    # the sign: it is NOT u + g^2/2 s (the forward-time drift of the same marginals)
    assert not torch.allclose(drift(x, T), truth["velocity"] + 0.5 * g2 * truth["score"])
    # any diffusion: a constant, a callable g(t); gamma = 0 is the ODE
    assert torch.allclose(DriftFromVelocityScore(vel, score, 0.0)(x, T), truth["velocity"])
    g = lambda t: 2.0 * torch.ones_like(t)  # noqa: E731
    assert torch.allclose(DriftFromVelocityScore(vel, score, g)(x, T), truth["velocity"] - 2.0 * truth["score"])
    assert torch.allclose(drift.g(T), schedule.diffusion(T))


def test_convert_prediction_wrapper_and_registry():
    s = VPSchedule()
    x = states(s, T)
    w = ConvertPrediction(GaussianDiffusionModel(MU, SD, s, "v"), s, source="v", target="x0")
    assert torch.allclose(w(x, T), exact(s, x, T)["x0"], rtol=1e-8)
    with pytest.raises(ValueError, match="target must be one of"):
        ConvertPrediction(w, s, source="v", target="noise")
    with pytest.raises(TypeError, match="event_ndim"):
        ScoreFromNoise(lambda x, t, c=None: x, s)
    assert nami.ScoreFromNoise is ScoreFromNoise
    assert nami.DriftFromVelocityScore is DriftFromVelocityScore
    assert nami.MirrorVelocityFromScore is MirrorVelocityFromScore


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
def test_endpoints_are_finite_where_regular(schedule):
    ends = torch.tensor([0.0, 1.0], dtype=F64)
    x = states(schedule, ends)
    for p in PARAMETERIZATIONS:
        model = GaussianDiffusionModel(MU, SD, schedule, p)
        out = model(x, ends)
        if isinstance(schedule, VPSchedule) and p == "velocity":
            assert torch.isfinite(out).all()  # the exact field is regular; conversions through d_sigma are not
            continue
        assert torch.isfinite(out).all(), p
        for target in PARAMETERIZATIONS:
            y = convert(out, x, ends, schedule, source=p, target=target)
            if isinstance(schedule, VPSchedule):  # t = 1 always regular; t = 0 only where no division by sigma
                assert torch.isfinite(y[1]).all()
                regular_at_0 = (p, target) in {("eps", "x0"), ("score", "x0"), ("score", "eps"), ("v", "x0"),
                                               ("v", "eps"), ("eps", "v"), ("score", "v")} or target == p
                if regular_at_0:
                    assert torch.isfinite(y[0]).all(), (p, target)
            else:
                assert torch.isfinite(y).all(), (p, target)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_states_keep_their_dtype(dtype):
    s = VPSchedule()
    x = torch.randn(4, 3).to(dtype)
    t = torch.full((4,), 0.5).to(dtype)
    for source, target in itertools.permutations(PARAMETERIZATIONS, 2):
        y = convert(x, x, t, s, source=source, target=target)
        assert y.dtype == dtype and torch.isfinite(y).all()
    y = ScoreFromNoise(GaussianDiffusionModel(MU.to(dtype), SD, s, "eps"), s)(x, t)
    assert y.dtype == dtype and torch.isfinite(y).all()
