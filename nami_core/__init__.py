"""nami-core: protocols, lazy binding, flow matching, base distributions, divergence
estimators, the plugin registry and the ``nami`` command.

Importing this package loads no plugin: discovery happens on the first registry access.
"""

from ._version import __version__
from .distributions import DiagonalNormal, StandardNormal
from .divergence import ExactDivergence, HutchinsonDivergence
from .errors import (
    AmbiguousComponentError,
    CheckpointError,
    ComponentNotFoundError,
    DataError,
    InvalidComponentError,
    NamiError,
    PluginLoadError,
    ShapeError,
    SolverError,
)
from .fields import VelocityField
from .hookspecs import hookimpl
from .losses import fm_loss
from .process import FlowMatching, FlowMatchingProcess
from .protocols import Solution
from .registry import build, components, get, plugins, register, unregister
from .timegrid import uniform_grid

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
