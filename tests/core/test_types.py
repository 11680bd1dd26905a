from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel.errors import KeelError, OrderRejected, ValidationError
from keel.types import ChildOrder, Fill, Order, OrderStatus, OrderType, Position, Side, utc

T0 = utc(2024, 1, 2, 15)


def test_order_coerces_to_decimal_and_is_immutable():
    o = Order("c1", "AAPL", Side.BUY, 0.1, T0)
    assert o.qty == Decimal("0.1")
    with pytest.raises(AttributeError):
        o.qty = Decimal(5)  # type: ignore[misc]
    assert o.signed_qty == Decimal("0.1")
    assert o.with_changes(side=Side.SELL).signed_qty == Decimal("-0.1")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"qty": 0}, "qty"),
        ({"qty": -5}, "qty"),
        ({"qty": float("nan")}, "qty"),
        ({"qty": "abc"}, "qty"),
        ({"symbol": ""}, "symbol"),
        ({"client_order_id": ""}, "client_order_id"),
        ({"order_type": OrderType.LIMIT}, "limit_price"),
        ({"order_type": OrderType.LIMIT, "limit_price": -1}, "limit_price"),
        ({"limit_price": 10}, "limit_price"),
    ],
)
def test_order_rejects_bad_fields_naming_them(kwargs, field):
    base = {"client_order_id": "c1", "symbol": "AAPL", "side": Side.BUY, "qty": 10,
            "created_at": T0}
    base.update(kwargs)
    with pytest.raises(ValidationError) as exc:
        Order(**base)
    assert exc.value.field == field
    assert f"field={field}" in str(exc.value)


def test_naive_time_refused():
    from datetime import datetime

    with pytest.raises(ValidationError, match="naive"):
        Order("c1", "AAPL", Side.BUY, 1, datetime(2024, 1, 2))


def test_child_order_links_parent_and_converts():
    c = ChildOrder("c1-0", "c1", "AAPL", "SELL", 3, T0, slice_index=0, not_before=T0)
    assert c.side is Side.SELL and c.as_order().client_order_id == "c1-0"
    with pytest.raises(ValidationError):
        ChildOrder("c1-0", "", "AAPL", Side.SELL, 3, T0)


@given(qty=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(10**6), places=4),
       price=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**4), places=2),
       side=st.sampled_from(Side))
def test_fill_cash_delta_is_minus_signed_notional(qty, price, side):
    f = Fill("e1", "c1", "X", side, qty, price, T0, commission=Decimal("1.5"))
    assert f.cash_delta == -side.sign * qty * price - Decimal("1.5")


def test_status_terminal_flags_and_position():
    assert OrderStatus.FILLED.is_terminal and OrderStatus.ACKNOWLEDGED.is_open
    p = Position("AAPL", -10, 5)
    assert p.market_value(2) == Decimal(-20)


def test_errors_render_context_and_serialise():
    e = OrderRejected("too big", reason_code="MAX_NOTIONAL", symbol="AAPL", value=1e9,
                      field="notional")
    assert str(e).startswith("MAX_NOTIONAL: too big")
    assert "symbol=AAPL" in str(e)
    assert e.to_dict()["symbol"] == "AAPL"
    assert isinstance(e, KeelError)
