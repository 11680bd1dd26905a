"""Minimal reader of QuantConnect/Lean minute bars (trade and quote files), regular hours only.

Files are ``YYYYMMDD_<ticker>_minute_trade.csv`` (``ms, O, H, L, C, volume``) and
``YYYYMMDD_<ticker>_minute_quote.csv`` (``ms, bidO, bidH, bidL, bidC, bidSize, askO, askH, askL,
askC, askSize``), ``ms`` counted from midnight America/New_York, prices x 10000.

Output: one DataFrame per symbol, indexed by the UTC start of each one-minute bar (09:30 to
15:59 ET), columns ``open, high, low, close`` (currency/share), ``volume`` (shares), ``bid``,
``ask`` (the quote at the bar close, currency/share; NaN when no quote file). Minutes with no
trade are absent (not filled): volume profiles treat them as zero volume.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from keel.errors import DataError

_NAME = re.compile(r"^(\d{8})_([a-z0-9.]+)_minute_(trade|quote)\.csv$")
_OPEN_MS = (9 * 60 + 30) * 60_000
_CLOSE_MS = 16 * 60 * 60_000
_TZ = "America/New_York"


def _read(path: Path, ncols: int) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, header=None)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read minute bars: {exc}", file=str(path)) from None
    if df.shape[1] != ncols:
        raise DataError(f"expected {ncols} columns", field="columns", value=df.shape[1],
                        file=str(path))
    if not np.issubdtype(df[0].dtype, np.number):
        raise DataError("non-numeric timestamp column", field="ms", file=str(path))
    return df


def _index(day: str, ms: pd.Series) -> pd.DatetimeIndex:
    base = pd.Timestamp(day).tz_localize(_TZ)
    local = base + pd.to_timedelta(ms.to_numpy(dtype=np.int64), unit="ms")
    return pd.DatetimeIndex(local).tz_convert("UTC")


def load_lean_minute_day(trade_file: Path | str, quote_file: Path | str | None = None
                         ) -> pd.DataFrame:
    """One session of regular-hours minute bars (see module doc for the layout)."""
    trade_file = Path(trade_file)
    m = _NAME.match(trade_file.name)
    if m is None or m.group(3) != "trade":
        raise DataError("not a Lean minute trade file name", field="file",
                        value=trade_file.name)
    day = m.group(1)
    t = _read(trade_file, 6)
    t = t[(t[0] >= _OPEN_MS) & (t[0] < _CLOSE_MS)]
    out = pd.DataFrame(t[[1, 2, 3, 4]].to_numpy(dtype=np.float64) / 1e4,
                       columns=["open", "high", "low", "close"], index=_index(day, t[0]))
    out["volume"] = t[5].to_numpy(dtype=np.float64)
    if (out[["open", "high", "low", "close"]] <= 0).any().any():
        raise DataError("non-positive price", field="close", file=str(trade_file))
    if (out["volume"] < 0).any():
        raise DataError("negative volume", field="volume", file=str(trade_file))
    out["bid"] = np.nan
    out["ask"] = np.nan
    if quote_file is not None and Path(quote_file).exists():
        q = _read(Path(quote_file), 11)
        q = q[(q[0] >= _OPEN_MS) & (q[0] < _CLOSE_MS)]
        quotes = pd.DataFrame({"bid": q[4].to_numpy(dtype=np.float64) / 1e4,
                               "ask": q[9].to_numpy(dtype=np.float64) / 1e4},
                              index=_index(day, q[0]))
        quotes = quotes[(quotes["bid"] > 0) & (quotes["ask"] > quotes["bid"])]
        joined = quotes.reindex(out.index.union(quotes.index)).ffill().reindex(out.index)
        out["bid"] = joined["bid"].to_numpy()
        out["ask"] = joined["ask"].to_numpy()
    out.index.name = "timestamp"
    return out


def load_lean_minute(folder: Path | str, symbol: str | None = None) -> pd.DataFrame:
    """Every session in ``folder`` (a ``lean_minute/<ticker>`` directory), concatenated.

    Args:
        folder: directory holding ``YYYYMMDD_<t>_minute_{trade,quote}.csv`` files.
        symbol: ticker to read when the folder mixes several (default: all trade files).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("minute-bar folder not found", field="bars", value=str(folder))
    trades = sorted(p for p in folder.iterdir()
                    if (m := _NAME.match(p.name)) and m.group(3) == "trade"
                    and (symbol is None or m.group(2) == symbol.lower()))
    if not trades:
        raise DataError("no minute trade files", field="bars", value=str(folder),
                        symbol=symbol)
    days = [load_lean_minute_day(p, p.with_name(p.name.replace("_trade.", "_quote.")))
            for p in trades]
    return pd.concat(days).sort_index()


def sessions(bars: pd.DataFrame) -> dict[pd.Timestamp, pd.DataFrame]:
    """Split concatenated bars by New York trading date."""
    local = bars.index.tz_convert(_TZ)
    return {pd.Timestamp(d): g for d, g in bars.groupby(local.normalize().tz_localize(None))}
