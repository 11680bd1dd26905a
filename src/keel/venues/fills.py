"""Fill models of the paper broker: how much of an order trades against recorded market data.

A fill model owns the market data of its symbols and answers, for the ``i``-th liquidity event
of a symbol (a minute bar's end, or an order-book snapshot), how many shares of an order trade
there and at what price (crossing the spread or walking the book, before any extra impact).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

import numpy as np
import pandas as pd

from keel.data.orderbook import BookSnapshots
from keel.errors import DataError, ValidationError
from keel.types import ZERO, Rounding, Side, to_qty


class FillModel(Protocol):
    def symbols(self) -> list[str]:
        ...

    def event_times(self, symbol: str) -> np.ndarray:
        """(T,) int64 UTC nanoseconds at which liquidity shows, increasing."""
        ...

    def quote(self, symbol: str, i: int) -> tuple[float, float]:
        """(mid, relative spread) at event ``i`` (currency/share, fraction of mid)."""
        ...

    def fill(self, symbol: str, side: Side, leaves: Decimal, limit: Decimal | None, i: int
             ) -> tuple[Decimal, float] | None:
        """(qty, price) traded at event ``i``, or None."""
        ...


def _whole(x: float, lot: int) -> Decimal:
    return to_qty(max(float(x), 0.0), lot, Rounding.DOWN)


class BarFillModel:
    """Fills against one-minute bars: up to ``participation`` of each bar's volume.

    Bars: DataFrame per symbol indexed by UTC bar start, columns ``open, high, low, close,
    volume`` and optionally ``bid, ask`` (the quote at the bar's close). A market order buys
    at the ask (sells at the bid); without quotes, at the close +/- ``default_spread_bps``/2.
    A limit buy trades only if the bar's low is at or below the limit, at min(limit, ask).
    Liquidity of a bar shows at the bar's end.
    """

    def __init__(self, bars: dict[str, pd.DataFrame], participation: float = 0.1,
                 lot_size: int = 1, default_spread_bps: float = 2.0,
                 bar_length: pd.Timedelta = pd.Timedelta(minutes=1)) -> None:
        if not 0 < participation <= 1:
            raise ValidationError("participation must be in (0, 1]", field="participation",
                                  value=participation)
        self.participation, self.lot_size = participation, lot_size
        self.default_spread_bps = default_spread_bps
        self._data: dict[str, dict[str, np.ndarray]] = {}
        for sym, df in bars.items():
            missing = {"high", "low", "close", "volume"} - set(df.columns)
            if missing:
                raise DataError("bars miss columns", field=sorted(missing)[0], symbol=sym)
            idx = pd.DatetimeIndex(df.index)
            if idx.tz is None or not idx.is_monotonic_increasing:
                raise DataError("bars need an increasing tz-aware index", field="index",
                                symbol=sym)
            close = df["close"].to_numpy(np.float64)
            half = close * default_spread_bps / 2e4
            bid = df["bid"].to_numpy(np.float64) if "bid" in df else close - half
            ask = df["ask"].to_numpy(np.float64) if "ask" in df else close + half
            bad = ~(np.isfinite(bid) & np.isfinite(ask) & (ask > bid))
            bid, ask = np.where(bad, close - half, bid), np.where(bad, close + half, ask)
            ends = (idx.tz_convert("UTC") + bar_length).as_unit("ns")
            self._data[sym] = {
                "t": ends.asi8.astype(np.int64),
                "high": df["high"].to_numpy(np.float64), "low": df["low"].to_numpy(np.float64),
                "volume": df["volume"].to_numpy(np.float64), "bid": bid, "ask": ask}

    def symbols(self) -> list[str]:
        return list(self._data)

    def event_times(self, symbol: str) -> np.ndarray:
        return self._data[symbol]["t"]

    def quote(self, symbol: str, i: int) -> tuple[float, float]:
        d = self._data[symbol]
        mid = 0.5 * (d["bid"][i] + d["ask"][i])
        return float(mid), float((d["ask"][i] - d["bid"][i]) / mid)

    def fill(self, symbol: str, side: Side, leaves: Decimal, limit: Decimal | None, i: int
             ) -> tuple[Decimal, float] | None:
        d = self._data[symbol]
        qty = min(leaves, _whole(self.participation * d["volume"][i], self.lot_size))
        if qty <= ZERO:
            return None
        px = float(d["ask"][i] if side is Side.BUY else d["bid"][i])
        if limit is not None:
            lim = float(limit)
            if side is Side.BUY:
                if d["low"][i] > lim:
                    return None
                px = min(px, lim)
            else:
                if d["high"][i] < lim:
                    return None
                px = max(px, lim)
        return qty, px


class BookFillModel:
    """Fills by walking recorded order-book snapshots (e.g. a LOBSTER replay).

    At each snapshot an order takes up to ``depth_fraction`` of the displayed size of each
    level on the far side, best level first, within its limit price; the price is the
    size-weighted average of the levels taken. Snapshots are independent (the book is assumed
    to refill between them).
    """

    def __init__(self, books: dict[str, BookSnapshots], depth_fraction: float = 1.0,
                 lot_size: int = 1) -> None:
        if not 0 < depth_fraction <= 1:
            raise ValidationError("depth_fraction must be in (0, 1]", field="depth_fraction",
                                  value=depth_fraction)
        self.books, self.depth_fraction, self.lot_size = books, depth_fraction, lot_size

    def symbols(self) -> list[str]:
        return list(self.books)

    def event_times(self, symbol: str) -> np.ndarray:
        return self.books[symbol].timestamps.as_unit("ns").asi8.astype(np.int64)

    def quote(self, symbol: str, i: int) -> tuple[float, float]:
        b = self.books[symbol]
        return float(b.mid[i]), float(b.relative_spread[i])

    def fill(self, symbol: str, side: Side, leaves: Decimal, limit: Decimal | None, i: int
             ) -> tuple[Decimal, float] | None:
        b = self.books[symbol]
        px = b.ask_px[i] if side is Side.BUY else b.bid_px[i]
        sz = (b.ask_sz[i] if side is Side.BUY else b.bid_sz[i]) * self.depth_fraction
        ok = np.isfinite(px) & (sz > 0)
        if limit is not None:
            ok &= (px <= float(limit)) if side is Side.BUY else (px >= float(limit))
        px, sz = px[ok], sz[ok]
        if len(px) == 0:
            return None
        want = float(leaves)
        take = np.minimum(sz, np.maximum(want - np.concatenate([[0.0], np.cumsum(sz)[:-1]]),
                                         0.0))
        qty = min(leaves, _whole(float(take.sum()), self.lot_size))
        if qty <= ZERO:
            return None
        return qty, float((take * px).sum() / take.sum())
