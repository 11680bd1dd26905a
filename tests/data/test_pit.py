"""Point-in-time data: stamping at the session close, the tradable mask, read-only views and
derived panels computed once (views slice the root's panels, identical to a fresh recompute)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.data.market import MarketData
from keel.data.prices import load_prices_long, read_ohlcv_long, read_wide
from keel.data.stamps import stamp_daily
from keel.data.universe import tradable_mask
from keel.errors import AmbiguousTimeError, DataError

NY = "America/New_York"
SP500 = "daily/sp500_all_stocks_5yr/all_stocks_5yr.csv.gz"


def _long_csv(tmp_path: Path, dates: list[str], name: str = "p.csv") -> Path:
    rows = ["date,open,high,low,close,volume,Name"]
    for i, d in enumerate(dates):
        rows.append(f"{d},{10 + i},{11 + i},{9 + i},{10.5 + i},{100 + i},AAA")
    p = tmp_path / name
    p.write_text("\n".join(rows) + "\n")
    return p


# ---------------------------------------------------------------- stamping


@pytest.mark.parametrize("notation", [
    "{d}",                     # a date
    "{d}T00:00:00Z",           # midnight UTC: the date, not an instant six hours before the open
    "{d}T00:00:00-05:00",      # midnight New York (winter offset)
    "{d}T00:00:00+09:00",      # midnight Tokyo: still the date label
])
def test_every_date_notation_is_stamped_at_the_session_close(tmp_path, notation):
    days = ["2024-03-04", "2024-03-05", "2024-03-06"]
    o = read_ohlcv_long(_long_csv(tmp_path, [notation.format(d=d) for d in days]))
    closes = [pd.Timestamp(f"{d} 16:00", tz=NY).tz_convert("UTC") for d in days]
    assert list(o.close.index) == closes
    # The bug of issue 14: as of 10:00 New York on 03-06 that day's close is not known yet.
    md = o.to_market(spreads=False, on_missing="mask", min_history=1)
    view = md.as_of(pd.Timestamp("2024-03-06 10:00", tz=NY))
    assert view.now == closes[1]
    assert view.prices["AAA"].iloc[-1] == 11.5


def test_half_day_and_close_notation(tmp_path):
    # 2024-11-29 closed at 13:00 New York; the close notation in any zone is kept as is.
    o = read_ohlcv_long(_long_csv(tmp_path, ["2024-11-27T16:00:00-05:00",
                                             "2024-11-29T13:00:00-05:00",
                                             "2024-12-02T16:00:00-05:00"]))
    assert o.close.index[1] == pd.Timestamp("2024-11-29 13:00", tz=NY)
    s = stamp_daily(pd.DatetimeIndex(["2024-11-29", "2024-07-03"]))
    assert list(s) == [pd.Timestamp("2024-11-29 18:00", tz="UTC"),
                       pd.Timestamp("2024-07-03 17:00", tz="UTC")]


@pytest.mark.parametrize("bad,row", [
    ("2024-03-05T10:00:00-05:00", 2),  # a time of day that is not the close
    ("2024-03-05T05:00:00Z", 2),       # midnight New York written in UTC: neither date nor close
    ("2024-03-05T20:00:00Z", 2),       # 15:00 New York, one hour before the close
])
def test_ambiguous_times_are_refused_naming_column_and_row(tmp_path, bad, row):
    dates = ["2024-03-04T21:00:00Z", bad, "2024-03-06T21:00:00Z"]
    if bad.endswith("-05:00"):
        dates = ["2024-03-04T16:00:00-05:00", bad, "2024-03-06T16:00:00-05:00"]
    with pytest.raises(AmbiguousTimeError, match="ambiguous daily timestamp") as e:
        read_ohlcv_long(_long_csv(tmp_path, dates))
    assert e.value.field == "date" and e.value.context["row"] == row
    assert e.value.context["file"].endswith("p.csv")


def test_naive_time_of_day_and_collisions_are_refused(tmp_path):
    with pytest.raises(AmbiguousTimeError, match="naive intraday") as e:
        read_ohlcv_long(_long_csv(tmp_path, ["2024-03-04", "2024-03-05 16:00", "2024-03-06"]))
    assert e.value.context["row"] == 2
    # The same session written twice (its date, then its close) is a duplicate, not two bars.
    with pytest.raises(DataError, match="duplicated"):
        read_ohlcv_long(_long_csv(tmp_path, ["2024-03-04T00:00:00Z", "2024-03-04T21:00:00Z"]))


def test_wide_parquet_in_any_zone_is_stamped_at_close(tmp_path):
    pytest.importorskip("pyarrow")
    idx = pd.DatetimeIndex(["2024-11-27", "2024-11-29", "2024-12-02"]).tz_localize(NY)
    df = pd.DataFrame({"AAA": [1.0, 2.0, 3.0]}, index=idx)
    p = tmp_path / "w.parquet"
    df.to_parquet(p)
    out = read_wide(p)
    assert list(out.index.tz_convert(NY).hour) == [16, 13, 16]
    df.index = idx + pd.Timedelta(hours=10)
    df.to_parquet(p)
    with pytest.raises(AmbiguousTimeError):
        read_wide(p)


# ---------------------------------------------------------------- tradable mask


def _loop_mask(known: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros_like(known)
    for t in range(known.shape[0]):
        for j in range(known.shape[1]):
            out[t, j] = t >= k - 1 and bool(known[max(0, t - k + 1): t + 1, j].all())
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_mask_equals_its_definition(k, seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(1, 2, (25, 4))
    v = rng.uniform(0, 5, (25, 4))
    p[rng.random(p.shape) < 0.15] = np.nan
    v[rng.random(v.shape) < 0.05] = np.nan
    got = tradable_mask(p, v, k)
    np.testing.assert_array_equal(got, _loop_mask(np.isfinite(p) & np.isfinite(v), k))
    # Causal: the mask of a prefix is the prefix of the mask.
    np.testing.assert_array_equal(tradable_mask(p[:13], v[:13], k), got[:13])


def test_mask_enter_leave_and_reenter():
    idx = pd.date_range("2024-01-02 21:00", periods=8, freq="B", tz="UTC")
    nan = np.nan
    px = pd.DataFrame({"LATE": [nan, nan, 1, 1, 1, 1, 1, 1],
                       "GONE": [1, 1, 1, 1, 1, nan, nan, nan],
                       "GAP": [1, 1, 1, nan, 1, 1, 1, 1]}, index=idx)
    vol = px.notna().astype(float) * 10
    vol[px.isna()] = nan
    md = MarketData(px, vol, on_missing="mask", min_history=3)
    t = md.tradable.astype(int)
    assert list(t["LATE"]) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert list(t["GONE"]) == [0, 0, 1, 1, 1, 0, 0, 0]
    assert list(t["GAP"]) == [0, 0, 1, 0, 0, 0, 1, 1]
    assert list(md.universe_size) == [0, 0, 2, 1, 2, 1, 2, 2]
    assert list(md.head(5).universe) == ["LATE", "GONE"]
    assert md.missing_report.masked_cells == 6 and "mask" in md.missing_report.summary()
    assert np.isnan(md.volumes.loc[idx[0], "LATE"])  # unknown stays unknown (not 0)


@pytest.fixture(scope="module")
def sp500_mask(shared_data: Path) -> MarketData:
    return load_prices_long(shared_data / SP500, on_missing="mask", min_history=63)


def test_sp500_mask_keeps_survivors_and_late_listings(sp500_mask):
    md = sp500_mask
    assert md.n_assets == 505  # nobody dropped on future information
    # A missing open/high/low (REGN 2015-06-09, VRTX 2015-05-12) never removes a known close.
    for sym, day in (("REGN", "2015-06-09"), ("VRTX", "2015-05-12")):
        assert bool(md.tradable.loc[day, sym].iloc[0])
        assert sym in md.universe
    # Late listings enter min_history sessions after their first close, not before.
    first = md.prices.notna().to_numpy().argmax(axis=0)
    late = np.flatnonzero(first > 0)
    assert len(late) == 29
    tr = md.tradable.to_numpy()
    n = len(md.prices)
    for j in late:
        if first[j] + 62 < n:
            assert not tr[first[j] + 61, j] and tr[first[j] + 62, j]
        else:  # listed in the last quarter of the file: never tradable yet
            assert not tr[:, j].any()
    size = md.universe_size
    head = (md.prices.iloc[:63].notna() & md.volumes.iloc[:63].notna()).all()
    assert size.iloc[61] == 0 and size.iloc[62] == int(head.sum()) > 450
    assert size.iloc[-1] >= 500


# ---------------------------------------------------------------- read-only views


def test_views_are_read_only_and_cannot_touch_their_root(sp500_mask):
    md = sp500_mask
    view = md.as_of(md.dates[400])
    panels = {n: getattr(view, n) for n in (
        "prices", "volumes", "spreads", "returns", "volatility", "adv_notional", "betas",
        "tradable", "market_returns", "universe_size", "sectors")}
    before = md.prices.iloc[0, 0]
    for name, p in panels.items():
        assert p is not None, name
        arr = p.to_numpy()
        assert not arr.flags.writeable, name
        with pytest.raises(ValueError, match="read-only"):
            np.asarray(p)[0] = 0
    # A view never reaches past its last row, however it is asked.
    assert view.head(10_000) is view and view.as_of(md.dates[-1]).now == view.now
    view.prices.iloc[0, 0] = -1.0  # pandas copies on write: only this view's frame changes
    assert md.prices.iloc[0, 0] == before == md.as_of(md.dates[400]).prices.iloc[0, 0]


def test_derived_panels_are_computed_once_and_equal_a_fresh_recompute(sp500_mask):
    md = sp500_mask
    n = 300
    view = md.head(n)
    assert np.shares_memory(view.betas.to_numpy(), md.betas.to_numpy())
    assert md.prices._mgr.nblocks == 1 and md.returns._mgr.nblocks == 1
    fresh = MarketData(md.prices.iloc[:n], md.volumes.iloc[:n], spreads=md.spreads.iloc[:n],
                       on_missing="mask", min_history=63)
    for name in ("returns", "volatility", "adv_notional", "adv_shares", "market_returns",
                 "betas", "tradable"):
        a, b = getattr(view, name), getattr(fresh, name)
        if isinstance(a, pd.Series):
            pd.testing.assert_series_equal(a, b, check_exact=True)
        else:
            pd.testing.assert_frame_equal(a, b, check_exact=True)
