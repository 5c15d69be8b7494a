r"""Diffusion samplers driven by the data prediction :math:`\hat x_0 = D(x, t)`: DDIM,
DPM-Solver++ (1st order and 2M) and the EDM Heun sampler with optional churn.

All three work in the scaled variable :math:`\tilde x = x/\alpha` whose marginals are
:math:`x_0 + \tilde\sigma\varepsilon` with :math:`\tilde\sigma = \sigma/\alpha` (any schedule: VP, VE,
EDM), where the probability-flow ODE reads (Karras et al. 2022, eq. 4 with s = 1)

.. math:: \frac{d\tilde x}{d\tilde\sigma} = \frac{\tilde x - D(\tilde x; \tilde\sigma)}{\tilde\sigma},

on the levels :math:`\tilde\sigma_0 > \dots > \tilde\sigma_N` of :func:`~nami_diffusion.grids.noise_levels`.
The model is never evaluated at zero noise: a last step to :math:`\tilde\sigma_N = 0` is a
first-order step that returns the denoiser's :math:`\hat x_0` exactly.

A sampler provides ``sample_diffusion(denoise, schedule, x, t_start, t_end, *, time_shape=(),
generator=None, trajectory=False) -> Solution`` where ``denoise(x, t)`` is the data prediction
(``t`` of shape ``time_shape``, the state's dtype and device); ``Solution.nfe`` is the number of
``denoise`` calls and ``Solution.ts`` the times visited (0 for the zero-noise level).

References:
    Song, Meng, Ermon. Denoising Diffusion Implicit Models. 2021. https://arxiv.org/abs/2010.02502
    Lu, Zhou, Bao, Chen, Li, Zhu. DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
    Probabilistic Models. 2022. https://arxiv.org/abs/2211.01095
    Karras, Aittala, Aila, Laine. Elucidating the Design Space of Diffusion-Based Generative
    Models. 2022. https://arxiv.org/abs/2206.00364
"""

from __future__ import annotations

import math
from typing import Any, Callable, List, Optional, Sequence, Tuple

import attrs
import torch
from torch import Tensor

from nami_core.errors import ShapeError
from nami_core.protocols import Solution
from nami_core.validation import non_negative_float, one_of, positive_float, positive_int

from .grids import SPACINGS, noise_levels

__all__ = ["DDIM", "DPMSolverPP", "EDMHeun"]

Denoiser = Callable[[Tensor, Tensor], Tensor]


class _Prepared:
    """Everything a sampler needs that does not depend on the state, built once per solve."""

    def __init__(self, sampler: Any, schedule: Any, x: Tensor, t_start: float, t_end: float,
                 time_shape: Sequence[int]) -> None:
        time_shape = tuple(int(n) for n in time_shape)
        if tuple(x.shape[: len(time_shape)]) != time_shape:
            raise ShapeError(f"time_shape {time_shape} must be the leading shape of x, got x of shape {tuple(x.shape)}")
        self.time_shape = time_shape
        self.dtype, self.device = x.dtype, x.device
        ts, sig = noise_levels(schedule, sampler.steps, t_start, t_end, spacing=sampler.spacing,
                               rho=sampler.rho, final_zero=sampler.final_zero)
        self.ts64 = ts
        self.sigmas: List[float] = sig.tolist()
        alphas = schedule.alpha(ts).to(torch.float64)
        self.alphas: List[float] = [1.0 if s == 0.0 else a for s, a in zip(self.sigmas, alphas.tolist())]
        self.t = self.times(ts)

    def times(self, ts: Tensor) -> Tuple[Tensor, ...]:
        """Float64 times -> a tuple of time tensors of ``time_shape`` (state dtype, device)."""
        t = ts.to(dtype=self.dtype, device=self.device)
        if self.time_shape:
            t = t.reshape((-1,) + (1,) * len(self.time_shape)).expand((-1,) + self.time_shape)
        return t.unbind(0)

    def solution(self, x_tilde: Tensor, nfe: int, ys: Optional[List[Tensor]]) -> Solution:
        y = x_tilde * self.alphas[-1] if self.alphas[-1] != 1.0 else x_tilde
        if ys is None:
            return Solution(y=y, nfe=nfe)
        return Solution(y=y, nfe=nfe, ts=self.ts64.to(dtype=self.dtype, device=self.device), ys=torch.stack(ys))


