"""Checkpoints: atomic writes and safe reads of plain-data training state.

A checkpoint is a dict of plain Python values (str, int, float, bool, None, lists, dicts)
and tensors, so :func:`torch.load` reads it with ``weights_only=True``: loading never
unpickles arbitrary objects. :func:`save_checkpoint` writes it atomically (a temporary file
in the same directory, flushed and fsync'ed, then :func:`os.replace`), so a crash or a
failing write leaves the previous checkpoint intact.

Layout (``version`` 1)::

    format      "nami-checkpoint"
    version     1
    nami        library version that wrote it
    config      Config.to_dict()
    step        optimiser steps taken
    model       state_dict of the model (field weights)
    ema         state_dict of the EMA weights, or None
    optimizer   optimiser state_dict
    batches     data-order state (permutation, position, generator state)
    rng         {"noise": generator state, ...}
    data        standardisation (mean, std), dim, sizes, source, fingerprint, ...
    history     recent training losses
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError

__all__ = ["FORMAT", "VERSION", "REQUIRED_KEYS", "save_checkpoint", "load_checkpoint"]

FORMAT = "nami-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("config", "step", "model", "data")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus format and version tags) to ``path`` atomically.

    Raises:
        CheckpointError: if the write fails (the previous file at ``path``, if any, is
            left untouched and no temporary file is left behind).
    """
    from ._version import __version__

    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "version": VERSION, "nami": __version__, **payload}
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        if isinstance(exc, Exception):
            raise CheckpointError(f"could not write checkpoint {path}: {type(exc).__name__}: {exc}") from exc
        raise
    _fsync_dir(directory)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` and check its layout.

    ``path`` may be the checkpoint file or a run directory holding ``checkpoint.pt``.

    Raises:
        CheckpointError: naming the file, when it is missing, unreadable (corrupt or
            truncated), not a nami checkpoint, or of an unsupported version.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure to unpickle means a bad file
        raise CheckpointError(
            f"{path} is not a readable checkpoint (corrupt or truncated?): {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a nami checkpoint (no format tag {FORMAT!r})")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{path}: unsupported checkpoint version {ckpt.get('version')!r} (expected {VERSION})")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return ckpt
