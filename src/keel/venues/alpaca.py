"""`AlpacaBroker`: the `Broker` protocol over Alpaca's Trading API, with the official SDK.

Orders, positions and the account go through ``alpaca-py``'s ``TradingClient``; fills and
order updates arrive on its ``TradingStream`` (``trade_updates``) in a background thread and
are handed out by :meth:`AlpacaBroker.poll_events`. Point it at Alpaca's paper API with your
own key and secret (the default base URL), or at keel's simulated exchange
(``http://HOST:PORT/alpaca``). Install with ``pip install keel[alpaca]``.

Error contract (the one every keel broker keeps, see :mod:`keel.execution.broker`):
unreachable venue, timeouts, HTTP 429 and 5xx raise ``TransientVenueError``; a 4xx refusal of
a new order raises ``OrderRejected`` (``reason_code`` ``DUPLICATE_ID``,
``INSUFFICIENT_BUYING_POWER`` or ``VENUE_REJECT``, with Alpaca's message); a cancel or replace
of an order that is done or unknown becomes a ``CANCEL_REJECTED`` event.

No fill is lost to a dropped stream: every update carries the order's cumulative filled
quantity and average price, and the broker reports each order's fills up to that cumulative
quantity exactly once (an update that skips ahead yields one fill for the gap, priced from the
averages; a stale one yields nothing). At every (re)connect of the stream the broker lists the
orders it still tracks as open and reconciles them the same way, and bumps
:attr:`AlpacaBroker.connection_epoch`. Only orders sent through this broker are reported (the
stream carries the whole account; a FIX route to the same account reports its own).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from keel.errors import OrderRejected, TransientVenueError, ValidationError, VenueError
from keel.types import ZERO, EventKind, Fill, Order, OrderEvent, OrderStatus, Side
from keel.venues.base import Account, OpenOrder
from keel.venues.rest import _FROM_STATUS

try:
    import requests
    from alpaca.common.exceptions import APIError
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, QueryOrderStatus
    from alpaca.trading.enums import TimeInForce as AlpacaTIF
    from alpaca.trading.requests import (
        GetOrdersRequest,
        LimitOrderRequest,
        MarketOrderRequest,
        ReplaceOrderRequest,
    )
    from alpaca.trading.stream import TradingStream
except ImportError:  # pragma: no cover - exercised only without the extra
    TradingClient = None  # type: ignore[assignment,misc]
    TradingStream = object  # type: ignore[assignment,misc]

PAPER_URL = "https://paper-api.alpaca.markets"
PRICE_PLACES = Decimal("1e-8")
_EVENT_KIND = {"new": EventKind.ACK, "canceled": EventKind.CANCELLED,
               "expired": EventKind.EXPIRED, "rejected": EventKind.REJECTED,
               "done_for_day": EventKind.EXPIRED, "replaced": EventKind.REPLACED,
               "order_cancel_rejected": EventKind.CANCEL_REJECTED,
               "order_replace_rejected": EventKind.CANCEL_REJECTED}


def _dec(value: Any, name: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except ArithmeticError:
        raise VenueError(f"Alpaca answered an unreadable {name}: {str(value)[:32]!r}",
                         venue="alpaca") from None
    if not d.is_finite():
        raise VenueError(f"Alpaca answered a non-finite {name}", venue="alpaca")
    return d


def _val(x: Any) -> str:
    """An SDK enum's wire value (``OrderStatus.FILLED`` -> ``"filled"``)."""
    return str(getattr(x, "value", x))


@dataclass
class _Tracked:
    """What the broker has reported of one order."""

    symbol: str
    side: Side
    qty: Decimal
    order_id: str = ""
    cum_qty: Decimal = ZERO
    notional: Decimal = ZERO  # sum of reported fill qty * price
    done: bool = False


