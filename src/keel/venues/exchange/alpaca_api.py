"""Alpaca's Trading API shapes in front of a :class:`SimulatedExchange` (FastAPI + websocket).

Served so that the unmodified ``alpaca-py`` SDK (``TradingClient``, ``TradingStream``) trades
with keel's exchange. keel's own REST front end mounts this app at ``/alpaca`` (see
:func:`keel.venues.exchange.rest_api.create_rest_app`), so a client's base URL is
``http://HOST:PORT/alpaca`` and the trade-updates stream is ``ws://HOST:PORT/alpaca/stream``.

Served (Alpaca's field names, status values and error bodies ``{"code", "message"}``):

* ``POST /v2/orders`` (market and limit; day/gtc/ioc/fok; ``client_order_id`` optional, a
  UUID is generated when missing), ``GET /v2/orders`` (``status``, ``limit``, ``direction``,
  ``symbols``), ``GET /v2/orders/{id}``, ``GET /v2/orders:by_client_order_id``,
  ``PATCH /v2/orders/{id}`` (replace), ``DELETE /v2/orders/{id}``, ``DELETE /v2/orders``
  (207 multi-status);
* ``GET /v2/positions``, ``GET /v2/positions/{symbol}``, ``GET /v2/account``;
* ``/stream``: ``authenticate`` (or ``auth``) then ``listen`` to ``trade_updates``; events
  ``new``, ``fill``, ``partial_fill``, ``canceled``, ``replaced``, ``rejected``, ``expired``,
  ``order_cancel_rejected``.

Refusals: 401 (code 40110000) for a missing or unknown ``APCA-API-KEY-ID`` or a wrong
``APCA-API-SECRET-KEY`` (checked when secrets are configured); 403 (40310000) for insufficient
buying power (a buy's notional at its limit, or at the mid/last price for a market order, plus
the open buys must not exceed cash); 404 (40410000) for an unknown order or position; 422
(42210000) for anything the request or the matching engine refuses (unknown symbol, bad
quantity, an order that is no longer cancelable, an unsupported field value).

Ids: Alpaca ids are UUIDs; an order's id is ``uuid5`` of the exchange's venue order id and an
execution's id is ``uuid5`` of its exec id, so they are stable for the exchange's lifetime.
"""

# No `from __future__ import annotations`: FastAPI must see the local dependency aliases.
import asyncio
import hmac
import json
import threading
import uuid
from collections import OrderedDict
from datetime import datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from keel.clock import Clock
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
    check_text,
)
from keel.venues.exchange.core import OrderView, SimulatedExchange

#: namespace of the UUIDs derived from venue order ids and exec ids
ID_NAMESPACE = uuid.UUID("5b0e9a54-3f4e-4a43-9d51-6b2f1c0a7e11")
MAX_PRICE = Decimal("1e9")
PRICE_QUANTUM = Decimal("1e-8")

ALPACA_STATUS = {OrderStatus.NEW: "pending_new", OrderStatus.PENDING: "pending_new",
                 OrderStatus.ACKNOWLEDGED: "new",
                 OrderStatus.PARTIALLY_FILLED: "partially_filled",
                 OrderStatus.FILLED: "filled", OrderStatus.CANCELLED: "canceled",
                 OrderStatus.REJECTED: "rejected", OrderStatus.EXPIRED: "expired"}
_EVENT = {EventKind.ACK: "new", EventKind.CANCELLED: "canceled", EventKind.REPLACED: "replaced",
          EventKind.REJECTED: "rejected", EventKind.EXPIRED: "expired",
          EventKind.CANCEL_REJECTED: "order_cancel_rejected"}
_ERROR_CODE = {401: 40110000, 403: 40310000, 404: 40410000, 422: 42210000}
_ORDER_FIELDS = {"symbol", "qty", "side", "type", "time_in_force", "limit_price",
                 "client_order_id", "order_class", "extended_hours", "notional", "stop_price",
                 "trail_price", "trail_percent", "take_profit", "stop_loss", "position_intent"}


