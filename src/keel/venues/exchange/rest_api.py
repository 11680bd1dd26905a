"""An Alpaca-style REST order API in front of a :class:`SimulatedExchange` (FastAPI).

Endpoints (JSON; Decimals as strings): ``POST /v2/orders``, ``GET /v2/orders?status=``,
``GET /v2/orders:by_client_order_id?client_order_id=``, ``PATCH /v2/orders/{order_id}``,
``DELETE /v2/orders/{order_id}``, ``GET /v2/positions``, ``GET /v2/account``, and the keel
extension ``GET /v2/events?after=SEQ`` (the account's order events in sequence, for polling).
Authentication: the ``APCA-API-KEY-ID`` header names an account key (401 otherwise).

Input is strict: a quantity or price is a JSON string or number, never a boolean; it must be
finite, positive and (quantity) a multiple of the exchange's lot; text fields go through
:func:`keel.types.check_text` (no SOH, no control character). Every answer carries the
exchange's incarnation in the ``X-Keel-Venue-Epoch`` header, so a client polling
``/v2/events`` can tell that the venue restarted (sequence numbers start again).
"""

# No `from __future__ import annotations`: FastAPI must see the local dependency aliases.
import hmac
from decimal import ROUND_DOWN, Decimal
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from keel.clock import Clock
from keel.errors import ValidationError
from keel.types import (
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    check_text,
    to_decimal,
)
from keel.venues.exchange.alpaca_api import create_alpaca_app
from keel.venues.exchange.core import OrderView, SimulatedExchange
from keel.venues.wire import event_to_json

MAX_PRICE = Decimal("1e9")
PRICE_QUANTUM = Decimal("1e-8")

_STATUS = {OrderStatus.ACKNOWLEDGED: "new", OrderStatus.PARTIALLY_FILLED: "partially_filled",
           OrderStatus.FILLED: "filled", OrderStatus.CANCELLED: "canceled",
           OrderStatus.REJECTED: "rejected", OrderStatus.EXPIRED: "expired",
           OrderStatus.NEW: "new", OrderStatus.PENDING: "pending_new"}


class OrderRequest(BaseModel):
    """Body of ``POST /v2/orders``."""

    model_config = ConfigDict(extra="forbid")
    symbol: StrictStr = Field(min_length=1, max_length=32)
    qty: StrictStr | StrictInt | StrictFloat
    side: Literal["buy", "sell"]
    type: Literal["market", "limit"] = "market"
    time_in_force: Literal["day", "gtc", "ioc", "fok"] = "day"
    limit_price: StrictStr | StrictInt | StrictFloat | None = None
    client_order_id: StrictStr = Field(min_length=1, max_length=64)


class ReplaceRequest(BaseModel):
    """Body of ``PATCH /v2/orders/{order_id}``."""

    model_config = ConfigDict(extra="forbid")
    qty: StrictStr | StrictInt | StrictFloat | None = None
    limit_price: StrictStr | StrictInt | StrictFloat | None = None
    client_order_id: StrictStr = Field(min_length=1, max_length=64)


def order_json(v: OrderView) -> dict[str, Any]:
    return {"id": v.venue_order_id, "client_order_id": v.client_order_id, "symbol": v.symbol,
            "qty": str(v.qty), "filled_qty": str(v.cum_qty),
            "filled_avg_price": str(v.avg_price) if v.cum_qty else None,
            "side": v.side.value.lower(), "type": v.order_type.value.lower(),
            "time_in_force": v.tif.value.lower(),
            "limit_price": None if v.limit_price is None else str(v.limit_price),
            "status": _STATUS[v.status]}


