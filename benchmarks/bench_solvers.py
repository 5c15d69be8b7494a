"""Solver overhead and adaptive efficiency: nami-solvers vs a hand-written loop vs torchdiffeq.

Two measurements, all ratios taken within one run (contenders interleaved round by round, in
rotating order, medians reported), single intra-op thread:

1. **Fixed-step per-step overhead.** Euler, Midpoint, Heun and RK4 integrate 100 uniform steps
   from t = 1 to t = 0 on a batch of 256 2-D points (float32, ``torch.inference_mode``) with

   - a near-free field, ``x * -1.0``, so that the time is almost all solver overhead, and
   - a small MLP field ``[x, t] -> 64 -> 64 -> 2`` (SiLU), a realistic cheap model.

   Contenders: ``hand`` (a loop written by hand for that method: time tensors built before the
   loop, ``torch.add(..., alpha=h)`` updates; the reference of the ratios), ``nami``
   (``Euler(steps=100).integrate(...)`` etc., everything a solve does included) and
   ``torchdiffeq`` (``odeint`` with a ``grid_constructor`` returning the same 101-point grid;
   its ``heun2`` is Heun's method and its ``rk4`` the 3/8-rule variant, 4 stages like the
   classical one). Every contender's evaluation count is checked to be ``100 * stages``.

2. **Dormand–Prince 5(4).** ``nami.Dopri5`` vs ``torchdiffeq.odeint(method="dopri5")`` at the
   same ``rtol = atol`` (1e-3, 1e-5, 1e-7), integrating 1 -> 0 in float64 on a batch of 256 2-D
   points: the exact Gaussian flow-matching field (error against the closed-form flow map) and a
   small MLP field (error against RK4 with 4000 steps). Reported: field evaluations, median
   wall time, max error.

Run from the repository root (about a minute)::

    python benchmarks/bench_solvers.py          # writes benchmarks/results/solvers.json
    python benchmarks/bench_solvers.py --rounds 5 --threads 1
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import torch
from torch import Tensor, nn

from nami_core.testing import GaussianFlowField, gaussian_flow_map
from nami_solvers import RK4, Dopri5, Euler, Heun, Midpoint

try:
    from torchdiffeq import odeint
except ImportError:  # optional for the benchmark
    odeint = None

BATCH, DIM, STEPS = 256, 2, 100


class MLPField(nn.Module):
    """``v(x, t) = MLP([x, t])``, ``t`` of shape ``(batch,)``."""

    def __init__(self, dim: int = DIM, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim + 1, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, dim))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.net(torch.cat([x, t.unsqueeze(-1)], dim=-1))


class Counted:
    """Counts evaluations of a field ``f(x, t)``."""

    def __init__(self, field: Callable[[Tensor, Tensor], Tensor]) -> None:
        self.field, self.calls = field, 0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        self.calls += 1
        return self.field(x, t)


# --------------------------------------------------------------------------- hand loops


def _times(values: List[float], x: Tensor) -> List[Tensor]:
    grid = torch.tensor(values, dtype=x.dtype, device=x.device)
    return list(grid.unsqueeze(-1).expand(len(values), x.shape[0]).unbind(0))


def hand_euler(f, x: Tensor, steps: int) -> Tensor:
    h = -1.0 / steps
    for t in _times([1.0 - n / steps for n in range(steps)], x):
        x = torch.add(x, f(x, t), alpha=h)
    return x


def hand_midpoint(f, x: Tensor, steps: int) -> Tensor:
    h = -1.0 / steps
    ts = _times([v for n in range(steps) for v in (1.0 - n / steps, 1.0 - (n + 0.5) / steps)], x)
    for n in range(steps):
        k1 = f(x, ts[2 * n])
        x = torch.add(x, f(torch.add(x, k1, alpha=0.5 * h), ts[2 * n + 1]), alpha=h)
    return x


def hand_heun(f, x: Tensor, steps: int) -> Tensor:
    h = -1.0 / steps
    ts = _times([1.0 - n / steps for n in range(steps + 1)], x)
    for n in range(steps):
        k1 = f(x, ts[n])
        k2 = f(torch.add(x, k1, alpha=h), ts[n + 1])
        x = torch.add(x, k1, alpha=0.5 * h).add_(k2, alpha=0.5 * h)
    return x


def hand_rk4(f, x: Tensor, steps: int) -> Tensor:
    h = -1.0 / steps
    ts = _times([v for n in range(steps) for v in (1.0 - n / steps, 1.0 - (n + 0.5) / steps, 1.0 - (n + 1) / steps)], x)
    for n in range(steps):
        t0, tm, t1 = ts[3 * n], ts[3 * n + 1], ts[3 * n + 2]
        k1 = f(x, t0)
        k2 = f(torch.add(x, k1, alpha=0.5 * h), tm)
        k3 = f(torch.add(x, k2, alpha=0.5 * h), tm)
        k4 = f(torch.add(x, k3, alpha=h), t1)
        x = torch.add(x, k1, alpha=h / 6).add_(k2, alpha=h / 3).add_(k3, alpha=h / 3).add_(k4, alpha=h / 6)
    return x


# --------------------------------------------------------------------------- contenders


def nami_fixed(cls):
    def run(f, x: Tensor, steps: int) -> Tensor:
        return cls(steps=steps).integrate(f, x, 1.0, 0.0, time_shape=(x.shape[0],)).y

    return run


def torchdiffeq_fixed(method: str):
    def run(f, x: Tensor, steps: int) -> Tensor:
        batch = x.shape[0]

        def grid(func, y0, tt):  # torchdiffeq may hand a reversed (negated) time tensor
            return torch.linspace(float(tt[0]), float(tt[-1]), steps + 1, dtype=tt.dtype, device=tt.device)

        ts = torch.tensor([1.0, 0.0], dtype=x.dtype, device=x.device)
        return odeint(lambda t, y: f(y, t.expand(batch)), x, ts, method=method,
                      options={"grid_constructor": grid})[-1]

    return run


FIXED: Dict[str, Tuple[int, Callable, Callable, str]] = {
    # name: (stages, hand loop, nami solver class, torchdiffeq method)
    "euler": (1, hand_euler, Euler, "euler"),
    "midpoint": (2, hand_midpoint, Midpoint, "midpoint"),
    "heun": (2, hand_heun, Heun, "heun2"),
    "rk4": (4, hand_rk4, RK4, "rk4"),
}


def median_times(contenders: Dict[str, Callable[[], Tensor]], rounds: int) -> Dict[str, float]:
    """Median wall time (s) of each contender, interleaved round by round in rotating order."""
    names = list(contenders)
    samples: Dict[str, List[float]] = {n: [] for n in names}
    for fn in contenders.values():  # warm-up
        fn()
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            start = time.perf_counter()
            contenders[n]()
            samples[n].append(time.perf_counter() - start)
    return {n: statistics.median(v) for n, v in samples.items()}


def bench_fixed(rounds: int) -> List[dict]:
    torch.manual_seed(0)
    x = torch.randn(BATCH, DIM)
    mlp = MLPField().eval()
    fields = {"x * -1.0": lambda x, t: x * -1.0, "MLP 64x64": lambda x, t: mlp(x, t)}
    rows = []
    with torch.inference_mode():
        for field_name, field in fields.items():
            for method, (stages, hand, cls, tdq_method) in FIXED.items():
                runs = {"hand": lambda f, x, s, h=hand: h(f, x, s), "nami": nami_fixed(cls)}
                if odeint is not None:
                    runs["torchdiffeq"] = torchdiffeq_fixed(tdq_method)
                ref = None
                for name, run in runs.items():  # each contender does the same work
                    counted = Counted(field)
                    y = run(counted, x, STEPS)
                    assert counted.calls == STEPS * stages, (name, method, counted.calls)
                    if name != "torchdiffeq" or method != "rk4":  # torchdiffeq's rk4 is the 3/8 rule
                        ref = y if ref is None else ref
                        torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
                times = median_times({n: (lambda r=r: r(field, x, STEPS)) for n, r in runs.items()}, rounds)
                base = times["hand"]
                for name, t in times.items():
                    rows.append({
                        "field": field_name, "method": method, "contender": name,
                        "ms": round(1e3 * t, 3), "us_per_step": round(1e6 * t / STEPS, 2),
                        "ratio_to_hand": round(t / base, 3),
                        "overhead_us_per_step": round(1e6 * (t - base) / STEPS, 2),
                    })
    return rows


# --------------------------------------------------------------------------- Dormand–Prince


def bench_dopri5(rounds: int) -> List[dict]:
    f64 = torch.float64
    g = torch.Generator().manual_seed(1)
    x1 = torch.randn(BATCH, DIM, generator=g, dtype=f64)
    gauss = GaussianFlowField(torch.tensor([0.7, -1.2], dtype=f64), 0.5)
    exact_gauss = gaussian_flow_map(gauss, x1, 1.0, 0.0)
    torch.manual_seed(0)
    mlp = MLPField().to(f64).eval()
    with torch.inference_mode():
        exact_mlp = RK4(steps=4000).integrate(lambda x, t: mlp(x, t), x1, 1.0, 0.0, time_shape=(BATCH,)).y
    problems = {
        "gaussian (exact field)": (lambda x, t: gauss(x, t), exact_gauss),
        "MLP 64x64": (lambda x, t: mlp(x, t), exact_mlp),
    }
    rows = []
    with torch.inference_mode():
        for pname, (field, exact) in problems.items():
            for tol in (1e-3, 1e-5, 1e-7):
                def nami_run(f=field, tol=tol):
                    return Dopri5(rtol=tol, atol=tol).integrate(f, x1, 1.0, 0.0, time_shape=(BATCH,))

                runs = {"nami": nami_run}
                if odeint is not None:
                    ts = torch.tensor([1.0, 0.0], dtype=f64)

                    def tdq_run(f=field, tol=tol, ts=ts):
                        return odeint(lambda t, y: f(y, t.expand(BATCH)), x1, ts, rtol=tol, atol=tol,
                                      method="dopri5")[-1]

                    runs["torchdiffeq"] = tdq_run
                results = {}
                for name, run in runs.items():
                    counted = Counted(field)
                    if name == "nami":
                        sol = Dopri5(rtol=tol, atol=tol).integrate(counted, x1, 1.0, 0.0, time_shape=(BATCH,))
                        y, nfe = sol.y, sol.nfe
                        assert nfe == counted.calls
                    else:
                        y = odeint(lambda t, yy: counted(yy, t.expand(BATCH)), x1, torch.tensor([1.0, 0.0], dtype=f64),
                                   rtol=tol, atol=tol, method="dopri5")[-1]
                        nfe = counted.calls
                    results[name] = (nfe, (y - exact).abs().max().item())
                times = median_times({n: r for n, r in runs.items()}, rounds)
                for name, t in times.items():
                    nfe, err = results[name]
                    rows.append({
                        "problem": pname, "tol": tol, "contender": name, "nfe": nfe,
                        "ms": round(1e3 * t, 3), "max_error": float(f"{err:.3g}"),
                        "time_ratio_to_torchdiffeq": round(t / times["torchdiffeq"], 3) if "torchdiffeq" in times else None,
                    })
    return rows


# --------------------------------------------------------------------------- report


def markdown_fixed(rows: List[dict]) -> str:
    lines = ["| field | method | hand µs/step | nami µs/step | nami / hand | torchdiffeq µs/step | torchdiffeq / hand |",
             "|---|---|---:|---:|---:|---:|---:|"]
    keyed = {(r["field"], r["method"], r["contender"]): r for r in rows}
    for field in dict.fromkeys(r["field"] for r in rows):
        for method in FIXED:
            h, n = keyed[(field, method, "hand")], keyed[(field, method, "nami")]
            t = keyed.get((field, method, "torchdiffeq"))
            tcol = f"{t['us_per_step']:.1f} | {t['ratio_to_hand']:.2f}" if t else "- | -"
            lines.append(f"| {field} | {method} | {h['us_per_step']:.1f} | {n['us_per_step']:.1f} | "
                         f"{n['ratio_to_hand']:.2f} | {tcol} |")
    return "\n".join(lines)


def markdown_dopri5(rows: List[dict]) -> str:
    lines = ["| problem | rtol = atol | nami nfe | torchdiffeq nfe | nami ms | torchdiffeq ms | time nami / tdq | nami max err | torchdiffeq max err |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    keyed = {(r["problem"], r["tol"], r["contender"]): r for r in rows}
    for problem in dict.fromkeys(r["problem"] for r in rows):
        for tol in (1e-3, 1e-5, 1e-7):
            n = keyed[(problem, tol, "nami")]
            t = keyed.get((problem, tol, "torchdiffeq"))
            if t is None:
                lines.append(f"| {problem} | {tol:g} | {n['nfe']} | - | {n['ms']:.2f} | - | - | {n['max_error']:.2g} | - |")
            else:
                lines.append(f"| {problem} | {tol:g} | {n['nfe']} | {t['nfe']} | {n['ms']:.2f} | {t['ms']:.2f} | "
                             f"{n['time_ratio_to_torchdiffeq']:.2f} | {n['max_error']:.2g} | {t['max_error']:.2g} |")
    return "\n".join(lines)


def main(argv: List[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=25, help="interleaved repeats per contender (median)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "solvers.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    fixed = bench_fixed(args.rounds)
    dopri = bench_dopri5(args.rounds)
    result = {
        "benchmark": "bench_solvers",
        "environment": {
            "python": sys.version.split()[0], "torch": torch.__version__,
            "torchdiffeq": getattr(sys.modules.get("torchdiffeq"), "__version__", None),
            "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "threads": args.threads, "rounds": args.rounds,
        },
        "setup": {"batch": BATCH, "dim": DIM, "fixed_steps": STEPS, "fixed_dtype": "float32",
                  "dopri5_dtype": "float64", "direction": "t = 1 -> 0"},
        "fixed_step": fixed,
        "dopri5": dopri,
        "seconds": round(time.perf_counter() - start, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("## Fixed-step solvers: per-step cost, 100 steps, batch 256 x 2, float32\n")
    print(markdown_fixed(fixed))
    print("\n## Dormand–Prince 5(4): nami.Dopri5 vs torchdiffeq dopri5, batch 256 x 2, float64, 1 -> 0\n")
    print(markdown_dopri5(dopri))
    print(f"\n({result['seconds']} s; written to {args.out})")
    return result


if __name__ == "__main__":
    main()
