"""nami-example-plugin: an example third-party nami plugin (the SSPRK3 solver)."""

from __future__ import annotations

from .solvers import SSPRK3_TABLEAU, SSPRK3Example

__all__ = ["SSPRK3Example", "SSPRK3_TABLEAU", "__version__"]

__version__ = "0.1.0"
