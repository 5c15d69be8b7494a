"""nami-diffusion: noise schedules, the Diffusion process and SDE processes."""

__version__ = "0.1.0"
__all__ = ["__version__"]
