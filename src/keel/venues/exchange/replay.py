"""Replay a LOBSTER day's order book as resting liquidity on a :class:`SimulatedExchange`.

:class:`LobsterReplay` posts the book's visible levels (``levels`` per side, prices in dollars,
sizes in shares) at a chosen moment as limit orders of the liquidity account, then steps
through the day's snapshots: at each step the replay's quotes are reconciled level by level to
the next snapshot, so participants' orders trade against real historical depth.

Reconciliation at each step, per side and price:

* a level that disappeared is cancelled;
* a level whose size fell loses shares from the back of the replay's queue there (newest
  first), a level whose size grew gets a new order at the back of the queue;
* cancels and reductions go first, additions after, so the replay never crosses itself; an
  addition that crosses a participant's resting order trades with it (at the participant's
  price, as the matching engine fills at the resting price).

This is a depth replay, not an L3 queue simulation: the historical book is authoritative at
each snapshot, so depth a participant consumed comes back at the next snapshot if history
shows it (the participant's impact is transient), and participant orders at a price queue
behind the replay's shares already there. Event timestamps are the snapshots' (UTC).
"""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from keel.data.lobster import LobsterDay, find_lobster_pair, load_lobster
from keel.errors import ValidationError
from keel.types import Order, OrderType, Side, TimeInForce
from keel.venues.exchange.core import LIQUIDITY_ACCOUNT, SimulatedExchange

_TICK = Decimal("0.0001")  # LOBSTER prices are integers in units of $0.0001


class LobsterReplay:
    """Historical depth of one LOBSTER day on ``exchange``.

    Args:
        exchange: the venue (its symbols must include ``day.symbol``, or be open).
        day: the loaded LOBSTER day (:func:`keel.data.load_lobster`).
        levels: how many book levels per side to replay (default: all the file has).

    Attributes:
        index: the snapshot currently replayed (-1 before :meth:`seed`).
    """

    def __init__(self, exchange: SimulatedExchange, day: LobsterDay,
                 levels: int | None = None) -> None:
        n = day.levels if levels is None else levels
        if not 1 <= n <= day.levels:
            raise ValidationError("levels must be between 1 and the file's levels",
                                  field="levels", value=levels, symbol=day.symbol)
        exchange.engine.book(day.symbol)  # ValidationError now if the symbol is not tradable
        self.exchange = exchange
        self.day = day
        self.symbol = day.symbol
        self.levels = n
        self.index = -1
        self._n = 0
        # (side, price) -> client order ids of the replay's orders there, oldest first
        self._quotes: dict[tuple[Side, Decimal], list[str]] = defaultdict(list)

    @classmethod
    def from_folder(cls, exchange: SimulatedExchange, folder: str | os.PathLike[str],
                    levels: int | None = None) -> LobsterReplay:
        """Load the one LOBSTER day (message + orderbook files) in ``folder``."""
        return cls(exchange, load_lobster(*find_lobster_pair(Path(folder))), levels)

    @property
    def timestamps(self) -> pd.DatetimeIndex:
        """(T,) UTC times of the snapshots, floored to microseconds (``datetime``'s grain)."""
        return pd.DatetimeIndex(self.day.book.timestamps).floor("us")

    def when(self, k: int) -> datetime:
        """The time of snapshot ``k`` as a UTC ``datetime``."""
        return self.timestamps[k].to_pydatetime()

    def __len__(self) -> int:
        return len(self.timestamps)

    def index_at(self, t: datetime | pd.Timestamp) -> int:
        """The last snapshot at or before ``t`` (ValidationError before the first); several
        snapshots in one microsecond resolve to the last of them."""
        ts = pd.Timestamp(t)
        if ts.tzinfo is None:
            raise ValidationError("time must be tz-aware", field="t", value=str(t))
        k = int(self.timestamps.searchsorted(ts, side="right")) - 1
        if k < 0:
            raise ValidationError("time is before the first snapshot", field="t",
                                  value=str(t), symbol=self.symbol)
        return k

    def targets(self, k: int) -> dict[tuple[Side, Decimal], int]:
        """Snapshot ``k`` as ``{(side, price): shares}`` over the replayed levels."""
        b, n = self.day.book, self.levels
        out: dict[tuple[Side, Decimal], int] = {}
        for side, px, sz in ((Side.BUY, b.bid_px[k, :n], b.bid_sz[k, :n]),
                             (Side.SELL, b.ask_px[k, :n], b.ask_sz[k, :n])):
            ok = np.isfinite(px) & (sz > 0)
            ticks = np.round(px[ok] * 10_000).astype(np.int64)
            for t, s in zip(ticks.tolist(), sz[ok].astype(np.int64).tolist(), strict=True):
                out[(side, Decimal(t) * _TICK)] = int(s)
        return out

    # ------------------------------------------------------------------ commands

    def seed(self, at: datetime | pd.Timestamp | int = 0) -> int:
        """Post the book of snapshot ``at`` (an index, or the last snapshot at or before a
        time); returns the snapshot index."""
        k = at if isinstance(at, int) else self.index_at(at)
        self._go(k)
        return k

    def step_to(self, t: datetime | pd.Timestamp) -> int:
        """Advance to the last snapshot at or before ``t`` (never backwards)."""
        k = self.index_at(t)
        if k > self.index:
            self._go(k)
        return self.index

    def step(self, n: int = 1) -> int:
        """Advance ``n`` snapshots (stops at the last one); returns the index."""
        if n < 0:
            raise ValidationError("n must be >= 0", field="n", value=n)
        k = min(self.index + n, len(self) - 1)
        if k > self.index:
            self._go(k)
        return self.index

    def _go(self, k: int) -> None:
        if not 0 <= k < len(self):
            raise ValidationError("snapshot index out of range", field="at", value=k,
                                  symbol=self.symbol)
        ts = self.when(k)
        target = self.targets(k)
        ex = self.exchange
        adds: list[tuple[Side, Decimal, Decimal]] = []
        held = list(self._quotes)
        for key in held:
            live = self._live(key)
            want = target.get(key, 0)
            have = sum((q for _, q in live), Decimal(0))
            while live and have > want:  # historical cancels hit the newest shares
                cid, q = live.pop()
                ex.cancel(LIQUIDITY_ACCOUNT, cid, ts)
                have -= q
            self._quotes[key] = [cid for cid, _ in live]
            if not live:
                del self._quotes[key]
            if want > have:
                adds.append((key[0], key[1], want - have))
        seen = set(held)
        adds += [(s, p, Decimal(q)) for (s, p), q in target.items() if (s, p) not in seen]
        for side, px, qty in adds:
            self._n += 1
            cid = f"LOB{self._n}"
            ex.submit(LIQUIDITY_ACCOUNT, Order(cid, self.symbol, side, qty, ts,
                                               order_type=OrderType.LIMIT, limit_price=px,
                                               tif=TimeInForce.DAY), ts)
            view = ex.order(LIQUIDITY_ACCOUNT, cid)
            if view is not None and view.status.is_open:
                self._quotes[(side, px)].append(cid)
        self.index = k

    def _live(self, key: tuple[Side, Decimal]) -> list[tuple[str, Decimal]]:
        out = []
        for cid in self._quotes[key]:
            v = self.exchange.order(LIQUIDITY_ACCOUNT, cid)
            if v is not None and v.status.is_open and v.leaves_qty > 0:
                out.append((cid, v.leaves_qty))
        return out
