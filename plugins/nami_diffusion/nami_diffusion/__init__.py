"""nami-diffusion: noise schedules, the Diffusion process, parameterisations, samplers and SDE processes.

Importing this package registers nothing by itself: the nami registry discovers it through its
entry point (:mod:`nami_diffusion.plugin`) on first use, e.g. ``nami.VPSchedule``.
"""

from .grids import noise_levels
from .losses import EDMPrecond, dsm_loss, edm_precond_coefs
from .parameterization import PARAMETERIZATIONS, convert, from_x0_eps, to_x0_eps
from .process import Diffusion, DiffusionProcess
from .samplers import DDIM, DPMSolverPP, EDMHeun
from .schedules import DiffusionSchedule, EDMSchedule, VESchedule, VPSchedule
from .sdes import (
    ForwardDiffusionSDE,
    GridBrownian,
    ReverseDiffusionSDE,
    TorchSDEEuler,
    TorchSDEMilstein,
    TorchSDEReversibleHeun,
    TorchSDESolver,
    TorchSDESRK,
)
from .wrappers import ConvertPrediction, DriftFromVelocityScore, MirrorVelocityFromScore, ScoreFromNoise

__version__ = "0.1.0"
__all__ = [
    "__version__",
    "PARAMETERIZATIONS",
    "ConvertPrediction",
    "DDIM",
    "DPMSolverPP",
    "Diffusion",
    "DiffusionProcess",
    "DiffusionSchedule",
    "DriftFromVelocityScore",
    "EDMHeun",
    "EDMPrecond",
    "EDMSchedule",
    "ForwardDiffusionSDE",
    "GridBrownian",
    "MirrorVelocityFromScore",
    "ReverseDiffusionSDE",
    "ScoreFromNoise",
    "TorchSDEEuler",
    "TorchSDEMilstein",
    "TorchSDEReversibleHeun",
    "TorchSDESRK",
    "TorchSDESolver",
    "VESchedule",
    "VPSchedule",
    "convert",
    "dsm_loss",
    "edm_precond_coefs",
    "from_x0_eps",
    "noise_levels",
    "to_x0_eps",
]
