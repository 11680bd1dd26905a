"""Point-in-time stamps for daily bars: every row at the instant its value became known.

A daily bar becomes known at its session's close, so :func:`stamp_daily` maps every input
notation to that close (UTC), whatever the time zone it was written in:

* a **date** -- a naive date (``2024-03-06``) or a tz-aware *midnight in its own notation*
  (``2024-03-06T00:00:00Z``, ``2024-03-06T00:00-05:00``, a Parquet column in any zone) -- is the
  session label: stamped at that session's close (13:00 New York on half days such as
  2024-11-29);
* a tz-aware **session close** (``2024-03-06T21:00:00Z``, ``2024-03-06T16:00-05:00``) is kept;
* anything else is refused with :class:`~keel.errors.AmbiguousTimeError` naming the column and
  row: a tz-aware time of day that is not the close (``10:00 New York``: stamped there it would
  leak the close six hours early, moved to the close it would be a guess), or a naive time of day
  (its zone is unknowable).

Midnight always reads as a date label, so on a 24/7 calendar (sessions close at the next
midnight UTC) ``2024-03-06T00:00Z`` is the bar of 2024-03-06, known at 2024-03-07 00:00 UTC.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from keel.data.calendar import ExchangeCalendar, calendar_covering, stamp_at_close
from keel.errors import AmbiguousTimeError, CalendarError, DataError


def _row_of(codes: np.ndarray, bad_codes: np.ndarray) -> int:
    """First 1-based row whose unique-value code is in ``bad_codes``."""
    return int(np.argmax(np.isin(codes, bad_codes))) + 1


def _closes(days: pd.DatetimeIndex, calendar: ExchangeCalendar | str | None, codes: np.ndarray,
            uniq_pos: np.ndarray, file: str | None, field: str) -> pd.DatetimeIndex:
    try:
        return stamp_at_close(days, calendar)
    except CalendarError as exc:
        bad = str(exc.value)
        hit = uniq_pos[np.asarray(days.strftime("%Y-%m-%d") == bad)]
        row = _row_of(codes, hit) if len(hit) else None
        raise DataError(f"date is not a trading session: {exc.message}", field=field,
                        row=row, value=bad, file=file) from None


def stamp_daily(dates: pd.DatetimeIndex, calendar: ExchangeCalendar | str | None = "XNYS", *,
                file: str | None = None, field: str = "date") -> pd.DatetimeIndex:
    """Stamp daily bars at their session close (UTC), one stamp per input row, same order.

    Args:
        dates: the raw date column, naive or tz-aware in any zone (fixed offsets included).
        calendar: the exchange whose sessions and closes apply (default XNYS).
        file, field: named in errors (``row`` is the 1-based data row).

    Raises:
        AmbiguousTimeError: a naive time of day, or a tz-aware time that is neither midnight
            in its own notation nor the close of the session it falls in.
        DataError: a date that is not a session of ``calendar``.
    """
    idx = pd.DatetimeIndex(dates)
    codes, uniq = pd.factorize(idx, sort=True)
    uniq = pd.DatetimeIndex(uniq)
    if len(uniq) == 0:
        return pd.DatetimeIndex([], tz="UTC", name="timestamp")
    wall = uniq.tz_localize(None) if uniq.tz is not None else uniq
    is_date = np.asarray(wall == wall.normalize())
    out = np.empty(len(uniq), dtype="datetime64[ns]")
    pos = np.arange(len(uniq))
    if is_date.any():
        days = pd.DatetimeIndex(wall[is_date]).normalize()
        out[is_date] = _closes(days, calendar, codes, pos[is_date], file,
                               field).tz_convert("UTC").tz_localize(None).to_numpy()
    if not is_date.all():
        times = pd.DatetimeIndex(uniq[~is_date])
        if times.tz is None:
            raise AmbiguousTimeError(
                "naive intraday timestamp in a daily file: give a time zone (the close) or a "
                "date", field=field, row=_row_of(codes, pos[~is_date][:1]),
                value=str(times[0]), file=file)
        utc = times.tz_convert("UTC")
        cal = calendar_covering(calendar, utc.min(), utc.max())
        local_day = utc.tz_convert(cal.tz).tz_localize(None).normalize()
        closes = _closes(pd.DatetimeIndex(local_day), cal, codes, pos[~is_date], file, field)
        wrong = np.asarray(closes != utc)
        if wrong.any():
            k = int(np.argmax(wrong))
            raise AmbiguousTimeError(
                f"ambiguous daily timestamp: neither a date (midnight in its own zone) nor "
                f"the {cal.name} session close ({closes[k]})", field=field,
                row=_row_of(codes, pos[~is_date][k:k + 1]), value=str(times[k]), file=file)
        out[~is_date] = utc.tz_localize(None).to_numpy()
    stamps = pd.DatetimeIndex(out).tz_localize("UTC")
    return pd.DatetimeIndex(stamps[codes], name="timestamp")
