"""QuantConnect Lean data files: equity/crypto minute bars, equity daily bars, factor files.

Minute files ``YYYYMMDD_<ticker>_minute_{trade,quote}.csv`` (no header):

* trade: ``ms, open, high, low, close, volume``
* quote: ``ms, bid_open, bid_high, bid_low, bid_close, bid_size, ask_open, ask_high, ask_low,
  ask_close, ask_size``

``ms`` is milliseconds since midnight of the file's date in the data time zone (US/Eastern
for US equities, UTC for crypto), and marks the bar *start*. Equity prices are dollars x 10000;
crypto prices are plain USD. keel returns frames indexed by the bar **end** (``bar_end``,
UTC) -- the instant the bar is known, consistent with the point-in-time convention -- with a
``bar_start`` column too. Equity bars are kept when they start in the regular session
09:30-16:00 ET unless ``extended_hours=True``; minutes without trades are absent (not filled).

Daily files ``<ticker>.csv.gz``: ``"YYYYMMDD HH:MM", open, high, low, close (x10000), volume``,
raw (unadjusted). Factor files ``<ticker>.csv``: ``date, price_factor, split_factor,
ref_price``; the row dated ``d`` applies to every date up to and including ``d`` after the
previous row (Lean's convention). Adjusted price = raw x price_factor x split_factor.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from keel.config import MissingPolicy
from keel.data._io import check_numeric, check_positive, check_time_order, first_bad, read_table
from keel.data.calendar import ExchangeCalendar
from keel.data.market import MarketData
from keel.data.prices import stamp_dates
from keel.errors import DataError

EQUITY_PRICE_SCALE = 10_000.0
EQUITY_TZ = "America/New_York"
TRADE_COLUMNS = ("open", "high", "low", "close", "volume")
QUOTE_COLUMNS = ("bid_open", "bid_high", "bid_low", "bid_close", "bid_size",
                 "ask_open", "ask_high", "ask_low", "ask_close", "ask_size")
_NAME = re.compile(r"^(?P<date>\d{8})_(?P<symbol>[^_]+)_minute_(?P<kind>trade|quote)\.csv$")
_SESSION = (pd.Timedelta(hours=9, minutes=30), pd.Timedelta(hours=16))


def _parse_name(path: Path) -> tuple[pd.Timestamp, str, str]:
    m = _NAME.match(path.name)
    if m is None:
        raise DataError("not a Lean minute file name (YYYYMMDD_<t>_minute_<kind>.csv)",
                        field="file name", value=path.name, file=str(path))
    return pd.Timestamp(m["date"]), m["symbol"].upper(), m["kind"]


def _read_bars(path: Path, kind: str, file: str) -> pd.DataFrame:
    cols = TRADE_COLUMNS if kind == "trade" else QUOTE_COLUMNS
    df = read_table(path, header=None)
    if df.shape[1] != len(cols) + 1:
        raise DataError(f"a Lean {kind} bar file has {len(cols) + 1} columns",
                        field="columns", value=df.shape[1], file=file)
    df.columns = ["ms", *cols]
    check_numeric(df, df.columns, file)
    for c in df.columns:
        r = first_bad(df[c].isna().to_numpy())
        if r is not None:
            raise DataError("missing value (NaN)", field=c, row=r + 1, file=file)
    ms = df["ms"].to_numpy()
    r = first_bad((ms < 0) | (ms > 86_400_000))
    if r is not None:
        raise DataError("ms since midnight out of [0, 86400000]", field="ms", row=r + 1,
                        value=ms[r], file=file)
    prices = [c for c in cols if not c.endswith(("size", "volume"))]
    sizes = [c for c in cols if c.endswith(("size", "volume"))]
    check_positive(df, prices, file)
    check_positive(df, sizes, file, strict=False)
    return df


def load_lean_minute(path: str | Path, *, extended_hours: bool = False,
                     crypto: bool | None = None) -> pd.DataFrame:
    """One Lean minute trade or quote file -> DataFrame indexed by ``bar_end`` (UTC).

    Args:
        path: ``YYYYMMDD_<ticker>_minute_{trade,quote}.csv``.
        extended_hours: keep pre/post-market equity bars (default: 09:30-16:00 ET only).
        crypto: prices in USD and times in UTC, no session filter. Default: guessed from
            the path (a ``crypto`` folder).

    Returns:
        Columns ``bar_start`` (UTC) then the trade or quote columns (prices in currency,
        sizes in shares/units); attrs ``symbol``, ``kind``, ``date``.

    Raises:
        DataError: bad file name, wrong column count, non-numeric/NaN, non-positive price,
            negative size, duplicated or unsorted times (naming file, column, row).
    """
    p = Path(path)
    file = str(p)
    date, symbol, kind = _parse_name(p)
    if crypto is None:
        crypto = "crypto" in {part.lower() for part in p.parts} or "crypto" in p.parent.name
    df = _read_bars(p, kind, file)
    offsets = pd.to_timedelta(df["ms"].to_numpy(dtype=np.int64), unit="ms")
    local = pd.DatetimeIndex(date + offsets)
    tz = "UTC" if crypto else EQUITY_TZ
    start = local.tz_localize(tz).tz_convert("UTC")
    check_time_order(start, file, "ms")
    cols = TRADE_COLUMNS if kind == "trade" else QUOTE_COLUMNS
    out = pd.DataFrame({c: df[c].to_numpy(dtype=np.float64) for c in cols})
    if not crypto:
        prices = [c for c in cols if not c.endswith(("size", "volume"))]
        out[prices] = out[prices] / EQUITY_PRICE_SCALE
    out.insert(0, "bar_start", start)
    out.index = pd.DatetimeIndex(start + pd.Timedelta(minutes=1), name="bar_end")
    if not crypto and not extended_hours:
        keep = (offsets >= _SESSION[0]) & (offsets < _SESSION[1])
        out = out.loc[np.asarray(keep)]
    out.attrs.update(symbol=symbol, kind=kind, date=date.date().isoformat())
    return out


def load_lean_minute_folder(folder: str | Path, kind: str = "trade", *,
                            extended_hours: bool = False,
                            crypto: bool | None = None) -> pd.DataFrame:
    """All days of one symbol folder (``*_minute_<kind>.csv``), concatenated in time order."""
    if kind not in ("trade", "quote"):
        raise DataError("kind must be 'trade' or 'quote'", field="kind", value=kind)
    files = sorted(Path(folder).glob(f"*_minute_{kind}.csv"))
    if not files:
        raise DataError(f"no Lean minute {kind} files", field="folder", file=str(folder))
    frames = [load_lean_minute(f, extended_hours=extended_hours, crypto=crypto)
              for f in files]
    symbols = {f.attrs["symbol"] for f in frames}
    if len(symbols) > 1:
        raise DataError("folder mixes symbols", field="symbol", value=sorted(symbols),
                        file=str(folder))
    out = pd.concat(frames)
    check_time_order(pd.DatetimeIndex(out.index), str(folder), "bar_end")
    out.attrs.update(symbol=symbols.pop(), kind=kind)
    return out


# ---------------------------------------------------------------------- daily + factors


def load_lean_factor_file(path: str | Path) -> pd.DataFrame:
    """Lean factor file -> DataFrame indexed by date (naive) with ``price_factor``,
    ``split_factor``, ``ref_price``. Factors must be > 0 and dates strictly increasing."""
    file = str(path)
    df = read_table(path, header=None, dtype={0: str})
    if df.shape[1] < 3:
        raise DataError("a Lean factor file has date, price_factor, split_factor[, ref]",
                        field="columns", value=df.shape[1], file=file)
    df = df.iloc[:, :4]
    df.columns = ["date", "price_factor", "split_factor", "ref_price"][: df.shape[1]]
    check_numeric(df, ["price_factor", "split_factor"], file)
    check_positive(df, ["price_factor", "split_factor"], file)
    try:
        dates = pd.DatetimeIndex(pd.to_datetime(df["date"], format="%Y%m%d"))
    except ValueError:
        raise DataError("unparseable date (YYYYMMDD)", field="date", file=file) from None
    check_time_order(dates, file, "date")
    return df.drop(columns="date").set_index(dates.rename("date"))


def adjustment_factors(dates: pd.DatetimeIndex, factors: pd.DataFrame) -> pd.DataFrame:
    """Per-date ``price_factor`` and ``split_factor`` by Lean's rule (first row dated >= d)."""
    d = pd.DatetimeIndex(dates)
    if d.tz is not None:
        d = d.tz_localize(None)
    pos = factors.index.searchsorted(d.normalize(), side="left")
    pos = np.minimum(pos, len(factors) - 1)
    return pd.DataFrame({"price_factor": factors["price_factor"].to_numpy()[pos],
                         "split_factor": factors["split_factor"].to_numpy()[pos]},
                        index=dates)


