r"""Diffusion SDEs as torchsde objects, and nami SDE solvers backed by torchsde's methods.

torchsde integrates :math:`dY = f(s, Y)\,ds + g(s, Y)\,dW_s` forward in time only, on states of shape
``(batch, d)``. nami samples the reverse-time SDE from t = 1 down to ``t_end``, so everything here maps
the nami time t onto the increasing variable

.. math:: s = |t - t_0| \in [0, |t_1 - t_0|],\qquad t = t_0 + \epsilon s,\quad \epsilon = \operatorname{sign}(t_1 - t_0),

and :math:`Y(s) = x(t_0 + \epsilon s)` solves :math:`dY = \epsilon\,b(Y, t)\,ds + \gamma(t)\,dW_s`: the drift
changes sign when time runs backwards (ε = −1), the noise does not (:math:`-W` is a Brownian motion).
For sampling, :math:`t_0 = 1`, ``s = 1 - t``.

- :class:`ForwardDiffusionSDE`: the noising SDE :math:`dx = f(x, t)\,dt + g(t)\,dW` of a schedule
  (t = s, increasing).
- :class:`ReverseDiffusionSDE`: Anderson's reverse SDE in ``s = 1 - t`` for a score model,
  :math:`dY = -[f - \tfrac12(g^2 + \gamma^2)\nabla\log p_t](Y, 1 - s)\,ds + \gamma(1 - s)\,dW_s`
  (:math:`\gamma = g` by default, see :mod:`~nami_diffusion.wrappers`).
- :class:`TorchSDESolver` (and the thin :class:`TorchSDEEuler`, :class:`TorchSDEMilstein`,
  :class:`TorchSDESRK`, :class:`TorchSDEReversibleHeun`): ``integrate_sde`` with a torchsde method,
  usable by :class:`~nami_diffusion.Diffusion` like the native
  :class:`~nami_solvers.sde.EulerMaruyama`.

Brownian motion. A fixed-step solve only asks for the increments over its own grid, so the default
``brownian="grid"`` draws them once, :math:`\Delta W_n \sim \mathcal N(0, h)` (and, for ``srk``, the
space-time Lévy areas :math:`H_n \sim \mathcal N(0, h/12)`), from the caller's
``torch.Generator`` in the state's dtype and device, and answers each query by a lookup
(:class:`GridBrownian`). ``brownian="interval"`` uses torchsde's ``BrownianInterval`` built from the
same time tensors with the step size given up front (``dt=h``, levy area only for ``srk``, seeded
from the generator); it also answers off-grid queries. ``benchmarks/bench_sde.py`` measures both
against torchsde's default.

Itô vs Stratonovich. ``reversible_heun`` solves Stratonovich SDEs; nami declares the SDE as
Stratonovich for it, which is the same SDE when the noise does not depend on the state (every
diffusion model here). ``milstein`` and ``srk`` use the Itô forms.

References:
    Li, Wong, Chen, Duvenaud. Scalable Gradients for Stochastic Differential Equations. 2020.
    https://arxiv.org/abs/2001.01328 (torchsde)
    Kidger, Foster, Li, Lyons. Efficient and Accurate Gradients for Neural SDEs. 2021.
    https://arxiv.org/abs/2105.13493 (reversible Heun, Brownian interval)
    Anderson. Reverse-time diffusion equation models. 1982.
    Song et al. Score-Based Generative Modeling through Stochastic Differential Equations. 2021.
    https://arxiv.org/abs/2011.13456
"""

from __future__ import annotations

import math
from typing import Any, Callable, ClassVar, Optional, Sequence, Tuple

import attrs
import torch
import torchsde
from torch import Tensor, nn

from nami_core.protocols import Solution, check_solve_args
from nami_core.shapes import as_size
from nami_core.timegrid import uniform_grid
from nami_core.validation import one_of, positive_int

from .schedules import compute_time

