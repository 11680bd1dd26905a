"""Daily price files -> validated panels and :class:`~keel.data.market.MarketData`.

Formats:

* **long** (one row per date and symbol: ``date, open, high, low, close, volume, symbol``),
  CSV (gz ok) or Parquet, e.g. the S&P 500 5-year file. :func:`read_ohlcv_long` returns an
  :class:`OHLCV` container (open/high/low/close/volume panels), :func:`load_prices_long`
  goes straight to ``MarketData``.
* **wide** (dates x symbols, first column the date): :func:`read_wide` and
  :func:`load_prices_wide`.
* **sector map** (``Symbol, Sector`` or ``Ticker symbol, GICS Sector``): :func:`load_sectors`.

Daily bars are stamped at their session close in UTC whatever the notation (a date, a
tz-aware midnight, or the close itself); any other time of day is refused
(:func:`keel.data.stamps.stamp_daily`).
Units: prices in currency per share, volumes in shares, spreads as a fraction of mid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keel.config import MissingPolicy
from keel.data._io import (
    check_no_nan,
    check_numeric,
    check_positive,
    check_time_order,
    parse_dates,
    read_table,
    require_columns,
)
from keel.data.calendar import ExchangeCalendar
from keel.data.market import MarketData, validate_panel
from keel.data.spreads import abdi_ranaldo_spread
from keel.data.stamps import stamp_daily
from keel.errors import DataError

PRICE_FIELDS = ("open", "high", "low", "close")


@dataclass(frozen=True)
class LoadReport:
    """What a loader read and what it did to missing values (``actions`` empty = nothing)."""

    file: str
    rows: int
    symbols: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    actions: tuple[str, ...] = ()

    def summary(self) -> str:
        acts = "; ".join(self.actions) if self.actions else "no missing data"
        return (f"{self.file}: {self.rows} rows, {self.symbols} symbols, "
                f"{self.start} .. {self.end}; {acts}")


def stamp_dates(dates: pd.DatetimeIndex, calendar: ExchangeCalendar | str | None,
                file: str, field: str) -> pd.DatetimeIndex:
    """Daily dates -> session close (UTC); see :func:`keel.data.stamps.stamp_daily`."""
    return stamp_daily(dates, calendar, file=file, field=field)


# ---------------------------------------------------------------------- sectors


def load_sectors(path: str | Path, *, symbol_col: str | None = None,
                 sector_col: str | None = None) -> pd.Series:
    """Read a sector map (symbol -> GICS sector) as a ``pd.Series`` named ``sector``.

    Column names are detected (``Symbol``/``Ticker symbol``/``Ticker``, ``Sector``/``GICS
    Sector``) unless given. Raises DataError on a missing column, an empty or duplicated
    symbol, or an empty sector.
    """
    file = str(path)
    df = read_table(path, dtype=str)
    cols = list(map(str, df.columns))
    sym = symbol_col or next((c for c in ("Symbol", "Ticker symbol", "Ticker", "symbol")
                              if c in cols), "Symbol")
    sec = sector_col or next((c for c in ("Sector", "GICS Sector", "sector") if c in cols),
                             "Sector")
    require_columns(df, (sym, sec), file)
    check_no_nan(df, (sym, sec), file)
    symbols = df[sym].str.strip()
    dup = symbols.duplicated()
    if dup.any():
        r = int(np.argmax(dup.to_numpy()))
        raise DataError("duplicated symbol in sector map", field=sym, row=r + 1,
                        symbol=symbols.iloc[r], file=file)
    return pd.Series(df[sec].str.strip().to_numpy(), index=pd.Index(symbols, name="symbol"),
                     name="sector")


# ---------------------------------------------------------------------- long files


@dataclass(frozen=True, eq=False)
class OHLCV:
    """Daily open/high/low/close/volume panels (dates x symbols, UTC stamped at close).

    A symbol absent on a date (not yet listed, delisted) is NaN there; ``report`` says what
    the row-level missing policy did.
    """

    open: pd.DataFrame
    high: pd.DataFrame
    low: pd.DataFrame
    close: pd.DataFrame
    volume: pd.DataFrame
    report: LoadReport

    @property
    def symbols(self) -> pd.Index:
        return self.close.columns

    def estimated_spreads(self, window: int = 21, min_spread: float = 1e-4) -> pd.DataFrame:
        """Causal Abdi-Ranaldo spread *estimate* from high/low/close (fraction of mid)."""
        return abdi_ranaldo_spread(self.high, self.low, self.close, window=window,
                                   min_spread=min_spread)

    def to_market(self, sectors: pd.Series | pd.DataFrame | None = None, *,
                  on_missing: MissingPolicy | str = MissingPolicy.RAISE,
                  spreads: bool | pd.DataFrame | None = True, spread_window: int = 21,
                  **kwargs: Any) -> MarketData:
        """Build ``MarketData`` (close prices, volumes, sectors, optional spreads).

        ``spreads``: True adds the Abdi-Ranaldo estimate when the file had high/low columns;
        a dates x symbols panel is used as given (e.g. from
        :func:`keel.data.spreads.select_spreads`); False/None leaves the market without.

        ``on_missing`` handles dates x symbols holes (late listings, gaps): see
        :func:`keel.data.market.apply_missing_policy`; ``market.missing_report`` says what.
        """
        spr: pd.DataFrame | None
        if isinstance(spreads, pd.DataFrame):
            spr = spreads
        else:
            has_range = bool(self.high.notna().to_numpy().any()
                             and self.low.notna().to_numpy().any())
            spr = self.estimated_spreads(spread_window) if spreads and has_range else None
        return MarketData(prices=self.close, volumes=self.volume, sectors=sectors,
                          spreads=spr, on_missing=MissingPolicy(on_missing),
                          source=self.report.file, **kwargs)


def _parse_date_column(col: pd.Series, file: str, field: str) -> pd.DatetimeIndex:
    if isinstance(col.dtype, pd.CategoricalDtype):
        try:
            cats = parse_dates(pd.Series(col.cat.categories.astype(str)), file, field)
            return pd.DatetimeIndex(cats[col.cat.codes.to_numpy()])
        except DataError:
            col = col.astype(str)  # re-parse row by row so the error names the file row
    return parse_dates(col, file, field)


def _row_missing(df: pd.DataFrame, cols: tuple[str, ...], policy: MissingPolicy, file: str,
                 symbol_col: str) -> tuple[pd.DataFrame, list[str]]:
    nan = df[list(cols)].isna()
    if not nan.to_numpy().any():
        return df, []
    per_col = {c: int(n) for c, n in nan.sum().items() if n}
    if policy is MissingPolicy.MASK:
        # Kept as NaN: a missing open/high/low never hides a known close; a missing close or
        # volume makes the name untradable that day only (MarketData.tradable).
        return df, [f"kept NaN cells ({per_col}); the tradable mask excludes missing closes"]
    if policy is MissingPolicy.RAISE:
        check_no_nan(df, cols, file, symbol_col=symbol_col,
                     hint="; choose on_missing='mask', 'drop' or 'ffill'")
    if policy is MissingPolicy.DROP:
        bad = nan.any(axis=1).to_numpy()
        return (df.loc[~bad].reset_index(drop=True),
                [f"dropped {int(bad.sum())} rows with NaN ({per_col})"])
    filled = df.groupby(symbol_col, sort=False)[list(cols)].ffill()
    df = df.copy()
    df[list(cols)] = filled
    still = df[list(cols)].isna().any(axis=1).to_numpy()
    acts = [f"forward-filled NaN within symbol ({per_col})"]
    if still.any():
        acts.append(f"dropped {int(still.sum())} leading rows with nothing to fill from")
        df = df.loc[~still].reset_index(drop=True)
    return df, acts


def read_ohlcv_long(path: str | Path, *, date_col: str = "date", symbol_col: str = "Name",
                    columns: dict[str, str] | None = None,
                    calendar: ExchangeCalendar | str | None = "XNYS",
                    on_missing: MissingPolicy | str = MissingPolicy.RAISE) -> OHLCV:
    """Read a long daily OHLCV file (CSV, CSV.gz or Parquet) into an :class:`OHLCV`.

    Args:
        path: the file.
        date_col, symbol_col: names of the date and symbol columns.
        columns: maps keel fields (open, high, low, close, volume) to file columns when they
            differ (defaults: the same names). ``open``/``high``/``low`` are optional: a file
            without them gets NaN panels.
        calendar: stamps date-only rows at that session's close (UTC).
        on_missing: row-level NaN in the value columns: ``raise`` (names column/row/symbol),
            ``drop`` the rows, or ``ffill`` within each symbol; reported in ``report.actions``.

    Raises:
        DataError: unreadable file, missing column, non-numeric, NaN (``raise``), non-positive
            price, negative volume, unparseable/mixed-zone dates, a date that is not a session,
            duplicated or unsorted dates within a symbol.
    """
    file = str(path)
    policy = MissingPolicy(on_missing)
    cmap = {f: f for f in (*PRICE_FIELDS, "volume")}
    cmap.update(columns or {})
    # Categorical: ~1k distinct dates and ~500 symbols over 600k rows parse once each.
    dtypes = {symbol_col: "category", date_col: "category"}
    df = read_table(path, dtype=dtypes)
    require_columns(df, (date_col, symbol_col, cmap["close"], cmap["volume"]), file)
    present = tuple(f for f in (*PRICE_FIELDS, "volume") if cmap[f] in df.columns)
    value_cols = tuple(cmap[f] for f in present)
    check_numeric(df, value_cols, file)
    check_no_nan(df, (date_col, symbol_col), file)
    dates = _parse_date_column(df[date_col], file, date_col)
    codes, syms = pd.factorize(df[symbol_col], sort=True)
    sym_values = df[symbol_col].to_numpy()
    check_time_order(dates, file, date_col, groups=codes, symbol_values=sym_values)
    # Stamp every row at its session close before dropping any, so errors name file rows;
    # two notations of one session (its date and its close) then collide as duplicates.
    stamped = stamp_daily(dates, calendar, file=file, field=date_col)
    check_time_order(stamped, file, date_col, groups=codes, symbol_values=sym_values)
    df = df.assign(**{date_col: stamped})
    df, actions = _row_missing(df, value_cols, policy, file, symbol_col)
    check_positive(df, [cmap[f] for f in present if f != "volume"], file,
                   symbol_col=symbol_col)
    check_positive(df, [cmap["volume"]], file, strict=False, symbol_col=symbol_col)
    codes, syms = pd.factorize(df[symbol_col], sort=True)
    dcode, udates = pd.factorize(pd.DatetimeIndex(df[date_col]), sort=True)
    stamps = pd.DatetimeIndex(udates, name="timestamp")
    cols = pd.Index(syms.astype(str), name="symbol")
    panels: dict[str, pd.DataFrame] = {}
    for f in (*PRICE_FIELDS, "volume"):
        arr = np.full((len(udates), len(syms)), np.nan)
        if f in present:
            arr[dcode, codes] = df[cmap[f]].to_numpy(dtype=np.float64)
        panels[f] = pd.DataFrame(arr, index=stamps, columns=cols)
    report = LoadReport(file=file, rows=len(df), symbols=len(syms), start=stamps[0],
                        end=stamps[-1], actions=tuple(actions))
    return OHLCV(report=report, **panels)


def load_prices_long(path: str | Path, *,
                     sectors: pd.Series | pd.DataFrame | str | Path | None = None,
                     on_missing: MissingPolicy | str = MissingPolicy.RAISE,
                     calendar: ExchangeCalendar | str | None = "XNYS", spreads: bool = True,
                     date_col: str = "date", symbol_col: str = "Name",
                     columns: dict[str, str] | None = None, **market_kwargs: Any
                     ) -> MarketData:
    """Long daily price file -> ``MarketData`` (one call for the S&P 500 5-year file).

    ``sectors``: a Series or a sector-map file (:func:`load_sectors`). ``on_missing`` is
    applied both to NaN cells in the file and to date x symbol holes after pivoting
    (``market.missing_report`` and :class:`LoadReport` say what was done). ``spreads``: add
    the causal Abdi-Ranaldo estimate from high/low/close (an estimate, not quoted spreads).
    """
    ohlcv = read_ohlcv_long(path, date_col=date_col, symbol_col=symbol_col, columns=columns,
                            calendar=calendar, on_missing=on_missing)
    if sectors is not None and not isinstance(sectors, pd.Series | pd.DataFrame):
        sectors = load_sectors(sectors)
    return ohlcv.to_market(sectors, on_missing=on_missing, spreads=spreads, **market_kwargs)


# ---------------------------------------------------------------------- wide files


def read_wide(path: str | Path, *, name: str = "prices", positive: bool = True,
              date_col: str | None = None,
              calendar: ExchangeCalendar | str | None = "XNYS") -> pd.DataFrame:
    """Wide file (dates x symbols; the date is the first column or ``date_col``) -> panel.

    Dates are stamped at session close (UTC), tz-aware stamps kept. Values must be numeric and
    > 0 (``positive``) or >= 0; NaN is kept (the missing policy is applied by MarketData).
    """
    file = str(path)
    df = read_table(path)
    if isinstance(df.index, pd.DatetimeIndex):
        raw = df.index
        values = df
    else:
        dc = date_col or str(df.columns[0])
        require_columns(df, (dc,), file)
        check_no_nan(df, (dc,), file)
        raw = parse_dates(df[dc], file, dc)
        values = df.drop(columns=[dc])
    if values.shape[1] == 0:
        raise DataError("no symbol columns", field=name, file=file)
    values = values.copy()
    values.columns = values.columns.astype(str)
    check_numeric(values, values.columns, file)
    check_time_order(raw, file, date_col or "date")
    check_positive(values, values.columns, file, strict=positive)
    stamps = stamp_dates(raw, calendar, file, date_col or "date")
    out = pd.DataFrame(values.to_numpy(dtype=np.float64), index=stamps,
                       columns=pd.Index(values.columns, name="symbol"))
    return validate_panel(out, name, positive=positive, source=file)


def load_prices_wide(prices: str | Path, volumes: str | Path, *,
                     sectors: pd.Series | pd.DataFrame | str | Path | None = None,
                     spreads: str | Path | None = None,
                     on_missing: MissingPolicy | str = MissingPolicy.RAISE,
                     calendar: ExchangeCalendar | str | None = "XNYS",
                     **market_kwargs: Any) -> MarketData:
    """Wide price and volume files (and optional wide spreads) -> ``MarketData``."""
    px = read_wide(prices, name="prices", calendar=calendar)
    vol = read_wide(volumes, name="volumes", positive=False, calendar=calendar)
    spr = None if spreads is None else read_wide(spreads, name="spreads", calendar=calendar)
    if sectors is not None and not isinstance(sectors, pd.Series | pd.DataFrame):
        sectors = load_sectors(sectors)
    return MarketData(prices=px, volumes=vol, sectors=sectors, spreads=spr,
                      on_missing=MissingPolicy(on_missing), source=str(prices),
                      **market_kwargs)
