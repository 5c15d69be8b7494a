r"""Gaussian noise schedules :math:`x_t = \alpha(t)\,x_0 + \sigma(t)\,\varepsilon` (t = 0 data, t = 1 noise).

A schedule is its :math:`\alpha(t)`, :math:`\sigma(t)` and their time derivatives; everything
else follows from them and lives in the base class :class:`DiffusionSchedule`:

- the log signal-to-noise ratio :math:`\lambda(t) = \log(\alpha^2/\sigma^2)` and its inverse,
- the noise-to-signal ratio :math:`\tilde\sigma = \sigma/\alpha = e^{-\lambda/2}` (the "σ" of
  Karras et al., the noise level of :math:`\tilde x = x/\alpha = x_0 + \tilde\sigma\varepsilon`),
- the forward (noising) Itô SDE :math:`dx = f(x, t)\,dt + g(t)\,dW` whose marginals are those of
  the schedule. Matching mean and variance of :math:`x_t \mid x_0` gives

  .. math:: f(x, t) = \frac{\dot\alpha}{\alpha}\,x, \qquad
            g(t)^2 = \frac{d\sigma^2}{dt} - 2\,\frac{\dot\alpha}{\alpha}\,\sigma^2 .

Every quantity is computed in float32 or better: a half-precision (or integer) time is promoted to
float32 and a float64 time stays float64. Results are returned in that computation dtype; callers
cast once when they combine a coefficient with a (half precision) state.

Named schedules (closed forms, ``shared/GROUND_TRUTH.md``):

========================  =======================================  ==============================================
schedule                  :math:`\alpha(t)`                         :math:`\sigma(t)`
========================  =======================================  ==============================================
:class:`VPSchedule`       :math:`e^{-B(t)/2}`                       :math:`\sqrt{1 - e^{-B(t)}}`,
                                                                    :math:`B = \beta_{min}t + \tfrac12(\beta_{max}-\beta_{min})t^2`
:class:`VESchedule`       1                                         :math:`\sigma_{min}(\sigma_{max}/\sigma_{min})^t`
:class:`EDMSchedule`      1                                         :math:`(\sigma_{min}^{1/\rho} + t(\sigma_{max}^{1/\rho} - \sigma_{min}^{1/\rho}))^\rho`
========================  =======================================  ==============================================

References:
    Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole. Score-Based Generative Modeling through
    Stochastic Differential Equations. 2021. https://arxiv.org/abs/2011.13456
    Karras, Aittala, Aila, Laine. Elucidating the Design Space of Diffusion-Based Generative
    Models. 2022. https://arxiv.org/abs/2206.00364
    Kingma, Salimans, Poole, Ho. Variational Diffusion Models. 2021. https://arxiv.org/abs/2107.00630
"""

from __future__ import annotations

import math
from typing import ClassVar, Union

import attrs
import torch
from torch import Tensor

from nami_core.validation import non_negative_float, positive_float

__all__ = [
    "DiffusionSchedule",
    "VPSchedule",
    "VESchedule",
    "EDMSchedule",
    "compute_time",
    "collapse_time",
    "broadcast_to_state",
]

TimeLike = Union[Tensor, float]


def compute_time(t: TimeLike) -> Tensor:
    """``t`` as a tensor in the schedule's computation dtype: float32 or better.

    Python numbers become float64 tensors; half, bfloat16 and integer tensors become float32;
    float32 and float64 tensors are kept as they are.
    """
    if not torch.is_tensor(t):
        return torch.as_tensor(t, dtype=torch.float64)
    if not t.is_floating_point() or torch.finfo(t.dtype).bits < 32:
        return t.to(torch.float32)
    return t


def collapse_time(t: Tensor) -> Tensor:
    """A 0-d view of ``t`` when it is one time broadcast over the batch (all strides 0), else ``t``.

    Solvers hand fields ``t`` as an expanded scalar; evaluating schedule coefficients on the 0-d
    view makes their cost independent of the batch size (the result broadcasts the same way).
    """
    if t.ndim and t.numel() > 1 and all(st == 0 or n == 1 for st, n in zip(t.stride(), t.shape)):
        return t[(0,) * t.ndim]
    return t


