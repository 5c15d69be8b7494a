r"""The diffusion model configuration :class:`Diffusion` and its bound :class:`DiffusionProcess`.

A model :math:`m_\theta(x, t \mid c)` trained to predict ``eps``, ``x0``, ``score``, ``v`` or
``velocity`` (:mod:`~nami_diffusion.parameterization`) for the schedule
:math:`x_t = \alpha(t)x_0 + \sigma(t)\varepsilon` defines, through the pair
:math:`(\hat x_0, \hat\varepsilon)`,

- the score :math:`s = -\hat\varepsilon/\sigma`,
- the probability-flow velocity :math:`u = \dot\alpha\hat x_0 + \dot\sigma\hat\varepsilon = f - \tfrac12 g^2 s`,
- the reverse-time SDE :math:`dx = (u - \tfrac12\gamma^2 s)\,dt + \gamma\,d\bar W` from t = 1 to
  ``t_end`` (:math:`\gamma = ` ``sde_noise`` :math:`\cdot g`; see :mod:`~nami_diffusion.wrappers`
  for the sign).

What runs depends on the solver:

- an ODE solver (``integrate``) integrates the probability-flow ODE (``sample``, ``encode``,
  ``decode``, ``log_prob``, ``sample_and_log_prob``);
- an SDE solver (``integrate_sde``) samples the reverse SDE (``sample``, ``decode``);
- a diffusion sampler (``sample_diffusion``: DDIM, DPM-Solver++, EDM Heun) samples from the data
  prediction (``sample``, ``decode``).

Likelihoods always use the probability-flow ODE with an ODE solver (the solver itself, or
``ode_solver=``) from ``t_end`` to 1 and the prior :math:`\mathcal N(0, s_1^2 I)` at t = 1 with
:math:`s_1` = ``schedule.prior_std`` (VP: 1; VE and EDM: :math:`\sigma_{max}`):

.. math:: \log p_{t_\text{end}}(x) = \log\mathcal N(x_1; 0, s_1^2 I) + \int_{t_\text{end}}^1 \nabla\!\cdot u(x_t, t)\,dt .

It is the density of the model's distribution at ``t_end`` (VE/EDM: the data convolved with
:math:`\mathcal N(0, \sigma(0)^2 I)`), which is what ``sample`` returns with ``final_step="none"``.

End time. Sampling ends at ``t_end`` (default ``schedule.default_t_end``: 1e-3 for VP, whose score
and probability-flow velocity are singular at t = 0 where :math:`\sigma = 0`; 0 for VE/EDM where
:math:`\sigma(0) > 0`). A ``t_end`` with :math:`\sigma(t_\text{end}) = 0` is refused for ODE and SDE
solvers. ``final_step="denoise"`` adds Tweedie's denoising step :math:`x \leftarrow \hat x_0(x, t_\text{end})`
(one more model call) so that samples land on the data manifold. Samplers take their own
``final_zero`` option (a last step to zero noise, landing on :math:`\hat x_0` exactly).

Guidance. Classifier-free guidance (Ho & Salimans 2022) with scale :math:`w`:
:math:`\hat m = m(x, t \mid \varnothing) + w\,(m(x, t \mid c) - m(x, t \mid \varnothing))` in the model's own
parameterisation (every conversion is affine in the prediction, so it is the same combination in
any of them); :math:`w = 0` is exactly the unconditional model and :math:`w = 1` exactly the
conditional one (each then costs a single call). A guidance hook ``guidance(x, t, c)`` returns a score
correction :math:`\Delta s` (e.g. :math:`w\nabla_x\log p_\phi(y \mid x_t)` for classifier guidance,
Dhariwal & Nichol 2021), applied as :math:`\hat\varepsilon \leftarrow \hat\varepsilon - \sigma\Delta s`,
:math:`\hat x_0 \leftarrow \hat x_0 + (\sigma^2/\alpha)\Delta s`. Sampling runs under
:func:`torch.no_grad`; a hook that needs gradients enables them itself.

References:
    Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole. Score-Based Generative Modeling through
    Stochastic Differential Equations. 2021. https://arxiv.org/abs/2011.13456
    Ho, Salimans. Classifier-Free Diffusion Guidance. 2022. https://arxiv.org/abs/2207.12598
    Dhariwal, Nichol. Diffusion Models Beat GANs on Image Synthesis. 2021.
    https://arxiv.org/abs/2105.05233
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from nami_core.divergence import integrate_with_divergence
from nami_core.errors import ShapeError
from nami_core.protocols import Solution
from nami_core.shapes import as_size, check_event_shape, expand_context
from nami_core.validation import one_of

from .parameterization import check_parameterization, from_x0_eps, to_x0_eps
from .schedules import broadcast_to_state, collapse_time, compute_time

__all__ = ["Diffusion", "DiffusionProcess"]

_LOG_2PI = math.log(2.0 * math.pi)


def _resolve(kind: str, obj: Any) -> Any:
    if isinstance(obj, str):
        from nami_core.registry import build

        return build(kind, obj)
    return obj


def _resolve_solver(obj: Any) -> Any:
    """A solver instance, or a registry name looked up as a ``solver``, then as a ``sampler``."""
    if not isinstance(obj, str):
        return obj
    from nami_core.errors import ComponentNotFoundError
    from nami_core.registry import build

    try:
        return build("solver", obj)
    except ComponentNotFoundError as first:
        try:
            return build("sampler", obj)
        except ComponentNotFoundError:
            raise first from None


def solver_kind(solver: Any) -> str:
    """``"sampler"``, ``"sde"`` or ``"ode"`` (by the method the solver provides), else TypeError."""
    if callable(getattr(solver, "sample_diffusion", None)):
        return "sampler"
    if callable(getattr(solver, "integrate_sde", None)):
        return "sde"
    if callable(getattr(solver, "integrate", None)):
        return "ode"
    raise TypeError(
        f"solver must provide integrate (ODE), integrate_sde (SDE) or sample_diffusion (sampler), got {solver!r}"
    )


class Diffusion(nn.Module):
    r"""Diffusion model configuration :math:`p_\theta(x \mid c)` (lazy: bind with ``diffusion(c)``).

    Args:
        model: ``model(x, t, c=None)`` predicting ``parameterization``; ``t`` has the leading shape
            of ``x`` (the time rule) and the model exposes ``event_ndim``.
        schedule: the noise schedule, or its registry name (``"vp"``, ``"ve"``, ``"edm"``).
        solver: an ODE solver, an SDE solver or a diffusion sampler, or a registry name (looked
            up as a ``solver``, then as a ``sampler``).
        parameterization: what the model predicts: ``"eps"`` (default), ``"x0"``, ``"score"``,
            ``"v"`` or ``"velocity"``.
        event_shape: shape of one event (default: ``model.event_shape``).
        t_end: sampling end time in [0, 1) (default ``schedule.default_t_end``).
        final_step: ``"none"`` or ``"denoise"`` (a last Tweedie step :math:`\hat x_0(x, t_\text{end})`
            after an ODE/SDE solve).
        guidance_scale: classifier-free guidance scale :math:`w` (``None``: no CFG).
        guidance: hook ``guidance(x, t, c) -> Δs``, a score correction.
        null_context: context of the unconditional call in CFG (``None``: the model is called with
            ``c=None``); a tensor of shape ``(k,)`` is broadcast.
        ode_solver: ODE solver for ``log_prob``/``encode`` when ``solver`` is not an ODE solver.
        sde_noise: scale of the reverse-SDE noise, :math:`\gamma = ` ``sde_noise`` :math:`\cdot g`
            (1: the reverse SDE of the schedule; 0: the probability-flow ODE).

    Example:
        >>> import torch
        >>> from nami_diffusion.schedules import VPSchedule
        >>> from nami_diffusion.testing import GaussianDiffusionModel
        >>> from nami_solvers import RK4
        >>> sched = VPSchedule()
        >>> model = GaussianDiffusionModel(torch.zeros(2), 1.0, sched, "eps")
        >>> diffusion = Diffusion(model, sched, RK4(steps=10), event_shape=(2,))
        >>> process = diffusion()
        >>> process.sample((4,), generator=torch.Generator().manual_seed(0)).shape
        torch.Size([4, 2])
    """

    def __init__(
        self,
        model: Any,
        schedule: Any,
        solver: Any,
        *,
        parameterization: str = "eps",
        event_shape: Optional[Sequence[int]] = None,
        t_end: Optional[float] = None,
        final_step: str = "none",
        guidance_scale: Optional[float] = None,
        guidance: Optional[Callable[..., Tensor]] = None,
        null_context: Optional[Tensor] = None,
        ode_solver: Any = None,
        sde_noise: float = 1.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.schedule = _resolve("schedule", schedule)
        for name in ("alpha", "sigma", "d_alpha", "d_sigma", "f_coef", "g2"):
            if not callable(getattr(self.schedule, name, None)):
                raise TypeError(f"schedule must provide {name}(t) (see nami_diffusion.schedules), got {self.schedule!r}")
        self.solver = _resolve_solver(solver)
        self.solver_kind = solver_kind(self.solver)
        self.parameterization = check_parameterization(parameterization)
        if event_shape is None:
            event_shape = getattr(model, "event_shape", None)
            if event_shape is None:
                raise TypeError("event_shape is required (the model does not expose event_shape)")
        self.event_shape = as_size(event_shape)
        if any(n < 1 for n in self.event_shape):
            raise ValueError(f"event_shape must contain positive sizes, got {tuple(self.event_shape)}")
        model_ndim = getattr(model, "event_ndim", None)
        if isinstance(model_ndim, int) and model_ndim != len(self.event_shape):
            raise ShapeError(f"model.event_ndim ({model_ndim}) does not match event_shape {tuple(self.event_shape)}")
        self.t_end = float(self.schedule.default_t_end if t_end is None else t_end)
        if not (0.0 <= self.t_end < 1.0):
            raise ValueError(f"t_end must lie in [0, 1), got {self.t_end}")
        one_of("none", "denoise")(None, "final_step", final_step)
        self.final_step = final_step
        self.guidance_scale = None if guidance_scale is None else float(guidance_scale)
        self.guidance = guidance
        self.null_context = null_context
        ode = _resolve("solver", ode_solver) if ode_solver is not None else None
        if ode is not None and not callable(getattr(ode, "integrate", None)):
            raise TypeError(f"ode_solver must be an ODE solver with an integrate method, got {ode!r}")
        self.ode_solver = ode if ode is not None else (self.solver if self.solver_kind == "ode" else None)
        self.sde_noise = float(sde_noise)
        if not (math.isfinite(self.sde_noise) and self.sde_noise >= 0):
            raise ValueError(f"sde_noise must be a finite number >= 0, got {sde_noise}")
        if self.solver_kind != "sampler" and self._sigma_end() == 0.0:
            raise ValueError(
                f"t_end={self.t_end} has sigma(t_end) = 0 for {self.schedule!r}: the score and the "
                f"probability-flow velocity are singular there, so an ODE/SDE solver cannot end at it. "
                f"Use t_end > 0 (default {self.schedule.default_t_end}) with final_step='denoise', or a "
                f"sampler (DPMSolverPP, DDIM, EDMHeun) that lands on the data with a final denoising step"
            )
        self.register_buffer("_proto", torch.zeros(()), persistent=False)

    def _sigma_end(self) -> float:
        return float(self.schedule.sigma(torch.tensor(self.t_end, dtype=torch.float64)))

    @property
    def event_ndim(self) -> int:
        return len(self.event_shape)

    @property
    def prior_std(self) -> float:
        """Standard deviation :math:`s_1` of the prior :math:`\\mathcal N(0, s_1^2 I)` at t = 1."""
        return float(self.schedule.prior_std)

    def forward(self, context: Optional[Tensor] = None) -> "DiffusionProcess":
        """Bind the configuration to ``context`` (shape ``batch_shape + (k,)``, or ``None``)."""
        return DiffusionProcess(self, context)

    def loss(self, x0: Tensor, c: Optional[Tensor] = None, **kwargs: Any) -> Tensor:
        """Denoising score-matching loss of the model (see :func:`~nami_diffusion.losses.dsm_loss`)."""
        from .losses import dsm_loss

        return dsm_loss(self.model, self.schedule, x0, c=c, parameterization=self.parameterization, **kwargs)

    def extra_repr(self) -> str:
        return (f"schedule={self.schedule!r}, solver={self.solver!r}, parameterization={self.parameterization!r}, "
                f"event_shape={tuple(self.event_shape)}, t_end={self.t_end}")


class DiffusionProcess:
    r"""A :class:`Diffusion` bound to a context: the distribution :math:`p_\theta(x \mid c)`.

    Shapes follow ``sample_shape + batch_shape + event_shape`` with
    ``batch_shape = context.shape[:-1]``. ``sample`` runs without autograd, ``rsample`` keeps the
    graph; ``log_prob``/``encode``/``decode`` follow the caller's grad mode.
    """

    def __init__(self, config: Diffusion, context: Optional[Tensor] = None) -> None:
        self.config = config
        self.model = config.model
        self.schedule = config.schedule
        self.solver = config.solver
        self.parameterization = config.parameterization
        self.event_shape = torch.Size(config.event_shape)
        self.event_ndim = len(self.event_shape)
        if context is not None and (not torch.is_tensor(context) or context.ndim < 1):
            raise ShapeError("context must be a tensor of shape batch_shape + (k,)")
        self.context = context
        self.batch_shape = torch.Size() if context is None else context.shape[:-1]
        self.t_end = config.t_end

    # -- shapes ------------------------------------------------------------------------------------
    def _lead(self, x: Tensor, name: str) -> torch.Size:
        lead = check_event_shape(x, self.event_shape, name)
        nb = len(self.batch_shape)
        if nb and (len(lead) < nb or tuple(lead[len(lead) - nb:]) != tuple(self.batch_shape)):
            raise ShapeError(
                f"{name} of shape {tuple(x.shape)} does not match the context: expected "
                f"sample_shape + batch_shape {tuple(self.batch_shape)} + event_shape {tuple(self.event_shape)}"
            )
        return lead

    def _contexts(self, x: Tensor) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        lead = x.shape[: x.ndim - self.event_ndim]
        c = expand_context(self.context, lead)
        null = self.config.null_context
        if null is not None:
            null = null.to(dtype=x.dtype, device=x.device) if null.is_floating_point() else null
            null = null.expand(*lead, null.shape[-1])
        return c, null

    # -- predictions ---------------------------------------------------------------------------------
    def _native(self, x: Tensor, t: Tensor) -> Tensor:
        """The model's own prediction, with classifier-free guidance."""
        model = self.model
        w = self.config.guidance_scale
        c, null = self._contexts(x)
        if w is None:
            return model(x, t, c)
        if w == 1.0:
            return model(x, t, c)
        if w == 0.0:
            return model(x, t, null)
        cond = model(x, t, c)
        uncond = model(x, t, null)
        return torch.lerp(uncond, cond, w)

    def _pair(self, x: Tensor, t: Tensor) -> Tuple[Tensor, Tensor]:
        """:math:`(\\hat x_0, \\hat\\varepsilon)` with guidance applied."""
        x0, eps = to_x0_eps(self._native(x, t), x, t, self.schedule, self.parameterization)
        hook = self.config.guidance
        if hook is not None:
            c, _ = self._contexts(x)
            ds = hook(x, t, c)
            tc = compute_time(collapse_time(t))
            a = broadcast_to_state(self.schedule.alpha(tc), x)
            s = broadcast_to_state(self.schedule.sigma(tc), x)
            eps = (eps - s * ds).to(eps.dtype)
            x0 = (x0 + (s * s / a) * ds).to(x0.dtype)
        return x0, eps

    def predict(self, x: Tensor, t: Tensor, target: str = "x0") -> Tensor:
        """The (guided) model's prediction of kind ``target`` at ``x``, ``t`` (leading shape of ``x``)."""
        check_parameterization(target, "target")
        if self.config.guidance is None and target == self.parameterization:
            return self._native(x, t)
        x0, eps = self._pair(x, t)
        return from_x0_eps(x0, eps, x, t, self.schedule, target).to(x.dtype)

    def velocity(self, x: Tensor, t: Tensor) -> Tensor:
        r"""Probability-flow velocity :math:`u = \dot\alpha\hat x_0 + \dot\sigma\hat\varepsilon`."""
        return self.predict(x, t, "velocity")

    def score(self, x: Tensor, t: Tensor) -> Tensor:
        r"""Score :math:`\nabla_x \log p_t(x) \approx -\hat\varepsilon/\sigma(t)`."""
        return self.predict(x, t, "score")

    def reverse_drift(self, x: Tensor, t: Tensor) -> Tensor:
        r"""Reverse-SDE drift :math:`u - \tfrac12\gamma^2 s = \dot\alpha\hat x_0 + (\dot\sigma + \tfrac12\gamma^2/\sigma)\hat\varepsilon`
        (with respect to t, integrated from 1 down to ``t_end``)."""
        x0, eps = self._pair(x, t)
        tc = compute_time(collapse_time(t))
        sch = self.schedule
        da, ds, s, g2 = (broadcast_to_state(q, x) for q in (sch.d_alpha(tc), sch.d_sigma(tc), sch.sigma(tc), sch.g2(tc)))
        gamma2 = (self.config.sde_noise ** 2) * g2
        return (da * x0 + (ds + 0.5 * gamma2 / s) * eps).to(x.dtype)

    def reverse_diffusion(self, x: Tensor, t: Tensor) -> Tensor:
        r"""Reverse-SDE noise level :math:`\gamma(t)`, shaped ``leading + (1,) * event_ndim``."""
        g = torch.sqrt(self.schedule.g2(compute_time(collapse_time(t)))) * self.config.sde_noise
        return broadcast_to_state(g, x).to(x.dtype)

    # -- transport -----------------------------------------------------------------------------------
    def _ode_solver(self) -> Any:
        solver = self.config.ode_solver
        if solver is None:
            raise TypeError(
                f"{type(self.solver).__name__} is not an ODE solver; log_prob/encode/sample_and_log_prob "
                f"integrate the probability-flow ODE: pass Diffusion(..., ode_solver=...) (e.g. RK4)"
            )
        return solver

    def _check_times(self, t_from: float, t_to: float) -> Tuple[float, float]:
        t_from, t_to = float(t_from), float(t_to)
        for name, v in (("t_from", t_from), ("t_to", t_to)):
            if not (self.t_end <= v <= 1.0):
                raise ValueError(f"{name} must lie in [t_end, 1] = [{self.t_end}, 1], got {v}")
        return t_from, t_to

    def transport(self, x: Tensor, t_from: float, t_to: float, *, trajectory: bool = False) -> Solution:
        """Integrate the probability-flow ODE from ``t_from`` to ``t_to`` (both in [t_end, 1])."""
        t_from, t_to = self._check_times(t_from, t_to)
        lead = self._lead(x, "x")
        return self._ode_solver().integrate(self.velocity, x, t_from, t_to, time_shape=lead, trajectory=trajectory)

    def encode(self, x: Tensor) -> Tensor:
        """Map data (at ``t_end``) to noise (t = 1) along the probability-flow ODE."""
        return self.transport(x, self.t_end, 1.0).y

    def _solve_down(self, z: Tensor, generator: Optional[torch.Generator], trajectory: bool) -> Solution:
        """From noise ``z`` at t = 1 down to ``t_end`` with the configured solver."""
        lead = self._lead(z, "z")
        kind = self.config.solver_kind
        if kind == "sampler":
            denoise = lambda x, t: self.predict(x, t, "x0")  # noqa: E731
            return self.solver.sample_diffusion(denoise, self.schedule, z, 1.0, self.t_end, time_shape=lead,
                                                generator=generator, trajectory=trajectory)
        if kind == "sde":
            sol = self.solver.integrate_sde(self.reverse_drift, self.reverse_diffusion, z, 1.0, self.t_end,
                                            time_shape=lead, generator=generator, trajectory=trajectory)
        else:
            sol = self.solver.integrate(self.velocity, z, 1.0, self.t_end, time_shape=lead, trajectory=trajectory)
        if self.config.final_step == "denoise":
            t = torch.full(lead, self.t_end, dtype=z.dtype, device=z.device)
            x0 = self.predict(sol.y, t, "x0")
            ys = sol.ys
            ts = sol.ts
            if trajectory and ys is not None and ts is not None:
                ys = torch.cat([ys, x0.unsqueeze(0)])
                ts = torch.cat([ts, ts.new_zeros(1)])
            sol = Solution(y=x0, nfe=sol.nfe + 1, ts=ts, ys=ys)
        return sol

    def decode(self, z: Tensor, *, generator: Optional[torch.Generator] = None) -> Tensor:
        """Map noise ``z`` (t = 1) to data with the configured solver (random for an SDE solver)."""
        return self._solve_down(z, generator, False).y

    def prior_sample(self, sample_shape: Sequence[int] = (), *, generator: Optional[torch.Generator] = None) -> Tensor:
        """Draws from the prior :math:`\\mathcal N(0, s_1^2 I)`, shape ``sample_shape + batch_shape + event_shape``."""
        proto = self.config._proto
        shape = as_size(sample_shape) + self.batch_shape + self.event_shape
        return torch.randn(shape, generator=generator, dtype=proto.dtype, device=proto.device) * self.config.prior_std

    def prior_log_prob(self, x: Tensor) -> Tensor:
        """Log-density of the prior :math:`\\mathcal N(0, s_1^2 I)` (summed over the event)."""
        s = self.config.prior_std
        d = self.event_shape.numel()
        dims = tuple(range(-self.event_ndim, 0))
        return -0.5 * x.square().sum(dim=dims) / (s * s) - d * math.log(s) - 0.5 * d * _LOG_2PI

    def rsample(self, sample_shape: Sequence[int] = (), *, generator: Optional[torch.Generator] = None) -> Tensor:
        """Differentiable samples ``sample_shape + batch_shape + event_shape``."""
        return self.decode(self.prior_sample(sample_shape, generator=generator), generator=generator)

    def sample(self, sample_shape: Sequence[int] = (), *, generator: Optional[torch.Generator] = None) -> Tensor:
        """Samples ``sample_shape + batch_shape + event_shape`` (no autograd graph)."""
        with torch.no_grad():
            return self.rsample(sample_shape, generator=generator)

    def trajectory(
        self, sample_shape: Sequence[int] = (), *, z: Optional[Tensor] = None,
        generator: Optional[torch.Generator] = None,
    ) -> Tuple[Tensor, Tensor]:
        """Sampling trajectories for plots: ``(ts, xs)``, ``ts`` of shape ``(K,)`` from 1 down to
        ``t_end`` (0 for a final denoised point), ``xs`` of shape ``(K,) + sample_shape + batch_shape + event_shape``."""
        with torch.no_grad():
            if z is None:
                z = self.prior_sample(sample_shape, generator=generator)
            sol = self._solve_down(z, generator, True)
        if sol.ts is None or sol.ys is None:
            raise TypeError(f"solver {self.solver!r} did not return a trajectory")
        return sol.ts, sol.ys  # type: ignore[return-value]

    # -- likelihood -------------------------------------------------------------------------------------
    def log_prob(self, x: Tensor, *, estimator: Any = None, generator: Optional[torch.Generator] = None) -> Tensor:
        r"""Log-density at ``t_end`` by the probability-flow ODE from ``t_end`` to 1 and the prior.

        Args:
            x: points of shape ``... + batch_shape + event_shape``.
            estimator: divergence estimator (default: exact up to 128 event elements, else one
                Rademacher Hutchinson probe; see :mod:`nami_core.divergence`).
            generator: random generator for Hutchinson probes.
        """
        lead = self._lead(x, "x")
        x1, acc = integrate_with_divergence(self._ode_solver(), self.velocity, x, self.t_end, 1.0,
                                            event_ndim=self.event_ndim, time_shape=lead,
                                            estimator=estimator, generator=generator)
        return self.prior_log_prob(x1) + acc

    def sample_and_log_prob(
        self, sample_shape: Sequence[int] = (), *, estimator: Any = None, generator: Optional[torch.Generator] = None
    ) -> Tuple[Tensor, Tensor]:
        """Samples at ``t_end`` and their log-density in one probability-flow solve from 1 to ``t_end``."""
        if self.config.final_step != "none":
            raise ValueError("sample_and_log_prob needs final_step='none': a denoised sample has no tractable density")
        solver = self._ode_solver()
        z = self.prior_sample(sample_shape, generator=generator)
        lead = self._lead(z, "z")
        x, acc = integrate_with_divergence(solver, self.velocity, z, 1.0, self.t_end, event_ndim=self.event_ndim,
                                           time_shape=lead, estimator=estimator, generator=generator)
        return x, self.prior_log_prob(z) - acc  # acc = -int_{t_end}^1 div u dt

    def __repr__(self) -> str:
        return (f"DiffusionProcess(batch_shape={tuple(self.batch_shape)}, event_shape={tuple(self.event_shape)}, "
                f"solver={self.solver!r})")
