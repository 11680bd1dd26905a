from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.types import EventKind, Order, OrderType, Side, TimeInForce, utc
from keel.venues.exchange import MatchingEngine

T = utc(2024, 1, 2, 15)


def _lim(cid, side, qty, px, tif=TimeInForce.DAY):
    return Order(cid, "X", side, qty, T, order_type=OrderType.LIMIT, limit_price=px, tif=tif)


def _mkt(cid, side, qty, tif=TimeInForce.DAY):
    return Order(cid, "X", side, qty, T, tif=tif)


def kinds(events, owner=None):
    return [r.event.kind for r in events if owner is None or r.owner == owner]


def test_price_time_priority_and_fill_at_resting_price():
    eng = MatchingEngine()
    eng.submit(_lim("a1", Side.SELL, 100, "10.02"), "A", T)
    eng.submit(_lim("b1", Side.SELL, 100, "10.01"), "B", T)
    eng.submit(_lim("c1", Side.SELL, 100, "10.01"), "C", T)  # same price, later
    ev = eng.submit(_lim("t1", Side.BUY, 150, "10.05"), "T", T)
    fills = [r for r in ev if r.event.kind is EventKind.FILL]
    # B first (time priority at 10.01), then C; all at the resting price 10.01.
    assert [(r.owner, r.event.fill.qty, r.event.fill.price) for r in fills] == [
        ("B", Decimal(100), Decimal("10.01")), ("T", Decimal(100), Decimal("10.01")),
        ("C", Decimal(50), Decimal("10.01")), ("T", Decimal(50), Decimal("10.01")),
    ]
    taker = fills[-1].event
    assert taker.cum_qty == 150 and taker.leaves_qty == 0
    assert eng.book("X").depth()["asks"] == [(Decimal("10.01"), Decimal(50)),
                                             (Decimal("10.02"), Decimal(100))]


def test_limit_rests_then_cancel_and_unknown_cancel_rejected():
    eng = MatchingEngine()
    ev = eng.submit(_lim("b1", Side.BUY, 10, "9.99"), "A", T)
    assert kinds(ev) == [EventKind.ACK]
    assert eng.book("X").best_bid() == Decimal("9.99")
    ev = eng.cancel("A", "b1", T, cancel_id="cx1")
    assert kinds(ev) == [EventKind.CANCELLED] and ev[0].event.client_order_id == "b1"
    assert ev[0].event.extra["request_id"] == "cx1"
    assert eng.book("X").best_bid() is None
    assert kinds(eng.cancel("A", "b1", T)) == [EventKind.CANCEL_REJECTED]
    assert kinds(eng.cancel("Z", "nope", T)) == [EventKind.CANCEL_REJECTED]


def test_market_ioc_fok_semantics():
    eng = MatchingEngine()
    eng.submit(_lim("s1", Side.SELL, 100, "10"), "A", T)
    ev = eng.submit(_lim("f1", Side.BUY, 150, "10", TimeInForce.FOK), "T", T)
    assert kinds(ev, "T") == [EventKind.ACK, EventKind.CANCELLED]  # not fully fillable
    ev = eng.submit(_lim("i1", Side.BUY, 150, "10", TimeInForce.IOC), "T", T)
    assert kinds(ev, "T") == [EventKind.ACK, EventKind.FILL, EventKind.CANCELLED]
    assert ev[-1].event.cum_qty == 100
    ev = eng.submit(_mkt("m1", Side.SELL, 5), "T", T)  # empty bid side
    assert kinds(ev, "T") == [EventKind.ACK, EventKind.CANCELLED]
    assert eng.book("X").depth() == {"bids": [], "asks": []}


def test_replace_keeps_priority_only_when_reducing_qty_at_same_price():
    eng = MatchingEngine()
    eng.submit(_lim("a1", Side.BUY, 100, "10"), "A", T)
    eng.submit(_lim("b1", Side.BUY, 100, "10"), "B", T)
    ev = eng.replace("A", "a1", _lim("a2", Side.BUY, 50, "10"), T)
    assert kinds(ev) == [EventKind.REPLACED]
    ev = eng.submit(_mkt("m1", Side.SELL, 50), "T", T)
    assert next(r.owner for r in ev if r.event.kind is EventKind.FILL) == "A"
    # increasing qty loses priority: B now ahead
    eng.submit(_lim("a3", Side.BUY, 10, "10"), "A", T)
    ev = eng.replace("A", "a3", _lim("a4", Side.BUY, 20, "10"), T)
    ev = eng.submit(_mkt("m2", Side.SELL, 100), "T", T)
    assert next(r.owner for r in ev if r.event.kind is EventKind.FILL) == "B"
    assert kinds(eng.replace("A", "zz", _lim("a5", Side.BUY, 1, "10"), T)) == [
        EventKind.CANCEL_REJECTED]


