"""A price-time priority matching engine, one book per symbol (sans-I/O, no clock of its own).

Supports LIMIT and MARKET orders with DAY/GTC/IOC/FOK, cancel, and cancel/replace (a replace
that only lowers the quantity keeps its time priority; a price change or a larger quantity
loses it). Fills happen at the resting order's price. Every call returns the events it caused,
each addressed to the owner (session) of the order it concerns, so a FIX acceptor, a REST API
or a test can route them.

Quantities and prices are ``Decimal``; every order conserves ``cum_qty + leaves_qty == qty``.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from keel.errors import ValidationError
from keel.types import (
    ZERO,
    EventKind,
    Fill,
    Order,
    OrderEvent,
    OrderType,
    Side,
    TimeInForce,
    money_context,
)


@dataclass
class RestingOrder:
    """An order the engine knows (resting or being matched). Mutable engine state."""

    venue_order_id: str
    client_order_id: str
    owner: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal | None
    order_type: OrderType
    tif: TimeInForce
    cum_qty: Decimal = ZERO
    notional: Decimal = ZERO  # sum of fill qty x price, for the average price

    @property
    def leaves_qty(self) -> Decimal:
        return self.qty - self.cum_qty

    @property
    def avg_price(self) -> Decimal:
        if not self.cum_qty:
            return ZERO
        with money_context():  # the pinned context, not the thread's ambient one
            return self.notional / self.cum_qty


@dataclass(frozen=True)
class Routed:
    """An event for the owner of an order."""

    owner: str
    event: OrderEvent


@dataclass(frozen=True)
class Trade:
    """A match between an aggressor and a resting order."""

    symbol: str
    price: Decimal
    qty: Decimal
    aggressor_side: Side
    timestamp: datetime
    buy_order_id: str
    sell_order_id: str


@dataclass
class _Level:
    price: Decimal
    orders: deque[RestingOrder] = field(default_factory=deque)

    @property
    def qty(self) -> Decimal:
        return sum((o.leaves_qty for o in self.orders), ZERO)


class Book:
    """One symbol's bids and asks as sorted price levels with FIFO queues."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        # prices kept ascending; bids are read from the end, asks from the start
        self._bid_prices: list[Decimal] = []
        self._ask_prices: list[Decimal] = []
        self._bids: dict[Decimal, _Level] = {}
        self._asks: dict[Decimal, _Level] = {}

    def _side(self, side: Side) -> tuple[list[Decimal], dict[Decimal, _Level]]:
        return (self._bid_prices, self._bids) if side is Side.BUY else (
            self._ask_prices, self._asks)

    def best(self, side: Side) -> _Level | None:
        prices, levels = self._side(side)
        if not prices:
            return None
        return levels[prices[-1] if side is Side.BUY else prices[0]]

    def best_bid(self) -> Decimal | None:
        lvl = self.best(Side.BUY)
        return lvl.price if lvl else None

    def best_ask(self) -> Decimal | None:
        lvl = self.best(Side.SELL)
        return lvl.price if lvl else None

    def add(self, order: RestingOrder) -> None:
        assert order.price is not None
        prices, levels = self._side(order.side)
        lvl = levels.get(order.price)
        if lvl is None:
            lvl = levels[order.price] = _Level(order.price)
            bisect.insort(prices, order.price)
        lvl.orders.append(order)

    def remove(self, order: RestingOrder) -> None:
        assert order.price is not None
        _prices, levels = self._side(order.side)
        lvl = levels[order.price]
        lvl.orders.remove(order)
        if not lvl.orders:
            self._drop_level(order.side, order.price)

    def _drop_level(self, side: Side, price: Decimal) -> None:
        prices, levels = self._side(side)
        del levels[price]
        prices.pop(bisect.bisect_left(prices, price))

    def crossing_levels(self, side: Side, limit: Decimal | None) -> Iterable[_Level]:
        """Opposite-side levels an order of ``side`` with ``limit`` may trade with, best first."""
        opp = side.opposite
        prices, levels = self._side(opp)
        ordered = reversed(prices) if opp is Side.BUY else iter(prices)
        for p in list(ordered):
            if limit is not None and (p > limit if side is Side.BUY else p < limit):
                break
            yield levels[p]

    def depth(self, n_levels: int = 10) -> dict[str, list[tuple[Decimal, Decimal]]]:
        """Top ``n_levels`` of each side as (price, qty), best first."""
        bids = [(p, self._bids[p].qty) for p in reversed(self._bid_prices[-n_levels:])]
        asks = [(p, self._asks[p].qty) for p in self._ask_prices[:n_levels]]
        return {"bids": bids, "asks": asks}


