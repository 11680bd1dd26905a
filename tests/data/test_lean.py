"""Lean minute (equity, crypto) and daily + factor-file loaders against the real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keel.data.calendar import ExchangeCalendar
from keel.data.lean import (
    load_lean_daily,
    load_lean_daily_market,
    load_lean_factor_file,
    load_lean_minute,
    load_lean_minute_folder,
)
from keel.errors import DataError

MIN = "intraday/lean_minute"


def test_spy_trade_bars_session_filter_units_and_utc(shared_data):
    f = shared_data / MIN / "spy/20131007_spy_minute_trade.csv"
    bars = load_lean_minute(f)
    assert len(bars) == 390
    first = bars.iloc[0]
    # ms 34200000 = 09:30 EDT = 13:30 UTC start; the row is stamped at its end, 13:31.
    assert bars.index[0] == pd.Timestamp("2013-10-07 13:31", tz="UTC")
    assert first["bar_start"] == pd.Timestamp("2013-10-07 13:30", tz="UTC")
    assert (first["open"], first["close"], first["volume"]) == (167.43, 167.44, 816453)
    assert bars.index[-1] == pd.Timestamp("2013-10-07 20:00", tz="UTC")
    cal = ExchangeCalendar("XNYS", "2013-01-01", "2013-12-31")
    assert cal.is_open_array(bars["bar_start"]).all()
    ext = load_lean_minute(f, extended_hours=True)
    assert len(ext) == 828 and ext.index[0] == pd.Timestamp("2013-10-07 08:01", tz="UTC")
    assert bars.attrs == {"symbol": "SPY", "kind": "trade", "date": "2013-10-07"}


def test_quote_bars_and_gaps_are_not_filled(shared_data):
    q = load_lean_minute(shared_data / MIN / "spy/20131007_spy_minute_quote.csv")
    assert (q["ask_close"] >= q["bid_close"]).all()  # consolidated quotes can lock
    assert (q["ask_close"] > q["bid_close"]).mean() > 0.95
    assert q.iloc[0]["bid_open"] == 167.41 and q.iloc[0]["ask_size"] == 1400
    ibm = load_lean_minute(shared_data / MIN / "ibm/20131004_ibm_minute_trade.csv")
    assert len(ibm) == 389  # two minutes without a trade stay absent


def test_folder_loader_concatenates_days(shared_data):
    t = load_lean_minute_folder(shared_data / MIN / "spy", "trade")
    assert t.index.is_monotonic_increasing and not t.index.has_duplicates
    days = pd.DatetimeIndex(t["bar_start"]).tz_convert("America/New_York").normalize()
    assert days.nunique() == 7 and t.attrs["symbol"] == "SPY"
    profile = t.groupby(days)["volume"].transform(lambda v: v / v.sum())
    assert np.isclose(profile.groupby(days).sum(), 1).all()
    with pytest.raises(DataError, match="kind"):
        load_lean_minute_folder(shared_data / MIN / "spy", "bogus")


def test_crypto_minute_bars_are_utc_usd_24h(shared_data):
    f = shared_data / "intraday/lean_crypto_minute/20180405_btcusd_minute_trade.csv"
    c = load_lean_minute(f, crypto=True)
    assert len(c) == 1440
    assert c["bar_start"].iloc[0] == pd.Timestamp("2018-04-05 00:00", tz="UTC")
    assert 6000 < c["close"].median() < 8000  # USD, not x10000
    auto = load_lean_minute(f)  # the folder name says crypto
    pd.testing.assert_frame_equal(c, auto)


def test_daily_with_factor_file_adjusts_the_aapl_split(shared_data):
    d = shared_data / "daily"
    raw = load_lean_daily(d / "lean_daily/aapl.csv.gz")
    adj = load_lean_daily(d / "lean_daily/aapl.csv.gz",
                          factor_file=d / "lean_factor_files/aapl.csv")
    jump_raw = raw["close"].loc["2014-06-09"].iloc[0] / raw["close"].loc["2014-06-06"].iloc[0]
    jump_adj = adj["close"].loc["2014-06-09"].iloc[0] / adj["close"].loc["2014-06-06"].iloc[0]
    assert jump_raw < 0.2  # the 7:1 split in raw prices
    assert 0.95 < jump_adj < 1.05
    assert raw.index[0] == pd.Timestamp("1998-01-02 21:00", tz="UTC")
    f = load_lean_factor_file(d / "lean_factor_files/aapl.csv")
    assert f["split_factor"].iloc[-1] == 1
    # Volume is scaled up by the inverse split factor: raw shares x 28 before 2014.
    ratio = adj["volume"].loc["2014-06-06"].iloc[0] / raw["volume"].loc["2014-06-06"].iloc[0]
    assert ratio == pytest.approx(28, rel=1e-4)


@pytest.mark.parametrize("text, field, row, match", [
    ("34200000,1,1,1,1,5\n34200000,1,1,1,1,5\n", "ms", 2, "duplicated"),
    ("34260000,1,1,1,1,5\n34200000,1,1,1,1,5\n", "ms", 2, "not sorted"),
    ("34200000,1,1,1,0,5\n", "close", 1, "non-positive"),
    ("34200000,1,1,1,1,-5\n", "volume", 1, "negative"),
    ("34200000,1,1,1,,5\n", "close", 1, "NaN"),
    ("34200000,1,1,1,1\n", "columns", None, "6 columns"),
    ("99999999,1,1,1,1,5\n", "ms", 1, "out of"),
])
def test_bad_minute_files(tmp_path: Path, text, field, row, match):
    p = tmp_path / "20131007_xyz_minute_trade.csv"
    p.write_text(text)
    with pytest.raises(DataError, match=match) as e:
        load_lean_minute(p)
    assert e.value.field == field and e.value.context["file"] == str(p)
    if row is not None:
        assert e.value.context["row"] == row


def test_bad_minute_file_name(tmp_path):
    p = tmp_path / "spy.csv"
    p.write_text("1,1,1,1,1,1\n")
    with pytest.raises(DataError, match="file name"):
        load_lean_minute(p)


def test_lean_daily_folder_to_market(shared_data):
    d = shared_data / "daily"
    md = load_lean_daily_market(d / "lean_daily", factor_folder=d / "lean_factor_files",
                                symbols=["spy", "aapl", "ibm"])
    assert list(md.symbols) == ["AAPL", "IBM", "SPY"]
    assert md.prices.index[0] == pd.Timestamp("1998-01-02 21:00", tz="UTC")
    splits = ["2000-06-21", "2005-02-28", "2014-06-09", "2020-08-31"]  # 2:1, 2:1, 7:1, 4:1
    r = md.returns["AAPL"]
    for day in splits:
        assert abs(r.loc[day].iloc[0]) < 0.15, day  # raw: -50 % or worse
    with pytest.raises(DataError) as e:
        load_lean_daily_market(d / "lean_daily", symbols=["spy", "zzzz"])
    assert e.value.symbol == "zzzz"
