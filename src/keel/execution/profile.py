"""Intraday volume profile: the expected fraction of a session's volume traded by each moment.

The profile is a cumulative curve on *elapsed session fraction* ``u`` in [0, 1] (0 = open,
1 = close), so one curve serves full days (390 minutes) and half days (210 minutes) alike.
Fitting averages each historical session's normalised cumulative volume, so a missing minute
(no trade printed) simply adds no volume and a short session is stretched onto the same grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from keel.data.calendar import get_calendar
from keel.errors import DataError, ValidationError
from keel.execution.hours import Window

GRID = 390  # bins of the stored curve (one per minute of a full NYSE day)


@dataclass(frozen=True, eq=False)
class VolumeProfile:
    """Cumulative volume fraction ``cum`` at ``GRID + 1`` equally spaced elapsed fractions.

    Attributes:
        cum: (GRID + 1,) non-decreasing, from 0.0 to 1.0.
        n_sessions: how many sessions it was fitted on (0 for the flat profile).
    """

    cum: np.ndarray
    n_sessions: int = 0

    def __post_init__(self) -> None:
        c = np.asarray(self.cum, dtype=np.float64)
        if c.shape != (GRID + 1,) or not np.all(np.isfinite(c)):
            raise ValidationError("cum must be a finite array of GRID + 1 points", field="cum",
                                  value=c.shape)
        if abs(c[0]) > 1e-12 or abs(c[-1] - 1.0) > 1e-9 or np.any(np.diff(c) < -1e-12):
            raise ValidationError("cum must rise from 0 to 1", field="cum")
        object.__setattr__(self, "cum", c)

    @classmethod
    def flat(cls) -> VolumeProfile:
        """Uniform volume through the session (VWAP on it is TWAP)."""
        return cls(np.linspace(0.0, 1.0, GRID + 1), 0)

    @classmethod
    def fit(cls, bars: pd.DataFrame, calendar: str = "XNYS") -> VolumeProfile:
        """Fit from minute bars (UTC index of bar starts, column ``volume``).

        Each session's open and close come from the calendar (half days included). Sessions
        with no volume are skipped; if none is left, ``DataError``.
        """
        if "volume" not in bars.columns:
            raise DataError("bars need a volume column", field="volume")
        if not isinstance(bars.index, pd.DatetimeIndex) or bars.index.tz is None:
            raise DataError("bars need a tz-aware DatetimeIndex", field="index")
        cal = get_calendar(calendar)
        idx = bars.index.tz_convert("UTC")
        local_day = idx.tz_convert(cal.tz).normalize().tz_localize(None)
        grid = np.linspace(0.0, 1.0, GRID + 1)
        curves = []
        vol = bars["volume"].to_numpy(dtype=np.float64)
        for day in np.unique(local_day):
            day = pd.Timestamp(day)
            if not cal.is_session(day):
                raise DataError("bars on a day the exchange is closed", field="index",
                                value=str(day.date()))
            o, c = cal.open(day), cal.close(day)
            m = local_day == day
            t, v = idx[m], vol[m]
            inside = (t >= o) & (t < c)
            t, v = t[inside], v[inside]
            total = v.sum()
            if total <= 0:
                continue
            length = (c - o).total_seconds()
            end_u = ((t - o).total_seconds().to_numpy() + 60.0) / length  # bar end, fraction
            order = np.argsort(end_u)
            xs = np.concatenate([[0.0], np.minimum(end_u[order], 1.0)])
            ys = np.concatenate([[0.0], np.cumsum(v[order]) / total])
            # a bar's volume accrues linearly over its minute
            starts = np.concatenate([[0.0], np.maximum(xs[1:] - 60.0 / length, 0.0)])
            px = np.ravel(np.column_stack([starts[1:], xs[1:]]))
            py = np.ravel(np.column_stack([ys[:-1], ys[1:]]))
            px = np.concatenate([[0.0], px, [1.0]])
            py = np.concatenate([[0.0], py, [1.0]])
            curves.append(np.interp(grid, px, py))
        if not curves:
            raise DataError("no session with volume to fit a profile", field="volume")
        cum = np.maximum.accumulate(np.mean(curves, axis=0))
        cum = (cum - cum[0]) / (cum[-1] - cum[0])
        return cls(cum, len(curves))

    def cumulative(self, u: np.ndarray | float) -> np.ndarray:
        """Fraction of the session's volume traded by elapsed fraction ``u``."""
        return np.interp(np.clip(u, 0.0, 1.0), np.linspace(0.0, 1.0, GRID + 1), self.cum)

    def window_fraction(self, w: Window, start: pd.Timestamp, end: pd.Timestamp) -> float:
        """Expected fraction of session ``w``'s volume traded in ``[start, end)`` (UTC)."""
        lo, hi = max(start, w.start), min(end, w.end)
        if hi <= lo:
            return 0.0
        length = (w.close - w.open).total_seconds()
        u0 = (lo - w.open).total_seconds() / length
        u1 = (hi - w.open).total_seconds() / length
        return float(self.cumulative(u1) - self.cumulative(u0))

    def minute_weights(self, n_minutes: int = GRID) -> np.ndarray:
        """(n_minutes,) expected volume fraction per minute of a session of that length."""
        edges = self.cumulative(np.linspace(0.0, 1.0, n_minutes + 1))
        return np.diff(edges)
