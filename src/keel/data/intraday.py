"""Synthetic intraday data: U-shaped volume curve, minute bars, order-book snapshots.

All seeded (int or ``numpy.random.Generator``), vectorised, and laid on the real session of
an exchange calendar (half days are shorter). Times are tz-aware UTC; prices in currency per
share, sizes in shares, spreads as a fraction of mid unless named ``*_ticks``.

Shapes used (``x`` = fraction of the session elapsed, bin centres):

* volume share ``w(x) ~ 1 + open_peak exp(-x / open_decay) + close_peak exp(-(1 - x) /
  close_decay)``, normalised to sum to 1 (the classic U: heavy open, quiet lunch, heavier
  close than midday);
* spread multiplier ``s(x) = 1 + open_spread exp(-x / spread_decay)``, normalised to mean 1
  (wide after the open, tight later);
* minute return variance proportional to ``w(x)`` (volatility follows volume), so the
  session variance is ``daily_vol^2``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from keel.data.calendar import ExchangeCalendar, calendar_covering
from keel.data.orderbook import BookSnapshots
from keel.errors import ValidationError


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _centres(n_bins: int) -> np.ndarray:
    if n_bins < 1:
        raise ValidationError("n_bins must be >= 1", field="n_bins", value=n_bins)
    return (np.arange(n_bins) + 0.5) / n_bins


def u_shaped_volume_curve(n_bins: int = 390, *, open_peak: float = 2.5,
                          open_decay: float = 0.05, close_peak: float = 1.5,
                          close_decay: float = 0.04) -> np.ndarray:
    """Share of the session's volume traded in each of ``n_bins`` equal bins; sums to 1."""
    x = _centres(n_bins)
    w = 1.0 + open_peak * np.exp(-x / open_decay) + close_peak * np.exp(-(1 - x) / close_decay)
    return w / w.sum()


def intraday_spread_curve(n_bins: int = 390, *, open_spread: float = 2.0,
                          spread_decay: float = 0.08) -> np.ndarray:
    """Spread multiplier per bin (mean 1): wide after the open, tightening through the day."""
    x = _centres(n_bins)
    s = 1.0 + open_spread * np.exp(-x / spread_decay)
    return s / s.mean()


def _session_grid(session: Any, calendar: ExchangeCalendar | str | None
                  ) -> pd.DatetimeIndex:
    s = pd.Timestamp(session)
    cal = calendar_covering(calendar, s - pd.Timedelta(days=7), s + pd.Timedelta(days=7))
    return cal.session_minutes(s)


