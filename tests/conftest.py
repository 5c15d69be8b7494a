"""Shared pytest fixtures."""

from __future__ import annotations

from typing import Iterator

import pytest
import torch

from fakeplugins import FakeSite

# The tests use small tensors: one intra-op thread is fastest and, unlike the default, does not
# slow down by an order of magnitude when other processes share the cores.
torch.set_num_threads(1)

#: Template modules of fake plugins (one fails to import on purpose): not test or doctest modules.
collect_ignore = ["fakeplugins"]

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
