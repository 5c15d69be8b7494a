"""Variance of the stochastic-interpolant target with and without a training time range.

The regression target of :func:`nami_paths.stochastic_fm_loss` on the linear path with a
Brownian schedule :math:`\\gamma = s\\sqrt{t(1-t)}` is

    u = x1 - x0 + gamma_dot(t) z,    gamma_dot = s (1 - 2t) / (2 sqrt(t (1 - t))).

Its per-element variance is Var(x1 - x0) + E[gamma_dot(t)^2], and for t ~ U[lo, hi]

    E[gamma_dot^2] = s^2/4 * [log(t/(1-t)) - 4t]_lo^hi / (hi - lo),

finite for lo > 0 and hi < 1 and infinite (logarithmically divergent) for [0, 1]. This
script prints the closed form and measures, for t ~ U[0, 1] and U[eps, 1 - eps]:

* the sample variance of u (per element) for growing sample sizes (it keeps growing with
  the sample size on [0, 1] because the true value is infinite),
* the largest |gamma_dot(t) z| seen,
* the batch-to-batch standard deviation of the loss of a zero field (batch 256), which is
  what a training step sees.

Data: the 2-D Gaussian mixture of nami-paths (defaults), noise N(0, I), scale s = 1::

    python benchmarks/bench_gamma_variance.py    # writes benchmarks/results/gamma_variance.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Dict, List

import torch

from nami_paths import BrownianGamma, GaussianMixture, stochastic_fm_loss

RESULTS = Path(__file__).resolve().parent / "results" / "gamma_variance.json"


def exact_mean_gamma_dot_sq(lo: float, hi: float, scale: float = 1.0) -> float:
    """E[gamma_dot(t)^2] for t ~ U[lo, hi] (inf if lo == 0 or hi == 1)."""
    if lo <= 0.0 or hi >= 1.0:
        return math.inf

    def prim(t: float) -> float:
        return math.log(t / (1.0 - t)) - 4.0 * t

    return scale**2 / 4.0 * (prim(hi) - prim(lo)) / (hi - lo)


class Zero(torch.nn.Module):
    event_ndim = 1

    def forward(self, x, t, c=None):  # type: ignore[no-untyped-def]
        return torch.zeros_like(x)


def measure(t_range, sizes: List[int], seed: int, batches: int) -> Dict[str, object]:
    gamma = BrownianGamma()
    data = GaussianMixture()
    g = torch.Generator().manual_seed(seed)
    out: Dict[str, object] = {"t_range": list(t_range)}
    variances, maxima = {}, {}
    lo, hi = t_range
    for n in sizes:
        x0 = data.sample(n, generator=g).double()
        x1 = torch.randn(n, 2, generator=g, dtype=torch.float64)
        z = torch.randn(n, 2, generator=g, dtype=torch.float64)
        t = lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)
        noise_term = gamma.gamma_dot(t)[:, None] * z
        u = x1 - x0 + noise_term
        variances[str(n)] = float(u.var(0).mean())
        maxima[str(n)] = float(noise_term.abs().max())
    out["target_variance_by_n"] = variances
    out["max_abs_gamma_dot_z_by_n"] = maxima
    losses = []
    field = Zero()
    for _ in range(batches):
        x0 = data.sample(256, generator=g).double()
        x1 = torch.randn(256, 2, generator=g, dtype=torch.float64)
        losses.append(float(stochastic_fm_loss(field, x0, x1, gamma=gamma, t_range=t_range, generator=g)))
    lt = torch.tensor(losses, dtype=torch.float64)
    out["batch_loss_mean"] = float(lt.mean())
    out["batch_loss_std"] = float(lt.std())
    out["batch_loss_max"] = float(lt.max())
    out["exact_mean_gamma_dot_sq"] = exact_mean_gamma_dot_sq(lo, hi)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batches", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes = [10**4, 10**5, 10**6, 10**7]
    ranges = [(0.0, 1.0), (1e-4, 1 - 1e-4), (1e-3, 1 - 1e-3), (1e-2, 1 - 1e-2)]
    var_data = float((GaussianMixture().covariance().diagonal().mean()) + 1.0)  # Var(x1 - x0) per element
    rows = [measure(r, sizes, args.seed, args.batches) for r in ranges]
    result = {
        "setup": {"data": repr(GaussianMixture()), "noise": "N(0, I)", "gamma": "BrownianGamma()",
                  "path": "linear", "seed": args.seed, "batch": 256, "batches": args.batches,
                  "exact_var_x1_minus_x0": var_data},
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    head = "| t range | exact Var(u) | " + " | ".join(f"Var(u), n=1e{int(math.log10(n))}" for n in sizes)
    head += " | max abs(gamma_dot z), n=1e7 | batch loss mean ± std (max) |"
    print(head)
    print("|" + "---|" * (4 + len(sizes)))
    for r in rows:
        lo, hi = r["t_range"]  # type: ignore[misc]
        exact = var_data + r["exact_mean_gamma_dot_sq"]  # type: ignore[operator]
        name = "[0, 1]" if lo == 0 else f"[{lo:g}, 1 − {lo:g}]"
        cells = " | ".join(f"{v:.3f}" for v in r["target_variance_by_n"].values())  # type: ignore[union-attr]
        print(f"| {name} | {exact:.3f} | {cells} | {r['max_abs_gamma_dot_z_by_n'][str(sizes[-1])]:.0f} | "  # type: ignore[index]
              f"{r['batch_loss_mean']:.3f} ± {r['batch_loss_std']:.3f} ({r['batch_loss_max']:.1f}) |")
    print(f"\nVar(x1 - x0) per element = {var_data:.3f}; wrote {RESULTS}")


if __name__ == "__main__":
    main()
