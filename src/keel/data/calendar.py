"""Exchange calendars: trading sessions, opens/closes (UTC), early closes, is-open checks.

A thin, vectorised layer over :mod:`exchange_calendars`. XNYS is the default; ``"24/7"``
serves crypto. Every calendar is built with an explicit ``start``/``end`` (default
1998-01-01 .. 2030-12-31) so long histories work; a time or date outside that range raises
:class:`~keel.errors.CalendarError` rather than silently answering wrongly.

Conventions: a *session* is a trading day label (tz-naive midnight date); opens, closes and
every instant are tz-aware UTC ``pd.Timestamp``. A session is open on ``[open, close)``.
Daily bars are stamped at their session close (:func:`stamp_at_close`): the instant the bar
became known, which is what :meth:`keel.data.market.MarketData.as_of` relies on.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any

import exchange_calendars as xc
import numpy as np
import pandas as pd

from keel.errors import CalendarError

DEFAULT_CALENDAR = "XNYS"
CRYPTO_CALENDAR = "24/7"
DEFAULT_START = "1998-01-01"
DEFAULT_END = "2030-12-31"


@lru_cache(maxsize=32)
def _xcal(name: str, start: str, end: str) -> xc.ExchangeCalendar:
    try:
        with warnings.catch_warnings():
            # exchange_calendars 4.x trips a pandas 3.1 deprecation inside its constructor.
            warnings.filterwarnings("ignore", message="Series.values returning an ndarray",
                                    category=DeprecationWarning)
            return xc.get_calendar(name, start=start, end=end)
    except xc.errors.InvalidCalendarName:
        raise CalendarError("unknown exchange calendar", field="calendar", value=name) from None
    except (ValueError, xc.errors.CalendarError) as exc:
        raise CalendarError(f"cannot build calendar: {exc}", field="calendar",
                            value=(name, start, end)) from None


def _day(d: Any, field: str = "date") -> pd.Timestamp:
    """A session label: tz-naive midnight (a tz-aware input keeps its local calendar date)."""
    try:
        ts = pd.Timestamp(d)
    except (TypeError, ValueError):
        raise CalendarError("not a date", field=field, value=d) from None
    if ts is pd.NaT:
        raise CalendarError("not a date", field=field, value=d)
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    return ts.normalize()


def _instant(t: Any, field: str = "t") -> pd.Timestamp:
    ts = pd.Timestamp(t)
    if ts.tzinfo is None:
        raise CalendarError("naive time: a time zone is required", field=field, value=t)
    return ts.tz_convert("UTC")


class ExchangeCalendar:
    """Trading sessions of one exchange between ``start`` and ``end``.

    Args:
        name: an ``exchange_calendars`` name (``"XNYS"``, ``"XNAS"``, ``"24/7"``, ...).
        start, end: first and last date covered (inclusive).

    Raises:
        CalendarError: unknown name or an invalid range.
    """

    def __init__(self, name: str = DEFAULT_CALENDAR, start: Any = DEFAULT_START,
                 end: Any = DEFAULT_END) -> None:
        s, e = _day(start, "start"), _day(end, "end")
        if e < s:
            raise CalendarError("calendar end is before start", field="end", value=(s, e))
        self.name = str(name)
        self.start = s
        self.end = e
        self._cal = _xcal(self.name, s.strftime("%Y-%m-%d"), e.strftime("%Y-%m-%d"))
        self._sessions = pd.DatetimeIndex(self._cal.sessions)
        self._opens = pd.DatetimeIndex(self._cal.opens).tz_convert("UTC")
        self._closes = pd.DatetimeIndex(self._cal.closes).tz_convert("UTC")

    def __repr__(self) -> str:
        return f"ExchangeCalendar({self.name!r}, {self.start.date()}..{self.end.date()})"

    @property
    def tz(self) -> str:
        """The exchange's local time zone (e.g. ``America/New_York``)."""
        return str(self._cal.tz)

    # ------------------------------------------------------------------ sessions

    def sessions(self, start: Any = None, end: Any = None) -> pd.DatetimeIndex:
        """Session labels (tz-naive dates) in ``[start, end]`` (default: the whole range)."""
        s = self.start if start is None else _day(start, "start")
        e = self.end if end is None else _day(end, "end")
        i, j = self._sessions.searchsorted(s), self._sessions.searchsorted(e, side="right")
        return self._sessions[i:j]

    def is_session(self, date: Any) -> bool:
        """True when ``date`` is a trading day."""
        d = _day(date)
        i = self._sessions.searchsorted(d)
        return bool(i < len(self._sessions) and self._sessions[i] == d)

    def _positions(self, dates: Any, field: str = "date") -> np.ndarray:
        idx = pd.DatetimeIndex(dates)
        if idx.tz is not None:
            idx = idx.tz_localize(None)
        idx = idx.normalize()
        pos = self._sessions.searchsorted(idx)
        ok = pos < len(self._sessions)
        ok[ok] = self._sessions[pos[ok]] == idx[ok]
        if not ok.all():
            bad = idx[~ok][0]
            why = ("outside the calendar range" if bad < self.start or bad > self.end
                   else "not a trading session")
            raise CalendarError(f"{bad.date()} is {why} of {self.name}", field=field,
                                value=str(bad.date()))
        return np.asarray(pos)

    def open(self, session: Any) -> pd.Timestamp:
        """UTC open of ``session``. Raises CalendarError when it is not a session."""
        return pd.Timestamp(self._opens[self._positions([_day(session, "session")],
                                                        "session")[0]])

    def close(self, session: Any) -> pd.Timestamp:
        """UTC close of ``session`` (early on half days)."""
        return pd.Timestamp(self._closes[self._positions([_day(session, "session")],
                                                         "session")[0]])

    def opens(self, sessions: Any) -> pd.DatetimeIndex:
        """UTC opens of many sessions (vectorised)."""
        return self._opens[self._positions(sessions, "session")]

    def closes(self, sessions: Any) -> pd.DatetimeIndex:
        """UTC closes of many sessions (vectorised)."""
        return self._closes[self._positions(sessions, "session")]

    def schedule(self, start: Any = None, end: Any = None) -> pd.DataFrame:
        """Sessions x [open, close] in UTC."""
        s = self.sessions(start, end)
        return pd.DataFrame({"open": self.opens(s), "close": self.closes(s)}, index=s)

    def early_closes(self, start: Any = None, end: Any = None) -> pd.DatetimeIndex:
        """Sessions that close before the regular close (half days)."""
        s = self.sessions(start, end)
        ec = pd.DatetimeIndex(self._cal.early_closes)
        return s[s.isin(ec)]

    def is_early_close(self, session: Any) -> bool:
        d = _day(session, "session")
        self._positions([d], "session")
        return bool(len(self.early_closes(d, d)))

    def session_minutes(self, session: Any) -> pd.DatetimeIndex:
        """UTC minute stamps of a session, ``open, open+1min, ..., close-1min`` (bar starts)."""
        o, c = self.open(session), self.close(session)
        return pd.date_range(o, c, freq="min", inclusive="left")

    def session_length(self, session: Any) -> pd.Timedelta:
        return self.close(session) - self.open(session)

    # ------------------------------------------------------------------ instants

    def _check_range(self, ts: pd.Timestamp, field: str) -> None:
        if ts < self._opens[0] - pd.Timedelta(days=7) or ts > self._closes[-1] + pd.Timedelta(
                days=7):
            raise CalendarError(f"time outside the calendar range of {self.name}", field=field,
                                value=str(ts))

    def is_open(self, t: Any) -> bool:
        """True when the market is open at instant ``t`` (tz-aware), i.e. open <= t < close."""
        ts = _instant(t)
        self._check_range(ts, "t")
        i = int(self._opens.searchsorted(ts, side="right")) - 1
        return bool(i >= 0 and ts < self._closes[i])

    def is_open_array(self, times: Any) -> np.ndarray:
        """Vectorised :meth:`is_open` over tz-aware times; returns a bool array."""
        idx = pd.DatetimeIndex(times)
        if idx.tz is None:
            raise CalendarError("naive times: a time zone is required", field="times")
        idx = idx.tz_convert("UTC")
        i = self._opens.searchsorted(idx, side="right") - 1
        ok = i >= 0
        out = np.zeros(len(idx), dtype=bool)
        out[ok] = idx[ok] < self._closes[i[ok]]
        return out

    def next_open(self, t: Any) -> pd.Timestamp:
        """First open strictly after ``t``."""
        ts = _instant(t)
        i = int(self._opens.searchsorted(ts, side="right"))
        if i >= len(self._opens):
            raise CalendarError(f"no open after this time in {self.name}", field="t",
                                value=str(ts))
        return pd.Timestamp(self._opens[i])

    def previous_open(self, t: Any) -> pd.Timestamp:
        """Last open strictly before ``t``."""
        ts = _instant(t)
        i = int(self._opens.searchsorted(ts, side="left")) - 1
        if i < 0:
            raise CalendarError(f"no open before this time in {self.name}", field="t",
                                value=str(ts))
        return pd.Timestamp(self._opens[i])

    def next_close(self, t: Any) -> pd.Timestamp:
        """First close strictly after ``t``."""
        ts = _instant(t)
        i = int(self._closes.searchsorted(ts, side="right"))
        if i >= len(self._closes):
            raise CalendarError(f"no close after this time in {self.name}", field="t",
                                value=str(ts))
        return pd.Timestamp(self._closes[i])

    def previous_close(self, t: Any) -> pd.Timestamp:
        """Last close at or before ``t`` (the latest daily bar known at ``t``)."""
        ts = _instant(t)
        i = int(self._closes.searchsorted(ts, side="right")) - 1
        if i < 0:
            raise CalendarError(f"no close before this time in {self.name}", field="t",
                                value=str(ts))
        return pd.Timestamp(self._closes[i])

    def session_of(self, t: Any) -> pd.Timestamp:
        """The session whose ``[open, close)`` contains ``t``; CalendarError when closed."""
        ts = _instant(t)
        i = int(self._opens.searchsorted(ts, side="right")) - 1
        if i < 0 or ts >= self._closes[i]:
            raise CalendarError(f"market {self.name} is closed at this time", field="t",
                                value=str(ts))
        return pd.Timestamp(self._sessions[i])


