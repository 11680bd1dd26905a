"""The exchange's Alpaca-shaped front end over HTTP (httpx, no SDK): error bodies, auth,
hostile input refused with Alpaca's codes and nothing registered."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from keel.clock import SimulatedClock
from keel.types import utc
from keel.venues.exchange.core import LiquidityProvider, SimulatedExchange
from keel.venues.exchange.rest_api import create_rest_app
from keel.venues.exchange.server import BackgroundServer

T0 = utc(2024, 1, 2, 15)
AUTH = {"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": "s"}


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[SimulatedExchange, httpx.Client]]:
    ex = SimulatedExchange(["AAPL"], starting_cash=100_000)
    LiquidityProvider(ex, half_spread_bps=5, levels=3, size=100).quote("AAPL", 100.0, T0)
    app = create_rest_app(ex, SimulatedClock(T0), {"k": "A"}, {"k": "s"})
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url + "/alpaca",
                                                       timeout=5) as client:
        yield ex, client


def test_auth_and_unknown_route_answer_alpaca_error_bodies(api) -> None:
    _, c = api
    for headers in ({}, {"APCA-API-KEY-ID": "k"}, {**AUTH, "APCA-API-SECRET-KEY": "x"},
                    {**AUTH, "APCA-API-KEY-ID": "nope"}):
        r = c.get("/v2/account", headers=headers)
        assert r.status_code == 401
        assert r.json() == {"code": 40110000, "message": "request is not authorized"}
    r = c.get("/v2/nothing-here", headers=AUTH)
    assert r.status_code == 404 and r.json()["code"] == 40410000
    r = c.get(f"/v2/orders/{uuid.uuid4()}", headers=AUTH)
    assert r.status_code == 404 and r.json() == {"code": 40410000, "message": "order not found"}
    r = c.get("/v2/positions/AAPL", headers=AUTH)
    assert r.status_code == 404 and r.json()["code"] == 40410000


@pytest.mark.parametrize("body, words", [
    ({"qty": True}, "qty"),
    ({"qty": "NaN"}, "qty"),
    ({"qty": "1e999"}, "qty"),
    ({"qty": "1_0"}, "qty"),
    ({"qty": -5}, "qty"),
    ({"type": "limit", "limit_price": "1e12"}, "limit_price"),
    ({"type": "limit", "limit_price": "1.000000001"}, "limit_price"),
    ({"type": "limit"}, "limit_price"),
    ({"limit_price": "10"}, "limit_price"),
    ({"symbol": "AA\u0000PL"}, "symbol"),
    ({"client_order_id": "a\u0001b"}, "client_order_id"),
    ({"client_order_id": "x" * 129}, "client_order_id"),
    ({"side": "short"}, "side"),
    ({"type": "stop"}, "order type"),
    ({"time_in_force": "opg"}, "time_in_force"),
    ({"order_class": "bracket"}, "order_class"),
    ({"notional": "100"}, "notional"),
    ({"extended_hours": True}, "extended_hours"),
    ({"colour": "red"}, "colour"),
])
def test_hostile_orders_are_refused_with_42210000_and_not_registered(api, body, words) -> None:
    ex, c = api
    before = len(ex.orders("A"))
    order = {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market",
             "time_in_force": "day", **body}
    r = c.post("/v2/orders", json=order, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == 42210000 and words in r.json()["message"]
    assert len(ex.orders("A")) == before


def test_non_json_bodies_and_bad_queries(api) -> None:
    _, c = api
    r = c.post("/v2/orders", content=b"{not json", headers=AUTH)
    assert r.status_code == 422 and r.json()["code"] == 42210000
    r = c.post("/v2/orders", json=[1, 2], headers=AUTH)
    assert r.status_code == 422 and "object" in r.json()["message"]
    r = c.get("/v2/orders", params={"limit": 0}, headers=AUTH)
    assert r.status_code == 422 and r.json()["code"] == 42210000 and "limit" in r.json()["message"]
    r = c.get("/v2/orders", params={"after": "2024-01-01T00:00:00Z"}, headers=AUTH)
    assert r.status_code == 422 and "after" in r.json()["message"]
    r = c.get("/v2/orders", params={"status": "weird"}, headers=AUTH)
    assert r.status_code == 422


def test_generated_client_order_id_buying_power_and_account(api) -> None:
    ex, c = api
    r = c.post("/v2/orders", json={"symbol": "AAPL", "qty": 2, "side": "buy",
                                   "type": "limit", "limit_price": 90,
                                   "time_in_force": "gtc"}, headers=AUTH)
    assert r.status_code == 200
    o = r.json()
    assert uuid.UUID(o["client_order_id"]) and uuid.UUID(o["id"])
    assert (o["status"], o["qty"], o["filled_qty"], o["filled_avg_price"]) == (
        "new", "2", "0", None)
    # 100_000 cash, 180 committed to the resting buy: 99_820 of buying power left
    acct = c.get("/v2/account", headers=AUTH).json()
    assert acct["cash"] == "100000" and acct["buying_power"] == "99820"
    r = c.post("/v2/orders", json={"symbol": "AAPL", "qty": "1000", "side": "buy",
                                   "type": "limit", "limit_price": "99.83",
                                   "time_in_force": "day"}, headers=AUTH)
    assert r.status_code == 403
    assert r.json() == {"code": 40310000, "message": "insufficient buying power"}
    r = c.delete("/v2/orders", headers=AUTH)
    assert r.status_code == 207 and [x["body"]["status"] for x in r.json()] == ["canceled"]
    r = c.delete(f"/v2/orders/{o['id']}", headers=AUTH)
    assert r.status_code == 422 and "canceled" in r.json()["message"]
    assert len(ex.orders("A", open_only=True)) == 0


def test_alpaca_broker_queries_refused_are_venue_errors(api) -> None:
    pytest.importorskip("alpaca", reason="alpaca-py not installed (keel[alpaca])")
    from keel.errors import VenueError
    from keel.venues.alpaca import AlpacaBroker

    _, c = api
    b = AlpacaBroker("k", "wrong", str(c.base_url).removesuffix("/"), stream=False)
    try:
        for query in (b.account, b.positions, b.open_orders):
            with pytest.raises(VenueError, match="not authorized"):
                query()
    finally:
        b.close()


def test_stream_protocol_auth_listen_and_trade_updates(api) -> None:
    pytest.importorskip("websockets", reason="websockets not installed (keel[alpaca])")
    import json

    from websockets.sync.client import connect

    _, c = api
    url = "ws" + str(c.base_url).removesuffix("/")[4:] + "/stream"
    with connect(url) as ws:  # wrong secret: refused and closed
        ws.send(json.dumps({"action": "auth", "key": "k", "secret": "x"}))
        assert json.loads(ws.recv(timeout=5)) == {
            "stream": "authorization", "data": {"action": "authenticate",
                                                "status": "unauthorized"}}
    with connect(url) as ws:
        ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        assert json.loads(ws.recv(timeout=5))["stream"] == "error"  # authenticate first
        ws.send(json.dumps({"action": "authenticate",  # a binary frame, as Alpaca allows
                            "data": {"key_id": "k", "secret_key": "s"}}).encode())
        assert json.loads(ws.recv(timeout=5))["data"]["status"] == "authorized"
        ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        assert json.loads(ws.recv(timeout=5)) == {"stream": "listening",
                                                  "data": {"streams": ["trade_updates"]}}
        r = c.post("/v2/orders", json={"symbol": "AAPL", "qty": "3", "side": "buy",
                                       "type": "market", "client_order_id": "ws-1"},
                   headers=AUTH)
        assert r.status_code == 200
        updates = [json.loads(ws.recv(timeout=5)) for _ in range(2)]
    assert [u["stream"] for u in updates] == ["trade_updates"] * 2
    new, fill = (u["data"] for u in updates)
    assert (new["event"], new["order"]["status"], new["order"]["client_order_id"]) == (
        "new", "new", "ws-1")
    assert (fill["event"], fill["order"]["status"], fill["qty"], fill["order"]["filled_qty"]) == (
        "fill", "filled", "3", "3")
    assert uuid.UUID(fill["execution_id"]) and fill["price"] == fill["order"]["filled_avg_price"]


def test_a_replace_checks_the_limit_price_as_a_submit_does(api) -> None:
    ex, c = api
    r = c.post("/v2/orders", json={"symbol": "AAPL", "qty": 1, "side": "buy",
                                   "type": "limit", "limit_price": 80,
                                   "time_in_force": "gtc"}, headers=AUTH)
    assert r.status_code == 200, r.text
    oid = r.json()["id"]
    for bad in ("1e12", "80.123456789"):
        r = c.patch(f"/v2/orders/{oid}", json={"limit_price": bad}, headers=AUTH)
        assert r.status_code == 422 and "limit_price must be at most" in r.json()["message"]
    assert [o.limit_price for o in ex.orders("A", open_only=True)] == [Decimal(80)]
    c.delete("/v2/orders", headers=AUTH)
