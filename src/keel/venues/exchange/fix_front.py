"""`FixExchangeServer`: a FIX 4.2 / 4.4 acceptor in front of a :class:`SimulatedExchange`.

Each client CompID maps to one exchange *account*. NewOrderSingle, OrderCancelRequest and
OrderCancelReplaceRequest become ``submit`` / ``cancel`` / ``replace`` calls; every event the
exchange logs for an account (including fills of resting orders caused by other participants,
by the liquidity provider or by REST orders, on any thread) is turned into an ExecutionReport or
an OrderCancelReject and sent on that account's session(s).

Threading: the acceptor runs on its own asyncio loop in a daemon thread. The exchange calls
our listener under its lock, on whatever thread changed the book; the listener only appends
to a FIFO and wakes the loop (``call_soon_threadsafe``), which drains the FIFO in exchange
order. When the loop itself caused the events (inside ``from_app``), it drains at once, so
the reports leave in the same write as the session's reply.

Exactly once: a NewOrderSingle (or a cancel / replace) re-sent with PossDupFlag=Y or
PossResend=Y whose ClOrdID the exchange already knows is dropped (its reports were already
sent and are replayed by the session on a ResendRequest). A non-PossDup duplicate ClOrdID is
answered with ExecType=Rejected for this session only (the exchange order is untouched).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from keel.clock import Clock, WallClock
from keel.errors import ConfigError, ProtocolError, ValidationError, VenueError
from keel.types import EventKind, Order, OrderEvent, OrderStatus, OrderType, Side, TimeInForce
from keel.venues.exchange.core import SimulatedExchange
from keel.venues.fix.application import (
    Application,
    BusinessReject,
    BusinessRejectReason,
    UnsupportedMessageType,
)
from keel.venues.fix.codec import Message, format_utc
from keel.venues.fix.dictionary import load_dictionary
from keel.venues.fix.marketdata import MarketDataPublisher, exchange_book_reader
from keel.venues.fix.messages import (
    READ_TAGS,
    SIDE_TO_FIX,
    STATUS_TO_FIX,
    ExecutionReportData,
    execution_report,
    order_cancel_reject,
    order_from_new_order_single,
)
from keel.venues.fix.session import Session, SessionConfig
from keel.venues.fix.settings import FixSessionSettings, only
from keel.venues.fix.store import FileStore, MemoryStore, MessageStore
from keel.venues.fix.transport import Acceptor

log = logging.getLogger("keel.venues.exchange.fix")

#: the CompID :class:`~keel.venues.fix.broker.FixBroker` examples use, and its account
DEFAULT_CLIENTS: Mapping[str, str] = {"KEEL": "default"}
BEGIN_STRINGS = ("FIX.4.2", "FIX.4.4")
#: cancel request ids remembered for PossDup detection (the oldest are forgotten)
MAX_CANCEL_IDS = 100_000


def _num(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _is_possdup(msg: Message) -> bool:
    return msg.header.get(43) == "Y" or msg.header.get(97) == "Y"


def _order_of(ev: OrderEvent, client_order_id: str) -> Order:
    """The order an event is about, rebuilt from the engine's ``extra`` fields."""
    x = ev.extra
    price = x.get("price")
    order_type = OrderType(str(x.get("order_type", "LIMIT" if price is not None else "MARKET")))
    fields: dict[str, Any] = {}
    if order_type not in (OrderType.LIMIT, OrderType.MARKET):  # refused type: report as limit
        order_type = OrderType.LIMIT if price is not None else OrderType.MARKET
    if order_type is OrderType.LIMIT:
        fields["limit_price"] = Decimal(str(price))
    return Order(client_order_id, str(x.get("symbol", "?")), Side(x.get("side", Side.BUY)),
                 Decimal(str(x.get("qty", 1))), ev.timestamp, order_type=order_type,
                 tif=TimeInForce(str(x.get("tif", "DAY"))), **fields)


