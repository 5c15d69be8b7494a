r"""Denoising score matching and the EDM preconditioning.

The denoising score-matching loss (Vincent 2011; Song et al. 2021) for a model predicting
:math:`p \in \{` eps, x0, score, v, velocity :math:`\}` at
:math:`x_t = \alpha x_0 + \sigma\varepsilon`:

.. math:: \mathcal L = E_{t, x_0, \varepsilon}\big[\, w_p(t)\; \overline{(m_\theta(x_t, t) - p^\star)^2} \,\big],

with the regression target :math:`p^\star` of :mod:`~nami_diffusion.parameterization` (score:
:math:`-\varepsilon/\sigma`, the conditional score; velocity: :math:`\dot\alpha x_0 + \dot\sigma\varepsilon`)
and the bar the mean over the event's elements. For fixed :math:`x_t` every prediction error is a
multiple :math:`k_p(t)` of the data-prediction error,
:math:`\lVert\Delta p\rVert = k_p\lVert\Delta\hat x_0\rVert` with

.. math:: k_{x0} = 1,\ k_{eps} = \frac{\alpha}{\sigma},\ k_{score} = \frac{\alpha}{\sigma^2},\
          k_v = \frac{\alpha^2 + \sigma^2}{\sigma},\ k_{velocity} = \frac{\alpha\dot\sigma - \sigma\dot\alpha}{\sigma},

so a weighting is named by the data-space weight :math:`w_{x0}(t)` it puts on
:math:`\lVert\hat x_0 - x_0\rVert^2` and :math:`w_p = w_{x0}/k_p^2` (Kingma & Gao 2023):

=============== ================================================== ===========================================
``weighting``   :math:`w_{x0}(t)`                                    loss it reproduces
=============== ================================================== ===========================================
``"native"``    :math:`k_p^2`                                        plain MSE of the model's own prediction
``"eps"``       :math:`\alpha^2/\sigma^2` (SNR)                      :math:`\lVert\hat\varepsilon - \varepsilon\rVert^2` (Ho et al. 2020; = :math:`\sigma^2`-weighted score loss)
``"x0"``        1                                                   :math:`\lVert\hat x_0 - x_0\rVert^2`
``"v"``         :math:`(\alpha^2 + \sigma^2)^2/\sigma^2`             :math:`\lVert\hat v - v\rVert^2` (Salimans & Ho 2022)
``"likelihood"`` :math:`g^2\alpha^2/\sigma^4`                        :math:`g^2\lVert s_\theta - \nabla\log p(x_t\mid x_0)\rVert^2` (Song et al. 2021b)
``"min_snr"``   :math:`\min(\mathrm{SNR}, \gamma)`                   Min-SNR-γ (Hang et al. 2023)
``"edm"``       :math:`(\tilde\sigma^2 + \sigma_d^2)/(\tilde\sigma\sigma_d)^2`  EDM, :math:`\tilde\sigma = \sigma/\alpha` (Karras et al. 2022)
callable        ``weighting(t)``                                      any data-space weight
=============== ================================================== ===========================================

Time / noise-level sampling densities: ``"uniform"`` :math:`t \sim U[t_\text{min}, 1]`;
``"lognormal"`` :math:`\ln\tilde\sigma \sim \mathcal N(P_\text{mean}, P_\text{std}^2)` (EDM; mapped to t
by the inverse log-SNR and clipped to :math:`[t_\text{min}, 1]`); ``"logsnr"`` :math:`\lambda` uniform on
:math:`[\lambda(1), \lambda(t_\text{min})]`. :math:`t_\text{min}` defaults to 1e-5 where
:math:`\sigma(0) = 0` (VP), else 0.

References:
    Vincent. A Connection Between Score Matching and Denoising Autoencoders. 2011.
    Song, Durkan, Murray, Ermon. Maximum Likelihood Training of Score-Based Diffusion Models. 2021.
    https://arxiv.org/abs/2101.09258
    Ho, Jain, Abbeel. Denoising Diffusion Probabilistic Models. 2020. https://arxiv.org/abs/2006.11239
    Karras, Aittala, Aila, Laine. Elucidating the Design Space of Diffusion-Based Generative
    Models. 2022. https://arxiv.org/abs/2206.00364
    Hang et al. Efficient Diffusion Training via Min-SNR Weighting Strategy. 2023.
    https://arxiv.org/abs/2303.09556
    Kingma, Gao. Understanding Diffusion Objectives as the ELBO with Simple Data Augmentation.
    2023. https://arxiv.org/abs/2303.00848
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from nami_core.errors import ShapeError
from nami_core.losses import reduce_loss
from nami_core.shapes import expand_context, leading_shape, time_like
from nami_core.validation import one_of

from .parameterization import check_parameterization, from_x0_eps
from .schedules import broadcast_to_state, collapse_time, compute_time

__all__ = ["WEIGHTINGS", "TIME_SAMPLINGS", "dsm_loss", "dsm_weight", "sample_time", "EDMPrecond",
           "edm_precond_coefs"]

#: Named weightings of :func:`dsm_loss`.
WEIGHTINGS: Tuple[str, ...] = ("native", "eps", "x0", "v", "likelihood", "min_snr", "edm")
#: Time sampling densities of :func:`dsm_loss`.
TIME_SAMPLINGS: Tuple[str, ...] = ("uniform", "lognormal", "logsnr")

_check_reduction = one_of("mean", "sum", "none")


def _default_t_min(schedule: Any) -> float:
    return 1e-5 if float(schedule.sigma(torch.zeros((), dtype=torch.float64))) == 0.0 else 0.0


def sample_time(
    schedule: Any,
    shape: Tuple[int, ...],
    *,
    time_sampling: str = "uniform",
    t_min: Optional[float] = None,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    dtype: torch.dtype = torch.float32,
    device: Optional[torch.device] = None,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    r"""Training times of ``shape`` drawn from ``time_sampling`` (see the module docstring)."""
    one_of(*TIME_SAMPLINGS)(None, "time_sampling", time_sampling)
    t_min = _default_t_min(schedule) if t_min is None else float(t_min)
    if not (0.0 <= t_min < 1.0):
        raise ValueError(f"t_min must lie in [0, 1), got {t_min}")
    u_dtype = torch.promote_types(dtype, torch.float32)
    if time_sampling == "uniform":
        u = torch.rand(shape, generator=generator, dtype=u_dtype, device=device)
        t = t_min + (1.0 - t_min) * u
    elif time_sampling == "lognormal":
        z = torch.randn(shape, generator=generator, dtype=u_dtype, device=device)
        t = schedule.t_from_scaled_sigma(torch.exp(p_mean + p_std * z)).clamp(t_min, 1.0)
    else:
        ends = torch.tensor([1.0, t_min], dtype=torch.float64)
        lo, hi = schedule.log_snr(ends).tolist()
        if not math.isfinite(hi):
            raise ValueError("time_sampling='logsnr' needs sigma(t_min) > 0; pass t_min > 0")
        u = torch.rand(shape, generator=generator, dtype=u_dtype, device=device)
        t = schedule.t_from_log_snr(lo + (hi - lo) * u).clamp(t_min, 1.0)
    return t.to(dtype)


def _k(parameterization: str, schedule: Any, tc: Tensor, a: Tensor, s: Tensor) -> Tensor:
    r"""The factor :math:`k_p` with :math:`\lVert\Delta p\rVert = k_p \lVert\Delta \hat x_0\rVert`."""
    if parameterization == "x0":
        return torch.ones_like(a)
    if parameterization == "eps":
        return a / s
    if parameterization == "score":
        return a / (s * s)
    if parameterization == "v":
        return (a * a + s * s) / s
    return (a * schedule.d_sigma(tc) - s * schedule.d_alpha(tc)) / s


def dsm_weight(
    schedule: Any,
    t: Tensor,
    *,
    parameterization: str,
    weighting: Union[str, Callable[[Tensor], Tensor]] = "native",
    gamma: float = 5.0,
    sigma_data: Optional[float] = None,
) -> Tensor:
    r"""Weight :math:`w_p(t) = w_{x0}(t)/k_p(t)^2` on the MSE of a ``parameterization`` prediction.

    Computed in float32 or better; shape of ``t``.
    """
    check_parameterization(parameterization)
    if weighting == "native":
        return torch.ones_like(compute_time(collapse_time(t)))
    tc = compute_time(collapse_time(t))
    a, s = schedule.alpha(tc), schedule.sigma(tc)
    if callable(weighting):
        w_x0 = compute_time(weighting(tc))
    else:
        one_of(*WEIGHTINGS)(None, "weighting", weighting)
        snr = (a / s) ** 2
        if weighting == "eps":
            w_x0 = snr
        elif weighting == "x0":
            w_x0 = torch.ones_like(a)
        elif weighting == "v":
            w_x0 = (a * a + s * s) ** 2 / (s * s)
        elif weighting == "likelihood":
            w_x0 = schedule.g2(tc) * a * a / s**4
        elif weighting == "min_snr":
            w_x0 = snr.clamp(max=float(gamma))
        else:  # edm
            sd = float(sigma_data if sigma_data is not None else getattr(schedule, "sigma_data", 0.5))
            st = s / a
            w_x0 = (st * st + sd * sd) / (st * sd) ** 2
    k = _k(parameterization, schedule, tc, a, s)
    return w_x0 / (k * k)


def dsm_loss(
    model: Any,
    schedule: Any,
    x0: Tensor,
    *,
    parameterization: str = "eps",
    weighting: Union[str, Callable[[Tensor], Tensor]] = "native",
    c: Optional[Tensor] = None,
    t: Optional[Union[Tensor, float]] = None,
    noise: Optional[Tensor] = None,
    time_sampling: str = "uniform",
    t_min: Optional[float] = None,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    gamma: float = 5.0,
    sigma_data: Optional[float] = None,
    reduction: str = "mean",
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    r"""Denoising score-matching loss of ``model`` on data ``x0`` (see the module docstring).

    Args:
        model: ``model(x, t, c=None)`` predicting ``parameterization``, exposing ``event_ndim``.
        schedule: the noise schedule.
        x0: data, shape ``lead + event_shape``.
        parameterization: ``"eps"``, ``"x0"``, ``"score"``, ``"v"`` or ``"velocity"``.
        weighting: a name of :data:`WEIGHTINGS` or a callable data-space weight ``w(t)``.
        c: context ``lead + (k,)`` (or ``batch_shape + (k,)``, broadcast).
        t: times (leading shape, or broadcastable) in [0, 1]; ``None`` draws them.
        noise: the noise :math:`\varepsilon` (``None``: standard normal).
        time_sampling: ``"uniform"``, ``"lognormal"`` or ``"logsnr"``.
        t_min: smallest training time (default 1e-5 if :math:`\sigma(0) = 0`, else 0).
        p_mean: :math:`P_\text{mean}` of ``"lognormal"``.
        p_std: :math:`P_\text{std}` of ``"lognormal"``.
        gamma: :math:`\gamma` of ``"min_snr"``.
        sigma_data: :math:`\sigma_d` of ``"edm"`` (default ``schedule.sigma_data`` or 0.5).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-sample losses of shape ``lead``).
        generator: random generator for ``t`` and the noise.

    Raises:
        ShapeError: the model output or ``noise`` does not match ``x0``.
        ValueError: an unknown name, or a time where the chosen parameterisation is singular.

    Example:
        >>> from nami_diffusion.schedules import VPSchedule
        >>> from nami_diffusion.testing import GaussianDiffusionModel
        >>> s = VPSchedule()
        >>> exact = GaussianDiffusionModel(torch.zeros(2), 1.0, s, "eps")
        >>> x0 = torch.randn(8, 2)
        >>> float(dsm_loss(exact, s, x0, reduction="none").shape[0])
        8.0
    """
    _check_reduction(None, "reduction", reduction)
    check_parameterization(parameterization)
    event_ndim = getattr(model, "event_ndim", None)
    if not isinstance(event_ndim, int) or event_ndim < 0:
        raise TypeError(f"model must expose an integer attribute event_ndim >= 0, got {event_ndim!r}")
    lead = leading_shape(x0, event_ndim)
    given_t = t is not None
    if t is None:
        t = sample_time(schedule, tuple(lead), time_sampling=time_sampling, t_min=t_min, p_mean=p_mean,
                        p_std=p_std, dtype=x0.dtype, device=x0.device, generator=generator)
    else:
        t = time_like(t, x0, event_ndim)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    elif noise.shape != x0.shape:
        raise ShapeError(f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
    x_t = schedule.marginal(x0, noise, t)
    target = from_x0_eps(x0, noise, x_t, t, schedule, parameterization).to(x0.dtype)
    pred = model(x_t, t, expand_context(c, lead))
    if pred.shape != target.shape:
        raise ShapeError(f"model returned shape {tuple(pred.shape)}, expected {tuple(target.shape)}")
    dims = tuple(range(-event_ndim, 0))
    sq = (pred - target).square()
    mse = sq.mean(dim=dims) if dims else sq
    if weighting == "native":
        per_sample = mse
    else:
        w = dsm_weight(schedule, t, parameterization=parameterization, weighting=weighting, gamma=gamma,
                       sigma_data=sigma_data)
        per_sample = (w * mse).to(mse.dtype)
    if given_t and not bool(torch.isfinite(per_sample).all()):  # sampled times are >= t_min: regular
        raise ValueError(
            f"the {parameterization!r} loss is not finite at some of the given times t (e.g. where "
            f"sigma(t) = 0, singular for this parameterisation/weighting); use t >= t_min > 0"
        )
    return reduce_loss(per_sample, reduction)


def edm_precond_coefs(scaled_sigma: Tensor, sigma_data: float) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""EDM preconditioning (Karras et al. 2022, Table 1) at noise level :math:`\tilde\sigma`:

    .. math:: c_\text{skip} = \frac{\sigma_d^2}{\tilde\sigma^2 + \sigma_d^2},\quad
              c_\text{out} = \frac{\tilde\sigma\sigma_d}{\sqrt{\tilde\sigma^2 + \sigma_d^2}},\quad
              c_\text{in} = \frac{1}{\sqrt{\tilde\sigma^2 + \sigma_d^2}},\quad
              c_\text{noise} = \tfrac14\ln\tilde\sigma .

    Returns:
        ``(c_skip, c_out, c_in, c_noise)``, each shaped like ``scaled_sigma``.
    """
    s = compute_time(scaled_sigma)
    sd2 = float(sigma_data) ** 2
    n = s * s + sd2
    return sd2 / n, s * sigma_data / torch.sqrt(n), 1.0 / torch.sqrt(n), 0.25 * torch.log(s)


