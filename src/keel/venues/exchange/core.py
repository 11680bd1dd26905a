"""`SimulatedExchange`: the matching engine plus accounts, positions and an event log.

Front ends (the FIX acceptor, the REST API) translate their protocol into calls on one shared,
thread-safe exchange. Orders belong to an *account*, not to a connection, so the same client
order id reaching the exchange over FIX and then over REST is recognised as the same order (the
routing broker relies on this to fail over without duplicating). Every event is appended to
its account's log with a sequence number; a front end reads ``events_since(account, seq)``.

Time is injected: every command takes the timestamp to stamp its events with.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np

from keel.errors import ValidationError
from keel.types import (
    ZERO,
    EventKind,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    to_decimal,
    to_price,
)
from keel.venues.base import Account, OpenOrder
from keel.venues.exchange.matching import MatchingEngine, RestingOrder, Routed

#: account of the built-in liquidity provider; its events are not logged
LIQUIDITY_ACCOUNT = "__liquidity__"

EventListener = Callable[[str, int, OrderEvent], None]


@dataclass(frozen=True)
class OrderView:
    """A read-only view of one order at the exchange."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    limit_price: Decimal | None
    order_type: OrderType
    tif: TimeInForce
    cum_qty: Decimal
    leaves_qty: Decimal
    avg_price: Decimal
    status: OrderStatus


class SimulatedExchange:
    """A thread-safe venue: matching, accounts, positions, per-account event logs.

    Memory is bounded: finished orders leave the engine's live registry (see
    :class:`MatchingEngine`) and each account's event log keeps its last ``max_events``
    events (sequence numbers keep counting; a reader further behind gets what is left).
    :attr:`epoch` names this incarnation: it changes when the exchange restarts, and is in
    every ExecID, so clients can tell a restart from a replay.

    Args:
        symbols: tradable symbols (None accepts any).
        starting_cash: cash credited to each new account, currency.
        epoch: id of this incarnation (default: random); see :class:`MatchingEngine`.
        lot_size: smallest quantity increment.
    """

    def __init__(self, symbols: Sequence[str] | None = None,
                 starting_cash: Decimal | int = 10_000_000, *, epoch: str | None = None,
                 lot_size: Decimal | str = "0.00000001", max_events: int = 20_000) -> None:
        self.engine = MatchingEngine(symbols, epoch=epoch, lot_size=lot_size,
                                     transient_owners=(LIQUIDITY_ACCOUNT,))
        self.epoch = self.engine.epoch
        self.starting_cash = to_decimal(starting_cash, "starting_cash")
        self._lock = threading.RLock()
        self._max_events = max_events
        self._events: dict[str, deque[OrderEvent]] = defaultdict(
            lambda: deque(maxlen=max_events))
        self._logged: dict[str, int] = defaultdict(int)  # events ever logged per account
        self._positions: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(
            lambda: ZERO))
        self._cash: dict[str, Decimal] = {}
        self._listeners: list[EventListener] = []
        self.last_price: dict[str, Decimal] = {}

    # ------------------------------------------------------------------ subscriptions

    def subscribe(self, listener: EventListener) -> None:
        """Call ``listener(account, seq, event)`` for every logged event (under the lock)."""
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: EventListener) -> None:
        """Stop calling ``listener`` (no error if it was not subscribed)."""
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # ------------------------------------------------------------------ commands

    def submit(self, account: str, order: Order, ts: datetime) -> list[OrderEvent]:
        with self._lock:
            return self._publish(self.engine.submit(order, account, ts))

    def cancel(self, account: str, client_order_id: str, ts: datetime,
               cancel_id: str | None = None) -> list[OrderEvent]:
        with self._lock:
            return self._publish(self.engine.cancel(account, client_order_id, ts, cancel_id))

    def replace(self, account: str, orig_client_order_id: str, new: Order,
                ts: datetime) -> list[OrderEvent]:
        with self._lock:
            return self._publish(self.engine.replace(account, orig_client_order_id, new, ts))

    def _publish(self, routed: list[Routed]) -> list[OrderEvent]:
        mine: list[OrderEvent] = []
        for r in routed:
            ev = r.event
            self._book(r.owner, ev)
            if r.owner == LIQUIDITY_ACCOUNT:
                continue
            self._events[r.owner].append(ev)
            self._logged[r.owner] += 1
            for listener in self._listeners:
                listener(r.owner, self._logged[r.owner], ev)
            mine.append(ev)
        return mine

    def _book(self, account: str, ev: OrderEvent) -> None:
        # order statuses live on the engine's orders; the exchange books cash and positions
        if ev.kind is EventKind.FILL and ev.fill is not None:
            f = ev.fill
            pos = self._positions[account]
            pos[f.symbol] += f.signed_qty
            self._cash[account] = self.cash(account) + f.cash_delta
            self.last_price[f.symbol] = f.price

    # ------------------------------------------------------------------ queries

    def events_since(self, account: str, seq: int = 0) -> list[tuple[int, OrderEvent]]:
        """Events of ``account`` with sequence number > ``seq`` (numbers start at 1)."""
        with self._lock:
            log = self._events.get(account)
            if log is None:
                return []
            first = self._logged[account] - len(log) + 1  # seq of log[0]
            skip = max(0, seq - first + 1)
            return [(first + i, log[i]) for i in range(skip, len(log))]

    def order(self, account: str, client_order_id: str) -> OrderView | None:
        with self._lock:
            o = self.engine.order(account, client_order_id)
            return None if o is None else self._view(account, o)

    def orders(self, account: str, *, open_only: bool = False) -> list[OrderView]:
        with self._lock:
            views = [self._view(account, o) for o in self.engine.orders_of(account)]
            return [v for v in views if v.status.is_open] if open_only else views

    def order_by_venue_id(self, account: str, venue_order_id: str) -> OrderView | None:
        with self._lock:
            o = self.engine.by_venue_id(account, venue_order_id)
            return None if o is None else self._view(account, o)

    def _view(self, account: str, o: RestingOrder) -> OrderView:
        status = o.status
        return OrderView(o.client_order_id, o.venue_order_id, o.symbol, o.side, o.qty, o.price,
                         o.order_type, o.tif, o.cum_qty,
                         o.leaves_qty if status.is_open else ZERO, o.avg_price, status)

    def open_orders(self, account: str) -> list[OpenOrder]:
        return [OpenOrder(v.client_order_id, v.symbol, v.status, v.qty, v.cum_qty,
                          v.venue_order_id) for v in self.orders(account, open_only=True)]

    def positions(self, account: str) -> dict[str, Decimal]:
        with self._lock:
            return {s: q for s, q in self._positions.get(account, {}).items() if q != 0}

    def cash(self, account: str) -> Decimal:
        return self._cash.get(account, self.starting_cash)

    def account(self, account: str) -> Account:
        with self._lock:
            cash = self.cash(account)
            value = sum((q * self.last_price.get(s, ZERO)
                         for s, q in self.positions(account).items()), ZERO)
            return Account(cash=cash, equity=cash + value, buying_power=cash)

    def mid(self, symbol: str) -> Decimal | None:
        with self._lock:
            book = self.engine.book(symbol)
            bb, ba = book.best_bid(), book.best_ask()
            if bb is None or ba is None:
                return self.last_price.get(symbol)
            return (bb + ba) / 2


