"""Exchange sessions for the policy layer: a cached front on :mod:`keel.data.calendar`.

Dates are exchange-local calendar dates; instants are UTC tz-aware. Out-of-range times raise
:class:`~keel.errors.CalendarError` (the calendar covers 1998-2026 by default).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from keel.data.calendar import ExchangeCalendar, get_calendar
from keel.types import ensure_utc


def calendar(name: str = "XNYS") -> ExchangeCalendar:
    """The exchange calendar ``name`` (shared: ``get_calendar`` builds each one once)."""
    return get_calendar(name)


def local_date(now: datetime, name: str = "XNYS") -> date:
    """The exchange-local calendar date of the instant ``now``."""
    return ensure_utc(now, "now").astimezone(_zone(calendar(name).tz)).date()


@lru_cache(maxsize=64)
def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


def is_session(day: date, name: str = "XNYS") -> bool:
    """True when ``day`` is a trading session of the exchange."""
    return calendar(name).is_session(day)


def is_open(now: datetime, name: str = "XNYS") -> bool:
    """True when the exchange is in a regular session at the instant ``now``."""
    return _is_open(ensure_utc(now, "now"), name)


@lru_cache(maxsize=4096)
def _is_open(now: datetime, name: str) -> bool:
    # cached: a batch of orders is checked at one instant
    return calendar(name).is_open(now)


def sessions_between(start: date, end: date, name: str = "XNYS") -> int:
    """Number of sessions in ``(start, end]`` (0 when ``end <= start``)."""
    if end <= start:
        return 0
    return len(calendar(name).sessions(start + timedelta(days=1), end))

