"""Figures of data beside samples, written as PNG.

Low-dimensional data is drawn as scatter plots of pairs of dimensions (data left, samples
right); image-like data (an ``image_shape``, or a square number of dimensions >= 16) as two
image grids. Uses matplotlib's object API with the Agg canvas, so no global backend or
``pyplot`` state is touched.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor

__all__ = ["plot_samples", "guess_image_shape"]


def guess_image_shape(dim: int) -> Optional[tuple[int, int]]:
    """``(s, s)`` when ``dim = s * s`` with ``s >= 4``, else ``None``."""
    s = math.isqrt(dim)
    return (s, s) if s >= 4 and s * s == dim else None


def _figure(width: float, height: float):  # type: ignore[no-untyped-def]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _grid(x: Tensor, image_shape: Sequence[int], rows: int, cols: int, pad: int = 1) -> Tensor:
    h, w = int(image_shape[0]), int(image_shape[1])
    n = min(x.shape[0], rows * cols)
    canvas = torch.full((rows * (h + pad) + pad, cols * (w + pad) + pad), float("nan"))
    imgs = x[:n].reshape(n, h, w)
    for k in range(n):
        r, c = divmod(k, cols)
        y0, x0 = pad + r * (h + pad), pad + c * (w + pad)
        canvas[y0: y0 + h, x0: x0 + w] = imgs[k]
    return canvas


def plot_samples(
    path: str | Path,
    samples: Tensor,
    data: Optional[Tensor] = None,
    *,
    image_shape: Optional[Sequence[int]] = None,
    title: Optional[str] = None,
    max_points: int = 2000,
    grid: int = 8,
) -> Path:
    """Write a PNG of ``samples`` (and ``data``, if given) to ``path``.

    Args:
        path: output file (``.png``).
        samples: model samples ``(n, dim)`` in data units.
        data: held-out data ``(m, dim)`` in data units, drawn beside the samples.
        image_shape: shape of one sample as an image; ``None`` guesses (square dims >= 16).
        title: figure title.
        max_points: at most this many points per scatter plot.
        grid: images per row/column of an image grid.
    """
    path = Path(path)
    samples = samples.detach().cpu().float()
    data = None if data is None else data.detach().cpu().float()
    dim = samples.shape[-1]
    if image_shape is None and dim >= 16:
        image_shape = guess_image_shape(dim)
    panels = [("held-out data", data), ("samples", samples)] if data is not None else [("samples", samples)]

    if image_shape is not None and len(image_shape) >= 2 and math.prod(image_shape[-2:]) == dim:
        lo = float(torch.cat([p for _, p in panels]).quantile(0.005))
        hi = float(torch.cat([p for _, p in panels]).quantile(0.995))
        fig = _figure(3.6 * len(panels), 3.9)
        for k, (name, x) in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), k + 1)
            ax.imshow(_grid(x, image_shape[-2:], grid, grid).numpy(), cmap="gray_r", vmin=lo, vmax=hi,
                      interpolation="nearest")
            ax.set_title(name)
            ax.axis("off")
    else:
        pairs = [(i, i + 1) for i in range(0, dim - 1, 2)][:3] if dim >= 2 else [(0, None)]
        fig = _figure(3.4 * len(panels), 3.2 * len(pairs))
        ref = data if data is not None else samples
        max_points = min(max_points, *(x.shape[0] for _, x in panels))  # same density in every panel
        for r, (i, j) in enumerate(pairs):
            if j is None:  # 1-D: histograms on a shared range
                lo, hi = float(ref[:, 0].min()), float(ref[:, 0].max())
            else:
                lims = [(float(ref[:, d].quantile(0.001)), float(ref[:, d].quantile(0.999))) for d in (i, j)]
            for k, (name, x) in enumerate(panels):
                ax = fig.add_subplot(len(pairs), len(panels), r * len(panels) + k + 1)
                x = x[:max_points]
                if j is None:
                    ax.hist(x[:, 0].numpy(), bins=60, range=(lo, hi), color="C0" if k else "C1")
                    ax.set_xlabel("x0")
                else:
                    ax.scatter(x[:, i].numpy(), x[:, j].numpy(), s=2, alpha=0.5, color="C0" if k == len(panels) - 1 else "C1",
                               rasterized=True)
                    for lim, setter in zip(lims, (ax.set_xlim, ax.set_ylim)):
                        span = lim[1] - lim[0] or 1.0
                        setter(lim[0] - 0.1 * span, lim[1] + 0.1 * span)
                    ax.set_xlabel(f"x{i}")
                    ax.set_ylabel(f"x{j}")
                if r == 0:
                    ax.set_title(name)
    if title:
        fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
