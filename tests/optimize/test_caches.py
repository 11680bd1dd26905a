"""Caches are keyed on content (or hold what they were built from): a dropped input whose
``id`` is recycled, or an input changed in place of another, never yields a stale answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keel.costs.base import TradeContext
from keel.optimize.constraints import (
    BetaNeutral,
    Budget,
    FactorExposureBounds,
    Liquidity,
    LongOnly,
    SectorCaps,
    Turnover,
    WeightBounds,
)
from keel.optimize.inputs import PortfolioInputs
from keel.optimize.mean_variance import MeanVariance
from keel.optimize.terms import Alpha, Risk, TransactionCost
from keel.risk.base import FactorCovariance


@pytest.mark.parametrize("count", [100, pytest.param(300, marks=pytest.mark.slow)])
def test_recycled_ids_never_reuse_a_dropped_risk_model(h, count: int) -> None:
    """The issue's scenario: hundreds of solves, each with a fresh FactorCovariance dropped
    after its solve (CPython recycles the ids); every answer equals a fresh optimizer's
    afterwards (the old id-keyed cache got 15 of 300 wrong)."""
    cons = [Budget(), LongOnly(), WeightBounds(upper=0.1), Turnover(max_total=0.5)]

    def inputs(i: int) -> PortfolioInputs:
        fc = h.make_factor(40, 3, seed=i)
        a = pd.Series(np.random.default_rng(i).normal(0, 1e-3, 40), index=fc.symbols)
        return PortfolioInputs.build(a, pd.Series(1 / 40, index=fc.symbols), risk=fc)

    mv = MeanVariance(constraints=cons, risk_aversion=5.0)
    got = [mv.solve(inputs(i)) for i in range(count)]
    ref = MeanVariance(constraints=cons, risk_aversion=5.0, direct=[])
    for i in range(0, count, 5):  # an independent (CVXPY) solve of every fifth problem
        want = ref.solve(inputs(i))
        assert got[i].objective == pytest.approx(want.objective, rel=1e-6, abs=1e-12), i
    fresh = [MeanVariance(constraints=cons, risk_aversion=5.0).solve(inputs(i))
             for i in range(count)]
    for i, (a, b) in enumerate(zip(got, fresh, strict=True)):
        assert a.objective == pytest.approx(b.objective, rel=1e-7, abs=1e-12), i
        # a stale answer was off by up to 0.07 in a weight; the optimum is flat to ~1e-5
        np.testing.assert_allclose(a.weights.to_numpy(), b.weights.to_numpy(), atol=1e-4)


def _variants(inp: PortfolioInputs, rng: np.random.Generator) -> dict[str, PortfolioInputs]:
    """``inp`` with one input changed at a time (same shapes, so only content differs)."""
    fc = inp.risk
    assert isinstance(fc, FactorCovariance)
    n, k = fc.n_assets, fc.n_factors
    tc = inp.trade_context
    assert tc is not None
    sect = np.array([["Tech", "Energy", "Health"][(i + 1) % 3] for i in range(n)], dtype=object)
    return {
        "alpha": inp.with_(alpha=rng.normal(0, 1e-3, n)),
        "current": inp.with_(current=rng.dirichlet(np.ones(n))),
        "exposures": inp.with_(risk=FactorCovariance(
            fc.symbols, fc.factors, fc.exposures + rng.normal(0, 0.5, (n, k)),
            fc.factor_covariance, fc.specific_variance)),
        "factor_covariance": inp.with_(risk=FactorCovariance(
            fc.symbols, fc.factors, fc.exposures, fc.factor_covariance * 4.0,
            fc.specific_variance)),
        "specific_variance": inp.with_(risk=FactorCovariance(
            fc.symbols, fc.factors, fc.exposures, fc.factor_covariance,
            fc.specific_variance * rng.uniform(0.2, 5.0, n))),
        "betas": inp.with_(betas=rng.uniform(0.0, 2.0, n)),
        "sectors": inp.with_(sectors=sect),
        "adv_weight": inp.with_(adv_weight=rng.uniform(0.01, 0.5, n)),
        "spreads": inp.with_(trade_context=TradeContext(
            symbols=tc.symbols, prices=tc.prices, adv_notional=tc.adv_notional,
            volatility=tc.volatility, spreads=tc.spreads * 20.0, nav=tc.nav)),
    }


@pytest.mark.parametrize("direct", ["default", "clarabel", "osqp", "cvxpy"])
def test_every_cached_path_follows_each_input(h, direct: str) -> None:
    """A warm optimizer re-solved after a change of any one input equals a fresh one."""
    from keel.optimize.fastqp import ClarabelDirect, OSQPDirect

    inp = h.make_inputs(30, 3, seed=3, current=True)
    inp = inp.with_(adv_weight=np.full(30, 0.5))
    cons = [Budget(), LongOnly(), WeightBounds(upper=0.12), Turnover(max_total=0.8),
            SectorCaps(long=0.5), BetaNeutral(tolerance=0.3, target=1.0),
            Liquidity(max_trade_adv=0.6), FactorExposureBounds(lower=-2.0, upper=2.0)]
    terms = [Alpha(), Risk(5.0), TransactionCost(h.LinearCost(5.0))]
    chosen = {"default": None, "clarabel": [ClarabelDirect()],
              "osqp": [OSQPDirect(eps_abs=1e-10, eps_rel=1e-10)], "cvxpy": []}[direct]
    warm = MeanVariance(terms=terms, constraints=cons, direct=chosen)
    first = warm.solve(inp)
    assert first.solver == {"default": "DUALAS-direct", "clarabel": "CLARABEL-direct",
                            "osqp": "OSQP-direct", "cvxpy": "CLARABEL"}[direct]
    for name, v in _variants(inp, np.random.default_rng(7)).items():
        got = warm.solve(v)
        ref = MeanVariance(terms=terms, constraints=cons, direct=[]).solve(v)
        assert got.objective == pytest.approx(ref.objective, rel=1e-6, abs=1e-10), name
        np.testing.assert_allclose(got.weights.to_numpy(), ref.weights.to_numpy(),
                                   atol=2e-5, err_msg=name)
        warm.solve(inp)  # back to the base problem, so each variant is a change from it


def test_margins_memo_follows_content(h) -> None:
    """The margins memo compares ``w`` by value and holds its inputs: a changed ``w`` (same
    object, edited in place) or other inputs give fresh margins."""
    inp = h.make_inputs(20, 2, current=True)
    mv = MeanVariance(constraints=[LongOnly(), WeightBounds(upper=0.2)])
    w = np.full(20, 0.05)
    assert mv.max_violation(w, inp) == 0.0
    w[0] = 0.5
    assert mv.max_violation(w, inp) == pytest.approx(0.3)
    other = inp.with_(alpha=np.zeros(20))
    w[0] = -0.1
    assert mv.max_violation(w, other) == pytest.approx(0.1)
