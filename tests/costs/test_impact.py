from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.costs._session import minutes_after_open
from keel.costs.impact import (
    book_samples,
    market_order_samples,
    walk_book,
    walk_book_pairs,
)
from keel.data.lobster import find_lobster_pair, load_lobster
from keel.data.orderbook import BookSnapshots
from keel.errors import DataError, ValidationError

TS = pd.date_range("2024-01-02 14:30", periods=2, freq="min", tz="UTC")


def _book() -> BookSnapshots:
    nan = np.nan
    return BookSnapshots(
        TS,
        bid_px=np.array([[99.9, 99.8, 99.7], [99.95, nan, nan]]),
        bid_sz=np.array([[100.0, 200.0, 300.0], [50.0, 0.0, 0.0]]),
        ask_px=np.array([[100.1, 100.2, 100.4], [100.05, 100.1, nan]]),
        ask_sz=np.array([[100.0, 200.0, 300.0], [10.0, 40.0, 0.0]]),
        symbol="X")


def brute_force(book: BookSnapshots, sizes: np.ndarray, side: str) -> np.ndarray:
    """One order at a time, one level at a time: the reference for the vectorised walker."""
    px, sz = (book.ask_px, book.ask_sz) if side == "buy" else (book.bid_px, book.bid_sz)
    sign = 1.0 if side == "buy" else -1.0
    out = np.full((book.n_snapshots, len(sizes)), np.nan)
    for t in range(book.n_snapshots):
        mid = (book.ask_px[t, 0] + book.bid_px[t, 0]) / 2
        for k, x in enumerate(sizes):
            left, paid = x, 0.0
            for lvl in range(book.n_levels):
                take = min(left, sz[t, lvl])
                if take > 0:
                    paid += take * px[t, lvl]
                    left -= take
                if left <= 0:
                    break
            if left <= 1e-9:
                avg = paid / x if x > 0 else px[t, 0]
                out[t, k] = sign * (avg - mid)
    return out


def test_hand_built_book() -> None:
    r = walk_book(_book(), np.array([0.0, 50.0, 100.0, 250.0, 600.0, 601.0]))
    # snapshot 0, mid 100.0: 250 shares = 100 @100.1 + 150 @100.2
    np.testing.assert_allclose(r.avg_price[0, :5],
                               [100.1, 100.1, 100.1, (10010 + 150 * 100.2) / 250,
                                (10010 + 20040 + 300 * 100.4) / 600])
    assert np.isnan(r.avg_price[0, 5]) and not r.filled[0, 5]
    np.testing.assert_allclose(r.slippage[0, :2], [0.1, 0.1])
    # snapshot 1 has only 50 shares on the ask
    np.testing.assert_array_equal(r.filled[1], [True, True, False, False, False, False])
    assert r.slippage_bps[0, 0] == pytest.approx(10.0)
    s = walk_book(_book(), [150.0], side="sell")
    assert s.slippage[0, 0] == pytest.approx(100.0 - (100 * 99.9 + 50 * 99.8) / 150)


@pytest.mark.parametrize("folder", ["lobster_AAPL_2012-06-21_L10_head",
                                    "lobster_AMZN_2012-06-21_L1"])
def test_walker_matches_brute_force_on_real_snapshots(shared_data: Path, folder: str) -> None:
    book = load_lobster(*find_lobster_pair(shared_data / "lob" / folder)).book
    sub = BookSnapshots(book.timestamps[::25], book.bid_px[::25], book.bid_sz[::25],
                        book.ask_px[::25], book.ask_sz[::25])
    sizes = np.array([0.0, 1.0, 37.0, 100.0, 250.0, 999.0, 2500.0, 10_000.0])
    for side in ("buy", "sell"):
        fast = walk_book(sub, sizes, side).slippage
        slow = brute_force(sub, sizes, side)
        np.testing.assert_array_equal(np.isnan(fast), np.isnan(slow))
        np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-10)
    idx = np.array([0, 3, 7, 3])
    xs = np.array([10.0, 300.0, 5.0, 300.0])
    np.testing.assert_allclose(walk_book_pairs(sub, idx, xs),
                               [brute_force(sub, np.array([x]), "buy")[i, 0]
                                for i, x in zip(idx, xs, strict=True)])


