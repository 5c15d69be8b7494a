"""Fake plugin that cannot be imported (a dependency is missing)."""

import nami_fake_missing_dependency  # noqa: F401

from nami_core.hookspecs import hookimpl


@hookimpl
def nami_register(register):
    raise AssertionError("never reached")