__all__ = [
    "GridBrownian",
    "ForwardDiffusionSDE",
    "ReverseDiffusionSDE",
    "TorchSDESolver",
    "TorchSDEEuler",
    "TorchSDEMilstein",
    "TorchSDESRK",
    "TorchSDEReversibleHeun",
    "TORCHSDE_METHODS",
]

#: torchsde methods exposed as nami solvers.
TORCHSDE_METHODS: Tuple[str, ...] = ("euler", "milstein", "srk", "reversible_heun")
_STRATONOVICH = {"reversible_heun"}


class GridBrownian(torchsde.BaseBrownian):
    r"""A torchsde Brownian motion known on the grid :math:`t_0 + n h`, :math:`n = 0..N`.

    Draws the ``steps`` increments :math:`\Delta W_n \sim \mathcal N(0, h I)` of shape ``size`` at once
    (and, with ``space_time``, the space-time Lévy areas :math:`H_n \sim \mathcal N(0, \tfrac{h}{12} I)`,
    returned as :math:`U = h(\tfrac12\Delta W + H)` like torchsde), in ``dtype`` on ``device`` from
    ``generator``. A query ``bm(ta, tb)`` between grid points returns the summed increments (one
    lookup for a single step); off-grid queries raise ``ValueError``.

    Args:
        t0: first grid time.
        h: grid spacing > 0.
        steps: number of increments N.
        size: shape of one increment, ``(batch, d)`` for torchsde.
        dtype: dtype of the increments.
        device: device of the increments.
        generator: random generator.
        space_time: also draw space-time Lévy areas (needed by ``srk``).
    """

    __slots__ = ("_t0", "_h", "_n", "_w", "_u")

    def __init__(self, t0: float, h: float, steps: int, size: Sequence[int], *, dtype: torch.dtype = torch.float32,
                 device: Optional[torch.device] = None, generator: Optional[torch.Generator] = None,
                 space_time: bool = False) -> None:
        size = tuple(int(n) for n in size)
        w = torch.randn((steps,) + size, generator=generator, dtype=dtype, device=device).mul_(math.sqrt(h))
        u = None
        if space_time:
            hh = torch.randn((steps,) + size, generator=generator, dtype=dtype, device=device).mul_(math.sqrt(h / 12.0))
            u = h * (0.5 * w + hh)
        self._t0, self._h, self._n = float(t0), float(h), int(steps)
        self._w, self._u = w, u

    def _index(self, t: Any) -> int:
        x = (float(t) - self._t0) / self._h
        k = int(round(x))
        if abs(x - k) > 0.25 or not (0 <= k <= self._n):  # grid points up to time round-off
            raise ValueError(
                f"GridBrownian answers queries on its grid only (t0={self._t0}, h={self._h}, {self._n} steps); "
                f"got t={float(t)}. Use brownian='interval' for off-grid queries"
            )
        return k

    def __call__(self, ta, tb=None, return_U=False, return_A=False):  # type: ignore[no-untyped-def]
        if tb is None:
            ta, tb = self._t0, ta
        if return_A:
            raise ValueError("GridBrownian provides no space-space Levy area; use brownian='interval'")
        a, b = self._index(ta), self._index(tb)
        if b < a:
            raise ValueError(f"query times must satisfy ta <= tb, got ta={float(ta)}, tb={float(tb)}")
        single = b == a + 1
        w = self._w[a] if single else self._w[a:b].sum(0)
        if not return_U:
            return w
        if self._u is None or not single:
            raise ValueError("GridBrownian answers space-time Levy area queries for single steps, when built "
                             "with space_time=True")
        return w, self._u[a]

    def __repr__(self) -> str:
        return f"GridBrownian(t0={self._t0}, h={self._h}, steps={self._n}, size={tuple(self._w.shape[1:])})"

    @property
    def dtype(self) -> torch.dtype:
        return self._w.dtype

    @property
    def device(self) -> torch.device:
        return self._w.device

    @property
    def shape(self) -> torch.Size:
        return self._w.shape[1:]

    @property
    def levy_area_approximation(self) -> str:
        return "none" if self._u is None else "space-time"


