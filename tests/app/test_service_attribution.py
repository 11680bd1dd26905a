"""``GET /api/attribution``: the live book's return attribution from the ledger's history.

The book is bought on one session, half of it switched thirty sessions later, then held: its
return over the span is the closed form ``V1(t1)/V1(t0) x V2(end)/V2(t1) - 1`` of the two
buy-and-hold books (cash + quantities x closes), and every set of pieces (Brinson-Fachler by
sector, each session's effects, the factor groups) adds up to the active return exactly.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from keel.app.sample import deposit, trade
from keel.app.service import create_app
from keel.clock import SimulatedClock
from keel.data.synthetic import synthetic_market
from keel.portfolio.ledger import Ledger
from keel.store.db import Store
from keel.types import Side


@pytest.fixture(scope="module")
def market():
    return synthetic_market(30, 400, seed=5)


def _value(state, market, t) -> float:
    px = market.prices.loc[t]
    return float(state.cash) + sum(float(h.qty) * float(px[s])
                                   for s, h in state.holdings.items())


@pytest.fixture(scope="module")
def booked(tmp_path_factory, market):
    store = Store.from_url(f"sqlite:///{tmp_path_factory.mktemp('att') / 'k.db'}")
    store.create_all()
    idx = market.returns.index
    t0, t1 = idx[-60], idx[-30]
    clock = SimulatedClock(t0.to_pydatetime())
    deposit(store, clock, "1000000")
    syms = [str(s) for s in market.symbols]
    for j, s in enumerate(syms[:6]):
        trade(store, clock, market, f"a{j}", s, Side.BUY, 500 + 100 * j)
    s1 = Ledger.open(store, clock=clock).state
    clock.advance(t1.to_pydatetime() - clock.now())
    for j, s in enumerate(syms[:3]):
        q = int(s1.holdings[s].qty)
        trade(store, clock, market, f"b{j}", s, Side.SELL, q)
    for j, s in enumerate(syms[10:13]):
        trade(store, clock, market, f"c{j}", s, Side.BUY, 700)
    s2 = Ledger.open(store, clock=clock).state
    clock.advance(timedelta(days=1))
    yield store, clock, (t0, t1, idx[-1]), (s1, s2)
    store.dispose()


@pytest.fixture(scope="module")
def client(booked, market):
    store, clock, _, _ = booked
    return TestClient(create_app(store, market=lambda: market, clock=clock))


def test_the_pieces_add_up_to_the_active_return(client, booked, market):
    _, _, (t0, t1, end), (s1, s2) = booked
    r = client.get("/api/attribution")
    assert r.status_code == 200, r.text
    body = r.json()
    idx = market.returns.index
    span = idx[(idx > t0) & (idx <= end)]
    assert body["sessions"] == len(span)
    assert pd.Timestamp(body["start"]) == span[0] and pd.Timestamp(body["end"]) == end
    # closed form: two buy-and-hold books chained at t1's close
    rp = (_value(s1, market, t1) / _value(s1, market, t0)
          * _value(s2, market, end) / _value(s2, market, t1) - 1.0)
    assert body["portfolio_return"] == pytest.approx(rp, rel=1e-10, abs=1e-12)
    rb = float(np.prod(1.0 + market.returns.loc[span].mean(axis=1).to_numpy()) - 1.0)
    assert body["benchmark_return"] == pytest.approx(rb, rel=1e-10, abs=1e-12)
    active = body["active_return"]
    assert active == pytest.approx(rp - rb, abs=1e-12)
    by_sector = body["brinson_by_sector"]
    total = by_sector.pop("total")
    assert sum(v["total"] for v in by_sector.values()) == pytest.approx(active, abs=1e-12)
    assert total["total"] == pytest.approx(active, abs=1e-12)
    for v in by_sector.values():
        assert v["allocation"] + v["selection"] + v["interaction"] == pytest.approx(
            v["total"], abs=1e-14)
    daily = body["brinson_daily"]
    eff = np.add.reduce([np.array(daily[c]) for c in ("allocation", "selection",
                                                        "interaction")])
    np.testing.assert_allclose(eff, daily["active"], atol=1e-14)
    # factor groups, linked with the same factors, add up to the active return too
    assert body["factor_sessions"] == body["sessions"]
    assert sum(body["factor_groups"].values()) == pytest.approx(active, abs=1e-12)
    assert {"market", "specific"} <= set(body["factor_groups"])
    # the NAV return differs by the costs of the trades: commissions and slippage lose money
    assert body["book_return"] < body["portfolio_return"]
    assert body["other"] == pytest.approx(body["book_return"] - body["portfolio_return"])


def test_since_restricts_the_span(client, booked, market):
    _, _, (_, t1, end), _ = booked
    body = client.get("/api/attribution", params={"since": t1.isoformat()}).json()
    idx = market.returns.index
    assert pd.Timestamp(body["start"]) == idx[idx > t1][0]
    assert body["sessions"] == int(((idx > t1) & (idx <= end)).sum())
    assert sum(v["total"] for k, v in body["brinson_by_sector"].items()
               if k != "total") == pytest.approx(body["active_return"], abs=1e-12)
    assert client.get("/api/attribution", params={"since": "2022-01-01"}).status_code == 422


def test_without_market_or_history(booked, tmp_path, market):
    store, clock, _, _ = booked
    r = TestClient(create_app(store, clock=clock)).get("/api/attribution")
    assert r.status_code == 503 and "market" in r.json()["detail"]
    # a new book: bought on the last session only, nothing to attribute yet
    fresh = Store.from_url(f"sqlite:///{tmp_path / 'f.db'}")
    fresh.create_all()
    c = SimulatedClock(market.returns.index[-1].to_pydatetime())
    deposit(fresh, c, "100000")
    trade(fresh, c, market, "n0", str(market.symbols[0]), Side.BUY, 10)
    body = TestClient(create_app(fresh, market=lambda: market, clock=c)).get(
        "/api/attribution").json()
    assert body["sessions"] == 0 and "nothing" in body["reason"]
    # trades after the market's last session (a static market file): said so
    c.advance(timedelta(days=3))
    trade(fresh, c, market, "n1", str(market.symbols[1]), Side.BUY, 10)
    body = TestClient(create_app(fresh, market=lambda: market, clock=c)).get(
        "/api/attribution").json()
    assert body["sessions"] == 0 and "after the market's last session" in body["reason"]
    fresh.dispose()


def test_a_symbol_without_prices_is_422(tmp_path, market):
    store = Store.from_url(f"sqlite:///{tmp_path / 'u.db'}")
    store.create_all()
    c = SimulatedClock(market.returns.index[-20].to_pydatetime())
    deposit(store, c, "100000")
    sym = "ZZZZ"  # not a synthetic name (S0000...)
    assert sym not in market.symbols
    trade(store, c, market, "x0", str(market.symbols[0]), Side.BUY, 10)
    Ledger.open(store, clock=c).apply_fill(_foreign_fill(c, sym))
    r = TestClient(create_app(store, market=lambda: market, clock=c)).get("/api/attribution")
    assert r.status_code == 422 and r.json()["symbol"] == sym
    store.dispose()


def _foreign_fill(clock, sym):
    from decimal import Decimal

    from keel.types import Fill

    return Fill("f-x", "f-x-0", sym, Side.BUY, Decimal(5), Decimal("10.00"), clock.now())


def test_the_dashboard_has_the_attribution_panel(client):
    page = client.get("/").text
    assert 'id="attribution-chart"' in page and 'id="attribution-groups"' in page
    js = client.get("/static/dashboard.js").text
    assert '["/api/attribution", renderAttribution]' in js
