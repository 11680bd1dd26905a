"""RoutingBroker falls back FIX -> Alpaca-compatible REST (AlpacaBroker on alpaca-py) on one
exchange account: the FIX front end dies, orders continue over Alpaca's API, each order
reaches the venue once and every fill is reported once."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

from tests.conftest import FIX_SPEC
from tests.venues.alpaca_support import require_alpaca, until

require_alpaca()

from keel.clock import SimulatedClock  # noqa: E402
from keel.types import EventKind, Order, OrderEvent, OrderType, Side, utc  # noqa: E402
from keel.venues.alpaca import AlpacaBroker  # noqa: E402
from keel.venues.exchange.core import LiquidityProvider, SimulatedExchange  # noqa: E402
from keel.venues.exchange.fix_front import FixExchangeServer  # noqa: E402
from keel.venues.exchange.rest_api import create_rest_app  # noqa: E402
from keel.venues.exchange.server import BackgroundServer  # noqa: E402
from keel.venues.fix.broker import FixBroker  # noqa: E402
from keel.venues.fix.session import SessionConfig  # noqa: E402
from keel.venues.fix.store import FileStore  # noqa: E402
from keel.venues.routing import RoutingBroker  # noqa: E402

T0 = utc(2024, 1, 2, 15)


def buy(cid: str, qty: int = 10) -> Order:
    return Order(cid, "AAPL", Side.BUY, qty, T0, order_type=OrderType.LIMIT, limit_price="101")


def test_fix_primary_falls_back_to_alpaca(tmp_path: Path) -> None:
    ex = SimulatedExchange(["AAPL"])
    LiquidityProvider(ex, half_spread_bps=5, size=10_000).quote("AAPL", 100.0, T0)
    front = FixExchangeServer(ex, port=0, spec_dir=FIX_SPEC, begin_string="FIX.4.2",
                              clients={"KEEL": "ACCT"}, store_dir=tmp_path / "venue").start()
    rest_srv = BackgroundServer(create_rest_app(ex, SimulatedClock(T0), {"k": "ACCT"},
                                                {"k": "s"})).start()
    fix = FixBroker(SessionConfig("FIX.4.2", "KEEL", "KEELX"), "127.0.0.1", front.port,
                    spec_dir=str(FIX_SPEC), store=FileStore(tmp_path / "client", "KEEL-KEELX"),
                    reconnect_interval=0.05, max_backoff=0.2).start(wait_logon=5)
    alpaca = AlpacaBroker("k", "s", rest_srv.url + "/alpaca", reconnect_s=0.2)
    assert alpaca.wait_connected()
    router = RoutingBroker(fix, alpaca)  # health probe: fix.is_connected()
    events: list[OrderEvent] = []
    ids = [f"o{i}" for i in range(10)]

    def filled() -> Counter[str]:
        events.extend(router.poll_events())
        out: Counter[str] = Counter()
        for e in events:
            if e.fill is not None:
                out[e.client_order_id] += int(e.fill.qty)
        return out

    try:
        for cid in ids[:5]:
            router.submit(buy(cid))
        until(lambda: set(filled()) == set(ids[:5]))  # FIX reported them (its own recovery
        front.stop()  # is tested elsewhere); FIX dies, the rest go over Alpaca's API
        until(lambda: not fix.is_connected())
        for cid in ids[5:]:
            router.submit(buy(cid))

        until(lambda: filled() == Counter({cid: 10 for cid in ids}))
        routes = dict(router.route_log)
        assert {routes[c] for c in ids[:5]} == {"primary"}
        assert {routes[c] for c in ids[5:]} == {"fallback"}
        # the exchange saw every order once; every fill reported once, summing to the position
        assert sorted(v.client_order_id for v in ex.orders("ACCT")) == sorted(ids)
        fills = [e.fill for e in events if e.fill is not None]
        assert len(fills) == len({f.exec_id for f in fills}) == len(ids)
        assert sum((f.qty for f in fills), Decimal(0)) == ex.positions("ACCT")["AAPL"] == 100
        venue_px = sorted(e.fill.price for _, e in ex.events_since("ACCT") if e.fill)
        assert sorted(f.price for f in fills) == venue_px
        acks = Counter(e.client_order_id for e in events if e.kind is EventKind.ACK)
        assert acks == Counter(ids)
    finally:
        fix.close()
        alpaca.close()
        front.stop()
        rest_srv.stop()
