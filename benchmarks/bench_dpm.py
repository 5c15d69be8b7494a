"""DPM-Solver++(2M) at 10 model evaluations on an exact Gaussian-mixture denoiser: error against
the exact data distribution, beside the same algorithm in diffusers at the same evaluations.

Data: a 2-D mixture of three isotropic Gaussians (weights 0.3/0.5/0.2, means (-1, 0.5), (1.5, -0.5),
(0, 2), standard deviations 0.3/0.5/0.4). For x_t = a x0 + s eps the posterior mean E[x0 | x_t] is
exact (``nami_diffusion.testing.GaussianMixtureModel``), so the only error of a sampler is its
discretisation of the probability-flow ODE. Every contender starts from the same N(0, I) noise
(the VP prior) and makes exactly 10 evaluations of the exact denoiser.

Errors, float64, 10 000 samples:

- ``ode error``: mean |x - x_ref| against the same sampler's own converged solution from the same
  noise (200 steps, same grid rule), i.e. the discretisation error of the ODE solve;
- ``SW1``: sliced 1-Wasserstein distance (256 random directions) to 10 000 exact samples of the
  mixture; ``SW1 floor`` is the same distance between two independent exact sample sets (the Monte
  Carlo noise level);
- ``mean err`` / ``cov err``: max abs error of the sample mean / covariance against the exact
  mixture moments.

Contenders: nami ``DPMSolverPP(steps=10, order=2)`` (continuous VP schedule beta in [0.1, 20],
t_end = 1e-3, final step to zero noise) with its default log-SNR-uniform grid and with the
time-uniform grid from t = 1 to 0.1 then zero noise (what diffusers' ``linspace`` timesteps give
for 10 steps), nami first order (= DDIM) for comparison, and diffusers' ``DPMSolverMultistepScheduler`` (``dpmsolver++``,
order 2, ``lower_order_final``, ``final_sigmas_type="zero"``, ``prediction_type="sample"``) on its
discrete linear-beta schedule (1000 training steps, beta 1e-4 .. 0.02 = the same VP SDE
discretised), with its default ``linspace`` timesteps and with ``use_lu_lambdas`` (log-SNR
uniform). diffusers is optional; install it for the benchmark only, without touching torch::

    pip install --no-deps --target /tmp/dfs diffusers huggingface_hub requests pyyaml ...
    PYTHONPATH=/tmp/dfs python benchmarks/bench_dpm.py      # writes benchmarks/results/dpm.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Dict, Optional

import torch
from torch import Tensor

from nami_diffusion.samplers import DPMSolverPP
from nami_diffusion.schedules import VPSchedule
from nami_diffusion.testing import GaussianMixtureModel

F64 = torch.float64
RESULTS = Path(__file__).resolve().parent / "results" / "dpm.json"
NFE = 10
REF_STEPS = 200  # the converged solve each sampler is compared with (its error is ~1e-3 of the 10-step one)


def mixture(schedule) -> GaussianMixtureModel:  # type: ignore[no-untyped-def]
    means = torch.tensor([[-1.0, 0.5], [1.5, -0.5], [0.0, 2.0]], dtype=F64)
    return GaussianMixtureModel([0.3, 0.5, 0.2], means, [0.3, 0.5, 0.4], schedule, "x0")


class _Fixed:
    """A schedule-like object with one (alpha, sigma), for diffusers' discrete noise levels."""

    def __init__(self, alpha: float, sigma: float) -> None:
        self.a, self.s = alpha, sigma

    def alpha(self, t: Tensor) -> Tensor:
        return torch.full_like(t, self.a)

    def sigma(self, t: Tensor) -> Tensor:
        return torch.full_like(t, self.s)


def sliced_w1(x: Tensor, y: Tensor, directions: Tensor) -> float:
    px, py = x @ directions.T, y @ directions.T
    return float((px.sort(0).values - py.sort(0).values).abs().mean())


def nami_sampler(steps: int, order: int, spacing: str, t_end: float = 1e-3) -> Callable[[Tensor], Tensor]:
    s = VPSchedule()
    model = mixture(s)

    def run(z: Tensor) -> Tensor:
        model.calls = 0
        sol = DPMSolverPP(steps=steps, order=order, spacing=spacing).sample_diffusion(
            model, s, z, 1.0, t_end, time_shape=z.shape[:1])
        assert model.calls == steps == sol.nfe
        return sol.y

    return run


