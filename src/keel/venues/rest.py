"""`RestBroker`: the `Broker` protocol over an Alpaca-style REST order API (httpx).

Error contract (the one every keel broker keeps, see :mod:`keel.execution.broker`):
transport failures, timeouts, HTTP 429 and 5xx raise ``TransientVenueError`` (the order manager
may retry); a 4xx refusal of a *new order* raises ``OrderRejected`` with the venue's reason; an
answer keel cannot read raises ``VenueError``. A cancel or replace of an order that is already
filled, done or unknown to the venue is not an exception: it becomes a ``CANCEL_REJECTED``
event (with the venue's status in ``extra['status']`` when it has one), delivered by the next
:meth:`RestBroker.poll_events`.

Events are polled from ``GET /v2/events?after=SEQ``, so none is lost or seen twice while the
broker lives. The venue names its incarnation in the ``X-Keel-Venue-Epoch`` header: when it
changes (the venue restarted and its sequence numbers start again) the broker reads the new
log from the start and increments :attr:`RestBroker.connection_epoch`, the signal on which
the order manager reconciles its open orders with the venue.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from keel.errors import OrderRejected, TransientVenueError, ValidationError, VenueError
from keel.types import EventKind, Order, OrderEvent, OrderStatus
from keel.venues.base import Account, OpenOrder
from keel.venues.wire import event_from_json

_FROM_STATUS = {"new": OrderStatus.ACKNOWLEDGED, "accepted": OrderStatus.ACKNOWLEDGED,
                "pending_new": OrderStatus.PENDING,
                "partially_filled": OrderStatus.PARTIALLY_FILLED,
                "filled": OrderStatus.FILLED, "canceled": OrderStatus.CANCELLED,
                "rejected": OrderStatus.REJECTED, "expired": OrderStatus.EXPIRED}

EPOCH_HEADER = "X-Keel-Venue-Epoch"


class RestBroker:
    """Broker over REST.

    Args:
        base_url: e.g. ``http://127.0.0.1:9880``.
        api_key: value of the ``APCA-API-KEY-ID`` header.
        timeout_s: per-request timeout, seconds.
        transport: optional httpx transport (tests).
    """

    name = "rest"

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 5.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=timeout_s, transport=transport,
                                    headers={"APCA-API-KEY-ID": api_key})
        self._last_seq = 0
        self._epoch: str | None = None
        self._down = False
        self._local: list[OrderEvent] = []
        #: bumped whenever the venue came back after being unreachable or restarted
        self.connection_epoch = 0

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            self._down = True
            raise TransientVenueError(f"REST venue unreachable: {exc}", venue=self.name,
                                      path=path) from None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise TransientVenueError(f"REST venue answered {resp.status_code}",
                                      venue=self.name, path=path)
        epoch = resp.headers.get(EPOCH_HEADER)
        if epoch is not None and epoch != self._epoch:
            if self._epoch is not None:  # a new incarnation: its log starts again at 1
                self._last_seq = 0
                self.connection_epoch += 1
                self._down = False
            self._epoch = epoch
        if self._down:
            self._down = False
            self.connection_epoch += 1
        return resp

    def _json(self, resp: httpx.Response, path: str) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise VenueError("REST venue answered something that is not JSON",
                             venue=self.name, path=path, status=resp.status_code) from None

    @staticmethod
    def _detail(resp: httpx.Response) -> str:
        try:
            data = resp.json()
        except ValueError:
            return resp.text[:200]
        return str(data.get("detail", data) if isinstance(data, dict) else data)[:200]

    def _cancel_rejected(self, client_order_id: str, reason: str, request_id: str,
                         response_to: str, status: OrderStatus | None = None) -> None:
        extra: dict[str, Any] = {"request_id": request_id, "response_to": response_to}
        if status is not None:
            extra["status"] = status.value
        self._local.append(OrderEvent(EventKind.CANCEL_REJECTED, client_order_id,
                                      datetime.now(UTC), reason=reason, extra=extra))

    def submit(self, order: Order) -> None:
        body: dict[str, Any] = {
            "symbol": order.symbol, "qty": str(order.qty), "side": order.side.value.lower(),
            "type": order.order_type.value.lower(), "time_in_force": order.tif.value.lower(),
            "client_order_id": order.client_order_id}
        if order.limit_price is not None:
            body["limit_price"] = str(order.limit_price)
        resp = self._call("POST", "/v2/orders", json=body)
        if resp.status_code != 200:
            detail = self._detail(resp)
            code = "DUPLICATE_ID" if "unique" in detail else "VENUE_REJECT"
            raise OrderRejected(detail, reason_code=code, symbol=order.symbol,
                                order=order.client_order_id)

    def lookup(self, client_order_id: str) -> dict[str, Any] | None:
        """The venue's record of an order, or None if it never arrived."""
        path = "/v2/orders:by_client_order_id"
        resp = self._call("GET", path, params={"client_order_id": client_order_id})
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise VenueError(self._detail(resp), venue=self.name)
        data = self._json(resp, path)
        if not isinstance(data, dict) or "id" not in data:
            raise VenueError("REST venue answered an order without an id", venue=self.name)
        return data

    def order_status(self, client_order_id: str) -> OpenOrder | None:
        """The venue's view of one order (open or done), or None if the venue does not know
        it (never arrived, or lost in a restart)."""
        d = self.lookup(client_order_id)
        return None if d is None else self._open_order(d)

    def _open_order(self, o: dict[str, Any]) -> OpenOrder:
        try:
            return OpenOrder(o["client_order_id"], o["symbol"], _FROM_STATUS[o["status"]],
                             Decimal(o["qty"]), Decimal(o["filled_qty"]), o["id"])
        except (KeyError, TypeError, ArithmeticError, ValidationError) as exc:
            raise VenueError(f"REST venue answered an unreadable order: {exc!r}"[:200],
                             venue=self.name) from None

    def _request_on(self, client_order_id: str, request_id: str, response_to: str
                    ) -> dict[str, Any] | None:
        """The venue's record of an order we want to cancel or replace; None (and a
        CANCEL_REJECTED event) when the venue does not know it or it is done."""
        rec = self.lookup(client_order_id)
        if rec is None:
            self._cancel_rejected(client_order_id, "unknown order", request_id, response_to)
            return None
        status = _FROM_STATUS.get(str(rec.get("status")))
        if status is not None and status.is_terminal:
            self._cancel_rejected(client_order_id, f"order is not open: {status.value}",
                                  request_id, response_to, status)
            return None
        return rec

    def cancel(self, client_order_id: str) -> None:
        rec = self._request_on(client_order_id, client_order_id, "cancel")
        if rec is None:
            return
        resp = self._call("DELETE", f"/v2/orders/{rec['id']}")
        if resp.status_code != 204:  # done or gone between the lookup and the delete
            after = self.lookup(client_order_id)
            status = None if after is None else _FROM_STATUS.get(str(after.get("status")))
            self._cancel_rejected(client_order_id, self._detail(resp), client_order_id,
                                  "cancel", status)

    def replace(self, client_order_id: str, new_order: Order) -> None:
        rec = self._request_on(client_order_id, new_order.client_order_id, "replace")
        if rec is None:
            return
        body: dict[str, Any] = {"qty": str(new_order.qty),
                                "client_order_id": new_order.client_order_id}
        if new_order.limit_price is not None:
            body["limit_price"] = str(new_order.limit_price)
        resp = self._call("PATCH", f"/v2/orders/{rec['id']}", json=body)
        if resp.status_code != 200:
            self._cancel_rejected(client_order_id, self._detail(resp),
                                  new_order.client_order_id, "replace")

    def open_orders(self) -> list[OpenOrder]:
        path = "/v2/orders"
        resp = self._call("GET", path, params={"status": "open"})
        data = self._json(resp, path)
        if resp.status_code != 200 or not isinstance(data, list):
            raise VenueError("REST venue did not list its orders", venue=self.name,
                             status=resp.status_code)
        return [self._open_order(o) for o in data]

    def positions(self) -> dict[str, Decimal]:
        path = "/v2/positions"
        data = self._json(self._call("GET", path), path)
        try:
            return {p["symbol"]: Decimal(p["qty"]) for p in data}
        except (KeyError, TypeError, ArithmeticError) as exc:
            raise VenueError(f"unreadable positions: {exc!r}"[:200], venue=self.name) from None

    def account(self) -> Account:
        path = "/v2/account"
        d = self._json(self._call("GET", path), path)
        try:
            return Account(cash=Decimal(d["cash"]), equity=Decimal(d["equity"]),
                           buying_power=Decimal(d["buying_power"]))
        except (KeyError, TypeError, ArithmeticError) as exc:
            raise VenueError(f"unreadable account: {exc!r}"[:200], venue=self.name) from None

    def poll_events(self) -> list[OrderEvent]:
        out, self._local = self._local, []
        path = "/v2/events"
        try:
            resp = self._call("GET", path, params={"after": self._last_seq})
        except TransientVenueError:
            self._local = out + self._local  # keep the local events for the next poll
            raise
        data = self._json(resp, path)
        if resp.status_code != 200 or not isinstance(data, list):
            self._local = out + self._local
            raise VenueError("REST venue did not list its events", venue=self.name,
                             status=resp.status_code)
        for d in data:
            try:
                seq = int(d["seq"])
                if seq <= self._last_seq:
                    continue
                ev = event_from_json(d)
            except (KeyError, TypeError, ValueError, ArithmeticError, ValidationError) as exc:
                self._local = out + self._local
                raise VenueError(f"unreadable venue event: {exc!r}"[:200],
                                 venue=self.name) from None
            self._last_seq = seq
            out.append(ev)
        return out
