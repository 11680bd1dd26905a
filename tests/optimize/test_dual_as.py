"""The dual active-set solver (``DUALAS-direct``) on the full desk problem against the CVXPY
reference: random full problems (seeded loops, warm re-solves with new alpha and holdings)
and the real S&P 500 universe with a PCA factor model."""

from __future__ import annotations

from pathlib import Path

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
from keel.optimize.dual_as import DualActiveSet
from keel.optimize.fastqp import ClarabelDirect
from keel.optimize.inputs import PortfolioInputs
from keel.optimize.mean_variance import MeanVariance
from keel.risk.base import FactorCovariance

PRICES = Path("daily/sp500_all_stocks_5yr/all_stocks_5yr.csv.gz")


def _full(rng: np.random.Generator, n: int) -> list:
    cons = [Budget(), LongOnly(), WeightBounds(upper=float(rng.choice([0.05, 0.1, 0.2])))]
    if rng.random() < 0.8:
        cons.append(Turnover(max_total=float(rng.uniform(0.2, 1.0))))
    if rng.random() < 0.7:
        cons.append(SectorCaps(long=float(rng.uniform(0.35, 0.6))))
    if rng.random() < 0.6:
        cons.append(BetaNeutral(tolerance=float(rng.uniform(0.05, 0.3)), target=1.0))
    if rng.random() < 0.6:
        cons.append(Liquidity(max_trade_adv=float(rng.uniform(0.05, 0.5))))
    if rng.random() < 0.5:
        cons.append(FactorExposureBounds(lower=-1.0, upper=1.5))
    return cons


def _check(got, want, tag) -> None:
    # the reference is CVXPY + Clarabel at its tight tolerances: keel must match it to 1e-7
    # relative utility and is never worse by more than that
    assert got.objective == pytest.approx(want.objective, rel=1e-7, abs=1e-12), tag
    assert got.max_violation <= 1e-8, tag


@pytest.mark.parametrize("seed", range(10))
def test_full_problem_matches_cvxpy(h, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(25, 160))
    inp = h.make_inputs(n, int(rng.integers(2, 6)), seed=seed, current=True).with_(
        adv_weight=rng.uniform(0.05, 1.0, n))
    cons = _full(rng, n)
    kw = dict(constraints=cons, risk_aversion=float(rng.uniform(1, 30)),
              costs=[h.LinearCost(float(rng.uniform(0.0, 20.0)))])
    das = DualActiveSet()
    fast = MeanVariance(**kw, direct=[das, ClarabelDirect()])
    ref = MeanVariance(**kw, direct=[])
    solved = 0
    for step in range(5):
        a, b = fast.solve(inp), ref.solve(inp)
        _check(a, b, (seed, step))
        solved += a.solver == das.name
        if a.solver != das.name:  # the fallback says why
            assert a.fallback_trail[0].solver == das.name
            assert a.fallback_trail[0].outcome != "ok"
        # a new day: alpha drifts, holdings are yesterday's answer
        inp = inp.with_(alpha=inp.alpha + rng.normal(0, 3e-4, n),
                        current=a.weights.to_numpy())
    assert solved >= 3, seed  # warm re-solves are the fast path's to settle


def test_answer_is_verified_and_duals_are_numbers(h) -> None:
    inp = h.make_inputs(80, 4, seed=3, current=True).with_(adv_weight=np.full(80, 0.3))
    cons = [Budget(), LongOnly(), WeightBounds(upper=0.05), Turnover(max_total=0.4),
            SectorCaps(long=0.4), BetaNeutral(0.1, 1.0), Liquidity(max_trade_adv=0.2),
            FactorExposureBounds(lower=-0.5, upper=1.2)]
    mv = MeanVariance(constraints=cons, risk_aversion=5.0, costs=[h.LinearCost(5.0)])
    ref = MeanVariance(constraints=cons, risk_aversion=5.0, costs=[h.LinearCost(5.0)],
                       direct=[])
    got, want = mv.solve(inp), ref.solve(inp)
    assert got.solver == "DUALAS-direct"
    _check(got, want, "first")
    assert {x.name for x in got.binding} == {x.name for x in want.binding}
    assert all(np.isfinite(x.dual) for x in got.binding)