def broadcast_to_state(coef: Tensor, x: Tensor) -> Tensor:
    """Append singleton event dimensions to a time-shaped ``coef`` so it broadcasts against ``x``."""
    return coef.reshape(coef.shape + (1,) * (x.ndim - coef.ndim))


class DiffusionSchedule:
    r"""Base class of noise schedules: subclasses define :meth:`alpha`, :meth:`sigma`,
    :meth:`d_alpha` and :meth:`d_sigma` (and may override the rest with closed forms).

    Requirements: :math:`\alpha > 0` on [0, 1], :math:`\sigma > 0` on (0, 1], and the log-SNR
    :math:`\lambda(t)` strictly decreasing (so that it has an inverse).

    Attributes:
        default_t_end: sampling end time used by :class:`~nami_diffusion.Diffusion` when none is
            given: 0 where :math:`\sigma(0) > 0`, a small positive time where :math:`\sigma(0)=0`
            (the score, and the probability-flow velocity of VP, are singular there).
    """

    default_t_end: ClassVar[float] = 0.0

    # -- to be provided by subclasses ------------------------------------------------------------
    def alpha(self, t: TimeLike) -> Tensor:  # pragma: no cover - abstract
        r"""Signal scale :math:`\alpha(t)`."""
        raise NotImplementedError

    def sigma(self, t: TimeLike) -> Tensor:  # pragma: no cover - abstract
        r"""Noise scale :math:`\sigma(t)`."""
        raise NotImplementedError

    def d_alpha(self, t: TimeLike) -> Tensor:  # pragma: no cover - abstract
        r""":math:`\dot\alpha(t) = d\alpha/dt`."""
        raise NotImplementedError

    def d_sigma(self, t: TimeLike) -> Tensor:  # pragma: no cover - abstract
        r""":math:`\dot\sigma(t) = d\sigma/dt`."""
        raise NotImplementedError

    # -- derived quantities ----------------------------------------------------------------------
    def log_snr(self, t: TimeLike) -> Tensor:
        r"""Log signal-to-noise ratio :math:`\lambda(t) = \log \alpha(t)^2 / \sigma(t)^2` (+inf where σ = 0)."""
        t = compute_time(t)
        return 2.0 * (torch.log(self.alpha(t)) - torch.log(self.sigma(t)))

    def t_from_log_snr(self, log_snr: TimeLike) -> Tensor:
        r"""Inverse of :meth:`log_snr`: the time :math:`t \in [0, 1]` with :math:`\lambda(t)` = ``log_snr``.

        The base class bisects (60 halvings in float64, monotone decreasing λ); named schedules
        override it with closed forms. Values outside :math:`[\lambda(1), \lambda(0)]` map to the
        nearest end.
        """
        lam = compute_time(log_snr)
        target = lam.to(torch.float64)
        lo = torch.zeros_like(target)
        hi = torch.ones_like(target)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            above = self.log_snr(mid) > target  # λ decreasing: the root lies to the right
            lo = torch.where(above, mid, lo)
            hi = torch.where(above, hi, mid)
        return (0.5 * (lo + hi)).to(lam.dtype)

    def scaled_sigma(self, t: TimeLike) -> Tensor:
        r"""Noise-to-signal ratio :math:`\tilde\sigma(t) = \sigma(t)/\alpha(t) = e^{-\lambda(t)/2}`."""
        t = compute_time(t)
        return self.sigma(t) / self.alpha(t)

    def t_from_scaled_sigma(self, scaled_sigma: TimeLike) -> Tensor:
        r"""Inverse of :meth:`scaled_sigma` (:math:`\tilde\sigma = 0` maps to the :math:`t` where σ = 0, or 0)."""
        s = compute_time(scaled_sigma)
        return self.t_from_log_snr(-2.0 * torch.log(s))

    def f_coef(self, t: TimeLike) -> Tensor:
        r"""Drift coefficient :math:`\dot\alpha/\alpha`, so that :math:`f(x, t) = (\dot\alpha/\alpha)\,x`."""
        t = compute_time(t)
        return self.d_alpha(t) / self.alpha(t)

    def g2(self, t: TimeLike) -> Tensor:
        r"""Squared diffusion :math:`g(t)^2 = 2\sigma\dot\sigma - 2(\dot\alpha/\alpha)\sigma^2`."""
        t = compute_time(t)
        s = self.sigma(t)
        return 2.0 * s * self.d_sigma(t) - 2.0 * self.f_coef(t) * s * s

    def diffusion(self, t: TimeLike) -> Tensor:
        r"""Diffusion coefficient :math:`g(t)` of the forward SDE :math:`dx = f\,dt + g\,dW`."""
        return torch.sqrt(self.g2(t))

    def drift(self, x: Tensor, t: TimeLike) -> Tensor:
        r"""Forward SDE drift :math:`f(x, t) = (\dot\alpha(t)/\alpha(t))\,x` (``t``: leading shape of ``x``).

        Returned in the dtype of ``x``; the coefficient is computed in float32 or better.
        """
        coef = broadcast_to_state(self.f_coef(t), x)
        return (coef * x).to(x.dtype)

    def marginal(self, x0: Tensor, eps: Tensor, t: TimeLike) -> Tensor:
        r""":math:`x_t = \alpha(t)x_0 + \sigma(t)\varepsilon` (``t``: leading shape of ``x0``), in ``x0``'s dtype."""
        t = compute_time(t)
        a = broadcast_to_state(self.alpha(t), x0)
        s = broadcast_to_state(self.sigma(t), x0)
        return (a * x0 + s * eps).to(x0.dtype)

    @property
    def prior_std(self) -> float:
        r"""Standard deviation of the Gaussian prior :math:`\mathcal N(0, s^2 I)` at t = 1.

        :math:`\sigma(1)` by default (VE, EDM: :math:`\sigma_{max}`, the noise dominates the data);
        :class:`VPSchedule` uses 1 (its marginal variance for unit-variance data).
        """
        return float(self.sigma(torch.ones((), dtype=torch.float64)))


