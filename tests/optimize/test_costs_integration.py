"""keel.costs models through the one cost interface, on both solve paths."""

from __future__ import annotations

import numpy as np
import pytest

from keel.costs import Commission, SpreadCost, SquareRootImpact
from keel.optimize.constraints import Budget, LongOnly, Turnover, WeightBounds
from keel.optimize.mean_variance import MeanVariance


def _mv(costs, direct=None):
    return MeanVariance(constraints=[Budget(), LongOnly(), WeightBounds(upper=0.2),
                                     Turnover(max_total=1.0)],
                        risk_aversion=5.0, costs=costs, direct=direct)


def test_spread_and_commission_are_l1_on_the_direct_path(h) -> None:
    inp = h.make_inputs(40, 3, seed=11, current=True)
    costs = [SpreadCost(), Commission(bps=1.0)]
    fast, ref = _mv(costs).solve(inp), _mv(costs, direct=[]).solve(inp)
    assert fast.solver == "DUALAS-direct" and ref.solver == "CLARABEL"
    assert fast.objective == pytest.approx(ref.objective, rel=1e-7)
    # the split's cost equals the models' own realised estimate of the trades
    trades = fast.trades.to_numpy() * inp.trade_context.nav
    total = sum(m.cost(trades, inp.trade_context).total for m in costs)
    assert fast.objective_split["cost"] == pytest.approx(total / inp.trade_context.nav,
                                                         rel=1e-10)


def test_square_root_impact_goes_through_the_conic_direct_path(h) -> None:
    inp = h.make_inputs(40, 3, seed=12, current=True)
    costs = [SpreadCost(), SquareRootImpact(y=1.0, beta=0.5)]
    res = _mv(costs).solve(inp)
    assert res.solver == "CLARABEL-direct"  # power cones, not a QP: PIQP steps aside
    ref = _mv(costs, direct=[]).solve(inp)
    assert ref.solver == "CLARABEL"
    assert res.objective == pytest.approx(ref.objective, rel=1e-7)
    trades = res.trades.to_numpy() * inp.trade_context.nav
    total = sum(m.cost(trades, inp.trade_context).total for m in costs)
    assert res.objective_split["cost"] == pytest.approx(total / inp.trade_context.nav,
                                                        rel=1e-9)
    assert res.solver_objective == pytest.approx(res.objective, rel=1e-6)
    # impact shrinks trading compared with the spread alone
    lin = _mv([SpreadCost()]).solve(inp)
    assert res.trades.abs().sum() < lin.trades.abs().sum()


def test_minimum_ticket_is_not_mistaken_for_l1(h) -> None:
    inp = h.make_inputs(20, 2, seed=13, current=True)
    res = _mv([Commission(bps=1.0, min_per_ticket=5.0)]).solve(inp)
    assert res.solver == "CLARABEL"
    assert np.isfinite(res.objective)
