"""Entry point of nami-paths: registers its components with the nami registry."""

from __future__ import annotations

from nami_core.hookspecs import hookimpl

from .paths import CosinePath, LinearPath


@hookimpl
def nami_register(register):  # type: ignore[no-untyped-def]
    register("path", "linear", LinearPath)
    register("path", "cosine", CosinePath)