def synthetic_minute_bars(session: Any = "2024-01-02", *,
                          calendar: ExchangeCalendar | str | None = "XNYS",
                          price: float = 100.0, daily_volume: float = 1_000_000.0,
                          daily_vol: float = 0.02, spread: float = 0.0005,
                          volume_noise: float = 0.3, substeps: int = 10, tick: float = 0.01,
                          seed: int | np.random.Generator | None = 0,
                          symbol: str = "SYN") -> pd.DataFrame:
    """One session of 1-minute bars (for TWAP/VWAP tests), Lean-like columns.

    Args:
        session: the trading date; its minutes come from ``calendar`` (half days shorter).
        price: the open price. daily_volume: expected shares in the session.
        daily_vol: standard deviation of the session's log return.
        spread: average quoted spread (fraction of mid), shaped by :func:`intraday_spread_curve`.
        volume_noise: log-normal noise of each bar's volume around the U-curve.
        substeps: Brownian steps per minute used to form high/low.

    Returns:
        DataFrame indexed by ``bar_end`` (UTC) with ``bar_start, open, high, low, close,
        volume, bid, ask`` (bid/ask around the close); prices rounded to ``tick``; volume in
        whole shares (float dtype). ``attrs['symbol']`` is set.
    """
    for name, v in (("price", price), ("daily_volume", daily_volume), ("tick", tick)):
        if not v > 0:
            raise ValidationError("must be > 0", field=name, value=v)
    if daily_vol < 0 or spread <= 0 or substeps < 1:
        raise ValidationError("daily_vol >= 0, spread > 0, substeps >= 1 required",
                              field="daily_vol", value=(daily_vol, spread, substeps))
    rng = _rng(seed)
    starts = _session_grid(session, calendar)
    n = len(starts)
    w = u_shaped_volume_curve(n)
    step_sd = daily_vol * np.sqrt(w / substeps)
    steps = rng.standard_normal((n, substeps)) * step_sd[:, None]
    path = np.cumsum(steps.ravel()).reshape(n, substeps)
    open_lp = np.r_[0.0, path[:-1, -1]]
    lp = np.log(price) + np.concatenate([open_lp[:, None], path], axis=1)
    px = np.exp(lp)
    rnd = np.round
    o, c = rnd(px[:, 0] / tick) * tick, rnd(px[:, -1] / tick) * tick
    hi, lo = rnd(px.max(axis=1) / tick) * tick, rnd(px.min(axis=1) / tick) * tick
    vol = np.round(daily_volume * w * np.exp(volume_noise * rng.standard_normal(n)
                                             - 0.5 * volume_noise ** 2))
    half = 0.5 * spread * intraday_spread_curve(n) * c
    half = np.maximum(rnd(half / tick) * tick, tick / 2)
    out = pd.DataFrame({"bar_start": starts, "open": o, "high": hi, "low": lo, "close": c,
                        "volume": vol, "bid": c - half, "ask": c + half},
                       index=pd.DatetimeIndex(starts + pd.Timedelta(minutes=1), name="bar_end"))
    out.attrs["symbol"] = symbol
    return out


def synthetic_minute_history(start: Any = "2024-01-02", n_days: int = 20, *,
                             calendar: ExchangeCalendar | str | None = "XNYS",
                             price: float = 100.0,
                             seed: int | np.random.Generator | None = 0,
                             **kwargs: Any) -> pd.DataFrame:
    """``n_days`` consecutive sessions of :func:`synthetic_minute_bars`, chained (each day
    opens at the previous close), for fitting volume profiles; same columns and index."""
    rng = _rng(seed)
    s = pd.Timestamp(start)
    cal = calendar_covering(calendar, s, s + pd.Timedelta(days=int(n_days * 7 / 4.5) + 30))
    sessions = cal.sessions(s)[:n_days]
    frames = []
    for day in sessions:  # a handful of days; each day is vectorised
        bars = synthetic_minute_bars(day, calendar=cal, price=price, seed=rng, **kwargs)
        price = float(bars["close"].iloc[-1])
        frames.append(bars)
    out = pd.concat(frames)
    out.attrs = dict(frames[0].attrs)
    return out


