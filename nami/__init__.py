"""nami: flow matching and diffusion generative modelling in PyTorch.

This facade re-exports the core (``nami_core``) and reaches the components of installed
plugins lazily by class name: ``nami.RK4`` triggers plugin discovery on first use and
returns the class registered by ``nami-solvers``. A name that belongs to a first-party
plugin that is not installed raises an ``AttributeError`` naming the distribution to install.

Example:
    >>> import nami
    >>> solver = nami.build("solver", "rk4", steps=10)
"""

from __future__ import annotations

from typing import Any

from nami_core import __version__
from nami_core import (
    AmbiguousComponentError,
    CheckpointError,
    ComponentNotFoundError,
    DataError,
    DiagonalNormal,
    ExactDivergence,
    FlowMatching,
    FlowMatchingProcess,
    HutchinsonDivergence,
    InvalidComponentError,
    NamiError,
    PluginLoadError,
    ShapeError,
    Solution,
    SolverError,
    StandardNormal,
    VelocityField,
    build,
    components,
    fm_loss,
    get,
    hookimpl,
    plugins,
    register,
    unregister,
    uniform_grid,
)

__all__ = [
    "__version__",
    "AmbiguousComponentError",
    "CheckpointError",
    "ComponentNotFoundError",
    "DataError",
    "DiagonalNormal",
    "ExactDivergence",
    "FlowMatching",
    "FlowMatchingProcess",
    "HutchinsonDivergence",
    "InvalidComponentError",
    "NamiError",
    "PluginLoadError",
    "ShapeError",
    "Solution",
    "SolverError",
    "StandardNormal",
    "VelocityField",
    "build",
    "components",
    "fm_loss",
    "get",
    "hookimpl",
    "plugins",
    "register",
    "unregister",
    "uniform_grid",
]


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    from nami_core.registry import resolve_class

    return resolve_class(name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
