"""Diffusion SDEs on torchsde: the s = 1 - t mapping, the Brownian motion, registered adapters."""

from __future__ import annotations

import math

import attrs
import pytest
import torch
import torchsde

import nami
from nami_diffusion.process import Diffusion
from nami_diffusion.schedules import EDMSchedule, VESchedule, VPSchedule
from nami_diffusion.sdes import (
    ForwardDiffusionSDE,
    GridBrownian,
    ReverseDiffusionSDE,
    TorchSDEEuler,
    TorchSDEMilstein,
    TorchSDEReversibleHeun,
    TorchSDESolver,
    TorchSDESRK,
)
from nami_diffusion.testing import GaussianDiffusionModel
from nami_solvers.sde import sde_solve

F64 = torch.float64
MU = torch.tensor([1.0, -2.0], dtype=F64)
SD = 0.6


def moments_ok(x, mean, var, extra=0.015):
    n = x.shape[0]
    assert torch.allclose(x.mean(0), mean, atol=5 * math.sqrt(var / n) + extra)
    assert torch.allclose(x.var(0), torch.full_like(mean, var), atol=6 * var * math.sqrt(2 / n) + extra)


def marginal(schedule, t):
    t = torch.tensor(t, dtype=F64)
    a = float(schedule.alpha(t))
    return a * MU, a * a * SD**2 + float(schedule.sigma(t)) ** 2


class Recording(TorchSDEEuler):
    """TorchSDEEuler that remembers its Brownian motion (to replay it in the native solver)."""

    def brownian_motion(self, *args, **kwargs):
        bm = super().brownian_motion(*args, **kwargs)
        object.__setattr__(self, "last", bm)
        return bm


@pytest.mark.parametrize("t0, t1", [(1.0, 0.0), (0.0, 1.0), (0.9, 0.2)])
def test_torchsde_euler_equals_native_euler_maruyama_on_the_same_path(t0, t1):
    # the increasing variable s = |t - t0| with drift sign flipped reproduces the native solver
    # (which integrates in t directly, noise sqrt|dt|) step for step
    def drift(x, t):
        return -2.0 * x * t[:, None] + torch.sin(x)

    def diffusion(x, t):
        return (0.5 + t[:, None]) * torch.ones_like(x)

    y0 = torch.randn(6, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    solver = Recording(steps=25)
    sol = solver.integrate_sde(drift, diffusion, y0, t0, t1, time_shape=(6,),
                               generator=torch.Generator().manual_seed(1))
    dw = solver.last._w.reshape(25, 6, 3)
    native = sde_solve("euler_maruyama", 25, drift, diffusion, y0, t0, t1, time_shape=(6,), increments=dw)
    assert torch.allclose(sol.y, native.y, atol=1e-12)
    assert sol.nfe == 26  # 25 steps + the shape check of torchsde.sdeint


@pytest.mark.parametrize("solver", [TorchSDEEuler(steps=200), TorchSDEMilstein(steps=200), TorchSDESRK(steps=60),
                                    TorchSDEReversibleHeun(steps=200),
                                    TorchSDESolver(method="euler", steps=200, brownian="interval")], ids=repr)
def test_reverse_sde_sampling_through_every_adapter(solver):
    s = VPSchedule()
    model = GaussianDiffusionModel(MU, SD, s, "eps")
    d = Diffusion(model, s, solver, event_shape=(2,)).double()
    assert d.solver_kind == "sde"
    x = d().sample((3000,), generator=torch.Generator().manual_seed(2))
    moments_ok(x, *marginal(s, d.t_end))


def test_adapter_call_counts_dtype_and_reproducibility():
    s = EDMSchedule()
    model = GaussianDiffusionModel(MU.float(), SD, s, "x0")
    for solver, calls in [(TorchSDEEuler(steps=8), 9), (TorchSDEMilstein(steps=8), 9),
                          (TorchSDEReversibleHeun(steps=8), 10), (TorchSDESRK(steps=8), 1 + 8 * 10)]:
        d = Diffusion(model, s, solver, parameterization="x0", event_shape=(2,))
        model.calls = 0
        a = d().sample((5,), generator=torch.Generator().manual_seed(3))
        assert model.calls == calls, solver
        b = d().sample((5,), generator=torch.Generator().manual_seed(3))
        assert a.dtype == torch.float32 and torch.equal(a, b)
    ts, xs = Diffusion(model, s, TorchSDEEuler(steps=4), parameterization="x0", event_shape=(2,))().trajectory((3,))
    assert ts.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0] and xs.shape == (5, 3, 2)


