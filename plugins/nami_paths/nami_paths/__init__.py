"""nami-paths: probability paths, stochastic interpolants, bridges, couplings, set losses,
training-time densities and toy data sets for flow matching."""

from .bridge import BridgeLoss, BridgeSDE, BrownianBridgePath, bridge_loss, bridge_sample
from .couplings import ClassConditionalCoupling, IndependentCoupling, OTCoupling, SinkhornCoupling, squared_cost
from .datasets import Checkerboard, GaussianMixture, GaussianRing, TwoSpirals
from .gamma import DEFAULT_EPS, BrownianGamma, ScaledBrownianGamma, ZeroGamma
from .masked import masked_fm_loss, masked_sample
from .paths import AffinePath, CosinePath, LinearPath
from .stochastic import stochastic_fm_loss, stochastic_interpolant
from .time_density import LogitNormalTime, ModeTime, UniformTime

__version__ = "0.1.0"
__all__ = [
    "AffinePath",
    "BridgeLoss",
    "BridgeSDE",
    "BrownianBridgePath",
    "BrownianGamma",
    "Checkerboard",
    "ClassConditionalCoupling",
    "CosinePath",
    "DEFAULT_EPS",
    "GaussianMixture",
    "GaussianRing",
    "IndependentCoupling",
    "LinearPath",
    "LogitNormalTime",
    "ModeTime",
    "OTCoupling",
    "ScaledBrownianGamma",
    "SinkhornCoupling",
    "TwoSpirals",
    "UniformTime",
    "ZeroGamma",
    "__version__",
    "bridge_loss",
    "bridge_sample",
    "masked_fm_loss",
    "masked_sample",
    "squared_cost",
    "stochastic_fm_loss",
    "stochastic_interpolant",
]
