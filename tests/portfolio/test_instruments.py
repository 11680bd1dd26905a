"""Instruments: rounding grids, margins, Black-Scholes against closed forms and differences."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pytest

from keel.errors import ValidationError
from keel.portfolio.instruments import (
    ETF,
    Crypto,
    Equity,
    Future,
    InstrumentRegistry,
    Option,
    OptionRight,
    RollCalendar,
    Rounding,
)
from keel.portfolio.options import bs_greeks, bs_price
from keel.types import utc

D = Decimal


def test_equity_rounding_and_reg_t() -> None:
    e = Equity("AAPL")
    assert e.make_qty("10.9") == D(10)
    assert e.make_qty("-10.9") == D(-10)  # toward zero
    assert e.make_qty("10.1", Rounding.UP) == D(11)
    assert e.make_price("100.005") == D("100.00")  # half-even
    assert e.make_price("100.015") == D("100.02")
    assert e.make_price("100.011", Rounding.CEILING) == D("100.02")
    assert e.initial_margin(100, 50) == D(2500)
    assert e.maintenance_margin(-100, 50) == D(1250)
    frac = Equity("AAPL", lot_size=D("0.0001"))
    assert frac.fractional and frac.make_qty("1.23456") == D("1.2345")


@pytest.mark.parametrize("price", [0, -1, "nan"])
def test_bad_price_refused(price: object) -> None:
    with pytest.raises(ValidationError) as e:
        Equity("AAPL").make_price(price)
    assert e.value.field == "price" and e.value.symbol == "AAPL"


def test_etf_expense() -> None:
    spy = ETF("SPY", expense_ratio=D("0.000945"))
    assert spy.expense(D("365000"), days=1) == D("0.945")
    assert spy.asset_class.value == "etf"


def test_future_margin_and_roll_calendar() -> None:
    esh = Future("ESH4", multiplier=D(50), initial_per_contract=D(12000),
                 maintenance_per_contract=D(11000), expiry=date(2024, 3, 15), root="ES")
    esm = Future("ESM4", multiplier=D(50), initial_per_contract=D(12000),
                 maintenance_per_contract=D(11000), expiry=date(2024, 6, 21), root="ES")
    assert esh.initial_margin(-3) == D(36000)
    assert esh.notional(2, "5000.25") == D("500025.00")
    assert esh.make_price("5000.30") == D("5000.25")
    cal = RollCalendar([esm, esh])
    # 5 XNYS sessions before Fri 2024-03-15 is Fri 2024-03-08
    assert cal.roll_date("ESH4") == date(2024, 3, 8)
    assert cal.active(date(2024, 3, 7)).symbol == "ESH4"
    assert cal.active(date(2024, 3, 8)).symbol == "ESM4"
    assert cal.schedule() == [(date(2024, 3, 8), "ESH4", "ESM4")]
    with pytest.raises(ValidationError) as e:
        Future("X", expiry=None)
    assert e.value.field == "expiry"


def test_crypto_fractional_24_7() -> None:
    btc = Crypto("BTC-USD")
    assert btc.trades_24_7 and btc.fractional
    assert btc.make_qty("0.123456789") == D("0.12345678")
    assert btc.initial_margin("0.5", 60000) == D(30000)


def test_black_scholes_known_value_and_parity() -> None:
    c = float(bs_price(100, 100, 1.0, 0.2, 0.05, 0.0, True))
    p = float(bs_price(100, 100, 1.0, 0.2, 0.05, 0.0, False))
    assert c == pytest.approx(10.450583572185565, rel=1e-12)
    assert c - p == pytest.approx(100 - 100 * np.exp(-0.05), rel=1e-12)


@pytest.mark.parametrize("is_call", [True, False])
@pytest.mark.parametrize("S,K,T,v,r,q", [(100, 100, 1.0, 0.2, 0.05, 0.0),
                                         (80, 100, 0.25, 0.35, 0.01, 0.02),
                                         (130, 100, 2.0, 0.15, 0.03, 0.01)])
def test_greeks_match_finite_differences(is_call: bool, S: float, K: float, T: float,
                                         v: float, r: float, q: float) -> None:
    g = bs_greeks(S, K, T, v, r, q, is_call)

    def px(**kw: float) -> float:
        a = {"spot": S, "strike": K, "t": T, "vol": v, "rate": r, "div_yield": q} | kw
        return float(bs_price(is_call=is_call, **a))

    h = 1e-5
    assert float(g.delta) == pytest.approx((px(spot=S + h) - px(spot=S - h)) / (2 * h),
                                           rel=1e-6)
    assert float(g.gamma) == pytest.approx(
        (px(spot=S + 1e-2) - 2 * px() + px(spot=S - 1e-2)) / 1e-4, rel=1e-4)
    assert float(g.vega) == pytest.approx((px(vol=v + h) - px(vol=v - h)) / (2 * h), rel=1e-6)
    assert float(g.rho) == pytest.approx((px(rate=r + h) - px(rate=r - h)) / (2 * h),
                                         rel=1e-6)
    # theta: derivative with respect to calendar time = minus d/dT
    assert float(g.theta) == pytest.approx(-(px(t=T + h) - px(t=T - h)) / (2 * h), rel=1e-6)


def test_option_spec_margin_and_risk() -> None:
    now = utc(2024, 1, 2, 15)
    call = Option("AAPL240621C200", underlying="AAPL", strike=D(200),
                  expiry=utc(2024, 6, 21, 20), right=OptionRight.CALL)
    # short 2 calls, premium 3, spot 190: 3 + max(0.2*190 - 10, 0.1*190) = 31 per unit
    assert call.initial_margin(-2, 3, underlying_price=190) == D(2 * 31 * 100)
    assert call.initial_margin(2, 3) == D(600)  # long pays premium
    with pytest.raises(ValidationError) as e:
        call.initial_margin(-1, 3)
    assert e.value.field == "underlying_price"
    put = Option("AAPL240621P150", underlying="AAPL", strike=D(150),
                 expiry=utc(2024, 6, 21, 20), right="put")
    # deep OTM put: 1 + max(0.2*190 - 40, 0.1*150) = 16
    assert put.initial_margin(-1, 1, underlying_price=190) == D(1600)
    g = call.greeks(190, 0.3, now)
    risk = call.position_risk(1, 3, 0.3 / np.sqrt(252), underlying_price=190, now=now)
    assert risk == pytest.approx(100 * float(g.delta) * 190 * 0.3 / np.sqrt(252))
    with pytest.raises(ValidationError):
        call.theoretical_price(190, 0.3, utc(2024, 7, 1))


def test_registry() -> None:
    reg = InstrumentRegistry.equities(["A", "B"], sectors={"A": "Tech"})
    reg.add(Crypto("BTC"))
    assert reg.get("A").sector == "Tech" and "BTC" in reg and len(reg) == 3
    with pytest.raises(ValidationError) as e:
        reg.get("ZZZ")
    assert (e.value.field, e.value.symbol) == ("symbol", "ZZZ")
    with pytest.raises(ValidationError):
        reg.add(Equity("A"))
    assert reg.margin_requirement({"A": 10, "BTC": "0.1"}, {"A": 100, "BTC": 50000}) == D(5500)