def _check_order(lower: str, upper: str):
    def check(instance, attribute, value):  # type: ignore[no-untyped-def]
        low = getattr(instance, lower)
        if not value > low:
            raise ValueError(f"{upper} must be > {lower}, got {upper}={value}, {lower}={low}")

    return check


@attrs.frozen(kw_only=True)
class VPSchedule(DiffusionSchedule):
    r"""Variance-preserving schedule (the continuous DDPM / VP-SDE of Song et al. 2021).

    .. math::
        \beta(t) = \beta_{min} + (\beta_{max} - \beta_{min})\,t,\quad
        B(t) = \int_0^t \beta = \beta_{min}t + \tfrac12(\beta_{max}-\beta_{min})t^2,

        \alpha = e^{-B/2},\quad \sigma = \sqrt{1 - e^{-B}},\quad
        f(x, t) = -\tfrac12\beta(t)\,x,\quad g(t)^2 = \beta(t),\quad
        \lambda(t) = -\log(e^{B(t)} - 1).

    :math:`\sigma(0) = 0` and :math:`\dot\sigma(t) \sim 1/\sqrt{t}` as :math:`t \to 0` (so
    :meth:`d_sigma` is +inf at t = 0, exactly): the score and the probability-flow ODE are singular
    at t = 0, and sampling ends at ``default_t_end = 1e-3`` (Song et al. 2021) unless a sampler
    lands on the data with a final denoising step.

    Args:
        beta_min: :math:`\beta_{min} \ge 0`.
        beta_max: :math:`\beta_{max} > \beta_{min}`.

    Example:
        >>> s = VPSchedule()
        >>> t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
        >>> torch.allclose(s.alpha(t) ** 2 + s.sigma(t) ** 2, torch.ones(3, dtype=torch.float64))
        True
        >>> round(float(s.t_from_log_snr(s.log_snr(0.3))), 12)
        0.3
    """

    beta_min: float = attrs.field(default=0.1, converter=float, validator=non_negative_float)
    beta_max: float = attrs.field(default=20.0, converter=float,
                                  validator=[positive_float, _check_order("beta_min", "beta_max")])
    default_t_end: ClassVar[float] = 1e-3

    def beta(self, t: TimeLike) -> Tensor:
        r""":math:`\beta(t) = \beta_{min} + (\beta_{max} - \beta_{min})t`."""
        t = compute_time(t)
        return self.beta_min + (self.beta_max - self.beta_min) * t

    def integrated_beta(self, t: TimeLike) -> Tensor:
        r""":math:`B(t) = \beta_{min}t + \tfrac12(\beta_{max} - \beta_{min})t^2`."""
        t = compute_time(t)
        return t * (self.beta_min + 0.5 * (self.beta_max - self.beta_min) * t)

    def alpha(self, t: TimeLike) -> Tensor:
        return torch.exp(-0.5 * self.integrated_beta(t))

    def sigma(self, t: TimeLike) -> Tensor:
        return torch.sqrt(-torch.expm1(-self.integrated_beta(t)))

    def d_alpha(self, t: TimeLike) -> Tensor:
        t = compute_time(t)
        return -0.5 * self.beta(t) * self.alpha(t)

    def d_sigma(self, t: TimeLike) -> Tensor:
        t = compute_time(t)
        a = self.alpha(t)
        return 0.5 * self.beta(t) * a * a / self.sigma(t)

    def log_snr(self, t: TimeLike) -> Tensor:
        return -torch.log(torch.expm1(self.integrated_beta(t)))

    def t_from_log_snr(self, log_snr: TimeLike) -> Tensor:
        lam = compute_time(log_snr)
        b = torch.nn.functional.softplus(-lam)  # B = log(1 + e^{-λ})
        db = self.beta_max - self.beta_min
        # root of ½ Δβ t² + β_min t − B = 0, written without cancellation
        t = 2.0 * b / (self.beta_min + torch.sqrt(self.beta_min**2 + 2.0 * db * b))
        return t.clamp(0.0, 1.0)

    def f_coef(self, t: TimeLike) -> Tensor:
        return -0.5 * self.beta(t)

    def g2(self, t: TimeLike) -> Tensor:
        return self.beta(t)

    @property
    def prior_std(self) -> float:
        return 1.0