def get_calendar(calendar: ExchangeCalendar | str | None = None, start: Any = DEFAULT_START,
                 end: Any = DEFAULT_END) -> ExchangeCalendar:
    """An :class:`ExchangeCalendar` from a name (or pass one through unchanged).

    Calendars by name are built once per (name, start, end) and shared: callers need no
    cache of their own.
    """
    if isinstance(calendar, ExchangeCalendar):
        return calendar
    return _named_calendar(calendar or DEFAULT_CALENDAR, str(start), str(end))


def calendar_covering(calendar: ExchangeCalendar | str | None, first: Any, last: Any
                      ) -> ExchangeCalendar:
    """A calendar covering ``first``..``last``: a given one unchanged; a name gets the shared
    default range, widened only when the dates fall outside it (so it is built once)."""
    if isinstance(calendar, ExchangeCalendar):
        return calendar
    lo, hi = _day(first, "first"), _day(last, "last")
    if lo >= _day(DEFAULT_START) and hi <= _day(DEFAULT_END):
        return get_calendar(calendar)
    return get_calendar(calendar, min(_day(DEFAULT_START), lo), max(_day(DEFAULT_END), hi))


@lru_cache(maxsize=32)
def _named_calendar(name: str, start: str, end: str) -> ExchangeCalendar:
    return ExchangeCalendar(name, start, end)


