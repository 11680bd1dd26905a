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
import uuid
from collections import OrderedDict, deque
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
    OrderStatus,
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
    status: OrderStatus = OrderStatus.ACKNOWLEDGED

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
        self._count: dict[Side, int] = {Side.BUY: 0, Side.SELL: 0}

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
        self._count[order.side] += 1

    def remove(self, order: RestingOrder) -> None:
        assert order.price is not None
        _prices, levels = self._side(order.side)
        lvl = levels[order.price]
        lvl.orders.remove(order)
        self._count[order.side] -= 1
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

    def resting_count(self, side: Side) -> int:
        """Resting orders on ``side`` (kept up to date, O(1))."""
        return self._count[side]

    def depth(self, n_levels: int = 10) -> dict[str, list[tuple[Decimal, Decimal]]]:
        """Top ``n_levels`` of each side as (price, qty), best first."""
        bids = [(p, self._bids[p].qty) for p in reversed(self._bid_prices[-n_levels:])]
        asks = [(p, self._asks[p].qty) for p in self._ask_prices[:n_levels]]
        return {"bids": bids, "asks": asks}


class MatchingEngine:
    """Books for many symbols plus the order registry.

    Memory is bounded: a finished order (filled, cancelled, replaced away) leaves the live
    registry at once; the last ``max_finished`` of them stay queryable (status, duplicate-id
    check) and older ones are forgotten; orders of ``transient_owners`` (the liquidity
    provider) are forgotten as soon as they finish. A book holds at most ``max_resting``
    resting orders per side (a new order that would rest beyond it is cancelled, not rested),
    and :attr:`trades` keeps the last ``max_trades``.

    ExecIDs and venue order ids carry ``epoch``, a token drawn once per engine (per start of
    the venue), so they never repeat across restarts: a client de-duplicating on ExecID never
    mistakes a new fill for one it saw before the restart.

    Args:
        symbols: tradable symbols (None: any symbol is accepted and gets a book on first use).
        venue: name written on fills.
        epoch: id prefix of this incarnation (default: 8 random hex digits).
        lot_size: smallest quantity increment; an order whose qty is not a multiple is refused.
        max_qty: largest quantity of one order.
    """

    def __init__(self, symbols: Iterable[str] | None = None, venue: str = "KEELX", *,
                 epoch: str | None = None, lot_size: Decimal | str = "0.00000001",
                 max_finished: int = 10_000, max_resting: int = 50_000,
                 max_trades: int = 10_000, max_qty: Decimal | str = "1e12",
                 transient_owners: Iterable[str] = ("__liquidity__",)) -> None:
        self.venue = venue
        self.epoch = epoch if epoch is not None else uuid.uuid4().hex[:8]
        self.lot_size = Decimal(lot_size)
        if not self.lot_size.is_finite() or self.lot_size <= 0:
            raise ValidationError("lot_size must be > 0", field="lot_size", value=lot_size)
        self.max_qty = Decimal(max_qty)
        self._allowed = None if symbols is None else set(symbols)
        self._books: dict[str, Book] = {}
        self._orders: dict[tuple[str, str], RestingOrder] = {}  # (owner, clordid) -> order
        self._finished: OrderedDict[tuple[str, str], RestingOrder] = OrderedDict()
        self._by_venue_id: dict[str, tuple[str, str]] = {}
        self.max_finished, self.max_resting = max_finished, max_resting
        self._transient = frozenset(transient_owners)
        self._seq = 0
        self._exec_seq = 0
        self.trades: deque[Trade] = deque(maxlen=max_trades)

    # ------------------------------------------------------------------ helpers

    def book(self, symbol: str) -> Book:
        if self._allowed is not None and symbol not in self._allowed:
            raise ValidationError("unknown symbol", field="symbol", symbol=symbol)
        b = self._books.get(symbol)
        if b is None:
            b = self._books[symbol] = Book(symbol)
        return b

    def qty_problem(self, qty: Decimal) -> str | None:
        """Why ``qty`` cannot be traded here (None when it can): not positive, above
        :attr:`max_qty`, or not a multiple of :attr:`lot_size`."""
        if not qty.is_finite() or qty <= 0:
            return f"qty {qty} must be a positive number"
        if qty > self.max_qty:
            return f"qty {qty} is above the maximum {self.max_qty}"
        if qty % self.lot_size != 0:
            return f"qty {qty} is not a multiple of the lot {self.lot_size}"
        return None

    def order(self, owner: str, client_order_id: str) -> RestingOrder | None:
        key = (owner, client_order_id)
        return self._orders.get(key) or self._finished.get(key)

    def by_venue_id(self, owner: str, venue_order_id: str) -> RestingOrder | None:
        """The order ``venue_order_id`` of ``owner`` (live or recently finished), or None."""
        key = self._by_venue_id.get(venue_order_id)
        return None if key is None or key[0] != owner else self.order(*key)

    def orders_of(self, owner: str) -> list[RestingOrder]:
        """Live then recently finished orders of ``owner``."""
        return ([o for (own, _), o in self._orders.items() if own == owner]
                + [o for (own, _), o in self._finished.items() if own == owner])

    def open_orders(self, owner: str | None = None) -> list[RestingOrder]:
        return [o for (own, _), o in self._orders.items()
                if o.leaves_qty > 0 and (owner is None or own == owner) and self._is_resting(o)]

    def live_count(self) -> int:
        """Orders in the live registry (resting or being matched)."""
        return len(self._orders)

    def _finish(self, o: RestingOrder, status: OrderStatus) -> None:
        """Move a done order out of the live registry (kept in the bounded finished window)."""
        o.status = status
        key = (o.owner, o.client_order_id)
        if self._orders.get(key) is o:
            del self._orders[key]
        if o.owner in self._transient:
            self._by_venue_id.pop(o.venue_order_id, None)
            return
        self._finished[key] = o
        while len(self._finished) > self.max_finished:
            _, old = self._finished.popitem(last=False)
            self._by_venue_id.pop(old.venue_order_id, None)

    def _is_resting(self, o: RestingOrder) -> bool:
        if o.price is None:
            return False
        lvl = self._books[o.symbol]._side(o.side)[1].get(o.price)
        return lvl is not None and any(x is o for x in lvl.orders)

    def _next_order_id(self) -> str:
        self._seq += 1
        return f"O{self.epoch}-{self._seq}"

    def _next_exec_id(self) -> str:
        self._exec_seq += 1
        return f"X{self.epoch}-{self._exec_seq}"

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
        if self.order(owner, order.client_order_id) is not None:
            return self._reject(order, owner, ts, "duplicate client order id")
        if self._allowed is not None and order.symbol not in self._allowed:
            return self._reject(order, owner, ts, f"unknown symbol {order.symbol}")
        if order.order_type not in (OrderType.LIMIT, OrderType.MARKET):
            return self._reject(order, owner, ts, f"unsupported order type {order.order_type}")
        if (why := self.qty_problem(order.qty)) is not None:
            return self._reject(order, owner, ts, why)
        book = self.book(order.symbol)
        o = RestingOrder(self._next_order_id(), order.client_order_id, owner, order.symbol,
                         order.side, order.qty, order.limit_price, order.order_type, order.tif)
        self._orders[(owner, order.client_order_id)] = o
        self._by_venue_id[o.venue_order_id] = (owner, order.client_order_id)
        events = [self._event(o, EventKind.ACK, ts)]
        if order.tif is TimeInForce.FOK:
            available = sum((lvl.qty for lvl in book.crossing_levels(o.side, o.price)), ZERO)
            if available < o.qty:
                events.append(self._event(o, EventKind.CANCELLED, ts,
                                          reason="FOK: not fully fillable"))
                self._finish(o, OrderStatus.CANCELLED)
                return events
        events += self._match(book, o, ts)
        if o.leaves_qty > 0:
            rests = (o.order_type is OrderType.LIMIT
                     and o.tif not in (TimeInForce.IOC, TimeInForce.FOK))
            if rests and book.resting_count(o.side) >= self.max_resting:
                rests, why = False, f"book full ({self.max_resting} resting orders per side)"
            else:
                why = "no more liquidity" if o.order_type is OrderType.MARKET else "IOC remainder"
            if rests:
                book.add(o)
            else:
                events.append(self._event(o, EventKind.CANCELLED, ts, reason=why))
                self._finish(o, OrderStatus.CANCELLED)
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
                    party.status = (OrderStatus.FILLED if party.leaves_qty == 0
                                    else OrderStatus.PARTIALLY_FILLED)
                if resting.leaves_qty == 0:
                    lvl.orders.popleft()
                    book._count[resting.side] -= 1
                    self._finish(resting, OrderStatus.FILLED)
                if o.leaves_qty == 0:
                    self._finish(o, OrderStatus.FILLED)
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
        ev = self._event(o, EventKind.CANCELLED, ts, reason="cancelled by owner",
                         request_id=cancel_id or o.client_order_id)
        self._finish(o, OrderStatus.CANCELLED)
        return [ev]

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
        elif self.order(owner, new.client_order_id) is not None:
            reject_reason = "duplicate client order id"
        elif self.qty_problem(new.qty) is not None:
            reject_reason = self.qty_problem(new.qty)
        if reject_reason is not None or o is None:
            return self._cancel_reject(owner, orig_client_order_id, new.client_order_id, ts,
                                       reject_reason or "unknown order", "replace")
        book = self.book(o.symbol)
        new_price = new.limit_price if new.limit_price is not None else o.price
        keeps_priority = new_price == o.price and new.qty <= o.qty
        del self._orders[(owner, orig_client_order_id)]
        o.client_order_id = new.client_order_id
        self._orders[(owner, new.client_order_id)] = o
        self._by_venue_id[o.venue_order_id] = (owner, new.client_order_id)
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
