"""Every endpoint speaks one JSON: money as strings on the tick (prices) or in cents
(amounts), quantities as exact strings, enums by name, times ISO-8601 with an offset, no NaN.
The list of endpoints is checked against the application's routes, so a new endpoint must be
added here."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from keel import fmt
from keel.app.sample import sample_book, trade
from keel.app.scrape import BREACH_ACTION
from keel.app.service import create_app
from keel.clock import SimulatedClock
from keel.data.synthetic import synthetic_market
from keel.risk.limits import RiskLimits
from keel.store.audit import AuditLog
from keel.store.db import Store
from keel.types import OrderStatus, Side

GETS = ["/health", "/ready", "/api/portfolio", "/api/risk", "/api/attribution", "/api/orders",
        "/api/orders/{client_order_id}", "/api/execution", "/api/control",
        "/api/timeseries/equity", "/api/timeseries/trading", "/api/timeseries/breaches"]
POSTS = ["/api/cost-estimate", "/api/control/kill-switch", "/api/control/engine",
         "/api/control/rebalance"]

#: keys whose values are money in cents
AMOUNTS = {"cash", "equity", "gross_exposure", "realized_pnl", "fees", "net_deposits",
           "market_value", "unrealized_pnl", "commission", "notional", "filled_notional",
           "cost", "pnl", "slippage"}
#: keys whose values are prices on the instrument's tick (a hundredth of it for averages)
PRICES = {"price", "mark", "arrival_price", "decision_price", "limit_price"}
AVERAGES = {"avg_price"}
QUANTITIES = {"qty", "filled_qty", "leaves_qty"}
TIMES = {"time", "updated_at", "created_at", "timestamp", "as_of", "start", "end", "at",
         "requested_at", "t"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$")
TOKEN = "tok"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    market = synthetic_market(30, 300, seed=8)
    store = Store.from_url(f"sqlite:///{tmp_path_factory.mktemp('json') / 'k.db'}")
    store.create_all()
    clock = SimulatedClock(market.now.to_pydatetime())
    sample_book(store, clock, market, [str(s) for s in market.symbols[:5]])
    trade(store, clock, market, "sell-1", str(market.symbols[0]), Side.SELL, 333,
          slices=3, slippage_bps=7.3)
    AuditLog(store).append("risk", BREACH_ACTION, "limit", "MAX_POSITION",
                           {"code": "MAX_POSITION", "severity": "breach"}, clock.now())
    # a tick of a twentieth for one name: its prices come on that grid
    ticks = {str(market.symbols[1]): Decimal("0.05")}
    app = create_app(store, market=lambda: market, clock=clock, token=TOKEN,
                     limits=RiskLimits(max_position=0.01), ticks=ticks)
    c = TestClient(app)
    c.ticks = ticks  # type: ignore[attr-defined]
    c.symbols = [str(s) for s in market.symbols]  # type: ignore[attr-defined]
    yield c
    store.dispose()


def _walk(obj: Any, key: str = "", symbol: str | None = None, parent: str = ""):
    """(key, value, symbol in scope) for every leaf; keys under a ``*_bps`` mapping are bps,
    not money, and come as ``"bps"``."""
    if isinstance(obj, dict):
        sym = obj.get("symbol") if isinstance(obj.get("symbol"), str) else symbol
        for k, v in obj.items():
            yield from _walk(v, "bps" if key.endswith("_bps") else k, sym, key)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v, key, symbol, parent)
    else:
        yield key, obj, symbol


def _places(s: str) -> int:
    return max(0, -Decimal(s).as_tuple().exponent)  # type: ignore[operator]


def _check(body: Any, ticks: dict[str, Decimal]) -> int:
    n = 0
    for key, v, sym in _walk(body):
        if isinstance(v, float):
            assert v == v and abs(v) != float("inf"), key  # JSON has no NaN (null instead)
        if v is None:
            continue
        n += 1
        if key in AMOUNTS:
            assert isinstance(v, str) and _places(v) == 2, (key, v)
        elif key in PRICES:
            tick = ticks.get(sym or "", fmt.CENT)
            assert isinstance(v, str) and Decimal(v) % tick == 0, (key, v, sym)
            assert _places(v) == _places(str(tick)), (key, v)
        elif key in AVERAGES:
            tick = ticks.get(sym or "", fmt.CENT)
            assert isinstance(v, str) and _places(v) == _places(str(tick / 100)), (key, v)
        elif key in QUANTITIES and not isinstance(v, int | float):
            assert Decimal(v) == Decimal(v).normalize() and "E" not in v, (key, v)
        elif key in TIMES:
            assert isinstance(v, str) and ISO.match(v), (key, v)
        elif key == "side":
            assert v in Side.__members__, v
        elif key == "status" and isinstance(v, str) and v.upper() == v:
            assert v in OrderStatus.__members__, v
        elif key == "severity":
            assert v in ("WARNING", "BREACH", "CRITICAL"), v
        if isinstance(v, str) and re.fullmatch(r"-?\d+\.\d+", v):
            assert _places(v) <= 6, (key, v)  # never "6503.961500000000000000000142"
    return n


def test_the_endpoint_list_is_every_route(client):
    routes = {(m, r.path) for r in client.app.routes for m in getattr(r, "methods", ())
              if r.path.startswith(("/api", "/health", "/ready"))}
    assert routes == {("GET", p) for p in GETS} | {("POST", p) for p in POSTS}


@pytest.mark.parametrize("path", GETS)
def test_every_read_endpoint_speaks_one_json(client, path):
    url = path.replace("{client_order_id}", "sell-1")
    r = client.get(url)
    # /ready says "not ready" (503) on a store made without migrations: still one JSON
    assert r.status_code == (503 if path == "/ready" else 200), r.text
    assert _check(r.json(), client.ticks) > 0


def test_prices_sit_on_each_instruments_tick(client):
    sym = client.symbols[1]
    p = client.get("/api/portfolio").json()
    row = next(x for x in p["positions"] if x["symbol"] == sym)
    assert Decimal(row["mark"]) % Decimal("0.05") == 0 and _places(row["mark"]) == 2
    assert _places(row["avg_price"]) == 4
    o = client.get("/api/orders/sell-1").json()
    assert o["side"] == "SELL" and o["fills"][0]["side"] == "SELL"
    ex = client.get("/api/execution").json()
    assert {x["side"] for x in ex["orders"]} == {"BUY", "SELL"}  # not 1 / -1


def test_every_write_endpoint_speaks_one_json(client):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    bodies = {"/api/cost-estimate": {"symbol": client.symbols[1], "qty": 1234, "side": "BUY"},
              "/api/control/kill-switch": {"engaged": True, "reason": "json test"},
              "/api/control/engine": {"engine": "greedy"},
              "/api/control/rebalance": {"reason": "json test"}}
    assert set(bodies) == set(POSTS)
    for path, body in bodies.items():
        r = client.post(path, json=body, headers=auth)
        assert r.status_code == 200, r.text
        assert _check(r.json(), client.ticks) > 0


@given(st.decimals(min_value=-10**9, max_value=10**9, allow_nan=False, places=8))
def test_money_json_is_exact_on_the_step(x):
    s = fmt.money_json(x)
    assert _places(s) == 2 and abs(Decimal(s) - x) <= Decimal("0.005")
    s5 = Decimal(fmt.money_json(x, Decimal("0.05")))
    assert s5 % Decimal("0.05") == 0 and abs(s5 - x) <= Decimal("0.025")
