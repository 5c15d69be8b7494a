"""Reverse-SDE sampling cost: nami's torchsde route vs torchsde's default Brownian motion vs a
native Euler–Maruyama loop, 100 steps, as ratios in one run.

Every contender integrates the same reverse-time SDE of the VP schedule from t = 1 to
t_end = 1e-3 with Euler–Maruyama in 100 steps, on a batch of 256 2-D points (float32,
``torch.inference_mode``, one intra-op thread), with the same drift callable
``b(x, t) = f(x, t) - g(t)^2 s(x, t)`` and diffusion ``g(t)``, for two score models:

- ``x * -1.0`` (near-free: the time is almost all solver and Brownian bookkeeping), and
- a small MLP ``[x, t] -> 64 -> 64 -> 2`` (SiLU), a realistic cheap model.

Contenders:

- ``hand EM`` — the reference: a loop written by hand (time tensors built before the loop,
  ``torch.randn`` from a generator each step, ``add``/``addcmul_`` updates);
- ``nami EulerMaruyama`` — ``nami_solvers.sde.EulerMaruyama(steps=100).integrate_sde(...)``;
- ``nami torchsde (grid)`` — ``TorchSDEEuler(steps=100)``: ``torchsde.sdeint`` in s = 1 - t with
  nami's ``GridBrownian`` (increments precomputed on the solve grid);
- ``nami torchsde (interval)`` — ``TorchSDEEuler(steps=100, brownian="interval")``: torchsde's
  ``BrownianInterval`` told the step size (``dt=h``);
- ``torchsde default`` — ``torchsde.sdeint(sde, y, ts, method="euler", dt=h)`` with ``bm=None``
  (the ``BrownianInterval`` sdeint builds by itself), same SDE object and time grid.

Run from the repository root (well under a minute)::

    python benchmarks/bench_sde.py            # writes benchmarks/results/sde.json
    python benchmarks/bench_sde.py --rounds 30 --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch
import torchsde
from torch import Tensor, nn

from nami_diffusion.schedules import VPSchedule
from nami_diffusion.sdes import TorchSDEEuler, _FlatSDE
from nami_solvers.sde import EulerMaruyama

BATCH, DIM, STEPS, T_END = 256, 2, 100, 1e-3
RESULTS = Path(__file__).resolve().parent / "results" / "sde.json"


class MLPScore(nn.Module):
    def __init__(self, dim: int = DIM, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim + 1, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, dim))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.net(torch.cat([x, t.unsqueeze(-1)], dim=-1))


def make_sde(score: Callable[[Tensor, Tensor], Tensor]):
    """The reverse-SDE drift b = f - g^2 s and diffusion g of the VP schedule (shared by all)."""
    sch = VPSchedule()
    bmin, db = sch.beta_min, sch.beta_max - sch.beta_min

    def drift(x: Tensor, t: Tensor) -> Tensor:
        beta = (bmin + db * t).unsqueeze(-1)
        return -0.5 * beta * x - beta * score(x, t)

    def diffusion(x: Tensor, t: Tensor) -> Tensor:
        return torch.sqrt(bmin + db * t).unsqueeze(-1)

    return drift, diffusion


def hand_em(drift, diffusion, x: Tensor, gen: torch.Generator) -> Tensor:
    h = -(1.0 - T_END) / STEPS
    sqrt_h = math.sqrt(-h)
    grid = torch.tensor([1.0 + n * h for n in range(STEPS)], dtype=x.dtype)
    ts = grid.unsqueeze(-1).expand(STEPS, x.shape[0]).unbind(0)
    for t in ts:
        z = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        x = torch.add(x, drift(x, t), alpha=h).addcmul_(diffusion(x, t), z, value=sqrt_h)
    return x


def contenders(drift, diffusion, x: Tensor) -> Dict[str, Callable[[], Tensor]]:
    gen = torch.Generator().manual_seed(0)
    lead = (x.shape[0],)
    em, grid, interval = EulerMaruyama(steps=STEPS), TorchSDEEuler(steps=STEPS), \
        TorchSDEEuler(steps=STEPS, brownian="interval")
    h = (1.0 - T_END) / STEPS
    ts = torch.tensor([0.0, 1.0 - T_END], dtype=torch.float64)

    def torchsde_default() -> Tensor:
        sde = _FlatSDE(drift, diffusion, 1.0, -1.0, x.shape, lead, x.dtype, x.device, "ito")
        return torchsde.sdeint(sde, x, ts, method="euler", dt=h * (1.0 + 1e-10))[-1]

    return {
        "hand EM": lambda: hand_em(drift, diffusion, x, gen),
        "nami EulerMaruyama": lambda: em.integrate_sde(drift, diffusion, x, 1.0, T_END, time_shape=lead,
                                                       generator=gen).y,
        "nami torchsde (grid)": lambda: grid.integrate_sde(drift, diffusion, x, 1.0, T_END, time_shape=lead,
                                                           generator=gen).y,
        "nami torchsde (interval)": lambda: interval.integrate_sde(drift, diffusion, x, 1.0, T_END,
                                                                   time_shape=lead, generator=gen).y,
        "torchsde default": torchsde_default,
    }


def median_times(runs: Dict[str, Callable[[], Tensor]], rounds: int) -> Dict[str, List[float]]:
    names = list(runs)
    samples: Dict[str, List[float]] = {n: [] for n in names}
    for fn in runs.values():  # warm-up
        fn()
    for r in range(rounds):
        for n in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            runs[n]()
            samples[n].append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(BATCH, DIM)
    mlp = MLPScore().eval()
    scores = {"x * -1.0": lambda x, t: x * -1.0, "MLP 64x64": lambda x, t: mlp(x, t)}
    rows = []
    with torch.inference_mode():
        for score_name, score in scores.items():
            drift, diffusion = make_sde(score)
            runs = contenders(drift, diffusion, x)
            for name, run in runs.items():  # sanity: finite, same scale
                y = run()
                assert torch.isfinite(y).all() and y.shape == x.shape, name
            samples = median_times(runs, args.rounds)
            base = statistics.median(samples["hand EM"])
            for name, s in samples.items():
                med = statistics.median(s)
                q = statistics.quantiles(s, n=4)
                rows.append({"score": score_name, "contender": name, "ms": round(1e3 * med, 3),
                             "iqr_ms": round(1e3 * (q[2] - q[0]), 3), "us_per_step": round(1e6 * med / STEPS, 1),
                             "ratio_to_hand": round(med / base, 3)})
    print(f"Reverse-SDE Euler–Maruyama, {STEPS} steps, batch {BATCH}, {DIM}-D, float32, "
          f"{args.threads} thread(s), median of {args.rounds} rounds\n")
    print("| score model | contender | median (ms) | IQR (ms) | µs/step | ratio vs hand EM |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['score']} | {r['contender']} | {r['ms']:.2f} | {r['iqr_ms']:.2f} | {r['us_per_step']:.1f} | "
              f"{r['ratio_to_hand']:.2f} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "torch": torch.__version__, "torchsde": torchsde.__version__, "python": sys.version.split()[0],
        "machine": platform.machine(), "threads": args.threads, "rounds": args.rounds, "steps": STEPS,
        "batch": BATCH, "dim": DIM, "rows": rows,
    }, indent=2))
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