def diffusers_sampler(steps: int, lu_lambdas: bool) -> Optional[Callable[[Tensor], Tensor]]:
    try:
        from diffusers import DPMSolverMultistepScheduler
    except Exception:  # noqa: BLE001 - optional
        return None

    def run(z: Tensor) -> Tensor:
        sched = DPMSolverMultistepScheduler(
            num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
            algorithm_type="dpmsolver++", solver_order=2, prediction_type="sample", lower_order_final=True,
            final_sigmas_type="zero", use_lu_lambdas=lu_lambdas)
        sched.set_timesteps(steps)
        acp = sched.alphas_cumprod.to(F64)
        x = z * float(sched.init_noise_sigma)
        calls = 0
        for t in sched.timesteps:
            a = float(acp[int(t)].sqrt())
            s = float((1 - acp[int(t)]).sqrt())
            model = mixture(_Fixed(a, s))
            x0 = model(x, torch.zeros(x.shape[0], dtype=F64))
            calls += 1
            x = sched.step(x0, t, x).prev_sample
        assert calls == steps
        return x

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10000)
    args = parser.parse_args()
    torch.manual_seed(0)
    n = args.samples
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, 2, generator=g, dtype=F64)
    exact_model = mixture(VPSchedule())
    exact = exact_model.sample(n, generator=g)
    exact2 = exact_model.sample(n, generator=g)
    directions = torch.randn(256, 2, generator=g, dtype=F64)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    floor = sliced_w1(exact, exact2, directions)
    mean, cov = exact_model.data_mean(), exact_model.data_cov()

    contenders: Dict[str, tuple] = {
        "nami DPM-Solver++(2M), logsnr grid": (nami_sampler(NFE, 2, "logsnr"),
                                               nami_sampler(REF_STEPS, 2, "logsnr")),
        "nami DPM-Solver++(2M), uniform t from 1 to 0.1 (= diffusers linspace)": (
            nami_sampler(NFE, 2, "uniform", t_end=0.1), nami_sampler(REF_STEPS, 2, "uniform", t_end=0.1)),
        "nami DPM-Solver++ 1st order (DDIM), logsnr grid": (nami_sampler(NFE, 1, "logsnr"),
                                                           nami_sampler(REF_STEPS, 2, "logsnr")),
    }
    for label, lu in [("diffusers DPMSolverMultistep(2M), linspace", False),
                      ("diffusers DPMSolverMultistep(2M), use_lu_lambdas", True)]:
        run = diffusers_sampler(NFE, lu)
        if run is not None:
            contenders[label] = (run, diffusers_sampler(REF_STEPS, lu))
    rows = []
    with torch.no_grad():
        for name, (run, ref_run) in contenders.items():
            x = run(z)
            ref = ref_run(z)
            rows.append({
                "contender": name, "nfe": NFE,
                "ode_error": float((x - ref).norm(dim=-1).mean()),
                "sw1": sliced_w1(x, exact, directions),
                "mean_err": float((x.mean(0) - mean).abs().max()),
                "cov_err": float((torch.cov(x.T) - cov).abs().max()),
            })
    have_diffusers = any(r["contender"].startswith("diffusers") for r in rows)
    print(f"{NFE} evaluations of an exact 2-D Gaussian-mixture denoiser, {n} samples, float64"
          f"{'' if have_diffusers else ' (diffusers not installed: its rows are skipped)'}\n")
    print(f"| contender | NFE | ODE error vs own {REF_STEPS}-step solve | SW1 to exact | mean err | cov err |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['contender']} | {r['nfe']} | {r['ode_error']:.4f} | {r['sw1']:.4f} | {r['mean_err']:.4f} | "
              f"{r['cov_err']:.4f} |")
    print(f"| exact samples vs exact samples (Monte Carlo floor) | - | - | {floor:.4f} | - | - |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    versions = {"torch": torch.__version__, "python": sys.version.split()[0]}
    try:
        import diffusers

        versions["diffusers"] = diffusers.__version__
    except Exception:  # noqa: BLE001
        pass
    RESULTS.write_text(json.dumps({**versions, "samples": n, "nfe": NFE, "sw1_floor": floor, "rows": rows},
                                  indent=2))
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
