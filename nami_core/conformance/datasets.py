"""Conformance checks of data sets (:class:`~nami_core.protocols.Dataset`).

:func:`check_dataset`: ``shapes`` (``sample(n)`` returns ``n`` rows, ``dim`` matches if
declared), ``finite`` (floating point, no NaN/inf), ``reproducible`` (the same generator seed
gives the same rows, another seed other rows).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import Tensor

from .examples import example_instance
from .report import NotInstantiable, Report, require

__all__ = ["check_dataset"]


def check_dataset(dataset: Any, *, raise_on_failure: bool = True) -> Report:
    """Run the data-set checks (see the module docstring) on ``dataset``.

    Raises:
        NotInstantiable: drawing samples needs a missing optional dependency.
    """
    if inspect.isclass(dataset) or inspect.isroutine(dataset):
        dataset = example_instance(dataset)
    text = repr(dataset)
    report = Report("dataset", text if len(text) <= 120 else text[:117] + "...")

    def draw(n: int, seed: int) -> Tensor:
        try:
            return dataset.sample(n, generator=torch.Generator().manual_seed(seed))
        except ImportError as exc:
            raise NotInstantiable(f"{report.component} needs a missing optional dependency: {exc}") from exc

    report.run("protocol", lambda: require(callable(getattr(dataset, "sample", None)), "has no callable sample method"))
    if report.failures:
        return report.raise_for_failures() if raise_on_failure else report

    def shapes() -> None:
        for n in (1, 64):
            x = draw(n, 0)
            require(isinstance(x, Tensor), f"sample({n}) returned {type(x).__name__}, not a Tensor")
            require(x.ndim >= 1 and x.shape[0] == n, f"sample({n}) returned shape {tuple(x.shape)}")
        dim = getattr(dataset, "dim", None)
        if isinstance(dim, int) and not isinstance(dim, bool):
            x = draw(4, 0)
            require(math.prod(x.shape[1:]) == dim, f"declares dim = {dim} but sample rows have shape {tuple(x.shape[1:])}")

    def finite() -> None:
        x = draw(256, 0)
        require(x.dtype.is_floating_point, f"samples must be floating point, got {x.dtype}")
        require(bool(torch.isfinite(x).all()), "samples contain NaN or inf")

    def reproducible() -> None:
        a, b, c = draw(64, 1), draw(64, 1), draw(64, 2)
        require(torch.equal(a, b), "two draws with the same generator seed differ")
        require(not torch.equal(a, c), "draws with different generator seeds agree (is the generator used?)")

    report.run("shapes", shapes)
    report.run("finite", finite)
    report.run("reproducible", reproducible)
    return report.raise_for_failures() if raise_on_failure else report