def test_market_order_samples_groups_sweeps() -> None:
    ts = pd.date_range("2024-01-02 14:30", periods=5, freq="s", tz="UTC")
    book = BookSnapshots(ts, np.full((5, 1), 99.0), np.full((5, 1), 100.0),
                         np.array([[101.0], [101.0], [102.0], [102.0], [102.0]]),
                         np.full((5, 1), 100.0))
    msgs = pd.DataFrame({
        "seconds": [1.0, 2.0, 2.0, 3.0, 4.0],
        "event": [1, 4, 4, 3, 5],
        "size": [10, 100, 50, 5, 30],
        "price": [99.0, 101.0, 102.0, 99.0, 99.0],
        "direction": [1, -1, -1, 1, 1],
    })
    s = market_order_samples(msgs, book)
    assert len(s) == 2
    # a buy sweep of 150 at vwap (100*101 + 50*102)/150 against mid 100
    assert s.loc[0, "side"] == 1 and s.loc[0, "size"] == 150
    assert s.loc[0, "slippage"] == pytest.approx((100 * 101 + 50 * 102) / 150 - 100.0)
    # a hidden buy limit order executed = a sell at 99 against mid (99 + 102) / 2
    assert s.loc[1, "side"] == -1 and s.loc[1, "slippage"] == pytest.approx(100.5 - 99.0)
    assert s.loc[1, "cost"] == pytest.approx(30 * 1.5)
    with pytest.raises(DataError) as e:
        market_order_samples(msgs.iloc[:3], book)
    assert e.value.field == "messages"


def test_amzn_market_orders_pay_about_the_half_spread(shared_data: Path) -> None:
    day = load_lobster(*find_lobster_pair(shared_data / "lob/lobster_AMZN_2012-06-21_L1"))
    book = day.book
    s = market_order_samples(day.messages, book)
    assert len(s) > 5000
    half = 0.5 * np.median(book.spread)
    assert 0.5 * half < s["slippage"].median() < 2 * half
    assert s["minute"].between(0, 390).all()


def test_book_samples_and_minutes() -> None:
    s = book_samples(_book(), np.array([0.0, 50.0, 300.0]))
    assert len(s) == 3 and s.attrs["unfilled"] == 1
    np.testing.assert_allclose(s["cost"], s["size"] * s["slippage"])
    assert minutes_after_open(pd.DatetimeIndex(["2024-01-02 15:00"], tz="UTC"))[0] == 30.0


def test_bad_inputs() -> None:
    with pytest.raises(ValidationError) as e:
        walk_book(_book(), [-5.0])
    assert e.value.field == "sizes"
    with pytest.raises(ValidationError) as e:
        walk_book(_book(), [5.0], side="short")
    assert e.value.field == "side"
    with pytest.raises(ValidationError) as e:
        walk_book_pairs(_book(), np.array([5]), np.array([1.0]))
    assert e.value.field == "snapshot"
    empty = BookSnapshots(TS[:1], np.array([[99.0]]), np.array([[5.0]]),
                          np.array([[np.nan]]), np.array([[0.0]]))
    with pytest.raises(DataError) as e:
        walk_book(empty, [1.0])
    assert e.value.field == "ask_sz"
    assert np.isfinite(walk_book(empty, [1.0], side="sell").avg_price).all()
    with pytest.raises(DataError) as e:  # crossed
        BookSnapshots(TS[:1], np.array([[101.0]]), np.array([[1.0]]), np.array([[100.0]]),
                      np.array([[1.0]]))
    assert e.value.field == "bid_px"
    with pytest.raises(DataError) as e:  # empty
        BookSnapshots(TS[:0], np.zeros((0, 1)), np.zeros((0, 1)), np.zeros((0, 1)),
                      np.zeros((0, 1)))
    assert e.value.field == "bid_px"


@given(seed=st.integers(0, 10_000), levels=st.integers(1, 6))
@settings(max_examples=40, deadline=None)
def test_average_price_rises_with_size_and_matches_loop(seed: int, levels: int) -> None:
    rng = np.random.default_rng(seed)
    t = 5
    mid = 100 + rng.normal(0, 1, (t, 1))
    ticks = np.cumsum(rng.integers(1, 4, (t, levels)), axis=1) * 0.01
    sz = rng.integers(0, 500, (t, levels)).astype(float)
    book = BookSnapshots(pd.date_range("2024-01-02 14:30", periods=t, freq="s", tz="UTC"),
                         mid - ticks, sz[:, ::-1].copy(), mid + ticks, sz)
    sizes = np.sort(rng.uniform(0, 2000, 12))
    for side in ("buy", "sell"):
        r = walk_book(book, sizes, side)
        np.testing.assert_allclose(r.slippage, brute_force(book, sizes, side), rtol=1e-12)
        s = np.where(r.filled, r.slippage, np.inf)
        assert np.all(np.diff(s, axis=1)[np.isfinite(np.diff(s, axis=1))] >= -1e-9)
        assert np.all(r.slippage[r.filled] > 0)
