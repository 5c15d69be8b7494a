"""Entry point of nami-diffusion: registers its components with the nami registry."""

from __future__ import annotations

from nami_core.hookspecs import hookimpl


@hookimpl
def nami_register(register):  # type: ignore[no-untyped-def]
    """Schedules, samplers and SDE processes are added by the diffusion work (issue 3)."""
