"""The ``nami`` command end to end, its configuration files and its error handling."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nami_core.cli import main
from nami_core.config import ComponentConfig, Config, ConfigError, load_config
from nami_core.errors import CheckpointError, ComponentNotFoundError, DataError

TINY = """
[data]
size = 600
[model]
hidden = [32, 32]
time_features = 4
[solver]
name = "rk4"
steps = 4
[train]
steps = 150
batch_size = 64
warmup = 10
checkpoint_every = 50
[eval]
num_samples = 200
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One tiny two-moons run made with the command (in-process)."""
    d = tmp_path_factory.mktemp("cli")
    cfg = _write(d / "tiny.toml", TINY)
    assert main(["train", str(cfg), "--out", str(d / "run"), "--quiet"]) == 0
    return d / "run"


# -- configuration -------------------------------------------------------------------------

def test_config_round_trip_and_defaults(tmp_path):
    cfg = load_config(_write(tmp_path / "c.toml", TINY + '[path]\nname = "linear"\n'))
    assert cfg.train.steps == 150 and cfg.model.hidden == (32, 32)
    assert cfg.solver == ComponentConfig(name="rk4", params={"steps": 4})
    assert cfg.path.name == "linear" and cfg.train.lr == 1e-3
    d = cfg.to_dict()
    assert d["solver"] == {"name": "rk4", "steps": 4} and d["model"]["hidden"] == [32, 32]
    assert Config.from_dict(d) == cfg
    assert json.loads(json.dumps(d)) == d  # plain data
    default = Config()
    assert (default.model.hidden, default.solver.name, default.data.source) == ((256, 256, 256), "rk4", "dataset:two_moons")


def test_unknown_key_names_key_and_allowed_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'hiden' in \[model\].*did you mean 'hidden'.*"
                                          r"allowed keys: activation, hidden, process, time_features"):
        load_config(_write(tmp_path / "c.toml", "[model]\nhiden = [3]\n"))
    with pytest.raises(ConfigError, match=r"unknown table \[trian\].*did you mean 'train'"):
        Config.from_dict({"trian": {}})


@pytest.mark.parametrize("section, values, message", [
    ("train", {"steps": 0}, "steps must be >= 1, got 0"),
    ("train", {"lr": -1.0}, "lr must be a finite number > 0"),
    ("train", {"schedule": "linear"}, "schedule must be one of"),
    ("model", {"hidden": []}, "hidden must be a non-empty list"),
    ("model", {"process": "difusion"}, "process must be one of"),
    ("data", {"test_fraction": 1.0}, "test_fraction must lie strictly between 0 and 1"),
    ("data", {"file": "a.npy", "dataset": "digits"}, "either dataset"),
])
def test_bad_values(section, values, message):
    with pytest.raises(ConfigError, match=rf"invalid \[{section}\]: .*{message}"):
        Config.from_dict({section: values})


def test_invalid_toml(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path / "c.toml", "[train\n"))
    with pytest.raises(ConfigError, match="needs a 'name'"):
        Config.from_dict({"solver": {"steps": 3}})


def test_example_configs_are_valid():
    root = Path(__file__).resolve().parents[1] / "examples" / "configs"
    files = sorted(root.glob("*.toml"))
    assert files
    for f in files:
        load_config(f)


# -- end to end ----------------------------------------------------------------------------

def test_train_writes_checkpoint_metrics_and_plot(run_dir):
    assert {p.name for p in run_dir.iterdir()} >= {"checkpoint.pt", "metrics.json", "samples.png"}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("test_nll", "test_bpd", "test_nll_data", "test_bpd_data", "energy_distance", "mmd_rbf"):
        assert math.isfinite(metrics[key]), key
    assert metrics["test_bpd"] == metrics["test_nll"] / (2 * math.log(2))
    assert metrics["steps"] == 150 and metrics["dim"] == 2 and metrics["n_test"] == 60
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 150 and ckpt["config"]["train"]["steps"] == 150
    assert ckpt["data"]["mean"].shape == (2,)
    assert (run_dir / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".pt"])
def test_sample_formats_and_seed(run_dir, tmp_path, capsys, suffix):
    out = tmp_path / f"s{suffix}"
    assert main(["sample", str(run_dir), "--num", "37", "--out", str(out), "--seed", "3"]) == 0
    from nami_core.data import load_array

    x = load_array(out)
    assert x.shape == (37, 2)
    assert "wrote 37 samples" in capsys.readouterr().out
    if suffix == ".npy":
        assert main(["sample", str(run_dir), "--num", "37", "--out", str(tmp_path / "t.npy"), "--seed", "3"]) == 0
        assert np.array_equal(np.load(out), np.load(tmp_path / "t.npy"))  # same seed, same bits
        assert main(["sample", str(run_dir), "--num", "37", "--out", str(tmp_path / "u.npy"), "--seed", "4"]) == 0
        assert not np.array_equal(np.load(out), np.load(tmp_path / "u.npy"))


def test_sample_in_data_units_with_other_solver_and_plot(run_dir, tmp_path):
    out = tmp_path / "s.npy"
    assert main(["sample", str(run_dir), "--num", "500", "--out", str(out), "--solver", "midpoint",
                 "--steps", "10", "--plot"]) == 0
    x = np.load(out)
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    mean, std = ckpt["data"]["mean"].numpy(), ckpt["data"]["std"].numpy()
    # samples come back in data units: two moons spans x in [-1, 2], y in [-0.5, 1]
    assert np.all(np.abs(x.mean(0) - mean) < 0.5 * std)
    assert (tmp_path / "s.png").exists()


def test_eval_prints_metrics(run_dir, tmp_path, capsys):
    from nami_core.builtins import TwoMoons

    x = TwoMoons().sample(300, generator=torch.Generator().manual_seed(9))
    np.save(tmp_path / "e.npy", x.numpy())
    assert main(["eval", str(run_dir), "--data", str(tmp_path / "e.npy"), "--num-samples", "300"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_test"] == 300 and math.isfinite(out["test_nll"])
    assert out["test_bpd_data"] == out["test_nll_data"] / (2 * math.log(2))


def test_resume_via_cli(tmp_path, capsys):
    cfg = _write(tmp_path / "tiny.toml", TINY)
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(out), "--quiet"]) == 0
    first = torch.load(out / "checkpoint.pt", weights_only=True)
    assert main(["train", "--resume", "--out", str(out), "--steps", "200", "--quiet"]) == 0
    ext = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ext["step"] == 200 and ext["config"]["train"]["steps"] == 200
    assert not torch.equal(first["model"]["field.net.0.weight"], ext["model"]["field.net.0.weight"])
    assert main(["train", str(cfg), "--resume", "--out", str(out)]) == 2
    assert "do not combine it with CONFIG" in capsys.readouterr().err


# -- errors --------------------------------------------------------------------------------

def _err(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") or "\nerror: " in err
    assert "Traceback" not in err
    return err


def test_bad_inputs_exit_2_with_a_message(run_dir, tmp_path, capsys):
    cfg = _write(tmp_path / "tiny.toml", TINY)
    x = np.random.default_rng(0).normal(size=(50, 2))
    x[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", x)
    assert "row 3 (column 1; both counted from 0) holds NaN" in _err(capsys, ["train", str(cfg), "--data", str(tmp_path / "nan.npy"),
                                                        "--out", str(tmp_path / "r1"), "--quiet"])
    np.save(tmp_path / "flat.npy", np.zeros(10))
    assert "expected a 2-D array" in _err(capsys, ["train", "--data", str(tmp_path / "flat.npy"), "--quiet",
                                                  "--out", str(tmp_path / "r2")])
    (tmp_path / "x.json").write_text("[]")
    assert "unknown file type '.json'" in _err(capsys, ["train", "--data", str(tmp_path / "x.json"), "--quiet",
                                                       "--out", str(tmp_path / "r3")])
    assert "steps must be >= 1, got 0" in _err(capsys, ["train", "--steps", "0", "--quiet", "--out", str(tmp_path / "r4")])
    assert "steps must be >= 1, got -5" in _err(capsys, ["sample", str(run_dir), "--num", "3", "--steps", "-5",
                                                        "--out", str(tmp_path / "s.npy")])
    bad = _write(tmp_path / "bad.toml", TINY.replace('name = "rk4"', 'name = "rk5"'))
    assert "did you mean 'rk4'" in _err(capsys, ["train", str(bad), "--quiet", "--out", str(tmp_path / "r5")])
    unk = _write(tmp_path / "unk.toml", TINY + "[eval]\nbatch = 3\n")
    assert "not valid TOML" in _err(capsys, ["train", str(unk), "--quiet", "--out", str(tmp_path / "r6")])
    unk2 = _write(tmp_path / "unk2.toml", "[train]\nstep = 3\n")
    assert "unknown key 'step' in [train]" in _err(capsys, ["train", str(unk2), "--quiet", "--out", str(tmp_path / "r7")])
    np.save(tmp_path / "d3.npy", np.zeros((10, 3)))
    assert "3 features, but the run" in _err(capsys, ["eval", str(run_dir), "--data", str(tmp_path / "d3.npy")])
    assert "unknown output type '.txt'" in _err(capsys, ["sample", str(run_dir), "--num", "3",
                                                        "--out", str(tmp_path / "s.txt")])


def test_corrupt_checkpoint(run_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    data = (run_dir / "checkpoint.pt").read_bytes()
    (broken / "checkpoint.pt").write_bytes(data[: len(data) // 3])
    err = _err(capsys, ["sample", str(broken), "--num", "3", "--out", str(tmp_path / "s.npy")])
    assert f"{broken / 'checkpoint.pt'} is not a readable checkpoint" in err
    assert "no checkpoint at" in _err(capsys, ["eval", str(tmp_path), "--data", "x.npy"])
    assert "no checkpoint at" in _err(capsys, ["train", "--resume", "--out", str(tmp_path / "none"), "--quiet"])


def test_debug_shows_the_exception(tmp_path):
    with pytest.raises(CheckpointError):
        main(["--debug", "sample", str(tmp_path), "--num", "3", "--out", str(tmp_path / "s.npy")])
    with pytest.raises(DataError):
        main(["train", "--data", str(tmp_path / "x.txt"), "--debug", "--quiet", "--out", str(tmp_path / "r")])
    bad = _write(tmp_path / "bad.toml", '[solver]\nname = "rk5"\n')
    with pytest.raises(ComponentNotFoundError):
        main(["train", str(bad), "--debug", "--quiet", "--out", str(tmp_path / "r")])


def test_plugins_command(capsys):
    assert main(["plugins", "--json"]) == 0
    out = capsys.readouterr().out
    assert "nami-solvers" in out and json.loads(out) is not None


def _nami_script() -> str:
    exe = Path(sys.executable).with_name("nami")
    return str(exe) if exe.exists() else (shutil.which("nami") or "")


def test_installed_script_end_to_end(run_dir, tmp_path):
    script = _nami_script()
    if not script:
        pytest.skip("the nami console script is not installed")
    out = tmp_path / "s.csv"
    proc = subprocess.run([script, "sample", str(run_dir), "--num", "11", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr
    assert np.loadtxt(out, delimiter=",").shape == (11, 2)
    assert proc.stdout.startswith("wrote 11 samples")
