"""Training: bitwise reproducibility, exact resume, schedules, densities in data units."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nami_core.checkpoint import load_checkpoint
from nami_core.config import Config
from nami_core.data import prepare_data
from nami_core.distributions import DiagonalNormal
from nami_core.train import Trainer, TrainedModel, build_model, evaluate, train


def tiny(steps=40, **sections):
    d = {
        "data": {"size": 300},
        "model": {"hidden": [16, 16], "time_features": 2},
        "solver": {"name": "euler", "steps": 4},
        "train": {"steps": steps, "batch_size": 32, "warmup": 5, "checkpoint_every": 0, "log_every": 5},
        "eval": {"num_samples": 64},
    }
    for k, v in sections.items():
        d[k] = {**d.get(k, {}), **v}
    return Config.from_dict(d)


def _fit(cfg, **kw):
    trainer = Trainer(cfg, prepare_data(cfg.data, cfg.train.seed), **kw)
    trainer.fit(progress=False)
    return trainer


def _same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_gives_bitwise_identical_weights_and_samples():
    cfg = tiny()
    a, b = _fit(cfg), _fit(cfg)
    assert _same_state(a.model.state_dict(), b.model.state_dict())
    assert _same_state(a.ema, b.ema)
    sa = a.trained_model().sample(50, generator=torch.Generator().manual_seed(1))
    sb = b.trained_model().sample(50, generator=torch.Generator().manual_seed(1))
    assert torch.equal(sa, sb)
    c = _fit(tiny(train={"seed": 1}))
    assert not torch.equal(a.model.state_dict()["field.net.0.weight"], c.model.state_dict()["field.net.0.weight"])


def test_global_rng_is_untouched():
    state = torch.random.get_rng_state()
    _fit(tiny(steps=3))
    assert torch.equal(torch.random.get_rng_state(), state)


@pytest.mark.parametrize("dataset", ["two_moons", "file_dequantized"])
def test_resume_continues_exactly(tmp_path, dataset):
    k = 20
    extra = {}
    if dataset == "file_dequantized":
        v = np.random.default_rng(0).integers(0, 5, size=(200, 3)).astype(np.float32)
        np.save(tmp_path / "v.npy", v)
        extra = {"data": {"file": str(tmp_path / "v.npy"), "dequantize": 5}}
    cfg = tiny(steps=2 * k, **extra)
    train(cfg, tmp_path / "full", progress=False, plot=False)
    assert train(cfg, tmp_path / "cut", until=k, progress=False, plot=False) is None
    assert load_checkpoint(tmp_path / "cut")["step"] == k
    metrics = train(cfg, tmp_path / "cut", resume=True, progress=False, plot=False)
    assert metrics is not None and metrics["steps"] == 2 * k
    full, cut = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "cut")
    assert cut["step"] == full["step"] == 2 * k
    assert _same_state(full["model"], cut["model"])
    assert _same_state(full["ema"], cut["ema"])
    assert torch.equal(full["rng"]["noise"][0], cut["rng"]["noise"][0])
    assert torch.equal(full["batches"]["perm"], cut["batches"]["perm"])
    fo, co = full["optimizer"]["state"], cut["optimizer"]["state"]
    assert all(_same_state(fo[i], co[i]) for i in fo)
    assert full["history"] == cut["history"]


def test_interrupt_mid_step_finishes_the_step_and_resumes_exactly(tmp_path, monkeypatch):
    """SIGINT arriving inside a step (after the batch and noise were drawn) is deferred to the
    end of that step, so the checkpoint lies on the uninterrupted run and resuming is exact."""
    import os
    import signal

    cfg = tiny(steps=30)
    full = _fit(cfg)
    trainer = Trainer(cfg, prepare_data(cfg.data, cfg.train.seed))
    real = trainer.training_step

    def step():
        if trainer.step == 12:
            os.kill(os.getpid(), signal.SIGINT)  # handled while this step is still running
        return real()

    monkeypatch.setattr(trainer, "training_step", step)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(progress=False, checkpoint=tmp_path / "checkpoint.pt")
    assert load_checkpoint(tmp_path)["step"] == 13
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    assert train(cfg, tmp_path, resume=True, progress=False, plot=False) is not None
    state = load_checkpoint(tmp_path)
    assert state["step"] == 30
    assert _same_state(state["model"], {k: v.cpu() for k, v in full.model.state_dict().items()})


def test_periodic_checkpoints(tmp_path, monkeypatch):
    cfg = tiny(steps=30, train={"checkpoint_every": 10})
    trainer = Trainer(cfg, prepare_data(cfg.data, cfg.train.seed))
    seen = []
    monkeypatch.setattr(trainer, "save", lambda path: seen.append(trainer.step))
    trainer.fit(progress=False, checkpoint=tmp_path / "checkpoint.pt")
    assert seen == [10, 20]  # the final one is written by the caller


def test_learning_rate_schedule():
    cfg = tiny(steps=110, train={"warmup": 10, "lr": 2e-3})
    trainer = Trainer(cfg, prepare_data(cfg.data, 0))
    assert trainer.lr_at(0) == pytest.approx(2e-4)
    assert trainer.lr_at(9) == pytest.approx(2e-3)
    assert trainer.lr_at(10) == pytest.approx(2e-3)
    assert trainer.lr_at(60) == pytest.approx(1e-3)  # half way through the cosine
    assert trainer.lr_at(110) == pytest.approx(0.0, abs=1e-12)
    const = Trainer(tiny(train={"schedule": "constant", "warmup": 0}), prepare_data(cfg.data, 0))
    assert const.lr_at(0) == const.lr_at(39) == 1e-3


def _zero_field_model(cfg, data):
    model = build_model(cfg, data.dim, seed=0)
    last = model.field.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    return TrainedModel(model.eval(), data.standardizer, cfg)


def test_density_in_data_units_is_the_pushed_forward_gaussian():
    # a zero velocity field leaves the base N(0, I) unchanged, so in data units the model
    # is exactly N(mean, diag(std^2)) of the standardisation
    cfg = tiny(solver={"name": "rk4", "steps": 3})
    data = prepare_data(cfg.data, 0)
    trained = _zero_field_model(cfg, data)
    x = data.test[:50]
    nll_z, nll_x = trained.nll(x, batch_size=16)
    st = data.standardizer
    ref_x = -DiagonalNormal(st.mean, st.std).log_prob(x)
    ref_z = -torch.distributions.Normal(0.0, 1.0).log_prob(st.forward(x)).sum(-1)
    torch.testing.assert_close(nll_z, ref_z, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(nll_x, ref_x, rtol=1e-5, atol=1e-5)
    m = evaluate(trained, x, num_samples=50, batch_size=16)
    assert m["test_nll"] == pytest.approx(float(ref_z.mean()), rel=1e-5)
    assert m["test_bpd"] == m["test_nll"] / (2 * math.log(2))
    assert m["test_nll_data"] == pytest.approx(float(ref_x.mean()), rel=1e-5)
    assert m["test_bpd_data"] == m["test_nll_data"] / (2 * math.log(2))


def test_trained_model_reaches_the_true_gaussian_likelihood(tmp_path):
    # correlated Gaussian data: the exact log-density of the held-out rows is known
    cov = np.array([[4.0, 0.9], [0.9, 0.25]])  # correlation 0.9
    mu = np.array([1.0, -3.0])
    x = np.random.default_rng(0).multivariate_normal(mu, cov, size=2000).astype(np.float32)
    np.save(tmp_path / "g.npy", x)
    cfg = tiny(steps=500, data={"file": str(tmp_path / "g.npy")}, model={"hidden": [32, 32], "time_features": 4},
               solver={"name": "rk4", "steps": 8}, train={"lr": 3e-3, "ema": 0.0, "batch_size": 128})
    metrics = train(cfg, tmp_path / "run", progress=False, plot=False)
    test = prepare_data(cfg.data, 0).test.double()
    true_nll = float(-torch.distributions.MultivariateNormal(torch.tensor(mu), torch.tensor(cov)).log_prob(test).mean())
    # the untrained model, N(mean, diag(std^2)), is 0.5 log(1 / (1 - 0.9^2)) = 0.83 nats worse
    assert metrics["test_nll_data"] == pytest.approx(true_nll, abs=0.1)
    assert abs(metrics["energy_distance"]) < 0.02
    assert set(metrics["descriptions"]) >= {"test_nll", "test_bpd", "energy_distance"}


def test_resume_rejects_changed_data(tmp_path):
    from nami_core.errors import DataError

    x = np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32)
    np.save(tmp_path / "d.npy", x)
    cfg = tiny(steps=10, data={"file": str(tmp_path / "d.npy")})
    train(cfg, tmp_path / "run", until=5, progress=False, plot=False)
    np.save(tmp_path / "d.npy", (x + 1).astype(np.float64))  # float64 data train a float32 model too
    with pytest.raises(DataError, match="differ from the data the run was trained on"):
        train(cfg, tmp_path / "run", resume=True, progress=False, plot=False)
    metrics = train(cfg, tmp_path / "run64", progress=False, plot=False)
    assert math.isfinite(metrics["test_nll"])


DDP_TOML = """
[data]
size = 600
[model]
hidden = [16, 16]
[solver]
name = "euler"
steps = 4
[train]
steps = 40
batch_size = 64
schedule = "constant"
checkpoint_every = 0
[eval]
num_samples = 100
"""


@pytest.mark.slow
def test_torchrun_two_processes_resume_exactly(tmp_path):
    """`nami train` under torchrun (2 CPU processes, gloo): one checkpoint, and an interrupted
    run resumed with two processes ends bitwise where the uninterrupted one does."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    bindir = Path(sys.executable).parent
    torchrun, nami = bindir / "torchrun", bindir / "nami"
    if not (torchrun.exists() and nami.exists()):
        pytest.skip("torchrun or the nami script is not installed")
    cfg = tmp_path / "ddp.toml"
    cfg.write_text(DDP_TOML)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(*args):
        cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", str(nami), "train", *args, "--quiet"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]

    run(str(cfg), "--out", str(tmp_path / "full"))
    run(str(cfg), "--out", str(tmp_path / "cut"), "--steps", "25")
    run("--resume", "--out", str(tmp_path / "cut"), "--steps", "40")
    full, cut = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "cut")
    assert full["rng"]["world_size"] == 2 and len(full["rng"]["noise"]) == 2
    assert not torch.equal(full["rng"]["noise"][0], full["rng"]["noise"][1])  # per-rank noise
    assert cut["step"] == full["step"] == 40
    assert _same_state(full["model"], cut["model"]) and _same_state(full["ema"], cut["ema"])
    assert (tmp_path / "full" / "metrics.json").exists()
