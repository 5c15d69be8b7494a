"""Shared pytest fixtures."""

from __future__ import annotations

from typing import Iterator

import pytest

from fakeplugins import FakeSite

_NAMI_PLUGIN_ENV = ("NAMI_DISABLE_PLUGIN_AUTOLOAD", "NAMI_PLUGINS_ALLOW", "NAMI_PLUGINS_BLOCK", "NAMI_STRICT_PLUGINS")


@pytest.fixture
def fake_site(tmp_path, monkeypatch) -> Iterator[FakeSite]:
    """Fake installed plugin distributions (see ``tests/fakeplugins``), with the plugin
    environment variables cleared."""
    for var in _NAMI_PLUGIN_ENV:
        monkeypatch.delenv(var, raising=False)
    site = FakeSite(tmp_path, monkeypatch)
    yield site
    site.cleanup()
