"""FixBroker end to end over localhost sockets against the ack-and-fill venue."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from keel.errors import OrderRejected, TransientVenueError, VenueError
from keel.types import EventKind, Order, OrderEvent, OrderType, Side
from keel.venues.base import Broker
from keel.venues.fix.broker import FixBroker
from keel.venues.fix.session import Session, SessionConfig
from keel.venues.fix.sim import AckFillApplication
from keel.venues.fix.store import FileStore
from keel.venues.fix.transport import Acceptor

T = datetime(2025, 11, 21, 8, 30, tzinfo=UTC)


class Venue:
    """The ack-and-fill venue on its own loop thread."""

    def __init__(self, dd, auto_fill: bool = True) -> None:
        self.app = AckFillApplication(auto_fill=auto_fill)
        self.session = Session(SessionConfig("FIX.4.2", "VENUE", "KEEL"), dd,
                               application=self.app)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.acceptor = Acceptor([self.session], "127.0.0.1", 0)
        self.port = asyncio.run_coroutine_threadsafe(self.acceptor.start(), self.loop).result(5)

    def call(self, fn: Callable[[], object]) -> None:
        asyncio.run_coroutine_threadsafe(self._call(fn), self.loop).result(5)

    async def _call(self, fn: Callable[[], object]) -> None:
        fn()

    def drop_connection(self) -> None:
        def drop() -> None:
            conn = self.acceptor.connection_of(self.session)
            if conn is not None:
                conn.abort()

        self.call(drop)

    def fill(self, cl_ord_id: str) -> None:
        def do() -> None:
            self.app.fill(self.session, cl_ord_id)
            self.acceptor.flush(self.session)

        self.call(do)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.acceptor.stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def venue(dd42) -> Iterator[Venue]:
    v = Venue(dd42)
    yield v
    v.close()


def make_broker(dd, port: int, store=None) -> FixBroker:
    return FixBroker(SessionConfig("FIX.4.2", "KEEL", "VENUE", heartbeat_interval=30), "127.0.0.1",
                     port, dictionary=dd, store=store, reconnect_interval=0.05, max_backoff=0.2)


def order(cid: str, qty: int = 10, **kw) -> Order:
    return Order(cid, "AAPL", Side.BUY, qty, T, **kw)


def collect(broker: FixBroker, n: int, timeout: float = 5.0) -> list[OrderEvent]:
    out: list[OrderEvent] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += broker.poll_events()
        time.sleep(0.005)
    time.sleep(0.05)
    return out + broker.poll_events()


def test_submit_ack_fill_cancel_replace(venue: Venue, dd42) -> None:
    with make_broker(dd42, venue.port) as broker:
        assert isinstance(broker, Broker)
        assert broker.wait_logged_on(5)
        assert broker.poll_events() == []  # nothing yet, and it returns at once
        broker.submit(order("c1", order_type=OrderType.LIMIT, limit_price=Decimal("101.5")))
        broker.submit(order("c2"))
        events = collect(broker, 4)
        assert [(e.kind, e.client_order_id) for e in events] == [
            (EventKind.ACK, "c1"), (EventKind.FILL, "c1"), (EventKind.ACK, "c2"),
            (EventKind.FILL, "c2")]
        assert events[1].fill is not None and events[1].fill.price == Decimal("101.5")
        assert events[3].fill is not None and events[3].fill.price == Decimal("100")
        assert broker.positions() == {"AAPL": Decimal("20")}
        assert broker.open_orders() == []
        with pytest.raises(OrderRejected) as info:
            broker.submit(order("c1"))
        assert info.value.reason_code == "DUPLICATE_ID"
        broker.cancel("c1")  # already filled: the venue refuses
        (ev,) = collect(broker, 1)
        assert (ev.kind, ev.client_order_id) == (EventKind.CANCEL_REJECTED, "c1")
        with pytest.raises(OrderRejected) as info:
            broker.cancel("nope")
        assert info.value.reason_code == "UNKNOWN_ORDER"
        with pytest.raises(VenueError):
            broker.account()
        venue.app.auto_fill = False
        broker.submit(order("c3", order_type=OrderType.LIMIT, limit_price=Decimal("99")))
        collect(broker, 1)
        assert [o.client_order_id for o in broker.open_orders()] == ["c3"]
        broker.replace("c3", order("c4", qty=5, order_type=OrderType.LIMIT,
                                   limit_price=Decimal("98")))
        (rep,) = collect(broker, 1)
        assert rep.kind is EventKind.REPLACED and rep.client_order_id == "c3"
        assert rep.extra["new_client_order_id"] == "c4"
        broker.cancel("c4")
        (cx,) = collect(broker, 1)
        assert (cx.kind, cx.client_order_id) == (EventKind.CANCELLED, "c4")
        assert broker.open_orders() == []


def test_submit_before_start_is_transient(dd42) -> None:
    broker = make_broker(dd42, 1)
    with pytest.raises(TransientVenueError):
        broker.submit(order("c1"))
    with pytest.raises(TransientVenueError):  # not registered: a retry is not a duplicate
        broker.submit(order("c1"))


def test_no_order_lost_or_duplicated_across_a_reconnect(venue: Venue, dd42) -> None:
    venue.app.auto_fill = False
    with make_broker(dd42, venue.port) as broker:
        assert broker.wait_logged_on(5)
        broker.submit(order("c1"))
        assert [e.kind for e in collect(broker, 1)] == [EventKind.ACK]
        venue.drop_connection()
        deadline = time.monotonic() + 5
        while broker.is_logged_on and time.monotonic() < deadline:
            time.sleep(0.001)
        broker.submit(order("c2"))  # sent while down: stored, replayed after logon
        venue.fill("c1")  # filled while down: the venue stores the report
        assert broker.wait_logged_on(5)
        events = collect(broker, 2)
        time.sleep(0.2)
        events += broker.poll_events()
        kinds = sorted((e.kind.value, e.client_order_id) for e in events)
        assert kinds == [("ACK", "c2"), ("FILL", "c1")]
        assert venue.app.received == ["c1", "c2"] and venue.app.duplicates == 0
        assert broker.initiator.connects >= 2


def test_sequence_numbers_survive_a_broker_restart(venue: Venue, dd42, tmp_path: Path) -> None:
    def store() -> FileStore:
        return FileStore(tmp_path, "KEEL-VENUE")

    with make_broker(dd42, venue.port, store()) as broker:
        assert broker.wait_logged_on(5)
        broker.submit(order("c1"))
        assert len(collect(broker, 2)) == 2
        sent = broker.session.next_sender
    deadline = time.monotonic() + 5
    while venue.session.is_logged_on and time.monotonic() < deadline:
        time.sleep(0.01)
    with make_broker(dd42, venue.port, store()) as again:
        assert again.session.next_sender >= sent  # continued, not reset to 1
        assert again.wait_logged_on(5)
        again.submit(order("c2"))
        assert [e.kind for e in collect(again, 2)] == [EventKind.ACK, EventKind.FILL]
    assert venue.app.received == ["c1", "c2"] and venue.app.duplicates == 0
