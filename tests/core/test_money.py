"""The money boundary: to_price / to_qty / to_money / average_price on explicit grids and
rounding modes, computed under the pinned context whatever the ambient Decimal context is."""

from __future__ import annotations

import decimal
import threading
from datetime import date
from decimal import Decimal, localcontext

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.errors import ValidationError
from keel.portfolio.instruments import Equity, Future, InstrumentRegistry
from keel.types import (
    FINE_QUANTUM,
    MONEY_CONTEXT,
    Rounding,
    average_price,
    quantize_to,
    to_money,
    to_price,
    to_qty,
)

D = Decimal
CENT = D("0.01")


def test_floats_become_prices_on_the_tick() -> None:
    assert to_price(0.1 + 0.2, CENT) == D("0.30")
    assert to_price(2.675, CENT) == D("2.68")  # shortest repr '2.675', half-even -> 2.68
    assert to_price(2.665, CENT) == D("2.66")  # half-even
    assert to_price(2.665, CENT, Rounding.HALF_UP) == D("2.67")
    assert to_price(100.011, CENT, Rounding.CEILING) == D("100.02")
    assert to_price(np.float32(1.5), CENT) == D("1.50")
    assert to_price(np.float64(187.3400001)) == D("187.34000010")  # FINE_QUANTUM grid
    assert to_price(D("5000.30"), D("0.25")) == D("5000.25")
    for bad in (0.0, -1.0, float("nan"), float("inf"), "x", True):
        with pytest.raises(ValidationError) as e:
            to_price(bad, CENT, symbol="AAPL")
        assert (e.value.field, e.value.symbol) == ("price", "AAPL")
    with pytest.raises(ValidationError, match="rounds to zero"):
        to_price(0.004, CENT)


def test_quantities_and_amounts() -> None:
    assert to_qty(10.7, 1) == D(10)
    assert to_qty(-10.7, 1) == D(-10)  # toward zero, both sides
    assert to_qty(10.7, 1, Rounding.HALF_EVEN) == D(11)
    assert to_qty(0.123456789) == D("0.12345678")
    assert to_money(1234.565, CENT) == D("1234.56")  # half-even on the repr '1234.565'
    assert to_money(-0.005, CENT) == D("-0.00")
    with pytest.raises(ValidationError) as e:
        to_qty(1, D(0))
    assert e.value.field == "lot_size"


def test_registry_rounds_through_the_same_boundary() -> None:
    reg = InstrumentRegistry.of([Equity("AAPL"),
                                 Future("ESZ4", multiplier=50, expiry=date(2024, 12, 20))])
    assert reg.make_price("ESZ4", 5000.30) == to_price(5000.30, D("0.25"))
    assert reg.make_qty("AAPL", 10.7) == to_qty(10.7, 1)


def test_pinned_context_ignores_the_ambient_one() -> None:
    expected = D("3.33333333")
    with localcontext() as ctx:
        ctx.prec = 3
        ctx.rounding = decimal.ROUND_FLOOR
        ctx.traps[decimal.Inexact] = True  # the ambient context would even raise
        assert average_price(D(10), D(3)) == expected
        assert to_price(123456.789, CENT) == D("123456.79")
        assert quantize_to(D("1234567.891"), CENT, Rounding.HALF_EVEN) == D("1234567.89")
    out: list[Decimal] = []
    notional = D("250012.50") + D("5000.25")

    def worker() -> None:
        decimal.getcontext().prec = 2  # another thread's global context
        out.append(average_price(notional, D(2), CENT))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert out == [D("127506.38")]  # 255012.75 / 2 = 127506.375 -> half-even
    assert MONEY_CONTEXT.prec == 38


def test_average_price_refuses_zero_quantity() -> None:
    with pytest.raises(ValidationError) as e:
        average_price(D(10), D(0))
    assert e.value.field == "qty"


@settings(max_examples=300, deadline=None)
@given(x=st.floats(0.01, 1e6), tick=st.sampled_from([D("0.01"), D("0.25"), D("0.0001"),
                                                     D("0.05"), D(1)]))
def test_price_is_nearest_tick(x: float, tick: Decimal) -> None:
    p = to_price(x, tick) if x >= float(tick) / 2 + 1e-9 else None
    if p is None:
        return
    exact = D(repr(x))
    assert p % tick == 0
    assert abs(p - exact) <= tick / 2


@settings(max_examples=300, deadline=None)
@given(x=st.floats(-1e6, 1e6), lot=st.sampled_from([D(1), D("0.0001"), D(100), FINE_QUANTUM]))
def test_qty_rounds_toward_zero_on_the_lot(x: float, lot: Decimal) -> None:
    q = to_qty(x, lot)
    exact = D(repr(x))
    assert q % lot == 0
    assert abs(q) <= abs(exact)
    assert abs(exact - q) < lot


def test_digit_separators_are_not_money() -> None:
    from keel.errors import ValidationError
    from keel.types import to_decimal

    with pytest.raises(ValidationError, match="not a number"):
        to_decimal("1_90", "qty")


def test_float_fast_path_equals_the_repr_rule() -> None:
    """to_decimal checks floats (and np.float64) before the numbers ABCs: same values, same
    refusals (issue 15 pt 6: it runs ~500k times in the S&P 500 backtest)."""
    import math

    import numpy as np
    from hypothesis import given
    from hypothesis import strategies as st

    from keel.errors import ValidationError
    from keel.types import Rounding, quantize_to, to_decimal

    @given(st.floats(allow_nan=True, allow_infinity=True))
    def check(x: float) -> None:
        for v in (x, np.float64(x)):
            if not math.isfinite(x):
                try:
                    to_decimal(v, "x")
                except ValidationError:
                    continue
                raise AssertionError("non-finite accepted")
            d = to_decimal(v, "x")
            ref = Decimal(repr(float(x)))
            assert d == ref and str(d) == str(ref)
            for mode in Rounding:
                assert quantize_to(d, Decimal("1e-8"), mode) == \
                    quantize_to(d, Decimal("1e-8"), mode.value)

    check()