def report_for_event(ev: OrderEvent, begin_string: str,
                     status: OrderStatus | None = None) -> Message | None:
    """The FIX message (35=8 or 35=9) a venue sends for exchange event ``ev``; None for kinds
    FIX order entry does not report. ``status`` is the order's status for a cancel reject."""
    x, kind = ev.extra, ev.kind
    exec_id = str(x.get("exec_id", ""))
    if kind is EventKind.CANCEL_REJECTED:
        return order_cancel_reject(ev.venue_order_id or "NONE",
                                   str(x.get("request_id", ev.client_order_id)),
                                   ev.client_order_id, status or OrderStatus.REJECTED,
                                   x.get("response_to") == "replace", ev.reason)
    cl_ord_id, orig = ev.client_order_id, None
    last_qty = last_px = Decimal(0)
    if kind is EventKind.ACK:
        exec_type, st = "0", OrderStatus.ACKNOWLEDGED
    elif kind is EventKind.FILL:
        assert ev.fill is not None
        filled = ev.leaves_qty == 0
        exec_type = "F" if begin_string >= "FIX.4.3" else ("2" if filled else "1")
        st = OrderStatus.FILLED if filled else OrderStatus.PARTIALLY_FILLED
        exec_id, last_qty, last_px = ev.fill.exec_id, ev.fill.qty, ev.fill.price
    elif kind is EventKind.CANCELLED:
        exec_type, st = "4", OrderStatus.CANCELLED
        request_id = str(x.get("request_id", cl_ord_id))
        if request_id != cl_ord_id:
            cl_ord_id, orig = request_id, cl_ord_id
    elif kind is EventKind.REPLACED:
        exec_type = "5"
        st = OrderStatus.PARTIALLY_FILLED if ev.cum_qty > 0 else OrderStatus.ACKNOWLEDGED
        cl_ord_id, orig = str(x["new_client_order_id"]), ev.client_order_id
    elif kind is EventKind.REJECTED:
        exec_type, st = "8", OrderStatus.REJECTED
    elif kind is EventKind.EXPIRED:
        exec_type, st = "C", OrderStatus.EXPIRED
    else:
        return None
    try:
        order = _order_of(ev, cl_ord_id)
    except (ValidationError, ValueError, KeyError):
        log.warning("cannot report event %s of %s over FIX", kind.value, ev.client_order_id)
        return None
    d = ExecutionReportData(order_id=ev.venue_order_id or "NONE", exec_id=exec_id,
                            exec_type=exec_type, order=order, status=st, cum_qty=ev.cum_qty,
                            leaves_qty=ev.leaves_qty,
                            avg_px=Decimal(str(x.get("avg_px", 0) or 0)), last_qty=last_qty,
                            last_px=last_px, orig_cl_ord_id=orig,
                            text=ev.reason if kind in (EventKind.REJECTED,
                                                       EventKind.CANCELLED) else None)
    return execution_report(d, ev.timestamp, begin_string)


