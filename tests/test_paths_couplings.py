"""nami_paths.couplings: OT is an optimal permutation, Sinkhorn's plan has uniform marginals,
class-aware coupling never pairs across classes; devices and dtypes are preserved."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nami
from nami_paths import (
    ClassConditionalCoupling,
    IndependentCoupling,
    OTCoupling,
    SinkhornCoupling,
    squared_cost,
)

scipy_opt = pytest.importorskip("scipy.optimize")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _cost(x0, x1):
    return float((x0 - x1).reshape(x0.shape[0], -1).square().sum())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ot_is_the_optimal_permutation(device, dtype):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(64, 3, 2, generator=g).to(device, dtype)
    x1 = torch.randn(64, 3, 2, generator=g).to(device, dtype)
    ot = OTCoupling()
    perm = ot.permutation(x0, x1)
    assert perm.device == x1.device and perm.dtype == torch.long
    assert torch.equal(perm.sort().values.cpu(), torch.arange(64))
    y0, y1 = ot.pair(x0, x1)
    assert y0 is x0 and y1.device == x1.device and y1.dtype == dtype
    assert torch.equal(y1, x1[perm])
    c = ((x0.reshape(64, 1, -1) - x1.reshape(1, 64, -1)) ** 2).sum(-1).double().cpu().numpy()
    rows, cols = scipy_opt.linear_sum_assignment(c)
    best = float(c[rows, cols].sum())
    assert _cost(x0.double(), y1.double()) <= _cost(x0.double(), x1.double()) + 1e-9
    assert abs(_cost(x0.double(), y1.double()) - best) < 1e-6 * best


def test_ot_small_and_bad_inputs():
    x = torch.randn(1, 2)
    assert torch.equal(OTCoupling().pair(x, x)[1], x)
    with pytest.raises(ValueError, match="one shape"):
        OTCoupling().pair(torch.randn(3, 2), torch.randn(4, 2))


def test_ot_keeps_the_graph_of_x1():
    x0, x1 = torch.randn(8, 2), torch.randn(8, 2, requires_grad=True)
    _, y1 = OTCoupling().pair(x0, x1)
    y1.sum().backward()
    assert torch.equal(x1.grad, torch.ones(8, 2))


@pytest.mark.parametrize("device", DEVICES)
def test_sinkhorn_plan_marginals(device):
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(100, 2, generator=g, dtype=torch.float64).to(device)
    x1 = torch.randn(100, 2, generator=g, dtype=torch.float64).to(device)
    u = torch.full((100,), 1 / 100, dtype=torch.float64, device=device)
    for reg in (0.3, 1.0):
        plan = SinkhornCoupling(reg=reg, iters=400, tol=1e-12).plan(x0, x1)
        assert plan.device == x0.device and plan.dtype == torch.float64
        assert torch.allclose(plan.sum(0), u, atol=1e-12)
        assert torch.allclose(plan.sum(1), u, atol=1e-10)
    # the defaults (reg 0.1, 200 rounds): columns exact, rows within 1e-3 in L1
    plan = SinkhornCoupling().plan(x0, x1)
    assert torch.allclose(plan.sum(0), u, atol=1e-12)
    assert float((plan.sum(1) - u).abs().sum()) < 1e-3


def _log_domain_sinkhorn(x0, x1, reg, iters):
    """Reference: plain log-domain Sinkhorn, ``iters`` rounds."""
    n = x0.shape[0]
    logk = -squared_cost(x0, x1) / reg
    la = -np.log(n)
    f = torch.zeros(n, dtype=x0.dtype)
    g = torch.zeros(n, dtype=x0.dtype)
    for _ in range(iters):
        f = la - torch.logsumexp(logk + g[None], 1)
        g = la - torch.logsumexp(logk + f[:, None], 0)
    return (logk + f[:, None] + g[None]).exp()


@pytest.mark.parametrize("dtype,reg,underflow", [
    (torch.float64, 1e-3, False), (torch.float64, 0.1, False), (torch.float32, 0.1, False),
    (torch.float64, 0.1, True),  # every kernel entry dropped: each block falls back to the log domain
])
def test_sinkhorn_scaling_rounds_equal_log_domain_rounds(dtype, reg, underflow, monkeypatch):
    import nami_paths.couplings as couplings

    if underflow:
        monkeypatch.setattr(couplings, "_kernel_floor", lambda dtype: float("inf"))
    g = torch.Generator().manual_seed(7)
    x0 = torch.randn(64, 2, generator=g, dtype=dtype)
    x1 = torch.randn(64, 2, generator=g, dtype=dtype)
    for iters in (1, 13, 60):
        plan = SinkhornCoupling(reg=reg, iters=iters, tol=1e-30).plan(x0, x1)
        ref = _log_domain_sinkhorn(x0, x1, reg, iters)
        tol = 1e-12 if dtype == torch.float64 else 1e-5
        assert torch.isfinite(plan).all()
        assert float((plan - ref).abs().sum()) < tol


def test_sinkhorn_entropic_optimality_and_limits():
    g = torch.Generator().manual_seed(2)
    x0, x1 = torch.randn(30, 2, generator=g, dtype=torch.float64), torch.randn(30, 2, generator=g, dtype=torch.float64)
    cost = squared_cost(x0, x1)
    # the plan has the Gibbs form pi = diag(a) K diag(b): log pi + C/eps is a sum of two potentials
    eps = 0.3
    lp = SinkhornCoupling(reg=eps, iters=500, tol=1e-12).log_plan(x0, x1) + cost / eps
    f = lp[:, :1] - lp[:1, :1]
    assert torch.allclose(lp, f + lp[:1, :], atol=1e-8)
    # small regularisation: argmax is the exact OT permutation
    perm = OTCoupling().permutation(x0, x1)
    arg = SinkhornCoupling(reg=1e-2, iters=1000, mode="argmax").indices(x0, x1)
    assert torch.equal(arg, perm)
    # large regularisation: nearly the independent plan
    plan = SinkhornCoupling(reg=1e4).plan(x0, x1)
    assert torch.allclose(plan, torch.full_like(plan, 1 / 900), rtol=1e-2)


def test_sinkhorn_sampling_is_reproducible_and_float32_ok():
    g = torch.Generator().manual_seed(3)
    x0, x1 = torch.randn(50, 2, generator=g), torch.randn(50, 2, generator=g)
    sk = SinkhornCoupling(reg=0.2, iters=100)
    a = sk.pair(x0, x1, generator=torch.Generator().manual_seed(0))[1]
    b = sk.pair(x0, x1, generator=torch.Generator().manual_seed(0))[1]
    assert torch.equal(a, b) and a.dtype == torch.float32
    assert torch.isfinite(sk.plan(x0, x1)).all()
    # rows follow the plan: paired cost well below the independent pairing
    assert _cost(x0, a) < 0.5 * _cost(x0, x1)


@pytest.mark.parametrize("base", [OTCoupling(), SinkhornCoupling(reg=0.1), IndependentCoupling(), "ot", "sinkhorn"])
@pytest.mark.parametrize("as_onehot", [False, True])
def test_class_conditional_never_pairs_across_classes(base, as_onehot):
    g = torch.Generator().manual_seed(4)
    n = 60
    labels = torch.randint(0, 4, (n,), generator=g)
    x0 = torch.randn(n, 2, generator=g) + 3 * labels[:, None]
    # noise tagged with the class of its slot in the last feature, far from everything else
    x1 = torch.cat([torch.randn(n, 2, generator=g), 1000.0 * labels[:, None].float()], 1)
    x0 = torch.cat([x0, 1000.0 * labels[:, None].float()], 1)
    c = torch.nn.functional.one_hot(labels, 4).float() if as_onehot else labels
    y0, y1 = ClassConditionalCoupling(base=base).pair(x0, x1, c, generator=torch.Generator().manual_seed(0))
    assert y0 is x0
    assert torch.equal(y1[:, 2], x0[:, 2])
    # each paired noise vector is one of the noise vectors of the same class
    for k in range(4):
        rows = (labels == k).nonzero().squeeze(1)
        pool = x1[rows]
        assert all(any(torch.equal(r, p) for p in pool) for r in y1[rows])


def test_class_conditional_ot_is_optimal_within_classes():
    g = torch.Generator().manual_seed(5)
    labels = torch.tensor([0, 1] * 20)
    x0, x1 = torch.randn(40, 2, generator=g, dtype=torch.float64), torch.randn(40, 2, generator=g, dtype=torch.float64)
    _, y1 = ClassConditionalCoupling().pair(x0, x1, labels)
    for k in (0, 1):
        m = labels == k
        best = OTCoupling().pair(x0[m], x1[m])[1]
        assert abs(_cost(x0[m], y1[m]) - _cost(x0[m], best)) < 1e-9
    assert torch.equal(ClassConditionalCoupling().pair(x0, x1)[1], OTCoupling().pair(x0, x1)[1])
    with pytest.raises(ValueError, match="c must"):
        ClassConditionalCoupling().pair(x0, x1, torch.zeros(39))
    with pytest.raises(TypeError, match="coupling"):
        ClassConditionalCoupling(base=3)


def test_squared_cost_matches_direct_formula():
    g = torch.Generator().manual_seed(6)
    a, b = torch.randn(7, 4, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
    direct = ((a[:, None] - b[None]) ** 2).sum(-1)
    assert torch.allclose(squared_cost(a, b), direct, atol=1e-12)
    assert np.all(squared_cost(a, a).diagonal().numpy() >= 0)


def test_registered_couplings_selectable_by_name():
    names = {c.name for c in nami.components("coupling")}
    assert {"independent", "ot", "sinkhorn", "class_conditional"} <= names
    x0, x1 = torch.randn(16, 2), torch.randn(16, 2)
    for name in sorted(names):
        coupling = nami.build("coupling", name)
        y0, y1 = coupling.pair(x0, x1, None, generator=torch.Generator().manual_seed(0))
        assert y0.shape == x0.shape and y1.shape == x1.shape
    assert isinstance(nami.build("coupling", "exact_ot"), OTCoupling)
    assert nami.build("coupling", "sinkhorn", reg=0.5, iters=10).reg == 0.5
    with pytest.raises(ValueError, match="reg"):
        SinkhornCoupling(reg=0.0)
    with pytest.raises(ValueError, match="mode"):
        SinkhornCoupling(mode="best")