class _Sampler:
    __slots__ = ()
    steps: int
    spacing: str
    rho: float
    final_zero: bool

    def _denoiser(self, denoise: Denoiser, prep: _Prepared) -> Callable[[Tensor, int], Tensor]:
        def d(x_tilde: Tensor, i: int) -> Tensor:
            a = prep.alphas[i]
            return denoise(x_tilde * a if a != 1.0 else x_tilde, prep.t[i])

        return d


@attrs.frozen(kw_only=True)
class DDIM(_Sampler):
    r"""Denoising diffusion implicit models (Song, Meng, Ermon 2021), any schedule.

    One model call per step. With :math:`\hat\varepsilon = (\tilde x_i - \hat x_0)/\tilde\sigma_i`,

    .. math:: \tilde x_{i+1} = \hat x_0 + \sqrt{\tilde\sigma_{i+1}^2 - \tilde s_i^2}\,\hat\varepsilon + \tilde s_i z,
              \qquad \tilde s_i = \eta\,\tilde\sigma_{i+1}\sqrt{1 - \tilde\sigma_{i+1}^2/\tilde\sigma_i^2},

    the generalised DDIM step (their eq. 12 divided by :math:`\alpha_{i+1}`): :math:`\eta = 0` is the
    deterministic sampler (= DPM-Solver++ 1st order = Euler in :math:`\tilde\sigma` on the
    exponential-integrator form), :math:`\eta = 1` the DDPM posterior.

    Args:
        steps: number of steps N (N model calls).
        eta: stochasticity :math:`\eta \ge 0`.
        spacing: ``"uniform"`` (default), ``"karras"`` or ``"logsnr"``.
        rho: Karras ρ.
        final_zero: last step to zero noise (lands on :math:`\hat x_0`).
    """

    steps: int = attrs.field(default=50, validator=positive_int)
    eta: float = attrs.field(default=0.0, converter=float, validator=non_negative_float)
    spacing: str = attrs.field(default="uniform", validator=one_of(*SPACINGS))
    rho: float = attrs.field(default=7.0, converter=float, validator=positive_float)
    final_zero: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))

    def sample_diffusion(self, denoise: Denoiser, schedule: Any, x: Tensor, t_start: float, t_end: float, *,
                         time_shape: Sequence[int] = (), generator: Optional[torch.Generator] = None,
                         trajectory: bool = False) -> Solution:
        """Sample from ``x`` at ``t_start`` down to ``t_end`` (see the class docstring)."""
        prep = _Prepared(self, schedule, x, t_start, t_end, time_shape)
        d = self._denoiser(denoise, prep)
        sig = prep.sigmas
        xt = x / prep.alphas[0]
        ys: Optional[List[Tensor]] = [x] if trajectory else None
        for i in range(self.steps):
            x0 = d(xt, i)
            s, s_next = sig[i], sig[i + 1]
            if s_next == 0.0:
                xt = x0
            elif self.eta == 0.0:
                r = s_next / s
                xt = torch.lerp(x0, xt, r)  # x0 + r (x - x0) = x0 + s_next * eps
            else:
                noise_std = self.eta * s_next * math.sqrt(max(0.0, 1.0 - (s_next / s) ** 2))
                coef = math.sqrt(max(0.0, s_next**2 - noise_std**2)) / s
                z = torch.randn(xt.shape, generator=generator, dtype=xt.dtype, device=xt.device)
                xt = torch.lerp(x0, xt, coef).add_(z, alpha=noise_std)
            if ys is not None:
                ys.append(xt * prep.alphas[i + 1])
        return prep.solution(xt, self.steps, ys)