def test_steps_aside_without_a_factor_model(h) -> None:
    inp = h.make_inputs(30, 3, seed=1, current=True)
    fc = inp.risk
    assert isinstance(fc, FactorCovariance)
    dense = inp.with_(risk=fc.covariance())
    cons = [Budget(), LongOnly(), Turnover(max_total=0.3)]
    das = DualActiveSet()
    res = MeanVariance(constraints=cons, risk_aversion=5.0, direct=[das, ClarabelDirect()]
                       ).solve(dense)
    assert res.solver == "CLARABEL-direct"
    assert [a.solver for a in res.fallback_trail] == ["CLARABEL-direct"]


def test_iteration_cap_falls_back_to_clarabel_with_the_reason(h) -> None:
    inp = h.make_inputs(60, 3, seed=2, current=True)
    cons = [Budget(), LongOnly(), WeightBounds(upper=0.05), Turnover(max_total=0.3),
            SectorCaps(long=0.4)]
    das = DualActiveSet(max_iter=1)
    res = MeanVariance(constraints=cons, risk_aversion=5.0, costs=[h.LinearCost(5.0)],
                       direct=[das, ClarabelDirect()]).solve(inp)
    assert res.solver == "CLARABEL-direct"
    first = res.fallback_trail[0]
    assert first.solver == "DUALAS-direct" and first.outcome == "not_solved"
    assert first.message == "max_iter"


@pytest.fixture(scope="module")
def sp500_factor(shared_data: Path) -> FactorCovariance:
    raw = pd.read_csv(shared_data / PRICES, usecols=["date", "Name", "close"])
    px = raw.pivot_table(index="date", columns="Name", values="close").iloc[-253:]
    r = px.pct_change().iloc[1:].dropna(axis=1)
    x = r.to_numpy() - r.to_numpy().mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    k = 15
    b = vt[:k].T * np.sqrt(252)
    f = np.diag(s[:k] ** 2 / 251) / 252
    resid = x - (x @ vt[:k].T) @ vt[:k]
    d = np.maximum(resid.var(axis=0, ddof=1), 1e-8)
    return FactorCovariance(pd.Index(r.columns), pd.Index([f"pc{i}" for i in range(k)]),
                            b, f, d)


@pytest.mark.slow
def test_sp500_desk_problem_matches_cvxpy(h, sp500_factor: FactorCovariance) -> None:
    """Long-only + 3% cap + 50% turnover + 30% sector caps (+ L1 cost) on the real S&P 500
    universe, re-solved warm over ten days of drifting alpha."""
    fc = sp500_factor
    n = fc.n_assets
    rng = np.random.default_rng(0)
    sym = fc.symbols
    sectors = pd.Series([f"sec{i % 11}" for i in range(n)], index=sym)
    ctx = TradeContext(symbols=sym, prices=np.full(n, 50.0), adv_notional=np.full(n, 1e7),
                       volatility=np.full(n, 0.02), spreads=np.full(n, 1e-3), nav=1e8)
    alpha = rng.normal(0, 1e-3, n)
    inp = PortfolioInputs.build(pd.Series(alpha, index=sym), pd.Series(1.0 / n, index=sym),
                                risk=fc, trade_context=ctx, sectors=sectors)
    cons = [Budget(), LongOnly(), WeightBounds(upper=0.03), Turnover(max_total=0.5),
            SectorCaps(long=0.3)]
    kw = dict(constraints=cons, risk_aversion=5.0, costs=[h.LinearCost(5.0)])
    fast, ref = MeanVariance(**kw), MeanVariance(**kw, direct=[])
    solved = 0
    for day in range(10):
        a, b = fast.solve(inp), ref.solve(inp)
        _check(a, b, day)
        solved += a.solver == "DUALAS-direct"
        alpha = 0.9 * alpha + rng.normal(0, 4e-4, n)
        inp = inp.with_(alpha=alpha, current=a.weights.to_numpy())
    assert solved >= 8
