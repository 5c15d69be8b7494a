r"""Data for the main job: reading files, checking them, standardising, splitting, batching.

* :func:`load_array` reads ``.npy``, ``.csv`` or ``.pt`` files whose rows are samples and
  :func:`check_matrix` rejects anything that is not a finite ``(rows, features)`` array.
* :class:`Standardizer` maps data to zero mean and unit variance per feature,
  :math:`z = (x - \mu) / s`; densities transform as
  :math:`\log p_x(x) = \log p_z(z) - \sum_i \log s_i`.
* :func:`prepare_data` turns a :class:`~nami_core.config.DataConfig` into a seeded
  train/test split (:class:`PreparedData`).
* :class:`ShardedBatches` draws batches of row indices from seeded permutations, one shard
  per rank (the :class:`torch.utils.data.DistributedSampler` scheme), with a checkpointable
  state.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from pathlib import Path
from typing import Any, Optional

import attrs
import numpy as np
import torch
from torch import Tensor

from .config import DEFAULT_DATASET, DataConfig
from .errors import DataError

__all__ = [
    "SUPPORTED_SUFFIXES",
    "load_array",
    "save_array",
    "check_matrix",
    "Standardizer",
    "PreparedData",
    "prepare_data",
    "build_dataset",
    "split_indices",
    "dequantize",
    "ShardedBatches",
    "fingerprint",
]

SUPPORTED_SUFFIXES = (".npy", ".csv", ".pt")


# -- files ---------------------------------------------------------------------------------

def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"{path}: unknown file type {suffix or '(no extension)'!r}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    return suffix


def _read_csv(path: Path) -> np.ndarray:
    with open(path, "r", encoding="utf-8") as fh:
        first = fh.readline()
    skip = 0
    try:
        [float(v) for v in first.strip().split(",") if v.strip()]
    except ValueError:
        skip = 1  # a header row
    try:
        return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{path}: not a numeric CSV table ({exc})") from exc


def _read_pt(path: Path) -> Any:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a data error
        raise DataError(f"{path}: cannot read this .pt file ({type(exc).__name__}: {exc})") from exc
    if isinstance(obj, dict):
        for key in ("data", "x"):
            if key in obj:
                obj = obj[key]
                break
        else:
            raise DataError(f"{path}: a .pt file holding a dict needs a key 'data' or 'x', found {sorted(map(str, obj))}")
    if not torch.is_tensor(obj):
        raise DataError(f"{path}: expected a tensor (or a dict with key 'data'/'x'), found {type(obj).__name__}")
    return obj


def load_array(path: str | Path) -> Tensor:
    """Read a ``(rows, features)`` array from ``.npy``, ``.csv`` (comma separated, optional
    header row) or ``.pt`` (a tensor, or a dict with key ``"data"`` or ``"x"``).

    Returns a float tensor (float64 ``.npy``/``.pt`` data stay float64, anything else
    becomes float32) that has passed :func:`check_matrix`.

    Raises:
        DataError: unknown extension, unreadable file, wrong shape, non-numeric or
            non-finite values.
    """
    path = Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if suffix == ".npy":
        try:
            arr: Any = np.load(path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"{path}: cannot read this .npy file ({exc})") from exc
    elif suffix == ".csv":
        arr = _read_csv(path).astype(np.float32)  # text has no dtype: float32 like the rest
    else:
        arr = _read_pt(path)
    if isinstance(arr, np.ndarray):
        if arr.dtype.kind not in "biuf":
            raise DataError(f"{path}: expected a numeric array, got dtype {arr.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(arr))
    else:
        x = arr.detach().cpu()
        if x.is_complex() or x.dtype == torch.bool:
            raise DataError(f"{path}: expected a real numeric tensor, got dtype {x.dtype}")
    x = x if x.dtype == torch.float64 else x.to(torch.float32)
    return check_matrix(x, str(path))


def save_array(path: str | Path, x: Tensor) -> Path:
    """Write ``x`` as ``.npy``, ``.pt`` or ``.csv`` (chosen by the extension of ``path``)."""
    path = Path(path)
    suffix = _suffix(path)
    x = x.detach().cpu()
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npy":
        np.save(path, x.numpy())
    elif suffix == ".pt":
        torch.save(x.contiguous().clone(), path)
    else:
        np.savetxt(path, x.numpy(), delimiter=",", fmt="%.8g")
    return path


def check_matrix(x: Tensor, name: str = "data") -> Tensor:
    """Check that ``x`` is a finite 2-D array ``(rows, features)`` with at least 2 rows.

    Raises:
        DataError: naming the shape problem, or the first row holding a NaN or infinity.
    """
    if x.ndim != 2:
        hint = ""
        if x.ndim == 1:
            hint = "; for a single feature reshape it to (rows, 1)"
        elif x.ndim > 2:
            hint = f"; flatten each sample, e.g. to ({x.shape[0]}, {math.prod(x.shape[1:])})"
        raise DataError(
            f"{name}: expected a 2-D array (rows = samples, columns = features), "
            f"got {x.ndim}-D shape {tuple(x.shape)}{hint}"
        )
    if x.shape[0] < 2 or x.shape[1] < 1:
        raise DataError(f"{name}: need at least 2 rows and 1 column, got shape {tuple(x.shape)}")
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        rows = bad.any(dim=1).nonzero().flatten()
        r = int(rows[0])
        c = int(bad[r].nonzero()[0])
        what = "NaN" if math.isnan(float(x[r, c])) else "an infinite value"
        more = f" ({rows.numel()} rows in all)" if rows.numel() > 1 else ""
        raise DataError(f"{name}: row {r} (column {c}; both counted from 0) holds {what}{more}; clean the data first")
    return x


def fingerprint(x: Tensor) -> str:
    """A short content hash of a tensor (shape, dtype and bytes)."""
    h = hashlib.sha256()
    h.update(f"{tuple(x.shape)}|{x.dtype}".encode())
    h.update(x.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# -- standardisation -----------------------------------------------------------------------

@attrs.frozen(eq=False)
class Standardizer:
    r"""Per-feature affine standardisation :math:`z = (x - \mu)/s`.

    ``log_det`` is :math:`\sum_i \log s_i`, so that a density on standardised data converts
    to data units by :math:`\log p_x(x) = \log p_z(z) - \text{log\_det}`.

    Example:
        >>> st = Standardizer.fit(torch.tensor([[0.0, 1.0], [2.0, 5.0]]))
        >>> st.mean, st.std
        (tensor([1., 3.]), tensor([1., 2.]))
        >>> st.inverse(st.forward(torch.tensor([[4.0, 4.0]])))
        tensor([[4., 4.]])
    """

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, x: Tensor) -> "Standardizer":
        """Mean and (population) standard deviation of each column; a constant column gets
        ``std = 1`` (and a warning) so it stays finite."""
        x = check_matrix(x, "data")
        xd = x.double()
        mean = xd.mean(dim=0)
        std = xd.std(dim=0, correction=0)
        const = std <= 1e-12 * torch.maximum(mean.abs(), torch.ones_like(mean))
        if bool(const.any()):
            cols = const.nonzero().flatten().tolist()
            warnings.warn(f"data columns {cols[:10]} are constant; left unscaled (std = 1)", stacklevel=2)
            std = torch.where(const, torch.ones_like(std), std)
        return cls(mean.to(x.dtype), std.to(x.dtype))

    @property
    def dim(self) -> int:
        return int(self.mean.numel())

    @property
    def log_det(self) -> float:
        r""":math:`\sum_i \log s_i` (float64 accumulation)."""
        return float(self.std.double().log().sum())

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x)) / self.std.to(x)

    def inverse(self, z: Tensor) -> Tensor:
        return z * self.std.to(z) + self.mean.to(z)

    def state_dict(self) -> dict:
        return {"mean": self.mean.clone(), "std": self.std.clone()}

    @classmethod
    def from_state_dict(cls, d: dict) -> "Standardizer":
        return cls(d["mean"], d["std"])


# -- the prepared data set -----------------------------------------------------------------

@attrs.frozen(eq=False)
class PreparedData:
    """A train/test split in data units plus the training standardisation.

    Attributes:
        train: training rows ``(n_train, dim)``; integer levels when ``levels`` is set.
        test: held-out rows ``(n_test, dim)`` in data units (already dequantised).
        standardizer: fitted on the (dequantised) training rows.
        levels: dequantisation levels (``None`` = continuous data).
        source: where the data came from (``file:...`` / ``dataset:...``).
        fingerprint: content hash of the full array before the split.
        image_shape: shape of one sample as an image, if it is one (for plots).
    """

    train: Tensor
    test: Tensor
    standardizer: Standardizer
    levels: Optional[int]
    source: str
    fingerprint: str
    image_shape: Optional[tuple[int, ...]] = None

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])

    def meta(self) -> dict:
        """Plain-dict description stored in checkpoints."""
        return {
            **self.standardizer.state_dict(),
            "dim": self.dim,
            "n_train": int(self.train.shape[0]),
            "n_test": int(self.test.shape[0]),
            "levels": self.levels,
            "source": self.source,
            "fingerprint": self.fingerprint,
            "image_shape": None if self.image_shape is None else list(self.image_shape),
        }


def build_dataset(name: str, **params: Any) -> Any:
    """Build a data set by registry name (kind ``"dataset"``): ``two_moons``, ``digits``
    (registered by nami-core itself) or any plugin's."""
    from .registry import build

    return build("dataset", name, **params)