def stamp_at_close(dates: Any, calendar: ExchangeCalendar | str | None = None
                   ) -> pd.DatetimeIndex:
    """Stamp daily bars at their session close, in UTC.

    Args:
        dates: trading dates (strings, dates or timestamps; a tz-aware value keeps its date).
        calendar: an :class:`ExchangeCalendar` or a name (default XNYS, 1998-2030).

    Returns:
        ``DatetimeIndex`` (UTC), one close per input date, same order.

    Raises:
        CalendarError: a date that is not a session of the calendar (named in the error).
    """
    idx = pd.DatetimeIndex(dates)
    cal = (calendar_covering(calendar, idx.min(), idx.max()) if len(idx)
           else get_calendar(calendar))
    return pd.DatetimeIndex(cal._closes[cal._positions(idx, "date")], name="timestamp")


def regular_hours(times: pd.DatetimeIndex, calendar: ExchangeCalendar | str | None = None
                  ) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Which tz-aware ``times`` fall in a regular session of ``calendar`` (open <= t < close,
    half days and holidays included), and the times in the exchange's local zone.

    Raises:
        CalendarError: naive times (field ``times``).
    """
    idx = pd.DatetimeIndex(times)
    if idx.tz is None:
        raise CalendarError("naive times: a time zone is required", field="times")
    if len(idx) == 0:
        cal = get_calendar(calendar) if not isinstance(calendar, ExchangeCalendar) else calendar
        return np.zeros(0, dtype=bool), idx.tz_convert(cal.tz)
    cal = calendar_covering(calendar, idx.min(), idx.max())
    return cal.is_open_array(idx), idx.tz_convert(cal.tz)
