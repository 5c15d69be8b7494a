"""nami-paths: probability paths and interpolants for flow matching."""

from .paths import AffinePath, CosinePath, LinearPath

__version__ = "0.1.0"
__all__ = ["AffinePath", "CosinePath", "LinearPath", "__version__"]
