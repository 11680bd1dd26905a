"""FixBroker reconciles after every reconnect: what the exchange did while its FIX front end
was down (a fill, a cancel, an order it lost) reaches the broker's events after the next
Logon, through an OrderStatusRequest (35=H) the front end answers, on FIX 4.2 and 4.4."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest
from tests.conftest import FIX_SPEC

from keel.types import EventKind, Order, OrderEvent, OrderType, Side, utc
from keel.venues.exchange.core import SimulatedExchange
from keel.venues.exchange.fix_front import FixExchangeServer
from keel.venues.exchange.server import free_port
from keel.venues.fix.broker import FixBroker
from keel.venues.fix.session import SessionConfig
from keel.venues.fix.store import FileStore

T0 = utc(2024, 1, 2, 15)


def _until(broker: FixBroker, want, timeout: float = 10.0) -> list[OrderEvent]:
    got: list[OrderEvent] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got += broker.poll_events()
        if want(got):
            return got
        time.sleep(0.02)
    return got


def _front(ex: SimulatedExchange, port: int, begin: str, tmp: Path) -> FixExchangeServer:
    return FixExchangeServer(ex, port=port, spec_dir=FIX_SPEC, begin_string=begin,
                             store_dir=tmp / "venue").start()


@pytest.mark.parametrize("begin", ["FIX.4.2", "FIX.4.4"])
def test_reports_made_while_the_front_end_was_down_arrive_after_the_reconnect(
        begin: str, tmp_path: Path) -> None:
    ex = SimulatedExchange(["SPY"])
    port = free_port()
    front = _front(ex, port, begin, tmp_path)
    broker = FixBroker(SessionConfig(begin, "KEEL", "KEELX"), "127.0.0.1", port,
                       spec_dir=str(FIX_SPEC), store=FileStore(tmp_path / "client", "K"),
                       reconnect_interval=0.05, max_backoff=0.2)
    broker.start(wait_logon=5)
    try:
        for cid in ("FILLS", "CANCELS"):
            broker.submit(Order(cid, "SPY", Side.BUY, Decimal(10), T0,
                                order_type=OrderType.LIMIT, limit_price=Decimal("99.5")))
        acks = _until(broker, lambda evs: sum(e.kind is EventKind.ACK for e in evs) == 2)
        assert sum(e.kind is EventKind.ACK for e in acks) == 2
        assert broker.connection_epoch == 1

        front.stop()  # the front end is down: the exchange goes on
        made = ex.submit("other", Order("HIT", "SPY", Side.SELL, Decimal(10), T0), T0)
        ex.cancel("default", "CANCELS", T0)
        fill = next(e.fill for _, e in ex.events_since("default")
                    if e.fill is not None and e.client_order_id == "FILLS")
        assert made and fill is not None
        time.sleep(0.3)
        assert broker.poll_events() == []  # nothing can reach the broker now

        front = _front(ex, port, begin, tmp_path)
        evs = _until(broker, lambda evs: {e.kind for e in evs} >= {EventKind.FILL,
                                                                   EventKind.CANCELLED})
        assert broker.connection_epoch == 2 and broker.status_requests == 2
        fills = [e.fill for e in evs if e.kind is EventKind.FILL]
        assert [(f.exec_id, f.qty, f.price) for f in fills if f is not None] == [
            (fill.exec_id, fill.qty, fill.price)]  # the exchange's own fill, once
        assert [e.client_order_id for e in evs if e.kind is EventKind.CANCELLED] == ["CANCELS"]
        assert broker.open_orders() == []
        # a second reconnect asks nothing more: no order is open
        front.stop()
        front = _front(ex, port, begin, tmp_path)
        assert _until(broker, lambda evs: False, timeout=1.0) == []
        assert broker.status_requests == 2
    finally:
        broker.close()
        front.stop()


def test_an_order_the_venue_lost_expires_after_the_reconnect(tmp_path: Path) -> None:
    ex = SimulatedExchange(["SPY"])
    port = free_port()
    front = _front(ex, port, "FIX.4.2", tmp_path)
    broker = FixBroker(SessionConfig("FIX.4.2", "KEEL", "KEELX"), "127.0.0.1", port,
                       spec_dir=str(FIX_SPEC), store=FileStore(tmp_path / "client", "K"),
                       reconnect_interval=0.05, max_backoff=0.2)
    broker.start(wait_logon=5)
    try:
        broker.submit(Order("LOST", "SPY", Side.BUY, Decimal(10), T0,
                            order_type=OrderType.LIMIT, limit_price=Decimal("99.5")))
        assert _until(broker, lambda evs: any(e.kind is EventKind.ACK for e in evs))
        front.stop()
        front = _front(SimulatedExchange(["SPY"]), port, "FIX.4.2", tmp_path)  # book lost
        evs = _until(broker, lambda evs: any(e.kind is EventKind.EXPIRED for e in evs))
        assert [(e.kind, e.client_order_id) for e in evs] == [(EventKind.EXPIRED, "LOST")]
        assert "does not know" in evs[0].reason
    finally:
        broker.close()
        front.stop()
