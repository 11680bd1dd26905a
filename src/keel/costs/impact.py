"""Market impact measured from order-book data.

* :func:`walk_book`: average fill price and slippage of a market order of x shares that walks
  the displayed book, for every snapshot x every size at once (dense NumPy, no Python loop).
* :func:`book_samples` / :func:`market_order_samples`: (time, size, cost) samples, either by
  walking the book at chosen sizes or from the executions of real marketable orders in a
  LOBSTER message stream (what those orders actually paid, hidden liquidity included).

Units: sizes in shares; prices in currency per share; ``slippage`` is the signed distance of
the average fill price from the mid before the order, per share (> 0 = a cost), and
``cost = size * slippage`` in currency. Fitting lives in :mod:`keel.costs.impact_fit`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from keel.costs._session import minutes_after_open
from keel.data.orderbook import BookSnapshots
from keel.errors import DataError, ValidationError

_SIDES = ("buy", "sell")


@dataclass(frozen=True)
class WalkResult:
    """Market orders walked through the book; every array is (T, K) for T snapshots x K sizes.

    Attributes:
        sizes: (K,) order sizes, shares.
        avg_price: average fill price, currency / share (NaN where the book is too thin).
        slippage: ``side * (avg_price - mid)``, currency / share (NaN where not filled).
        slippage_bps: slippage in bps of mid.
        filled: True where the displayed depth covers the whole order.
    """

    sizes: np.ndarray
    avg_price: np.ndarray
    slippage: np.ndarray
    slippage_bps: np.ndarray
    filled: np.ndarray

    @property
    def cost(self) -> np.ndarray:
        """(T, K) currency cost ``size * slippage``."""
        return self.slippage * self.sizes


def _check_sizes(sizes: np.ndarray | float) -> np.ndarray:
    x = np.atleast_1d(np.asarray(sizes, dtype=np.float64))
    bad = ~np.isfinite(x) | (x < 0)
    if bad.any():
        raise ValidationError("order sizes must be finite and >= 0", field="sizes",
                              value=float(x[np.argmax(bad)]))
    return x


def _side(side: str) -> str:
    s = str(side).lower()
    if s not in _SIDES:
        raise ValidationError("side must be 'buy' or 'sell'", field="side", value=side)
    return s


def _walk(px: np.ndarray, sz: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average fill price (M, K) of sizes ``x`` (M, K) or (K,) against levels px/sz (M, L)."""
    m, n_levels = px.shape
    xs = np.broadcast_to(x, (m, x.shape[-1]))
    depth = np.cumsum(sz, axis=1)  # (M, L) shares available up to each level
    notional = np.cumsum(np.where(sz > 0, px, 0.0) * sz, axis=1)
    # level at which each order completes: number of levels whose cumulative depth < x
    j = (depth[:, :, None] < xs[:, None, :]).sum(axis=1)  # (M, K)
    filled = j < n_levels
    jc = np.minimum(j, n_levels - 1)
    rows = np.arange(m)[:, None]
    prev_depth = np.where(j > 0, depth[rows, np.maximum(jc - 1, 0)], 0.0)
    prev_notional = np.where(j > 0, notional[rows, np.maximum(jc - 1, 0)], 0.0)
    total = prev_notional + (xs - prev_depth) * px[rows, jc]
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.where(xs > 0, total / np.where(xs > 0, xs, 1.0), px[:, :1])
    return np.where(filled, avg, np.nan), filled


