r"""Training-time densities on [0, 1]: where along the path the loss looks.

A density is an object with ``sample(n_or_shape, *, generator=None, dtype=None,
device=None) -> Tensor`` returning times in [0, 1]. Losses map the draws into their time
range (:func:`~nami_paths.stochastic.stochastic_fm_loss`'s ``time_density=``). Putting
more mass on intermediate times, where the velocity is hardest to predict, is what the
logit-normal and mode densities of Esser et al. (2024) do.

References:
    Esser, Kulal, Blattmann, Entezari, Müller, Saini, Levi, Lorenz, Sauer, Boesel, Podell,
    Dockhorn, English, Lacey, Goodwin, Marek, Rombach. Scaling Rectified Flow Transformers
    for High-Resolution Image Synthesis. 2024. https://arxiv.org/abs/2403.03206
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import attrs
import torch
from torch import Tensor

from nami_core.shapes import as_size
from nami_core.validation import finite_float, positive_float

__all__ = ["UniformTime", "LogitNormalTime", "ModeTime"]

Shape = Union[int, Sequence[int], torch.Size]

#: Largest ``ModeTime`` scale for which the map u -> t is monotone: 2 / (pi - 2).
MODE_SCALE_MAX = 2.0 / (math.pi - 2.0)


def _check_mode_scale(instance: object, attribute: object, value: float) -> None:
    if not (-1.0 <= value <= MODE_SCALE_MAX):
        raise ValueError(f"scale must lie in [-1, {MODE_SCALE_MAX:.4f}] (2/(pi-2)), got {value}")


@attrs.frozen
class UniformTime:
    r"""Uniform times :math:`t \sim U[0, 1]` (``torch.rand``; the default of every loss).

    Example:
        >>> UniformTime().sample(3, generator=torch.Generator().manual_seed(0))
        tensor([0.4963, 0.7682, 0.0885])
    """

    def sample(
        self,
        n_or_shape: Shape,
        *,
        generator: Optional[torch.Generator] = None,
        dtype: Optional[torch.dtype] = None,
        device: Optional[Union[str, torch.device]] = None,
    ) -> Tensor:
        """Times of shape ``n_or_shape``."""
        return torch.rand(as_size(n_or_shape), generator=generator, dtype=dtype, device=device)


@attrs.frozen(kw_only=True)
class LogitNormalTime:
    r"""Logit-normal times :math:`t = \mathrm{sigmoid}(m + s\,\xi)`, :math:`\xi \sim \mathcal N(0, 1)`.

    .. math:: \pi(t) = \frac{1}{s\sqrt{2\pi}}\,\frac{1}{t(1-t)}
              \exp\Big(-\frac{(\operatorname{logit} t - m)^2}{2 s^2}\Big).

    ``loc`` :math:`m` shifts the mass towards noise (:math:`m > 0`) or data (:math:`m < 0`);
    ``scale`` :math:`s` widens it. The default (0, 1) is the density used by Stable
    Diffusion 3.

    Args:
        loc: :math:`m` (finite).
        scale: :math:`s > 0`.

    References:
        Esser et al. Scaling Rectified Flow Transformers for High-Resolution Image Synthesis.
        2024. https://arxiv.org/abs/2403.03206

    Example:
        >>> t = LogitNormalTime(loc=0.0, scale=1.0).sample((2, 2), generator=torch.Generator().manual_seed(0))
        >>> t.shape, bool(((t > 0) & (t < 1)).all())
        (torch.Size([2, 2]), True)
    """

    loc: float = attrs.field(default=0.0, converter=float, validator=finite_float)
    scale: float = attrs.field(default=1.0, converter=float, validator=positive_float)

    def sample(
        self,
        n_or_shape: Shape,
        *,
        generator: Optional[torch.Generator] = None,
        dtype: Optional[torch.dtype] = None,
        device: Optional[Union[str, torch.device]] = None,
    ) -> Tensor:
        """Times of shape ``n_or_shape`` in (0, 1)."""
        xi = torch.randn(as_size(n_or_shape), generator=generator, dtype=dtype, device=device)
        return torch.sigmoid(self.loc + self.scale * xi)


@attrs.frozen(kw_only=True)
class ModeTime:
    r"""Mode sampling with heavy tails: :math:`t = f(u)`, :math:`u \sim U[0, 1]`,

    .. math:: f(u) = 1 - u - s\Big(\cos^2\big(\tfrac{\pi}{2} u\big) - 1 + u\Big),

    a monotone map of [0, 1] onto itself for :math:`-1 \le s \le 2/(\pi - 2)`. The density is
    symmetric about 1/2 (mean 1/2); :math:`s > 0` concentrates mass around t = 1/2,
    :math:`s < 0` towards both ends, :math:`s = 0` is uniform.

    Args:
        scale: :math:`s \in [-1, 2/(\pi-2)]` (default 1.29, as in Esser et al.).

    References:
        Esser et al. Scaling Rectified Flow Transformers for High-Resolution Image Synthesis.
        2024. https://arxiv.org/abs/2403.03206

    Example:
        >>> ModeTime(scale=0.0).sample(3, generator=torch.Generator().manual_seed(0))
        tensor([0.5037, 0.2318, 0.9115])
    """

    scale: float = attrs.field(default=1.29, converter=float, validator=_check_mode_scale)

    def transform(self, u: Tensor) -> Tensor:
        r"""The map :math:`f(u)` (``f(0) = 1``, ``f(1) = 0``)."""
        return 1.0 - u - self.scale * (torch.cos(0.5 * math.pi * u).square() - 1.0 + u)

    def sample(
        self,
        n_or_shape: Shape,
        *,
        generator: Optional[torch.Generator] = None,
        dtype: Optional[torch.dtype] = None,
        device: Optional[Union[str, torch.device]] = None,
    ) -> Tensor:
        """Times of shape ``n_or_shape`` in [0, 1]."""
        u = torch.rand(as_size(n_or_shape), generator=generator, dtype=dtype, device=device)
        return self.transform(u).clamp_(0.0, 1.0)
