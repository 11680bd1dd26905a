"""Input hygiene: no order field can smuggle a FIX tag or break an encoder after acceptance,
and the REST venue refuses booleans, sub-lot and non-finite quantities (hypothesis fuzz over
the order constructors, the FIX round trip of what they accept, and the REST API)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.clock import SimulatedClock
from keel.errors import ValidationError
from keel.types import MAX_ID_LEN, ChildOrder, Order, OrderType, Side, utc
from keel.venues.exchange.core import SimulatedExchange
from keel.venues.exchange.rest_api import create_rest_app
from keel.venues.fix.codec import decode
from keel.venues.fix.messages import new_order_single

T0 = utc(2024, 1, 2, 15)


def _ok_ident(s: str) -> bool:
    return bool(s) and s.isascii() and s.isprintable() and s == s.strip() \
        and len(s) <= MAX_ID_LEN


@pytest.mark.parametrize(("field", "value"), [
    ("client_order_id", "inj2\x011=victim"), ("symbol", "AAPL\x0144=1"),
    ("symbol", "AAPL\U0001f4a5"), ("client_order_id", "a\nb"), ("symbol", " AAPL "),
    ("strategy", "s\x01x"), ("strategy", "bad\ud800surrogate"), ("symbol", "A" * 100_000)])
def test_the_audit_cases_are_refused_naming_the_field(field: str, value: str) -> None:
    kw = {"client_order_id": "c1", "symbol": "AAPL", field: value}
    with pytest.raises(ValidationError) as e:
        Order(kw["client_order_id"], kw["symbol"], Side.BUY, 1, T0,
              strategy=kw.get("strategy"))
    assert e.value.field == field
    assert len(str(e.value)) < 400  # a 100 KB value is not echoed back


@settings(max_examples=300, deadline=None)
@given(coid=st.text(max_size=40), symbol=st.text(max_size=12), parent=st.text(max_size=20))
def test_order_constructors_accept_exactly_the_safe_identifiers(coid: str, symbol: str,
                                                                parent: str) -> None:
    safe = _ok_ident(coid) and _ok_ident(symbol) and symbol.strip() != ""
    try:
        o = Order(coid, symbol, Side.BUY, 5, T0, order_type=OrderType.LIMIT, limit_price="10")
    except ValidationError as e:
        assert not safe and e.field in ("client_order_id", "symbol")
        return
    assert safe
    # what is accepted encodes to FIX and decodes to the same fields: no tag was injected
    msg = decode(new_order_single(o).encode(), check=False)
    assert (msg[11], msg[55], msg[40]) == (coid, symbol, "2")
    try:
        k = ChildOrder("k" + coid[:100], parent, symbol, Side.BUY, 5, T0)
        assert _ok_ident(parent) and k.parent_id == parent
    except ValidationError as e:
        assert e.field == "parent_id" and not _ok_ident(parent)


@pytest.fixture(scope="module")
def client() -> TestClient:
    ex = SimulatedExchange(["AAPL"], lot_size="1")
    return TestClient(create_rest_app(ex, SimulatedClock(T0), {"k": "acct"}),
                      headers={"APCA-API-KEY-ID": "k"})


@pytest.mark.parametrize("qty", [True, False, 1e-20, "1e-20", "0.5", "nan", "inf", "-inf",
                                 "1e400", 0, -3, None, [], {}, "1_90", "", "  "])
def test_rest_refuses_bad_quantities(client: TestClient, qty: object) -> None:
    r = client.post("/v2/orders", json={"symbol": "AAPL", "qty": qty, "side": "buy",
                                        "client_order_id": f"q{qty!r}"[:60]})
    assert r.status_code == 422, r.text
    assert client.get("/v2/orders", params={"status": "all"}).json() == []  # nothing written


@pytest.mark.parametrize("raw", ['NaN', 'Infinity', '-Infinity', '1e400', 'true'])
def test_rest_refuses_non_finite_json_numbers(client: TestClient, raw: str) -> None:
    body = ('{"symbol": "AAPL", "side": "buy", "client_order_id": "nf1", "qty": ' + raw + '}')
    r = client.post("/v2/orders", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert client.get("/v2/orders", params={"status": "all"}).json() == []


@pytest.mark.parametrize(("field", "value"), [("client_order_id", "inj\x011=victim"),
                                              ("symbol", "AAPL\x0144=1"),
                                              ("symbol", "AAPL\U0001f4a5")])
def test_rest_refuses_injected_text(client: TestClient, field: str, value: str) -> None:
    body = {"symbol": "AAPL", "qty": "1", "side": "buy", "client_order_id": "t1", field: value}
    r = client.post("/v2/orders", json=body)
    assert r.status_code == 422
    assert client.get("/v2/orders", params={"status": "all"}).json() == []


_json = st.recursive(st.none() | st.booleans() | st.integers()
                     | st.floats(allow_nan=False, allow_infinity=False)
                     | st.text(max_size=20),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                         c, max_size=3),
                     max_leaves=6)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(qty=_json, symbol=_json, coid=_json, price=_json)
def test_rest_api_fuzz_never_500_and_only_books_valid_orders(client: TestClient, qty, symbol,
                                                             coid, price) -> None:
    body = {"symbol": symbol, "qty": qty, "side": "buy", "type": "limit",
            "limit_price": price, "client_order_id": coid}
    r = client.post("/v2/orders", json=body)
    assert r.status_code in (200, 422), r.text
    if r.status_code == 200:
        assert isinstance(qty, int | float | str) and not isinstance(qty, bool)
        booked = Decimal(r.json()["qty"])
        assert booked == Decimal(str(qty).strip()) and booked % 1 == 0 and booked > 0
        assert symbol == "AAPL" and _ok_ident(coid)