class EDMPrecond(nn.Module):
    r"""EDM-preconditioned data prediction :math:`D(x, t) = c_\text{skip}\tilde x + c_\text{out}F_\theta(c_\text{in}\tilde x, c_\text{noise}, c)`.

    :math:`\tilde x = x/\alpha(t)`, :math:`\tilde\sigma = \sigma(t)/\alpha(t)` (any schedule; for
    VE/EDM :math:`\tilde x = x`). Use it with ``parameterization="x0"``; with ``weighting="edm"`` the
    DSM loss is exactly the unit-weight MSE of :math:`F_\theta` against its effective target
    :math:`(x_0 - c_\text{skip}\tilde x)/c_\text{out}` (:math:`\lambda c_\text{out}^2 = 1`).

    Args:
        net: the raw network ``net(x_in, c_noise, c=None)``; ``c_noise`` has the leading shape of
            ``x_in`` (it takes the place of the time), and ``net`` exposes ``event_ndim``.
        schedule: the noise schedule.
        sigma_data: :math:`\sigma_d` (default ``schedule.sigma_data`` or 0.5).
    """

    def __init__(self, net: Any, schedule: Any, sigma_data: Optional[float] = None) -> None:
        super().__init__()
        self.net = net
        self.schedule = schedule
        self.sigma_data = float(sigma_data if sigma_data is not None else getattr(schedule, "sigma_data", 0.5))
        n = getattr(net, "event_ndim", None)
        if not isinstance(n, int):
            raise TypeError("net must expose an integer attribute event_ndim")
        self.event_ndim = n

    def forward(self, x: Tensor, t: Tensor, c: Optional[Tensor] = None) -> Tensor:
        tc = compute_time(collapse_time(t))
        a = self.schedule.alpha(tc)
        c_skip, c_out, c_in, c_noise = edm_precond_coefs(self.schedule.sigma(tc) / a, self.sigma_data)
        xt = x / broadcast_to_state(a, x)
        c_noise = c_noise.to(x.dtype).expand(t.shape)  # the time rule: leading shape of x
        f = self.net((broadcast_to_state(c_in, x) * xt).to(x.dtype), c_noise, c)
        return (broadcast_to_state(c_skip, x) * xt + broadcast_to_state(c_out, x) * f).to(x.dtype)
