"""keel.fmt: numbers as a desk reads them, and JSON values as every endpoint writes them;
checked against Python's own format mini-language and exact Decimal arithmetic."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel import fmt
from keel.types import OrderStatus, Side


@pytest.mark.parametrize(("x", "want"), [
    (1e7, "10,000,000.00"), (1.19e6, "1,190,000.00"), (8.81e6, "8,810,000.00"),
    (Decimal("6503.961500000000000000000142"), "6,503.96"), (-1234.5, "-1,234.50"),
    (-0.001, "0.00"), (Decimal("-0.001"), "0.00"), (None, "–"), (float("nan"), "–"),
    (np.float64(2.5), "2.50"),
])
def test_money(x, want):
    assert fmt.money(x) == want


def test_the_other_kinds():
    assert fmt.qty(Decimal("2000")) == "2,000" and fmt.qty(1500.0) == "1,500"
    assert fmt.qty(Decimal("0.125")) == "0.125" and fmt.qty(2.5) == "2.5"
    assert fmt.bps(3.456) == "3.5" and fmt.bps(-2.04, sign=True) == "-2.0"
    assert fmt.bps(2.0, sign=True) == "+2.0"
    assert fmt.pct(0.0123) == "1.23%" and fmt.pct(None) == "–"
    assert fmt.price(1234.5) == "1,234.50"
    assert fmt.header("equity", "USD") == "equity (USD)" and fmt.header("orders") == "orders"


@given(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False))
def test_money_is_the_format_mini_language(x):
    s = fmt.money(x)
    want = f"{x:,.2f}"
    assert s == (want[1:] if want.startswith("-") and float(want.replace(",", "")) == 0
                 else want)


@given(st.decimals(min_value=-10**12, max_value=10**12, allow_nan=False, places=6))
def test_decimal_money_is_exact_half_even(x):
    got = Decimal(fmt.money(x).replace(",", ""))
    assert got == x.quantize(Decimal("0.01"))  # the default context rounds half-even


def test_json_values():
    t = datetime(2026, 1, 2, 15, 30, tzinfo=UTC)
    assert fmt.to_json({"side": Side.BUY, "status": OrderStatus.PARTIALLY_FILLED, "t": t,
                        "naive": datetime(2026, 1, 2), "x": float("nan"),
                        "px": Decimal("1.50"), "n": np.int64(3), "xs": (1.5, None)}) == {
        "side": "BUY", "status": "PARTIALLY_FILLED", "t": "2026-01-02T15:30:00+00:00",
        "naive": "2026-01-02T00:00:00+00:00", "x": None, "px": "1.50", "n": 3,
        "xs": [1.5, None]}
    ny = timezone(timedelta(hours=-5))
    assert fmt.time_json(t.astimezone(ny)) == "2026-01-02T10:30:00-05:00"
    assert fmt.money_json(Decimal("6503.961500000000000000000142")) == "6503.96"
    assert fmt.money_json(0.1) == "0.10" and fmt.money_json(None) is None
    assert fmt.money_json(Decimal("46.89"), Decimal("0.05")) == "46.90"
    assert fmt.money_json(Decimal("100.125"), Decimal("0.25")) == "100.00"
    assert fmt.qty_json(Decimal("2000.000")) == "2000" and fmt.qty_json(0.5) == "0.5"
    assert json.loads(fmt.js_config())["money"] == fmt.DECIMALS["money"]


def test_the_cli_can_import_it_without_the_service():
    code = ("import sys, keel.fmt; "
            "print(sorted(m for m in ('fastapi', 'pandas', 'sqlalchemy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
