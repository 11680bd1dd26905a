"""Market hours from the exchange calendar (:mod:`keel.data.calendar`): trading windows and
trading-time arithmetic.

Everything here works in UTC tz-aware ``pd.Timestamp``s. Half days come from the calendar's own
session close; nights, weekends and holidays carry no trading time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from keel.data.calendar import get_calendar
from keel.errors import CalendarError


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


def next_trading_time(t: datetime | pd.Timestamp, calendar: str = "XNYS") -> pd.Timestamp:
    """``t`` itself when the market is open at ``t``, else the next session open."""
    cal = get_calendar(calendar)
    ts = _ts(t, "start")
    return ts if cal.is_open(ts) else cal.next_open(ts)


def session_close_after(t: datetime | pd.Timestamp, calendar: str = "XNYS") -> pd.Timestamp:
    """Close of the session that is open at ``t`` (or of the next one)."""
    cal = get_calendar(calendar)
    return cal.close(cal.session_of(next_trading_time(t, calendar)))


def trading_windows(start: datetime | pd.Timestamp, end: datetime | pd.Timestamp,
                    calendar: str = "XNYS") -> list[Window]:
    """The traded parts of every session between ``start`` and ``end`` (UTC)."""
    cal = get_calendar(calendar)
    s, e = _ts(start, "start"), _ts(end, "end")
    if e <= s:
        raise CalendarError("end is not after start", field="end", value=str(e))
    days = cal.sessions(s.tz_convert(cal.tz).date() - timedelta(days=1),
                        e.tz_convert(cal.tz).date())
    out: list[Window] = []
    for o, c in zip(cal.opens(days), cal.closes(days), strict=True):
        lo, hi = max(o, s), min(c, e)
        if hi > lo:
            out.append(Window(pd.Timestamp(o), pd.Timestamp(c), lo, hi))
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