class _FlatSDE:
    r"""torchsde view of nami's ``drift(x, t)``/``diffusion(x, t)`` on states ``lead + event``,
    in the increasing variable ``s`` with ``t = t0 + sign * s``."""

    noise_type = "diagonal"

    def __init__(self, drift: Callable, diffusion: Callable, t0: float, sign: float, shape: torch.Size,
                 time_shape: Tuple[int, ...], dtype: torch.dtype, device: torch.device, sde_type: str) -> None:
        self.drift, self.diffusion = drift, diffusion
        self.t0, self.sign = t0, sign
        self.shape = shape
        self.time_shape = time_shape
        self.dtype, self.device = dtype, device
        self.sde_type = sde_type
        self.nfe = 0
        self._last_s: Optional[Tensor] = None
        self._last_t: Optional[Tensor] = None

    def _t(self, s: Tensor) -> Tensor:
        """nami's time tensor for torchsde's ``s`` (cached: ``f`` and ``g`` of a step share it)."""
        if s is self._last_s:
            return self._last_t
        t = (self.t0 + self.sign * s).to(dtype=self.dtype, device=self.device)
        t = t.expand(self.time_shape) if self.time_shape else t
        self._last_s, self._last_t = s, t
        return t

    def f(self, s: Tensor, y: Tensor) -> Tensor:
        self.nfe += 1
        out = self.drift(y.view(self.shape), self._t(s))
        return (out * self.sign if self.sign != 1.0 else out).reshape(y.shape)

    def g(self, s: Tensor, y: Tensor) -> Tensor:
        out = self.diffusion(y.view(self.shape), self._t(s))
        return out.expand(self.shape).reshape(y.shape)


class _TorchSDEBase:
    """``integrate_sde`` through ``torchsde.sdeint`` (shared by the configurations below)."""

    __slots__ = ()
    method: str
    steps: int
    brownian: str
    cache_size: int

    def brownian_motion(self, h: float, size: Tuple[int, int], dtype: torch.dtype, device: torch.device,
                        generator: Optional[torch.Generator]) -> Any:
        """The Brownian motion of a solve on ``[0, steps * h]`` with states of ``size``."""
        space_time = self.method == "srk"
        if self.brownian == "grid":
            return GridBrownian(0.0, h, self.steps, size, dtype=dtype, device=device, generator=generator,
                                space_time=space_time)
        entropy = int(torch.randint(0, 2**31 - 1, (), generator=generator))
        return torchsde.BrownianInterval(t0=0.0, t1=h * self.steps, size=size, dtype=dtype, device=device,
                                         entropy=entropy, dt=h, cache_size=self.cache_size,
                                         levy_area_approximation="space-time" if space_time else "none")

    def integrate_sde(
        self,
        drift: Callable[[Tensor, Tensor], Tensor],
        diffusion: Callable[[Tensor, Tensor], Tensor],
        y0: Tensor,
        t0: float,
        t1: float,
        *,
        time_shape: Sequence[int] = (),
        generator: Optional[torch.Generator] = None,
        trajectory: bool = False,
    ) -> Solution:
        """Integrate :math:`dy = f\\,dt + g \\odot dW` from ``t0`` to ``t1`` (either direction)."""
        args = check_solve_args(y0, t0, t1, time_shape, allow_tuple=False)
        t0, t1, time_shape = args.t0, args.t1, args.time_shape
        dtype, device = y0.dtype, y0.device
        if t0 == t1:
            return Solution(y=y0, nfe=0, ts=torch.tensor([t0], dtype=dtype, device=device) if trajectory else None,
                            ys=y0.unsqueeze(0) if trajectory else None)
        length = abs(t1 - t0)
        sign = 1.0 if t1 > t0 else -1.0
        h = length / self.steps
        batch = max(1, math.prod(time_shape))
        flat = y0.reshape(batch, -1)
        sde = _FlatSDE(drift, diffusion, t0, sign, y0.shape, time_shape, dtype, device,
                       "stratonovich" if self.method in _STRATONOVICH else "ito")
        bm = self.brownian_motion(h, tuple(flat.shape), dtype, device, generator)
        # torchsde's step bookkeeping runs on these float64 CPU times (exact steps, no device sync);
        # states, drifts and Brownian increments stay in the state's dtype and device. A step a hair
        # longer than h gives exactly `steps` steps (the last one clipped to the end), never an extra
        # round-off step.
        grid_s = uniform_grid(0.0, length, self.steps, dtype=torch.float64)
        ts = grid_s if trajectory else grid_s[[0, -1]]
        ys = torchsde.sdeint(sde, flat, ts, bm=bm, method=self.method, dt=h * (1.0 + 1e-10))
        y = ys[-1].reshape(y0.shape)
        if not trajectory:
            return Solution(y=y, nfe=sde.nfe)
        t_grid = uniform_grid(t0, t1, self.steps, dtype=dtype, device=device)
        return Solution(y=y, nfe=sde.nfe, ts=t_grid, ys=ys.reshape((ys.shape[0],) + tuple(y0.shape)))


