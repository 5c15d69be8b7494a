"""The ``nami plugins`` report: installed plugin distributions, their status and components.

Example:
    >>> from nami_core.registry import Registry
    >>> print(plugins_report(Registry(autoload=False, path=[])))
    nami plugins: 1 distribution(s) (1 ok)
    <BLANKLINE>
    nami-core 0.1.0 [ok]
      entry point: (built in) nami_core.builtins
      hooks: nami_register
      components:
        dataset: digits, two_moons
"""

from __future__ import annotations

import json
import warnings
from typing import Any, Optional

from nami_core.errors import NamiPluginWarning, PluginLoadError
from nami_core.registry import LOCAL, ComponentInfo, Registry, default_registry, normalize_distribution

__all__ = ["plugins_data", "plugins_report"]


def _load_quietly(registry: Registry) -> None:
    """Load plugins; failures appear in the report, so neither warn nor raise here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NamiPluginWarning)
        try:
            registry.load()
        except PluginLoadError:  # strict mode: the failure is listed below
            pass


def _by_kind(components: list[ComponentInfo]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for c in components:
        grouped.setdefault(c.kind, []).append({"name": c.name, "aliases": list(c.aliases)})
    return grouped


def plugins_data(registry: Optional[Registry] = None) -> list[dict[str, Any]]:
    """The report as a list of JSON-ready dicts, one per plugin, then one for local components.

    Each dict has ``distribution``, ``version``, ``status`` (``ok``, ``failed``, ``blocked``,
    ``disabled``), ``message``, ``error`` (``"Type: message"`` or ``None``), ``traceback``,
    ``entry_point``, ``hooks``, ``components`` (``{kind: [{"name", "aliases"}]}``) and
    ``local`` (``True`` only for the in-process entry, whose distribution is ``"local"``).
    """
    registry = default_registry() if registry is None else registry
    _load_quietly(registry)
    everything = registry.components()
    records = []
    for p in registry.plugins():
        mine = [c for c in everything if normalize_distribution(c.distribution) == p.key]
        records.append({
            "distribution": p.distribution,
            "version": p.version,
            "status": p.status,
            "message": p.message,
            "error": p.message if p.error is not None else None,
            "traceback": p.traceback,
            "entry_point": p.entry_point,
            "hooks": list(p.hooks),
            "components": _by_kind(mine),
            "local": False,
        })
    local = [c for c in everything if normalize_distribution(c.distribution) == LOCAL]
    if local:
        records.append({
            "distribution": LOCAL, "version": None, "status": "ok", "message": "registered in-process",
            "error": None, "traceback": None, "entry_point": None, "hooks": [],
            "components": _by_kind(local), "local": True,
        })
    return records


def _component_lines(components: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = []
    for kind in sorted(components):
        names = [
            c["name"] + (f" (aliases: {', '.join(c['aliases'])})" if c["aliases"] else "")
            for c in components[kind]
        ]
        lines.append(f"    {kind}: {', '.join(names)}")
    return lines


def _format(records: list[dict[str, Any]]) -> str:
    installed = [r for r in records if not r["local"]]
    if not records:
        return "No nami plugins installed."
    counts: dict[str, int] = {}
    for r in installed:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    lines = [f"nami plugins: {len(installed)} distribution(s)" + (f" ({summary})" if summary else "")]
    for r in records:
        lines.append("")
        if r["local"]:
            lines.append("local (registered in this process)")
        else:
            version = f" {r['version']}" if r["version"] else ""
            status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r['message']}"
            lines.append(f"{r['distribution']}{version} [{status}]")
            lines.append(f"  entry point: {r['entry_point']}")
            if r["hooks"]:
                lines.append(f"  hooks: {', '.join(r['hooks'])}")
            if r["status"] == "failed":
                lines.append("  (its components are unavailable; --json shows the traceback)")
        if r["components"]:
            lines.append("  components:")
            lines.extend(_component_lines(r["components"]))
    return "\n".join(lines)


def plugins_report(registry: Optional[Registry] = None, *, as_json: bool = False) -> str:
    """What ``nami plugins`` prints.

    Args:
        registry: registry to report on (default: the process-wide one).
        as_json: return JSON (a list of dicts, see :func:`plugins_data`) instead of text.

    Returns:
        The report; loading it triggers plugin discovery, without warnings (failures are
        part of the report) and without raising in strict mode.
    """
    records = plugins_data(registry)
    if as_json:
        return json.dumps(records, indent=2)
    return _format(records)
