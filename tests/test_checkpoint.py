"""Checkpoints: bitwise round trip, safe loading, atomic writes, corrupt files."""

from __future__ import annotations

import pytest
import torch

from nami_core import checkpoint as ckpt_mod
from nami_core.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from nami_core.errors import CheckpointError


def _payload(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "config": {"train": {"steps": 10, "lr": 1e-3}, "path": None, "model": {"hidden": [4, 4]}},
        "step": 7,
        "model": {"w": torch.randn(3, 4, generator=g), "b": torch.randn(4, generator=g, dtype=torch.float64)},
        "data": {"mean": torch.randn(2, generator=g), "levels": None},
        "rng": {"noise": [g.get_state()]},
    }


def test_round_trip_is_bitwise(tmp_path):
    p = _payload()
    save_checkpoint(tmp_path / "c.pt", p)
    back = load_checkpoint(tmp_path / "c.pt")
    assert back["format"] == FORMAT and back["version"] == 1
    assert back["config"] == p["config"] and back["step"] == 7
    for k, v in p["model"].items():
        assert back["model"][k].dtype == v.dtype and torch.equal(back["model"][k], v)
    assert torch.equal(back["rng"]["noise"][0], p["rng"]["noise"][0])
    # a run directory works too, and plain torch.load with weights_only=True reads it
    assert load_checkpoint(tmp_path / "c.pt")["step"] == 7
    raw = torch.load(tmp_path / "c.pt", weights_only=True)
    assert raw["step"] == 7


def test_directory_argument(tmp_path):
    save_checkpoint(tmp_path / "checkpoint.pt", _payload())
    assert load_checkpoint(tmp_path)["step"] == 7


def test_failed_write_leaves_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, _payload(0))
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")  # some bytes reach the temp file ...
        raise OSError("disk full")  # ... then the write fails

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)
    with pytest.raises(CheckpointError, match=r"could not write checkpoint .*c\.pt.*disk full"):
        save_checkpoint(path, _payload(1))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]  # no temp file left
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 7


def test_corrupt_and_truncated_files(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, _payload())
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all" * 10)
    for name in ("trunc.pt", "junk.pt"):
        with pytest.raises(CheckpointError, match=rf"{name} is not a readable checkpoint"):
            load_checkpoint(tmp_path / name)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_arbitrary_objects_are_not_unpickled(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        torch.save({"format": FORMAT, "version": 1, "obj": _Evil()}, fh)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(path)
    assert "unpickled!" not in capsys.readouterr().out


def test_not_a_nami_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a nami checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"format": FORMAT, "version": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="unsupported checkpoint version 99"):
        load_checkpoint(tmp_path / "future.pt")
    torch.save({"format": FORMAT, "version": 1, "step": 1}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="lacks config, model, data"):
        load_checkpoint(tmp_path / "partial.pt")