@attrs.frozen(kw_only=True)
class _TorchSDEConfig(_TorchSDEBase):
    steps: int = attrs.field(default=100, validator=positive_int)
    brownian: str = attrs.field(default="grid", validator=one_of("grid", "interval"))
    cache_size: int = attrs.field(default=45, validator=positive_int)


@attrs.frozen(kw_only=True)
class TorchSDESolver(_TorchSDEConfig):
    r"""Fixed-step SDE solver running a torchsde method (``integrate_sde``, diagonal noise).

    The solve uses ``steps`` steps of size :math:`h = |t_1 - t_0|/N` in the increasing variable
    :math:`s = |t - t_0|` (see the module docstring); the drift is evaluated with nami's time rule
    (``t`` of shape ``time_shape``, the state's dtype and device). ``Solution.nfe`` counts every
    drift evaluation, including the one ``torchsde.sdeint`` makes to check shapes.

    Args:
        method: ``"euler"``, ``"milstein"``, ``"srk"`` or ``"reversible_heun"``.
        steps: number of steps N (default 100).
        brownian: ``"grid"`` (increments precomputed on the solve grid from the generator) or
            ``"interval"`` (torchsde ``BrownianInterval`` with ``dt=h``, seeded from the generator).
        cache_size: ``BrownianInterval`` cache size (``"interval"`` only).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> sol = TorchSDESolver(method="euler", steps=10).integrate_sde(
        ...     lambda y, t: -y, lambda y, t: torch.ones_like(y), torch.zeros(4, 2), 1.0, 0.0,
        ...     time_shape=(4,), generator=g)
        >>> sol.y.shape, sol.nfe  # 10 steps + the shape check of torchsde.sdeint
        (torch.Size([4, 2]), 11)
    """

    method: str = attrs.field(default="euler", validator=one_of(*TORCHSDE_METHODS))


@attrs.frozen(kw_only=True)
class TorchSDEEuler(_TorchSDEConfig):
    """torchsde's Euler–Maruyama (Itô; strong order 0.5, 1 for additive noise). See :class:`TorchSDESolver`."""

    method: ClassVar[str] = "euler"


@attrs.frozen(kw_only=True)
class TorchSDEMilstein(_TorchSDEConfig):
    """torchsde's Milstein method (Itô; strong order 1), the ``g`` derivative by autograd. See :class:`TorchSDESolver`."""

    method: ClassVar[str] = "milstein"


@attrs.frozen(kw_only=True)
class TorchSDESRK(_TorchSDEConfig):
    """torchsde's stochastic Runge–Kutta (Rößler's SRI2 for diagonal noise; Itô, strong order 1.5 for
    additive noise), with space-time Lévy area. torchsde's diagonal-noise implementation evaluates the
    drift 10 times a step. See :class:`TorchSDESolver`."""

    method: ClassVar[str] = "srk"


@attrs.frozen(kw_only=True)
class TorchSDEReversibleHeun(_TorchSDEConfig):
    """torchsde's reversible Heun (Stratonovich, = Itô for state-independent noise; one drift call a step).
    See :class:`TorchSDESolver`."""

    method: ClassVar[str] = "reversible_heun"


