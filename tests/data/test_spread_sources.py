"""Spread sources: quotes first, a labelled estimate or a fixed value otherwise (issue 14.4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keel.data.spreads import (
    ESTIMATE_CAVEAT,
    SpreadSource,
    abdi_ranaldo_spread,
    daily_quoted_spread,
    select_spreads,
)
from keel.errors import DataError, ValidationError

IDX = pd.date_range("2024-01-02", periods=30, freq="B", tz="UTC")
SYMS = pd.Index(["A", "B", "C"])


def _ohlc(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    close = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.01, (30, 3)), axis=0)),
                         index=IDX, columns=SYMS)
    return close * 1.01, close * 0.99, close


def test_quotes_first_then_labelled_fallbacks() -> None:
    high, low, close = _ohlc()
    quotes = pd.DataFrame({"A": 2e-4, "B": np.nan}, index=IDX)
    p = select_spreads("quotes", index=IDX, symbols=SYMS, quotes=quotes, high=high, low=low,
                       close=close)
    est = abdi_ranaldo_spread(high, low, close)
    assert (p.values["A"] == 2e-4).all()
    pd.testing.assert_series_equal(p.values["B"], est["B"], check_names=False)
    assert p.source.to_dict() == {"A": "quotes", "B": "estimate", "C": "estimate"}
    assert "2 name(s) without quotes" in p.caveat and ESTIMATE_CAVEAT in p.caveat
    fixed = select_spreads(SpreadSource.QUOTES, index=IDX, symbols=SYMS, quotes=quotes,
                           default_spread_bps=5.0)
    assert fixed.source["B"] == "fixed" and fixed.values["C"].iloc[-1] == pytest.approx(5e-4)
    with pytest.raises(DataError) as e:
        select_spreads("quotes", index=IDX, symbols=SYMS, quotes=quotes)
    assert e.value.field == "spreads" and e.value.symbol == "B"


def test_estimate_and_fixed_sources() -> None:
    high, low, close = _ohlc()
    e = select_spreads("estimate", index=IDX, symbols=SYMS, high=high, low=low, close=close)
    assert set(e.source) == {"estimate"} and e.caveat == ESTIMATE_CAVEAT
    f = select_spreads("fixed", index=IDX, symbols=SYMS, high=high, low=low, close=close,
                       default_spread_bps=1.5)
    assert np.allclose(f.values.to_numpy(), 1.5e-4) and set(f.source) == {"fixed"}
    with pytest.raises(ValidationError) as err:
        select_spreads("fixed", index=IDX, symbols=SYMS)
    assert err.value.field == "default_spread_bps"
    with pytest.raises(DataError):
        select_spreads("estimate", index=IDX, symbols=SYMS)
    with pytest.raises(ValidationError) as err:
        select_spreads("vibes", index=IDX, symbols=SYMS)
    assert err.value.field == "spread_source"


def test_daily_quoted_spread_on_spy_quotes(shared_data: Path) -> None:
    from keel.execution.bars import load_minute_bars

    bars = load_minute_bars(shared_data / "intraday/lean_minute/spy")
    q = daily_quoted_spread(bars)
    assert len(q) == 7
    # SPY is pinned at one cent: about 0.6 bps at 168 (2013), 0.2 bps at 450 (2023)
    assert 0.5e-4 < q.iloc[0] < 0.7e-4 and 0.2e-4 <= q.iloc[-1] < 0.3e-4
    hand = bars.loc["2023-08-03 13:30":"2023-08-03 19:59"]
    hand = hand[(hand["bid"] > 0) & (hand["ask"] > hand["bid"])]
    rel = (hand["ask"] - hand["bid"]) / (0.5 * (hand["ask"] + hand["bid"]))
    assert q.iloc[-1] == pytest.approx(float(rel.median()))
