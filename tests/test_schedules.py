"""Noise schedules against their closed forms (shared/GROUND_TRUTH.md) and autograd."""

from __future__ import annotations

import math

import attrs
import pytest
import torch

import nami
from nami_diffusion.schedules import DiffusionSchedule, EDMSchedule, VESchedule, VPSchedule

F64 = torch.float64
SCHEDULES = [VPSchedule(), VESchedule(), EDMSchedule(), VPSchedule(beta_min=0.5, beta_max=5.0),
             VESchedule(sigma_min=0.1, sigma_max=10.0), EDMSchedule(sigma_min=0.01, sigma_max=20.0, rho=3.0)]
IDS = [repr(s) for s in SCHEDULES]
T = torch.linspace(0.0, 1.0, 11, dtype=F64)
T_IN = torch.linspace(0.01, 1.0, 12, dtype=F64)  # VP's d_sigma is infinite at t = 0


def closed_form(s, t):
    """(alpha, sigma) from GROUND_TRUTH.md, written independently."""
    if isinstance(s, VPSchedule):
        b = s.beta_min * t + 0.5 * (s.beta_max - s.beta_min) * t**2
        a = torch.exp(-0.5 * b)
        return a, torch.sqrt(1 - a**2)
    if isinstance(s, VESchedule):
        return torch.ones_like(t), s.sigma_min * (s.sigma_max / s.sigma_min) ** t
    lo, hi = s.sigma_min ** (1 / s.rho), s.sigma_max ** (1 / s.rho)
    return torch.ones_like(t), (lo + t * (hi - lo)) ** s.rho


def _grad(f, t):
    """d f(t) / dt elementwise by autograd (zero for a constant)."""
    t = t.clone().requires_grad_(True)
    out = f(t)
    if not out.requires_grad:
        return torch.zeros_like(t)
    (g,) = torch.autograd.grad(out.sum(), t)
    return g


@pytest.mark.parametrize("s", SCHEDULES, ids=IDS)
def test_alpha_sigma_closed_forms(s):
    a, sig = closed_form(s, T)
    assert torch.allclose(s.alpha(T), a, rtol=1e-12, atol=1e-14)
    assert torch.allclose(s.sigma(T), sig, rtol=1e-10, atol=1e-14)
    a_in, s_in = closed_form(s, T_IN)
    assert torch.allclose(s.scaled_sigma(T_IN), s_in / a_in)


