"""Injected time. Nothing in keel reads the system clock except :class:`WallClock`.

Backtests and tests use :class:`SimulatedClock` and advance it step by step; live code gets a
:class:`WallClock`. Both return UTC tz-aware datetimes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from keel.errors import ValidationError
from keel.types import ensure_utc


@runtime_checkable
class Clock(Protocol):
    """Source of the current time."""

    def now(self) -> datetime:
        """Current time, UTC tz-aware."""
        ...


class WallClock:
    """The real clock (live trading, services)."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    @staticmethod
    def monotonic() -> float:
        """Seconds from an arbitrary origin, for measuring durations."""
        return time.monotonic()


class SimulatedClock:
    """A clock that moves only when told to (backtests, tests).

    Args:
        start: initial UTC tz-aware time.
    """

    def __init__(self, start: datetime) -> None:
        self._now = ensure_utc(start, "start")

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | float) -> datetime:
        """Move forward by ``delta`` (a timedelta or seconds); refuses to go back."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=float(delta))
        if step < timedelta(0):
            raise ValidationError("a clock cannot go backwards", field="delta", value=delta)
        self._now = self._now + step
        return self._now

    def set(self, ts: datetime) -> datetime:
        """Jump to ``ts`` (must not be earlier than now)."""
        ts = ensure_utc(ts, "ts")
        if ts < self._now:
            raise ValidationError("a clock cannot go backwards", field="ts", value=ts)
        self._now = ts
        return self._now

    def monotonic(self) -> float:
        return self._now.timestamp()
