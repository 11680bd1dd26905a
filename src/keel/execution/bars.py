"""Minute bars as the execution layer uses them, read with :mod:`keel.data.lean`.

Output of :func:`load_minute_bars`: one DataFrame per symbol folder, indexed by the UTC
**start** of each regular-hours one-minute bar, columns ``open, high, low, close``
(currency/share), ``volume`` (shares), ``bid``, ``ask`` (the quote at the bar's close,
currency/share; NaN without a quote file). Minutes with no trade are absent (not filled):
volume profiles treat them as zero volume. The liquidity of a bar is known at its end
(start + 1 minute), which is when the paper broker fills against it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from keel.data.lean import load_lean_minute_folder
from keel.errors import DataError

_TZ = "America/New_York"


def load_minute_bars(folder: Path | str) -> pd.DataFrame:
    """Trade bars of a ``lean_minute/<ticker>`` folder, with the closing quote of each bar."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("minute-bar folder not found", field="bars", value=str(folder))
    trades = load_lean_minute_folder(folder, "trade")
    out = pd.DataFrame(trades[["open", "high", "low", "close", "volume"]].to_numpy(),
                       columns=["open", "high", "low", "close", "volume"],
                       index=pd.DatetimeIndex(trades["bar_start"], name="timestamp"))
    out["bid"], out["ask"] = np.nan, np.nan
    if any(folder.glob("*_minute_quote.csv")):
        q = load_lean_minute_folder(folder, "quote")
        quotes = pd.DataFrame({"bid": q["bid_close"].to_numpy(),
                               "ask": q["ask_close"].to_numpy()},
                              index=pd.DatetimeIndex(q["bar_start"]))
        quotes = quotes[(quotes["bid"] > 0) & (quotes["ask"] > quotes["bid"])]
        joined = quotes.reindex(out.index.union(quotes.index))
        # carry a quote forward within its own session only
        jd = joined.index.tz_convert(_TZ).normalize()
        joined = joined.groupby(jd).ffill().reindex(out.index)
        out["bid"] = joined["bid"].to_numpy()
        out["ask"] = joined["ask"].to_numpy()
    out.attrs["symbol"] = trades.attrs.get("symbol", "")
    return out


def sessions(bars: pd.DataFrame) -> dict[pd.Timestamp, pd.DataFrame]:
    """Split bars (UTC bar-start index) by New York trading date."""
    local = bars.index.tz_convert(_TZ)
    return {pd.Timestamp(d): g for d, g in bars.groupby(local.normalize().tz_localize(None))}
