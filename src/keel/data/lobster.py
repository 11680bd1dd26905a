"""LOBSTER message + orderbook files -> typed messages and :class:`BookSnapshots`.

Format (``LOBSTER_SampleFiles_ReadMe.txt``): file names
``TICKER_YYYY-MM-DD_START_END_{message,orderbook}_LEVEL.csv``, no header.

* message (N x 6): time (seconds after midnight, US/Eastern, of the date in the file name),
  event type (1 submit, 2 partial cancel, 3 delete, 4 visible execution, 5 hidden execution,
  6 cross trade, 7 trading halt), order id, size (shares), price ($ x 10000), direction
  (1 buy limit order, -1 sell limit order).
* orderbook (N x 4L): per level ``[askP, askS, bidP, bidS]``; the book *after* the message
  on the same row. Empty levels carry dummy prices -9999999999 (bid) / 9999999999 (ask) with
  size 0; keel turns them into NaN price, size 0 (the ``BookSnapshots`` convention).

Output units: prices in dollars, sizes in shares, timestamps tz-aware UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import numpy as np
import pandas as pd

from keel.data._io import check_numeric, check_time_order, first_bad, read_table
from keel.data.orderbook import BookSnapshots
from keel.errors import DataError

PRICE_SCALE = 10_000.0
DUMMY_ASK = 9_999_999_999
DUMMY_BID = -9_999_999_999
EXCHANGE_TZ = "America/New_York"
MESSAGE_COLUMNS = ("seconds", "event", "order_id", "size", "price", "direction")
_NAME = re.compile(r"^(?P<symbol>[^_]+)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<start>\d+)_(?P<end>\d+)_"
                   r"(?P<kind>message|orderbook)_(?P<level>\d+)\.csv(\.gz)?$")


class LobsterEvent(IntEnum):
    """LOBSTER message event types."""

    SUBMIT = 1
    CANCEL = 2
    DELETE = 3
    EXECUTE_VISIBLE = 4
    EXECUTE_HIDDEN = 5
    CROSS = 6
    HALT = 7


@dataclass(frozen=True)
class LobsterFileInfo:
    symbol: str
    date: pd.Timestamp
    start_ms: int
    end_ms: int
    kind: str
    levels: int


def parse_lobster_name(path: str | Path) -> LobsterFileInfo:
    """Ticker, date, time window, kind and levels from a LOBSTER file name."""
    name = Path(path).name
    m = _NAME.match(name)
    if m is None:
        raise DataError("not a LOBSTER file name (TICKER_DATE_START_END_KIND_LEVEL.csv)",
                        field="file name", value=name, file=str(path))
    return LobsterFileInfo(m["symbol"], pd.Timestamp(m["date"]), int(m["start"]),
                           int(m["end"]), m["kind"], int(m["level"]))


@dataclass(frozen=True, eq=False)
class LobsterDay:
    """One LOBSTER day: messages row ``i`` caused book snapshot ``i``.

    Attributes:
        symbol, date, levels: from the file names.
        messages: DataFrame (N rows) with columns ``timestamp`` (UTC), ``seconds`` (after
            midnight ET), ``event`` (int8, :class:`LobsterEvent`), ``order_id`` (int64),
            ``size`` (int64 shares), ``price`` (float64 dollars; NaN for halt messages),
            ``direction`` (int8: 1 buy limit order, -1 sell limit order).
        book: :class:`BookSnapshots` with N snapshots x ``levels`` levels.
    """

    symbol: str
    date: pd.Timestamp
    levels: int
    messages: pd.DataFrame
    book: BookSnapshots

    @property
    def trades(self) -> pd.DataFrame:
        """Executions (visible, hidden, cross). ``sign`` = +1 buyer-initiated (a sell limit
        order executed), -1 seller-initiated."""
        ev = self.messages["event"]
        t = self.messages.loc[ev.isin([4, 5, 6])].copy()
        t["sign"] = (-t["direction"]).astype(np.int8)
        return t


def _seconds_to_utc(seconds: np.ndarray, date: pd.Timestamp) -> pd.DatetimeIndex:
    ns = np.round(seconds * 1e9).astype(np.int64)
    local = pd.DatetimeIndex(date + pd.to_timedelta(ns, unit="ns"))
    return local.tz_localize(EXCHANGE_TZ).tz_convert("UTC")


def read_lobster_messages(path: str | Path, date: pd.Timestamp | None = None
                          ) -> pd.DataFrame:
    """Read and validate a LOBSTER message file (see module doc for columns).

    Raises DataError naming file, column and row: wrong column count, non-numeric values,
    unsorted times, unknown event type, bad direction, non-positive size or price on order
    events.
    """
    file = str(path)
    if date is None:
        date = parse_lobster_name(path).date
    df = read_table(path, header=None)
    if df.shape[1] != 6:
        raise DataError("a LOBSTER message file has 6 columns", field="columns",
                        value=df.shape[1], file=file)
    df.columns = list(MESSAGE_COLUMNS)
    check_numeric(df, MESSAGE_COLUMNS, file)
    for c in MESSAGE_COLUMNS:
        r = first_bad(df[c].isna().to_numpy())
        if r is not None:
            raise DataError("missing value (NaN)", field=c, row=r + 1, file=file)
    ts = _seconds_to_utc(df["seconds"].to_numpy(dtype=np.float64), date)
    # Many events share a timestamp: order matters, equality does not.
    check_time_order(ts, file, "seconds", unique=False)
    ev = df["event"].to_numpy()
    r = first_bad(~np.isin(ev, list(map(int, LobsterEvent))))
    if r is not None:
        raise DataError("unknown event type (1-7)", field="event", row=r + 1,
                        value=ev[r], file=file)
    direction = df["direction"].to_numpy()
    r = first_bad(~np.isin(direction, (-1, 1)))
    if r is not None:
        raise DataError("direction must be 1 or -1", field="direction", row=r + 1,
                        value=direction[r], file=file)
    order = ev != LobsterEvent.HALT
    for c in ("size", "price"):
        v = df[c].to_numpy(dtype=np.float64)
        r = first_bad(order & (v <= 0))
        if r is not None:
            raise DataError(f"non-positive {c}", field=c, row=r + 1, value=v[r], file=file)
    price = np.where(order, df["price"].to_numpy(dtype=np.float64) / PRICE_SCALE, np.nan)
    return pd.DataFrame({
        "timestamp": ts,
        "seconds": df["seconds"].to_numpy(dtype=np.float64),
        "event": ev.astype(np.int8),
        "order_id": df["order_id"].to_numpy(dtype=np.int64),
        "size": df["size"].to_numpy(dtype=np.int64),
        "price": price,
        "direction": direction.astype(np.int8),
    })


def read_lobster_book(path: str | Path, timestamps: pd.DatetimeIndex, *, symbol: str = "",
                      levels: int | None = None) -> BookSnapshots:
    """Read a LOBSTER orderbook file into ``BookSnapshots`` stamped with ``timestamps``."""
    file = str(path)
    df = read_table(path, header=None)
    ncol = df.shape[1]
    if ncol % 4 or (levels is not None and ncol != 4 * levels):
        raise DataError("orderbook columns must be 4 x levels [askP,askS,bidP,bidS]",
                        field="columns", value=ncol, file=file)
    if len(df) != len(timestamps):
        raise DataError("orderbook and message files differ in rows", field="rows",
                        value=(len(df), len(timestamps)), file=file)
    names = [f"{k}{lvl + 1}" for lvl in range(ncol // 4)
             for k in ("ask_px", "ask_sz", "bid_px", "bid_sz")]
    df.columns = names
    check_numeric(df, names, file)
    a = df.to_numpy(dtype=np.float64)
    r = first_bad(np.isnan(a).any(axis=1))
    if r is not None:
        c = int(np.argmax(np.isnan(a[r])))
        raise DataError("missing value (NaN)", field=names[c], row=r + 1, file=file)
    ask_px, ask_sz, bid_px, bid_sz = (a[:, k::4] for k in range(4))
    for name, sz in (("ask_sz", ask_sz), ("bid_sz", bid_sz)):
        bad = sz < 0
        if bad.any():
            rr, cc = np.argwhere(bad)[0]
            raise DataError("negative size", field=f"{name}{cc + 1}", row=int(rr) + 1,
                            value=sz[rr, cc], file=file)
    empty_ask, empty_bid = ask_px >= DUMMY_ASK, bid_px <= DUMMY_BID
    for name, px, empty in (("ask_px", ask_px, empty_ask), ("bid_px", bid_px, empty_bid)):
        bad = (px <= 0) & ~empty
        if bad.any():
            rr, cc = np.argwhere(bad)[0]
            raise DataError("non-positive price", field=f"{name}{cc + 1}", row=int(rr) + 1,
                            value=px[rr, cc], file=file)
    ask = np.where(empty_ask, np.nan, ask_px / PRICE_SCALE)
    bid = np.where(empty_bid, np.nan, bid_px / PRICE_SCALE)
    try:
        return BookSnapshots(timestamps, bid, np.where(empty_bid, 0.0, bid_sz), ask,
                             np.where(empty_ask, 0.0, ask_sz), symbol=symbol, source=file)
    except DataError as exc:
        row = exc.context.get("row")
        raise DataError(exc.message, field=exc.field, value=exc.value, file=file,
                        row=None if row is None else int(row) + 1) from None


def load_lobster(message_path: str | Path, orderbook_path: str | Path) -> LobsterDay:
    """Load a LOBSTER day (message + orderbook files of the same ticker, date and level).

    Raises:
        DataError: mismatched file names, unreadable files, or any validation failure,
            naming file, column and (1-based) row.
    """
    mi, oi = parse_lobster_name(message_path), parse_lobster_name(orderbook_path)
    if mi.kind != "message" or oi.kind != "orderbook":
        raise DataError("expected a message file then an orderbook file", field="kind",
                        value=(mi.kind, oi.kind), file=str(message_path))
    if (mi.symbol, mi.date, mi.levels) != (oi.symbol, oi.date, oi.levels):
        raise DataError("message and orderbook files do not match (ticker, date, level)",
                        field="file name", value=(Path(message_path).name,
                                                  Path(orderbook_path).name),
                        file=str(orderbook_path))
    msgs = read_lobster_messages(message_path, mi.date)
    book = read_lobster_book(orderbook_path, pd.DatetimeIndex(msgs["timestamp"]),
                             symbol=mi.symbol, levels=mi.levels)
    return LobsterDay(mi.symbol, mi.date, mi.levels, msgs, book)


def find_lobster_pair(folder: str | Path) -> tuple[Path, Path]:
    """The (message, orderbook) pair in a folder holding one LOBSTER day."""
    d = Path(folder)
    msgs = sorted(d.glob("*_message_*.csv*"))
    books = sorted(d.glob("*_orderbook_*.csv*"))
    if len(msgs) != 1 or len(books) != 1:
        raise DataError("expected exactly one message and one orderbook file", field="folder",
                        value=(len(msgs), len(books)), file=str(d))
    return msgs[0], books[0]