def _levels(book: BookSnapshots, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(prices, sizes) of the side a market order of ``side`` consumes; refuses an empty side."""
    px, sz, name = ((book.ask_px, book.ask_sz, "ask_sz") if side == "buy"
                    else (book.bid_px, book.bid_sz, "bid_sz"))
    if not np.any(sz > 0):
        raise DataError(f"empty book: no size on the {name[:3]} side in any snapshot",
                        field=name, symbol=book.symbol or None, file=book.source)
    return px, sz


def walk_book(book: BookSnapshots, sizes: np.ndarray | float, side: str = "buy") -> WalkResult:
    """Walk every snapshot of ``book`` with market orders of every size in ``sizes``.

    A buy consumes the asks from the best level out, a sell the bids. An order larger than the
    displayed depth is marked unfilled (NaN price), never extrapolated. Size 0 gives the best
    price (slippage = half the spread).

    Raises:
        ValidationError: a negative or non-finite size (field ``sizes``), a bad ``side``.
        DataError: the side walked is empty in every snapshot (field ``ask_sz``/``bid_sz``).
    """
    x = _check_sizes(sizes)
    s = _side(side)
    px, sz = _levels(book, s)
    avg, filled = _walk(px, sz, x)
    sign = 1.0 if s == "buy" else -1.0
    mid = book.mid[:, None]
    slip = sign * (avg - mid)
    return WalkResult(sizes=x, avg_price=avg, slippage=slip, slippage_bps=1e4 * slip / mid,
                      filled=filled)


def walk_book_pairs(book: BookSnapshots, snapshot: np.ndarray, sizes: np.ndarray,
                    side: str = "buy") -> np.ndarray:
    """(M,) slippage per share of one order per pair (snapshot index, size)."""
    x = _check_sizes(sizes)
    idx = np.asarray(snapshot, dtype=np.int64)
    if idx.shape != x.shape:
        raise ValidationError("snapshot and sizes must have the same shape", field="snapshot",
                              value=(idx.shape, x.shape))
    if idx.size and (idx.min() < 0 or idx.max() >= book.n_snapshots):
        raise ValidationError("snapshot index out of range", field="snapshot",
                              value=int(idx.max()))
    s = _side(side)
    px, sz = _levels(book, s)
    avg, _ = _walk(px[idx], sz[idx], x[:, None])
    sign = 1.0 if s == "buy" else -1.0
    return sign * (avg[:, 0] - book.mid[idx])


def book_samples(book: BookSnapshots, sizes: np.ndarray, side: str = "buy",
                 every: int = 1) -> pd.DataFrame:
    """Samples (time, minute, size, slippage, cost) from walking every ``every``-th snapshot.

    Unfilled pairs (order larger than the displayed depth) are left out and counted in
    ``attrs['unfilled']``.
    """
    if every < 1:
        raise ValidationError("every must be >= 1", field="every", value=every)
    sub = book if every == 1 else BookSnapshots(
        book.timestamps[::every], book.bid_px[::every], book.bid_sz[::every],
        book.ask_px[::every], book.ask_sz[::every], book.symbol, book.source)
    res = walk_book(sub, sizes, side)
    t_idx, k_idx = np.nonzero(res.filled & np.isfinite(res.slippage))
    size = res.sizes[k_idx]
    slip = res.slippage[t_idx, k_idx]
    out = pd.DataFrame({"time": sub.timestamps[t_idx],
                        "minute": minutes_after_open(sub.timestamps)[t_idx],
                        "size": size, "slippage": slip, "cost": size * slip})
    out = out[out["size"] > 0].reset_index(drop=True)
    out.attrs["unfilled"] = int((~res.filled).sum())
    return out


def market_order_samples(messages: pd.DataFrame, book: BookSnapshots) -> pd.DataFrame:
    """What real marketable orders paid: executions grouped by (timestamp, direction).

    ``messages`` is the message frame of ``keel.data.lobster.load_lobster`` (columns
    ``seconds``, ``event``, ``size``, ``price``, ``direction``), row-aligned with ``book``
    (row i is the book after message i). Executions of visible (4) and hidden (5) limit
    orders at the same timestamp and direction form one market order; its
    slippage is the VWAP against the mid before its first execution. A sell limit order
    executed (direction -1) is a buyer-initiated trade.

    Returns (time, minute, side (+1 buy / -1 sell), size, vwap, mid, half_spread, slippage,
    cost); rows with no book before them (the very first message) are left out.
    """
    need = {"seconds", "event", "size", "price", "direction"}
    if not need <= set(messages.columns):
        raise DataError("messages need columns seconds, event, size, price, direction",
                        field="messages", value=sorted(need - set(messages.columns)))
    if len(messages) != book.n_snapshots:
        raise DataError("messages and book differ in length", field="messages",
                        value=(len(messages), book.n_snapshots))
    typ = messages["event"].to_numpy()
    ex = np.flatnonzero((typ == 4) | (typ == 5))
    if ex.size == 0:
        raise DataError("no executions in the message stream", field="messages")
    t = messages["seconds"].to_numpy()[ex]
    d = messages["direction"].to_numpy()[ex]
    new = np.ones(ex.size, dtype=bool)
    new[1:] = (t[1:] != t[:-1]) | (d[1:] != d[:-1]) | (ex[1:] != ex[:-1] + 1)
    group = np.cumsum(new) - 1
    first = ex[new]
    size = np.bincount(group, weights=messages["size"].to_numpy(dtype=np.float64)[ex])
    notional = np.bincount(group, weights=(messages["size"].to_numpy(dtype=np.float64)
                                           * messages["price"].to_numpy(dtype=np.float64))[ex])
    side = -d[new].astype(np.float64)  # executed sell limit (-1) = buyer-initiated (+1)
    keep = first > 0
    before = first[keep] - 1
    mid = book.mid[before]
    vwap = notional[keep] / size[keep]
    slip = side[keep] * (vwap - mid)
    ts = book.timestamps[first[keep]]
    out = pd.DataFrame({"time": ts, "minute": minutes_after_open(ts), "side": side[keep],
                        "size": size[keep], "vwap": vwap, "mid": mid,
                        "half_spread": 0.5 * book.spread[before], "slippage": slip,
                        "cost": size[keep] * slip})
    return out[np.isfinite(out["mid"])].reset_index(drop=True)
