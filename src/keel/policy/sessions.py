"""Exchange sessions for the policy layer (a thin cached wrapper over ``exchange_calendars``).

Kept tiny on purpose: once ``keel.data.calendar`` is merged this can delegate to it.
Dates are exchange-local calendar dates; instants are UTC tz-aware.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import Any

import pandas as pd

from keel.errors import CalendarError
from keel.types import ensure_utc


@lru_cache(maxsize=8)
def _calendar(name: str) -> Any:
    import warnings

    import exchange_calendars as xc

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return xc.get_calendar(name)
    except xc.errors.InvalidCalendarName:
        raise CalendarError("unknown exchange calendar", field="calendar", value=name) from None


def local_date(now: datetime, name: str = "XNYS") -> date:
    """The exchange-local calendar date of the instant ``now``."""
    tz = _calendar(name).tz
    return pd.Timestamp(ensure_utc(now, "now")).tz_convert(tz).date()


def is_session(day: date, name: str = "XNYS") -> bool:
    """True when ``day`` is a trading session of the exchange."""
    cal = _calendar(name)
    ts = pd.Timestamp(day)
    if ts < cal.first_session or ts > cal.last_session:
        raise CalendarError("date outside the calendar range", field="date", value=day,
                            calendar=name)
    return bool(cal.is_session(ts))


def is_open(now: datetime, name: str = "XNYS") -> bool:
    """True when the exchange is in its regular session at the instant ``now``."""
    return _is_open(ensure_utc(now, "now"), name)


@lru_cache(maxsize=4096)
def _is_open(now: datetime, name: str) -> bool:
    # cached: a batch of orders is checked at one instant, and the lookup costs ~1 ms
    cal = _calendar(name)
    ts = pd.Timestamp(now)
    if ts < cal.first_minute or ts > cal.last_minute:
        raise CalendarError("time outside the calendar range", field="now", value=now,
                            calendar=name)
    return bool(cal.is_open_on_minute(ts, ignore_breaks=True))


def sessions_between(start: date, end: date, name: str = "XNYS") -> int:
    """Number of sessions in ``(start, end]`` (0 when ``end <= start``)."""
    if end <= start:
        return 0
    cal = _calendar(name)
    return len(cal.sessions_in_range(pd.Timestamp(start) + pd.Timedelta(days=1),
                                     pd.Timestamp(end)))