@attrs.frozen(kw_only=True)
class DPMSolverPP(_Sampler):
    r"""DPM-Solver++ (Lu et al. 2022): first order, or second-order multistep ("2M").

    With :math:`\lambda = -\log\tilde\sigma` (= :math:`\log\alpha/\sigma`), :math:`h_i = \lambda_{i+1} - \lambda_i`,
    the data-prediction exponential integrator step is

    .. math:: \tilde x_{i+1} = \frac{\tilde\sigma_{i+1}}{\tilde\sigma_i}\tilde x_i - (e^{-h_i} - 1)\,D_i ,

    with :math:`D_i = \hat x_0^{(i)}` (first order, = DDIM) or, for 2M,
    :math:`D_i = (1 + \tfrac{1}{2r_i})\hat x_0^{(i)} - \tfrac{1}{2r_i}\hat x_0^{(i-1)}`,
    :math:`r_i = h_{i-1}/h_i` (their Algorithm 2). One model call per step (N steps = N calls).
    The first step is first order (no history); a step to zero noise (:math:`h = \infty`) is first
    order and returns :math:`\hat x_0` exactly; ``lower_order_final`` also makes the last step first
    order when ``steps < 15`` (the authors' recommendation for few steps).

    Args:
        steps: number of steps N (N model calls).
        order: 1 or 2.
        spacing: ``"logsnr"`` (default), ``"uniform"`` or ``"karras"``.
        rho: Karras ρ.
        lower_order_final: first-order last step for fewer than 15 steps.
        final_zero: last step to zero noise (lands on :math:`\hat x_0`).

    Example:
        >>> from nami_diffusion.schedules import VPSchedule
        >>> from nami_diffusion.testing import GaussianDiffusionModel
        >>> s = VPSchedule()
        >>> model = GaussianDiffusionModel(torch.zeros(2), 0.5, s, "x0")
        >>> sol = DPMSolverPP(steps=10).sample_diffusion(model, s, torch.randn(3, 2), 1.0, 1e-3, time_shape=(3,))
        >>> sol.nfe, model.calls
        (10, 10)
    """

    steps: int = attrs.field(default=20, validator=positive_int)
    order: int = attrs.field(default=2, validator=one_of(1, 2))
    spacing: str = attrs.field(default="logsnr", validator=one_of(*SPACINGS))
    rho: float = attrs.field(default=7.0, converter=float, validator=positive_float)
    lower_order_final: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    final_zero: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))

    def sample_diffusion(self, denoise: Denoiser, schedule: Any, x: Tensor, t_start: float, t_end: float, *,
                         time_shape: Sequence[int] = (), generator: Optional[torch.Generator] = None,
                         trajectory: bool = False) -> Solution:
        """Sample from ``x`` at ``t_start`` down to ``t_end`` (deterministic; ``generator`` unused)."""
        prep = _Prepared(self, schedule, x, t_start, t_end, time_shape)
        d = self._denoiser(denoise, prep)
        sig = prep.sigmas
        n = self.steps
        xt = x / prep.alphas[0]
        ys: Optional[List[Tensor]] = [x] if trajectory else None
        prev_x0: Optional[Tensor] = None
        prev_h = 0.0
        for i in range(n):
            x0 = d(xt, i)
            s, s_next = sig[i], sig[i + 1]
            if s_next == 0.0:
                xt = x0
            else:
                h = math.log(s / s_next)
                ratio = s_next / s  # e^{-h}
                last = i == n - 1
                if self.order == 2 and prev_x0 is not None and not (self.lower_order_final and last and n < 15):
                    c = 1.0 / (2.0 * (prev_h / h))
                    dv = torch.add(x0, x0 - prev_x0, alpha=c)  # (1 + c) x0 - c prev
                else:
                    dv = x0
                xt = torch.lerp(dv, xt, ratio)  # ratio * x + (1 - ratio) * D
                prev_h = h
            prev_x0 = x0
            if ys is not None:
                ys.append(xt * prep.alphas[i + 1])
        return prep.solution(xt, n, ys)


def _tmax_validator(instance: Any, attribute: Any, value: float) -> None:
    if not (value >= 0.0) or math.isnan(value):
        raise ValueError(f"{attribute.name} must be >= 0 (inf allowed), got {value}")


