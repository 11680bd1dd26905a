"""`FixBroker`: keel's :class:`~keel.venues.base.Broker` protocol over a FIX initiator.

The initiator runs on an asyncio loop in a background thread; ``submit`` / ``cancel`` /
``replace`` hand the encoded request to that loop (thread-safe) and return at once;
ExecutionReports become :class:`~keel.types.OrderEvent` objects in a queue that
:meth:`FixBroker.poll_events` drains without blocking.

Nothing is lost or duplicated across a reconnect: a request sent while the session is down is
stored with its sequence number and replayed (PossDupFlag=Y) when the venue asks for the gap
after the next Logon, provided neither side resets sequence numbers at Logon; execution reports
replayed by the venue are recognised by their ExecID and not reported twice.

After every reconnect (each Logon but the first) the broker asks the venue for the status of
every order it sent that is still open (OrderStatusRequest, 35=H): a venue answering as
:class:`~keel.venues.exchange.fix_front.FixExchangeServer` does re-sends the order's fill
reports (original ExecIDs: those already received are dropped) and a status report, from
which the order's terminal state (cancelled, expired, rejected, or lost by the venue) becomes
an event. So an execution report the venue could not deliver while the connection was down
still reaches the order manager. ``connection_epoch`` counts the Logons.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from ssl import SSLContext

from keel.errors import OrderRejected, TransientVenueError, VenueError
from keel.types import ZERO, EventKind, Order, OrderEvent, OrderStatus
from keel.venues.base import Account, OpenOrder
from keel.venues.fix.application import Application, UnsupportedMessageType
from keel.venues.fix.codec import FieldValueError, Message, parse_utc_timestamp
from keel.venues.fix.dictionary import DataDictionary, load_dictionary
from keel.venues.fix.marketdata import (
    MarketDataView,
    TopOfBook,
    market_data_request,
    unsubscribe_request,
)
from keel.venues.fix.messages import (
    FIX_TO_STATUS,
    READ_TAGS,
    SIDE_TO_FIX,
    event_from_cancel_reject,
    event_from_execution_report,
    new_order_single,
    order_cancel_replace_request,
    order_cancel_request,
)
from keel.venues.fix.session import Session, SessionConfig
from keel.venues.fix.store import MessageStore
from keel.venues.fix.transport import Initiator, new_event_loop


class _BrokerApplication(Application):
    read_tags = READ_TAGS  # lazy validation: the values messages.py's parsers read

    def __init__(self, broker: FixBroker) -> None:
        self.broker = broker

    def on_logon(self, session: Session) -> None:
        self.broker._logged_on.set()
        self.broker._on_logon()

    def on_logout(self, session: Session) -> None:
        self.broker._logged_on.clear()

    def from_admin(self, msg: Message, session: Session) -> None:
        if msg.msg_type == "3":
            self.broker._rejected_seq(msg.get(45), msg.get(58) or "session reject")

    def from_app(self, msg: Message, session: Session) -> None:
        mt = msg.msg_type
        if mt in ("W", "X", "Y"):
            self.broker.market_data.on_message(
                msg, parse_utc_timestamp(msg.header.get(52) or "") or 0.0)
        elif mt == "8":
            self.broker._execution_report(msg)
        elif mt == "9":
            self.broker._emit(event_from_cancel_reject(msg, self.broker._utcnow()))
        elif mt == "j":
            self.broker._rejected_seq(msg.get(45), msg.get(58) or "business reject")
        else:
            raise UnsupportedMessageType(mt)


def _refuse_bad_values(msg: Message, order: Order) -> None:
    """Check every value on the caller's thread, before anything is registered or handed to
    the loop: a value the encoder would refuse there would lose the order silently."""
    try:
        msg.check_values()
    except FieldValueError as exc:
        raise OrderRejected(exc.message, reason_code="INVALID_FIELD", field=exc.field,
                            value=exc.value, symbol=order.symbol) from None


class FixBroker:
    """The Broker protocol over one FIX session to ``host:port``.

    Args:
        config: the initiator's :class:`SessionConfig` (``initiator=True`` is enforced).
        host / port: the venue's acceptor.
        dictionary: data dictionary (default: loaded for ``config.begin_string`` from
            ``spec_dir`` / ``$KEEL_FIX_SPEC_DIR``).
        store: message store (use a :class:`~keel.venues.fix.store.FileStore` or
            :class:`~keel.venues.fix.store.SqlStore` so sequence numbers survive a restart).
        ssl: TLS context, or None for plain TCP.
        clock: POSIX seconds (tests inject their own).
    """

    def __init__(self, config: SessionConfig, host: str, port: int, *,
                 dictionary: DataDictionary | None = None, spec_dir: str | None = None,
                 store: MessageStore | None = None, ssl: SSLContext | None = None,
                 reconnect_interval: float = 0.5, max_backoff: float = 30.0,
                 clock: Callable[[], float] = time.time, name: str = "fix") -> None:
        if not config.initiator:
            from dataclasses import replace

            config = replace(config, initiator=True)
        self.name = name
        self.clock = clock
        dd = dictionary if dictionary is not None else load_dictionary(config.begin_string,
                                                                        spec_dir)
        self._logged_on = threading.Event()
        self._lock = threading.Lock()
        self._events: queue.SimpleQueue[OrderEvent] = queue.SimpleQueue()
        self._orders: dict[str, Order] = {}
        self._status: dict[str, OrderStatus] = {}
        self._cum: dict[str, Decimal] = {}
        self._venue_ids: dict[str, str] = {}
        self._seq_to_id: dict[int, str] = {}
        self._exec_ids: set[str] = set()
        self._sent: set[str] = set()  # orders whose NewOrderSingle has a sequence number
        self._logons = 0
        self.status_requests = 0
        self._positions: dict[str, Decimal] = {}
        self._cancel_n = 0
        self._md_n = 0
        self._md_symbols: dict[str, list[str]] = {}
        #: latest top of book per subscribed symbol (see :meth:`subscribe_market_data`)
        self.market_data = MarketDataView()
        self.session = Session(config, dd, store, _BrokerApplication(self))
        self.initiator = Initiator(self.session, host, port, ssl=ssl, clock=clock,
                                   reconnect_interval=reconnect_interval,
                                   max_backoff=max_backoff)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ life cycle

    def start(self, wait_logon: float | None = None) -> FixBroker:
        """Start the background thread; optionally wait up to ``wait_logon`` s for the Logon."""
        if self._thread is not None:
            return self
        ready = threading.Event()

        def run() -> None:
            loop = new_event_loop()
            self._loop = loop
            ready.set()
            try:
                loop.run_until_complete(self.initiator.run())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"fix-{self.name}", daemon=True)
        self._thread.start()
        ready.wait()
        if wait_logon is not None and not self.wait_logged_on(wait_logon):
            raise TransientVenueError("FIX logon timed out", field="host",
                                      value=f"{self.initiator.host}:{self.initiator.port}")
        return self

    def wait_logged_on(self, timeout: float) -> bool:
        """True once the session is logged on (waits up to ``timeout`` seconds)."""
        return self._logged_on.wait(timeout)

    @property
    def is_logged_on(self) -> bool:
        return self._logged_on.is_set()

    def is_connected(self) -> bool:
        """True while the session is logged on (the :class:`RoutingBroker` health probe)."""
        return self._logged_on.is_set()

    def close(self, timeout: float = 5.0) -> None:
        """Log out (best effort), stop the initiator and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        def stop() -> None:
            self.session.logout(now=self.clock())
            self.initiator.flush(self.session)
            loop.call_later(0.2, self.initiator.stop)

        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(stop)
        thread.join(timeout)
        self._thread = None
        self.session.store.close()

    def __enter__(self) -> FixBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ Broker protocol

    def submit(self, order: Order) -> None:
        """Send a NewOrderSingle; ``OrderRejected`` (DUPLICATE_ID) for a reused id, and
        (INVALID_FIELD, the field named) for a value the wire cannot carry."""
        msg = new_order_single(order, self.session.config.begin_string)
        _refuse_bad_values(msg, order)
        if self.session.config.reset_on_logon and not self.is_logged_on:
            # the store is wiped at the next Logon, so a stored order would be lost
            raise TransientVenueError("FIX session is down and resets at logon",
                                      field="session", value=self.session.session_id)
        with self._lock:
            if order.client_order_id in self._orders:
                raise OrderRejected("client_order_id already used", reason_code="DUPLICATE_ID",
                                    value=order.client_order_id, symbol=order.symbol)
            self._orders[order.client_order_id] = order
            self._status[order.client_order_id] = OrderStatus.PENDING
        try:
            self._call(msg, order.client_order_id)
        except TransientVenueError:
            with self._lock:  # not sent: the caller may retry with the same id
                del self._orders[order.client_order_id]
                del self._status[order.client_order_id]
            raise

    def cancel(self, client_order_id: str) -> None:
        """Send an OrderCancelRequest for a known order."""
        original = self._known(client_order_id)
        with self._lock:
            self._cancel_n += 1
            request_id = f"{client_order_id}.x{self._cancel_n}"
        msg = order_cancel_request(original, request_id, self._utcnow())
        _refuse_bad_values(msg, original)
        self._call(msg, None)

    def replace(self, client_order_id: str, new_order: Order) -> None:
        """Send an OrderCancelReplaceRequest replacing ``client_order_id`` by ``new_order``."""
        original = self._known(client_order_id)
        msg = order_cancel_replace_request(original, new_order,
                                           self.session.config.begin_string)
        _refuse_bad_values(msg, new_order)
        with self._lock:
            self._orders[new_order.client_order_id] = new_order
            self._status[new_order.client_order_id] = OrderStatus.PENDING
        self._call(msg, new_order.client_order_id)

    def subscribe_market_data(self, symbols: list[str], *, full_refresh: bool = False) -> str:
        """Subscribe to the top of book of ``symbols`` on this session; returns the MDReqID.
        Read prices with :meth:`top_of_book`; a venue refusal lands in
        ``market_data.rejects[req_id]``. Subscriptions end at logout: call again after one."""
        with self._lock:
            self._md_n += 1
            req_id = f"md{self._md_n}"
        msg = market_data_request(req_id, symbols, full_refresh=full_refresh)
        try:
            msg.check_values()
        except FieldValueError as exc:
            raise OrderRejected(exc.message, reason_code="INVALID_FIELD", field=exc.field,
                                value=exc.value) from None
        self._call(msg, None)
        with self._lock:
            self._md_symbols[req_id] = list(symbols)
        return req_id

    def unsubscribe_market_data(self, req_id: str) -> None:
        """End subscription ``req_id`` (unknown ids are ignored)."""
        with self._lock:
            symbols = self._md_symbols.pop(req_id, None)
        if symbols is not None:
            self._call(unsubscribe_request(req_id, symbols), None)

    def top_of_book(self, symbol: str) -> TopOfBook | None:
        """The latest best bid / offer of ``symbol`` received on this session (None before
        the first snapshot)."""
        return self.market_data.get(symbol)

    def open_orders(self) -> list[OpenOrder]:
        with self._lock:
            return [OpenOrder(client_order_id=cid, symbol=o.symbol, status=self._status[cid],
                              qty=o.qty, cum_qty=self._cum.get(cid, ZERO),
                              venue_order_id=self._venue_ids.get(cid, ""))
                    for cid, o in self._orders.items() if self._status[cid].is_open]

    def positions(self) -> dict[str, Decimal]:
        """Signed positions built from the fills received on this session."""
        with self._lock:
            return dict(self._positions)

    def account(self) -> Account:
        raise VenueError("FIX order entry does not report the account", field="account",
                         value=self.name)

    def poll_events(self) -> list[OrderEvent]:
        out = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    # ------------------------------------------------------------------ internals

    def _known(self, client_order_id: str) -> Order:
        with self._lock:
            order = self._orders.get(client_order_id)
        if order is None:
            raise OrderRejected("unknown order", reason_code="UNKNOWN_ORDER",
                                value=client_order_id)
        return order

    def _call(self, msg: Message, client_order_id: str | None) -> None:
        loop = self._loop
        if loop is None or self._thread is None or not self._thread.is_alive():
            raise TransientVenueError("FIX broker is not running (call start())",
                                      field="broker", value=self.name)

        def send() -> None:
            seq = self.session.send(msg, now=self.clock())
            if client_order_id is not None:
                with self._lock:
                    self._seq_to_id[seq] = client_order_id
                    self._sent.add(client_order_id)
            self.initiator.flush_soon(self.session)

        try:
            loop.call_soon_threadsafe(send)
        except RuntimeError:  # the loop has just been closed
            raise TransientVenueError("FIX broker is stopped", field="broker",
                                      value=self.name) from None

    def _utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _emit(self, event: OrderEvent) -> None:
        self._events.put(event)

    @property
    def connection_epoch(self) -> int:
        """How many times the session has logged on (a change means a reconnect)."""
        return self._logons

    def _on_logon(self) -> None:
        """On the loop thread: after a reconnect, ask the status of every open order sent
        before it (its NewOrderSingle has a lower sequence number than the request)."""
        self._logons += 1
        if self._logons == 1 or self._loop is None:
            return
        self._loop.call_soon(self._request_status)

    def _request_status(self) -> None:
        with self._lock:
            todo = [(cid, self._orders[cid], self._venue_ids.get(cid, ""))
                    for cid in self._sent if cid in self._orders and self._status[cid].is_open]
        for cid, order, venue_id in todo:
            body = {11: cid, 55: order.symbol, 54: SIDE_TO_FIX[order.side]}
            if venue_id:
                body[37] = venue_id
            self.session.send(Message("H", body), now=self.clock())
            self.status_requests += 1
        if todo:
            self.initiator.flush_soon(self.session)

    def _status_report(self, msg: Message) -> None:
        """A status ExecutionReport (the answer to an OrderStatusRequest): settle what the
        reports received so far left open."""
        cid = msg.get(11, "") or ""
        venue = FIX_TO_STATUS.get(msg.get(39, "") or "")
        kind: EventKind | None = None
        reason = ""
        with self._lock:
            local = self._status.get(cid)
            if local is None or not local.is_open or venue is None:
                return
            if msg.get(103) == "5":  # the venue does not know the order
                if local is OrderStatus.PENDING:
                    return  # maybe still on its way (resent after the logon): stays pending
                self._status[cid], kind = OrderStatus.EXPIRED, EventKind.EXPIRED
                reason = "venue does not know the order (order status)"
            elif venue in (OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED):
                self._status[cid] = venue
                kind = {OrderStatus.CANCELLED: EventKind.CANCELLED,
                        OrderStatus.EXPIRED: EventKind.EXPIRED,
                        OrderStatus.REJECTED: EventKind.REJECTED}[venue]
                reason = f"order status: {venue.value} at the venue"
            elif local is OrderStatus.PENDING and venue in (OrderStatus.ACKNOWLEDGED,
                                                            OrderStatus.PARTIALLY_FILLED):
                self._status[cid], kind = OrderStatus.ACKNOWLEDGED, EventKind.ACK
                reason = "order status: working at the venue"
            if msg.get(37) and msg.get(37) != "NONE":
                self._venue_ids[cid] = msg[37]
        if kind is not None:
            self._emit(OrderEvent(kind=kind, client_order_id=cid, timestamp=self._utcnow(),
                                  cum_qty=Decimal(msg.get(14, "0") or "0"), reason=reason,
                                  venue_order_id=self._venue_ids.get(cid, "")))

    def _execution_report(self, msg: Message) -> None:
        if msg.get(20) == "3" or msg.get(150) == "I":
            self._status_report(msg)
            return
        exec_id = msg.get(17, "") or ""
        with self._lock:
            if exec_id and exec_id in self._exec_ids:
                return  # a replayed report (PossDup) already handled
            self._exec_ids.add(exec_id)
        event = event_from_execution_report(msg, self._utcnow(), venue=self.name)
        if event is None:
            return
        cid = event.client_order_id
        with self._lock:
            status = FIX_TO_STATUS.get(msg.get(39, "") or "")
            if event.kind is EventKind.REPLACED:
                self._status[cid] = OrderStatus.CANCELLED
                new_id = str(event.extra.get("new_client_order_id", ""))
                if new_id:
                    self._status[new_id] = OrderStatus.ACKNOWLEDGED
            elif status is not None and cid in self._status:
                self._status[cid] = status
            self._cum[cid] = event.cum_qty
            if event.venue_order_id:
                self._venue_ids[cid] = event.venue_order_id
            if event.fill is not None:
                f = event.fill
                self._positions[f.symbol] = self._positions.get(f.symbol, ZERO) + f.signed_qty
        self._emit(event)

    def _rejected_seq(self, ref_seq: str | None, reason: str) -> None:
        if ref_seq is None or not ref_seq.isdigit():
            return
        with self._lock:
            cid = self._seq_to_id.get(int(ref_seq))
            if cid is None:
                return
            self._status[cid] = OrderStatus.REJECTED
        self._emit(OrderEvent(kind=EventKind.REJECTED, client_order_id=cid,
                              timestamp=self._utcnow(), reason=reason))
