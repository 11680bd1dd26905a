"""When a FIX session is open: QuickFIX's StartTime / EndTime / TimeZone / StartDay / EndDay.

A :class:`SessionSchedule` is pure: it maps a POSIX time (seconds, float) to the start of the
session period that contains it, or None when the session is closed then. Two times belong to
the same session exactly when they map to the same start; the session state machine resets the
sequence numbers when the period changes, as QuickFIX does at the start of each new session.

Daily: the session is open from ``start_time`` to ``end_time`` (inclusive) every day; an end
before the start runs over midnight (``StartTime=18:00:00``, ``EndTime=17:00:00``), and equal
times mean open all day with the new session starting at that time. Weekly (``start_day`` and
``end_day`` given): open from ``start_day start_time`` to ``end_day end_time`` once a week.
Times are wall-clock times in ``time_zone`` (an IANA name; UTC by default), so a session at
08:00 New York stays at 08:00 across a daylight-saving change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from keel.errors import ConfigError

#: QuickFIX accepts day names by their first two letters, in any case
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def parse_day(text: str, *, field: str = "StartDay") -> int:
    """``Monday``, ``mon``, ``Mo`` ... -> 0..6 (Monday = 0); ConfigError otherwise."""
    t = text.strip().lower()
    if len(t) >= 2:
        for i, name in enumerate(DAY_NAMES):
            if name.startswith(t):
                return i
    raise ConfigError("not a day of the week (Monday ... Sunday)", field=field, value=text)


def parse_time(text: str, *, field: str = "StartTime") -> time:
    """``HH:MM:SS`` (24 h) -> ``datetime.time``; ConfigError otherwise."""
    parts = text.strip().split(":")
    try:
        if len(parts) != 3 or not all(len(p) == 2 and p.isdigit() for p in parts):
            raise ValueError
        return time(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        raise ConfigError("expected a time HH:MM:SS", field=field, value=text) from None


def zone(name: str, *, field: str = "TimeZone") -> ZoneInfo:
    """The IANA time zone ``name`` (``UTC``, ``America/New_York``); ConfigError otherwise."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("unknown time zone (expected an IANA name such as "
                          "America/New_York)", field=field, value=name) from None


@dataclass(frozen=True)
class SessionSchedule:
    """The hours a FIX session is open.

    Attributes:
        start_time / end_time: wall-clock times in ``time_zone``.
        time_zone: IANA zone name.
        start_day / end_day: 0 (Monday) .. 6 (Sunday) for a weekly session, else None.
    """

    start_time: time
    end_time: time
    time_zone: str = "UTC"
    start_day: int | None = None
    end_day: int | None = None

    def __post_init__(self) -> None:
        zone(self.time_zone)
        if (self.start_day is None) != (self.end_day is None):
            raise ConfigError("a weekly session needs both StartDay and EndDay",
                              field="StartDay" if self.start_day is None else "EndDay",
                              value=self.start_day if self.start_day is not None
                              else self.end_day)
        for name, day in (("StartDay", self.start_day), ("EndDay", self.end_day)):
            if day is not None and not 0 <= day <= 6:
                raise ConfigError("day must be 0 (Monday) .. 6 (Sunday)", field=name,
                                  value=day)

    @property
    def weekly(self) -> bool:
        return self.start_day is not None

    def period(self, now: float) -> tuple[float, float] | None:
        """(start, end) POSIX times of the session period containing ``now`` (both
        inclusive); None when the session is closed at ``now``."""
        local = datetime.fromtimestamp(now, UTC).astimezone(zone(self.time_zone))
        start, end = self._period_around(local)
        if start <= local <= end:
            return start.timestamp(), end.timestamp()
        return None

    def session_start(self, now: float) -> float | None:
        """POSIX time at which the session period containing ``now`` began; None when the
        session is closed at ``now``."""
        p = self.period(now)
        return None if p is None else p[0]

    def is_open(self, now: float) -> bool:
        """True when ``now`` (POSIX seconds) falls inside a session period."""
        return self.session_start(now) is not None

    def same_session(self, a: float, b: float) -> bool:
        """True when both times fall inside the same session period."""
        sa = self.session_start(a)
        return sa is not None and sa == self.session_start(b)

    def _period_around(self, local: datetime) -> tuple[datetime, datetime]:
        """The latest period (start, end) that starts at or before ``local``."""
        tz = local.tzinfo
        if self.start_day is None or self.end_day is None:
            start = _at(local.date(), self.start_time, tz)
            if start > local:
                start = _at(local.date() - timedelta(days=1), self.start_time, tz)
            days = 0 if self.end_time > self.start_time else 1
            end = _at(start.date() + timedelta(days=days), self.end_time, tz)
            if self.end_time == self.start_time:  # open all day: ends just before the next
                end -= timedelta(microseconds=1)
            return start, end
        back = (local.weekday() - self.start_day) % 7
        start = _at(local.date() - timedelta(days=back), self.start_time, tz)
        if start > local:
            start = _at(start.date() - timedelta(days=7), self.start_time, tz)
        span = (self.end_day - self.start_day) % 7
        if span == 0 and self.end_time <= self.start_time:
            span = 7
        end = _at(start.date() + timedelta(days=span), self.end_time, tz)
        if span == 7 and self.end_time == self.start_time:
            end -= timedelta(microseconds=1)
        return start, end


def _at(day: date, t: time, tz: tzinfo | None) -> datetime:
    """``day`` at wall-clock ``t`` in ``tz`` (zoneinfo resolves a DST gap or fold)."""
    return datetime.combine(day, t).replace(tzinfo=tz)