class _AlphaOne(DiffusionSchedule):
    """Schedules with :math:`\\alpha \\equiv 1` (variance exploding): ``x_t = x_0 + σ(t) ε``."""

    def alpha(self, t: TimeLike) -> Tensor:
        return torch.ones_like(compute_time(t))

    def d_alpha(self, t: TimeLike) -> Tensor:
        return torch.zeros_like(compute_time(t))

    def log_snr(self, t: TimeLike) -> Tensor:
        return -2.0 * torch.log(self.sigma(t))

    def scaled_sigma(self, t: TimeLike) -> Tensor:
        return self.sigma(t)

    def f_coef(self, t: TimeLike) -> Tensor:
        return torch.zeros_like(compute_time(t))

    def g2(self, t: TimeLike) -> Tensor:
        t = compute_time(t)
        return 2.0 * self.sigma(t) * self.d_sigma(t)

    @property
    def prior_std(self) -> float:
        return float(self.sigma_max)  # type: ignore[attr-defined]


@attrs.frozen(kw_only=True)
class VESchedule(_AlphaOne):
    r"""Variance-exploding schedule (SMLD / VE-SDE of Song et al. 2021).

    .. math::
        \alpha = 1,\quad \sigma(t) = \sigma_{min}(\sigma_{max}/\sigma_{min})^t,\quad
        f = 0,\quad g(t)^2 = 2\sigma(t)^2 \log(\sigma_{max}/\sigma_{min}).

    :math:`\sigma(0) = \sigma_{min} > 0`, so every quantity is regular on [0, 1]; t = 0 is the data
    convolved with :math:`\mathcal N(0, \sigma_{min}^2 I)`. Prior: :math:`\mathcal N(0, \sigma_{max}^2 I)`.

    Args:
        sigma_min: :math:`\sigma_{min} > 0`.
        sigma_max: :math:`\sigma_{max} > \sigma_{min}`.

    Example:
        >>> s = VESchedule(sigma_min=0.01, sigma_max=50.0)
        >>> [round(float(v), 6) for v in s.sigma(torch.tensor([0.0, 1.0], dtype=torch.float64))]
        [0.01, 50.0]
    """

    sigma_min: float = attrs.field(default=0.01, converter=float, validator=positive_float)
    sigma_max: float = attrs.field(default=50.0, converter=float,
                                   validator=[positive_float, _check_order("sigma_min", "sigma_max")])

    @property
    def _log_ratio(self) -> float:
        return math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t: TimeLike) -> Tensor:
        t = compute_time(t)
        return self.sigma_min * torch.exp(self._log_ratio * t)

    def d_sigma(self, t: TimeLike) -> Tensor:
        return self._log_ratio * self.sigma(t)

    def log_snr(self, t: TimeLike) -> Tensor:
        t = compute_time(t)
        return -2.0 * (math.log(self.sigma_min) + self._log_ratio * t)

    def t_from_log_snr(self, log_snr: TimeLike) -> Tensor:
        lam = compute_time(log_snr)
        return ((-0.5 * lam - math.log(self.sigma_min)) / self._log_ratio).clamp(0.0, 1.0)

    def g2(self, t: TimeLike) -> Tensor:
        s = self.sigma(t)
        return 2.0 * self._log_ratio * s * s


