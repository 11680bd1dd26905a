"""Orders <-> FIX application messages, validated against both dictionaries."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from keel.errors import ProtocolError, ValidationError
from keel.types import EventKind, Order, OrderStatus, OrderType, Side, TimeInForce
from keel.venues.fix.codec import Message, decode
from keel.venues.fix.messages import (
    ExecutionReportData,
    event_from_cancel_reject,
    event_from_execution_report,
    execution_report,
    new_order_single,
    order_cancel_reject,
    order_cancel_replace_request,
    order_cancel_request,
    order_from_new_order_single,
)
from keel.venues.fix.validate import validate

T = datetime(2025, 11, 21, 8, 30, 0, 123000, tzinfo=UTC)
ORDER = Order("c1", "AAPL", Side.SELL, Decimal("250"), T, order_type=OrderType.LIMIT,
              limit_price=Decimal("101.25"), tif=TimeInForce.IOC)


def _wire(msg: Message, begin: str, dd) -> Message:
    msg.header.fields.update({8: begin, 49: "A", 56: "B", 34: "2",
                              52: "20251121-08:30:00.000"})
    out = decode(msg.encode(), dd)
    validate(out, dd)
    return out


@pytest.mark.parametrize("begin", ["FIX.4.2", "FIX.4.4"])
def test_order_round_trip(begin: str, dd42, dd44) -> None:
    dd = dd42 if begin == "FIX.4.2" else dd44
    nos = _wire(new_order_single(ORDER, begin), begin, dd)
    assert (nos[54], nos[40], nos[44], nos[38], nos[59]) == ("2", "2", "101.25", "250", "3")
    assert order_from_new_order_single(nos, T) == ORDER
    cxl = _wire(order_cancel_request(ORDER, "c1.x1", T), begin, dd)
    assert (cxl[41], cxl[11]) == ("c1", "c1.x1")
    new = ORDER.with_changes(client_order_id="c2", qty=Decimal("100"))
    rep = _wire(order_cancel_replace_request(ORDER, new, begin), begin, dd)
    assert (rep[41], rep[11], rep[38]) == ("c1", "c2", "100")


def test_stop_and_market_orders() -> None:
    stop = Order("s", "X", Side.BUY, 5, T, order_type=OrderType.STOP_LIMIT, stop_price=9,
                 limit_price=10)
    m = new_order_single(stop)
    assert (m[40], m[99], m[44]) == ("4", "9", "10")
    mkt = new_order_single(Order("m", "X", Side.BUY, 5, T))
    assert mkt[40] == "1" and 44 not in mkt


def test_bad_inputs_name_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        new_order_single(ORDER.with_changes(tif=TimeInForce.CLS), "FIX.4.2")
    assert info.value.field == "tif"
    with pytest.raises(ValidationError) as info:
        order_cancel_replace_request(ORDER, ORDER.with_changes(client_order_id="z",
                                                               side=Side.BUY))
    assert info.value.field == "new_order"
    bad = new_order_single(ORDER)
    bad[40] = "Z"
    with pytest.raises(ProtocolError) as pinfo:
        order_from_new_order_single(bad, T)
    assert pinfo.value.value == "c1"


@pytest.mark.parametrize(("begin", "fill_type"), [("FIX.4.2", "2"), ("FIX.4.4", "F")])
def test_execution_reports_to_events(begin: str, fill_type: str, dd42, dd44) -> None:
    dd = dd42 if begin == "FIX.4.2" else dd44
    ack = ExecutionReportData("O1", "E1", "0", ORDER, OrderStatus.ACKNOWLEDGED,
                              leaves_qty=ORDER.qty)
    ev = event_from_execution_report(_wire(execution_report(ack, T, begin), begin, dd), T)
    assert ev is not None and ev.kind is EventKind.ACK and ev.leaves_qty == Decimal("250")
    fill = ExecutionReportData("O1", "E2", fill_type, ORDER, OrderStatus.PARTIALLY_FILLED,
                               cum_qty=Decimal("100"), leaves_qty=Decimal("150"),
                               avg_px=Decimal("101.25"), last_qty=Decimal("100"),
                               last_px=Decimal("101.25"))
    ev = event_from_execution_report(_wire(execution_report(fill, T, begin), begin, dd), T)
    assert ev is not None and ev.kind is EventKind.FILL and ev.fill is not None
    assert (ev.fill.qty, ev.fill.price, ev.fill.side, ev.fill.exec_id) == (
        Decimal("100"), Decimal("101.25"), Side.SELL, "E2")
    assert ev.timestamp == T and ev.venue_order_id == "O1"
    cxl = ExecutionReportData("O1", "E3", "4", ORDER.with_changes(client_order_id="c1.x1"),
                              OrderStatus.CANCELLED, orig_cl_ord_id="c1")
    ev = event_from_execution_report(_wire(execution_report(cxl, T, begin), begin, dd), T)
    assert ev is not None and ev.kind is EventKind.CANCELLED and ev.client_order_id == "c1"
    pending = ExecutionReportData("O1", "E4", "6", ORDER, OrderStatus.ACKNOWLEDGED)
    assert event_from_execution_report(execution_report(pending, T, begin), T) is None


def test_cancel_reject_event(dd42) -> None:
    m = _wire(order_cancel_reject("O1", "c1.x1", "c1", OrderStatus.FILLED, False, "too late"),
              "FIX.4.2", dd42)
    ev = event_from_cancel_reject(m, T)
    assert (ev.kind, ev.client_order_id, ev.reason) == (EventKind.CANCEL_REJECTED, "c1",
                                                        "too late")
