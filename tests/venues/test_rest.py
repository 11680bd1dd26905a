"""The REST broker against the exchange's REST API served by a real uvicorn server."""

from decimal import Decimal

import httpx
import pytest

from keel.clock import SimulatedClock
from keel.errors import OrderRejected, TransientVenueError
from keel.types import EventKind, Order, OrderStatus, OrderType, Side, TimeInForce, utc
from keel.venues.base import Broker
from keel.venues.exchange.core import LiquidityProvider, SimulatedExchange
from keel.venues.exchange.rest_api import create_rest_app
from keel.venues.exchange.server import BackgroundServer, free_port
from keel.venues.rest import RestBroker

T0 = utc(2024, 1, 2, 15)


@pytest.fixture(scope="module")
def venue():
    clock = SimulatedClock(T0)
    ex = SimulatedExchange(["AAPL", "MSFT"])
    LiquidityProvider(ex, half_spread_bps=5, levels=3, size=100).quote("AAPL", 100.0, T0)
    app = create_rest_app(ex, clock, {"key-a": "ACCT-A", "key-b": "ACCT-B"})
    with BackgroundServer(app) as server:
        yield ex, server


def _lim(cid, side, qty, px, tif=TimeInForce.DAY):
    return Order(cid, "AAPL", side, qty, T0, order_type=OrderType.LIMIT, limit_price=px, tif=tif)


def test_rest_broker_is_a_broker(venue):
    _, server = venue
    assert isinstance(RestBroker(server.url, "key-a"), Broker)


def test_submit_fill_poll_positions_account(venue):
    _ex, server = venue
    b = RestBroker(server.url, "key-a")
    b.submit(_lim("r1", Side.BUY, 150, "100.10"))  # levels at +5, +7, +9 bps
    events = b.poll_events()
    assert [e.kind for e in events] == [EventKind.ACK, EventKind.FILL, EventKind.FILL]
    fills = [e.fill for e in events if e.fill]
    assert [(f.qty, f.price) for f in fills] == [(Decimal(100), Decimal("100.05")),
                                                 (Decimal(50), Decimal("100.07"))]
    assert events[-1].cum_qty == 150 and events[-1].leaves_qty == 0
    assert b.poll_events() == []  # nothing seen twice
    assert b.positions() == {"AAPL": Decimal(150)}
    acct = b.account()
    assert acct.cash == Decimal(10_000_000) - Decimal("10005") - Decimal("5003.5")
    # the other account sees none of it
    assert RestBroker(server.url, "key-b").poll_events() == []


def test_cancel_replace_open_orders(venue):
    _, server = venue
    b = RestBroker(server.url, "key-b")
    b.submit(_lim("c1", Side.BUY, 10, "90"))
    assert [(o.client_order_id, o.status) for o in b.open_orders()] == [
        ("c1", OrderStatus.ACKNOWLEDGED)]
    b.replace("c1", _lim("c2", Side.BUY, 20, "91"))
    assert [(o.client_order_id, o.qty) for o in b.open_orders()] == [("c2", Decimal(20))]
    b.cancel("c2")
    assert b.open_orders() == []
    kinds = [e.kind for e in b.poll_events()]
    assert kinds == [EventKind.ACK, EventKind.REPLACED, EventKind.CANCELLED]
    # a cancel of a done or unknown order is an event, never an exception (Broker contract)
    b.cancel("c2")
    b.cancel("never")
    b.replace("never", _lim("c3", Side.BUY, 5, "91"))
    late = b.poll_events()
    assert [(e.kind, e.client_order_id) for e in late] == [
        (EventKind.CANCEL_REJECTED, "c2"), (EventKind.CANCEL_REJECTED, "never"),
        (EventKind.CANCEL_REJECTED, "never")]
    assert "not open" in late[0].reason and late[0].extra["status"] == "CANCELLED"
    assert late[1].reason == "unknown order" and late[2].extra["response_to"] == "replace"
    assert b.order_status("never") is None
    assert b.order_status("c2").status is OrderStatus.CANCELLED


def test_duplicate_and_invalid_orders_are_rejected_with_reason(venue):
    _, server = venue
    b = RestBroker(server.url, "key-b")
    b.submit(_lim("d1", Side.SELL, 1, "500"))
    with pytest.raises(OrderRejected, match="unique"):
        b.submit(_lim("d1", Side.SELL, 1, "500"))
    with pytest.raises(OrderRejected, match="unknown symbol"):
        b.submit(Order("d2", "ZZZ", Side.BUY, 1, T0))


def test_http_validation_and_auth(venue):
    _, server = venue
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/v2/account").status_code == 401
        h = {"APCA-API-KEY-ID": "key-a"}
        r = c.post("/v2/orders", headers=h, content=b"{not json")
        assert r.status_code == 422
        r = c.post("/v2/orders", headers=h, json={"symbol": "AAPL", "qty": "-5", "side": "buy",
                                                  "client_order_id": "neg"})
        assert r.status_code == 422 and "qty" in r.json()["detail"]
        r = c.post("/v2/orders", headers=h, json={"symbol": "AAPL", "qty": 1, "side": "hold",
                                                  "client_order_id": "bad-side"})
        assert r.status_code == 422
        r = c.post("/v2/orders", headers=h, json={"symbol": "AAPL", "qty": 1, "side": "buy",
                                                  "client_order_id": "x", "surprise": 1})
        assert r.status_code == 422


def test_unreachable_venue_is_transient():
    b = RestBroker(f"http://127.0.0.1:{free_port()}", "k", timeout_s=0.5)
    with pytest.raises(TransientVenueError):
        b.submit(Order("u1", "AAPL", Side.BUY, 1, T0))


def test_a_configured_secret_guards_every_route_not_only_alpaca():
    from fastapi.testclient import TestClient

    ex = SimulatedExchange(["AAPL"])
    clock = SimulatedClock(utc(2024, 3, 6, 15))
    app = create_rest_app(ex, clock, {"key-a": "ACCT-A"},
                          api_secrets={"key-a": "s3cret-0123456789"})
    c = TestClient(app)
    assert c.get("/v2/account", headers={"APCA-API-KEY-ID": "key-a"}).status_code == 401
    bad = {"APCA-API-KEY-ID": "key-a", "APCA-API-SECRET-KEY": "wrong"}
    assert c.get("/v2/account", headers=bad).status_code == 401
    good = {"APCA-API-KEY-ID": "key-a", "APCA-API-SECRET-KEY": "s3cret-0123456789"}
    assert c.get("/v2/account", headers=good).status_code == 200
