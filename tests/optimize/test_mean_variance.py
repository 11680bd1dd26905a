"""MeanVariance against closed forms, a second solver, independent formulations and scipy."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from keel.errors import InfeasibleError, NonConvexError, ValidationError
from keel.optimize.constraints import (
    BetaNeutral,
    Budget,
    FactorExposureBounds,
    GrossExposure,
    Liquidity,
    LongOnly,
    MinCash,
    NetExposure,
    SectorCaps,
    TrackingError,
    Turnover,
    WeightBounds,
    unique_names,
)
from keel.optimize.fastqp import OSQPDirect
from keel.optimize.mean_variance import MeanVariance
from keel.optimize.result import OptimizationStatus
from keel.optimize.terms import Alpha, HoldingCost, Risk, TransactionCost


def long_only_capped(**kw):
    return MeanVariance(constraints=[Budget(), LongOnly(), WeightBounds(upper=0.1)],
                        risk_aversion=5.0, **kw)


def test_agrees_with_second_solvers_and_dense_formulation(h) -> None:
    inp = h.make_inputs(60, 5, seed=2, current=True)
    cost = h.LinearCost(10.0)
    cons = [Budget(), LongOnly(), WeightBounds(upper=0.1), Turnover(max_total=0.8)]
    ref = MeanVariance(constraints=cons, risk_aversion=5.0, costs=[cost]).solve(inp)
    assert ref.solver == "DUALAS-direct" and ref.status is OptimizationStatus.OPTIMAL
    for solver, rtol in (("CLARABEL", 1e-8), ("OSQP", 1e-6), ("SCS", 1e-5)):
        other = MeanVariance(constraints=cons, risk_aversion=5.0, costs=[cost],
                             solvers=[solver], direct=[]).solve(inp)
        assert other.solver == solver
        assert other.objective == pytest.approx(ref.objective, rel=rtol)
    osqp = MeanVariance(constraints=cons, risk_aversion=5.0, costs=[cost],
                        direct=[OSQPDirect(eps_abs=1e-9, eps_rel=1e-9)]).solve(inp)
    assert osqp.solver == "OSQP-direct"
    assert osqp.objective == pytest.approx(ref.objective, rel=1e-6)
    # independent dense formulation written by hand
    cov = inp.risk.covariance()
    w = cp.Variable(inp.n)
    obj = inp.alpha @ w - 5.0 * cp.quad_form(w, cov) - 1e-3 * cp.norm1(w - inp.current)
    prob = cp.Problem(cp.Maximize(obj), [cp.sum(w) == 1, w >= 0, w <= 0.1,
                                         cp.norm1(w - inp.current) <= 0.8])
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert ref.objective == pytest.approx(prob.value, rel=1e-7)
    np.testing.assert_allclose(ref.weights.to_numpy(), w.value, atol=1e-5)


def test_agrees_with_scipy_slsqp_feasible(h) -> None:
    inp = h.make_inputs(8, 2, seed=4)
    cov = inp.risk.covariance()
    a = inp.alpha * 3
    mv = MeanVariance(constraints=[Budget(), LongOnly(), WeightBounds(upper=0.3)],
                      risk_aversion=5.0)
    res = mv.solve(inp.with_(alpha=a))
    sp = minimize(lambda w: -(a @ w - 5.0 * w @ cov @ w), np.full(8, 1 / 8),
                  jac=lambda w: -(a - 10.0 * cov @ w), method="SLSQP",
                  bounds=[(0, 0.3)] * 8,
                  constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
                  options={"ftol": 1e-15, "maxiter": 1000})
    assert sp.success
    assert res.objective == pytest.approx(-sp.fun, rel=1e-7)
    np.testing.assert_allclose(res.weights.to_numpy(), sp.x, atol=1e-5)


def test_objective_split_recomputed(h) -> None:
    inp = h.make_inputs(40, 4, seed=5, current=True)
    cost = h.LinearCost(8.0) + h.PowerCost(0.5)
    hold = HoldingCost(borrow_fee=1e-4, cash_rate=2e-5, margin_rate=5e-5)
    mv = MeanVariance(terms=[Alpha(), Risk(4.0), TransactionCost(cost), hold],
                      constraints=[GrossExposure(1.6), NetExposure(-0.2, 0.9)])
    res = mv.solve(inp)
    w = res.weights.to_numpy()
    alpha = float(inp.alpha @ w)
    risk = 4.0 * float(w @ inp.risk.covariance() @ w)
    tc = inp.trade_context
    t = (w - inp.current) * tc.nav
    tcost = (8e-4 * np.abs(t).sum()
             + (0.5 * tc.volatility / np.sqrt(tc.adv_notional / tc.nav)
                * (np.abs(t) / tc.nav) ** 1.5).sum() * tc.nav) / tc.nav
    cash = 1 - w.sum()
    hcost = 1e-4 * np.maximum(-w, 0).sum() - 2e-5 * cash + 3e-5 * max(-cash, 0)
    assert res.objective_split["alpha"] == pytest.approx(alpha, rel=1e-10)
    assert res.objective_split["risk"] == pytest.approx(risk, rel=1e-10)
    assert res.objective_split["cost"] == pytest.approx(tcost + hcost, rel=1e-9)
    assert res.objective == pytest.approx(alpha - risk - tcost - hcost, rel=1e-9)
    assert res.solver_objective == pytest.approx(res.objective, rel=1e-6)
    assert (w < -1e-6).any(), "shorts present so the borrow fee is exercised"


def test_borrow_fee_discourages_shorts(h) -> None:
    inp = h.make_inputs(20, 2, seed=6)
    base = MeanVariance(constraints=[Budget("dollar_neutral"), GrossExposure(2.0)],
                        risk_aversion=10.0)
    w0 = base.solve(inp).weights
    victim = w0.idxmin()
    fee = pd.Series(0.0, index=inp.symbols)
    fee[victim] = 1.0
    mv = MeanVariance(terms=[Alpha(), Risk(10.0), HoldingCost(borrow_fee=fee)],
                      constraints=[Budget("dollar_neutral"), GrossExposure(2.0)])
    assert mv.solve(inp).weights[victim] >= -1e-7


@pytest.mark.parametrize("direct", [None, []], ids=["direct", "cvxpy"])
def test_compiled_once_and_resolved(h, direct) -> None:
    inp = h.make_inputs(50, 4, seed=7, current=True)
    mv = long_only_capped(costs=[h.LinearCost(5.0)], direct=direct)
    first = mv.solve(inp)
    assert first.compile_time_s > 0
    rng = np.random.default_rng(0)
    for _ in range(3):
        new = inp.with_(alpha=rng.normal(0, 1e-3, inp.n), current=first.weights.to_numpy())
        again = mv.solve(new)
        assert again.compile_time_s == 0.0
        fresh = long_only_capped(costs=[h.LinearCost(5.0)], direct=direct).solve(new)
        assert again.objective == pytest.approx(fresh.objective, rel=1e-8)
    # new risk values: the CVXPY path updates parameters; the direct path rebuilds matrices
    risk2 = h.make_factor(50, 4, seed=8)
    again = mv.solve(inp.with_(risk=risk2))
    assert (again.compile_time_s > 0) == (direct is None)
    if direct == []:
        # a cost context with other values recompiles (coefficients are constants)
        tc = inp.trade_context
        from keel.costs.base import TradeContext
        tc2 = TradeContext(tc.symbols, tc.prices, tc.adv_notional * 2, tc.volatility,
                           tc.spreads, nav=tc.nav)
        assert mv.solve(inp.with_(trade_context=tc2)).compile_time_s > 0


def test_solver_failure_falls_back_then_holds(h) -> None:
    inp = h.make_inputs(30, 3, seed=8, current=True)
    cons = [Budget(), LongOnly(), TrackingError(0.01)]
    # OSQP cannot take a second-order cone: it fails, Clarabel answers
    res = MeanVariance(constraints=cons, solvers=["OSQP", "CLARABEL"]).solve(inp)
    assert [a.outcome for a in res.fallback_trail] == ["solver_error", "ok"]
    assert res.solver == "CLARABEL"
    # nothing can solve it: hold the current weights and say so
    held = MeanVariance(constraints=cons, solvers=["OSQP"]).solve(inp)
    assert held.status is OptimizationStatus.HOLD_FALLBACK and held.solver is None
    np.testing.assert_allclose(held.weights.to_numpy(), inp.current)
    assert (held.trades.abs() < 1e-15).all()
    assert "holding the current weights" in held.messages[-1]
    # an iteration limit is a failure too
    lim = MeanVariance(constraints=cons, solvers=["CLARABEL", "SCS"],
                       solver_options={"CLARABEL": {"max_iter": 1}}).solve(inp)
    assert lim.fallback_trail[0].outcome != "ok" and lim.solver == "SCS"


def test_infeasible_culprits_exact(h) -> None:
    inp = h.make_inputs(10, 2, seed=9)
    mv = MeanVariance(constraints=[Budget(), LongOnly(), WeightBounds(upper=0.05)])
    with pytest.raises(InfeasibleError) as exc:
        mv.solve(inp)
    assert set(exc.value.culprits) == {"WeightBounds"}
    assert exc.value.culprits["WeightBounds"] == pytest.approx(0.05, abs=1e-6)
    mv2 = MeanVariance(constraints=[Budget(), LongOnly(), WeightBounds(upper=0.05),
                                    MinCash(0.2)])
    with pytest.raises(InfeasibleError) as exc2:
        mv2.solve(inp)
    assert set(exc2.value.culprits) == {"Budget", "WeightBounds"}
    assert exc2.value.culprits["Budget"] == pytest.approx(0.2, abs=1e-6)
    assert exc2.value.culprits["WeightBounds"] == pytest.approx(0.03, abs=1e-6)
    assert "WeightBounds" in str(exc2.value)


def test_nonconvex_is_refused(h) -> None:
    with pytest.raises(NonConvexError) as exc:
        Risk(-1.0)
    assert exc.value.field == "risk_aversion"
    with pytest.raises(NonConvexError):
        HoldingCost(cash_rate=0.02, margin_rate=0.01)

    class Concave(h.LinearCost):
        def expr(self, trade_weights, ctx):
            return -cp.norm1(trade_weights)

    inp = h.make_inputs(10, 2)
    with pytest.raises(NonConvexError):
        MeanVariance(costs=[Concave(1.0)]).solve(inp)


def test_bad_inputs_name_the_field(h) -> None:
    from keel.optimize.inputs import PortfolioInputs
    a = pd.Series([0.1, np.nan], index=["A", "B"])
    with pytest.raises(ValidationError) as exc:
        PortfolioInputs.build(a)
    assert exc.value.field == "alpha" and exc.value.symbol == "B"
    with pytest.raises(ValidationError) as exc:
        PortfolioInputs.build(pd.Series([0.1, 0.2], index=["A", "B"]),
                              pd.Series({"C": 0.5}))
    assert exc.value.field == "current" and exc.value.symbol == "C"


ALL = [
    lambda r: Budget(),
    lambda r: LongOnly(),
    lambda r: WeightBounds(lower=-r.uniform(0, 0.3), upper=r.uniform(0.05, 0.4)),
    lambda r: GrossExposure(r.uniform(0.8, 2.0)),
    lambda r: NetExposure(r.uniform(-0.5, 0.5), r.uniform(0.5, 1.2)),
    lambda r: Turnover(max_total=r.uniform(0.2, 2.0)),
    lambda r: Turnover(max_per_name=r.uniform(0.02, 0.3)),
    lambda r: BetaNeutral(r.uniform(0, 0.3), target=r.uniform(0.6, 1.2)),
    lambda r: SectorCaps(long=r.uniform(0.2, 0.8), short=r.uniform(0.0, 0.3),
                         net=r.uniform(0.1, 0.6)),
    lambda r: Liquidity(max_trade_adv=r.uniform(0.05, 0.5),
                        max_position_adv=r.uniform(0.1, 1.0)),
    lambda r: FactorExposureBounds(lower=-r.uniform(0.2, 1.5), upper=r.uniform(0.8, 2)),
    lambda r: TrackingError(r.uniform(0.002, 0.02)),
    lambda r: MinCash(r.uniform(0, 0.2)),
]


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 10_000), mask=st.integers(1, 2 ** len(ALL) - 1))
def test_every_returned_portfolio_satisfies_every_constraint(h, seed: int, mask: int) -> None:
    r = np.random.default_rng(seed)
    inp = h.make_inputs(12, 2, seed=seed % 7, current=True)
    inp = inp.with_(adv_weight=r.uniform(0.5, 5.0, inp.n),
                    benchmark=np.full(inp.n, 1 / inp.n))
    cons = [f(r) for i, f in enumerate(ALL) if mask >> i & 1]
    mv = MeanVariance(constraints=cons, risk_aversion=r.uniform(0.5, 20),
                      costs=[])
    try:
        res = mv.solve(inp)
    except InfeasibleError as exc:
        assert exc.culprits and set(exc.culprits) <= set(unique_names(cons))
        return
    if res.status is OptimizationStatus.HOLD_FALLBACK:
        assert res.messages
        return
    w = res.weights.to_numpy()
    for c in cons:
        assert c.violation(w, inp) <= 1e-6, c
