"""Multi-period optimization: H = 1 is the single-period answer, an unconstrained quadratic plan
equals its first-order conditions solved by NumPy, the plan beats feasible alternatives on the
same objective, constraints hold in every period, and a rolled window re-solves without a
recompile."""

from __future__ import annotations

from dataclasses import replace

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest

from keel.costs.base import CostModel, TradeContext
from keel.errors import ValidationError
from keel.optimize.constraints import Budget, LongOnly, Turnover, WeightBounds
from keel.optimize.engine import ConvexPortfolioProblem
from keel.optimize.inputs import PortfolioInputs
from keel.optimize.multi_period import MultiPeriod
from keel.optimize.terms import Alpha, Risk, TransactionCost


class QuadraticCost(CostModel):
    """``kappa * t^2`` per name, t the trade in NAV units (gives a closed-form MPO)."""

    name = "quadratic"

    def __init__(self, kappa: float) -> None:
        self.kappa = kappa

    def cost_array(self, trades_notional: np.ndarray, ctx: TradeContext) -> np.ndarray:
        t = trades_notional / ctx.nav
        return self.kappa * t * t * ctx.nav

    def expr(self, trade_weights: cp.Expression, ctx: TradeContext) -> cp.Expression:
        return self.kappa * cp.sum_squares(trade_weights)


def _plan(h, horizon: int, *, decay: float = 0.7, seed: int = 0) -> list[PortfolioInputs]:
    """Period k's alpha forecast decays by ``decay**k``; everything else as period 1."""
    base = h.make_inputs(30, 3, seed=seed, current=True)
    return [replace(base, alpha=base.alpha * decay**k) for k in range(horizon)]


def test_one_period_is_the_single_period_problem(h) -> None:
    plan = _plan(h, 1)
    terms = [Alpha(), Risk(5.0), TransactionCost(h.LinearCost(5.0)),
             TransactionCost(h.PowerCost(1.0))]
    cons = [Budget(), LongOnly(), WeightBounds(upper=0.1), Turnover(0.5)]
    mpo = MultiPeriod(terms, cons, horizon=1, solvers=["CLARABEL"]).solve(plan)
    spo = ConvexPortfolioProblem(terms, cons, solvers=["CLARABEL"]).solve(plan[0])
    np.testing.assert_allclose(mpo.first.weights.to_numpy(), spo.weights.to_numpy(), atol=1e-8)
    assert mpo.first.objective == pytest.approx(spo.objective, rel=1e-9, abs=1e-12)
    assert mpo.plan.shape == (1, 30)


def test_unconstrained_quadratic_plan_matches_its_first_order_conditions(h) -> None:
    n, horizon, gamma, kappa = 4, 5, 3.0, 2.0
    rng = np.random.default_rng(1)
    sym = pd.Index([f"A{i}" for i in range(n)])
    var = rng.uniform(1e-4, 4e-4, n)
    cov = pd.DataFrame(np.diag(var), index=sym, columns=sym)
    w0 = rng.uniform(0, 0.3, n)
    alphas = rng.normal(0, 1e-3, (horizon, n))
    ctx = TradeContext(symbols=sym, prices=np.full(n, 50.0), adv_notional=np.full(n, 1e8),
                       volatility=np.full(n, 0.02), spreads=np.full(n, 1e-4), nav=1e6)
    plan = [PortfolioInputs.build(pd.Series(a, index=sym), pd.Series(w0, index=sym), risk=cov,
                                  trade_context=ctx) for a in alphas]
    res = MultiPeriod([Alpha(), Risk(gamma), TransactionCost(QuadraticCost(kappa))],
                      horizon=horizon, solvers=["CLARABEL"]).solve(plan)
    # per name: a_h - 2 g v w_h - 2 k (w_h - w_{h-1}) + 2 k (w_{h+1} - w_h) [h < H] = 0
    expect = np.zeros((horizon, n))
    for i in range(n):
        m = np.zeros((horizon, horizon))
        rhs = alphas[:, i].copy()
        for k in range(horizon):
            m[k, k] = 2 * gamma * var[i] + 2 * kappa + (2 * kappa if k < horizon - 1 else 0)
            if k > 0:
                m[k, k - 1] = -2 * kappa
            if k < horizon - 1:
                m[k, k + 1] = -2 * kappa
        rhs[0] += 2 * kappa * w0[i]
        expect[:, i] = np.linalg.solve(m, rhs)
    np.testing.assert_allclose(res.plan.to_numpy(), expect, atol=1e-7)
    np.testing.assert_allclose(res.trades.to_numpy()[0], expect[0] - w0, atol=1e-7)


def _plan_utility(terms, plan: list[PortfolioInputs], weights: np.ndarray) -> float:
    """Sum over periods of each term's NumPy value, period h trading from period h - 1."""
    total, prev = 0.0, plan[0].current
    for x, w in zip(plan, weights, strict=True):
        xi = replace(x, current=prev)
        total += sum(t.sign() * t.value(w, xi) for t in terms)
        prev = w
    return total


def test_plan_beats_feasible_alternatives_and_holds_every_constraint(h) -> None:
    plan = _plan(h, 4, decay=0.8, seed=3)
    terms = [Alpha(), Risk(5.0), TransactionCost(h.LinearCost(5.0)),
             TransactionCost(h.PowerCost(2.0))]
    cons = [Budget(), LongOnly(), WeightBounds(upper=0.15)]
    res = MultiPeriod(terms, cons, horizon=4, solvers=["CLARABEL"]).solve(plan)
    w = res.plan.to_numpy()
    assert np.allclose(w.sum(axis=1), 1.0, atol=1e-7)
    assert w.min() >= -1e-8 and w.max() <= 0.15 + 1e-8
    best = _plan_utility(terms, plan, w)
    assert best == pytest.approx(res.objective, rel=1e-6)
    spo = ConvexPortfolioProblem(terms, cons, solvers=["CLARABEL"]).solve(plan[0])
    for alt in (np.tile(spo.weights.to_numpy(), (4, 1)),          # trade once, hold
                np.tile(plan[0].current, (4, 1)),                  # never trade
                np.vstack([plan[0].current + (spo.weights.to_numpy() - plan[0].current)
                           * f for f in (0.25, 0.5, 0.75, 1.0)])):  # trade in quarters
        assert best >= _plan_utility(terms, plan, alt) - 1e-9


def test_rolling_window_resolves_without_recompiling(h) -> None:
    terms = [Alpha(), Risk(5.0), TransactionCost(h.LinearCost(5.0))]
    cons = [Budget(), LongOnly(), WeightBounds(upper=0.2)]
    mpo = MultiPeriod(terms, cons, horizon=3, solvers=["CLARABEL"])
    first = mpo.solve(_plan(h, 3, seed=5))
    assert any("compiled" in m for m in first.first.messages)
    rolled = _plan(h, 3, decay=0.5, seed=5)
    again = mpo.solve(rolled)
    assert not any("compiled" in m for m in again.first.messages)
    fresh = MultiPeriod(terms, cons, horizon=3, solvers=["CLARABEL"]).solve(rolled)
    np.testing.assert_allclose(again.plan.to_numpy(), fresh.plan.to_numpy(), atol=1e-8)


def test_bad_plans_are_refused(h) -> None:
    with pytest.raises(ValidationError, match="horizon"):
        MultiPeriod([Alpha()], horizon=0)
    mpo = MultiPeriod([Alpha(), Risk(1.0)], [Budget()], horizon=2)
    with pytest.raises(ValidationError, match="plan"):
        mpo.solve(_plan(h, 3))