class _ExchangeApplication(Application):
    read_tags = READ_TAGS  # lazy validation: the values messages.py's parsers read

    def __init__(self, server: FixExchangeServer) -> None:
        self.server = server

    def on_logon(self, session: Session) -> None:
        log.info("%s logged on", session.session_id)

    def on_logout(self, session: Session) -> None:
        self.server.market_data.drop(session)

    def from_app(self, msg: Message, session: Session) -> None:
        try:
            self._handle(msg, session)
        finally:  # the reports of what the exchange did leave with the session's reply
            self.server._drain()

    def _handle(self, msg: Message, session: Session) -> None:
        srv = self.server
        account = srv.account_of(session)
        ts = srv.clock.now()
        mt = msg.msg_type
        ex = srv.exchange
        if mt == "D":
            try:
                order = order_from_new_order_single(msg, ts)
            except ProtocolError as exc:
                raise BusinessReject(BusinessRejectReason.OTHER, exc.message) from None
            if ex.order(account, order.client_order_id) is not None:
                srv.duplicates += 1
                if not _is_possdup(msg):
                    dup = OrderEvent(EventKind.REJECTED, order.client_order_id, ts,
                                     reason="duplicate ClOrdID",
                                     extra={"symbol": order.symbol, "side": order.side,
                                            "qty": order.qty, "price": order.limit_price,
                                            "order_type": order.order_type.value,
                                            "tif": order.tif.value})
                    rep = report_for_event(dup, session.config.begin_string)
                    if rep is not None:
                        session.send(rep)
                return
            ex.submit(account, order, ts)
        elif mt == "F":
            orig, request_id = msg.get(41, "") or "", msg.get(11, "") or ""
            if _is_possdup(msg) and (account, request_id) in srv._cancel_ids:
                srv.duplicates += 1
                return
            srv._cancel_ids[(account, request_id)] = None
            if len(srv._cancel_ids) > MAX_CANCEL_IDS:  # bounded: a PossDup comes soon or never
                srv._cancel_ids.popitem(last=False)
            ex.cancel(account, orig, ts, cancel_id=request_id)
        elif mt == "G":
            orig = msg.get(41, "") or ""
            try:
                new = order_from_new_order_single(msg, ts)
            except ProtocolError as exc:
                raise BusinessReject(BusinessRejectReason.OTHER, exc.message) from None
            if _is_possdup(msg) and ex.order(account, new.client_order_id) is not None:
                srv.duplicates += 1
                return
            ex.replace(account, orig, new, ts)
        elif mt == "V":
            srv.market_data.on_request(msg, session)
        elif mt == "H":
            for rep in srv.order_status_reports(account, msg, session.config.begin_string):
                session.send(rep)
        else:
            raise UnsupportedMessageType(mt)


