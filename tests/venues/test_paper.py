"""Paper broker: fills against minute bars and book snapshots, partial fills, latency,
limits, cancels, determinism, and the request journal."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from keel.clock import SimulatedClock
from keel.costs.base import CostModel, TradeContext
from keel.data.orderbook import BookSnapshots
from keel.errors import OrderRejected, ValidationError
from keel.types import EventKind, Order, OrderStatus, OrderType, Side, TimeInForce, utc
from keel.venues.base import Broker
from keel.venues.fills import BarFillModel, BookFillModel
from keel.venues.paper import ConstantLatency, PaperBroker, RandomLatency

T0 = utc(2013, 10, 8, 13, 30)


def _bars(n: int = 30, volume: float = 1000.0) -> pd.DataFrame:
    idx = pd.date_range(T0, periods=n, freq="min")
    p = 100.0 + 0.01 * np.arange(n)
    return pd.DataFrame({"open": p, "high": p + 0.05, "low": p - 0.05, "close": p,
                         "volume": np.full(n, volume), "bid": p - 0.01, "ask": p + 0.01},
                        index=idx)


def _order(coid: str, qty: int, side: Side = Side.BUY, **kw) -> Order:
    return Order(coid, "SPY", side, Decimal(qty), T0, **kw)


def _broker(clock: SimulatedClock, **kw) -> PaperBroker:
    fm = kw.pop("fill_model", None) or BarFillModel({"SPY": _bars()}, participation=0.1)
    return PaperBroker(clock, fm, **kw)


def test_protocol_and_partial_fills_step_by_step():
    clock = SimulatedClock(T0)
    b = _broker(clock, commission_per_share=Decimal("0.005"))
    assert isinstance(b, Broker)
    b.submit(_order("A", 250))
    ev = b.poll_events()
    assert [e.kind for e in ev] == [EventKind.ACK]
    clock.advance(60)  # the 13:30 bar closes: 10% of 1000 = 100 shares at the ask
    ev = b.poll_events()
    assert [(e.kind, e.fill.qty, e.fill.price) for e in ev] == [
        (EventKind.FILL, 100, Decimal("100.01"))]
    assert ev[0].fill.timestamp == utc(2013, 10, 8, 13, 31) and ev[0].leaves_qty == 150
    clock.advance(120)
    ev = b.poll_events()
    assert [(e.fill.qty, e.fill.price) for e in ev] == [(100, Decimal("100.02")),
                                                        (50, Decimal("100.03"))]
    assert b.open_orders() == []
    assert b.positions() == {"SPY": Decimal(250)}
    acct = b.account()
    paid = Decimal(100) * Decimal("100.01") + Decimal(100) * Decimal("100.02") \
        + Decimal(50) * Decimal("100.03") + Decimal("1.25")
    assert acct.cash == Decimal(1_000_000) - paid


def test_latency_limit_cancel_and_duplicates():
    clock = SimulatedClock(T0)
    b = _broker(clock, latency=ConstantLatency(90.0))
    b.submit(_order("L", 100, Side.SELL, order_type=OrderType.LIMIT,
                    limit_price=Decimal("100.10")))
    with pytest.raises(OrderRejected) as e:
        b.submit(_order("L", 100))
    assert e.value.reason_code == "DUPLICATE_ID"
    clock.advance(60)
    assert b.poll_events() == []  # not arrived yet (90 s latency)
    clock.advance(60 * 10)
    ev = b.poll_events()
    assert ev[0].kind is EventKind.ACK and ev[0].timestamp == T0 + timedelta(seconds=90)
    # high reaches 100.10 when close >= 100.05: from the 13:35 bar on; sells at max(bid, lim)
    fills = [e.fill for e in ev if e.kind is EventKind.FILL]
    assert fills[0].timestamp == utc(2013, 10, 8, 13, 36) and fills[0].price == Decimal("100.1")
    b.submit(_order("C", 10_000))
    b.cancel("C")
    clock.advance(60 * 5)
    ev = b.poll_events()
    assert [e.kind for e in ev if e.client_order_id == "C"][-1] is EventKind.CANCELLED
    with pytest.raises(OrderRejected) as e:
        _broker(clock).submit(Order("X", "IBM", Side.BUY, 1, T0))
    assert e.value.reason_code == "NO_MARKET_DATA" and e.value.symbol == "IBM"


def test_ioc_takes_one_bar_only():
    clock = SimulatedClock(T0)
    b = _broker(clock)
    b.submit(_order("I", 500, tif=TimeInForce.IOC))
    clock.advance(600)
    ev = b.poll_events()
    assert [e.kind for e in ev] == [EventKind.ACK, EventKind.FILL, EventKind.CANCELLED]
    assert ev[1].fill.qty == 100


class _Linear(CostModel):
    name = "impact"

    def cost_array(self, trades_notional: np.ndarray, ctx: TradeContext) -> np.ndarray:
        return 1e-4 * np.abs(trades_notional) ** 2 / ctx.adv_notional  # convex in size

    def expr(self, trade_weights, ctx):  # pragma: no cover - not used here
        raise NotImplementedError


def test_cost_model_impact_decays_and_is_deterministic():
    def run(seed: int) -> list:
        clock = SimulatedClock(T0)
        b = _broker(clock, cost_model=_Linear(), adv_shares={"SPY": 1e5},
                    latency=RandomLatency(0.5, 0.4, seed=seed), impact_decay_minutes=5.0)
        b.submit(_order("A", 300))
        clock.advance(600)
        return [(e.fill.qty, e.fill.price) for e in b.poll_events() if e.fill]

    first = run(1)
    assert first == run(1)
    prices = [float(p) for _, p in first]
    asks = [100.01, 100.02, 100.03]
    impact = [p - a for p, a in zip(prices, asks, strict=True)]
    assert all(x > 0 for x in impact) and impact[1] > impact[0]  # our own flow accumulates
    with pytest.raises(ValidationError) as e:
        clock = SimulatedClock(T0)
        b = _broker(clock, cost_model=_Linear())
        b.submit(_order("A", 300))
        clock.advance(120)
        b.poll_events()
    assert e.value.field == "adv_shares"


def test_book_replay_walks_levels():
    ts = pd.date_range(T0, periods=3, freq="s")
    ask_px = np.array([[100.01, 100.02, 100.03]] * 3)
    ask_sz = np.array([[100.0, 200.0, 300.0]] * 3)
    bid_px = ask_px - 0.02
    books = BookSnapshots(ts, bid_px, ask_sz, ask_px, ask_sz, symbol="SPY")
    clock = SimulatedClock(T0 - timedelta(seconds=1))
    b = PaperBroker(clock, BookFillModel({"SPY": books}))
    b.submit(_order("B", 250))
    clock.advance(1)
    ev = [e for e in b.poll_events() if e.fill]
    assert ev[0].fill.qty == 250
    assert ev[0].fill.price == Decimal(repr(round((100 * 100.01 + 150 * 100.02) / 250, 6)))


def test_journal_rebuilds_the_venue(tmp_path):
    clock = SimulatedClock(T0)
    j = tmp_path / "venue.jsonl"
    b = _broker(clock, journal=j)
    b.submit(_order("A", 250))
    b.submit(_order("B", 50))
    b.cancel("B")
    clock.advance(90)
    before = b.poll_events()
    b.close()
    with j.open("a") as fh:
        fh.write('{"op": "submit", "ts": ')  # a torn line from a crash
    again = _broker(clock, journal=j)
    replay = again.poll_events()
    assert [(e.kind, e.client_order_id, e.fill.exec_id if e.fill else None) for e in replay] \
        == [(e.kind, e.client_order_id, e.fill.exec_id if e.fill else None) for e in before]
    assert [o.client_order_id for o in again.open_orders()] == ["A"]
    assert again.open_orders()[0].status is OrderStatus.PARTIALLY_FILLED


def test_lobster_replay_fills_against_the_real_book(shared_data):
    from keel.data.lobster import find_lobster_pair, load_lobster

    day = load_lobster(*find_lobster_pair(shared_data / "lob/lobster_AAPL_2012-06-21_L10_head"))
    book = day.book
    t0 = book.timestamps[10].ceil("us").to_pydatetime()
    clock = SimulatedClock(t0)
    b = PaperBroker(clock, BookFillModel({"AAPL": book}), latency=ConstantLatency(0.0))
    b.submit(Order("LB", "AAPL", Side.BUY, Decimal(500), t0))
    clock.advance(1.0)
    fills = [e.fill for e in b.poll_events() if e.fill]
    # the next snapshot after arrival: walk its ask levels up to 500 shares
    i = int(np.searchsorted(book.timestamps.as_unit("ns").asi8, pd.Timestamp(t0).value,
                            side="right"))
    px, sz = book.ask_px[i], book.ask_sz[i]
    take = np.minimum(sz, np.maximum(500 - np.concatenate([[0], np.cumsum(sz)[:-1]]), 0))
    assert fills and fills[0].qty == Decimal(int(take.sum()))
    assert float(fills[0].price) == pytest.approx((take * px).sum() / take.sum(), abs=1e-6)
    assert fills[0].price >= Decimal(repr(float(book.ask_px[i, 0])))