class _Stream(TradingStream):  # type: ignore[misc,valid-type]
    """The SDK's stream, telling the broker when it has (re)connected."""

    def __init__(self, *args: Any, on_connect: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_connect = on_connect

    async def _start_ws(self) -> None:  # the SDK's (re)connect step; no public hook exists
        await super()._start_ws()
        self._on_connect()


class AlpacaBroker:
    """Broker over Alpaca's Trading API (``alpaca-py``).

    Args:
        api_key: ``APCA-API-KEY-ID``.
        secret_key: ``APCA-API-SECRET-KEY``.
        base_url: trading API root without ``/v2`` (default Alpaca's paper API).
        stream_url: trade-updates websocket (default: ``base_url`` with ``ws(s)://`` and
            ``/stream``, which is Alpaca's layout and keel's exchange's).
        stream: start the trade-updates stream (False: events only from reconciliation,
            :meth:`reconcile`).
        timeout_s: per-request timeout, seconds.
        reconnect_s: smallest wait before the stream reconnects, seconds (the SDK backs off
            from there).
        max_tracked: orders remembered; beyond it the oldest finished ones are forgotten
            (a late update of a forgotten order is ignored, it was reported in full).
    """

    name = "alpaca"

    def __init__(self, api_key: str, secret_key: str, base_url: str = PAPER_URL, *,
                 stream_url: str | None = None, stream: bool = True, timeout_s: float = 10.0,
                 reconnect_s: float = 1.0, max_tracked: int = 100_000) -> None:
        if TradingClient is None:
            raise VenueError("AlpacaBroker needs alpaca-py: pip install 'keel[alpaca]'",
                             venue="alpaca")
        for field, value in (("api_key", api_key), ("secret_key", secret_key)):
            if not isinstance(value, str) or not value:
                raise ValidationError(f"{field} must be a non-empty string", field=field)
        if not base_url.startswith(("http://", "https://")):
            raise ValidationError("base_url must start with http:// or https://",
                                  field="base_url", value=base_url[:64])
        self.base_url = base_url.rstrip("/")
        self.stream_url = stream_url or ("ws" + self.base_url[4:] + "/stream")
        self._client = TradingClient(api_key, secret_key, url_override=self.base_url)
        # the SDK's session has no timeout; a broker must not hang on a silent venue
        adapter = _TimeoutAdapter(timeout_s)
        self._client._session.mount("http://", adapter)
        self._client._session.mount("https://", adapter)
        self._lock = threading.Lock()
        self._orders: dict[str, _Tracked] = {}
        self._by_id: dict[str, str] = {}  # Alpaca order id -> client order id
        self._replacing: dict[str, str] = {}  # original client order id -> new one
        self._events: list[OrderEvent] = []
        self._done: deque[str] = deque()  # finished orders, oldest first
        self._max_tracked = max_tracked
        self._connects = 0
        self._reconcile_due = False
        #: bumped at every reconnect of the stream (the order manager then reconciles)
        self.connection_epoch = 0
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        if stream:
            self._stream = _Stream(api_key, secret_key, url_override=self.stream_url,
                                   on_connect=self._connected)
            self._stream._reconnect_min_backoff = reconnect_s
            self._stream.subscribe_trade_updates(self._on_update)
            self._thread = threading.Thread(target=self._stream.run, daemon=True,
                                            name="alpaca-stream")
            self._thread.start()

    # ------------------------------------------------------------------ lifecycle

    def wait_connected(self, timeout_s: float = 10.0) -> bool:
        """Wait until the stream has connected at least once; True if it has."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._connects > 0:
                return True
            time.sleep(0.02)
        return False

    @property
    def stream_connects(self) -> int:
        """How many times the stream has connected (1 + reconnects)."""
        return self._connects

    def close(self) -> None:
        """Stop the stream thread and the HTTP session."""
        s = self._stream
        if s is not None and s._loop is not None and s._loop.is_running():
            asyncio.run_coroutine_threadsafe(s.stop_ws(), s._loop).result(timeout=10)
            # closing the socket wakes the SDK's receive loop at once (else up to 5 s)
            asyncio.run_coroutine_threadsafe(s.close(), s._loop).result(timeout=10)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._client._session.close()

    def _connected(self) -> None:
        with self._lock:
            self._connects += 1
            if self._connects > 1:
                self.connection_epoch += 1
            self._reconcile_due = True

    # ------------------------------------------------------------------ transport

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except APIError as exc:
            status = exc.status_code
            if status is not None and (status == 429 or status >= 500):
                raise TransientVenueError(f"Alpaca answered {status} to {what}",
                                          venue=self.name) from None
            raise
        except requests.RequestException as exc:
            raise TransientVenueError(f"Alpaca unreachable ({what}): {exc}"[:200],
                                      venue=self.name) from None
        except (ValueError, TypeError) as exc:  # the SDK could not read the answer
            raise VenueError(f"unreadable Alpaca answer to {what}: {exc}"[:200],
                             venue=self.name) from None

    def _query(self, what: str, fn: Any, *args: Any) -> Any:
        """A query: a refusal (4xx) is a ``VenueError`` naming Alpaca's message."""
        try:
            return self._call(what, fn, *args)
        except APIError as exc:
            raise VenueError(f"Alpaca refused {what}: {self._message(exc)}",
                             venue=self.name, status=exc.status_code) from None

    @staticmethod
    def _message(exc: APIError) -> str:
        try:
            return str(exc.message)[:200]
        except (ValueError, KeyError, TypeError, AttributeError):
            return str(exc)[:200]

    # ------------------------------------------------------------------ orders

    def submit(self, order: Order) -> None:
        for name, value in (("qty", order.qty), ("limit_price", order.limit_price)):
            # the SDK sends numbers as floats: refuse what a float would change
            if value is not None and Decimal(repr(float(value))) != value:
                raise OrderRejected(f"{name} {value} does not survive the SDK's float",
                                    reason_code="INVALID_FIELD", field=name,
                                    symbol=order.symbol, order=order.client_order_id)
        common: dict[str, Any] = {
            "symbol": order.symbol, "qty": float(order.qty),
            "side": OrderSide.BUY if order.side is Side.BUY else OrderSide.SELL,
            "time_in_force": AlpacaTIF(order.tif.value.lower()),
            "client_order_id": order.client_order_id}
        if order.limit_price is not None:
            req: Any = LimitOrderRequest(limit_price=float(order.limit_price), **common)
        else:
            req = MarketOrderRequest(**common)
        with self._lock:  # track first: the stream may report before the answer arrives
            self._orders.setdefault(order.client_order_id,
                                    _Tracked(order.symbol, order.side, order.qty))
        try:
            placed = self._call("submit", self._client.submit_order, req)
        except APIError as exc:
            with self._lock:
                self._orders.pop(order.client_order_id, None)
            msg = self._message(exc)
            code = ("DUPLICATE_ID" if "unique" in msg else "INSUFFICIENT_BUYING_POWER"
                    if exc.status_code == 403 else "VENUE_REJECT")
            raise OrderRejected(msg, reason_code=code, symbol=order.symbol,
                                order=order.client_order_id) from None
        except TransientVenueError:
            raise  # the order may have arrived: keep tracking it (lookup tells)
        with self._lock:
            self._by_id[str(placed.id)] = order.client_order_id
            self._orders[order.client_order_id].order_id = str(placed.id)

    def _order_raw(self, client_order_id: str) -> Any | None:
        try:
            return self._call("lookup", self._client.get_order_by_client_id, client_order_id)
        except APIError as exc:
            if exc.status_code == 404:
                return None
            raise VenueError(self._message(exc), venue=self.name) from None

    def lookup(self, client_order_id: str) -> dict[str, Any] | None:
        """Alpaca's record of an order (a dict), or None if it never arrived."""
        o = self._order_raw(client_order_id)
        return None if o is None else o.model_dump(mode="json")

    def order_status(self, client_order_id: str) -> OpenOrder | None:
        """The venue's view of one order (open or done), or None if it does not know it."""
        o = self._order_raw(client_order_id)
        return None if o is None else self._open_order(o)

    def _open_order(self, o: Any) -> OpenOrder:
        status = _FROM_STATUS.get(_val(o.status))
        if status is None:  # pending_cancel, replaced, ...: still the venue's to finish
            status = OrderStatus.ACKNOWLEDGED
        return OpenOrder(o.client_order_id, str(o.symbol), status, _dec(o.qty, "qty"),
                         _dec(o.filled_qty or 0, "filled_qty"), str(o.id))

    def _reject_request(self, client_order_id: str, reason: str, request_id: str,
                        response_to: str, status: Any = None) -> None:
        extra: dict[str, Any] = {"request_id": request_id, "response_to": response_to}
        st = None if status is None else _FROM_STATUS.get(_val(status))
        if st is not None:
            extra["status"] = st.value
        with self._lock:
            self._events.append(OrderEvent(EventKind.CANCEL_REJECTED, client_order_id,
                                           datetime.now(UTC), reason=reason, extra=extra))

    def _working(self, client_order_id: str, request_id: str, response_to: str) -> Any | None:
        o = self._order_raw(client_order_id)
        if o is None:
            self._reject_request(client_order_id, "unknown order", request_id, response_to)
            return None
        st = _FROM_STATUS.get(_val(o.status))
        if st is not None and st.is_terminal:
            self._reject_request(client_order_id, f"order is not open: {_val(o.status)}",
                                 request_id, response_to, o.status)
            return None
        return o

    def cancel(self, client_order_id: str) -> None:
        o = self._working(client_order_id, client_order_id, "cancel")
        if o is None:
            return
        try:
            self._call("cancel", self._client.cancel_order_by_id, str(o.id))
        except APIError as exc:  # done between the lookup and the cancel
            after = self._order_raw(client_order_id)
            self._reject_request(client_order_id, self._message(exc), client_order_id,
                                 "cancel", None if after is None else after.status)

    def replace(self, client_order_id: str, new_order: Order) -> None:
        new_id = new_order.client_order_id
        if new_order.qty != new_order.qty.to_integral_value():
            self._reject_request(client_order_id, "Alpaca replaces whole-share quantities only",
                                 new_id, "replace")
            return
        o = self._working(client_order_id, new_id, "replace")
        if o is None:
            return
        req = ReplaceOrderRequest(
            qty=int(new_order.qty), client_order_id=new_id,
            limit_price=None if new_order.limit_price is None else float(new_order.limit_price))
        with self._lock:
            self._replacing[client_order_id] = new_id
        try:
            placed = self._call("replace", self._client.replace_order_by_id, str(o.id), req)
        except APIError as exc:
            with self._lock:
                self._replacing.pop(client_order_id, None)
            self._reject_request(client_order_id, self._message(exc), new_id, "replace")
            return
        with self._lock:
            old = self._orders.get(client_order_id)
            self._moved(client_order_id, new_id, str(placed.id), new_order.qty, old)

    def _moved(self, old_id: str, new_id: str, alpaca_id: str, qty: Decimal,
               old: _Tracked | None) -> None:
        """Carry the reported fills of ``old_id`` over to ``new_id`` (caller holds the lock)."""
        if new_id in self._orders or old is None:
            return
        self._orders[new_id] = _Tracked(old.symbol, old.side, qty, alpaca_id, old.cum_qty,
                                        old.notional)
        self._by_id[alpaca_id] = new_id

    # ------------------------------------------------------------------ queries

    def open_orders(self) -> list[OpenOrder]:
        req = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500)
        return [self._open_order(o) for o in self._query("list orders",
                                                          self._client.get_orders, req)]

    def positions(self) -> dict[str, Decimal]:
        return {p.symbol: _dec(p.qty, "qty")
                for p in self._query("positions", self._client.get_all_positions)}

    def account(self) -> Account:
        a = self._query("account", self._client.get_account)
        return Account(cash=_dec(a.cash, "cash"), equity=_dec(a.equity, "equity"),
                       buying_power=_dec(a.buying_power, "buying_power"))

    # ------------------------------------------------------------------ events

    async def _on_update(self, update: Any) -> None:
        """Stream handler (the stream's thread): turn a trade update into keel events."""
        with self._lock:
            self._apply(_val(update.event), update.order, update.timestamp,
                        update.execution_id, update.price, update.qty)

    def _apply(self, event: str, o: Any, ts: datetime, execution_id: Any = None,
               price: Any = None, qty: Any = None) -> None:
        """Report what ``o`` (an SDK order, as of ``event``) adds (caller holds the lock)."""
        cid = o.client_order_id
        if event == "replaced":
            new_id = self._replacing.pop(cid, None)
            old = self._orders.pop(cid, None)
            if old is None:
                return
            extra = {} if new_id is None else {"new_client_order_id": new_id}
            self._events.append(OrderEvent(EventKind.REPLACED, cid, ts, cum_qty=old.cum_qty,
                                           leaves_qty=max(ZERO, old.qty - old.cum_qty),
                                           venue_order_id=str(o.id), extra=extra))
            if new_id is not None:
                self._moved(cid, new_id, str(o.id), old.qty, old)
            return
        t = self._orders.get(cid)
        if t is None or t.done:
            return  # not sent through this broker, or already finished
        t.order_id = t.order_id or str(o.id)
        cum = _dec(o.filled_qty or 0, "filled_qty")
        qty_total = _dec(o.qty, "qty") if o.qty is not None else t.qty
        if cum > t.cum_qty:
            avg = _dec(o.filled_avg_price, "filled_avg_price") if o.filled_avg_price else None
            gap = cum - t.cum_qty
            if qty is not None and price is not None and _dec(qty, "qty") == gap:
                px, exec_id = _dec(price, "price"), str(execution_id or f"{o.id}:{cum}")
            elif avg is not None:
                px = ((cum * avg - t.notional) / gap).quantize(PRICE_PLACES)
                exec_id = f"{o.id}:cum:{cum}"  # one fill for what the stream missed
            else:
                raise VenueError("Alpaca reported a fill without a price", venue=self.name,
                                 order=cid)
            t.cum_qty, t.notional = cum, t.notional + gap * px
            fill = Fill(exec_id, cid, t.symbol, t.side, gap, px, ts, venue=self.name)
            self._events.append(OrderEvent(EventKind.FILL, cid, ts, fill=fill, cum_qty=cum,
                                           leaves_qty=max(ZERO, qty_total - cum),
                                           venue_order_id=str(o.id),
                                           extra={"exec_id": exec_id}))
        status = _val(o.status)
        kind = _EVENT_KIND.get(event) if event not in ("fill", "partial_fill") else None
        if kind is None and status in ("canceled", "expired", "rejected") and event not in (
                "order_cancel_rejected", "order_replace_rejected"):
            kind = _EVENT_KIND[status]  # a reconciled order that ended while we were away
        if kind is EventKind.ACK and cum > 0:
            kind = None  # the fill says more than the ack
        if status == "filled" or kind in (EventKind.CANCELLED, EventKind.EXPIRED,
                                          EventKind.REJECTED):
            t.done = True
            self._done.append(cid)
            while len(self._orders) > self._max_tracked and self._done:
                gone = self._orders.pop(self._done.popleft(), None)
                if gone is not None:
                    self._by_id.pop(gone.order_id, None)
        if kind is not None:
            extra = {"exec_id": f"{o.id}:{event}:{status}:{cum}"}
            if kind is EventKind.CANCEL_REJECTED:
                extra.update(request_id=cid, response_to="cancel")
            self._events.append(OrderEvent(kind, cid, ts, cum_qty=cum,
                                           leaves_qty=max(ZERO, qty_total - cum)
                                           if kind is EventKind.ACK else ZERO,
                                           reason=f"alpaca {event}", venue_order_id=str(o.id),
                                           extra=extra))

    def reconcile(self) -> int:
        """List the orders this broker still tracks as open and report what they added
        (fills the stream missed, ends); returns how many orders were checked."""
        with self._lock:
            self._reconcile_due = False
            live = {cid: t.order_id for cid, t in self._orders.items() if not t.done}
        if not live:
            return 0
        req = GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500)
        listed = {o.client_order_id: o for o in self._query("list orders",
                                                             self._client.get_orders, req)}
        now = datetime.now(UTC)
        for cid in live:
            o = listed.get(cid) or self._order_raw(cid)  # beyond the listing's 500
            if o is None:
                continue  # never arrived: the order manager's lookup decides
            with self._lock:
                self._apply("reconcile", o, now)
        return len(live)

    def poll_events(self) -> list[OrderEvent]:
        """Events since the last call, in arrival order (reconciles first after a
        (re)connect of the stream)."""
        if self._reconcile_due:
            self.reconcile()
        with self._lock:
            out, self._events = self._events, []
        return out


if TradingClient is not None:
    class _TimeoutAdapter(requests.adapters.HTTPAdapter):
        """An HTTP adapter with a default timeout (requests has none)."""

        def __init__(self, timeout_s: float) -> None:
            super().__init__()
            self.timeout_s = timeout_s

        def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = self.timeout_s
            return super().send(request, **kwargs)
