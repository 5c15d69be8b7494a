"""Minibatch OT coupling vs independent pairing: straightness and few-step sample quality.

For each 2-D toy data set and each coupling (``independent``, exact ``ot``, entropic
``sinkhorn``), the script trains the same small velocity field (``nami.VelocityField(2,
hidden=(64, 64))``, Adam, constant learning rate, batch 256, linear path, identical seeds
for data, noise, times and initial weights) with ``fm_loss`` on pairs reordered by the
coupling, then measures:

* **straightness** (Liu et al. 2023): along the learned ODE trajectory from noise
  :math:`X_1` to :math:`X_0` (RK4, 100 steps),

  .. math:: S = \\mathbb E \\int_0^1 \\lVert (X_1 - X_0) - u_\\theta(X_t, t)\\rVert^2 \\, dt ,

  which is 0 exactly when every trajectory is a straight line traversed at constant
  speed; reported also relative to :math:`\\mathbb E\\lVert X_1 - X_0\\rVert^2`;
* **sample quality** at 2, 4 and 8 Euler steps and with RK4 at 100 steps (a converged
  reference): the squared energy distance (U-statistic, ``nami_core.metrics``) between 4000
  samples and 4000 held-out data points; the same statistic between two independent
  held-out sets is the noise floor;
* the mean pairing cost :math:`\\mathbb E\\lVert x_0 - x_1\\rVert^2` of a training batch.

Run (about 2-3 minutes on one core)::

    python benchmarks/bench_ot_coupling.py    # writes benchmarks/results/ot_coupling.{json,md}
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any, Dict, List

import torch

import nami
from nami_core.metrics import energy_distance

RESULTS = Path(__file__).resolve().parent / "results"
COUPLINGS = {
    "independent": {},
    "ot": {},
    "sinkhorn": {"reg": 0.1},
}
DATASETS = {"gaussian_mixture": {}, "checkerboard": {}}
EULER_STEPS = (2, 4, 8)


def train(dataset: Any, coupling: Any, steps: int, seed: int, lr: float) -> Dict[str, Any]:
    torch.manual_seed(seed)
    field = nami.VelocityField(2, hidden=(64, 64))
    opt = torch.optim.Adam(field.parameters(), lr=lr)
    g_data = torch.Generator().manual_seed(seed + 1)
    g_noise = torch.Generator().manual_seed(seed + 2)
    g_pair = torch.Generator().manual_seed(seed + 3)
    g_time = torch.Generator().manual_seed(seed + 4)
    pair_cost, t0 = 0.0, time.perf_counter()
    for step in range(steps):
        x0 = dataset.sample(256, generator=g_data)
        x1 = torch.randn(256, 2, generator=g_noise)
        x0, x1 = coupling.pair(x0, x1, generator=g_pair)
        if step >= steps - 100:
            pair_cost += float((x0 - x1).square().sum(1).mean()) / 100
        loss = nami.fm_loss(field, x0, x1, generator=g_time)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    field.eval()
    return {"field": field, "train_seconds": time.perf_counter() - t0, "pair_cost": pair_cost,
            "final_loss": float(loss)}


@torch.no_grad()
def straightness(field: Any, z: torch.Tensor) -> Dict[str, float]:
    fm = nami.FlowMatching(field, nami.StandardNormal((2,)), nami.build("solver", "rk4", steps=100))
    ts, xs = fm().trajectory(z=z)  # ts from 1 to 0, xs (K, n, 2)
    disp = xs[0] - xs[-1]  # X_1 - X_0: dx/dt of a straight constant-speed path
    u = torch.stack([field(x, t.expand(x.shape[0])) for t, x in zip(ts, xs)])
    dev = (u - disp).square().sum(-1).mean(-1)  # (K,)
    s = float(torch.trapezoid(dev.flip(0), ts.flip(0)))
    return {"S": s, "S_rel": s / float(disp.square().sum(-1).mean())}


@torch.no_grad()
def quality(field: Any, z: torch.Tensor, held_out: torch.Tensor) -> Dict[str, float]:
    out = {}
    for k in EULER_STEPS:
        fm = nami.FlowMatching(field, nami.StandardNormal((2,)), nami.Euler(steps=k))
        out[f"euler_{k}"] = energy_distance(fm().decode(z), held_out)
    fm = nami.FlowMatching(field, nami.StandardNormal((2,)), nami.build("solver", "rk4", steps=100))
    out["rk4_100"] = energy_distance(fm().decode(z), held_out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--eval", type=int, default=4000, help="samples for the energy distance")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows: List[Dict[str, Any]] = []
    floors: Dict[str, float] = {}
    start = time.perf_counter()
    for ds_name, ds_params in DATASETS.items():
        dataset = nami.build("dataset", ds_name, **ds_params)
        g_eval = torch.Generator().manual_seed(args.seed + 100)
        held_out = dataset.sample(args.eval, generator=g_eval)
        floors[ds_name] = energy_distance(dataset.sample(args.eval, generator=g_eval), held_out)
        z = torch.randn(args.eval, 2, generator=g_eval)
        for c_name, c_params in COUPLINGS.items():
            coupling = nami.build("coupling", c_name, **c_params)
            run = train(dataset, coupling, args.steps, args.seed, args.lr)
            row = {"dataset": ds_name, "coupling": repr(coupling), "name": c_name,
                   "train_seconds": run["train_seconds"], "pair_cost": run["pair_cost"],
                   "final_loss": run["final_loss"]}
            row.update(straightness(run["field"], z[:1000]))
            row.update(quality(run["field"], z, held_out))
            rows.append(row)
            print(f"{ds_name:>16} {c_name:>11}: S={row['S']:.4f} E2={row['euler_2']:.4f} "
                  f"E8={row['euler_8']:.4f} ({row['train_seconds']:.0f}s)", flush=True)
    result = {
        "setup": {"steps": args.steps, "batch": 256, "lr": args.lr, "seed": args.seed, "eval": args.eval,
                  "field": "VelocityField(2, hidden=(64, 64))", "threads": args.threads,
                  "torch": torch.__version__, "machine": platform.machine(),
                  "wall_seconds": time.perf_counter() - start},
        "noise_floor_energy_distance": floors,
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ot_coupling.json").write_text(json.dumps(result, indent=2))
    lines = [
        "| data | coupling | pair cost E‖x0−x1‖² | straightness S | S / E‖X1−X0‖² | "
        "energy dist. Euler 2 | Euler 4 | Euler 8 | RK4 100 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['name']} | {r['pair_cost']:.3f} | {r['S']:.4f} | {r['S_rel']:.4f} | "
            f"{r['euler_2']:.4f} | {r['euler_4']:.4f} | {r['euler_8']:.4f} | {r['rk4_100']:.4f} |"
        )
    lines.append("")
    lines.append("Noise floor (energy distance between two held-out sets): "
                 + ", ".join(f"{k} {v:.4f}" for k, v in floors.items()))
    table = "\n".join(lines)
    (RESULTS / "ot_coupling.md").write_text(table + "\n")
    print(table)
    print(f"\nwrote {RESULTS / 'ot_coupling.json'} in {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
