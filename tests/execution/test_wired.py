"""Wired: parent -> TWAP children -> order manager -> paper broker -> fills -> ledger -> TCA,
with a simulated clock advanced minute by minute and every fill asserted exactly."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from keel.clock import SimulatedClock
from keel.execution.feedback import TCA
from keel.execution.oms import OrderManager
from keel.execution.schedule import TWAP, ExecutionContext, ScheduleConfig
from keel.portfolio.ledger import Ledger
from keel.store.db import Store
from keel.store.orders_repo import OrdersRepo
from keel.types import Order, OrderStatus, Side, utc
from keel.venues.fills import BarFillModel
from keel.venues.paper import PaperBroker

T0 = utc(2013, 10, 8, 13, 30)


def test_parent_to_tca_step_by_step(db_url, bar_factory):
    bars = bar_factory()  # flat: mid 100, spread 0.02, 1000 shares a minute
    store = Store.from_url(db_url)
    store.create_all()
    repo = OrdersRepo(store)
    clock = SimulatedClock(T0)
    broker = PaperBroker(clock, BarFillModel({"SPY": bars}, participation=0.1),
                         commission_per_share=Decimal("0.001"))
    ledger = Ledger.open(store, clock=clock)
    ledger.deposit(Decimal(1_000_000))
    oms = OrderManager(broker, repo, clock, sleep=lambda s: None,
                       positions=lambda: {s: p.qty for s, p in ledger.positions.items()})
    booked = []
    oms.add_fill_listener(lambda f, parent: booked.append((f, parent.status)))
    oms.add_fill_listener(lambda f, parent: ledger.apply_fill(f))
    oms.on_price("SPY", 100)

    parent = Order("W1", "SPY", Side.BUY, Decimal(600), T0, strategy="demo")
    sched = TWAP(ScheduleConfig(n_slices=3, horizon=timedelta(minutes=30)))
    kids = sched.schedule(parent, ExecutionContext(price=100.0), clock)
    assert [(k.qty, k.not_before, k.expire_at) for k in kids] == [
        (200, T0, T0 + timedelta(minutes=10)),
        (200, T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)),
        (200, T0 + timedelta(minutes=20), T0 + timedelta(minutes=30))]
    oms.submit(parent, kids, algo="twap", arrival_price=100, decision_price=Decimal("99.99"))

    for _ in range(31):
        oms.step()
        clock.advance(timedelta(minutes=1))
    oms.step()

    fills = [(f.client_order_id, f.qty, f.price, f.timestamp) for f, _ in booked]
    ask = Decimal("100.01")
    expected = []
    for k in range(3):
        for m in (1, 2):
            expected.append((f"W1-{k:03d}", Decimal(100), ask,
                             T0 + timedelta(minutes=10 * k + m)))
    assert fills == expected
    assert [s for _, s in booked][-1] is OrderStatus.FILLED
    p = repo.get("W1")
    assert p.status is OrderStatus.FILLED and p.filled_qty == 600 and p.avg_price == ask
    assert [c.status for c in repo.children("W1")] == [OrderStatus.FILLED] * 3
    assert len(repo.fills(parent_id="W1")) == 6
    assert broker.positions() == {"SPY": Decimal(600)}
    cash = Decimal(1_000_000) - 600 * ask - Decimal("0.6")
    assert broker.account().cash == cash
    # the ledger booked every fill once, and a restarted ledger rebuilds the same book
    assert ledger.position("SPY").qty == 600 and ledger.position("SPY").avg_price == ask
    assert ledger.cash == cash
    again = Ledger.open(store, clock=clock)
    assert again.cash == cash and again.position("SPY").qty == 600
    assert not any(again.apply_fill(f) for f, _ in booked)

    report = TCA(repo, {"SPY": bars}).report()
    s = report.summaries[0]
    assert s.slippage_bps == pytest.approx(1.0)  # paid half of a 2 bps spread
    assert s.is_bps == pytest.approx((0.02 * 600 + 0.6) / (99.99 * 600) * 1e4)
    assert s.vwap_slippage_bps == pytest.approx(1.0)
    assert s.participation == pytest.approx(600 / 22_000)  # 13:30 .. 13:52, 1000 a minute
    assert s.spread_capture == pytest.approx(0.0)  # always at the far touch
    assert report.by_algo().loc["twap", "orders"] == 1
    assert TCA(repo).persist(report, clock.now()) == 1
