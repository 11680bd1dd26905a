"""Block orders and the pro-rata allocation of fills (largest remainder, exact sums)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.accounts.allocation import AccountOrder, allocate, allocate_block, build_blocks
from keel.errors import ValidationError
from keel.types import Side


def test_hand_computed_allocation_and_tie_break():
    # 7 of 10: exact 2.1 / 2.8 / 2.1 -> floors 2, 2, 2; one share left: largest remainder b
    assert allocate({"a": 3, "b": 4, "c": 3}, 7) == {"a": 2, "b": 3, "c": 2}
    # equal remainders and equal sizes: account id ascending takes the spare shares
    assert allocate({"c": 1, "a": 1, "b": 1}, 2) == {"a": 1, "b": 1, "c": 0}
    # equal remainders, different sizes: the larger request first
    assert allocate({"a": 2, "b": 6}, 4) == {"a": 1, "b": 3}
    assert allocate({"a": 5, "b": 5}, 0) == {"a": 0, "b": 0}
    assert allocate({"a": 5, "b": 5}, 10) == {"a": 5, "b": 5}


def test_bad_inputs_are_refused():
    with pytest.raises(ValidationError):
        allocate({"a": 3}, 4)
    with pytest.raises(ValidationError):
        allocate({"a": 3}, -1)
    with pytest.raises(ValidationError):
        allocate({"a": -3, "b": 5}, 1)
    with pytest.raises(ValidationError):
        allocate({"a": Decimal("1.5")}, 1)
    with pytest.raises(ValidationError):
        build_blocks([AccountOrder("a", "X", Side.BUY, 0)])


def test_blocks_are_gross_per_symbol_and_side():
    orders = [AccountOrder("a", "X", Side.BUY, 10), AccountOrder("b", "X", Side.SELL, 4),
              AccountOrder("c", "X", Side.BUY, 5), AccountOrder("a", "Y", Side.SELL, 1),
              AccountOrder("c", "X", Side.BUY, 1)]
    blocks = build_blocks(orders)
    assert [(b.symbol, b.side, b.qty) for b in blocks] == [
        ("X", Side.BUY, 16), ("X", Side.SELL, 4), ("Y", Side.SELL, 1)]
    assert blocks[0].legs == (("a", 10), ("c", 6))
    al = allocate_block(blocks[0], 8, Decimal("10.25"))
    assert al.shares == {"a": 5, "c": 3} and al.avg_price == Decimal("10.25")


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text("abcdefgh", min_size=1, max_size=4),
                       st.integers(0, 10**7), min_size=1, max_size=40),
       st.floats(0.0, 1.0))
def test_allocation_sums_exactly_and_is_fair(requested, frac):
    total = sum(requested.values())
    filled = int(total * frac)
    out = allocate(requested, filled)
    assert sum(out.values()) == filled
    assert set(out) == set(requested)
    for a, q in requested.items():
        assert 0 <= out[a] <= q
        if total:
            exact = Fraction(filled * q, total)
            assert exact - 1 < out[a] < exact + 1  # floor or ceil of the exact pro rata
    # deterministic whatever the order of the input
    assert allocate(dict(reversed(list(requested.items()))), filled) == out