class AlpacaError(Exception):
    """An Alpaca error answer: HTTP ``status`` with body ``{"code", "message"}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message[:200]


def order_id(venue_order_id: str) -> str:
    """The Alpaca (UUID) id of an exchange order."""
    return str(uuid.uuid5(ID_NAMESPACE, venue_order_id))


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def _number(value: Any, name: str) -> Decimal:
    """A positive finite Decimal from a JSON string or number (never a boolean)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float) or (
            isinstance(value, str) and "_" in value):
        raise AlpacaError(422, f"{name} must be a number, got {str(value)[:32]!r}")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise AlpacaError(422, f"{name} must be a number, got {str(value)[:32]!r}") from None
    if not d.is_finite() or d <= 0:
        raise AlpacaError(422, f"{name} must be a positive number, got {str(value)[:32]!r}")
    return d


def _limit_price(value: Any) -> Decimal:
    """A limit price for a new or replaced order: positive, at most ``MAX_PRICE``, at most 8
    decimal places (one check for submit and replace)."""
    limit = _number(value, "limit_price")
    if limit > MAX_PRICE or limit != limit.quantize(PRICE_QUANTUM, ROUND_DOWN):
        raise AlpacaError(422, f"limit_price must be at most {MAX_PRICE} with at most 8 "
                          "decimal places")
    return limit


