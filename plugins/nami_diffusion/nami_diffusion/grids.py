r"""Noise-level grids for diffusion samplers: uniform in t, Karras (ρ), uniform in log-SNR.

A sampler of ``steps`` steps walks down ``steps + 1`` noise levels
:math:`\tilde\sigma_0 > \dots > \tilde\sigma_N` of the scaled variable
:math:`\tilde x = x/\alpha = x_0 + \tilde\sigma\varepsilon` (:math:`\tilde\sigma = \sigma/\alpha = e^{-\lambda/2}`),
starting at :math:`t_0` = ``t_start`` (1 when sampling). With ``final_zero`` the last level is
:math:`\tilde\sigma_N = 0` (the data: the last step lands on the denoiser's :math:`\hat x_0`) and the
first N levels span [``t_start``, ``t_end``]; otherwise all N + 1 levels span it. A schedule with
:math:`\sigma(t_\text{end}) = 0` (VP at t = 0) ends at zero noise by itself.

Spacings of the M levels that span the interval (endpoints exact):

- ``"uniform"``: :math:`t_i = t_\text{start} + (t_\text{end} - t_\text{start})\, i/(M-1)` (DDIM);
- ``"karras"``: :math:`\tilde\sigma_i = \big(\tilde\sigma_\text{max}^{1/\rho} + \tfrac{i}{M-1}(\tilde\sigma_\text{min}^{1/\rho} - \tilde\sigma_\text{max}^{1/\rho})\big)^\rho`
  (Karras et al. 2022, eq. 5);
- ``"logsnr"``: :math:`\lambda_i` uniform between :math:`\lambda(t_\text{start})` and
  :math:`\lambda(t_\text{end})` (Lu et al. 2022).

Times are recovered with the schedule's inverse log-SNR; everything is float64.

References:
    Karras, Aittala, Aila, Laine. Elucidating the Design Space of Diffusion-Based Generative
    Models. 2022. https://arxiv.org/abs/2206.00364
    Lu, Zhou, Bao, Chen, Li, Zhu. DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic Model
    Sampling in Around 10 Steps. 2022. https://arxiv.org/abs/2206.00927
"""

from __future__ import annotations

from typing import Any, Tuple

import torch
from torch import Tensor

from nami_core.timegrid import check_steps

__all__ = ["SPACINGS", "noise_levels", "spaced_times"]

#: Grid spacings understood by :func:`noise_levels`.
SPACINGS: Tuple[str, ...] = ("uniform", "karras", "logsnr")

_F64 = torch.float64


def spaced_times(schedule: Any, m: int, t_start: float, t_end: float, spacing: str, rho: float = 7.0) -> Tensor:
    """``m`` float64 times from ``t_start`` to ``t_end`` (exact endpoints) with the given spacing."""
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {list(SPACINGS)}, got {spacing!r}")
    if m == 1:
        return torch.tensor([t_start], dtype=_F64)
    k = torch.arange(m, dtype=_F64) / (m - 1)
    ends = torch.tensor([t_start, t_end], dtype=_F64)
    if spacing == "uniform":
        ts = t_start + (t_end - t_start) * k
    elif spacing == "karras":
        s_max, s_min = schedule.scaled_sigma(ends).tolist()
        if not s_min > 0:
            raise ValueError(f"spacing 'karras' needs sigma(t_end) > 0, got t_end={t_end}; use t_end > 0")
        lo, hi = s_min ** (1.0 / rho), s_max ** (1.0 / rho)
        ts = schedule.t_from_scaled_sigma((hi + k * (lo - hi)) ** rho).to(_F64)
    else:
        lam0, lam1 = schedule.log_snr(ends).tolist()
        if not torch.isfinite(torch.tensor(lam1)):
            raise ValueError(f"spacing 'logsnr' needs sigma(t_end) > 0, got t_end={t_end}; use t_end > 0")
        ts = schedule.t_from_log_snr(lam0 + k * (lam1 - lam0)).to(_F64)
    ts[0], ts[-1] = t_start, t_end
    return ts


def noise_levels(
    schedule: Any,
    steps: int,
    t_start: float,
    t_end: float,
    *,
    spacing: str = "uniform",
    rho: float = 7.0,
    final_zero: bool = True,
) -> Tuple[Tensor, Tensor]:
    r"""The ``steps + 1`` times and scaled noise levels :math:`\tilde\sigma_i` a sampler visits.

    Args:
        schedule: the noise schedule.
        steps: number of steps N >= 1.
        t_start: first time (1 when sampling).
        t_end: last time of the schedule visited (the final zero level comes after it).
        spacing: ``"uniform"``, ``"karras"`` or ``"logsnr"``.
        rho: Karras exponent ρ.
        final_zero: end with :math:`\tilde\sigma_N = 0` (reported at time 0).

    Returns:
        ``(ts, sigmas)``, float64 tensors of shape ``(steps + 1,)``, :math:`\tilde\sigma` decreasing.

    Example:
        >>> from nami_diffusion.schedules import EDMSchedule
        >>> ts, s = noise_levels(EDMSchedule(), 3, 1.0, 0.0, spacing="karras")
        >>> [round(v, 4) for v in s.tolist()]
        [80.0, 2.5152, 0.002, 0.0]
    """
    check_steps(steps)
    t_start, t_end = float(t_start), float(t_end)
    if not (0.0 <= t_end < t_start <= 1.0):
        raise ValueError(f"need 0 <= t_end < t_start <= 1, got t_start={t_start}, t_end={t_end}")
    end_sigma = float(schedule.scaled_sigma(torch.tensor(t_end, dtype=_F64)))
    if end_sigma == 0.0:
        if spacing != "uniform":
            raise ValueError(
                f"sigma(t_end) = 0 at t_end={t_end}: spacing {spacing!r} needs t_end > 0 "
                f"(the zero-noise level is appended with final_zero=True), or use spacing='uniform'"
            )
        ts = spaced_times(schedule, steps + 1, t_start, t_end, spacing, rho)
        sig = schedule.scaled_sigma(ts).to(_F64)
        sig[-1] = 0.0
        return ts, sig
    if final_zero:
        ts = spaced_times(schedule, steps, t_start, t_end, spacing, rho)
        sig = schedule.scaled_sigma(ts).to(_F64)
        return torch.cat([ts, ts.new_zeros(1)]), torch.cat([sig, sig.new_zeros(1)])
    ts = spaced_times(schedule, steps + 1, t_start, t_end, spacing, rho)
    return ts, schedule.scaled_sigma(ts).to(_F64)
