"""Fake installed plugin distributions for registry tests.

:class:`FakeSite` writes ``<name>-<version>.dist-info/{METADATA,entry_points.txt}`` and the
plugin module (a copy of one of the templates in this folder) into a temporary directory,
puts that directory on ``sys.path``, and builds registries that discover only what it wrote.

Templates (each defines ``nami_register``):
    good: registers solver ``fake_euler`` (alias ``fake_euler_1``), path ``fake_linear``
        and loss ``fake_loss`` (a function).
    import_error: fails to import (a missing dependency).
    hook_raises: registers a path, then raises ``RuntimeError("boom from hook")``.
    invalid: registers a path, then a solver lacking ``integrate``.
    no_hook: defines ``nami_register`` without the ``@hookimpl`` marker.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

from nami_core.registry import Registry

__all__ = ["FakeSite", "TEMPLATES", "write_distribution"]

TEMPLATES = Path(__file__).resolve().parent


def module_name(distribution: str) -> str:
    """The plugin module name :class:`FakeSite` uses for ``distribution``."""
    return "fake_" + distribution.lower().replace("-", "_").replace(".", "_")


def write_distribution(
    directory: Path,
    distribution: str,
    version: str,
    entry_points: dict[str, str],
    *,
    group: str = "nami",
) -> Path:
    """Write a minimal ``*.dist-info`` for ``distribution`` into ``directory``."""
    info = directory / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = [f"[{group}]"] + [f"{name} = {target}" for name, target in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return info


class FakeSite:
    """Temporary "site-packages" directories holding fake plugin distributions."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.monkeypatch = monkeypatch
        self.paths: list[str] = []
        self.modules: set[str] = set()

    def directory(self, name: str = "site") -> Path:
        """A site directory under the root, created and put on ``sys.path`` on first use."""
        path = self.root / name
        if str(path) not in self.paths:
            path.mkdir(parents=True, exist_ok=True)
            self.paths.append(str(path))
            self.monkeypatch.syspath_prepend(str(path))
        return path

    def add(
        self,
        distribution: str,
        template: str = "good",
        *,
        version: str = "1.0",
        directory: str = "site",
        module: str | None = None,
    ) -> str:
        """Install fake ``distribution`` whose plugin module is a copy of ``template``.

        Returns:
            The plugin's module name.
        """
        module = module or module_name(distribution)
        site = self.directory(directory)
        source = (TEMPLATES / f"{template}.py").read_text(encoding="utf-8")
        (site / f"{module}.py").write_text(source, encoding="utf-8")
        write_distribution(site, distribution, version, {template: module})
        self.modules.add(module)
        sys.modules.pop(module, None)
        importlib.invalidate_caches()
        return module

    def registry(self, **kwargs: Any) -> Registry:
        """A fresh registry discovering only the fake distributions."""
        kwargs.setdefault("builtins", False)
        return Registry(path=self.paths, **kwargs)

    def cleanup(self) -> None:
        """Forget the imported fake plugin modules."""
        for module in self.modules:
            sys.modules.pop(module, None)