@attrs.frozen(kw_only=True)
class EDMSchedule(_AlphaOne):
    r"""The noise levels of Karras et al. (2022) on t ∈ [0, 1], with :math:`\alpha = 1`.

    .. math::
        \sigma(t) = \big(\sigma_{min}^{1/\rho} + t\,(\sigma_{max}^{1/\rho} - \sigma_{min}^{1/\rho})\big)^\rho,
        \quad g(t)^2 = 2\sigma\dot\sigma,\quad f = 0,

    so a uniform grid in t is the EDM (Karras ρ) discretisation. ``sigma_data`` (the data standard
    deviation) is used by the EDM preconditioning and loss weighting
    (:class:`~nami_diffusion.losses.EDMPrecond`, ``weighting="edm"``). Prior:
    :math:`\mathcal N(0, \sigma_{max}^2 I)`.

    Args:
        sigma_min: :math:`\sigma_{min} > 0` (0.002).
        sigma_max: :math:`\sigma_{max} > \sigma_{min}` (80).
        rho: :math:`\rho > 0` (7).
        sigma_data: :math:`\sigma_{data} > 0` (0.5).

    Example:
        >>> s = EDMSchedule()
        >>> [round(float(v), 6) for v in s.sigma(torch.tensor([0.0, 1.0], dtype=torch.float64))]
        [0.002, 80.0]
    """

    sigma_min: float = attrs.field(default=0.002, converter=float, validator=positive_float)
    sigma_max: float = attrs.field(default=80.0, converter=float,
                                   validator=[positive_float, _check_order("sigma_min", "sigma_max")])
    rho: float = attrs.field(default=7.0, converter=float, validator=positive_float)
    sigma_data: float = attrs.field(default=0.5, converter=float, validator=positive_float)

    @property
    def _ab(self) -> tuple[float, float]:
        a = self.sigma_min ** (1.0 / self.rho)
        return a, self.sigma_max ** (1.0 / self.rho) - a

    def _base(self, t: TimeLike) -> Tensor:
        a, b = self._ab
        return a + b * compute_time(t)

    def sigma(self, t: TimeLike) -> Tensor:
        return self._base(t) ** self.rho

    def d_sigma(self, t: TimeLike) -> Tensor:
        _, b = self._ab
        return self.rho * b * self._base(t) ** (self.rho - 1.0)

    def log_snr(self, t: TimeLike) -> Tensor:
        return -2.0 * self.rho * torch.log(self._base(t))

    def t_from_log_snr(self, log_snr: TimeLike) -> Tensor:
        lam = compute_time(log_snr)
        a, b = self._ab
        return ((torch.exp(-lam / (2.0 * self.rho)) - a) / b).clamp(0.0, 1.0)
