"""Synthetic intraday curves, minute bars and order books: shape facts and determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.data.intraday import (
    intraday_spread_curve,
    minute_of_session,
    synthetic_minute_bars,
    synthetic_minute_history,
    synthetic_order_book,
    u_shaped_volume_curve,
)
from keel.errors import ValidationError


def test_volume_curve_is_u_shaped_and_sums_to_one():
    w = u_shaped_volume_curve(390)
    assert w.sum() == pytest.approx(1.0)
    mid = w[150:240].mean()
    assert w[:30].mean() > 2 * mid and w[-30:].mean() > 1.5 * mid
    assert w.argmin() in range(60, 330)
    s = intraday_spread_curve(390)
    assert s.mean() == pytest.approx(1.0) and s[0] > 2 * s[200]


def test_minute_bars_consistent_and_seeded():
    a = synthetic_minute_bars("2024-01-02", seed=4, daily_volume=2e6)
    b = synthetic_minute_bars("2024-01-02", seed=4, daily_volume=2e6)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 390
    assert a.index[0] == pd.Timestamp("2024-01-02 14:31", tz="UTC")
    assert (a["high"] >= a[["open", "close"]].max(axis=1)).all()
    assert (a["low"] <= a[["open", "close"]].min(axis=1)).all()
    assert (a["ask"] > a["bid"]).all()
    assert a["volume"].sum() == pytest.approx(2e6, rel=0.1)
    v = a["volume"].to_numpy()
    assert v[:30].mean() > 1.5 * v[150:240].mean()  # U-shape shows in the draws
    assert (a["open"].iloc[1:].to_numpy() == a["close"].iloc[:-1].to_numpy()).all()


def test_minute_bars_follow_the_calendar_half_day():
    bars = synthetic_minute_bars("2013-11-29", seed=1)
    assert len(bars) == 210 and bars.index[-1] == pd.Timestamp("2013-11-29 18:00", tz="UTC")
    with pytest.raises(ValidationError):
        synthetic_minute_bars(price=-1)


def test_order_book_shape_depth_and_time_of_day():
    ob = synthetic_order_book(2000, 10, seed=9)
    assert (ob.n_snapshots, ob.n_levels) == (2000, 10)
    assert (np.diff(ob.bid_px, axis=1) < 0).all() and (np.diff(ob.ask_px, axis=1) > 0).all()
    assert (ob.ask_px[:, 0] > ob.bid_px[:, 0]).all()
    depth = (ob.bid_sz + ob.ask_sz).mean(axis=0)
    assert (np.diff(depth) > 0).all()  # grows away from the touch
    early, mid = slice(0, 100), slice(800, 1200)
    assert ob.relative_spread[early].mean() > 1.3 * ob.relative_spread[mid].mean()
    assert ob.depth("bid")[early].mean() < ob.depth("bid")[mid].mean()
    assert ob.timestamps[0] == pd.Timestamp("2024-01-02 14:30", tz="UTC")
    assert ob.timestamps[-1] < pd.Timestamp("2024-01-02 21:00", tz="UTC")
    again = synthetic_order_book(2000, 10, seed=9)
    np.testing.assert_array_equal(ob.bid_sz, again.bid_sz)
    np.testing.assert_array_equal(ob.ask_px, again.ask_px)
    with pytest.raises(ValidationError):
        synthetic_order_book(10, 10, mid=0.5)


def test_minute_history_and_minute_of_session():
    h = synthetic_minute_history("2013-11-25", 5, seed=2)
    assert len(h) == 4 * 390 + 210  # Thanksgiving skipped, the Friday is a half day
    m = minute_of_session(h["bar_start"])
    assert m.min() == 0 and m.max() == 389
    assert (m[:390] == np.arange(390)).all()
    opens = h["open"].to_numpy()
    closes = h["close"].to_numpy()
    assert (opens[1:] == closes[:-1]).all()  # chained across days
    closed = pd.DatetimeIndex(["2013-11-28 15:00", "2013-11-29 18:30"], tz="UTC")
    assert (minute_of_session(closed) == -1).all()
    with pytest.raises(ValidationError):
        minute_of_session(pd.DatetimeIndex(["2013-11-29 15:00"]))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 300), levels=st.integers(1, 20),
       mid=st.floats(5.0, 5000.0), extra=st.floats(0.0, 5.0), gap=st.floats(0.0, 0.9))
def test_order_book_invariants_for_any_parameters(seed, n, levels, mid, extra, gap):
    ob = synthetic_order_book(n, levels, mid=mid, extra_spread_ticks=extra, gap_prob=gap,
                              seed=seed)  # BookSnapshots validates: sorted, sizes >= 0, ...
    assert (ob.ask_px[:, 0] > ob.bid_px[:, 0]).all()
    assert (ob.bid_sz >= 1).all() and (ob.ask_sz >= 1).all()
    ticks = ob.ask_px / 0.01
    assert np.allclose(ticks, np.round(ticks))
    if levels > 1:
        assert (np.diff(ob.ask_px, axis=1) > 0).all() and (np.diff(ob.bid_px, axis=1) < 0).all()


@settings(max_examples=30, deadline=None)
@given(offsets=st.lists(st.integers(0, 10 * 24 * 60), min_size=1, max_size=50))
def test_minute_of_session_agrees_with_is_open(offsets):
    from keel.data.calendar import ExchangeCalendar

    cal = ExchangeCalendar("XNYS", "2013-11-01", "2013-12-31")
    times = pd.Timestamp("2013-11-22", tz="UTC") + pd.to_timedelta(offsets, unit="min")
    m = minute_of_session(times, cal)
    assert ((m >= 0) == cal.is_open_array(times)).all()
    for t, k in zip(times, m, strict=True):
        if k >= 0:
            assert cal.open(cal.session_of(t)) + pd.Timedelta(minutes=int(k)) <= t
