"""`RestBroker`: the `Broker` protocol over an Alpaca-style REST order API (httpx).

Transport failures, timeouts, HTTP 429 and 5xx raise ``TransientVenueError`` (the order manager
may retry); a 4xx refusal raises ``OrderRejected`` with the venue's reason. Events are polled
from ``GET /v2/events?after=SEQ``, so none is lost or seen twice while the broker lives.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from keel.errors import OrderRejected, TransientVenueError, VenueError
from keel.types import Order, OrderEvent, OrderStatus
from keel.venues.base import Account, OpenOrder
from keel.venues.wire import event_from_json

_FROM_STATUS = {"new": OrderStatus.ACKNOWLEDGED, "accepted": OrderStatus.ACKNOWLEDGED,
                "pending_new": OrderStatus.PENDING,
                "partially_filled": OrderStatus.PARTIALLY_FILLED,
                "filled": OrderStatus.FILLED, "canceled": OrderStatus.CANCELLED,
                "rejected": OrderStatus.REJECTED, "expired": OrderStatus.EXPIRED}


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

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise TransientVenueError(f"REST venue unreachable: {exc}", venue=self.name,
                                      path=path) from None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise TransientVenueError(f"REST venue answered {resp.status_code}",
                                      venue=self.name, path=path)
        return resp

    @staticmethod
    def _detail(resp: httpx.Response) -> str:
        try:
            return str(resp.json().get("detail", resp.text))
        except ValueError:
            return resp.text

    def submit(self, order: Order) -> None:
        body: dict[str, Any] = {
            "symbol": order.symbol, "qty": str(order.qty), "side": order.side.value.lower(),
            "type": order.order_type.value.lower(), "time_in_force": order.tif.value.lower(),
            "client_order_id": order.client_order_id}
        if order.limit_price is not None:
            body["limit_price"] = str(order.limit_price)
        resp = self._call("POST", "/v2/orders", json=body)
        if resp.status_code != 200:
            raise OrderRejected(self._detail(resp), reason_code="VENUE_REJECT",
                                symbol=order.symbol, order=order.client_order_id)

    def lookup(self, client_order_id: str) -> dict[str, Any] | None:
        """The venue's record of an order, or None if it never arrived."""
        resp = self._call("GET", "/v2/orders:by_client_order_id",
                          params={"client_order_id": client_order_id})
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise VenueError(self._detail(resp), venue=self.name)
        data: dict[str, Any] = resp.json()
        return data

    def cancel(self, client_order_id: str) -> None:
        rec = self.lookup(client_order_id)
        if rec is None:
            raise OrderRejected("unknown order", reason_code="UNKNOWN_ORDER",
                                order=client_order_id)
        resp = self._call("DELETE", f"/v2/orders/{rec['id']}")
        if resp.status_code != 204:
            raise OrderRejected(self._detail(resp), reason_code="CANCEL_REJECTED",
                                order=client_order_id)

    def replace(self, client_order_id: str, new_order: Order) -> None:
        rec = self.lookup(client_order_id)
        if rec is None:
            raise OrderRejected("unknown order", reason_code="UNKNOWN_ORDER",
                                order=client_order_id)
        body: dict[str, Any] = {"qty": str(new_order.qty),
                                "client_order_id": new_order.client_order_id}
        if new_order.limit_price is not None:
            body["limit_price"] = str(new_order.limit_price)
        resp = self._call("PATCH", f"/v2/orders/{rec['id']}", json=body)
        if resp.status_code != 200:
            raise OrderRejected(self._detail(resp), reason_code="REPLACE_REJECTED",
                                order=client_order_id)

    def open_orders(self) -> list[OpenOrder]:
        resp = self._call("GET", "/v2/orders", params={"status": "open"})
        return [OpenOrder(o["client_order_id"], o["symbol"], _FROM_STATUS[o["status"]],
                          Decimal(o["qty"]), Decimal(o["filled_qty"]), o["id"])
                for o in resp.json()]

    def positions(self) -> dict[str, Decimal]:
        resp = self._call("GET", "/v2/positions")
        return {p["symbol"]: Decimal(p["qty"]) for p in resp.json()}

    def account(self) -> Account:
        d = self._call("GET", "/v2/account").json()
        return Account(cash=Decimal(d["cash"]), equity=Decimal(d["equity"]),
                       buying_power=Decimal(d["buying_power"]))

    def poll_events(self) -> list[OrderEvent]:
        resp = self._call("GET", "/v2/events", params={"after": self._last_seq})
        out: list[OrderEvent] = []
        for d in resp.json():
            if d["seq"] <= self._last_seq:
                continue
            self._last_seq = d["seq"]
            out.append(event_from_json(d))
        return out
