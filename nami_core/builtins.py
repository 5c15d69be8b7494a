r"""Built-in data sets: a toy 2-D distribution and a small real image data set.

:class:`TwoMoons` draws the classic two interleaving half circles (infinite data, drawn
from a ``torch.Generator``). :class:`Digits` is the handwritten-digits data set that
scikit-learn ships inside its package (1797 images of 8 x 8 pixels, no download).

Both satisfy the ``dataset`` protocol (:class:`nami_core.protocols.Dataset`):
``sample(n, *, generator=None) -> Tensor`` of shape ``(n, dim)``.
:func:`register_builtins` registers them under kind ``"dataset"`` as ``"two_moons"`` and
``"digits"``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import attrs
import torch
from torch import Tensor

from .errors import DataError
from .hookspecs import hookimpl
from .validation import non_negative_float

__all__ = ["TwoMoons", "Digits", "register_builtins", "BUILTIN_DATASETS"]


@attrs.frozen(kw_only=True)
class TwoMoons:
    r"""Two interleaving half circles in 2-D, with isotropic Gaussian noise.

    A point picks one of the two moons with probability 1/2 and an angle
    :math:`\theta \sim U[0, \pi]`; the upper moon is :math:`(\cos\theta, \sin\theta)`, the
    lower one :math:`(1 - \cos\theta, \tfrac12 - \sin\theta)`; then
    :math:`\mathcal N(0, \text{noise}^2 I)` is added.

    Args:
        noise: standard deviation of the added Gaussian noise (>= 0).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> TwoMoons(noise=0.05).sample(4, generator=g).shape
        torch.Size([4, 2])
    """

    noise: float = attrs.field(default=0.05, converter=float, validator=non_negative_float)

    #: Events are vectors of this size.
    dim = 2

    def sample(self, n: int, *, generator: Optional[torch.Generator] = None) -> Tensor:
        """``n`` points, shape ``(n, 2)``, float32, reproducible from ``generator``."""
        n = _check_n(n)
        theta = math.pi * torch.rand(n, generator=generator)
        lower = torch.randint(0, 2, (n,), generator=generator).bool()
        x = torch.where(lower, 1.0 - theta.cos(), theta.cos())
        y = torch.where(lower, 0.5 - theta.sin(), theta.sin())
        pts = torch.stack([x, y], dim=-1)
        if self.noise > 0:
            pts = pts + self.noise * torch.randn(n, 2, generator=generator)
        return pts


class Digits:
    r"""The 8 x 8 handwritten digits shipped inside scikit-learn (1797 x 64), dequantised.

    The pixels are integer intensities :math:`v \in \{0, \dots, 16\}` (``levels = 17``).
    A continuous density model needs continuous data, so the data set is *uniformly
    dequantised*: :math:`x = (v + u) / 17` with :math:`u \sim U[0, 1)^{64}` drawn from the
    caller's generator, which maps the pixels into :math:`[0, 1)`. The continuous negative
    log-density of :math:`v + u` (that is of :math:`x`, plus :math:`64 \log 17`) is an upper
    bound on the discrete negative log-likelihood of :math:`v` (Theis et al. 2016), so bits
    per pixel of the 17-level images can be reported honestly.

    :meth:`load` returns the fixed integer array; :meth:`data` one dequantised copy of all
    rows; :meth:`sample` draws rows with replacement and dequantises them. scikit-learn is
    imported on first use only; without it a :class:`~nami_core.errors.DataError` says how
    to install it.

    References:
        Alpaydin, Kaynak. Optical Recognition of Handwritten Digits. UCI, 1998.
        Theis, van den Oord, Bethge. A note on the evaluation of generative models. 2016.
        https://arxiv.org/abs/1511.01844

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = Digits().sample(3, generator=g)
        >>> x.shape, bool((x >= 0).all() and (x < 1).all())
        (torch.Size([3, 64]), True)
    """

    #: Number of integer intensity levels of the raw pixels (0..16).
    levels = 17
    #: Shape of one image (for plots).
    image_shape = (8, 8)
    #: Events are vectors of this size.
    dim = 64
    #: Training settings that suit this data set when no config file is given.
    suggested_config: dict[str, dict[str, Any]] = {
        "model": {"hidden": [512, 512, 512], "time_features": 16},
        "train": {"steps": 6000, "batch_size": 256, "lr": 1e-3, "weight_decay": 0.05, "ema": 0.999},
        "solver": {"name": "rk4", "steps": 20},
    }

    def __init__(self) -> None:
        self._raw: Optional[Tensor] = None

    def load(self) -> Tensor:
        """The raw pixel levels as float32, shape ``(1797, 64)``, values in ``{0, ..., 16}``."""
        if self._raw is None:
            try:
                from sklearn.datasets import load_digits
            except ImportError as exc:
                raise DataError(
                    "the 'digits' data set needs scikit-learn, which is not installed; "
                    "install it with: pip install 'nami-core[digits]' (or pip install scikit-learn)"
                ) from exc
            arr = load_digits().data
            self._raw = torch.as_tensor(arr, dtype=torch.float32).contiguous()
        return self._raw

    def dequantize(self, v: Tensor, *, generator: Optional[torch.Generator] = None) -> Tensor:
        """``(v + u) / levels`` with ``u ~ U[0, 1)`` of the shape of ``v``."""
        from .data import dequantize

        return dequantize(v, self.levels, generator)

    def data(self, *, generator: Optional[torch.Generator] = None) -> Tensor:
        """All 1797 images, dequantised once with ``generator``, shape ``(1797, 64)``."""
        return self.dequantize(self.load(), generator=generator)

    def sample(self, n: int, *, generator: Optional[torch.Generator] = None) -> Tensor:
        """``n`` dequantised images drawn uniformly with replacement, shape ``(n, 64)``."""
        n = _check_n(n)
        raw = self.load()
        idx = torch.randint(0, raw.shape[0], (n,), generator=generator)
        return self.dequantize(raw[idx], generator=generator)

    def __repr__(self) -> str:
        return "Digits()"


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    return n


#: Registry name -> class of the built-in data sets.
BUILTIN_DATASETS: dict[str, type] = {"two_moons": TwoMoons, "digits": Digits}


def register_builtins(register: Callable[..., Any]) -> None:
    """Register the built-in data sets with ``register(kind, name, factory)``."""
    for name, cls in BUILTIN_DATASETS.items():
        register("dataset", name, cls)


@hookimpl
def nami_register(register: Callable[..., Any]) -> None:
    """nami-core's own hook implementation: the registry loads it before any plugin."""
    register_builtins(register)
