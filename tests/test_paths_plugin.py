"""nami_paths.plugin: everything is registered, loads cleanly, and is reachable by name."""

from __future__ import annotations

import attrs
import pytest

import nami
import nami_paths
from nami_paths.plugin import COMPONENTS

EXPECTED = {
    "path": {"linear", "cosine", "brownian_bridge"},
    "gamma": {"zero", "brownian", "scaled_brownian"},
    "coupling": {"independent", "ot", "sinkhorn", "class_conditional"},
    "time_density": {"uniform", "logit_normal", "mode"},
    "dataset": {"checkerboard", "gaussian_ring", "two_spirals", "gaussian_mixture"},
    "function": {"stochastic_fm_loss", "stochastic_interpolant", "bridge_loss", "bridge_sample",
                 "masked_fm_loss", "masked_sample"},
}


def test_plugin_loads_ok_and_registers_everything():
    (info,) = [p for p in nami.plugins() if p.distribution == "nami-paths"]
    assert info.status == "ok", info
    for kind, names in EXPECTED.items():
        got = {c.name for c in nami.components(kind) if c.distribution == "nami-paths"}
        assert got == names, kind


@pytest.mark.parametrize(
    "name",
    ["ZeroGamma", "BrownianGamma", "ScaledBrownianGamma", "stochastic_fm_loss", "BrownianBridgePath",
     "masked_fm_loss", "masked_sample", "OTCoupling", "SinkhornCoupling", "ClassConditionalCoupling",
     "LogitNormalTime", "Checkerboard", "GaussianRing", "bridge_loss"],
)
def test_facade_resolves_public_names(name):
    assert getattr(nami, name) is getattr(nami_paths, name)


@pytest.mark.parametrize("kind,name,factory,aliases", [c for c in COMPONENTS if attrs.has(c[2])],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_configs_rebuild_from_kind_name_params(kind, name, factory, aliases):
    obj = nami.build(kind, name)
    params = {a.name: getattr(obj, a.name) for a in attrs.fields(type(obj)) if a.init}
    again = nami.build(kind, f"nami-paths:{name}", **params)
    assert again == obj and repr(again) == repr(obj)
    assert hash(again) == hash(obj)


def test_all_is_sorted_and_complete():
    assert set(nami_paths.__all__) <= set(dir(nami_paths))
