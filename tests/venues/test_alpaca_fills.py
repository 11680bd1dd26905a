"""AlpacaBroker's fill accounting (no network): whichever trade updates the stream delivers,
each order's fills are reported once, up to the venue's cumulative quantity, with the
venue's notional (property test)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.venues.alpaca_support import require_alpaca

require_alpaca()

from keel.types import EventKind, Order, Side, utc  # noqa: E402
from keel.venues.alpaca import AlpacaBroker, _Tracked  # noqa: E402

T0 = utc(2024, 1, 2, 15)
fills_st = st.lists(st.tuples(st.integers(1, 500), st.integers(1, 100_000)),
                    min_size=1, max_size=12)


def update(cum: Decimal, avg: Decimal, qty: int, status: str) -> SimpleNamespace:
    return SimpleNamespace(client_order_id="o1", id="uuid-1", qty=str(qty),
                           filled_qty=str(cum), filled_avg_price=str(avg), status=status)


@settings(max_examples=100, deadline=None)
@given(fills=fills_st, delivered=st.lists(st.booleans(), min_size=12, max_size=12))
def test_any_subset_of_updates_reports_each_share_once(fills, delivered) -> None:
    b = AlpacaBroker("k", "s", "http://127.0.0.1:9", stream=False)
    total = sum(q for q, _ in fills)
    b._orders["o1"] = _Tracked("AAPL", Side.BUY, Decimal(total))
    cum, notional = Decimal(0), Decimal(0)
    for i, (q, cents) in enumerate(fills):
        px = Decimal(cents) / 100
        cum += q
        notional += q * px
        avg = notional / cum
        status = "filled" if cum == total else "partially_filled"
        if delivered[i]:  # the stream carried this one; the others were lost
            b._apply("fill", update(cum, avg, total, status), T0 + timedelta(seconds=i),
                     f"x{i}", str(px), str(q))
    b._apply("reconcile", update(cum, avg, total, "filled"), T0)  # after the reconnect
    b._apply("fill", update(cum, avg, total, "filled"), T0)  # a stale repeat: nothing
    events = b.poll_events()
    fills_out = [e.fill for e in events if e.fill is not None]
    assert sum((f.qty for f in fills_out), Decimal(0)) == total
    assert len({f.exec_id for f in fills_out}) == len(fills_out)
    got = sum((f.qty * f.price for f in fills_out), Decimal(0))
    # a gap's price is rounded to 1e-8: at most half of that per share off
    assert abs(got - notional) <= Decimal("0.5e-8") * total + Decimal("1e-12")
    # delivered fills keep the venue's own price and execution id
    for i, (q, cents) in enumerate(fills):
        if delivered[i] and (i == 0 or all(delivered[:i])):
            f = next(f for f in fills_out if f.exec_id == f"x{i}")
            assert (f.qty, f.price) == (q, Decimal(cents) / 100)
    assert events[-1].cum_qty == total and events[-1].leaves_qty == 0
    assert [e.kind for e in events].count(EventKind.FILL) == len(fills_out)


def test_submit_refuses_without_network_as_transient() -> None:
    from keel.errors import TransientVenueError

    b = AlpacaBroker("k", "s", "http://127.0.0.1:9", stream=False, timeout_s=1)
    try:
        b.submit(Order("o1", "AAPL", Side.BUY, Decimal(1), T0))
    except TransientVenueError as exc:
        assert "unreachable" in str(exc)
    else:
        raise AssertionError("no TransientVenueError")


def test_finished_orders_are_forgotten_beyond_max_tracked() -> None:
    b = AlpacaBroker("k", "s", "http://127.0.0.1:9", stream=False, max_tracked=3)
    for i in range(6):
        cid = f"o{i}"
        b._orders[cid] = _Tracked("AAPL", Side.BUY, Decimal(1))
        o = SimpleNamespace(client_order_id=cid, id=f"id{i}", qty="1", filled_qty="1",
                            filled_avg_price="10", status="filled")
        b._apply("fill", o, T0, f"x{i}", "10", "1")
    assert sorted(b._orders) == ["o3", "o4", "o5"]
    assert len([e for e in b.poll_events() if e.fill is not None]) == 6


def test_quantities_a_float_would_change_are_refused_before_sending() -> None:
    from keel.errors import OrderRejected

    b = AlpacaBroker("k", "s", "http://127.0.0.1:9", stream=False)
    with pytest.raises(OrderRejected) as exc:  # 17 significant digits: not a float
        b.submit(Order("o1", "AAPL", Side.BUY, Decimal("12345678.123456789"), T0))
    assert exc.value.reason_code == "INVALID_FIELD" and "o1" not in b._orders
