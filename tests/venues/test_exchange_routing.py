"""RoutingBroker with a FixBroker primary and a RestBroker fallback on one exchange: the FIX front
end dies mid-stream, orders continue over REST, FIX comes back and takes over again; nothing is
lost or duplicated and every fill is reported once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from tests.conftest import FIX_SPEC

from keel.clock import SimulatedClock
from keel.types import EventKind, Order, OrderEvent, OrderType, Side, utc
from keel.venues.exchange.core import LiquidityProvider, SimulatedExchange
from keel.venues.exchange.fix_front import FixExchangeServer
from keel.venues.exchange.rest_api import create_rest_app
from keel.venues.exchange.server import BackgroundServer
from keel.venues.fix.broker import FixBroker
from keel.venues.fix.session import SessionConfig
from keel.venues.fix.store import FileStore
from keel.venues.rest import RestBroker
from keel.venues.routing import RoutingBroker

T0 = utc(2024, 1, 2, 15)
SPEC = FIX_SPEC


def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def buy(cid: str, px: str = "101", qty: int = 10) -> Order:
    return Order(cid, "AAPL", Side.BUY, qty, T0, order_type=OrderType.LIMIT, limit_price=px)


def test_fix_primary_rest_fallback_kill_and_return(tmp_path: Path) -> None:
    ex = SimulatedExchange(["AAPL"])
    lp = LiquidityProvider(ex, half_spread_bps=5, size=10_000)
    lp.quote("AAPL", 100.0, T0)
    venue_store = tmp_path / "venue"

    def fix_front(port: int = 0) -> FixExchangeServer:
        return FixExchangeServer(ex, port=port, spec_dir=SPEC, begin_string="FIX.4.2",
                                 clients={"KEEL": "ACCT"}, store_dir=venue_store).start()

    front = fix_front()
    rest_srv = BackgroundServer(create_rest_app(ex, SimulatedClock(T0), {"k": "ACCT"})).start()
    fix = FixBroker(SessionConfig("FIX.4.2", "KEEL", "KEELX"), "127.0.0.1", front.port,
                    spec_dir=str(SPEC), store=FileStore(tmp_path / "client", "KEEL-KEELX"),
                    reconnect_interval=0.05, max_backoff=0.2).start(wait_logon=5)
    rest = RestBroker(rest_srv.url, "k", timeout_s=5)
    router = RoutingBroker(fix, rest)  # health probe: fix.is_connected()
    events: list[OrderEvent] = []
    try:
        ids = [f"o{i}" for i in range(24)]
        for cid in ids[:6]:
            router.submit(buy(cid))
        router.submit(buy("rest1", px="99.00"))  # rests; filled while FIX is down
        # the FIX front end dies in the middle of the stream; the stream does not wait
        front.stop()
        for cid in ids[6:12]:
            router.submit(buy(cid))
            events += router.poll_events()
        until(lambda: not fix.is_connected())
        for cid in ids[12:18]:
            router.submit(buy(cid))
        router.submit(buy("rest2", px="99.00"))  # via REST; filled after FIX is back
        lp.quote("AAPL", 98.90, T0)  # fills rest1 while only REST is up
        # FIX comes back on the same port with its sequence numbers; orders return to it
        front = fix_front(front.port)
        until(fix.is_connected)
        for cid in ids[18:]:
            router.submit(buy(cid, px="99.00"))
        lp.quote("AAPL", 98.50, T0)  # fills rest2 and o18.. (reported by FIX and REST)

        all_ids = [*ids, "rest1", "rest2"]
        qty = Decimal(10)

        def all_filled() -> bool:
            events.extend(router.poll_events())
            done = Counter(e.client_order_id for e in events if e.kind is EventKind.FILL)
            filled = {c: sum((e.fill.qty for e in events if e.fill and e.client_order_id == c),
                             Decimal(0)) for c in done}
            return all(filled.get(c) == qty for c in all_ids)

        until(all_filled, timeout=10)
        time.sleep(0.2)
        events += router.poll_events()
        routes = dict(router.route_log)
        assert {routes[c] for c in ids[:6]} == {"primary"}
        assert {routes[c] for c in ids[12:18]} == {"fallback"}
        assert routes["rest2"] == "fallback"
        assert {routes[c] for c in ids[18:]} == {"primary"}
        # the exchange's order list: every order once, none rejected as a duplicate
        assert sorted(v.client_order_id for v in ex.orders("ACCT")) == sorted(all_ids)
        assert not [e for _, e in ex.events_since("ACCT") if e.kind is EventKind.REJECTED]
        # every fill reported once, and they add up to the exchange's position
        fills = [e.fill for e in events if e.fill is not None]
        assert len(fills) == len({f.exec_id for f in fills})
        venue_fills = [e.fill for _, e in ex.events_since("ACCT") if e.fill is not None]
        assert sorted(f.exec_id for f in fills) == sorted(f.exec_id for f in venue_fills)
        assert ex.positions("ACCT") == {"AAPL": qty * len(all_ids)}
        # one ACK per order too (FIX and REST reports of the same event share the ExecID)
        acks = Counter(e.client_order_id for e in events if e.kind is EventKind.ACK)
        assert acks == Counter(all_ids)
    finally:
        fix.close()
        rest.close()
        front.stop()
        rest_srv.stop()
