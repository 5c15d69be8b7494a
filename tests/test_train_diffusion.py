"""The main job with a diffusion model, and flow matching with couplings and time densities.

Diffusion models come from the nami-diffusion plugin through the registry (the core never
imports it); couplings and training-time densities from nami-paths, by registry name.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import nami_core.registry as registry_module
from nami_core.checkpoint import load_checkpoint
from nami_core.cli import main
from nami_core.config import Config, ConfigError, load_config
from nami_core.data import prepare_data
from nami_core.errors import ComponentNotFoundError
from nami_core.registry import Registry, registered
from nami_core.train import TrainedModel, Trainer, train

needs_diffusion = pytest.mark.skipif(importlib.util.find_spec("nami_diffusion") is None,
                                     reason="needs the nami-diffusion plugin")
needs_paths = pytest.mark.skipif(importlib.util.find_spec("nami_paths") is None,
                                 reason="needs the nami-paths plugin")

DIFFUSION = """
[data]
size = 400
[model]
process = "diffusion"
hidden = [32, 32]
time_features = 4
[schedule]
name = "vp"
[diffusion]
parameterization = "eps"
time_sampling = "logsnr"
[solver]
name = "dpm_solver_pp"
steps = 6
[ode_solver]
name = "rk4"
steps = 8
[train]
steps = 60
batch_size = 32
warmup = 5
checkpoint_every = 30
[eval]
num_samples = 100
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _cfg(steps: int = 30, **sections) -> Config:
    d = {
        "data": {"size": 300},
        "model": {"hidden": [16, 16], "time_features": 2},
        "solver": {"name": "euler", "steps": 4},
        "train": {"steps": steps, "batch_size": 32, "warmup": 5, "checkpoint_every": 0, "log_every": 5},
        "eval": {"num_samples": 64, "max_test": 32},
    }
    for k, v in sections.items():
        d[k] = v if k not in d else {**d[k], **v}
    return Config.from_dict(d)


def _same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _assert_resume_is_exact(cfg: Config, tmp_path: Path, k: int) -> None:
    train(cfg, tmp_path / "full", progress=False, plot=False)
    assert train(cfg, tmp_path / "cut", until=k, progress=False, plot=False) is None
    metrics = train(cfg, tmp_path / "cut", resume=True, progress=False, plot=False)
    assert metrics is not None and metrics["steps"] == cfg.train.steps
    full, cut = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "cut")
    assert _same_state(full["model"], cut["model"])
    assert _same_state(full["ema"], cut["ema"])
    assert torch.equal(full["rng"]["noise"][0], cut["rng"]["noise"][0])
    fo, co = full["optimizer"]["state"], cut["optimizer"]["state"]
    assert all(_same_state(fo[i], co[i]) for i in fo)


@pytest.fixture(scope="module")
def diffusion_run(tmp_path_factory):
    """One tiny two-moons diffusion run made with the command (in-process)."""
    d = tmp_path_factory.mktemp("diffusion")
    cfg = _write(d / "tiny.toml", DIFFUSION)
    assert main(["train", str(cfg), "--out", str(d / "run"), "--quiet"]) == 0
    return d / "run"


# -- diffusion -----------------------------------------------------------------------------

@needs_diffusion
def test_diffusion_run_writes_checkpoint_metrics_and_plot(diffusion_run):
    assert {p.name for p in diffusion_run.iterdir()} >= {"checkpoint.pt", "metrics.json", "samples.png"}
    metrics = json.loads((diffusion_run / "metrics.json").read_text())
    for key in ("test_nll", "test_bpd", "test_nll_data", "test_bpd_data", "energy_distance", "mmd_rbf"):
        assert math.isfinite(metrics[key]), key
    assert metrics["steps"] == 60 and metrics["dim"] == 2
    assert metrics["solver"] == {"name": "dpm_solver_pp", "steps": 6}
    note = metrics["likelihood"]  # which ODE, prior and end time the NLL is
    assert "probability-flow ODE" in note and "t_end = 0.001" in note and "N(0, 1^2 I)" in note
    assert "likelihood" in metrics["descriptions"]
    ckpt = torch.load(diffusion_run / "checkpoint.pt", weights_only=True)
    assert ckpt["config"]["model"]["process"] == "diffusion"
    assert ckpt["config"]["schedule"] == {"name": "vp"} and ckpt["config"]["ode_solver"] == {"name": "rk4", "steps": 8}
    trained = TrainedModel.load(diffusion_run)
    assert type(trained.model.diffusion).__name__ == "Diffusion"
    assert type(trained.model.solver).__name__ == "DPMSolverPP"
    x = trained.sample(7, generator=torch.Generator().manual_seed(0))
    assert x.shape == (7, 2) and bool(torch.isfinite(x).all())