class LiquidityProvider:
    """Keeps a ladder of resting quotes around a reference price, requoted on demand.

    Args:
        exchange: the venue to quote on.
        half_spread_bps: distance of the best quotes from the reference, bps.
        levels: price levels per side.
        level_step_bps: distance between levels, bps.
        size: shares per level at the touch; deeper levels grow by ``depth_growth`` each.
        tick: price increment.
    """

    def __init__(self, exchange: SimulatedExchange, *, half_spread_bps: float = 2.0,
                 levels: int = 5, level_step_bps: float = 2.0, size: int = 2_000,
                 depth_growth: float = 0.5, tick: Decimal | str = "0.01") -> None:
        if levels < 1 or size < 1 or half_spread_bps <= 0:
            raise ValidationError("levels, size and half_spread_bps must be positive",
                                  field="levels", value=(levels, size, half_spread_bps))
        self.exchange = exchange
        self.half_spread_bps = half_spread_bps
        self.levels = levels
        self.level_step_bps = level_step_bps
        self.size = size
        self.depth_growth = depth_growth
        self.tick = to_decimal(tick, "tick")
        self._live: dict[str, list[str]] = defaultdict(list)
        self._n = 0

    def _round(self, px: float) -> Decimal:
        return to_price(px, self.tick, "ROUND_HALF_EVEN")

    def quote(self, symbol: str, reference: float, ts: datetime) -> None:
        """Cancel this provider's quotes in ``symbol`` and post a fresh ladder."""
        ex = self.exchange
        for cid in self._live.pop(symbol, []):
            ex.cancel(LIQUIDITY_ACCOUNT, cid, ts)
        steps = np.arange(self.levels)
        offsets = (self.half_spread_bps + steps * self.level_step_bps) * 1e-4
        sizes = np.round(self.size * (1 + self.depth_growth * steps)).astype(int)
        for side, sign in ((Side.BUY, -1), (Side.SELL, 1)):
            for off, qty in zip(offsets, sizes, strict=True):
                px = self._round(reference * (1 + sign * off))
                if px <= 0:
                    continue
                self._n += 1
                cid = f"LP{self._n}"
                ex.submit(LIQUIDITY_ACCOUNT, Order(cid, symbol, side, Decimal(int(qty)), ts,
                                                   order_type=OrderType.LIMIT, limit_price=px,
                                                   tif=TimeInForce.DAY), ts)
                self._live[symbol].append(cid)