class AlpacaFront:
    """The Alpaca-shaped front end of one exchange: REST app, stream hub, id index.

    Args:
        exchange: the venue.
        clock: stamps orders and answers.
        api_keys: ``APCA-API-KEY-ID`` value -> account name.
        api_secrets: ``APCA-API-KEY-ID`` value -> ``APCA-API-SECRET-KEY`` value; None checks
            keys only (the simulated exchange's default, like keel's own REST front end).
        max_ids: how many order ids the UUID -> order index keeps (older ones are found by a
            scan of the account's orders).
        max_queue: trade updates queued per stream connection before that (slow) client is
            disconnected.
    """

    def __init__(self, exchange: SimulatedExchange, clock: Clock, api_keys: dict[str, str],
                 api_secrets: dict[str, str] | None = None, max_ids: int = 100_000,
                 max_queue: int = 10_000) -> None:
        self.exchange = exchange
        self.clock = clock
        self.api_keys = dict(api_keys)
        self.api_secrets = None if api_secrets is None else dict(api_secrets)
        self._ids: OrderedDict[str, tuple[str, str, datetime]] = OrderedDict()
        self._max_ids = max_ids
        self.max_queue = max_queue
        self._lock = threading.Lock()
        # stream connections: (account, loop, queue); messages are JSON text, None closes
        self._streams: list[tuple[str, asyncio.AbstractEventLoop, asyncio.Queue[str | None]]] = []
        exchange.subscribe(self._on_event)
        self.app = self._build()

    # ------------------------------------------------------------------ auth and ids

    def authorise(self, key: str | None, secret: str | None) -> str:
        """The account of ``key`` (checking ``secret`` when secrets are configured)."""
        if key is None or key not in self.api_keys:
            raise AlpacaError(401, "request is not authorized")
        if self.api_secrets is not None:
            want = self.api_secrets.get(key, "")
            if secret is None or not hmac.compare_digest(want.encode(), secret.encode()):
                raise AlpacaError(401, "request is not authorized")
        return self.api_keys[key]

    def _remember(self, acct: str, v: OrderView) -> tuple[str, datetime]:
        oid = order_id(v.venue_order_id)
        with self._lock:
            rec = self._ids.get(oid)
            if rec is None:
                rec = (acct, v.venue_order_id, self.clock.now())
                self._ids[oid] = rec
                if len(self._ids) > self._max_ids:
                    self._ids.popitem(last=False)
            return oid, rec[2]

    def find(self, acct: str, oid: str) -> OrderView:
        with self._lock:
            rec = self._ids.get(oid)
        v = None
        if rec is not None and rec[0] == acct:
            v = self.exchange.order_by_venue_id(acct, rec[1])
        if v is None:
            v = next((o for o in self.exchange.orders(acct)
                      if order_id(o.venue_order_id) == oid), None)
        if v is None:
            raise AlpacaError(404, "order not found")
        return v

    # ------------------------------------------------------------------ shapes

    def order_json(self, acct: str, v: OrderView, *, cum: Decimal | None = None,
                   avg: Decimal | None = None, status: str | None = None) -> dict[str, Any]:
        """Alpaca's order object for ``v`` (``cum``/``avg``/``status`` as of an event)."""
        oid, created = self._remember(acct, v)
        cum = v.cum_qty if cum is None else cum
        avg = v.avg_price if avg is None else avg
        status = status or ALPACA_STATUS[v.status]
        now = _iso(self.clock.now())
        return {
            "id": oid, "client_order_id": v.client_order_id, "created_at": _iso(created),
            "updated_at": now, "submitted_at": _iso(created),
            "filled_at": now if status == "filled" else None,
            "expired_at": now if status == "expired" else None,
            "canceled_at": now if status == "canceled" else None,
            "failed_at": now if status == "rejected" else None,
            "replaced_at": None, "replaced_by": None, "replaces": None,
            "asset_id": str(uuid.uuid5(ID_NAMESPACE, "asset:" + v.symbol)),
            "symbol": v.symbol, "asset_class": "us_equity", "notional": None,
            "qty": str(v.qty), "filled_qty": str(cum),
            "filled_avg_price": str(avg) if cum > 0 else None,
            "order_class": "simple", "order_type": v.order_type.value.lower(),
            "type": v.order_type.value.lower(), "side": v.side.value.lower(),
            "time_in_force": v.tif.value.lower(),
            "limit_price": None if v.limit_price is None else str(v.limit_price),
            "stop_price": None, "status": status, "extended_hours": False, "legs": None,
            "trail_percent": None, "trail_price": None, "hwm": None,
        }

    def position_json(self, acct: str, symbol: str, qty: Decimal) -> dict[str, Any]:
        px = self.exchange.mid(symbol)
        value = None if px is None else str(qty * px)
        return {"asset_id": str(uuid.uuid5(ID_NAMESPACE, "asset:" + symbol)),
                "symbol": symbol, "exchange": "OTC", "asset_class": "us_equity",
                "asset_marginable": False, "qty": str(qty), "qty_available": str(qty),
                "side": "long" if qty > 0 else "short",
                # keel's exchange books positions, not lots: no entry price or cost basis
                "avg_entry_price": "0", "cost_basis": "0", "market_value": value,
                "current_price": None if px is None else str(px)}

    def account_json(self, acct: str) -> dict[str, Any]:
        a = self.exchange.account(acct)
        bp = a.cash - self._open_buy_notional(acct)
        return {"id": str(uuid.uuid5(ID_NAMESPACE, "account:" + acct)),
                "account_number": acct, "status": "ACTIVE", "currency": "USD",
                "cash": str(a.cash), "equity": str(a.equity), "portfolio_value": str(a.equity),
                "buying_power": str(bp), "regt_buying_power": str(bp),
                "non_marginable_buying_power": str(bp), "multiplier": "1",
                "pattern_day_trader": False, "trading_blocked": False,
                "transfers_blocked": False, "account_blocked": False,
                "trade_suspended_by_user": False, "shorting_enabled": True}

    # ------------------------------------------------------------------ orders

    def _reference(self, symbol: str, limit: Decimal | None) -> Decimal | None:
        if limit is not None:
            return limit
        try:
            return self.exchange.mid(symbol)
        except ValidationError:  # an unknown symbol: the engine refuses it with its reason
            return None

    def _open_buy_notional(self, acct: str) -> Decimal:
        total = ZERO
        for v in self.exchange.orders(acct, open_only=True):
            if v.side is Side.BUY:
                px = self._reference(v.symbol, v.limit_price)
                total += v.leaves_qty * (px or ZERO)
        return total

    def submit(self, acct: str, body: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(body) - _ORDER_FIELDS)
        if unknown:
            raise AlpacaError(422, f"unknown field {unknown[0]!r}")
        for name, ok in (("order_class", (None, "simple", "")), ("extended_hours", (None, False)),
                         ("notional", (None,)), ("stop_price", (None,)),
                         ("trail_price", (None,)), ("trail_percent", (None,)),
                         ("take_profit", (None,)), ("stop_loss", (None,))):
            if body.get(name) not in ok:
                raise AlpacaError(422, f"{name} is not supported by keel's exchange")
        symbol, side = body.get("symbol"), body.get("side")
        kind, tif = body.get("type", "market"), body.get("time_in_force", "day")
        if not isinstance(symbol, str) or not 1 <= len(symbol) <= 32:
            raise AlpacaError(422, "symbol is required")
        if side not in ("buy", "sell"):
            raise AlpacaError(422, f"invalid side {str(side)[:16]!r}")
        if kind not in ("market", "limit"):
            raise AlpacaError(422, f"invalid order type {str(kind)[:16]!r}")
        if tif not in ("day", "gtc", "ioc", "fok"):
            raise AlpacaError(422, f"invalid time_in_force {str(tif)[:16]!r}")
        qty = _number(body.get("qty"), "qty")
        why = self.exchange.engine.qty_problem(qty)
        if why is not None:
            raise AlpacaError(422, why)
        limit = None
        if kind == "limit":
            if body.get("limit_price") is None:
                raise AlpacaError(422, "limit_price is required for a limit order")
            limit = _limit_price(body["limit_price"])
        elif body.get("limit_price") is not None:
            raise AlpacaError(422, "limit_price is only for limit orders")
        cid = body.get("client_order_id") or str(uuid.uuid4())
        try:
            if not isinstance(cid, str) or len(cid) > 128:
                raise AlpacaError(422, "client_order_id must be a string of at most 128 chars")
            check_text(cid, "client_order_id")
            order = Order(client_order_id=cid, symbol=symbol, side=Side(side.upper()), qty=qty,
                          created_at=self.clock.now(), order_type=OrderType(kind.upper()),
                          limit_price=limit, tif=TimeInForce(tif.upper()))
        except ValidationError as exc:
            raise AlpacaError(422, str(exc)) from None
        with self.exchange._lock:  # the buying-power check and the submit are one step
            if self.exchange.order(acct, cid) is not None:
                raise AlpacaError(422, "client_order_id must be unique")
            if order.side is Side.BUY:
                px = self._reference(symbol, limit)
                need = qty * px if px is not None else ZERO
                have = self.exchange.cash(acct) - self._open_buy_notional(acct)
                if need > have:
                    raise AlpacaError(403, "insufficient buying power")
            events = self.exchange.submit(acct, order, self.clock.now())
            view = self.exchange.order(acct, cid)
        if view is None:  # refused before the engine registered it
            raise AlpacaError(422, events[0].reason if events else "order rejected")
        return self.order_json(acct, view)

    def replace(self, acct: str, oid: str, body: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(body) - {"qty", "limit_price", "client_order_id", "time_in_force",
                                      "stop_price", "trail"})
        if unknown:
            raise AlpacaError(422, f"unknown field {unknown[0]!r}")
        if body.get("stop_price") is not None or body.get("trail") is not None:
            raise AlpacaError(422, "stop_price and trail are not supported by keel's exchange")
        v = self.find(acct, oid)
        if not v.status.is_open:
            raise AlpacaError(422, f"order is not open: {ALPACA_STATUS[v.status]}")
        qty = v.qty if body.get("qty") is None else _number(body["qty"], "qty")
        px = v.limit_price if body.get("limit_price") is None else _limit_price(
            body["limit_price"])
        tif = v.tif if body.get("time_in_force") is None else body["time_in_force"]
        cid = body.get("client_order_id") or str(uuid.uuid4())
        try:
            check_text(cid, "client_order_id")
            new = Order(cid, v.symbol, v.side, qty, self.clock.now(), order_type=v.order_type,
                        limit_price=px, tif=TimeInForce(str(tif).upper()))
        except (ValidationError, ValueError) as exc:
            raise AlpacaError(422, str(exc)) from None
        events = self.exchange.replace(acct, v.client_order_id, new, self.clock.now())
        if events and events[0].kind is EventKind.CANCEL_REJECTED:
            raise AlpacaError(422, events[0].reason)
        replaced = self.exchange.order(acct, cid)
        if replaced is None:
            raise AlpacaError(422, events[0].reason if events else "replace rejected")
        return self.order_json(acct, replaced)

    def cancel(self, acct: str, oid: str) -> None:
        v = self.find(acct, oid)
        if not v.status.is_open:
            raise AlpacaError(422, f"order is already in \"{ALPACA_STATUS[v.status]}\" state")
        events = self.exchange.cancel(acct, v.client_order_id, self.clock.now())
        if events and events[0].kind is EventKind.CANCEL_REJECTED:
            raise AlpacaError(422, events[0].reason)

    # ------------------------------------------------------------------ stream

    def _on_event(self, acct: str, seq: int, ev: OrderEvent) -> None:
        """Exchange listener (called under the exchange's lock): queue a trade update."""
        with self._lock:
            targets = [(lp, q) for a, lp, q in self._streams if a == acct]
        if not targets:
            return
        msg = self.trade_update(acct, ev)
        if msg is None:
            return
        text = json.dumps(msg)
        for lp, q in targets:
            try:
                lp.call_soon_threadsafe(self._offer, q, text)
            except RuntimeError:  # that connection's loop is gone
                continue

    def trade_update(self, acct: str, ev: OrderEvent) -> dict[str, Any] | None:
        """Alpaca's ``trade_updates`` message for ``ev`` (None for an order the exchange
        never registered: those were refused synchronously by the HTTP answer)."""
        v = self.exchange.order(acct, ev.client_order_id)
        if v is None and ev.venue_order_id:
            v = self.exchange.order_by_venue_id(acct, ev.venue_order_id)
        if v is None:
            return None
        avg = ev.extra.get("avg_px")
        data: dict[str, Any] = {"timestamp": _iso(ev.timestamp)}
        status: str | None
        if ev.kind is EventKind.FILL and ev.fill is not None:
            done = ev.leaves_qty == 0
            event, status = ("fill", "filled") if done else ("partial_fill", "partially_filled")
            pos = self.exchange.positions(acct).get(v.symbol, ZERO)
            data.update(execution_id=str(uuid.uuid5(ID_NAMESPACE, ev.fill.exec_id)),
                        price=str(ev.fill.price), qty=str(ev.fill.qty), position_qty=str(pos))
        else:
            event = _EVENT[ev.kind]
            status = None if ev.kind is EventKind.CANCEL_REJECTED else event
            if ev.kind is EventKind.ACK and ev.cum_qty > 0:
                status = "partially_filled"
        order = self.order_json(acct, v, cum=ev.cum_qty,
                                avg=avg if isinstance(avg, Decimal) else None, status=status)
        if ev.kind is EventKind.REPLACED:  # names the original order (the id is kept)
            order["client_order_id"] = ev.client_order_id
        data.update(event=event, order=order)
        return {"stream": "trade_updates", "data": data}

    def _offer(self, q: asyncio.Queue[str | None], text: str) -> None:
        """Queue ``text`` for one connection (on its loop); a client ``max_queue`` messages
        behind is disconnected instead (it reconciles by listing orders, as on Alpaca)."""
        if q.qsize() < self.max_queue:
            q.put_nowait(text)
        elif q.qsize() == self.max_queue:
            q.put_nowait(None)

    def drop_streams(self) -> int:
        """Close every stream connection (an outage drill); returns how many were closed."""
        with self._lock:
            streams = list(self._streams)
        for _, lp, q in streams:
            try:
                lp.call_soon_threadsafe(q.put_nowait, None)
            except RuntimeError:
                continue
        return len(streams)

    async def stream(self, ws: WebSocket) -> None:
        """Alpaca's trading stream: authenticate, listen to ``trade_updates``, receive."""
        await ws.accept()
        acct: str | None = None
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        entry: tuple[str, asyncio.AbstractEventLoop, asyncio.Queue[str | None]] | None = None

        async def writer() -> None:
            while (text := await queue.get()) is not None:
                await ws.send_text(text)
            await ws.close(code=1012)  # dropped on purpose: "service restart"

        task: asyncio.Task[None] | None = None
        try:
            while True:
                frame = await ws.receive()
                if frame["type"] == "websocket.disconnect":
                    break
                raw = frame.get("text") or (frame.get("bytes") or b"").decode("utf-8", "replace")
                try:
                    msg = json.loads(raw)
                    if not isinstance(msg, dict):
                        raise ValueError("not an object")
                except ValueError:
                    await ws.send_text(json.dumps({"stream": "error",
                                                   "data": {"error_message": "invalid json"}}))
                    continue
                action = msg.get("action")
                data: dict[str, Any] = msg["data"] if isinstance(msg.get("data"), dict) else {}
                if action in ("authenticate", "auth"):
                    key = msg.get("key") or data.get("key_id")
                    secret = msg.get("secret") or data.get("secret_key")
                    try:
                        acct = self.authorise(key, secret)
                        status = "authorized"
                    except AlpacaError:
                        status = "unauthorized"
                    await ws.send_text(json.dumps({"stream": "authorization", "data": {
                        "action": "authenticate", "status": status}}))
                    if acct is None:
                        await ws.close(code=1008)
                        return
                elif action == "listen" and acct is not None:
                    streams = [s for s in data.get("streams", []) if s == "trade_updates"]
                    await ws.send_text(json.dumps({"stream": "listening",
                                                   "data": {"streams": streams}}))
                    if streams and entry is None:
                        entry = (acct, asyncio.get_running_loop(), queue)
                        with self._lock:
                            self._streams.append(entry)
                        task = asyncio.create_task(writer())
                else:
                    await ws.send_text(json.dumps({"stream": "error", "data": {
                        "error_message": "authenticate first" if acct is None
                        else f"unknown action {str(action)[:16]!r}"}}))
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            if entry is not None:
                with self._lock:
                    if entry in self._streams:
                        self._streams.remove(entry)
            if task is not None:
                task.cancel()

    # ------------------------------------------------------------------ app

    def _build(self) -> FastAPI:
        app = FastAPI(title="keel simulated exchange (Alpaca shapes)", version="1")
        front = self

        def err(status: int, message: str) -> JSONResponse:
            return JSONResponse({"code": _ERROR_CODE.get(status, status * 100000),
                                 "message": message[:200]}, status_code=status)

        @app.exception_handler(AlpacaError)
        async def alpaca_error(request: Request, exc: AlpacaError) -> JSONResponse:
            return err(exc.status, exc.message)

        @app.exception_handler(StarletteHTTPException)
        async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
            return err(exc.status_code, str(exc.detail))

        @app.exception_handler(RequestValidationError)
        async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
            first = exc.errors()[0] if exc.errors() else {}
            where = ".".join(str(p) for p in first.get("loc", ()))
            return err(422, f"{where}: {first.get('msg', 'invalid request')}")

        def account(apca_api_key_id: Annotated[str | None, Header()] = None,
                    apca_api_secret_key: Annotated[str | None, Header()] = None) -> str:
            return front.authorise(apca_api_key_id, apca_api_secret_key)

        Acct = Annotated[str, Depends(account)]

        async def body_of(request: Request) -> dict[str, Any]:
            try:
                body = await request.json()
            except ValueError:
                raise AlpacaError(422, "request body is not JSON") from None
            if not isinstance(body, dict):
                raise AlpacaError(422, "request body must be a JSON object")
            return body

        @app.post("/v2/orders")
        async def submit(request: Request, acct: Acct) -> dict[str, Any]:
            return front.submit(acct, await body_of(request))

        @app.get("/v2/orders")
        def list_orders(acct: Acct, status: str = "open", limit: int = Query(50, ge=1, le=500),
                        direction: str = "desc", symbols: str | None = None,
                        nested: bool | None = None, after: str | None = None,
                        until: str | None = None) -> list[dict[str, Any]]:
            if after is not None or until is not None:
                raise AlpacaError(422, "after/until are not supported by keel's exchange")
            if status not in ("open", "closed", "all") or direction not in ("asc", "desc"):
                raise AlpacaError(422, "status must be open|closed|all, direction asc|desc")
            views = front.exchange.orders(acct)
            if status == "open":
                views = [v for v in views if v.status.is_open]
            elif status == "closed":
                views = [v for v in views if v.status.is_terminal]
            if symbols:
                wanted = set(symbols.split(","))
                views = [v for v in views if v.symbol in wanted]
            if direction == "desc":
                views = views[::-1]
            return [front.order_json(acct, v) for v in views[:limit]]

        @app.delete("/v2/orders")
        def cancel_all(acct: Acct) -> JSONResponse:
            out = []
            for v in front.exchange.orders(acct, open_only=True):
                front.exchange.cancel(acct, v.client_order_id, front.clock.now())
                after = front.exchange.order_by_venue_id(acct, v.venue_order_id) or v
                out.append({"id": order_id(v.venue_order_id), "status": 200,
                            "body": front.order_json(acct, after)})
            return JSONResponse(out, status_code=207)

        @app.get("/v2/orders:by_client_order_id")
        def by_client_id(acct: Acct, client_order_id: str = Query(min_length=1)
                         ) -> dict[str, Any]:
            v = front.exchange.order(acct, client_order_id)
            if v is None:
                raise AlpacaError(404, "order not found")
            return front.order_json(acct, v)

        @app.get("/v2/orders/{oid}")
        def get_order(oid: str, acct: Acct, nested: bool | None = None) -> dict[str, Any]:
            return front.order_json(acct, front.find(acct, oid))

        @app.patch("/v2/orders/{oid}")
        async def replace(oid: str, request: Request, acct: Acct) -> dict[str, Any]:
            return front.replace(acct, oid, await body_of(request))

        @app.delete("/v2/orders/{oid}", status_code=204)
        def cancel(oid: str, acct: Acct) -> Response:
            front.cancel(acct, oid)
            return Response(status_code=204)

        @app.get("/v2/positions")
        def positions(acct: Acct) -> list[dict[str, Any]]:
            return [front.position_json(acct, s, q)
                    for s, q in sorted(front.exchange.positions(acct).items())]

        @app.get("/v2/positions/{symbol}")
        def position(symbol: str, acct: Acct) -> dict[str, Any]:
            q = front.exchange.positions(acct).get(symbol)
            if q is None:
                raise AlpacaError(404, "position does not exist")
            return front.position_json(acct, symbol, q)

        @app.get("/v2/account")
        def account_info(acct: Acct) -> dict[str, Any]:
            return front.account_json(acct)

        app.add_api_websocket_route("/stream", front.stream)
        return app


def create_alpaca_app(exchange: SimulatedExchange, clock: Clock, api_keys: dict[str, str],
                      api_secrets: dict[str, str] | None = None) -> FastAPI:
    """The Alpaca-shaped app for ``exchange`` (its :class:`AlpacaFront` is ``app.state.front``)."""
    front = AlpacaFront(exchange, clock, api_keys, api_secrets)
    front.app.state.front = front
    return front.app