@pytest.mark.parametrize("s", SCHEDULES, ids=IDS)
def test_derivatives_match_autograd(s):
    for f, df in [(s.alpha, s.d_alpha), (s.sigma, s.d_sigma)]:
        g = _grad(f, T_IN)
        assert torch.allclose(df(T_IN), g, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("s", SCHEDULES, ids=IDS)
def test_forward_sde_matches_the_marginals(s):
    # dx = f x dt + g dW keeps x_t | x0 ~ N(alpha x0, sigma^2): d alpha/dt = f alpha, d sigma^2/dt = 2 f sigma^2 + g^2
    da = _grad(s.alpha, T_IN)
    dv = _grad(lambda t: s.sigma(t) ** 2, T_IN)
    f, g2 = s.f_coef(T_IN), s.g2(T_IN)
    assert torch.allclose(da, f * s.alpha(T_IN), rtol=1e-9, atol=1e-12)
    assert torch.allclose(dv, 2 * f * s.sigma(T_IN) ** 2 + g2, rtol=1e-9)
    assert torch.allclose(s.diffusion(T_IN) ** 2, g2, rtol=1e-12)
    x = torch.randn(12, 3, dtype=F64)
    assert torch.allclose(s.drift(x, T_IN), f[:, None] * x)
    # the closed-form overrides agree with the base class's general formula
    assert torch.allclose(DiffusionSchedule.g2(s, T_IN), g2, rtol=1e-9)
    assert torch.allclose(DiffusionSchedule.log_snr(s, T_IN), s.log_snr(T_IN), rtol=1e-9, atol=1e-9)


def test_vp_has_unit_variance_and_beta_diffusion():
    s = VPSchedule()
    assert torch.allclose(s.alpha(T) ** 2 + s.sigma(T) ** 2, torch.ones_like(T), atol=1e-15)
    assert torch.allclose(s.g2(T), 0.1 + 19.9 * T)
    assert torch.allclose(s.f_coef(T), -0.5 * (0.1 + 19.9 * T))


@pytest.mark.parametrize("s", SCHEDULES, ids=IDS)
def test_log_snr_inverse_round_trips(s):
    lam = s.log_snr(T)
    assert torch.all(lam[1:] < lam[:-1])  # strictly decreasing
    assert torch.allclose(s.t_from_log_snr(lam), T, atol=1e-10)
    assert torch.allclose(s.t_from_scaled_sigma(s.scaled_sigma(T)), T, atol=1e-10)
    # the base class's bisection agrees with the closed-form inverse
    assert torch.allclose(DiffusionSchedule.t_from_log_snr(s, lam), T, atol=1e-12)
    # out-of-range values clip to the ends
    assert s.t_from_log_snr(torch.tensor([1e3, -1e3], dtype=F64)).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("s", SCHEDULES, ids=IDS)
def test_finite_at_both_ends(s):
    ends = torch.tensor([0.0, 1.0], dtype=F64)
    for name in ["alpha", "sigma", "d_alpha", "f_coef", "g2", "diffusion"]:
        assert torch.isfinite(getattr(s, name)(ends)).all(), name
    assert torch.isfinite(s.d_sigma(ends[1:])).all() and torch.isfinite(s.log_snr(ends[1:])).all()
    if isinstance(s, VPSchedule):  # sigma(0) = 0: exactly +inf, documented
        assert float(s.d_sigma(ends[:1])) == math.inf and float(s.log_snr(ends[:1])) == math.inf
        assert float(s.t_from_log_snr(torch.tensor(math.inf))) == 0.0
    else:
        assert torch.isfinite(s.d_sigma(ends)).all() and torch.isfinite(s.log_snr(ends)).all()
    assert torch.all(s.alpha(ends) > 0)


@pytest.mark.parametrize("s", SCHEDULES, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_computed_in_float32_or_better(s, dtype):
    t = torch.tensor([0.25, 0.75]).to(dtype)
    expected = torch.promote_types(dtype, torch.float32)
    for name in ["alpha", "sigma", "d_alpha", "d_sigma", "log_snr", "g2", "f_coef", "scaled_sigma"]:
        out = getattr(s, name)(t)
        assert out.dtype == expected and torch.isfinite(out).all(), name
    x = torch.ones(2, 3, dtype=dtype)
    assert s.drift(x, t).dtype == dtype
    # python floats are evaluated in float64
    assert s.sigma(0.5).dtype == F64


def test_prior_std_and_defaults():
    assert VPSchedule().prior_std == 1.0 and VPSchedule.default_t_end == 1e-3
    assert VESchedule().prior_std == 50.0 and VESchedule.default_t_end == 0.0
    assert EDMSchedule().prior_std == 80.0 and EDMSchedule().sigma_data == 0.5
    assert float(EDMSchedule().sigma(torch.tensor(0.0, dtype=F64))) == pytest.approx(0.002, rel=1e-12)


@pytest.mark.parametrize("make, message", [
    (lambda: VPSchedule(beta_min=1.0, beta_max=0.5), "beta_max must be > beta_min"),
    (lambda: VPSchedule(beta_min=-0.1), "beta_min"),
    (lambda: VESchedule(sigma_min=0.0), "sigma_min"),
    (lambda: VESchedule(sigma_min=5.0, sigma_max=1.0), "sigma_max must be > sigma_min"),
    (lambda: EDMSchedule(rho=0.0), "rho"),
    (lambda: EDMSchedule(sigma_data=float("nan")), "sigma_data"),
])
def test_validation(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_configs_round_trip_and_registry():
    for s in SCHEDULES:
        assert type(s)(**attrs.asdict(s)) == s
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            s.rho = 1.0  # type: ignore[misc]
    assert nami.VPSchedule is VPSchedule and nami.EDMSchedule is EDMSchedule
    assert nami.build("schedule", "ve", sigma_max=10.0) == VESchedule(sigma_max=10.0)
    assert nami.build("schedule", "nami-diffusion:edm") == EDMSchedule()


def test_broadcast_time_is_evaluated_once_and_matches():
    from nami_diffusion.schedules import collapse_time

    t = torch.tensor(0.3, dtype=F64).expand(5, 4)
    c = collapse_time(t)
    assert c.ndim == 0 and float(c) == 0.3
    assert collapse_time(torch.tensor([[0.3]]).expand(5, 1)).ndim == 0  # size-1 dims have any stride
    materialised = torch.full((5, 4), 0.3, dtype=F64)
    assert collapse_time(materialised) is materialised
    s = VPSchedule()
    assert torch.equal(s.sigma(collapse_time(t)).expand(5, 4), s.sigma(materialised))