@needs_diffusion
def test_diffusion_sample_and_eval_commands(diffusion_run, tmp_path, capsys):
    out = tmp_path / "s.npy"
    assert main(["sample", str(diffusion_run), "--num", "9", "--out", str(out), "--seed", "3"]) == 0
    a = np.load(out)
    assert a.shape == (9, 2) and np.isfinite(a).all()
    assert main(["sample", str(diffusion_run), "--num", "9", "--out", str(out), "--seed", "3"]) == 0
    assert np.array_equal(np.load(out), a)
    # another sampler, and an ODE solver for the probability-flow ODE, by registry name
    for solver in ("ddim", "heun"):
        assert main(["sample", str(diffusion_run), "--num", "5", "--out", str(out), "--solver", solver,
                     "--steps", "4"]) == 0
        assert np.load(out).shape == (5, 2)
    capsys.readouterr()
    test = tmp_path / "test.npy"
    np.save(test, np.load(out))
    assert main(["eval", str(diffusion_run), "--data", str(test), "--num-samples", "20", "--solver", "ddim",
                 "--steps", "3"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert math.isfinite(metrics["test_nll"]) and "RK4" in metrics["likelihood"]  # the run's [ode_solver]


@needs_diffusion
def test_diffusion_resume_is_bitwise_exact(tmp_path):
    cfg = _cfg(steps=24, model={"process": "diffusion"}, solver={"name": "ddim", "steps": 3},
               diffusion={"parameterization": "v", "weighting": "min_snr"}, ode_solver={"name": "rk4", "steps": 4})
    _assert_resume_is_exact(cfg, tmp_path, k=10)


@needs_diffusion
def test_diffusion_defaults_and_schedules_by_name():
    cfg = Config.from_dict({"model": {"process": "diffusion"}})
    assert (cfg.schedule.name, cfg.solver.name, cfg.diffusion.parameterization) == ("vp", "dpm_solver_pp", "eps")
    assert Config.from_dict(cfg.to_dict()) == cfg
    for name in ("ve", "edm"):
        c = _cfg(steps=2, model={"process": "diffusion"}, schedule={"name": name, "sigma_max": 5.0},
                 solver={"name": "edm_heun", "steps": 2})
        trainer = Trainer(c, prepare_data(c.data, 0))
        trainer.fit(progress=False)
        assert type(trainer.model.schedule).__name__.lower().startswith(name)
        assert trainer.model.schedule.sigma_max == 5.0


@needs_diffusion
def test_unknown_schedule_is_an_error_with_suggestions(tmp_path, capsys):
    cfg = _write(tmp_path / "c.toml", DIFFUSION.replace('name = "vp"', 'name = "vpp"'))
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no schedule named 'vpp'" in err and "did you mean 'vp'" in err
    assert not (tmp_path / "run").exists()  # failed before anything was written
    with pytest.raises(ComponentNotFoundError, match="no schedule named 'vpp'"):
        train(load_config(cfg), tmp_path / "run", progress=False)
    cfg = _write(tmp_path / "d.toml", DIFFUSION.replace('"dpm_solver_pp"', '"dpm_solver"'))
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "did you mean 'dpm_solver_pp'" in capsys.readouterr().err


def test_missing_plugin_names_the_distribution(tmp_path, monkeypatch, capsys):
    for var in ("NAMI_DISABLE_PLUGIN_AUTOLOAD", "NAMI_PLUGINS_ALLOW", "NAMI_PLUGINS_BLOCK", "NAMI_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(registry_module, "_DEFAULT", Registry(path=[tmp_path]))  # nothing installed
    cfg = _write(tmp_path / "c.toml", DIFFUSION)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "'nami-diffusion', which is not installed (pip install nami-diffusion)" in err


def test_tables_of_the_other_process_are_errors():
    with pytest.raises(ConfigError, match=r"\[coupling\] configures flow matching"):
        Config.from_dict({"model": {"process": "diffusion"}, "coupling": {"name": "ot"}})
    with pytest.raises(ConfigError, match=r"\[schedule\] configures a diffusion model"):
        Config.from_dict({"schedule": {"name": "vp"}})
    with pytest.raises(ConfigError, match=r"invalid \[diffusion\]: parameterization must be one of"):
        Config.from_dict({"model": {"process": "diffusion"}, "diffusion": {"parameterization": "noise"}})
    with pytest.raises(ConfigError, match=r"unknown key 'weigthing' in \[diffusion\].*did you mean 'weighting'"):
        Config.from_dict({"model": {"process": "diffusion"}, "diffusion": {"weigthing": "eps"}})


# -- couplings and time densities (flow matching) -----------------------------------------

@needs_paths
@pytest.mark.parametrize("coupling", [{"name": "ot"}, {"name": "sinkhorn", "reg": 0.5}])
def test_coupling_and_time_density_train_and_resume_exactly(tmp_path, coupling):
    cfg = _cfg(steps=20, coupling=coupling, time_density={"name": "logit_normal", "scale": 0.8},
               path={"name": "cosine"})
    assert cfg.to_dict()["coupling"] == coupling
    _assert_resume_is_exact(cfg, tmp_path, k=7)
    plain = Trainer(_cfg(steps=5), prepare_data(cfg.data, 0))
    paired = Trainer(_cfg(steps=5, coupling=coupling), prepare_data(cfg.data, 0))
    plain.fit(progress=False)
    paired.fit(progress=False)
    assert not torch.equal(plain.model.state_dict()["field.net.0.weight"],
                           paired.model.state_dict()["field.net.0.weight"])


def test_coupling_and_time_density_are_applied_to_every_batch(tmp_path):
    calls: list[tuple] = []
    times: list[torch.Tensor] = []

    class Reverse:
        """Pairs each data row with the noise rows in reverse order."""

        def pair(self, x0, x1, c=None, *, generator=None):
            calls.append((x0.shape, x1.shape, c, generator))
            return x0, x1.flip(0)

    class Half:
        def sample(self, n_or_shape, *, generator=None, dtype=None, device=None):
            t = torch.full(n_or_shape, 0.5, dtype=dtype, device=device)
            times.append(t)
            return t

    with registered("coupling", "test_reverse", Reverse), registered("time_density", "test_half", Half):
        cfg = _cfg(steps=3, coupling={"name": "test_reverse"}, time_density={"name": "test_half"})
        trainer = Trainer(cfg, prepare_data(cfg.data, 0))
        trainer.fit(progress=False)
    assert len(calls) == 3 and len(times) == 3
    for shape0, shape1, c, generator in calls:
        assert shape0 == shape1 == (32, 2) and c is None
        assert generator is trainer.noise  # the trainer's checkpointed generator
    assert all(t.shape == (32,) for t in times)


def test_coupling_changes_the_loss_exactly_as_pairing_does():
    """The loss of a batch with the coupling equals fm_loss on the coupled pairs."""
    from nami_core.losses import fm_loss
    from nami_core.train import _objective

    class Reverse:
        def pair(self, x0, x1, c=None, *, generator=None):
            return x0, x1.flip(0)

    with registered("coupling", "test_reverse", Reverse):
        cfg = _cfg(coupling={"name": "test_reverse"})
        trainer = Trainer(cfg, prepare_data(cfg.data, 0))
        loss = _objective(cfg, trainer.model)
        x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
        got = loss(x, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    x1 = torch.randn(16, 2, generator=g)
    want = fm_loss(trainer.model.field, x, x1.flip(0), generator=g)
    assert torch.equal(got, want)
