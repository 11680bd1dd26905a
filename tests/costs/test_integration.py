"""Cost models on a keel MarketData context, inside a small CVXPY rebalance."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from keel.costs import (
    ACParams,
    AdaptiveCost,
    AlmgrenChriss,
    Commission,
    SpreadCost,
    SquareRootImpact,
    TradeContext,
)
from keel.data.synthetic import synthetic_market

from .helpers import expr_value, numeric_nav


@pytest.fixture(scope="module")
def ctx() -> TradeContext:
    market = synthetic_market(12, 90, seed=4)
    return TradeContext.from_market(market.as_of(market.dates[70]), nav=5e7, time_of_day=15.0)


def _model() -> AdaptiveCost:
    return AdaptiveCost(Commission(bps=0.5) + SpreadCost() + SquareRootImpact(y=0.7)
                        + AlmgrenChriss(ACParams(eta=1e-7, gamma=1e-8), n_intervals=4,
                                        interval=0.25, risk_aversion=1e-7))


def test_context_from_market_prices_every_part(ctx: TradeContext) -> None:
    model = _model()
    w = np.linspace(-0.03, 0.04, 12)
    est = model.cost(w * ctx.nav, ctx)
    assert set(est.components) == {"commission", "spread", "impact"}
    assert np.all(est.currency >= 0) and est.total > 0
    assert expr_value(model, w, ctx) == pytest.approx(numeric_nav(model, w, ctx), rel=1e-9)


def test_rebalance_trades_less_when_costs_rise(ctx: TradeContext) -> None:
    target = np.random.default_rng(0).normal(0, 0.02, 12)
    turnover = []
    for scale in (0.0, 1.0, 20.0):
        w = cp.Variable(12)
        cost = scale * _model().expr(w, ctx)
        prob = cp.Problem(cp.Minimize(50 * cp.sum_squares(w - target) + cost))
        assert prob.is_dcp()
        prob.solve(solver=cp.CLARABEL)
        turnover.append(float(np.abs(w.value).sum()))
    assert turnover[0] == pytest.approx(np.abs(target).sum(), rel=1e-5)
    assert turnover[0] > turnover[1] > turnover[2]
