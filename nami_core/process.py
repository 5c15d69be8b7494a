r"""Flow matching: the lazy configuration :class:`FlowMatching` and its bound process.

A velocity field :math:`u_\theta(x, t \mid c)` transports the base (noise) distribution
:math:`p_1` at t = 1 to the data distribution :math:`p_0` at t = 0 along the ODE
:math:`\dot x_t = u_\theta(x_t, t \mid c)`. Sampling integrates from t = 1 to t = 0;
``encode`` and ``log_prob`` integrate from t = 0 to t = 1, the latter with the augmented
state :math:`(x_t, \ell_t)`, :math:`\dot\ell_t = \nabla\!\cdot u_\theta(x_t, t)`, so that

.. math:: \log p_0(x_0) = \log p_1(x_1) + \int_0^1 \nabla\!\cdot u_\theta(x_t, t)\,dt .

References:
    Lipman, Chen, Ben-Hamu, Nickel, Le. Flow Matching for Generative Modeling. 2023.
    https://arxiv.org/abs/2210.02747
    Chen, Rubanova, Bettencourt, Duvenaud. Neural Ordinary Differential Equations. 2018.
    https://arxiv.org/abs/1806.07366
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .divergence import integrate_with_divergence
from .errors import InvalidComponentError, ShapeError
from .losses import fm_loss
from .protocols import Solution
from .registry import resolve
from .shapes import as_size, check_event_shape, expand_context

__all__ = ["FlowMatching", "FlowMatchingProcess"]


def _check_time(name: str, value: float) -> float:
    value = float(value)
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return value


class FlowMatching(nn.Module):
    r"""Flow-matching model configuration :math:`p_\theta(x \mid c)`.

    Calling it with a context binds it: ``fm(c)`` (or ``fm()``) returns a
    :class:`FlowMatchingProcess`. The module owns the field's parameters (train it with
    ``fm.parameters()``); ``fm.to(...)``/``fm.double()`` move the base distribution too.

    Args:
        field: velocity field ``field(x, t, c=None)`` exposing ``event_ndim``.
        base: base (noise) distribution at t = 1, e.g. :class:`~nami_core.StandardNormal`.
        solver: an ODE solver (``integrate``) or its registry name (``"rk4"``).
        path: probability path used by :meth:`loss` (``None`` = linear), or its registry name.

    Example:
        >>> import nami
        >>> _ = torch.manual_seed(0)
        >>> fm = nami.FlowMatching(nami.VelocityField(2, hidden=(16,)), nami.StandardNormal((2,)),
        ...                        nami.build("solver", "rk4", steps=4))
        >>> process = fm()
        >>> process.sample((5,)).shape
        torch.Size([5, 2])
    """

    def __init__(self, field: Any, base: Any, solver: Any, *, path: Any = None) -> None:
        super().__init__()
        event_ndim = getattr(field, "event_ndim", None)
        if not isinstance(event_ndim, int):
            raise TypeError(f"field must expose an integer attribute event_ndim, got {event_ndim!r}")
        base_ndim = len(getattr(base, "event_shape", ()))
        if base_ndim != event_ndim:
            raise ShapeError(
                f"field.event_ndim ({event_ndim}) does not match the base distribution's event_shape "
                f"{tuple(getattr(base, 'event_shape', ()))}"
            )
        solver = resolve("solver", solver)
        if not callable(getattr(solver, "integrate", None)):
            hint = (" (an SDE solver; flow matching needs an ODE solver such as 'rk4', 'midpoint' or 'dopri5')"
                    if callable(getattr(solver, "integrate_sde", None)) else "")
            raise InvalidComponentError(f"solver must be an ODE solver with an integrate method, got {solver!r}{hint}")
        self.field = field
        self.base = base
        self.solver = solver
        self.path = resolve("path", path)

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size(self.base.event_shape)

    @property
    def event_ndim(self) -> int:
        return len(self.base.event_shape)

    def forward(self, context: Optional[Tensor] = None) -> "FlowMatchingProcess":
        """Bind the configuration to ``context`` (shape ``batch_shape + (k,)``, or ``None``)."""
        return FlowMatchingProcess(self.field, self.base, self.solver, context)

    def loss(
        self,
        x: Tensor,
        c: Optional[Tensor] = None,
        *,
        t: Optional[Tensor] = None,
        x_noise: Optional[Tensor] = None,
        reduction: str = "mean",
        generator: Optional[torch.Generator] = None,
    ) -> Tensor:
        """Flow-matching loss on data ``x`` with noise drawn from the base (see :func:`fm_loss`)."""
        if x_noise is None:
            lead = check_event_shape(x, self.event_shape, "x")
            x_noise = self.base.sample(lead, generator=generator).to(dtype=x.dtype, device=x.device)
        return fm_loss(self.field, x, x_noise, t, c, path=self.path, reduction=reduction, generator=generator)

    def _apply(self, fn: Callable[[Tensor], Tensor], *args: Any, **kwargs: Any) -> "FlowMatching":
        super()._apply(fn, *args, **kwargs)
        mover = getattr(self.base, "_apply_tensors", None)
        if mover is not None:
            self.base = mover(fn)
        return self


class FlowMatchingProcess:
    r"""A flow-matching model bound to a context: the distribution :math:`p_\theta(x \mid c)`.

    Shapes: ``sample(sample_shape)`` returns ``sample_shape + batch_shape + event_shape``
    where ``batch_shape = context.shape[:-1]`` (empty when unconditional). ``log_prob(x)``
    takes ``x`` of shape ``... + batch_shape + event_shape`` and returns ``... + batch_shape``.
    Sampling runs without autograd; ``rsample`` keeps the graph. ``encode``/``decode``/
    ``log_prob`` follow the caller's grad mode (wrap in ``torch.no_grad()`` for inference).
    """

    def __init__(self, field: Any, base: Any, solver: Any, context: Optional[Tensor] = None) -> None:
        self.field = field
        self.base = base
        self.solver = solver
        self.event_shape = torch.Size(base.event_shape)
        self.event_ndim = len(self.event_shape)
        if context is not None:
            if not torch.is_tensor(context) or context.ndim < 1:
                raise ShapeError("context must be a tensor of shape batch_shape + (k,)")
        self.context = context
        self.batch_shape = torch.Size() if context is None else context.shape[:-1]

    # -- helpers -----------------------------------------------------------------------
    def _lead(self, x: Tensor, name: str) -> torch.Size:
        lead = check_event_shape(x, self.event_shape, name)
        dtype = getattr(self.base, "dtype", None)
        if isinstance(dtype, torch.dtype) and x.dtype != dtype:
            raise TypeError(
                f"{name} has dtype {x.dtype} but the model works in {dtype}; convert {name} "
                f"(e.g. {name}.to({dtype})) or the model (e.g. fm.double())"
            )
        nb = len(self.batch_shape)
        if nb and tuple(lead[len(lead) - nb:] if len(lead) >= nb else lead) != tuple(self.batch_shape):
            raise ShapeError(
                f"{name} of shape {tuple(x.shape)} does not match the context: expected "
                f"(..., {', '.join(map(str, self.batch_shape))}, {', '.join(map(str, self.event_shape))}) "
                f"(sample_shape + batch_shape {tuple(self.batch_shape)} + event_shape {tuple(self.event_shape)})"
            )
        return lead

    def _fn(self, lead: torch.Size) -> Callable[[Tensor, Tensor], Tensor]:
        """The right-hand side ``fn(x, t)`` handed to solvers (context broadcast once)."""
        field = self.field
        if self.context is None:
            return field
        c = self.context
        c_lead = expand_context(c, lead)
        en = self.event_ndim

        def fn(x: Tensor, t: Tensor) -> Tensor:
            xl = x.shape[: x.ndim - en]
            return field(x, t, c_lead if xl == lead else expand_context(c, xl))

        return fn

    def _noise(self, sample_shape: Sequence[int], generator: Optional[torch.Generator]) -> Tensor:
        return self.base.rsample(as_size(sample_shape) + self.batch_shape, generator=generator)

    # -- transport -------------------------------------------------------------------------
    def transport(self, x: Tensor, t_from: float, t_to: float, *, trajectory: bool = False) -> Solution:
        """Integrate the flow ODE from ``t_from`` to ``t_to`` (both in [0, 1]) starting at ``x``."""
        t_from = _check_time("t_from", t_from)
        t_to = _check_time("t_to", t_to)
        lead = self._lead(x, "x")
        return self.solver.integrate(self._fn(lead), x, t_from, t_to, time_shape=lead, trajectory=trajectory)

    def encode(self, x: Tensor) -> Tensor:
        """Map data to noise: integrate from t = 0 to t = 1."""
        return self.transport(x, 0.0, 1.0).y

    def decode(self, z: Tensor) -> Tensor:
        """Map noise to data: integrate from t = 1 to t = 0."""
        return self.transport(z, 1.0, 0.0).y

    def rsample(self, sample_shape: Sequence[int] = (), *, generator: Optional[torch.Generator] = None) -> Tensor:
        """Differentiable samples ``sample_shape + batch_shape + event_shape``."""
        return self.decode(self._noise(sample_shape, generator))

    def sample(self, sample_shape: Sequence[int] = (), *, generator: Optional[torch.Generator] = None) -> Tensor:
        """Samples ``sample_shape + batch_shape + event_shape`` (no autograd graph)."""
        with torch.no_grad():
            return self.rsample(sample_shape, generator=generator)

    def trajectory(
        self, sample_shape: Sequence[int] = (), *, z: Optional[Tensor] = None, generator: Optional[torch.Generator] = None
    ) -> Tuple[Tensor, Tensor]:
        """Sampling trajectories for plots: ``(ts, xs)`` with ``ts`` of shape ``(K,)`` from 1
        to 0 and ``xs`` of shape ``(K,) + sample_shape + batch_shape + event_shape``."""
        with torch.no_grad():
            if z is None:
                z = self._noise(sample_shape, generator)
            sol = self.transport(z, 1.0, 0.0, trajectory=True)
        if sol.ts is None or sol.ys is None:
            raise TypeError(f"solver {self.solver!r} did not return a trajectory")
        return sol.ts, sol.ys  # type: ignore[return-value]

    # -- likelihood ------------------------------------------------------------------------
    def log_prob(self, x: Tensor, *, estimator: Any = None, generator: Optional[torch.Generator] = None) -> Tensor:
        r"""Log-density :math:`\log p_\theta(x \mid c)` by the instantaneous change of variables.

        Args:
            x: data of shape ``... + batch_shape + event_shape``.
            estimator: divergence estimator (``ExactDivergence()``, ``HutchinsonDivergence(...)``);
                default: exact for events up to 128 elements, Hutchinson with one
                Rademacher probe above.
            generator: random generator for Hutchinson probes.
        """
        lead = self._lead(x, "x")
        x1, acc = integrate_with_divergence(self.solver, self._fn(lead), x, 0.0, 1.0, event_ndim=self.event_ndim,
                                            time_shape=lead, estimator=estimator, generator=generator)
        return self.base.log_prob(x1) + acc

    def sample_and_log_prob(
        self, sample_shape: Sequence[int] = (), *, estimator: Any = None, generator: Optional[torch.Generator] = None
    ) -> Tuple[Tensor, Tensor]:
        """Samples and their log-density in one solve from t = 1 to t = 0."""
        z = self._noise(sample_shape, generator)
        lead = self._lead(z, "z")
        x0, acc = integrate_with_divergence(self.solver, self._fn(lead), z, 1.0, 0.0, event_ndim=self.event_ndim,
                                            time_shape=lead, estimator=estimator, generator=generator)
        return x0, self.base.log_prob(z) - acc  # acc = int_1^0 div dt = -int_0^1 div dt

    def __repr__(self) -> str:
        return (f"FlowMatchingProcess(batch_shape={tuple(self.batch_shape)}, "
                f"event_shape={tuple(self.event_shape)}, solver={self.solver!r})")