@attrs.frozen(kw_only=True)
class EDMHeun(_Sampler):
    r"""The EDM sampler (Karras et al. 2022, Algorithm 2): Heun's method in :math:`\tilde\sigma` with
    optional stochastic churn.

    Step i: :math:`\gamma_i = \min(S_\text{churn}/N, \sqrt2 - 1)` if
    :math:`\tilde\sigma_i \in [S_\text{tmin}, S_\text{tmax}]` else 0,
    :math:`\hat\sigma = \tilde\sigma_i(1 + \gamma_i)` (capped at :math:`\tilde\sigma(t_\text{start})`),
    :math:`\hat x = \tilde x_i + \sqrt{\hat\sigma^2 - \tilde\sigma_i^2}\,S_\text{noise}\,z`, then an Euler step
    :math:`d = (\hat x - D(\hat x;\hat\sigma))/\hat\sigma`, :math:`\tilde x_{i+1} = \hat x + (\tilde\sigma_{i+1} - \hat\sigma)d`
    and, unless :math:`\tilde\sigma_{i+1} = 0`, the trapezoidal correction with
    :math:`d' = (\tilde x_{i+1} - D(\tilde x_{i+1};\tilde\sigma_{i+1}))/\tilde\sigma_{i+1}`. With the final
    zero level, N steps cost exactly 2N − 1 model calls.

    Args:
        steps: number of steps N.
        spacing: ``"karras"`` (default), ``"uniform"`` or ``"logsnr"``.
        rho: Karras ρ (7).
        s_churn: total churn :math:`S_\text{churn} \ge 0` (0: deterministic).
        s_tmin: lower noise level of the churn window.
        s_tmax: upper noise level of the churn window (inf allowed).
        s_noise: noise inflation :math:`S_\text{noise}`.
        final_zero: last step to zero noise (lands on :math:`\hat x_0`).
    """

    steps: int = attrs.field(default=18, validator=positive_int)
    spacing: str = attrs.field(default="karras", validator=one_of(*SPACINGS))
    rho: float = attrs.field(default=7.0, converter=float, validator=positive_float)
    s_churn: float = attrs.field(default=0.0, converter=float, validator=non_negative_float)
    s_tmin: float = attrs.field(default=0.0, converter=float, validator=non_negative_float)
    s_tmax: float = attrs.field(default=math.inf, converter=float, validator=_tmax_validator)
    s_noise: float = attrs.field(default=1.0, converter=float, validator=non_negative_float)
    final_zero: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))

    def sample_diffusion(self, denoise: Denoiser, schedule: Any, x: Tensor, t_start: float, t_end: float, *,
                         time_shape: Sequence[int] = (), generator: Optional[torch.Generator] = None,
                         trajectory: bool = False) -> Solution:
        """Sample from ``x`` at ``t_start`` down to ``t_end`` (see the class docstring)."""
        prep = _Prepared(self, schedule, x, t_start, t_end, time_shape)
        sig = prep.sigmas
        n = self.steps
        # churned levels, their times and alphas: fixed before the loop
        gamma_max = min(self.s_churn / n, math.sqrt(2.0) - 1.0)
        cap = sig[0]
        hats = []
        for i in range(n):
            s = sig[i]
            g = gamma_max if (self.s_churn > 0 and self.s_tmin <= s <= self.s_tmax) else 0.0
            hats.append(min(s * (1.0 + g), cap) if s > 0 else s)
        churned = [i for i in range(n) if hats[i] > sig[i]]
        hat_t = {}
        if churned:
            th = schedule.t_from_scaled_sigma(torch.tensor([hats[i] for i in churned], dtype=torch.float64))
            th = th.to(torch.float64)
            ah = schedule.alpha(th).to(torch.float64).tolist()
            tt = prep.times(th)
            hat_t = {i: (tt[k], ah[k]) for k, i in enumerate(churned)}

        def d(xt: Tensor, t: Tensor, a: float) -> Tensor:
            return denoise(xt * a if a != 1.0 else xt, t)

        xt = x / prep.alphas[0]
        ys: Optional[List[Tensor]] = [x] if trajectory else None
        nfe = 0
        for i in range(n):
            s, s_next = sig[i], sig[i + 1]
            s_hat = hats[i]
            if i in hat_t:
                z = torch.randn(xt.shape, generator=generator, dtype=xt.dtype, device=xt.device)
                xt = xt.add(z, alpha=math.sqrt(s_hat**2 - s**2) * self.s_noise)
                t_hat, a_hat = hat_t[i]
            else:
                t_hat, a_hat = prep.t[i], prep.alphas[i]
            x0 = d(xt, t_hat, a_hat)
            nfe += 1
            dx = (xt - x0) / s_hat
            x_next = torch.add(xt, dx, alpha=s_next - s_hat)
            if s_next > 0.0:
                x0n = d(x_next, prep.t[i + 1], prep.alphas[i + 1])
                nfe += 1
                dxn = (x_next - x0n) / s_next
                x_next = torch.add(xt, dx + dxn, alpha=0.5 * (s_next - s_hat))
            xt = x_next
            if ys is not None:
                ys.append(xt * prep.alphas[i + 1])
        return prep.solution(xt, nfe, ys)