def split_indices(n: int, test_fraction: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Seeded split of ``range(n)`` into train and test indices (each non-empty, sorted)."""
    if n < 2:
        raise DataError(f"need at least 2 rows to hold out a test split, got {n}")
    n_test = min(max(1, int(round(test_fraction * n))), n - 1)
    perm = torch.randperm(n, generator=generator)
    return perm[n_test:].sort().values, perm[:n_test].sort().values


def dequantize(v: Tensor, levels: int, generator: Optional[torch.Generator]) -> Tensor:
    """Uniform dequantisation ``(v + u) / levels``, ``u ~ U[0, 1)``."""
    u = torch.rand(v.shape, generator=generator, dtype=v.dtype, device=v.device)
    return (v + u) / levels


def _check_levels(x: Tensor, levels: int, name: str) -> None:
    if bool((x != x.round()).any()) or bool((x < 0).any()) or bool((x > levels - 1).any()):
        raise DataError(f"{name}: dequantize = {levels} needs integer values in 0..{levels - 1}, "
                        f"got values in [{float(x.min())}, {float(x.max())}]")


def prepare_data(cfg: DataConfig, seed: int) -> PreparedData:
    """Load the configured data, hold out a seeded test split and fit the standardisation.

    * a file: read with :func:`load_array`;
    * a data set with ``load()`` (fixed data, e.g. ``digits``): its rows;
    * any other data set: ``cfg.size`` rows from ``sample(n, generator=...)``.

    With dequantisation (``cfg.dequantize`` or the data set's ``levels``) the training rows
    stay integer levels (dequantised afresh at every step) while the test rows and the
    statistics of the standardisation use one seeded dequantisation.
    """
    image_shape = None
    levels = cfg.dequantize
    if cfg.file is not None:
        x = load_array(cfg.file)
        name = cfg.file
    else:
        name = cfg.dataset or DEFAULT_DATASET
        ds = build_dataset(name, **cfg.params)
        image_shape = getattr(ds, "image_shape", None)
        if levels is None:
            levels = getattr(ds, "levels", None)
        if callable(getattr(ds, "load", None)):
            x = ds.load()
        else:
            if levels:
                raise DataError(f"dequantize applies to fixed integer data; data set {name!r} samples continuous data")
            g = torch.Generator().manual_seed(_derive(seed, 1))
            x = ds.sample(cfg.size, generator=g)
        if not torch.is_tensor(x):
            x = torch.as_tensor(np.asarray(x))
        x = x if x.dtype == torch.float64 else x.to(torch.float32)
        x = check_matrix(x, f"data set {name!r}")
    levels = levels or None
    if levels is not None:
        _check_levels(x, levels, name)
    g_split = torch.Generator().manual_seed(_derive(seed, 2))
    tr, te = split_indices(x.shape[0], cfg.test_fraction, g_split)
    train, test = x[tr].contiguous(), x[te].contiguous()
    if levels is not None:
        g_deq = torch.Generator().manual_seed(_derive(seed, 3))
        test = dequantize(test, levels, g_deq)
        stats_rows = dequantize(train, levels, g_deq)
    else:
        stats_rows = train
    return PreparedData(
        train=train,
        test=test,
        standardizer=Standardizer.fit(stats_rows),
        levels=levels,
        source=cfg.source,
        fingerprint=fingerprint(x),
        image_shape=None if image_shape is None else tuple(image_shape),
    )


def _derive(seed: int, stream: int) -> int:
    """A seed for an independent random stream of a run (deterministic in ``seed``)."""
    return (int(seed) * 1_000_003 + stream * 7_919) % (2**63 - 1)


# -- batches -------------------------------------------------------------------------------

class ShardedBatches:
    """Batches of row indices from seeded epoch permutations, sharded across ranks.

    Every rank holds the same generator state and draws the same permutation; a global
    batch is the next ``batch_size`` indices of the permutation (the incomplete tail of an
    epoch is dropped, so all batches are full), and rank ``r`` of ``w`` takes elements
    ``r, r + w, ...`` of it. :meth:`state_dict` / :meth:`load_state_dict` save and restore
    the position exactly.

    Args:
        n: number of rows.
        batch_size: global batch size (clipped to ``n``).
        generator: source of the permutations.
        rank, world_size: this process's shard.
    """

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, *, rank: int = 0, world_size: int = 1) -> None:
        if n < 1:
            raise DataError("no training rows")
        if world_size < 1 or not (0 <= rank < world_size):
            raise ValueError(f"invalid rank {rank} for world_size {world_size}")
        self.n = n
        self.batch_size = min(batch_size, n)
        if self.batch_size < world_size:
            raise ValueError(f"batch_size {self.batch_size} is smaller than world_size {world_size}")
        self.generator = generator
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.pos = 0
        self.perm = torch.randperm(n, generator=generator)

    def next(self) -> Tensor:
        """Indices of this rank's share of the next global batch."""
        if self.pos + self.batch_size > self.n:
            self.perm = torch.randperm(self.n, generator=self.generator)
            self.pos = 0
            self.epoch += 1
        batch = self.perm[self.pos: self.pos + self.batch_size]
        self.pos += self.batch_size
        return batch[self.rank:: self.world_size]

    def state_dict(self) -> dict:
        return {"perm": self.perm.clone(), "pos": self.pos, "epoch": self.epoch,
                "generator": self.generator.get_state()}

    def load_state_dict(self, d: dict) -> None:
        perm = d["perm"]
        if perm.shape != (self.n,):
            raise ValueError(f"batch state is for {perm.numel()} rows, this data has {self.n}")
        self.perm = perm.clone()
        self.pos = int(d["pos"])
        self.epoch = int(d["epoch"])
        self.generator.set_state(d["generator"])