def load_lean_daily(path: str | Path, *, factor_file: str | Path | None = None,
                    calendar: ExchangeCalendar | str | None = "XNYS") -> pd.DataFrame:
    """Lean daily equity bars -> OHLCV DataFrame stamped at session close (UTC).

    With ``factor_file`` the prices are split- and dividend-adjusted (raw x price_factor x
    split_factor) and volumes split-adjusted (raw / split_factor); the factors used are in
    columns ``price_factor`` and ``split_factor``.
    """
    file = str(path)
    df = read_table(path, header=None, dtype={0: str})
    if df.shape[1] != 6:
        raise DataError("a Lean daily file has 6 columns", field="columns", value=df.shape[1],
                        file=file)
    df.columns = ["date", *TRADE_COLUMNS]
    check_numeric(df, TRADE_COLUMNS, file)
    try:
        raw = pd.DatetimeIndex(pd.to_datetime(df["date"].str.slice(0, 8), format="%Y%m%d"))
    except ValueError:
        raise DataError("unparseable date (YYYYMMDD HH:MM)", field="date", file=file) from None
    check_time_order(raw, file, "date")
    check_positive(df, TRADE_COLUMNS[:4], file)
    check_positive(df, ["volume"], file, strict=False)
    out = df[list(TRADE_COLUMNS)].astype(np.float64)
    out[list(TRADE_COLUMNS[:4])] /= EQUITY_PRICE_SCALE
    if factor_file is not None:
        f = adjustment_factors(raw, load_lean_factor_file(factor_file))
        scale = (f["price_factor"] * f["split_factor"]).to_numpy()
        out[list(TRADE_COLUMNS[:4])] = out[list(TRADE_COLUMNS[:4])].mul(scale, axis=0)
        out["volume"] = out["volume"] / f["split_factor"].to_numpy()
        out["price_factor"] = f["price_factor"].to_numpy()
        out["split_factor"] = f["split_factor"].to_numpy()
    out.index = stamp_dates(raw, calendar, file, "date")
    return out


