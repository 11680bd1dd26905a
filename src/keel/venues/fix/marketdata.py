"""Top-of-book market data over FIX (4.2 / 4.4), both sides.

Venue side, :class:`MarketDataPublisher`: answers MarketDataRequest (35=V) with one
MarketDataSnapshotFullRefresh (35=W) per symbol, keeps subscriptions (263=1) per session and
MDReqID, and on :meth:`~MarketDataPublisher.publish` sends what changed since the last
message: a MarketDataIncrementalRefresh (35=X: 279=0 new, 1 change, 2 delete) or, when the
request asked for full refreshes (265=0), a new W. Requests it cannot serve get a
MarketDataRequestReject (35=Y) with MDReqRejReason (281) and a Text.

Only the best bid (269=0) and best offer (269=1) are served (MarketDepth 264 = 0 or 1); prices
(270) and sizes (271) are exact decimal strings. The book is read through a ``BookReader``
(symbol -> :class:`TopOfBook`, raising ``ValidationError`` for an unknown symbol);
:func:`exchange_book_reader` reads keel's simulated exchange.

Client side, :class:`MarketDataView`: builds the request and folds W / X / Y into the latest
:class:`TopOfBook` per symbol (used by :class:`~keel.venues.fix.broker.FixBroker`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from keel.errors import KeelError, ProtocolError, ValidationError
from keel.venues.fix.codec import Message

if TYPE_CHECKING:
    from keel.venues.fix.session import Session

BID, OFFER = "0", "1"
_SUPPORTED_TYPES = (BID, OFFER)
# MDReqRejReason (281)
UNKNOWN_SYMBOL, DUPLICATE_REQ_ID, UNSUPPORTED_SUBSCRIPTION = "0", "1", "4"
UNSUPPORTED_DEPTH, UNSUPPORTED_UPDATE_TYPE, UNSUPPORTED_ENTRY_TYPE = "5", "6", "8"


@dataclass(frozen=True)
class TopOfBook:
    """Best bid and offer of one symbol: prices per share, sizes in shares; None when that
    side of the book is empty. ``sending_time`` is the venue's SendingTime (POSIX s) on the
    client side, 0 on the venue side."""

    symbol: str
    bid_px: Decimal | None = None
    bid_qty: Decimal | None = None
    ask_px: Decimal | None = None
    ask_qty: Decimal | None = None
    sending_time: float = 0.0

    def side(self, entry_type: str) -> tuple[Decimal, Decimal] | None:
        """(price, size) of ``entry_type`` (``"0"`` bid, ``"1"`` offer), None when empty."""
        px, qty = ((self.bid_px, self.bid_qty) if entry_type == BID
                   else (self.ask_px, self.ask_qty))
        return None if px is None or qty is None else (px, qty)


BookReader = Callable[[str], TopOfBook]


def exchange_book_reader(exchange: Any) -> BookReader:
    """A :data:`BookReader` over a :class:`~keel.venues.exchange.core.SimulatedExchange`
    (read under the exchange's lock, so a level is never seen half-updated)."""
    from keel.types import Side

    lock = getattr(exchange, "_lock", None) or threading.RLock()

    def read(symbol: str) -> TopOfBook:
        with lock:
            book = exchange.engine.book(symbol)  # ValidationError for an unknown symbol
            bid, ask = book.best(Side.BUY), book.best(Side.SELL)
            return TopOfBook(symbol, bid.price if bid else None, bid.qty if bid else None,
                             ask.price if ask else None, ask.qty if ask else None)

    return read


def _num(x: Decimal) -> str:
    return format(x.normalize(), "f")


@dataclass
class _Subscription:
    req_id: str
    symbols: list[str]
    types: tuple[str, ...]
    full_refresh: bool
    last: dict[str, TopOfBook]


class MarketDataPublisher:
    """The venue side: requests in, snapshots and incremental refreshes out (on the session's
    loop thread, like every session call)."""

    def __init__(self, read: BookReader) -> None:
        self.read = read
        self._subs: dict[Session, dict[str, _Subscription]] = {}

    # ------------------------------------------------------------------ requests

    def on_request(self, msg: Message, session: Session) -> None:
        """Handle one MarketDataRequest (35=V) from ``session``."""
        req_id = msg.get(262, "") or ""
        kind = msg.get(263, "") or ""
        subs = self._subs.setdefault(session, {})
        if kind == "2":  # unsubscribe
            subs.pop(req_id, None)
            return
        if kind not in ("0", "1"):
            return self._reject(session, req_id, UNSUPPORTED_SUBSCRIPTION,
                                f"SubscriptionRequestType {kind!r} not supported")
        if kind == "1" and req_id in subs:
            return self._reject(session, req_id, DUPLICATE_REQ_ID, "MDReqID already active")
        depth = msg.get(264, "") or ""
        if depth not in ("0", "1"):
            return self._reject(session, req_id, UNSUPPORTED_DEPTH,
                                "only top of book (MarketDepth 0 or 1) is served")
        update = msg.get(265, "1") or "1"
        if update not in ("0", "1"):
            return self._reject(session, req_id, UNSUPPORTED_UPDATE_TYPE,
                                f"MDUpdateType {update!r} not supported")
        types = tuple(e.get(269, "") or "" for e in msg.body.groups.get(267, []))
        bad_types = [t for t in types if t not in _SUPPORTED_TYPES]
        if not types or bad_types:
            return self._reject(session, req_id, UNSUPPORTED_ENTRY_TYPE,
                                f"MDEntryType {bad_types or types!r}: only 0 (bid), 1 (offer)")
        symbols = [e.get(55, "") or "" for e in msg.body.groups.get(146, [])]
        books: dict[str, TopOfBook] = {}
        for sym in symbols:
            try:
                books[sym] = self.read(sym)
            except KeelError:
                return self._reject(session, req_id, UNKNOWN_SYMBOL, f"unknown symbol {sym!r}")
        if not symbols:
            return self._reject(session, req_id, UNKNOWN_SYMBOL, "no symbol requested")
        for sym in symbols:
            session.send(self._snapshot(req_id, books[sym], types))
        if kind == "1":
            subs[req_id] = _Subscription(req_id, symbols, types, update == "0", books)

    def drop(self, session: Session) -> None:
        """Forget ``session``'s subscriptions (at logout: a client re-subscribes)."""
        self._subs.pop(session, None)

    @property
    def subscriptions(self) -> int:
        return sum(len(s) for s in self._subs.values())

    # ------------------------------------------------------------------ publishing

    def publish(self, now: float | None = None) -> list[Session]:
        """Send what changed since each subscription's last message (``now``: session time,
        POSIX s); returns the sessions that have output to flush."""
        touched: list[Session] = []
        cache: dict[str, TopOfBook] = {}
        for session, subs in self._subs.items():
            if not session.is_logged_on:
                continue
            sent = False
            for sub in subs.values():
                entries: list[dict[int, str]] = []
                for sym in sub.symbols:
                    top = cache.get(sym)
                    if top is None:
                        try:
                            top = cache[sym] = self.read(sym)
                        except KeelError:
                            continue
                    before = sub.last[sym]
                    if top == before:
                        continue
                    sub.last[sym] = top
                    if sub.full_refresh:
                        session.send(self._snapshot(sub.req_id, top, sub.types), now)
                        sent = True
                    else:
                        entries += _increments(sym, before, top, sub.types)
                if entries:
                    m = Message("X", {262: sub.req_id})
                    m.body.set_group(268, entries)
                    session.send(m, now)
                    sent = True
            if sent:
                touched.append(session)
        return touched

    # ------------------------------------------------------------------ messages

    @staticmethod
    def _snapshot(req_id: str, top: TopOfBook, types: Iterable[str]) -> Message:
        m = Message("W", {262: req_id, 55: top.symbol})
        entries = []
        for t in types:
            side = top.side(t)
            if side is not None:
                entries.append({269: t, 270: _num(side[0]), 271: _num(side[1])})
        m.body.set_group(268, entries)
        return m

    @staticmethod
    def _reject(session: Session, req_id: str, reason: str, text: str) -> None:
        session.send(Message("Y", {262: req_id or "?", 281: reason, 58: text}))


def _increments(symbol: str, before: TopOfBook, now: TopOfBook,
                types: Iterable[str]) -> list[dict[int, str]]:
    out: list[dict[int, str]] = []
    for t in types:
        a, b = before.side(t), now.side(t)
        if a == b:
            continue
        if b is None:
            assert a is not None
            out.append({279: "2", 269: t, 55: symbol, 270: _num(a[0])})
        else:
            out.append({279: "0" if a is None else "1", 269: t, 55: symbol,
                        270: _num(b[0]), 271: _num(b[1])})
    return out


# ---------------------------------------------------------------------- client side


def market_data_request(req_id: str, symbols: Iterable[str], *, subscribe: bool = True,
                        full_refresh: bool = False) -> Message:
    """MarketDataRequest (35=V) for the top of book of ``symbols`` (bid and offer)."""
    syms = list(symbols)
    if not syms:
        raise ValidationError("no symbol to request", field="symbols", value=syms)
    m = Message("V", {262: req_id, 263: "1" if subscribe else "0", 264: "1"})
    if subscribe:
        m[265] = "0" if full_refresh else "1"
    m.body.set_group(267, [{269: BID}, {269: OFFER}])
    m.body.set_group(146, [{55: s} for s in syms])
    return m


def unsubscribe_request(req_id: str, symbols: Iterable[str]) -> Message:
    """MarketDataRequest (35=V, 263=2) ending subscription ``req_id`` (the dictionary
    requires the request's symbols again)."""
    m = market_data_request(req_id, symbols, subscribe=False)
    m[263] = "2"
    return m


class MarketDataView:
    """Latest top of book per symbol, folded from W / X / Y messages (thread-safe reads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._books: dict[str, TopOfBook] = {}
        self.rejects: dict[str, str] = {}
        self.updates = 0

    def get(self, symbol: str) -> TopOfBook | None:
        with self._lock:
            return self._books.get(symbol)

    def on_message(self, msg: Message, sending_time: float) -> bool:
        """Fold ``msg`` in; False when it is not market data."""
        mt = msg.msg_type
        if mt == "W":
            sym = msg.get(55, "") or ""
            sides: dict[str, tuple[Decimal, Decimal]] = {}
            for e in msg.body.groups.get(268, []):
                sides[e.get(269, "") or ""] = (_dec(e.get(270)), _dec(e.get(271)))
            bid, ask = sides.get(BID), sides.get(OFFER)
            top = TopOfBook(sym, bid[0] if bid else None, bid[1] if bid else None,
                            ask[0] if ask else None, ask[1] if ask else None, sending_time)
            with self._lock:
                self._books[sym] = top
                self.updates += 1
        elif mt == "X":
            with self._lock:
                for e in msg.body.groups.get(268, []):
                    sym = e.get(55, "") or ""
                    cur = self._books.get(sym, TopOfBook(sym))
                    t, action = e.get(269, ""), e.get(279, "")
                    px = None if action == "2" else _dec(e.get(270))
                    qty = None if action == "2" else _dec(e.get(271))
                    if t == BID:
                        cur = TopOfBook(sym, px, qty, cur.ask_px, cur.ask_qty, sending_time)
                    elif t == OFFER:
                        cur = TopOfBook(sym, cur.bid_px, cur.bid_qty, px, qty, sending_time)
                    self._books[sym] = cur
                self.updates += 1
        elif mt == "Y":
            with self._lock:
                self.rejects[msg.get(262, "") or ""] = (
                    f"{msg.get(281, '')}: {msg.get(58, '') or 'rejected'}")
        else:
            return False
        return True


def _dec(value: str | None) -> Decimal:
    if value is None:
        raise ProtocolError("market data entry without price or size", field="270/271")
    try:
        return Decimal(value)
    except ArithmeticError:
        raise ProtocolError("market data value is not a number", field="270/271",
                            value=value) from None