def test_replace_that_crosses_trades_and_duplicate_id_rejected():
    eng = MatchingEngine()
    eng.submit(_lim("s1", Side.SELL, 10, "10.10"), "A", T)
    eng.submit(_lim("b1", Side.BUY, 10, "10.00"), "B", T)
    ev = eng.replace("B", "b1", _lim("b2", Side.BUY, 10, "10.10"), T)
    assert EventKind.FILL in kinds(ev, "B")
    assert kinds(eng.submit(_lim("b2", Side.BUY, 1, "9"), "B", T)) == [EventKind.REJECTED]


def test_unknown_symbol_rejected_when_universe_fixed():
    eng = MatchingEngine(symbols=["X"])
    o = Order("q", "Y", Side.BUY, 1, T)
    assert kinds(eng.submit(o, "A", T)) == [EventKind.REJECTED]


orders = st.lists(
    st.tuples(st.sampled_from(["A", "B", "C"]), st.sampled_from(Side),
              st.integers(1, 50), st.one_of(st.none(), st.integers(95, 105)),
              st.sampled_from([TimeInForce.DAY, TimeInForce.IOC, TimeInForce.FOK]),
              st.booleans()),
    min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(orders)
def test_invariants_under_random_flow(flow):
    eng = MatchingEngine()
    bought = sold = Decimal(0)
    for i, (owner, side, qty, px, tif, cancel_prev) in enumerate(flow):
        o = (_mkt(f"o{i}", side, qty, tif) if px is None
             else _lim(f"o{i}", side, qty, Decimal(px) / 10, tif))
        for r in eng.submit(o, owner, T):
            e = r.event
            if e.kind is EventKind.FILL:
                if e.fill.side is Side.BUY:
                    bought += e.fill.qty
                else:
                    sold += e.fill.qty
        if cancel_prev and i:
            eng.cancel(owner, f"o{i-1}", T)
        book = eng.book("X")
        bb, ba = book.best_bid(), book.best_ask()
        assert bb is None or ba is None or bb < ba  # never crossed
    assert bought == sold == sum(t.qty for t in eng.trades)
    for o in eng._orders.values():
        assert Decimal(0) <= o.cum_qty <= o.qty
    resting = {(o.owner, o.client_order_id) for o in eng.open_orders()}
    depth = eng.book("X").depth(1000)
    total = sum(q for _, q in depth["bids"] + depth["asks"])
    assert total == sum(o.leaves_qty for o in eng.open_orders())
    assert len(resting) == len(eng.open_orders())


@pytest.mark.parametrize("tif", [TimeInForce.DAY, TimeInForce.GTC])
def test_market_sweeps_levels(tif):
    eng = MatchingEngine()
    for i, px in enumerate(["10.00", "10.01", "10.02"]):
        eng.submit(_lim(f"s{i}", Side.SELL, 10, px, tif), "M", T)
    ev = eng.submit(_mkt("b", Side.BUY, 25), "T", T)
    last = [r.event for r in ev if r.owner == "T"][-1]
    assert last.cum_qty == 25
    assert last.extra["avg_px"] == (Decimal("100.0") + Decimal("100.1") + Decimal("50.10")) / 25


def test_simulator_moves_mids_and_keeps_a_two_sided_book():
    from keel.venues.exchange.core import SimulatedExchange
    from keel.venues.exchange.simulator import MarketSimulator

    ex = SimulatedExchange(["A", "B"])
    sim = MarketSimulator(ex, {"A": 50.0, "B": 200.0}, daily_vol=0.02, seed=1)
    sim.quote_all(T)
    first = dict(zip(sim.symbols, sim.mids, strict=True))
    for _ in range(10):
        mids = sim.step(T, 60)
    assert mids != first
    for s in ("A", "B"):
        book = ex.engine.book(s)
        assert book.best_bid() < Decimal(repr(mids[s])) < book.best_ask()
        assert len(book.depth()["bids"]) == 5 and len(book.depth()["asks"]) == 5
    again = MarketSimulator(SimulatedExchange(["A", "B"]), {"A": 50.0, "B": 200.0}, seed=1)
    for _ in range(10):
        m2 = again.step(T, 60)
    assert m2 == mids  # seeded