def load_lean_daily_market(folder: str | Path, *, factor_folder: str | Path | None = None,
                           symbols: list[str] | None = None,
                           on_missing: MissingPolicy | str = MissingPolicy.RAISE,
                           calendar: ExchangeCalendar | str | None = "XNYS") -> MarketData:
    """Several Lean daily files (``<folder>/<ticker>.csv.gz``) -> ``MarketData``.

    With ``factor_folder`` (``<ticker>.csv`` factor files) prices and volumes are adjusted.
    Symbols listed at different times leave NaN holes, handled by ``on_missing``.
    """
    d = Path(folder)
    files = sorted(d.glob("*.csv.gz")) + sorted(d.glob("*.csv"))
    wanted = None if symbols is None else {s.lower() for s in symbols}
    frames: dict[str, pd.DataFrame] = {}
    for f in files:
        ticker = f.name.split(".")[0]
        if wanted is not None and ticker.lower() not in wanted:
            continue
        ff = None if factor_folder is None else Path(factor_folder) / f"{ticker}.csv"
        frames[ticker.upper()] = load_lean_daily(f, factor_file=ff, calendar=calendar)
    if not frames or (wanted is not None and len(frames) < len(wanted)):
        missing = sorted((wanted or set()) - {k.lower() for k in frames})
        raise DataError("no Lean daily file for symbol", field="symbols",
                        symbol=missing[0] if missing else None, file=str(d))
    close = pd.DataFrame({k: v["close"] for k, v in frames.items()}).sort_index()
    volume = pd.DataFrame({k: v["volume"] for k, v in frames.items()}).reindex(close.index)
    return MarketData(prices=close, volumes=volume, on_missing=MissingPolicy(on_missing),
                      source=str(d))
