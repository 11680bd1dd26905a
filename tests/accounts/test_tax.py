"""Tax lots: relief against hand-computed cases, invariants (hypothesis), holding period and
wash-sale window boundaries, optimizer rates."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.accounts.tax import (
    Gains,
    LotMethod,
    TaxLot,
    in_wash_window,
    is_long_term,
    lots_by_symbol,
    recent_buys,
    sell,
    sell_tax_rates,
    wash_sale_conflicts,
)
from keel.errors import ValidationError

SOLD = date(2026, 12, 2)
LOTS = (
    TaxLot("a", "XYZ", Decimal(100), Decimal("10.00"), date(2023, 1, 5)),   # long term
    TaxLot("b", "XYZ", Decimal(50), Decimal("20.00"), date(2026, 6, 1)),    # short term, loss
    TaxLot("c", "XYZ", Decimal(30), Decimal("14.00"), date(2025, 12, 1)),   # long term
    TaxLot("d", "ABC", Decimal(10), Decimal("1.00"), date(2020, 1, 1)),
)


def test_fifo_relieves_oldest_first():
    s = sell(LOTS, "XYZ", 120, Decimal(15), SOLD, LotMethod.FIFO)
    assert [(r.lot_id, r.qty) for r in s.reliefs] == [("a", 100), ("c", 20)]
    # a: 100 x (15 - 10) = 500 long; c: 20 x (15 - 14) = 20 long (held 1 year and 1 day)
    assert s.gains == Gains(short_term=Decimal(0), long_term=Decimal(520))
    left = {x.lot_id: x.qty for x in s.remaining}
    assert left == {"b": 50, "c": 10, "d": 10}


def test_hifo_relieves_highest_cost_first():
    s = sell(LOTS, "XYZ", 60, Decimal(15), SOLD, LotMethod.HIFO)
    assert [(r.lot_id, r.qty) for r in s.reliefs] == [("b", 50), ("c", 10)]
    # b: 50 x (15 - 20) = -250 short; c: 10 x (15 - 14) = 10 long
    assert s.gains == Gains(short_term=Decimal(-250), long_term=Decimal(10))
    assert s.gains.tax(0.37, 0.20) == Decimal("-92.50") + Decimal("2.00")


def test_specific_id_relieves_the_named_lots_in_order():
    s = sell(LOTS, "XYZ", 110, Decimal(15), SOLD, LotMethod.SPECIFIC, lot_ids=["c", "a"])
    assert [(r.lot_id, r.qty) for r in s.reliefs] == [("c", 30), ("a", 80)]
    assert s.gains.long_term == Decimal(30) + Decimal(400)
    with pytest.raises(ValidationError, match="exceeds"):
        sell(LOTS, "XYZ", 40, Decimal(15), SOLD, LotMethod.SPECIFIC, lot_ids=["c"])
    with pytest.raises(ValidationError) as e:
        sell(LOTS, "XYZ", 1, Decimal(15), SOLD, LotMethod.SPECIFIC, lot_ids=["zz"])
    assert e.value.field == "lot_ids"
    with pytest.raises(ValidationError):
        sell(LOTS, "XYZ", 1, Decimal(15), SOLD, LotMethod.SPECIFIC)


def test_bad_sales_are_refused_and_change_nothing():
    with pytest.raises(ValidationError) as e:
        sell(LOTS, "XYZ", 181, Decimal(15), SOLD)
    assert e.value.field == "qty" and e.value.symbol == "XYZ"
    with pytest.raises(ValidationError):
        sell(LOTS, "XYZ", 0, Decimal(15), SOLD)
    with pytest.raises(ValidationError):
        sell(LOTS, "XYZ", 1, Decimal(-1), SOLD)
    with pytest.raises(ValidationError):
        TaxLot("x", "XYZ", Decimal(0), Decimal(1), SOLD)
    assert lots_by_symbol(LOTS) == {"XYZ": Decimal(180), "ABC": Decimal(10)}


def test_holding_period_boundaries():
    bought = date(2025, 3, 10)
    assert not is_long_term(bought, date(2026, 3, 10))  # the anniversary: one year, not more
    assert is_long_term(bought, date(2026, 3, 11))
    leap = date(2024, 2, 29)
    assert not is_long_term(leap, date(2025, 2, 28))
    assert is_long_term(leap, date(2025, 3, 1))


def test_wash_sale_window_boundaries():
    sale = date(2026, 6, 15)
    assert in_wash_window(sale, sale - timedelta(days=30))
    assert in_wash_window(sale, sale + timedelta(days=30))
    assert not in_wash_window(sale, sale - timedelta(days=31))
    assert not in_wash_window(sale, sale + timedelta(days=31))
    buys = [("XYZ", sale + timedelta(days=30)), ("XYZ", sale - timedelta(days=31)),
            ("ABC", sale)]
    hits = wash_sale_conflicts([("XYZ", sale, Decimal(-10)), ("ABC", sale, Decimal(5))], buys)
    assert [(h.symbol, h.bought) for h in hits] == [("XYZ", sale + timedelta(days=30))]
    lots = [TaxLot("n", "XYZ", Decimal(1), Decimal(1), sale - timedelta(days=30)),
            TaxLot("o", "XYZ", Decimal(1), Decimal(1), sale - timedelta(days=31))]
    assert recent_buys(lots, sale) == [("XYZ", sale - timedelta(days=30))]


def test_sell_tax_rates_price_the_first_lot_and_never_go_negative():
    px = {"XYZ": Decimal(15), "ABC": Decimal(2)}
    r = sell_tax_rates(LOTS, px, SOLD, LotMethod.FIFO, 0.37, 0.20)
    assert r["XYZ"] == pytest.approx((15 - 10) / 15 * 0.20)   # lot a, long term
    assert r["ABC"] == pytest.approx((2 - 1) / 2 * 0.20)
    r = sell_tax_rates(LOTS, px, SOLD, LotMethod.HIFO, 0.37, 0.20)
    assert r["XYZ"] == 0.0  # lot b is a loss: no reward for selling in the convex term
    short = [TaxLot("s", "XYZ", Decimal(1), Decimal(12), SOLD - timedelta(days=10))]
    assert sell_tax_rates(short, px, SOLD, "fifo", 0.37, 0.20)["XYZ"] == pytest.approx(
        3 / 15 * 0.37)


_lot = st.builds(
    lambda i, sym, q, c, d: TaxLot(f"L{i}", sym, Decimal(q), Decimal(c) / 100, date(2020, 1, 1)
                                   + timedelta(days=d)),
    st.integers(0, 10**6), st.sampled_from(["A", "B"]), st.integers(1, 500),
    st.integers(0, 50_000), st.integers(0, 2500))


@settings(max_examples=200, deadline=None)
@given(st.lists(_lot, min_size=1, max_size=12, unique_by=lambda x: x.lot_id),
       st.sampled_from([LotMethod.FIFO, LotMethod.HIFO, LotMethod.SPECIFIC]),
       st.integers(0, 40_000), st.floats(0.0, 1.0), st.randoms(use_true_random=False))
def test_relief_invariants(lots, method, cents, frac, rnd):
    sym = lots[0].symbol
    held = lots_by_symbol(lots)[sym]
    qty = max(int(held * Decimal(repr(frac))), 1)
    ids = None
    if method is LotMethod.SPECIFIC:
        ids = [x.lot_id for x in lots if x.symbol == sym]
        rnd.shuffle(ids)
    price = Decimal(cents) / 100
    s = sell(lots, sym, qty, price, date(2026, 12, 2), method, lot_ids=ids)
    after = lots_by_symbol(s.remaining)
    # the lots always add up to the holding: sold + left = before, other symbols untouched
    assert s.qty == qty
    assert after.get(sym, Decimal(0)) + s.qty == held
    for other, q in lots_by_symbol(lots).items():
        if other != sym:
            assert after[other] == q
    # realised gains = proceeds - basis, exactly
    proceeds = qty * price
    basis = sum((r.qty * r.cost_per_share for r in s.reliefs), Decimal(0))
    assert s.gains.total == proceeds - basis
    assert all(x.qty > 0 for x in s.remaining)
