"""Minimal private readers for the costs layer's evidence and CLI (LOBSTER, Lean minute quotes).

Used until the data layer's loaders are merged; the public edge takes ``BookSnapshots`` and
DataFrames, so switching is a one-line change at the call sites.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from keel.data.orderbook import BookSnapshots
from keel.errors import DataError

_DUMMY = 9_999_999_999  # LOBSTER's placeholder price for an empty level (+ for asks, - for bids)


def read_lean_minute_quotes(paths: list[Path]) -> pd.DataFrame:
    """Lean ``*_minute_quote.csv`` files -> columns day, minute (after 09:30 ET), bid, ask (close).

    File columns: ms since midnight ET, bid O H L C, bid size, ask O H L C, ask size; prices
    x10000. Only regular-session minutes (09:30 <= t < 16:00) are kept.
    """
    frames = []
    for p in paths:
        try:
            raw = pd.read_csv(p, header=None)
        except (OSError, pd.errors.ParserError) as exc:
            raise DataError(f"cannot read quote file: {exc}", file=str(p)) from None
        if raw.shape[1] != 11:
            raise DataError("Lean minute quotes need 11 columns", field="columns",
                            value=raw.shape[1], file=str(p))
        minute = raw[0].to_numpy(dtype=np.float64) / 60_000.0 - 570.0
        frames.append(pd.DataFrame({"day": Path(p).name.split("_")[0], "minute": minute,
                                    "bid": raw[4] / 1e4, "ask": raw[9] / 1e4}))
    if not frames:
        raise DataError("no quote files given", field="paths")
    out = pd.concat(frames, ignore_index=True)
    return out[(out["minute"] >= 0) & (out["minute"] < 390)].reset_index(drop=True)


def find_lobster_files(directory: Path) -> tuple[Path, Path | None]:
    """(orderbook file, message file or None) in a LOBSTER sample directory."""
    d = Path(directory)
    books = sorted(d.glob("*_orderbook_*.csv"))
    if not books:
        raise DataError("no LOBSTER *_orderbook_*.csv file", field="lobster", file=str(d))
    msgs = sorted(d.glob("*_message_*.csv"))
    return books[0], (msgs[0] if msgs else None)


def read_lobster(directory: Path) -> tuple[pd.DataFrame | None, BookSnapshots]:
    """Messages (time_s, type, order_id, size, price, direction) and the book snapshots.

    The day comes from the file name (``TICKER_YYYY-MM-DD_...``); times are seconds after
    midnight New York time, converted to UTC. Empty levels become NaN price and 0 size.
    """
    book_path, msg_path = find_lobster_files(directory)
    parts = book_path.name.split("_")
    symbol, day = parts[0], parts[1]
    raw = pd.read_csv(book_path, header=None).to_numpy(dtype=np.float64)
    if raw.shape[1] % 4:
        raise DataError("orderbook columns must be 4 per level", field="columns",
                        value=raw.shape[1], file=str(book_path))
    ask_px, ask_sz = raw[:, 0::4] / 1e4, raw[:, 1::4]
    bid_px, bid_sz = raw[:, 2::4] / 1e4, raw[:, 3::4]
    ask_empty = raw[:, 0::4] >= _DUMMY
    bid_empty = raw[:, 2::4] <= -_DUMMY
    ask_px[ask_empty], ask_sz[ask_empty] = np.nan, 0.0
    bid_px[bid_empty], bid_sz[bid_empty] = np.nan, 0.0
    messages = None
    if msg_path is not None:
        messages = pd.read_csv(msg_path, header=None,
                               names=["time_s", "type", "order_id", "size", "price",
                                      "direction"])
        messages["price"] = messages["price"] / 1e4
        if len(messages) != len(raw):
            raise DataError("message and orderbook files differ in length", field="rows",
                            value=(len(messages), len(raw)), file=str(msg_path))
        secs = messages["time_s"].to_numpy()
    else:
        secs = np.linspace(34200.0, 57600.0, len(raw))
    base = pd.Timestamp(day, tz="America/New_York")
    ts = (base + pd.to_timedelta(secs, unit="s")).tz_convert("UTC")
    book = BookSnapshots(pd.DatetimeIndex(ts), bid_px, bid_sz, ask_px, ask_sz, symbol=symbol,
                         source=str(book_path))
    return messages, book
