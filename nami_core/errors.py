"""Exception types raised by nami.

Every error nami raises derives from :class:`NamiError` and also from the built-in
exception a Python user would expect (``ValueError`` for bad values, ``LookupError`` for
unknown names, ``TypeError`` for objects of the wrong kind), so ``except ValueError``
keeps working.
"""

from __future__ import annotations

__all__ = [
    "NamiError",
    "ComponentNotFoundError",
    "AmbiguousComponentError",
    "InvalidComponentError",
    "PluginLoadError",
    "ComponentAttributeError",
    "RegistrationError",
    "BuildError",
    "NamiPluginWarning",
    "ShapeError",
    "DataError",
    "CheckpointError",
    "SolverError",
]


class NamiError(Exception):
    """Base class of every error raised by nami."""


class ComponentNotFoundError(NamiError, LookupError):
    """No registered component has the requested kind and name."""

    def __str__(self) -> str:  # LookupError/KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class AmbiguousComponentError(NamiError, LookupError):
    """A bare component name is claimed by several plugins; use a qualified name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidComponentError(NamiError, TypeError):
    """A component does not satisfy the protocol of its kind."""


class PluginLoadError(NamiError, RuntimeError):
    """A plugin failed to import or to register its components."""


class ComponentAttributeError(ComponentNotFoundError, AttributeError):
    """``nami.<Name>`` matches no registered component (so ``hasattr(nami, name)`` is False)."""


class RegistrationError(NamiError, ValueError):
    """A component cannot be registered: a malformed kind or name, or a name already taken."""


class BuildError(NamiError, TypeError):
    """``build`` was given parameters that the component's factory does not accept."""


class NamiPluginWarning(UserWarning):
    """A plugin failed to load and was skipped (its components are unavailable)."""


class ShapeError(NamiError, ValueError):
    """A tensor does not have the shape an operation expects."""


class DataError(NamiError, ValueError):
    """Training or evaluation data is unusable (wrong shape, NaN, unreadable file)."""


class CheckpointError(NamiError, ValueError):
    """A checkpoint is missing, corrupt or incompatible."""


class SolverError(NamiError, RuntimeError):
    """A solver could not complete (step size underflow, step budget exhausted)."""
