"""The `Broker` protocol: the one interface between keel's order manager and any venue.

It lives with its consumer, the order manager, so execution never imports a venue; venues
implement it, and ``keel.venues.base`` re-exports it as the venues' public contract.

Paper broker, FIX broker, REST broker and the routing broker all implement it. The order
manager calls ``submit`` / ``cancel`` / ``replace`` and drains venue events with
``poll_events``; venues never call back into the order manager, so the OMS stays in control of
ordering and persistence.

The error contract every broker keeps:

* ``submit`` raises ``TransientVenueError`` when a retry may succeed (the venue is
  unreachable, busy), ``OrderRejected`` when the venue refuses the order (``reason_code``
  ``DUPLICATE_ID`` when it already has that client order id) and ``VenueError`` otherwise;
* ``cancel`` / ``replace`` of an order the venue no longer works (filled, cancelled, unknown)
  is *not* an exception: the venue's refusal arrives as an ``EventKind.CANCEL_REJECTED`` event
  (the order's venue status in ``extra['status']`` when known); they raise only
  ``TransientVenueError`` / ``VenueError`` for the transport;
* queries (``open_orders``, ``poll_events``, ...) raise ``TransientVenueError`` / ``VenueError``.

Optional extras the order manager uses when a broker has them: ``connection_epoch`` (an int
bumped at each reconnect or venue restart: the manager then reconciles its open orders) and
``order_status(client_order_id) -> OpenOrder | None`` (the venue's view of one order, open or
done; None when the venue does not know it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol, runtime_checkable

from keel.types import ZERO, Order, OrderEvent, OrderStatus


@dataclass(frozen=True)
class OpenOrder:
    """A venue's view of one working order."""

    client_order_id: str
    symbol: str
    status: OrderStatus
    qty: Decimal
    cum_qty: Decimal = ZERO
    venue_order_id: str = ""


@dataclass(frozen=True)
class Account:
    """Cash and buying power as a venue reports them (currency)."""

    cash: Decimal
    equity: Decimal
    buying_power: Decimal
    extra: dict[str, Decimal] = field(default_factory=dict)


@runtime_checkable
class Broker(Protocol):
    """What the order manager needs from a venue."""

    name: str

    def submit(self, order: Order) -> None:
        """Send a new order. Raises ``TransientVenueError`` when a retry may succeed,
        ``OrderRejected`` / ``VenueError`` otherwise. Acks and fills arrive as events."""
        ...

    def cancel(self, client_order_id: str) -> None:
        """Ask to cancel a working order; the outcome arrives as an event (a late or unknown
        order gives a ``CANCEL_REJECTED`` event, never an exception)."""
        ...

    def replace(self, client_order_id: str, new_order: Order) -> None:
        """Ask to replace a working order by ``new_order`` (new id, qty and/or price)."""
        ...

    def open_orders(self) -> list[OpenOrder]:
        """Orders the venue still considers working (for reconciliation after a restart)."""
        ...

    def positions(self) -> dict[str, Decimal]:
        """Signed positions per symbol as the venue books them."""
        ...

    def account(self) -> Account:
        ...

    def poll_events(self) -> list[OrderEvent]:
        """Events received since the last call, in venue order (never blocks)."""
        ...
