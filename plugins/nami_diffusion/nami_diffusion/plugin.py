"""Entry point of nami-diffusion: registers its components with the nami registry.

Declared in ``pyproject.toml`` as ``[project.entry-points.nami] diffusion = "nami_diffusion.plugin"``.
"""

from __future__ import annotations

from nami_core.hookspecs import hookimpl

from .losses import EDMPrecond, dsm_loss
from .process import Diffusion
from .samplers import DDIM, DPMSolverPP, EDMHeun
from .schedules import EDMSchedule, VESchedule, VPSchedule
from .sdes import (
    ForwardDiffusionSDE,
    ReverseDiffusionSDE,
    TorchSDEEuler,
    TorchSDEMilstein,
    TorchSDEReversibleHeun,
    TorchSDESolver,
    TorchSDESRK,
)
from .wrappers import ConvertPrediction, DriftFromVelocityScore, MirrorVelocityFromScore, ScoreFromNoise

__all__ = ["nami_register", "COMPONENTS"]

#: ``(kind, name, factory)`` of every registered component.
COMPONENTS = (
    ("schedule", "vp", VPSchedule),
    ("schedule", "ve", VESchedule),
    ("schedule", "edm", EDMSchedule),
    ("sampler", "ddim", DDIM),
    ("sampler", "dpm_solver_pp", DPMSolverPP),
    ("sampler", "edm_heun", EDMHeun),
    ("process", "diffusion", Diffusion),
    ("sde", "forward_diffusion", ForwardDiffusionSDE),
    ("sde", "reverse_diffusion", ReverseDiffusionSDE),
    ("solver", "torchsde", TorchSDESolver),
    ("solver", "torchsde_euler", TorchSDEEuler),
    ("solver", "torchsde_milstein", TorchSDEMilstein),
    ("solver", "torchsde_srk", TorchSDESRK),
    ("solver", "torchsde_reversible_heun", TorchSDEReversibleHeun),
    ("wrapper", "score_from_noise", ScoreFromNoise),
    ("wrapper", "drift_from_velocity_score", DriftFromVelocityScore),
    ("wrapper", "mirror_velocity_from_score", MirrorVelocityFromScore),
    ("wrapper", "convert_prediction", ConvertPrediction),
    ("wrapper", "edm_precond", EDMPrecond),
    ("function", "dsm_loss", dsm_loss),
)


@hookimpl
def nami_register(register):  # type: ignore[no-untyped-def]
    """Register schedules, samplers, the Diffusion process, SDEs, torchsde solvers, wrappers and the DSM loss."""
    for kind, name, factory in COMPONENTS:
        register(kind, name, factory)