def minute_of_session(times: Any, calendar: ExchangeCalendar | str | None = "XNYS"
                      ) -> np.ndarray:
    """Whole minutes since the open of the session containing each (tz-aware) time; -1 when
    the market is closed. For bar-end stamps pass ``bar_start`` (or ``index - 1 min``)."""
    idx = pd.DatetimeIndex(times)
    if idx.tz is None:
        raise ValidationError("naive times: a time zone is required", field="times")
    idx = idx.tz_convert("UTC")
    if len(idx) == 0:
        return np.zeros(0, dtype=np.int64)
    cal = calendar_covering(calendar, idx.min().tz_localize(None) - pd.Timedelta(days=7),
                            idx.max().tz_localize(None) + pd.Timedelta(days=7))
    sched = cal.schedule()
    opens = pd.DatetimeIndex(sched["open"])
    closes = pd.DatetimeIndex(sched["close"])
    i = opens.searchsorted(idx, side="right") - 1
    ok = i >= 0
    ok[ok] = idx[ok] < closes[i[ok]]
    out = np.full(len(idx), -1, dtype=np.int64)
    out[ok] = np.asarray((idx[ok] - opens[i[ok]]) // pd.Timedelta(minutes=1), dtype=np.int64)
    return out


def synthetic_order_book(n_snapshots: int = 1000, n_levels: int = 10, *,
                         session: Any = "2024-01-02",
                         calendar: ExchangeCalendar | str | None = "XNYS",
                         mid: float = 100.0, tick: float = 0.01, daily_vol: float = 0.02,
                         base_depth: float = 500.0, depth_growth: float = 0.35,
                         depth_noise: float = 0.5, extra_spread_ticks: float = 0.8,
                         gap_prob: float = 0.15,
                         seed: int | np.random.Generator | None = 0,
                         symbol: str = "SYN") -> BookSnapshots:
    """``n_snapshots`` x ``n_levels`` synthetic book snapshots spread evenly over a session.

    * mid: a random walk whose variance follows the volume curve (session vol ``daily_vol``);
    * spread: ``1 + Poisson(extra_spread_ticks x s(x))`` ticks, ``s`` the spread curve
      (wide at the open);
    * levels: one tick apart, with a gap of one extra tick at probability ``gap_prob``;
    * depth at level ``l`` (0 = touch): ``base_depth (1 + depth_growth l) / s(x)`` times
      log-normal noise, whole shares >= 1 -- growing away from the touch, thin at the open.

    Returns:
        :class:`~keel.data.orderbook.BookSnapshots` (never crossed; all levels present).
    """
    if n_snapshots < 1 or n_levels < 1:
        raise ValidationError("need >= 1 snapshot and level", field="n_snapshots",
                              value=(n_snapshots, n_levels))
    if not (mid > 0 and tick > 0 and base_depth > 0):
        raise ValidationError("mid, tick and base_depth must be > 0", field="mid",
                              value=(mid, tick, base_depth))
    if mid / tick < 8 * (n_levels + 1):
        raise ValidationError("mid too close to zero for this many levels", field="mid",
                              value=mid)
    rng = _rng(seed)
    minutes = _session_grid(session, calendar)
    t0, t1 = minutes[0], minutes[-1] + pd.Timedelta(minutes=1)
    frac = np.arange(n_snapshots) / n_snapshots
    ts = pd.DatetimeIndex(t0 + (t1 - t0) * frac)
    x = frac + 0.5 / n_snapshots
    n_bins = 390
    b = np.minimum((x * n_bins).astype(int), n_bins - 1)
    w = u_shaped_volume_curve(n_bins)[b]
    s_mult = intraday_spread_curve(n_bins)[b]
    w = w / w.sum()
    log_mid = np.log(mid) + np.cumsum(rng.standard_normal(n_snapshots) * daily_vol * np.sqrt(w))
    mid_ticks = np.exp(log_mid) / tick
    spread_ticks = 1 + rng.poisson(extra_spread_ticks * s_mult)
    bid0 = np.floor(mid_ticks - spread_ticks / 2.0)
    ask0 = bid0 + spread_ticks
    gaps = 1 + (rng.random((n_snapshots, n_levels - 1, 2)) < gap_prob)
    bid_t = bid0[:, None] - np.concatenate([np.zeros((n_snapshots, 1)),
                                            np.cumsum(gaps[:, :, 0], axis=1)], axis=1)
    ask_t = ask0[:, None] + np.concatenate([np.zeros((n_snapshots, 1)),
                                            np.cumsum(gaps[:, :, 1], axis=1)], axis=1)
    shape = base_depth * (1 + depth_growth * np.arange(n_levels))[None, :] / s_mult[:, None]
    noise = np.exp(depth_noise * rng.standard_normal((2, n_snapshots, n_levels))
                   - 0.5 * depth_noise ** 2)
    bid_sz = np.maximum(np.round(shape * noise[0]), 1.0)
    ask_sz = np.maximum(np.round(shape * noise[1]), 1.0)
    return BookSnapshots(ts, np.round(bid_t * tick, 10), bid_sz, np.round(ask_t * tick, 10),
                         ask_sz, symbol=symbol, source="synthetic")
