"""Market hours from the exchange calendar: trading windows and trading-time arithmetic.

Everything here works in UTC tz-aware ``pd.Timestamp``s. Half days come from the calendar's own
session close; nights, weekends and holidays carry no trading time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from keel.errors import CalendarError


@lru_cache(maxsize=4)
def get_calendar(name: str = "XNYS") -> Any:
    """The ``exchange_calendars`` calendar ``name`` (cached)."""
    import exchange_calendars as xcals
    from exchange_calendars.errors import InvalidCalendarName

    try:
        return xcals.get_calendar(name)
    except InvalidCalendarName as exc:
        raise CalendarError(f"unknown exchange calendar: {exc}", field="calendar",
                            value=name) from None


@dataclass(frozen=True)
class Window:
    """The part ``[start, end)`` of the session ``[open, close)`` that is traded."""

    open: pd.Timestamp
    close: pd.Timestamp
    start: pd.Timestamp
    end: pd.Timestamp

    @property
    def minutes(self) -> float:
        return (self.end - self.start).total_seconds() / 60.0

    @property
    def session_minutes(self) -> float:
        return (self.close - self.open).total_seconds() / 60.0


def _ts(t: datetime | pd.Timestamp, name: str) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    if ts.tzinfo is None:
        raise CalendarError("naive time: a time zone is required", field=name, value=t)
    return ts.tz_convert("UTC")


def _session_bounds(cal: Any, day: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    return (pd.Timestamp(cal.session_open(day)).tz_convert("UTC"),
            pd.Timestamp(cal.session_close(day)).tz_convert("UTC"))


def _sessions_from(cal: Any, t: pd.Timestamp, n: int) -> list[pd.Timestamp]:
    day = pd.Timestamp(t.tz_convert(cal.tz).date())
    if day < cal.first_session or day > cal.last_session:
        raise CalendarError("time outside the calendar's range", field="start", value=str(t))
    first = cal.date_to_session(day, direction="previous")
    idx = cal.sessions.get_loc(first)
    return list(cal.sessions[idx: idx + n])


def next_trading_time(t: datetime | pd.Timestamp, calendar: str = "XNYS") -> pd.Timestamp:
    """``t`` itself when the market is open at ``t``, else the next session open."""
    cal = get_calendar(calendar)
    ts = _ts(t, "start")
    for s in _sessions_from(cal, ts, 10):
        o, c = _session_bounds(cal, s)
        if ts < c:
            return max(ts, o)
    raise CalendarError("no session after this time", field="start", value=str(ts))


def session_close_after(t: datetime | pd.Timestamp, calendar: str = "XNYS") -> pd.Timestamp:
    """Close of the session that is open at ``t`` (or of the next one)."""
    cal = get_calendar(calendar)
    ts = next_trading_time(t, calendar)
    for s in _sessions_from(cal, ts, 3):
        o, c = _session_bounds(cal, s)
        if o <= ts < c:
            return c
    raise CalendarError("no session at this time", field="start", value=str(ts))


def trading_windows(start: datetime | pd.Timestamp, end: datetime | pd.Timestamp,
                    calendar: str = "XNYS") -> list[Window]:
    """The traded parts of every session between ``start`` and ``end`` (UTC)."""
    cal = get_calendar(calendar)
    s, e = _ts(start, "start"), _ts(end, "end")
    if e <= s:
        raise CalendarError("end is not after start", field="end", value=str(e))
    out: list[Window] = []
    n_days = max(3, int((e - s).days) + 3)
    for day in _sessions_from(cal, s, n_days):
        o, c = _session_bounds(cal, day)
        if o >= e:
            break
        lo, hi = max(o, s), min(c, e)
        if hi > lo:
            out.append(Window(o, c, lo, hi))
    if not out:
        raise CalendarError("no trading time between start and end", field="end",
                            value=f"{s} .. {e}")
    return out


def trading_to_wall(windows: list[Window], offsets_min: np.ndarray) -> list[pd.Timestamp]:
    """Wall-clock times at the given trading-time offsets (minutes from the first start).

    An offset falling exactly on a window boundary maps to the start of the next window (a
    slice never starts at a close), except the very last offset, which maps to the final end.
    """
    cum = np.concatenate([[0.0], np.cumsum([w.minutes for w in windows])])
    out: list[pd.Timestamp] = []
    for x in np.asarray(offsets_min, dtype=np.float64):
        if x >= cum[-1] - 1e-9:
            out.append(windows[-1].end)
            continue
        i = int(np.searchsorted(cum, x, side="right") - 1)
        i = min(max(i, 0), len(windows) - 1)
        ms = round((x - cum[i]) * 60_000)
        out.append(windows[i].start + timedelta(milliseconds=ms))
    return out