class MatchingEngine:
    """Books for many symbols plus the order registry.

    Args:
        symbols: tradable symbols (None: any symbol is accepted and gets a book on first use).
        venue: name written on fills.
    """

    def __init__(self, symbols: Iterable[str] | None = None, venue: str = "KEELX") -> None:
        self.venue = venue
        self._allowed = None if symbols is None else set(symbols)
        self._books: dict[str, Book] = {}
        self._orders: dict[tuple[str, str], RestingOrder] = {}  # (owner, clordid) -> order
        self._seq = 0
        self._exec_seq = 0
        self.trades: list[Trade] = []

    # ------------------------------------------------------------------ helpers

    def book(self, symbol: str) -> Book:
        if self._allowed is not None and symbol not in self._allowed:
            raise ValidationError("unknown symbol", field="symbol", symbol=symbol)
        b = self._books.get(symbol)
        if b is None:
            b = self._books[symbol] = Book(symbol)
        return b

    def order(self, owner: str, client_order_id: str) -> RestingOrder | None:
        return self._orders.get((owner, client_order_id))

    def open_orders(self, owner: str | None = None) -> list[RestingOrder]:
        return [o for (own, _), o in self._orders.items()
                if o.leaves_qty > 0 and (owner is None or own == owner) and self._is_resting(o)]

    def _is_resting(self, o: RestingOrder) -> bool:
        if o.price is None:
            return False
        lvl = self._books[o.symbol]._side(o.side)[1].get(o.price)
        return lvl is not None and any(x is o for x in lvl.orders)

    def _next_order_id(self) -> str:
        self._seq += 1
        return f"O{self._seq}"

    def _next_exec_id(self) -> str:
        self._exec_seq += 1
        return f"X{self._exec_seq}"

    def _event(self, o: RestingOrder, kind: EventKind, ts: datetime, *, reason: str = "",
               fill: Fill | None = None, client_order_id: str | None = None,
               **more: str) -> Routed:
        ev = OrderEvent(kind=kind, client_order_id=client_order_id or o.client_order_id,
                        timestamp=ts, fill=fill, cum_qty=o.cum_qty,
                        leaves_qty=o.leaves_qty if kind in (EventKind.ACK, EventKind.FILL,
                                                            EventKind.REPLACED) else ZERO,
                        reason=reason, venue_order_id=o.venue_order_id,
                        extra={"avg_px": o.avg_price, "symbol": o.symbol, "side": o.side,
                               "qty": o.qty, "price": o.price,
                               "order_type": o.order_type.value, "tif": o.tif.value,
                               "exec_id": fill.exec_id if fill else self._next_exec_id(),
                               **more})
        return Routed(o.owner, ev)

    def _reject(self, order: Order, owner: str, ts: datetime, reason: str) -> list[Routed]:
        ev = OrderEvent(kind=EventKind.REJECTED, client_order_id=order.client_order_id,
                        timestamp=ts, reason=reason,
                        extra={"symbol": order.symbol, "side": order.side, "qty": order.qty,
                               "price": order.limit_price,
                               "order_type": order.order_type.value, "tif": order.tif.value,
                               "exec_id": self._next_exec_id()})
        return [Routed(owner, ev)]

    def _cancel_reject(self, owner: str, client_order_id: str, request_id: str | None,
                       ts: datetime, reason: str, response_to: str) -> list[Routed]:
        ev = OrderEvent(kind=EventKind.CANCEL_REJECTED, client_order_id=client_order_id,
                        timestamp=ts, reason=reason,
                        extra={"request_id": request_id or client_order_id,
                               "response_to": response_to, "exec_id": self._next_exec_id()})
        return [Routed(owner, ev)]

    # ------------------------------------------------------------------ commands

    def submit(self, order: Order, owner: str, ts: datetime) -> list[Routed]:
        """Accept, match and (for DAY/GTC limits) rest ``order``; return the events caused."""
        if (owner, order.client_order_id) in self._orders:
            return self._reject(order, owner, ts, "duplicate client order id")
        if self._allowed is not None and order.symbol not in self._allowed:
            return self._reject(order, owner, ts, f"unknown symbol {order.symbol}")
        if order.order_type not in (OrderType.LIMIT, OrderType.MARKET):
            return self._reject(order, owner, ts, f"unsupported order type {order.order_type}")
        book = self.book(order.symbol)
        o = RestingOrder(self._next_order_id(), order.client_order_id, owner, order.symbol,
                         order.side, order.qty, order.limit_price, order.order_type, order.tif)
        self._orders[(owner, order.client_order_id)] = o
        events = [self._event(o, EventKind.ACK, ts)]
        if order.tif is TimeInForce.FOK:
            available = sum((lvl.qty for lvl in book.crossing_levels(o.side, o.price)), ZERO)
            if available < o.qty:
                events.append(self._event(o, EventKind.CANCELLED, ts,
                                          reason="FOK: not fully fillable"))
                return events
        events += self._match(book, o, ts)
        if o.leaves_qty > 0:
            rests = (o.order_type is OrderType.LIMIT
                     and o.tif not in (TimeInForce.IOC, TimeInForce.FOK))
            if rests:
                book.add(o)
            else:
                why = "no more liquidity" if o.order_type is OrderType.MARKET else "IOC remainder"
                events.append(self._event(o, EventKind.CANCELLED, ts, reason=why))
        return events

    def _match(self, book: Book, o: RestingOrder, ts: datetime) -> list[Routed]:
        events: list[Routed] = []
        for lvl in book.crossing_levels(o.side, o.price):
            while lvl.orders and o.leaves_qty > 0:
                resting = lvl.orders[0]
                qty = min(o.leaves_qty, resting.leaves_qty)
                px = lvl.price
                for party in (o, resting):
                    party.cum_qty += qty
                    party.notional += qty * px
                buy, sell = (o, resting) if o.side is Side.BUY else (resting, o)
                self.trades.append(Trade(book.symbol, px, qty, o.side, ts,
                                         buy.venue_order_id, sell.venue_order_id))
                for party in (resting, o):
                    fill = Fill(exec_id=self._next_exec_id(),
                                client_order_id=party.client_order_id, symbol=book.symbol,
                                side=party.side, qty=qty, price=px, timestamp=ts,
                                venue=self.venue)
                    events.append(self._event(party, EventKind.FILL, ts, fill=fill))
                if resting.leaves_qty == 0:
                    lvl.orders.popleft()
            if not lvl.orders:
                book._drop_level(o.side.opposite, lvl.price)
            if o.leaves_qty == 0:
                break
        return events

    def cancel(self, owner: str, client_order_id: str, ts: datetime,
               cancel_id: str | None = None) -> list[Routed]:
        """Cancel a resting order; a CANCEL_REJECTED event if it is unknown or done.

        Both events name the order (``client_order_id``) and carry the cancel request's own
        id (``cancel_id``, default the order's) as ``extra['request_id']``."""
        o = self._orders.get((owner, client_order_id))
        if o is None or not self._is_resting(o):
            reason = "unknown order" if o is None else "order not open"
            return self._cancel_reject(owner, client_order_id, cancel_id, ts, reason, "cancel")
        self.book(o.symbol).remove(o)
        return [self._event(o, EventKind.CANCELLED, ts, reason="cancelled by owner",
                            request_id=cancel_id or o.client_order_id)]

    def replace(self, owner: str, orig_client_order_id: str, new: Order,
                ts: datetime) -> list[Routed]:
        """Cancel/replace: ``new`` carries the new client order id, total qty and price.

        The REPLACED event names the original order and carries
        ``extra['new_client_order_id']``; later events name the new id."""
        o = self._orders.get((owner, orig_client_order_id))
        reject_reason = None
        if o is None or not self._is_resting(o):
            reject_reason = "unknown order" if o is None else "order not open"
        elif new.symbol != o.symbol or new.side is not o.side:
            reject_reason = "cannot change symbol or side"
        elif new.qty <= o.cum_qty:
            reject_reason = "new quantity not above filled quantity"
        elif (owner, new.client_order_id) in self._orders:
            reject_reason = "duplicate client order id"
        if reject_reason is not None or o is None:
            return self._cancel_reject(owner, orig_client_order_id, new.client_order_id, ts,
                                       reject_reason or "unknown order", "replace")
        book = self.book(o.symbol)
        new_price = new.limit_price if new.limit_price is not None else o.price
        keeps_priority = new_price == o.price and new.qty <= o.qty
        del self._orders[(owner, orig_client_order_id)]
        o.client_order_id = new.client_order_id
        self._orders[(owner, new.client_order_id)] = o
        if keeps_priority:
            o.qty = new.qty
            return [self._event(o, EventKind.REPLACED, ts,
                                reason=f"replaced {orig_client_order_id}",
                                client_order_id=orig_client_order_id,
                                new_client_order_id=new.client_order_id)]
        book.remove(o)
        o.qty, o.price = new.qty, new_price
        events = [self._event(o, EventKind.REPLACED, ts,
                              reason=f"replaced {orig_client_order_id}",
                              client_order_id=orig_client_order_id,
                              new_client_order_id=new.client_order_id)]
        events += self._match(book, o, ts)
        if o.leaves_qty > 0:
            book.add(o)
        return events