@pytest.mark.parametrize("schedule", [VPSchedule(), VESchedule()], ids=["vp", "ve"])
def test_reverse_diffusion_sde_object_samples_with_sdeint(schedule):
    score = GaussianDiffusionModel(MU, SD, schedule, "score")
    sde = ReverseDiffusionSDE(score, schedule, (2,))
    assert sde.noise_type == "diagonal" and sde.sde_type == "ito"
    t_end = schedule.default_t_end
    x1 = torch.randn(3000, 2, dtype=F64, generator=torch.Generator().manual_seed(4)) * schedule.prior_std
    bm = GridBrownian(0.0, (1 - t_end) / 300, 300, (3000, 2), dtype=F64, generator=torch.Generator().manual_seed(5))
    ys = torchsde.sdeint(sde, x1, torch.tensor([0.0, 1.0 - t_end], dtype=F64), bm=bm, dt=(1 - t_end) / 300 * (1 + 1e-10),
                         method="euler")
    moments_ok(ys[-1], *marginal(schedule, t_end))
    # drift in s is minus Anderson's drift f - g^2 score at t = 1 - s
    y = torch.randn(4, 2, dtype=F64)
    s_ = torch.tensor(0.3, dtype=F64)
    t = torch.full((4,), 0.7, dtype=F64)
    anderson = schedule.f_coef(t)[:, None] * y - schedule.g2(t)[:, None] * score(y, t)
    assert torch.allclose(sde.f(s_, y), -anderson)
    assert torch.allclose(sde.g(s_, y), schedule.diffusion(t)[:, None].expand(4, 2))
    with pytest.raises(ValueError, match="noise"):
        ReverseDiffusionSDE(score, schedule, (2,), noise=-1.0)


def test_forward_diffusion_sde_noises_data_to_the_marginal():
    s = VPSchedule()
    x0 = MU + SD * torch.randn(3000, 2, dtype=F64, generator=torch.Generator().manual_seed(6))
    bm = GridBrownian(0.0, 0.5 / 200, 200, (3000, 2), dtype=F64, generator=torch.Generator().manual_seed(7))
    ys = torchsde.sdeint(ForwardDiffusionSDE(s), x0, torch.tensor([0.0, 0.5], dtype=F64), bm=bm,
                         dt=0.5 / 200 * (1 + 1e-10), method="euler")
    moments_ok(ys[-1], *marginal(s, 0.5))


def test_grid_brownian():
    bm = GridBrownian(0.0, 0.1, 10, (20000, 1), dtype=F64, generator=torch.Generator().manual_seed(8), space_time=True)
    w = bm(torch.tensor(0.3, dtype=F64), torch.tensor(0.4, dtype=F64))
    assert w.shape == (20000, 1) and abs(float(w.var()) - 0.1) < 0.005
    assert torch.allclose(bm(0.0, 1.0), bm._w.sum(0)) and torch.allclose(bm(0.5), bm(0.0, 0.5))
    w, u = bm(0.2, 0.3, return_U=True)
    h = u / 0.1 - 0.5 * w  # the space-time Levy area, variance h / 12, independent of W
    assert abs(float(h.var()) - 0.1 / 12) < 0.0005 and abs(float((h * w).mean())) < 0.001
    assert bm.levy_area_approximation == "space-time" and bm.shape == (20000, 1) and bm.dtype == F64
    with pytest.raises(ValueError, match="grid"):
        bm(0.05, 0.3)
    with pytest.raises(ValueError, match="Levy"):
        bm(0.0, 0.3, return_U=True)
    plain = GridBrownian(0.0, 0.1, 10, (2,))
    with pytest.raises(ValueError, match="space_time"):
        plain(0.0, 0.1, return_U=True)


def test_registry_and_configs():
    assert nami.build("solver", "torchsde_euler", steps=5) == TorchSDEEuler(steps=5)
    assert nami.build("solver", "torchsde", method="srk") == TorchSDESolver(method="srk")
    assert nami.get("sde", "reverse_diffusion").factory is ReverseDiffusionSDE
    assert nami.get("sde", "forward_diffusion").factory is ForwardDiffusionSDE
    assert TorchSDEMilstein(**attrs.asdict(TorchSDEMilstein(steps=7))) == TorchSDEMilstein(steps=7)
    assert TorchSDEReversibleHeun().method == "reversible_heun"
    with pytest.raises(ValueError, match="method must be one of"):
        TorchSDESolver(method="rk4")
    with pytest.raises(ValueError, match="brownian"):
        TorchSDEEuler(brownian="tree")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        TorchSDESRK(steps=0)
