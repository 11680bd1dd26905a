"""External signals: your own scores or expected returns from a file or a DataFrame.

Input (CSV, Parquet or a ``pd.DataFrame``), one row per (date, symbol):

=============  ==========================================================================
column         meaning
=============  ==========================================================================
``date``       the calendar date the value belongs to, ``YYYY-MM-DD`` (no time, no zone)
``symbol``     the instrument
``score``      a cross-sectional score (any scale; z-scored per evaluation by default)
``alpha``      an expected simple return over the model's ``periods`` sessions (fraction)
``timestamp``  optional: the instant the value became known, with an explicit UTC offset
=============  ==========================================================================

At least one of ``score`` / ``alpha`` is required; any other column is refused.

Point in time: a value is usable from its *availability instant* on. Without a ``timestamp``
that is the close of the value's session on the exchange calendar (the first session on or
after ``date``; 13:00 New York on a half day); with one, it is the stated timestamp, which may
not precede the start of ``date`` in the exchange's time zone (a value cannot be known before
the day it is dated). ``ExternalSignal.evaluate(market)`` uses only values available at or
before ``market.now``, so rows dated after ``t`` can never change what is seen at ``t``.

Bad input is refused with a :class:`~keel.errors.DataError` naming the row (0-based data row),
the field and the value: unknown or missing columns, duplicated (date, symbol), NaN or
non-numeric values, unparseable dates, naive (time-zone-less) timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from keel.data.calendar import ExchangeCalendar, calendar_covering
from keel.errors import CalendarError, DataError, ValidationError
from keel.signals.base import SignalSnapshot, expected_returns, zscore

if TYPE_CHECKING:
    from keel.data.market import MarketData

#: Columns an external signal may carry.
COLUMNS = ("date", "symbol", "score", "alpha", "timestamp")
VALUE_COLUMNS = ("score", "alpha")

_DATE_RE = r"\d{4}-\d{2}-\d{2}(?:[ T]00:00(?::00(?:\.0+)?)?)?"
_OFFSET_RE = r".*(?:Z|[+-]\d{2}(?::?\d{2})?)"


def _fail(message: str, *, field: str, row: int | None = None, value: Any = None,
          source: str | None = None, symbol: str | None = None) -> DataError:
    return DataError(message, field=field, value=value, symbol=symbol, row=row, file=source)


def _first(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def _parse_dates(col: pd.Series, source: str | None) -> np.ndarray:
    """(n,) int64 ns of tz-naive midnight dates."""
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        raise _fail("date must be a calendar date without a time zone (put the instant in "
                    "'timestamp')", field="date", row=0, value=str(col.iloc[0]), source=source)
    if pd.api.types.is_datetime64_dtype(col.dtype):
        d = pd.DatetimeIndex(col)
        bad = np.asarray(d.isna() | (d != d.normalize()))
        if bad.any():
            i = _first(bad)
            raise _fail("unparseable date (expected YYYY-MM-DD, no time)", field="date",
                        row=i, value=str(col.iloc[i]), source=source)
        return np.asarray(d.as_unit("ns").asi8)
    s = col.astype(object).where(col.notna(), "").astype(str).str.strip()
    ok = s.str.fullmatch(_DATE_RE).to_numpy(dtype=bool)
    parsed = pd.to_datetime(s.str[:10].where(ok, None), format="%Y-%m-%d", errors="coerce")
    bad = ~ok | np.asarray(parsed.isna())
    if bad.any():
        i = _first(bad)
        raise _fail("unparseable date (expected YYYY-MM-DD, no time, no zone)", field="date",
                    row=i, value=col.iloc[i], source=source)
    return np.asarray(pd.DatetimeIndex(parsed).as_unit("ns").asi8)


def _parse_timestamps(col: pd.Series, source: str | None) -> np.ndarray:
    """(n,) int64 ns UTC instants; naive values are refused as ambiguous."""
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        idx = pd.DatetimeIndex(col).tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(col.dtype):
        raise _fail("ambiguous time zone: timestamp has no UTC offset", field="timestamp",
                    row=0, value=str(col.iloc[0]), source=source)
    else:
        vals = col.astype(object).to_numpy()
        is_str = np.array([isinstance(v, str) for v in vals], dtype=bool)
        naive = np.zeros(len(vals), dtype=bool)
        if is_str.any():
            s = pd.Series(vals[is_str], dtype=object).str.strip()
            naive[is_str] = ~s.str.fullmatch(_OFFSET_RE).to_numpy(dtype=bool)
        for j in np.flatnonzero(~is_str):
            v = vals[j]
            naive[j] = not (hasattr(v, "tzinfo") and v.tzinfo is not None)
        if naive.any():
            i = _first(naive)
            what = ("missing timestamp" if vals[i] is None or vals[i] != vals[i]
                    or vals[i] == "" else "ambiguous time zone: timestamp has no UTC offset")
            raise _fail(what, field="timestamp", row=i, value=vals[i], source=source)
        parsed = pd.to_datetime(pd.Series(vals, dtype=object).map(
            lambda v: v.strip() if isinstance(v, str) else v), utc=True, format="ISO8601",
            errors="coerce")
        idx = pd.DatetimeIndex(parsed)
    bad = np.asarray(idx.isna())
    if bad.any():
        i = _first(bad)
        raise _fail("unparseable timestamp", field="timestamp", row=i, value=col.iloc[i],
                    source=source)
    return np.asarray(idx.as_unit("ns").asi8)


def _parse_values(col: pd.Series, name: str, source: str | None) -> np.ndarray:
    num = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(num)
    if bad.any():
        i = _first(bad)
        raw = col.iloc[i]
        what = ("missing value (NaN)" if pd.isna(raw) or str(raw).strip().lower()
                in ("", "nan", "na", "null", "none") else "not a finite number")
        raise _fail(f"{name}: {what}", field=name, row=i, value=raw, source=source)
    return num


def _available_at(dates_ns: np.ndarray, cal: ExchangeCalendar,
                  source: str | None) -> np.ndarray:
    """Close (UTC ns) of the first session on or after each date."""
    lo, hi = pd.Timestamp(dates_ns.min()), pd.Timestamp(dates_ns.max())
    sessions = cal.sessions(lo, hi + pd.Timedelta(days=14))
    pos = np.searchsorted(sessions.asi8, dates_ns, side="left")
    bad = pos >= len(sessions)
    if bad.any():
        i = _first(bad)
        raise CalendarError(f"date is outside the range of calendar {cal.name}", field="date",
                            value=str(pd.Timestamp(dates_ns[i]).date()), row=i, file=source)
    return np.asarray(cal.closes(sessions).asi8)[pos]


@dataclass(frozen=True, eq=False)
class SignalTable:
    """Validated external signal rows with their availability instants.

    Build with :meth:`from_frame` or :func:`read_signal_table`. Attributes are aligned (n,)
    arrays sorted by ``available_ns`` (then date, then symbol):

    Attributes:
        symbols: (n,) str symbols.
        dates_ns: (n,) int64 ns, tz-naive midnight of each value's date.
        available_ns: (n,) int64 ns UTC, the instant each value became usable.
        values: column name (``score`` and/or ``alpha``) -> (n,) float64.
        calendar: the exchange calendar that stamped the dates.
        source: where the rows came from (for messages).
    """

    symbols: np.ndarray
    dates_ns: np.ndarray
    available_ns: np.ndarray
    values: dict[str, np.ndarray]
    calendar: ExchangeCalendar
    source: str | None = None

    @classmethod
    def from_frame(cls, df: pd.DataFrame, *, calendar: ExchangeCalendar | str | None = None,
                   source: str | None = None) -> SignalTable:
        """Validate ``df`` (columns ``date, symbol, score|alpha[, timestamp]``).

        Args:
            df: one row per (date, symbol); see the module docstring for the columns.
            calendar: exchange calendar or name (default XNYS) whose closes stamp dates.
            source: file name for error messages.

        Raises:
            DataError: bad columns or values (names row, field and value).
            CalendarError: a date outside the calendar's range.
        """
        if not isinstance(df, pd.DataFrame):
            raise DataError("external signals must be a DataFrame", field="signals",
                            value=type(df).__name__, file=source)
        cols = [str(c) for c in df.columns]
        if len(set(cols)) != len(cols):
            dup = next(c for c in cols if cols.count(c) > 1)
            raise DataError("duplicated column", field=dup, file=source)
        unknown = [c for c in cols if c not in COLUMNS]
        if unknown:
            raise DataError(f"unknown column (allowed: {', '.join(COLUMNS)})",
                            field=unknown[0], file=source)
        for req in ("date", "symbol"):
            if req not in cols:
                raise DataError("missing required column", field=req, file=source)
        present = [c for c in VALUE_COLUMNS if c in cols]
        if not present:
            raise DataError("external signals need a 'score' or an 'alpha' column",
                            field="score", file=source)
        if len(df) == 0:
            raise DataError("external signals are empty", field="signals", file=source)
        df = df.reset_index(drop=True)
        df.columns = pd.Index(cols)
        sym = df["symbol"]
        sym_s = sym.astype(object).where(sym.notna(), "").astype(str).str.strip()
        empty = (sym_s == "").to_numpy(dtype=bool)
        if empty.any():
            i = _first(empty)
            raise _fail("missing symbol", field="symbol", row=i, value=sym.iloc[i],
                        source=source)
        dates = _parse_dates(df["date"], source)
        values = {c: _parse_values(df[c], c, source) for c in present}
        symbols = sym_s.to_numpy(dtype=object)
        key = pd.DataFrame({"d": dates, "s": symbols})
        dup = key.duplicated(keep="first").to_numpy()
        if dup.any():
            i = _first(dup)
            first = _first(((key["d"] == dates[i]) & (key["s"] == symbols[i])).to_numpy())
            raise _fail(f"duplicated (date, symbol), first at row {first}",
                        field="date,symbol", row=i, symbol=str(symbols[i]),
                        value=str(pd.Timestamp(dates[i]).date()), source=source)
        cal = calendar_covering(calendar, pd.Timestamp(dates.min()),
                                pd.Timestamp(dates.max()) + pd.Timedelta(days=14))
        if "timestamp" in cols:
            avail = _parse_timestamps(df["timestamp"], source)
            local_midnight = (pd.DatetimeIndex(dates).tz_localize(cal.tz)
                              .tz_convert("UTC").as_unit("ns").asi8)
            early = avail < np.asarray(local_midnight)
            if early.any():
                i = _first(early)
                raise _fail(f"timestamp precedes its date (in {cal.tz})", field="timestamp",
                            row=i, value=df["timestamp"].iloc[i], symbol=str(symbols[i]),
                            source=source)
        else:
            avail = _available_at(dates, cal, source)
        order = np.lexsort((symbols.astype(str), dates, avail))
        return cls(symbols=symbols[order].astype(str), dates_ns=dates[order],
                   available_ns=avail[order], values={k: v[order] for k, v in values.items()},
                   calendar=cal, source=source)

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def columns(self) -> tuple[str, ...]:
        """The value columns present (``score`` and/or ``alpha``)."""
        return tuple(self.values)

    def to_frame(self) -> pd.DataFrame:
        """The rows as a DataFrame (``date``, ``symbol``, values, ``available_at`` UTC)."""
        out = pd.DataFrame({"date": pd.to_datetime(self.dates_ns), "symbol": self.symbols})
        for k, v in self.values.items():
            out[k] = v
        out["available_at"] = pd.to_datetime(self.available_ns, utc=True)
        return out

    @cached_property
    def _codes(self) -> np.ndarray:
        """(n,) integer code of each row's symbol."""
        return np.asarray(pd.factorize(self.symbols)[0])

    @cached_property
    def _cummax_date(self) -> np.ndarray:
        """Newest date among the first i+1 rows (rows sorted by availability)."""
        return np.maximum.accumulate(self.dates_ns)

    @cached_property
    def _by_date(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row positions sorted by (date, availability), with their dates and availabilities."""
        order = np.lexsort((self.available_ns, self.dates_ns))
        return order, self.dates_ns[order], self.available_ns[order]

    def _rows_of_date(self, date_ns: int, t_ns: int) -> np.ndarray:
        """Positions of the rows dated ``date_ns`` available at ``t_ns`` (O(log n))."""
        order, dates, avail = self._by_date
        i = int(np.searchsorted(dates, date_ns, side="left"))
        j = int(np.searchsorted(dates, date_ns, side="right"))
        k = i + int(np.searchsorted(avail[i:j], t_ns, side="right"))
        return np.sort(order[i:k])

    def known_at(self, t: Any, *, max_age: pd.Timedelta | None = None) -> pd.DataFrame:
        """The cross-section knowable at ``t``: one row per symbol, indexed by symbol.

        Args:
            t: tz-aware instant.
            max_age: None: only the newest date available at ``t`` (no carry-forward).
                A Timedelta: each symbol's latest value whose availability instant is within
                ``max_age`` of ``t``.

        Returns: DataFrame (symbol index) with the value columns, ``date`` and
        ``available_at``; empty when nothing is known yet.
        """
        ts = pd.Timestamp(t)
        if ts.tzinfo is None:
            raise ValidationError("known_at needs a tz-aware time", field="t", value=t)
        t_ns = ts.tz_convert("UTC").as_unit("ns").value
        n = int(np.searchsorted(self.available_ns, t_ns, side="right"))
        lo = 0
        if max_age is not None:
            lo = int(np.searchsorted(self.available_ns,
                                     t_ns - pd.Timedelta(max_age).value, side="left"))
        if max_age is None and n:
            idx = self._rows_of_date(int(self._cummax_date[n - 1]), t_ns)
        else:
            idx = np.arange(lo, n)
        if max_age is not None and len(idx):
            # latest date per symbol (the table is unique per (date, symbol))
            codes = self._codes[idx]
            o = np.lexsort((self.dates_ns[idx], codes))
            last = np.r_[codes[o][1:] != codes[o][:-1], True]
            idx = np.sort(idx[o][last])
        out = pd.DataFrame({k: v[idx] for k, v in self.values.items()},
                           index=pd.Index(self.symbols[idx], name="symbol"))
        out["date"] = self.dates_ns[idx].astype("datetime64[ns]")
        out["available_at"] = pd.DatetimeIndex(
            self.available_ns[idx].astype("datetime64[ns]")).tz_localize("UTC")
        return out


def read_signal_table(source: str | Path | pd.DataFrame, *,
                      calendar: ExchangeCalendar | str | None = None) -> SignalTable:
    """Read and validate external signals from a CSV / Parquet file or a DataFrame.

    CSV is read as text (so errors quote the raw value); ``.csv``, ``.csv.gz``,
    ``.parquet`` and ``.pq`` are recognised by suffix.

    Raises:
        DataError: unreadable file, unknown suffix, or invalid rows (see
            :meth:`SignalTable.from_frame`).
    """
    if isinstance(source, pd.DataFrame):
        return SignalTable.from_frame(source, calendar=calendar)
    path = Path(source)
    name = path.name.lower()
    try:
        if name.endswith((".csv", ".csv.gz")):
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif name.endswith((".parquet", ".pq")):
            df = pd.read_parquet(path)
        else:
            raise DataError("unknown signal file type (use .csv, .csv.gz, .parquet)",
                            field="path", value=str(path))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read external signals: {exc}", field="path",
                        value=str(path)) from None
    return SignalTable.from_frame(df, calendar=calendar, source=str(path))


@dataclass(frozen=True, eq=False)
class ExternalSignal:
    """External scores / alphas as a :class:`~keel.signals.base.SignalModel`.

    At ``market.now`` the model takes :meth:`SignalTable.known_at` for the market's symbols
    (symbols outside the market are ignored; market symbols without a value get NaN score
    and 0 alpha). ``score``: the file's score, z-scored across those symbols when
    ``standardise`` (else as given); without a score column, the z-scored alpha.
    ``alpha``: the file's alpha when present, else Grinold ``ic x vol x sqrt(periods) x
    score`` with the view's latest daily volatility.

    Args:
        table: validated rows (:func:`read_signal_table`).
        ic: information coefficient for Grinold's rule (used only without an alpha column).
        periods: alpha horizon in sessions (Grinold only).
        max_age: see :meth:`SignalTable.known_at` (None: newest date only).
        standardise: z-score the score cross-sectionally (winsorised at 3).

    Raises (on ``evaluate``):
        DataError: no value of any market symbol is known at ``market.now``.
        ValidationError: fewer than 3 names with a value, or no dispersion (z-scoring).
    """

    table: SignalTable
    ic: float = 0.05
    periods: int = 1
    max_age: pd.Timedelta | None = None
    standardise: bool = True
    name: str = "external"

    def __post_init__(self) -> None:
        if not isinstance(self.table, SignalTable):
            raise ValidationError("table must be a SignalTable (see read_signal_table)",
                                  field="table", value=type(self.table).__name__)
        if not np.isfinite(self.ic):
            raise ValidationError("ic must be finite", field="ic", value=self.ic)
        if int(self.periods) < 1:
            raise ValidationError("periods must be >= 1", field="periods", value=self.periods)
        if self.max_age is not None and pd.Timedelta(self.max_age) <= pd.Timedelta(0):
            raise ValidationError("max_age must be positive", field="max_age",
                                  value=self.max_age)

    @classmethod
    def from_source(cls, source: str | Path | pd.DataFrame, *,
                    calendar: ExchangeCalendar | str | None = None,
                    **kwargs: Any) -> ExternalSignal:
        """Read ``source`` (:func:`read_signal_table`) and wrap it (``kwargs`` as above)."""
        return cls(read_signal_table(source, calendar=calendar), **kwargs)

    def evaluate(self, market: MarketData) -> SignalSnapshot:
        known = self.table.known_at(market.now, max_age=self.max_age)
        known = known.reindex(market.symbols)
        if known["date"].isna().all():
            raise DataError("no external signal value is known at this time for the market's "
                            "symbols", field="signals", value=str(market.now),
                            file=self.table.source)
        base = "score" if "score" in known else "alpha"
        raw = known[base].astype(np.float64).rename("score")
        score = zscore(raw) if self.standardise else raw
        if "alpha" in known:
            alpha = known["alpha"].astype(np.float64).fillna(0.0).rename("alpha")
        else:
            alpha = expected_returns(score, market.latest("volatility"), ic=self.ic,
                                     periods=self.periods)
        return SignalSnapshot(as_of=market.now, score=score.rename("score"), alpha=alpha,
                              name=self.name)