class FixExchangeServer:
    """A FIX acceptor for ``exchange`` on ``host:port`` (0: a free port), in its own thread.

    Args:
        exchange: the venue the orders reach.
        host / port: where to listen (``.port`` holds the bound port after ``start()``).
        sender_comp_id: the exchange's CompID (the clients' TargetCompID).
        clients: client CompID -> exchange account (default ``{"KEEL": "default"}``).
        begin_string: ``"FIX.4.2"``, ``"FIX.4.4"`` or both (one session per client each).
        store_dir: folder of a :class:`FileStore` per session (sequence numbers and sent
            messages survive a restart of the front end); None keeps them in memory.
        fsync: sync every store write to disk (with ``store_dir``).
        spec_dir: folder of ``FIX42.xml`` / ``FIX44.xml`` (default: as
            :func:`~keel.venues.fix.dictionary.find_spec_dir` resolves it).
        reset_on_logon: reset sequence numbers at each Logon (exactly-once across a reconnect
            then rests on PossDup detection only; keep False for resend recovery).
        clock: timestamps of exchange events (default: wall clock).
        settings: acceptor sessions of a QuickFIX-style settings file
            (:func:`keel.venues.fix.settings.load_settings`); when given they replace the
            sessions built from ``sender_comp_id`` x ``clients`` x ``begin_string`` (each
            client's account is ``clients[TargetCompID]``, else ``default``).
    """

    def __init__(self, exchange: SimulatedExchange, *, host: str = "127.0.0.1", port: int = 0,
                 sender_comp_id: str = "KEELX", clients: Mapping[str, str] | None = None,
                 begin_string: str | Iterable[str] = BEGIN_STRINGS,
                 store_dir: str | os.PathLike[str] | None = None, fsync: bool = False,
                 spec_dir: str | os.PathLike[str] | None = None, reset_on_logon: bool = False,
                 clock: Clock | None = None,
                 settings: Sequence[FixSessionSettings] | None = None) -> None:
        begins = (begin_string,) if isinstance(begin_string, str) else tuple(begin_string)
        bad = [b for b in begins if b not in BEGIN_STRINGS]
        if not begins or bad:
            raise ConfigError("begin_string must be FIX.4.2 and/or FIX.4.4",
                              field="begin_string", value=bad or begins)
        clients = dict(DEFAULT_CLIENTS if clients is None else clients)
        if not clients:
            raise ConfigError("at least one client CompID is needed", field="clients")
        self.exchange = exchange
        self.host, self.port = host, port
        self.sender_comp_id = sender_comp_id
        self.clients = clients
        self.clock = clock if clock is not None else WallClock()
        self.duplicates = 0
        self._status_n = 0
        self._cancel_ids: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._pending: deque[tuple[str, OrderEvent]] = deque()
        self._wake_lock = threading.Lock()
        self._wake_scheduled = False
        #: top-of-book market data (35=V/W/X/Y), published on book changes and every
        #: ``md_interval`` s (liquidity quotes change the book without an account event)
        self.market_data = MarketDataPublisher(exchange_book_reader(exchange))
        self.md_interval = 0.05
        app = _ExchangeApplication(self)
        self.sessions: list[Session] = []
        self._account: dict[Session, str] = {}
        self._by_account: dict[str, list[Session]] = {}
        for fs in only(list(settings), initiator=False) if settings is not None else ():
            s = Session(fs.config, fs.dictionary(spec_dir), fs.store(fsync=fsync), app)
            account = clients.get(fs.config.target_comp_id, "default")
            self.sessions.append(s)
            self._account[s] = account
            self._by_account.setdefault(account, []).append(s)
        for begin in begins if settings is None else ():
            dd = load_dictionary(begin, spec_dir)
            for comp_id, account in clients.items():
                cfg = SessionConfig(begin_string=begin, sender_comp_id=sender_comp_id,
                                    target_comp_id=comp_id, reset_on_logon=reset_on_logon)
                store: MessageStore = (MemoryStore() if store_dir is None else
                                       FileStore(store_dir, cfg.session_id,
                                                 fsync=fsync))
                s = Session(cfg, dd, store, app)
                self.sessions.append(s)
                self._account[s] = account
                self._by_account.setdefault(account, []).append(s)
        self._acceptor: Acceptor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    # ------------------------------------------------------------------ life cycle

    def start(self, timeout: float = 10.0) -> FixExchangeServer:
        """Listen in a background thread; returns once the port is bound."""
        if self._thread is not None:
            return self
        if self._stopped:
            raise VenueError("a stopped FixExchangeServer cannot restart; create a new one",
                             field="server", value=self.port)
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, daemon=True,
                                        name=f"fix-exchange-{self.port}")
        self._thread.start()
        self._acceptor = Acceptor(self.sessions, self.host, self.port)
        try:
            self.port = asyncio.run_coroutine_threadsafe(self._acceptor.start(),
                                                         loop).result(timeout)
        except OSError as exc:
            self._shutdown_loop()
            raise VenueError(f"FIX front end cannot listen: {exc}", field="port",
                             value=self.port) from None
        self.exchange.subscribe(self._on_event)
        loop.call_soon_threadsafe(self._md_tick)
        return self

    def _md_tick(self) -> None:
        if self._loop is None:
            return
        if self.market_data.subscriptions:
            self._drain()
        self._loop.call_later(self.md_interval, self._md_tick)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, drop every connection, close the stores (abrupt, like a crash of
        the front end: clients reconnect and resend what was in flight)."""
        if self._thread is None or self._loop is None:
            return
        self.exchange.unsubscribe(self._on_event)
        if self._acceptor is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._acceptor.stop(),
                                                 self._loop).result(timeout)
            except (RuntimeError, TimeoutError):
                log.warning("FIX acceptor did not stop cleanly")
        self._shutdown_loop(timeout)
        self._stopped = True
        for s in self.sessions:
            s.store.close()

    def _shutdown_loop(self, timeout: float = 5.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout)
        if loop is not None and not loop.is_running():
            loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> FixExchangeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ queries

    def account_of(self, session: Session) -> str:
        """The exchange account behind ``session``."""
        return self._account[session]

    def logged_on(self) -> list[str]:
        """Session ids logged on now."""
        return [s.session_id for s in self.sessions if s.is_logged_on]

    # ------------------------------------------------------------------ order status

    def order_status_reports(self, account: str, request: Message,
                             begin_string: str) -> list[Message]:
        """The answer to an OrderStatusRequest (35=H): every fill the exchange made on the
        order, re-sent as its ExecutionReport with its original ExecID (a client drops the
        ones it has; a report lost while the front end was down is delivered now), then one
        status ExecutionReport (FIX 4.2: ExecTransType 3; FIX 4.4: ExecType I) with OrdStatus,
        CumQty, LeavesQty and AvgPx. An order the exchange does not know is answered with
        OrdStatus 8 (rejected) and OrdRejReason 5 (unknown order)."""
        coid = request.get(11, "") or ""
        self._status_n += 1
        view = self.exchange.order(account, coid)
        out: list[Message] = []
        fix42 = begin_string < "FIX.4.3"
        body: dict[int, str] = {
            11: coid, 17: f"S{self._status_n}-{time.time_ns()}",
            55: request.get(55, "") or (view.symbol if view is not None else "?"),
            54: request.get(54, "") or "1", 60: format_utc(self._session_now())}
        if fix42:
            body[20] = "3"
        if view is None:
            body.update({37: request.get(37, "") or "NONE", 39: "8", 103: "5", 14: "0",
                         151: "0", 6: "0", 58: "unknown order"})
            body[150] = "8" if fix42 else "I"
            return [Message("8", body)]
        for _, ev in self.exchange.events_since(account):
            if ev.kind is EventKind.FILL and ev.client_order_id == coid:
                rep = report_for_event(ev, begin_string)
                if rep is not None:
                    out.append(rep)
        status = STATUS_TO_FIX[view.status]
        body.update({37: view.venue_order_id or "NONE", 39: status, 14: _num(view.cum_qty),
                     151: _num(view.leaves_qty), 6: _num(view.avg_price),
                     38: _num(view.qty), 54: SIDE_TO_FIX[view.side], 55: view.symbol})
        body[150] = status if fix42 else "I"
        out.append(Message("8", body))
        return out

    # ------------------------------------------------------------------ event delivery

    def _on_event(self, account: str, seq: int, ev: OrderEvent) -> None:
        # under the exchange lock, on any thread: queue in exchange order, wake the loop
        if account not in self._by_account:
            return
        self._pending.append((account, ev))
        if threading.current_thread() is self._thread:
            return  # from_app drains when the exchange call returns
        with self._wake_lock:
            if self._wake_scheduled or self._loop is None:
                return
            self._wake_scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop closed while stopping
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        with self._wake_lock:
            self._wake_scheduled = False
        self._drain()

    def _targets(self, account: str) -> list[Session]:
        sessions = self._by_account[account]
        live = [s for s in sessions if s.is_logged_on]
        # nobody logged on: store the reports in sessions with a history, replayed on the
        # client's ResendRequest after its next Logon
        return live or [s for s in sessions if s.store.next_sender > 1]

    def _session_now(self) -> float:
        """Session time (POSIX seconds) from the acceptor transport's own clock."""
        return self._acceptor.clock() if self._acceptor is not None else time.time()

    def _drain(self) -> None:
        touched: dict[Session, None] = {}
        while self._pending:
            account, ev = self._pending.popleft()
            for s in self._targets(account):
                status = None
                if ev.kind is EventKind.CANCEL_REJECTED:
                    view = self.exchange.order(account, ev.client_order_id)
                    status = view.status if view is not None else None
                msg = report_for_event(ev, s.config.begin_string, status)
                if msg is not None:
                    s.send(msg, now=self._session_now())
                    touched[s] = None
        if self.market_data.subscriptions:
            for s in self.market_data.publish(self._session_now()):
                touched[s] = None
        if self._acceptor is not None:
            for s in touched:
                self._acceptor.flush(s)
