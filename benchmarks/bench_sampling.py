"""Fixed-step sampling overhead: nami's solvers vs a hand-written loop vs torchdiffeq.

All contenders integrate the same small MLP velocity field (2 + 1 -> 64 -> 64 -> 2, SiLU,
float32, eval mode) from t = 1 to t = 0 in 100 uniform steps, batch 256, 2-D, under
``torch.inference_mode``, with a fixed number of intra-op threads:

- ``hand (fused)``: the fastest honest loop written by hand, and the reference of the
  ratios. The scalar time grid (and, for RK4, the midpoint grid) is precomputed once;
  each stage builds its time tensor with ``grid[n].expand(batch)``; the step size and its
  fractions are Python floats; updates use ``torch.add(x, k, alpha=dt)`` and in-place
  accumulation into a freshly allocated tensor.
- ``hand (idiomatic)``: the same loop written the usual way, ``x = x + dt * k`` and
  ``x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)``.
- ``nami``: ``Euler(steps=100).integrate(...)`` / ``RK4(steps=100).integrate(...)``,
  including everything a solve does (grid and stage-time construction, checks).
- ``torchdiffeq``: ``odeint(f, x, t=[1, 0], method=...)`` with a ``grid_constructor``
  that returns the same 101-point grid (so exactly 100 steps; checked by counting
  evaluations). ``f(t, y)`` expands torchdiffeq's 0-d ``t`` to the batch. Note that
  torchdiffeq's ``method="rk4"`` is Kutta's 3/8-rule variant (``rk4_alt_step_func``),
  not the classical tableau nami and the hand loop use; both are 4-stage, 4th order, so
  the cost comparison is like for like.

Repeats are interleaved (every round runs every contender once, in rotating order) to
spread machine drift evenly; the table reports the median wall time of a full solve and
its ratio to ``hand (fused)``. Run from the repository root::

    python benchmarks/bench_sampling.py            # writes benchmarks/results/sampling.json
    python benchmarks/bench_sampling.py --repeats 20 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch
from torch import Tensor, nn

from nami_solvers import RK4, Euler

try:
    from torchdiffeq import odeint
except ImportError:  # torchdiffeq is optional for the benchmark
    odeint = None


class MLPField(nn.Module):
    """v(x, t) = MLP([x, t]) with t of shape (batch,)."""

    def __init__(self, dim: int = 2, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim + 1, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, dim),
        )

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.net(torch.cat([x, t[:, None]], dim=-1))


# -- hand-written loops --------------------------------------------------------------------

def hand_euler_fused(field, x: Tensor, steps: int) -> Tensor:
    grid = torch.linspace(1.0, 0.0, steps + 1, dtype=x.dtype)
    dt, b = -1.0 / steps, x.shape[0]
    for n in range(steps):
        x = torch.add(x, field(x, grid[n].expand(b)), alpha=dt)
    return x


def hand_euler_idiomatic(field, x: Tensor, steps: int) -> Tensor:
    grid = torch.linspace(1.0, 0.0, steps + 1, dtype=x.dtype)
    dt, b = -1.0 / steps, x.shape[0]
    for n in range(steps):
        x = x + dt * field(x, grid[n].expand(b))
    return x


def hand_rk4_fused(field, x: Tensor, steps: int) -> Tensor:
    grid = torch.linspace(1.0, 0.0, steps + 1, dtype=x.dtype)
    mid = (grid[:-1] + grid[1:]) / 2
    dt, b = -1.0 / steps, x.shape[0]
    h2, h3, h6 = dt / 2, dt / 3, dt / 6
    for n in range(steps):
        tm = mid[n].expand(b)
        k1 = field(x, grid[n].expand(b))
        k2 = field(torch.add(x, k1, alpha=h2), tm)
        k3 = field(torch.add(x, k2, alpha=h2), tm)
        k4 = field(torch.add(x, k3, alpha=dt), grid[n + 1].expand(b))
        y = torch.add(x, k1, alpha=h6)
        y.add_(k2, alpha=h3)
        y.add_(k3, alpha=h3)
        x = y.add_(k4, alpha=h6)
    return x


def hand_rk4_idiomatic(field, x: Tensor, steps: int) -> Tensor:
    grid = torch.linspace(1.0, 0.0, steps + 1, dtype=x.dtype)
    mid = (grid[:-1] + grid[1:]) / 2
    dt, b = -1.0 / steps, x.shape[0]
    for n in range(steps):
        tm = mid[n].expand(b)
        k1 = field(x, grid[n].expand(b))
        k2 = field(x + dt / 2 * k1, tm)
        k3 = field(x + dt / 2 * k2, tm)
        k4 = field(x + dt * k3, grid[n + 1].expand(b))
        x = x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


# -- nami and torchdiffeq ------------------------------------------------------------------

def nami_solve(solver):
    def run(field, x: Tensor, steps: int) -> Tensor:
        return solver.integrate(field, x, 1.0, 0.0, time_shape=x.shape[:1]).y
    return run


def torchdiffeq_solve(method: str):
    def run(field, x: Tensor, steps: int) -> Tensor:
        b = x.shape[0]
        t = torch.tensor([1.0, 0.0], dtype=x.dtype)

        def grid(f, y0, tt):  # tt is [-1, 0]: torchdiffeq integrates reversed time forwards
            return torch.linspace(float(tt[0]), float(tt[-1]), steps + 1, dtype=tt.dtype)

        return odeint(lambda s, y: field(y, s.expand(b)), x, t, method=method,
                      options={"grid_constructor": grid})[-1]
    return run


class Counter:
    def __init__(self, field) -> None:
        self.field, self.calls = field, 0

    def __call__(self, x, t):
        self.calls += 1
        return self.field(x, t)


def contenders(steps: int) -> Dict[str, Dict[str, Callable]]:
    out = {
        "euler": {
            "hand (fused)": hand_euler_fused,
            "hand (idiomatic)": hand_euler_idiomatic,
            "nami": nami_solve(Euler(steps=steps)),
        },
        "rk4": {
            "hand (fused)": hand_rk4_fused,
            "hand (idiomatic)": hand_rk4_idiomatic,
            "nami": nami_solve(RK4(steps=steps)),
        },
    }
    if odeint is not None:
        out["euler"]["torchdiffeq"] = torchdiffeq_solve("euler")
        out["rk4"]["torchdiffeq (3/8 rule)"] = torchdiffeq_solve("rk4")
    return out


def check(field, x: Tensor, steps: int, table) -> None:
    """Every contender makes the expected evaluations and agrees with the hand loop."""
    for method, runs in table.items():
        stages = 1 if method == "euler" else 4
        ref = runs["hand (fused)"](field, x, steps)
        for name, run in runs.items():
            counter = Counter(field)
            y = run(counter, x, steps)
            if counter.calls != steps * stages:
                raise RuntimeError(f"{method}/{name}: {counter.calls} evaluations, "
                                   f"expected {steps * stages}")
            if not torch.allclose(y, ref, atol=1e-4, rtol=1e-4):
                raise RuntimeError(f"{method}/{name} disagrees with the hand loop: "
                                   f"max diff {(y - ref).abs().max().item():.3g}")


def main(argv: List[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=60)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path,
                   default=Path(__file__).resolve().parent / "results" / "sampling.json")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    field = MLPField().eval()
    x = torch.randn(args.batch, 2)
    table = contenders(args.steps)

    with torch.inference_mode():
        check(field, x, args.steps, table)
        times: Dict[str, Dict[str, List[float]]] = {m: {n: [] for n in r} for m, r in table.items()}
        for rep in range(args.warmup + args.repeats):
            for method, runs in table.items():
                names = list(runs)
                k = rep % len(names)
                for name in names[k:] + names[:k]:  # rotate the order every round
                    start = time.perf_counter()
                    runs[name](field, x, args.steps)
                    elapsed = time.perf_counter() - start
                    if rep >= args.warmup:
                        times[method][name].append(elapsed)

    rows = []
    for method, per in times.items():
        ref = statistics.median(per["hand (fused)"])
        for name, ts in per.items():
            med = statistics.median(ts)
            q = statistics.quantiles(ts, n=4)
            rows.append({
                "method": method, "contender": name, "median_ms": med * 1e3,
                "iqr_ms": (q[2] - q[0]) * 1e3, "ratio_vs_hand": med / ref,
                "nfe": args.steps * (1 if method == "euler" else 4),
            })

    result = {
        "benchmark": "fixed-step sampling, MLP field 3-64-64-2 (SiLU), float32, inference_mode",
        "batch": args.batch, "dim": 2, "steps": args.steps, "repeats": args.repeats,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "python": platform.python_version(), "machine": platform.machine(),
        "processor": platform.processor() or platform.platform(),
        "cpu_count": os.cpu_count(), "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"batch {args.batch}, 2-D, {args.steps} steps, float32, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), median of {args.repeats} interleaved repeats\n")
    print("| method | contender | NFE | median (ms) | IQR (ms) | ratio vs hand (fused) |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['contender']} | {r['nfe']} | {r['median_ms']:.2f} | "
              f"{r['iqr_ms']:.2f} | {r['ratio_vs_hand']:.3f} |")
    print(f"\nwritten to {args.out}")
    return result


if __name__ == "__main__":
    sys.exit(main() and 0)