class ForwardDiffusionSDE(nn.Module):
    r"""The forward (noising) SDE :math:`dx = f(x, t)\,dt + g(t)\,dW` of a schedule, as a torchsde object.

    States are ``(batch, d)`` (torchsde's layout), time is t itself (increasing, 0 → 1):
    ``torchsde.sdeint(ForwardDiffusionSDE(VPSchedule()), x0, torch.tensor([0., 1.]))`` noises data.

    Args:
        schedule: the noise schedule.
    """

    noise_type: ClassVar[str] = "diagonal"
    sde_type: ClassVar[str] = "ito"

    def __init__(self, schedule: Any) -> None:
        super().__init__()
        self.schedule = schedule

    def f(self, t: Tensor, y: Tensor) -> Tensor:
        """Drift :math:`f(y, t) = (\\dot\\alpha/\\alpha)\\,y`."""
        return (self.schedule.f_coef(compute_time(t)) * y).to(y.dtype)

    def g(self, t: Tensor, y: Tensor) -> Tensor:
        """Diagonal diffusion :math:`g(t)`, expanded to the state's shape."""
        return self.schedule.diffusion(compute_time(t)).to(y.dtype).expand(y.shape)


class ReverseDiffusionSDE(nn.Module):
    r"""The reverse-time SDE of a score model as a torchsde object, in the increasing variable ``s = 1 - t``.

    .. math:: dY_s = -\big[f(Y, t) - \tfrac12\big(g(t)^2 + \gamma(t)^2\big)\, s_\theta(Y, t)\big]_{t = 1 - s}\,ds
              + \gamma(1 - s)\,dW_s,\qquad \gamma = \text{noise}\cdot g,

    so ``torchsde.sdeint(sde, x1, torch.tensor([0., 1. - t_end]))`` samples from noise ``x1`` at t = 1
    down to ``t_end``. With ``noise = 1`` the bracket is Anderson's :math:`f - g^2 s_\theta`.

    Args:
        score: score model ``score(x, t, c=None)`` on states ``(batch,) + event_shape``.
        schedule: the noise schedule.
        event_shape: shape of one event (the flat torchsde state is reshaped to it).
        noise: :math:`\gamma/g \ge 0` (1: the reverse SDE; 0: the probability-flow ODE).
    """

    noise_type: ClassVar[str] = "diagonal"
    sde_type: ClassVar[str] = "ito"

    def __init__(self, score: Any, schedule: Any, event_shape: Sequence[int], noise: float = 1.0) -> None:
        super().__init__()
        self.score = score
        self.schedule = schedule
        self.event_shape = as_size(event_shape)
        self.noise = float(noise)
        if not (math.isfinite(self.noise) and self.noise >= 0):
            raise ValueError(f"noise must be a finite number >= 0, got {noise}")

    def _state(self, s: Tensor, y: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        x = y.view((y.shape[0],) + tuple(self.event_shape))
        t = (1.0 - s).to(y.dtype).expand(y.shape[0])
        return x, t, compute_time(1.0 - s)

    def f(self, s: Tensor, y: Tensor) -> Tensor:
        """Drift in ``s``: :math:`-[f - \\tfrac12(g^2 + \\gamma^2) s_\\theta]` at :math:`t = 1 - s`."""
        x, t, tc = self._state(s, y)
        score = self.score(x, t).reshape(y.shape)
        g2 = self.schedule.g2(tc)
        b = self.schedule.f_coef(tc) * y - 0.5 * (1.0 + self.noise**2) * g2 * score
        return (-b).to(y.dtype)

    def g(self, s: Tensor, y: Tensor) -> Tensor:
        """Diagonal noise :math:`\\gamma(1 - s)`, expanded to the state's shape."""
        tc = compute_time(1.0 - s)
        return (self.noise * self.schedule.diffusion(tc)).to(y.dtype).expand(y.shape)