def create_rest_app(exchange: SimulatedExchange, clock: Clock,
                    api_keys: dict[str, str], api_secrets: dict[str, str] | None = None
                    ) -> FastAPI:
    """The REST app. ``api_keys`` maps an ``APCA-API-KEY-ID`` value to an account name.

    Alpaca's own shapes (for the ``alpaca-py`` SDK) are mounted at ``/alpaca``, see
    :mod:`keel.venues.exchange.alpaca_api` (``api_secrets``: key -> secret it checks).
    """
    app = FastAPI(title="keel simulated exchange", version="1")

    @app.middleware("http")
    async def epoch_header(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["X-Keel-Venue-Epoch"] = exchange.epoch
        return response

    def account(apca_api_key_id: Annotated[str | None, Header()] = None,
                apca_api_secret_key: Annotated[str | None, Header()] = None) -> str:
        if apca_api_key_id is None or apca_api_key_id not in api_keys:
            raise HTTPException(401, "missing or unknown APCA-API-KEY-ID")
        if api_secrets is not None:  # the same check as the Alpaca front end's
            want = api_secrets.get(apca_api_key_id, "")
            if apca_api_secret_key is None or not hmac.compare_digest(
                    want.encode(), apca_api_secret_key.encode()):
                raise HTTPException(401, "missing or wrong APCA-API-SECRET-KEY")
        return api_keys[apca_api_key_id]

    Acct = Annotated[str, Depends(account)]

    def find(acct: str, order_id: str) -> OrderView:
        v = exchange.order_by_venue_id(acct, order_id)
        if v is None:
            raise HTTPException(404, f"order not found: {order_id[:64]}")
        return v

    def quantity(value: str | int | float, name: str) -> Any:
        q = to_decimal(value, name)
        why = exchange.engine.qty_problem(q)
        if why is not None:
            raise ValidationError(why[:120], field=name, value=str(value)[:32])
        return q

    def price(value: str | int | float | None, name: str) -> Any:
        if value is None:
            return None
        p = to_decimal(value, name)
        if not 0 < p <= MAX_PRICE or p != p.quantize(PRICE_QUANTUM, rounding=ROUND_DOWN):
            raise ValidationError(f"{name} must be in (0, {MAX_PRICE}] with at most 8 "
                                  "decimal places", field=name, value=str(value)[:32])
        return p

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v2/orders")
    def submit(body: OrderRequest, acct: Acct) -> dict[str, Any]:
        try:  # to_decimal and Order validate qty and price (finite, > 0), naming the field
            check_text(body.client_order_id, "client_order_id")
            if exchange.order(acct, body.client_order_id) is not None:
                raise HTTPException(422, "client_order_id must be unique")
            order = Order(
                client_order_id=body.client_order_id, symbol=body.symbol,
                side=Side(body.side.upper()), qty=quantity(body.qty, "qty"),
                created_at=clock.now(), order_type=OrderType(body.type.upper()),
                limit_price=price(body.limit_price, "limit_price"),
                tif=TimeInForce(body.time_in_force.upper()))
        except ValidationError as exc:
            raise HTTPException(422, str(exc)) from None
        events = exchange.submit(acct, order, clock.now())
        view = exchange.order(acct, order.client_order_id)
        if view is None:  # refused before the engine registered it
            reason = events[0].reason if events else "rejected"
            raise HTTPException(422, reason)
        return order_json(view)

    @app.get("/v2/orders")
    def list_orders(acct: Acct, status: Literal["open", "closed", "all"] = "open"
                    ) -> list[dict[str, Any]]:
        views = exchange.orders(acct)
        if status == "open":
            views = [v for v in views if v.status.is_open]
        elif status == "closed":
            views = [v for v in views if v.status.is_terminal]
        return [order_json(v) for v in views]

    @app.get("/v2/orders:by_client_order_id")
    def by_client_id(acct: Acct, client_order_id: str = Query(min_length=1)) -> dict[str, Any]:
        view = exchange.order(acct, client_order_id)
        if view is None:
            raise HTTPException(404, f"order not found: {client_order_id[:64]}")
        return order_json(view)

    @app.delete("/v2/orders/{order_id}", status_code=204)
    def cancel(order_id: str, acct: Acct) -> Response:
        view = find(acct, order_id)
        if not view.status.is_open:
            raise HTTPException(422, f"order is not open: {view.status.value}")
        exchange.cancel(acct, view.client_order_id, clock.now())
        return Response(status_code=204)

    @app.patch("/v2/orders/{order_id}")
    def replace(order_id: str, body: ReplaceRequest, acct: Acct) -> dict[str, Any]:
        view = find(acct, order_id)
        try:  # to_decimal and Order validate qty and price (finite, > 0), naming the field
            qty = view.qty if body.qty is None else quantity(body.qty, "qty")
            px = (view.limit_price if body.limit_price is None
                  else price(body.limit_price, "limit_price"))
            new = Order(body.client_order_id, view.symbol, view.side, qty, clock.now(),
                        order_type=view.order_type, limit_price=px, tif=view.tif)
        except ValidationError as exc:
            raise HTTPException(422, str(exc)) from None
        events = exchange.replace(acct, view.client_order_id, new, clock.now())
        if events and events[0].kind.value == "CANCEL_REJECTED":
            raise HTTPException(422, events[0].reason)
        replaced = exchange.order(acct, body.client_order_id)
        assert replaced is not None
        return order_json(replaced)

    @app.get("/v2/positions")
    def positions(acct: Acct) -> list[dict[str, str]]:
        return [{"symbol": s, "qty": str(q)} for s, q in sorted(exchange.positions(acct).items())]

    @app.get("/v2/account")
    def account_info(acct: Acct) -> dict[str, str]:
        a = exchange.account(acct)
        return {"cash": str(a.cash), "equity": str(a.equity),
                "buying_power": str(a.buying_power)}

    @app.get("/v2/events")
    def events(acct: Acct, after: int = Query(0, ge=0)) -> list[dict[str, Any]]:
        return [event_to_json(ev, seq) for seq, ev in exchange.events_since(acct, after)]

    app.mount("/alpaca", create_alpaca_app(exchange, clock, api_keys, api_secrets))
    return app
