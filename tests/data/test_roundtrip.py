"""Property tests: any valid panel written as a long file loads back exactly."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.data.calendar import ExchangeCalendar, stamp_at_close
from keel.data.prices import read_ohlcv_long

SESSIONS = ExchangeCalendar("XNYS", "2010-01-01", "2012-12-31").sessions()


@settings(max_examples=25, deadline=None)
@given(start=st.integers(0, len(SESSIONS) - 60), n_days=st.integers(2, 50),
       n_sym=st.integers(1, 6), seed=st.integers(0, 2**31 - 1),
       shuffle=st.booleans())
def test_long_file_round_trip(start, n_days, n_sym, seed, shuffle):
    rng = np.random.default_rng(seed)
    days = SESSIONS[start: start + n_days]
    close = np.round(np.exp(rng.normal(3, 1, (n_days, n_sym))), 4)
    vol = rng.integers(0, 10**6, (n_days, n_sym)).astype(float)
    syms = [f"X{i}" for i in range(n_sym)]
    long = pd.DataFrame({
        "date": np.repeat(days.strftime("%Y-%m-%d"), n_sym),
        "close": close.ravel(), "volume": vol.ravel(), "Name": syms * n_days,
    })
    if shuffle:  # symbols interleaved in any order; dates sorted within each symbol
        long = long.sample(frac=1, random_state=seed % 1000).sort_values("date", kind="stable")
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "long.csv"
        long.to_csv(p, index=False)
        o = read_ohlcv_long(p)
    stamps = stamp_at_close(days, "XNYS")
    expected = pd.DataFrame(close, index=stamps, columns=syms)
    np.testing.assert_array_equal(o.close.index, stamps)
    np.testing.assert_allclose(o.close[syms].to_numpy(), expected.to_numpy())
    np.testing.assert_allclose(o.volume[syms].to_numpy(), vol)
    assert o.open.isna().all().all()  # no open column in the file: NaN panel, not invented
