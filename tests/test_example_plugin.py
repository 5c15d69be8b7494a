"""The example third-party plugin (``examples/nami_example_plugin``), installed for real.

The distribution is pip-installed, not editable, into a temporary ``--target`` directory put on
``sys.path`` (and on ``PYTHONPATH`` of subprocesses), so the development environment is never
modified: the ``.dist-info`` that pip writes there is what the registry discovers through the
``nami`` entry-point group. Then the solver is used by name from code, from a training
configuration, from the ``nami`` command, and the plugin's own tests (which use the
conformance kit) are run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import importlib_metadata
import pytest
import torch

from nami_core import registry as registry_module
from nami_core.registry import ENV_ALLOW, ENV_BLOCK, ENV_DISABLE_AUTOLOAD, ENV_STRICT, Registry

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "nami_example_plugin"
DIST = "nami-example-plugin"
NAME = "ssprk3_example"


def _env(target: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_ALLOW, ENV_BLOCK, ENV_DISABLE_AUTOLOAD, ENV_STRICT)}
    env["PYTHONPATH"] = os.pathsep.join([str(target)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``pip install --no-deps --no-build-isolation --target DIR`` of a copy of the example."""
    work = tmp_path_factory.mktemp("example_plugin")
    source = work / "src"
    # build from a copy, so setuptools' build/ and *.egg-info never land in the repository
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"pip install failed:\n{proc.stdout}\n{proc.stderr}"
    sys.path.insert(0, str(target))
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        for mod in [m for m in sys.modules if m == "nami_example_plugin" or m.startswith("nami_example_plugin.")]:
            del sys.modules[mod]


@pytest.fixture
def fresh_default_registry(monkeypatch: pytest.MonkeyPatch, installed: Path) -> None:
    """A default registry created now, so it discovers the plugin installed above."""
    for var in (ENV_ALLOW, ENV_BLOCK, ENV_DISABLE_AUTOLOAD, ENV_STRICT):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(registry_module, "_DEFAULT", None)


def test_installed_not_editable(installed):
    dist = importlib_metadata.distribution(DIST)
    assert dist.version == "0.1.0"
    assert Path(str(dist.locate_file(""))).resolve() == installed.resolve()
    assert dist.read_text("direct_url.json") is None or '"editable": true' not in dist.read_text("direct_url.json")
    assert [(ep.name, ep.value) for ep in dist.entry_points if ep.group == "nami"] == [
        ("example", "nami_example_plugin.plugin")
    ]
    import nami_example_plugin

    assert Path(nami_example_plugin.__file__).resolve().is_relative_to(installed.resolve())


def test_used_by_name_from_code(installed):
    reg = Registry()
    solver = reg.build("solver", NAME, steps=20)
    assert type(solver).__name__ == "SSPRK3Example" and solver.order == 3
    assert reg.get("solver", f"{DIST}:{NAME}").factory is type(solver)
    y0 = torch.ones(4, dtype=torch.float64)
    sol = solver.integrate(lambda y, t: -y, y0, 0.0, 1.0)
    assert sol.nfe == 60 and torch.allclose(sol.y, y0 * torch.e**-1, rtol=1e-5, atol=0)
    (plugin,) = [p for p in reg.plugins() if p.distribution == DIST]
    assert (plugin.status, plugin.version, plugin.components) == ("ok", "0.1.0", [("solver", NAME)])


def test_used_from_a_training_config(installed, fresh_default_registry, tmp_path):
    config_mod = pytest.importorskip("nami_core.config", reason="nami_core.config is not available")
    train_mod = pytest.importorskip("nami_core.train", reason="nami_core.train is not available")
    if not hasattr(config_mod, "load_config") or not hasattr(train_mod, "train"):
        pytest.skip("nami_core.config.load_config / nami_core.train.train are not available")
    config_file = tmp_path / "run.toml"
    config_file.write_text(textwrap.dedent(f"""
        [data]
        dataset = "two_moons"
        size = 256
        [model]
        hidden = [16, 16]
        [solver]
        name = "{NAME}"     # the example plugin's solver, by registry name
        steps = 4
        [train]
        steps = 20
        batch_size = 32
        [eval]
        num_samples = 64
        max_test = 32
    """))
    config = config_mod.load_config(config_file)
    metrics = train_mod.train(config, tmp_path / "run", progress=False, plot=False)
    assert metrics is not None and metrics["steps"] == 20
    assert metrics["solver"]["name"] == NAME
    assert math.isfinite(metrics["final_loss"])
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    # the checkpoint names the solver; loading it rebuilds the plugin's solver by name
    trained = train_mod.TrainedModel.load(tmp_path / "run")
    assert type(trained.model.solver).__name__ == "SSPRK3Example"
    assert trained.sample(8, generator=torch.Generator().manual_seed(0)).shape == (8, 2)


def test_listed_by_the_nami_command(installed):
    script = Path(sys.executable).with_name("nami")
    cmd = [str(script)] if script.exists() else [sys.executable, "-c", "import sys; from nami_core.cli import main; sys.exit(main())"]
    proc = subprocess.run(cmd + ["plugins", "--json"], capture_output=True, text=True, env=_env(installed), timeout=300)
    assert proc.returncode == 0, proc.stderr
    records = {r["distribution"]: r for r in json.loads(proc.stdout)}
    record = records[DIST]
    assert record["status"] == "ok" and record["version"] == "0.1.0"
    assert [c["name"] for c in record["components"]["solver"]] == [NAME]


def test_the_plugins_own_tests_pass(installed, tmp_path):
    # run its tests against the installed copy (not the source tree next to them)
    tests = tmp_path / "tests"
    shutil.copytree(EXAMPLE / "tests", tests, ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        capture_output=True, text=True, env=_env(installed), cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "4 passed" in proc.stdout, proc.stdout[-2000:]
