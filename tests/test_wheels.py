"""Build wheels of the four distributions, install them into a fresh venv, find the plugins.

Offline: wheels are built without build isolation, installed with ``--no-deps --no-index``,
and the dependencies (torch, pluggy, attrs, ...) come from this environment's
site-packages through a ``.pth`` line in the new venv. Only ``.pth`` files inside site
directories are processed, so the editable-install finders of this environment stay
inactive there: ``nami_core`` and the plugins must be imported from the new venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = {"nami-paths": "plugins/nami_paths", "nami-solvers": "plugins/nami_solvers",
           "nami-diffusion": "plugins/nami_diffusion"}
CORE_FILES = ["pyproject.toml", "README.md", "LICENSE", "nami_core", "nami"]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")

PROBE = textwrap.dedent("""
    import json, sysconfig, warnings
    import importlib_metadata
    import nami, nami_core, nami_paths, nami_solvers
    from nami_core.plugins_report import plugins_data
    from nami_core.registry import Registry

    site = sysconfig.get_paths()["purelib"]
    files = {m.__name__: m.__file__ for m in (nami, nami_core, nami_paths, nami_solvers)}
    eps = sorted({(ep.dist.metadata["Name"], ep.name, ep.value)
                  for ep in importlib_metadata.entry_points(group="nami")})
    reg = Registry()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = plugins_data(reg)
    resolved = []
    for r in report:
        for kind, comps in r["components"].items():
            for c in comps:
                info = reg.get(kind, r["distribution"] + ":" + c["name"])
                resolved.append([kind, info.qualified_name, info.factory.__module__])
    print(json.dumps({"site": site, "files": files, "eps": eps, "report": report, "resolved": resolved}))
""")


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kwargs)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}"
    return out


def _copy_sources(dest: Path) -> list[Path]:
    """Copies of the four project directories (so building writes nothing into the repo)."""
    core = dest / "nami-core"
    core.mkdir(parents=True)
    for name in CORE_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, core / name, ignore=IGNORE)
        elif src.exists():
            shutil.copy2(src, core / name)
    projects = [core]
    for dist, rel in PLUGINS.items():
        shutil.copytree(ROOT / rel, dest / dist, ignore=IGNORE)
        projects.append(dest / dist)
    return projects


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """A fresh venv with the four wheels installed, and the probe's findings in it."""
    tmp = tmp_path_factory.mktemp("wheels")
    wheels = tmp / "wheels"
    projects = _copy_sources(tmp / "src")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-q", "-w", str(wheels), *map(str, projects)])
    built = sorted(wheels.glob("*.whl"))
    assert len(built) == 4, [w.name for w in built]

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
          "-q", *map(str, built)])
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "_nami_test_deps.pth").write_text("\n".join(deps) + "\n")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("NAMI_", "PYTHON"))}
    probe = _run([str(python), "-I", "-c", PROBE], cwd=tmp, env=env)
    return venv, json.loads(probe.stdout.strip().splitlines()[-1])


def test_packages_import_from_the_new_venv(installed):
    _, found = installed
    for module, path in found["files"].items():
        assert path.startswith(found["site"]), f"{module} imported from {path}, not the new venv"


def test_entry_points_are_found(installed):
    _, found = installed
    eps = {dist: (name, value) for dist, name, value in found["eps"]}
    assert eps["nami-paths"] == ("paths", "nami_paths.plugin")
    assert eps["nami-solvers"] == ("solvers", "nami_solvers.plugin")
    assert "nami-diffusion" in eps


def test_registry_loads_the_installed_plugins(installed):
    _, found = installed
    status = {r["distribution"]: r for r in found["report"]}
    for dist in ("nami-paths", "nami-solvers"):
        assert status[dist]["status"] == "ok", status[dist]["traceback"]
        assert status[dist]["version"] and status[dist]["components"], status[dist]
    assert "nami-diffusion" in status
    kinds = {kind for kind, _, _ in found["resolved"]}
    assert {"path", "solver"} <= kinds
    for kind, qualified, module in found["resolved"]:
        dist = qualified.split(":")[0]
        if dist in PLUGINS:
            assert module.split(".")[0] == PLUGINS[dist].split("/")[-1], (qualified, module)


def test_nami_plugins_command(installed):
    venv, found = installed
    if not (Path(found["site"]) / "nami_core" / "cli.py").exists():
        pytest.skip("nami_core.cli is not written yet")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NAMI_", "PYTHON"))}
    out = _run([str(venv / "bin" / "nami"), "plugins", "--json"], cwd=venv, env=env)
    records = {r["distribution"]: r["status"] for r in json.loads(out.stdout)}
    assert records["nami-paths"] == "ok" and records["nami-solvers"] == "ok"
