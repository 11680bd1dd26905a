"""The direct solvers (PDAS, Clarabel, OSQP) agree with the CVXPY chain."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keel.optimize.constraints import Budget, Liquidity, LongOnly, Turnover, WeightBounds
from keel.optimize.fastqp import ClarabelDirect, OSQPDirect, PDASDirect
from keel.optimize.mean_variance import MeanVariance
from keel.optimize.piqp_direct import PIQPDirect


@pytest.mark.parametrize("seed", range(8))
def test_pdas_matches_clarabel_on_box_problems(h, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 120))
    inp = h.make_inputs(n, int(rng.integers(1, 6)), seed=seed, current=True)
    ub = pd.Series(rng.uniform(0.02, 0.3, n), index=inp.symbols)
    cons = [LongOnly(), WeightBounds(upper=ub), Turnover(max_per_name=0.2)]
    if seed % 2:
        cons.insert(0, Budget())
    if seed % 3 == 0:
        cons.append(Liquidity(max_position_adv=0.5))
        inp = inp.with_(adv_weight=rng.uniform(0.05, 1.0, n))
    gamma = float(rng.uniform(0.5, 50))
    pdas = MeanVariance(constraints=cons, risk_aversion=gamma, direct=[PDASDirect()])
    ref = MeanVariance(constraints=cons, risk_aversion=gamma, direct=[ClarabelDirect()])
    a, b = pdas.solve(inp), ref.solve(inp)
    assert a.solver == "PDAS-direct" and b.solver == "CLARABEL-direct"
    assert a.objective == pytest.approx(b.objective, rel=1e-6, abs=1e-12)
    np.testing.assert_allclose(a.weights.to_numpy(), b.weights.to_numpy(), atol=1e-5)
    assert [x.name for x in a.binding] == [x.name for x in b.binding]
    # warm re-solves from the previous active set stay exact
    for _ in range(3):
        new = inp.with_(alpha=rng.normal(0, 1e-3, n), current=a.weights.to_numpy())
        a, b = pdas.solve(new), ref.solve(new)
        assert a.objective == pytest.approx(b.objective, rel=1e-6, abs=1e-12)


def test_pdas_steps_aside_when_not_applicable(h) -> None:
    inp = h.make_inputs(30, 3, current=True)
    mv = MeanVariance(constraints=[Budget(), LongOnly(), Turnover(max_total=0.3)],
                      risk_aversion=5.0)
    res = mv.solve(inp)
    # PDAS (box + budget only) steps aside without an attempt; the dual active set takes it
    assert res.solver == "DUALAS-direct"
    assert [a.solver for a in res.fallback_trail] == ["DUALAS-direct"]


@pytest.mark.parametrize("seed", range(6))
def test_piqp_matches_cvxpy_on_the_full_problem(h, seed: int) -> None:
    """The PIQP direct solver on budget + long-only + cap + L1 cost + turnover + sector
    caps + beta band + liquidity + factor bounds: the CVXPY reference's utility to 1e-7, and
    the binding constraints' duals are numbers (not nan), as CVXPY's are."""
    from keel.optimize.constraints import (
        BetaNeutral,
        FactorExposureBounds,
        SectorCaps,
    )

    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 150))
    inp = h.make_inputs(n, 3, seed=seed, current=True).with_(
        adv_weight=rng.uniform(0.05, 1.0, n))
    cons = [Budget(), LongOnly(), WeightBounds(upper=0.05 if n > 40 else 0.1),
            Turnover(max_total=0.5), SectorCaps(long=0.45), BetaNeutral(0.2, 1.0),
            Liquidity(max_trade_adv=0.1), FactorExposureBounds(lower=-1.0, upper=1.5)]
    kw = dict(constraints=cons, risk_aversion=float(rng.uniform(1, 20)),
              costs=[h.LinearCost(5.0)])
    fast, ref = MeanVariance(**kw, direct=[PIQPDirect()]), MeanVariance(**kw, direct=[])
    for _ in range(3):
        a, b = fast.solve(inp), ref.solve(inp)
        assert a.solver == "PIQP-direct"
        assert a.objective == pytest.approx(b.objective, rel=1e-7, abs=1e-12)
        assert a.max_violation <= 1e-8
        assert {x.name for x in a.binding} == {x.name for x in b.binding}
        assert all(np.isfinite(x.dual) for x in a.binding)
        inp = inp.with_(alpha=rng.normal(0, 1e-3, n), current=a.weights.to_numpy())


def test_osqp_direct_warm_resolve(h) -> None:
    inp = h.make_inputs(40, 3, current=True)
    cons = [Budget(), LongOnly(), WeightBounds(upper=0.2)]
    mv = MeanVariance(constraints=cons, risk_aversion=5.0,
                      direct=[OSQPDirect(eps_abs=1e-9, eps_rel=1e-9)])
    ref = MeanVariance(constraints=cons, risk_aversion=5.0, direct=[])
    rng = np.random.default_rng(0)
    for _ in range(3):
        inp = inp.with_(alpha=rng.normal(0, 1e-3, inp.n))
        a, b = mv.solve(inp), ref.solve(inp)
        assert a.solver == "OSQP-direct"
        assert a.objective == pytest.approx(b.objective, rel=1e-6)
