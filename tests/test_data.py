"""Data files, checks, standardisation, splits, batches and the built-in data sets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nami_core.builtins import BUILTIN_DATASETS, Digits, TwoMoons, register_builtins
from nami_core.config import DataConfig
from nami_core.data import (
    ShardedBatches,
    Standardizer,
    build_dataset,
    check_matrix,
    load_array,
    prepare_data,
    save_array,
    split_indices,
)
from nami_core.errors import DataError


def _matrix(n=50, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * np.array([1.0, 3.0, 0.5])[:d] + np.array([2.0, -1.0, 10.0])[:d]


# -- files ---------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".npy", ".csv", ".pt"])
def test_save_load_round_trip(tmp_path, suffix):
    x = torch.from_numpy(_matrix()).float()
    path = save_array(tmp_path / f"x{suffix}", x)
    y = load_array(path)
    assert y.shape == x.shape and y.dtype == torch.float32
    if suffix == ".csv":  # written with 8 significant digits
        torch.testing.assert_close(y, x, rtol=1e-7, atol=1e-6)
    else:
        assert torch.equal(y, x)


def test_csv_with_header_and_pt_dicts(tmp_path):
    (tmp_path / "h.csv").write_text("a,b\n1,2\n3,4.5\n")
    assert torch.equal(load_array(tmp_path / "h.csv"), torch.tensor([[1.0, 2.0], [3.0, 4.5]]))
    x = torch.arange(6.0).reshape(3, 2)
    for key in ("data", "x"):
        torch.save({key: x, "other": 1}, tmp_path / f"{key}.pt")
        assert torch.equal(load_array(tmp_path / f"{key}.pt"), x)
    torch.save({"y": x}, tmp_path / "bad.pt")
    with pytest.raises(DataError, match="'data' or 'x'"):
        load_array(tmp_path / "bad.pt")


def test_float64_is_kept(tmp_path):
    np.save(tmp_path / "d.npy", _matrix())
    assert load_array(tmp_path / "d.npy").dtype == torch.float64


@pytest.mark.parametrize("shape, hint", [((10,), "reshape it to"), ((4, 3, 2), "flatten")])
def test_wrong_shape_is_a_data_error(tmp_path, shape, hint):
    np.save(tmp_path / "w.npy", np.zeros(shape))
    with pytest.raises(DataError, match=rf"expected a 2-D array.*{len(shape)}-D shape.*{hint}"):
        load_array(tmp_path / "w.npy")


def test_unknown_extension_and_missing_file(tmp_path):
    (tmp_path / "x.txt").write_text("1,2\n")
    with pytest.raises(DataError, match=r"unknown file type '\.txt'.*\.npy, \.csv, \.pt"):
        load_array(tmp_path / "x.txt")
    with pytest.raises(DataError, match="not found"):
        load_array(tmp_path / "missing.npy")


def test_nan_and_inf_report_the_row(tmp_path):
    x = _matrix(20)
    x[7, 1] = np.nan
    x[12, 0] = np.nan
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(DataError, match=r"row 7 \(column 1; both counted from 0\) holds NaN \(2 rows in all\)"):
        load_array(tmp_path / "nan.npy")
    y = torch.zeros(5, 2)
    y[3, 0] = float("inf")
    with pytest.raises(DataError, match="row 3 .* infinite"):
        check_matrix(y)


def test_non_numeric_csv(tmp_path):
    (tmp_path / "s.csv").write_text("1,2\n3,abc\n")
    with pytest.raises(DataError, match="not a numeric CSV"):
        load_array(tmp_path / "s.csv")


# -- standardisation -----------------------------------------------------------------------

def test_standardizer_statistics_are_exact():
    x = _matrix(200)
    st = Standardizer.fit(torch.from_numpy(x))
    np.testing.assert_allclose(st.mean.numpy(), x.mean(axis=0), rtol=0, atol=1e-13)
    np.testing.assert_allclose(st.std.numpy(), x.std(axis=0, ddof=0), rtol=1e-13)
    z = st.forward(torch.from_numpy(x))
    np.testing.assert_allclose(z.mean(0).numpy(), 0.0, atol=1e-13)
    np.testing.assert_allclose(z.std(0, correction=0).numpy(), 1.0, atol=1e-13)
    torch.testing.assert_close(st.inverse(z), torch.from_numpy(x), rtol=0, atol=1e-12)
    assert st.log_det == pytest.approx(float(np.log(x.std(axis=0)).sum()), rel=1e-14)


def test_standardizer_constant_column_warns():
    x = torch.tensor([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    with pytest.warns(UserWarning, match="constant"):
        st = Standardizer.fit(x)
    assert st.std[1] == 1.0 and torch.isfinite(st.forward(x)).all()


def test_prepare_data_splits_and_fits_on_train_rows_only(tmp_path):
    x = _matrix(100)
    np.save(tmp_path / "d.npy", x)
    data = prepare_data(DataConfig(file=str(tmp_path / "d.npy"), test_fraction=0.2), seed=3)
    assert data.train.shape == (80, 3) and data.test.shape == (20, 3)
    rows = {tuple(r) for r in data.train.tolist()} | {tuple(r) for r in data.test.tolist()}
    assert rows == {tuple(r) for r in x.tolist()}  # a partition of the rows
    tr = data.train.numpy()
    np.testing.assert_allclose(data.standardizer.mean.numpy(), tr.mean(0), atol=1e-13)
    np.testing.assert_allclose(data.standardizer.std.numpy(), tr.std(0), rtol=1e-13)
    again = prepare_data(DataConfig(file=str(tmp_path / "d.npy"), test_fraction=0.2), seed=3)
    assert torch.equal(again.test, data.test)
    other = prepare_data(DataConfig(file=str(tmp_path / "d.npy"), test_fraction=0.2), seed=4)
    assert not torch.equal(other.test, data.test)


def test_split_indices():
    g = torch.Generator().manual_seed(0)
    tr, te = split_indices(10, 0.3, g)
    assert te.numel() == 3 and tr.numel() == 7
    assert sorted(torch.cat([tr, te]).tolist()) == list(range(10))
    with pytest.raises(DataError):
        split_indices(1, 0.5, g)


def test_dequantised_file_data(tmp_path):
    v = np.random.default_rng(0).integers(0, 4, size=(40, 2)).astype(np.float32)
    np.save(tmp_path / "v.npy", v)
    data = prepare_data(DataConfig(file=str(tmp_path / "v.npy"), dequantize=4), seed=0)
    assert data.levels == 4
    assert torch.equal(data.train, data.train.round())  # raw levels kept for fresh noise
    assert bool(((data.test >= 0) & (data.test < 1)).all())
    assert torch.equal(torch.floor(data.test * 4), torch.floor(data.test * 4).round())
    with pytest.raises(DataError, match="integer values in 0..2"):
        prepare_data(DataConfig(file=str(tmp_path / "v.npy"), dequantize=3), seed=0)


# -- batches -------------------------------------------------------------------------------

def test_sharded_batches_partition_the_global_batch_and_resume():
    single = ShardedBatches(10, 4, torch.Generator().manual_seed(1))
    shards = [ShardedBatches(10, 4, torch.Generator().manual_seed(1), rank=r, world_size=2) for r in range(2)]
    for _ in range(7):  # crosses epoch boundaries (tail of 2 dropped)
        full = single.next()
        parts = [s.next() for s in shards]
        assert full.numel() == 4
        assert sorted(torch.cat(parts).tolist()) == sorted(full.tolist())
        assert full.unique().numel() == 4
    state = single.state_dict()
    expected = [single.next() for _ in range(5)]
    resumed = ShardedBatches(10, 4, torch.Generator().manual_seed(99))
    resumed.load_state_dict(state)
    assert all(torch.equal(a, resumed.next()) for a in expected)


# -- built-in data sets --------------------------------------------------------------------

def test_two_moons_geometry_and_reproducibility():
    g = torch.Generator().manual_seed(0)
    x = TwoMoons(noise=0.0).sample(500, generator=g)
    upper = torch.linalg.vector_norm(x, dim=1)
    lower = torch.linalg.vector_norm(x - torch.tensor([1.0, 0.5]), dim=1)
    on_circle = torch.minimum((upper - 1).abs(), (lower - 1).abs())
    assert float(on_circle.max()) < 1e-5  # noise-free points lie on the unit half circles
    frac_upper = float(((upper - 1).abs() < 1e-5).float().mean())
    assert abs(frac_upper - 0.5) < 0.08
    a = TwoMoons().sample(100, generator=torch.Generator().manual_seed(5))
    b = TwoMoons().sample(100, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == (100, 2)
    with pytest.raises(ValueError):
        TwoMoons(noise=-1.0)


def test_digits_dequantisation():
    ds = Digits()
    raw = ds.load()
    assert raw.shape == (1797, 64) and set(raw.unique().tolist()) <= set(range(17))
    x = ds.data(generator=torch.Generator().manual_seed(0))
    assert bool(((x >= 0) & (x < 1)).all())
    assert torch.equal(torch.floor(x * 17), raw)  # u in [0, 1) never crosses a level
    s1 = ds.sample(8, generator=torch.Generator().manual_seed(2))
    s2 = ds.sample(8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(s1, s2) and s1.shape == (8, 64)


def test_register_builtins_and_registry_lookup():
    calls = []
    register_builtins(lambda kind, name, factory: calls.append((kind, name, factory)))
    assert calls == [("dataset", "two_moons", TwoMoons), ("dataset", "digits", Digits)]
    assert isinstance(build_dataset("two_moons", noise=0.1), TwoMoons)
    assert isinstance(build_dataset("digits"), Digits)
    assert set(BUILTIN_DATASETS) == {"two_moons", "digits"}


def test_prepare_digits():
    data = prepare_data(DataConfig(dataset="digits"), seed=0)
    assert data.levels == 17 and data.image_shape == (8, 8)
    assert data.train.shape[0] + data.test.shape[0] == 1797 and data.dim == 64
    assert math.isclose(data.test.shape[0], 180, abs_tol=1)
