"""`BookSnapshots`: a sequence of L-level limit-order-book snapshots as dense arrays.

Shapes: ``T`` snapshots x ``L`` levels; level 0 is the best price. Prices in currency per
share, sizes in shares. A level that does not exist has price NaN and size 0. Produced by the
LOBSTER loader and the synthetic order-book generator; consumed by impact estimation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from keel.errors import DataError


@dataclass(frozen=True, eq=False)
class BookSnapshots:
    """Order-book snapshots.

    Attributes:
        timestamps: (T,) UTC tz-aware, non-decreasing.
        bid_px, bid_sz, ask_px, ask_sz: (T, L) float64; bids descending, asks ascending.
        symbol: instrument name.
        source: file or generator it came from (for error messages).
    """

    timestamps: pd.DatetimeIndex
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray
    symbol: str = ""
    source: str | None = None

    def __post_init__(self) -> None:
        ts = pd.DatetimeIndex(self.timestamps)
        if ts.tz is None:
            raise DataError("book timestamps must be tz-aware (UTC)", field="timestamps",
                            file=self.source)
        arrays = {}
        for name in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
            a = np.asarray(getattr(self, name), dtype=np.float64)
            if a.ndim != 2:
                raise DataError(f"{name} must be 2-D (T, L)", field=name, value=a.shape,
                                file=self.source)
            arrays[name] = a
        shape = arrays["bid_px"].shape
        if any(a.shape != shape for a in arrays.values()):
            raise DataError("bid/ask price/size arrays differ in shape", field="shape",
                            value={k: v.shape for k, v in arrays.items()}, file=self.source)
        if shape[0] == 0 or shape[1] == 0:
            raise DataError("empty order book", field="bid_px", value=shape, file=self.source)
        if len(ts) != shape[0]:
            raise DataError("timestamps and snapshots differ in length", field="timestamps",
                            value=(len(ts), shape[0]), file=self.source)
        if len(ts) > 1 and (np.diff(ts.asi8) < 0).any():
            row = int(np.argmax(np.diff(ts.asi8) < 0)) + 1
            raise DataError("book timestamps are not sorted", field="timestamps", row=row,
                            file=self.source)
        for name in ("bid_sz", "ask_sz"):
            bad = arrays[name] < 0
            if bad.any():
                r, c = np.argwhere(bad)[0]
                raise DataError("negative size in book", field=name, row=int(r), level=int(c),
                                value=float(arrays[name][r, c]), file=self.source)
        for name in ("bid_px", "ask_px"):
            a = arrays[name]
            bad = np.isfinite(a) & (a <= 0)
            if bad.any():
                r, c = np.argwhere(bad)[0]
                raise DataError("non-positive price in book", field=name, row=int(r),
                                level=int(c), value=float(a[r, c]), file=self.source)
        best_bid, best_ask = arrays["bid_px"][:, 0], arrays["ask_px"][:, 0]
        crossed = np.isfinite(best_bid) & np.isfinite(best_ask) & (best_bid >= best_ask)
        if crossed.any():
            r = int(np.argmax(crossed))
            raise DataError("crossed or locked book (best bid >= best ask)", field="bid_px",
                            row=r, value=(float(best_bid[r]), float(best_ask[r])),
                            file=self.source)
        object.__setattr__(self, "timestamps", ts.tz_convert("UTC"))
        for name, a in arrays.items():
            object.__setattr__(self, name, a)

    @property
    def n_snapshots(self) -> int:
        return int(self.bid_px.shape[0])

    @property
    def n_levels(self) -> int:
        return int(self.bid_px.shape[1])

    @property
    def mid(self) -> np.ndarray:
        """(T,) mid price."""
        return 0.5 * (self.bid_px[:, 0] + self.ask_px[:, 0])

    @property
    def spread(self) -> np.ndarray:
        """(T,) quoted spread in currency."""
        return self.ask_px[:, 0] - self.bid_px[:, 0]

    @property
    def relative_spread(self) -> np.ndarray:
        """(T,) quoted spread as a fraction of mid."""
        return self.spread / self.mid

    def depth(self, side: str = "ask") -> np.ndarray:
        """(T,) total displayed size on ``side`` ('ask' or 'bid'), shares."""
        if side not in ("ask", "bid"):
            raise DataError("side must be 'ask' or 'bid'", field="side", value=side)
        return (self.ask_sz if side == "ask" else self.bid_sz).sum(axis=1)

    def slice(self, start: int, stop: int) -> BookSnapshots:
        """Snapshots ``start:stop`` (for train/test splits by time)."""
        return BookSnapshots(self.timestamps[start:stop], self.bid_px[start:stop],
                             self.bid_sz[start:stop], self.ask_px[start:stop],
                             self.ask_sz[start:stop], self.symbol, self.source)
