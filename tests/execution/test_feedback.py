"""TCA metrics against hand computations; recommendations; learner feed; persistence."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from keel.costs.base import CostModel, TradeContext
from keel.execution.feedback import TCA, TCAReport, summarize
from keel.store.orders_repo import OrderRecord, StateChange
from keel.store.tables import AuditRow
from keel.types import Fill, Order, OrderStatus, Side, utc

T0 = utc(2013, 10, 8, 13, 30)


def _parent(coid="P", side=Side.BUY, qty=300, algo="twap", arrival="100",
            decision="99.9") -> OrderRecord:
    return OrderRecord(Order(coid, "SPY", side, Decimal(qty), T0), OrderStatus.PENDING,
                       algo=algo, arrival_price=Decimal(arrival),
                       decision_price=Decimal(decision))


def _fills(coid="P", side=Side.BUY, spec=((100, "100.02", 1), (100, "100.04", 2))):
    return [Fill(f"{coid}-{i}", f"{coid}-000", "SPY", side, q, Decimal(p),
                 T0 + timedelta(minutes=m), commission=Decimal("0.1"))
            for i, (q, p, m) in enumerate(spec)]


def test_summary_matches_hand_computation(bar_factory):
    bars = bar_factory(price=100.0, spread=0.04)
    s = summarize(_parent(), _fills(), bars, end_price=100.5)
    assert s.avg_price == pytest.approx(100.03) and s.filled_qty == 200
    assert s.slippage_bps == pytest.approx(3.0)
    paid = (100.02 - 99.9) * 100 + (100.04 - 99.9) * 100
    opp = (100.5 - 99.9) * 100
    assert s.is_bps == pytest.approx((paid + opp + 0.2) / (99.9 * 300) * 1e4)
    assert s.vwap_slippage_bps == pytest.approx(3.0)  # typical price is 100
    assert s.participation == pytest.approx(200 / 2000)  # bars 13:30 and 13:31
    # ask 100.02, bid 99.98: first fill at the ask (0), second 0.02 beyond it (-0.5)
    assert s.spread_capture == pytest.approx(-0.25)
    sell = summarize(_parent(side=Side.SELL), _fills(side=Side.SELL,
                                                      spec=((100, "99.98", 1),)), bars)
    assert sell.slippage_bps == pytest.approx(2.0) and sell.spread_capture == pytest.approx(0)


def test_groups_and_recommendation():
    rows = []
    for i in range(14):
        slip = "100.01" if i < 10 else "100.20"  # quality degrades in the last 4 orders
        p = _parent(f"P{i}", qty=100)
        rows.append(summarize(p, _fills(f"P{i}", spec=((100, slip, 1 + i),))))
    rep = TCAReport(rows)
    by = rep.by_algo()
    assert by.loc["twap", "orders"] == 14
    recs = rep.recommendations(window=4, degrade_bps=5)
    assert [(r.symbol, r.algo) for r in recs] == [("SPY", "twap")]
    assert recs[0].recent == pytest.approx(20.0) and recs[0].baseline == pytest.approx(1.0)
    assert "no executed" not in rep.to_text()


class _Half(CostModel):
    name = "spread"

    def cost_array(self, trades_notional, ctx):
        return 0.5 * ctx.spreads * np.abs(trades_notional)

    def expr(self, w, ctx):  # pragma: no cover
        raise NotImplementedError


def test_predictions_feed_and_persist(repo):
    p = _parent()
    repo.add_parent(p, T0)
    fills = _fills()
    for f in fills:
        rec = repo.get("P")
        new = rec.with_changes(filled_qty=rec.filled_qty + f.qty,
                               status=OrderStatus.PARTIALLY_FILLED)
        assert repo.apply([StateChange(new, rec.status)], T0, fill=f, parent_id="P")
        assert not repo.apply([], T0, fill=f, parent_id="P")  # the same exec id: refused

    def ctx(parent):
        return TradeContext(symbols=pd.Index(["SPY"]), prices=np.array([100.0]),
                            adv_notional=np.array([1e9]), volatility=np.array([0.01]),
                            spreads=np.array([0.0004]))

    seen = []

    class Learner:
        def observe(self, trades, c, realised):
            seen.append((float(trades[0]), float(realised[0])))

    tca = TCA(repo, cost_model=_Half(), context=ctx)
    rep = tca.report()
    assert rep.summaries[0].predicted_bps == pytest.approx(2.0)
    assert tca.feed(Learner(), rep) == 1
    assert seen[0] == pytest.approx((200 * 100.0, 0.02 * 100 + 0.04 * 100 + 0.2))
    assert tca.persist(rep, T0) == 1
    with repo.store.session() as s:
        row = s.scalar(select(AuditRow).where(AuditRow.action == "tca.order"))
        assert row.entity_id == "P" and row.payload["slippage_bps"] == pytest.approx(3.0)


def test_feed_updates_the_real_adaptive_cost(repo):
    from keel.costs.adaptive import AdaptiveCost
    from keel.costs.models import SpreadCost

    p = _parent(arrival="100")
    repo.add_parent(p, T0)
    f = _fills(spec=((200, "100.04", 1),))[0]  # 4 bps paid vs a 2 bps half spread
    done = p.with_changes(status=OrderStatus.FILLED, filled_qty=Decimal(200))
    assert repo.apply([StateChange(done, p.status)], T0, fill=f, parent_id="P")

    def ctx(parent):
        return TradeContext(symbols=pd.Index(["SPY"]), prices=np.array([100.0]),
                            adv_notional=np.array([1e9]), volatility=np.array([0.01]),
                            spreads=np.array([0.0004]))

    model = AdaptiveCost(SpreadCost())
    tca = TCA(repo, cost_model=model, context=ctx)
    rep = tca.report()
    assert rep.summaries[0].predicted_bps == pytest.approx(2.0)
    assert tca.feed(model, rep) == 1
    assert model.n_obs_ == 1 and model.multipliers_[0] > 1.0  # learns it costs more
