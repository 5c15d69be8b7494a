"""Entry point of nami-paths: registers its components with the nami registry.

Kinds and bare names (all also reachable as ``nami-paths:<name>``):

* ``path``: ``linear``, ``cosine``, ``brownian_bridge``
* ``gamma``: ``zero``, ``brownian``, ``scaled_brownian``
* ``coupling``: ``independent``, ``ot`` (alias ``exact_ot``), ``sinkhorn``, ``class_conditional``
* ``time_density``: ``uniform``, ``logit_normal``, ``mode``
* ``dataset``: ``checkerboard``, ``gaussian_ring`` (alias ``eight_gaussians``), ``two_spirals``,
  ``gaussian_mixture``
* ``function``: ``stochastic_fm_loss``, ``stochastic_interpolant``, ``bridge_loss``,
  ``bridge_sample``, ``masked_fm_loss``, ``masked_sample`` (so that ``nami.<function>`` resolves)
"""

from __future__ import annotations

from typing import Any, Callable

from nami_core.hookspecs import hookimpl

from .bridge import BrownianBridgePath, bridge_loss, bridge_sample
from .couplings import ClassConditionalCoupling, IndependentCoupling, OTCoupling, SinkhornCoupling
from .datasets import Checkerboard, GaussianMixture, GaussianRing, TwoSpirals
from .gamma import BrownianGamma, ScaledBrownianGamma, ZeroGamma
from .masked import masked_fm_loss, masked_sample
from .paths import CosinePath, LinearPath
from .stochastic import stochastic_fm_loss, stochastic_interpolant
from .time_density import LogitNormalTime, ModeTime, UniformTime

#: (kind, name, factory, aliases) of every component this plugin registers.
COMPONENTS: tuple[tuple[str, str, Any, tuple[str, ...]], ...] = (
    ("path", "linear", LinearPath, ()),
    ("path", "cosine", CosinePath, ()),
    ("path", "brownian_bridge", BrownianBridgePath, ()),
    ("gamma", "zero", ZeroGamma, ()),
    ("gamma", "brownian", BrownianGamma, ()),
    ("gamma", "scaled_brownian", ScaledBrownianGamma, ()),
    ("coupling", "independent", IndependentCoupling, ()),
    ("coupling", "ot", OTCoupling, ("exact_ot",)),
    ("coupling", "sinkhorn", SinkhornCoupling, ()),
    ("coupling", "class_conditional", ClassConditionalCoupling, ()),
    ("time_density", "uniform", UniformTime, ()),
    ("time_density", "logit_normal", LogitNormalTime, ()),
    ("time_density", "mode", ModeTime, ()),
    ("dataset", "checkerboard", Checkerboard, ()),
    ("dataset", "gaussian_ring", GaussianRing, ("eight_gaussians",)),
    ("dataset", "two_spirals", TwoSpirals, ()),
    ("dataset", "gaussian_mixture", GaussianMixture, ()),
    ("function", "stochastic_fm_loss", stochastic_fm_loss, ()),
    ("function", "stochastic_interpolant", stochastic_interpolant, ()),
    ("function", "bridge_loss", bridge_loss, ()),
    ("function", "bridge_sample", bridge_sample, ()),
    ("function", "masked_fm_loss", masked_fm_loss, ()),
    ("function", "masked_sample", masked_sample, ()),
)


@hookimpl
def nami_register(register: Callable[..., Any]) -> None:
    for kind, name, factory, aliases in COMPONENTS:
        if aliases:
            register(kind, name, factory, aliases=aliases)
        else:
            register(kind, name, factory)
