r"""Protocols every component kind satisfies, and the solver result type.

The time rule
-------------
Every callable that nami hands a time to (fields, models, solver right-hand sides) receives
``t`` as a tensor whose shape is the *leading* shape of the state, ``x.shape[:x.ndim -
event_ndim]`` (that is ``sample_shape + batch_shape``), with the state's dtype and device.
Solvers are told that shape (``time_shape``) once per solve and build the time tensors
before the loop.

Solvers
-------
An ODE solver integrates :math:`\dot y = f(y, t)` from ``t0`` to ``t1`` (either direction).
The state ``y`` is a tensor or a tuple of tensors (the augmented state of a likelihood
computation is ``(x, log_density_increment)``); ``fn(y, t)`` returns the same structure.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Protocol, Sequence, Tuple, Union, runtime_checkable

import attrs
import torch
from torch import Tensor

__all__ = [
    "State",
    "VectorField",
    "Solution",
    "Field",
    "ODESolver",
    "SDESolver",
    "Path",
    "Schedule",
    "Dataset",
    "KIND_REQUIREMENTS",
    "SolveArgs",
    "check_solve_args",
]

State = Union[Tensor, Tuple[Tensor, ...]]
VectorField = Callable[[State, Tensor], State]


@attrs.frozen
class Solution:
    """Result of a solve.

    Attributes:
        y: final state at ``t1`` (same structure as the initial state).
        nfe: number of evaluations of ``fn`` the solve made.
        ts: times of the saved trajectory, shape ``(K,)``, or ``None``.
        ys: saved states stacked along a new leading dimension of size ``K``, or ``None``.
    """

    y: State
    nfe: int
    ts: Optional[Tensor] = None
    ys: Optional[State] = None


@runtime_checkable
class Field(Protocol):
    """A (velocity) field ``field(x, t, c=None)`` acting on events of ``event_ndim`` dims."""

    event_ndim: int

    def __call__(self, x: Tensor, t: Tensor, c: Optional[Tensor] = None) -> Tensor: ...


@runtime_checkable
class ODESolver(Protocol):
    """Integrates an ODE from ``t0`` to ``t1``."""

    def integrate(
        self,
        fn: VectorField,
        y0: State,
        t0: float,
        t1: float,
        *,
        time_shape: Sequence[int] = (),
        trajectory: bool = False,
    ) -> Solution: ...


@runtime_checkable
class SDESolver(Protocol):
    """Integrates an Itô SDE ``dy = f(y, t) dt + g(y, t) dW`` (diagonal noise)."""

    def integrate_sde(
        self,
        drift: VectorField,
        diffusion: VectorField,
        y0: Tensor,
        t0: float,
        t1: float,
        *,
        time_shape: Sequence[int] = (),
        generator: Optional[torch.Generator] = None,
        trajectory: bool = False,
    ) -> Solution: ...


@runtime_checkable
class Path(Protocol):
    r"""A probability path between data ``x0`` (t=0) and noise ``x1`` (t=1).

    ``interpolate(x0, x1, t)`` gives :math:`x_t` and ``velocity(x0, x1, t)`` the conditional
    target :math:`u_t = \mathrm{d}x_t/\mathrm{d}t`; ``t`` has the leading shape of ``x0``.
    """

    def interpolate(self, x0: Tensor, x1: Tensor, t: Tensor) -> Tensor: ...

    def velocity(self, x0: Tensor, x1: Tensor, t: Tensor) -> Tensor: ...


@runtime_checkable
class Schedule(Protocol):
    r"""A Gaussian noise schedule :math:`x_t = \alpha(t) x_0 + \sigma(t) \varepsilon`."""

    def alpha(self, t: Tensor) -> Tensor: ...

    def sigma(self, t: Tensor) -> Tensor: ...


@runtime_checkable
class Dataset(Protocol):
    """A data set that draws ``n`` samples reproducibly from a ``torch.Generator``."""

    def sample(self, n: int, *, generator: Optional[torch.Generator] = None) -> Tensor: ...


#: Methods (or attributes) a registered component of a kind must provide. Kinds not listed
#: here are accepted without a protocol check (plugins may introduce new kinds).
KIND_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "solver": (),  # either integrate (ODE) or integrate_sde (SDE); checked specially
    "path": ("interpolate", "velocity"),
    "schedule": ("alpha", "sigma"),
    "sde": ("f", "g"),
    "dataset": ("sample",),
    "gamma": ("gamma", "gamma_dot"),
    "coupling": ("pair",),
    "field": ("__call__",),
    "divergence": ("bind",),
    "time_density": ("sample",),
}


def missing_methods(kind: str, obj: Any) -> list[str]:
    """Names required for ``kind`` that ``obj`` (a class or instance) lacks."""
    if kind == "solver":
        if callable(getattr(obj, "integrate", None)) or callable(getattr(obj, "integrate_sde", None)):
            return []
        return ["integrate (or integrate_sde)"]
    return [m for m in KIND_REQUIREMENTS.get(kind, ()) if not callable(getattr(obj, m, None))]


@attrs.frozen
class SolveArgs:
    """Validated arguments of one solve (see :func:`check_solve_args`).

    Attributes:
        t0, t1: the interval as finite Python floats.
        time_shape: the leading shape of every state tensor, as a tuple of ints.
        is_tuple: whether the state is a tuple of tensors.
        first: the (first) state tensor; its dtype and device are the solve's.
    """

    t0: float
    t1: float
    time_shape: Tuple[int, ...]
    is_tuple: bool
    first: Tensor


def check_solve_args(y0: Any, t0: float, t1: float, time_shape: Sequence[int], *, allow_tuple: bool = True) -> SolveArgs:
    """Validate the arguments every solver receives, once per solve.

    Checks that ``t0`` and ``t1`` are finite, that ``y0`` is a tensor (or, when
    ``allow_tuple``, a non-empty tuple of tensors) and that ``time_shape`` is the leading
    shape of every state tensor.

    Raises:
        ValueError: a non-finite ``t0`` or ``t1``.
        TypeError: ``y0`` is not a tensor (or tuple of tensors).
        ShapeError: ``time_shape`` is not the leading shape of a state tensor.

    Example:
        >>> args = check_solve_args(torch.zeros(4, 2), 1.0, 0.0, (4,))
        >>> args.time_shape, args.is_tuple
        ((4,), False)
    """
    from .errors import ShapeError

    t0, t1 = float(t0), float(t1)
    if not (math.isfinite(t0) and math.isfinite(t1)):
        raise ValueError(f"t0 and t1 must be finite, got t0={t0}, t1={t1}")
    if isinstance(y0, Tensor):
        parts: Tuple[Tensor, ...] = (y0,)
        is_tuple = False
    elif allow_tuple and isinstance(y0, (tuple, list)) and len(y0) > 0 and all(isinstance(p, Tensor) for p in y0):
        parts = tuple(y0)
        is_tuple = True
    else:
        expected = "a Tensor or a non-empty tuple of Tensors" if allow_tuple else "a Tensor"
        raise TypeError(f"y0 must be {expected}, got {type(y0).__name__}")
    shape = tuple(int(n) for n in time_shape)
    k = len(shape)
    for p in parts:
        if tuple(p.shape[:k]) != shape:
            raise ShapeError(
                f"time_shape {shape} must be the leading shape of every state tensor, "
                f"got a state tensor of shape {tuple(p.shape)}"
            )
    return SolveArgs(t0, t1, shape, is_tuple, parts[0])
