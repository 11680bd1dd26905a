"""`RoutingBroker`: prefer a primary venue connection, fall back while it is down, return after.

Typical wiring: FIX primary, REST fallback, both reaching the same exchange account. Guarantees:

* **no duplicate**: before an order goes out on the fallback after a primary failure, the
  fallback is asked whether the venue already has that client order id (the primary may have
  delivered it before failing); if it does, it is not sent again;
* **no loss**: a transient failure of one route is retried on the other; only when both fail
  does ``submit`` raise ``TransientVenueError`` (the order manager's retry policy takes over);
* **events once**: both routes may report the same venue event; events are de-duplicated by
  the venue's execution id (``OrderEvent.extra['exec_id']`` or the fill's ``exec_id``).
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

from keel.errors import TransientVenueError
from keel.types import Order, OrderEvent
from keel.venues.base import Account, Broker, OpenOrder


class LookupBroker(Broker, Protocol):
    """A broker that can tell whether the venue knows a client order id."""

    def lookup(self, client_order_id: str) -> Any | None: ...


class RoutingBroker:
    """Route to ``primary`` while ``primary_up()`` is true, else to ``fallback``.

    Args:
        primary: preferred route (e.g. a FixBroker).
        fallback: route used while the primary is down; must offer ``lookup``.
        primary_up: health probe of the primary (default: its ``is_connected()`` if any).
        dedup_window: how many recent execution ids are remembered for de-duplication.
    """

    name = "routing"

    def __init__(self, primary: Broker, fallback: LookupBroker,
                 primary_up: Callable[[], bool] | None = None, dedup_window: int = 100_000
                 ) -> None:
        self.primary = primary
        self.fallback = fallback
        probe = getattr(primary, "is_connected", None)
        self._primary_up = primary_up or (probe if callable(probe) else (lambda: True))
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._window = dedup_window
        self._primary_failed = False
        # recent (client_order_id, route) pairs, bounded; totals per route in route_counts
        self.route_log: deque[tuple[str, str]] = deque(maxlen=10_000)
        self.route_counts: Counter[str] = Counter()

    @property
    def active(self) -> Broker:
        """The route in use now."""
        if self._primary_failed and self._primary_up():
            self._primary_failed = False  # it is back
        return self.fallback if self._primary_failed or not self._primary_up() else self.primary

    def submit(self, order: Order) -> None:
        route = self.active
        if route is self.primary:
            try:
                self.primary.submit(order)
                self._routed(order.client_order_id, "primary")
                return
            except TransientVenueError:
                self._primary_failed = True
        if self.fallback.lookup(order.client_order_id) is not None:
            self._routed(order.client_order_id, "already-at-venue")
            return
        self.fallback.submit(order)
        self._routed(order.client_order_id, "fallback")

    def _routed(self, client_order_id: str, route: str) -> None:
        self.route_log.append((client_order_id, route))
        self.route_counts[route] += 1

    def _either(self, op: Callable[[Broker], Any]) -> Any:
        route = self.active
        try:
            return op(route)
        except TransientVenueError:
            if route is not self.primary:
                raise
            self._primary_failed = True
            return op(self.fallback)

    def cancel(self, client_order_id: str) -> None:
        self._either(lambda b: b.cancel(client_order_id))

    def replace(self, client_order_id: str, new_order: Order) -> None:
        self._either(lambda b: b.replace(client_order_id, new_order))

    def open_orders(self) -> list[OpenOrder]:
        result: list[OpenOrder] = self._either(lambda b: b.open_orders())
        return result

    def positions(self) -> dict[str, Decimal]:
        result: dict[str, Decimal] = self._either(lambda b: b.positions())
        return result

    def account(self) -> Account:
        result: Account = self._either(lambda b: b.account())
        return result

    def poll_events(self) -> list[OrderEvent]:
        events: list[OrderEvent] = []
        for route in (self.primary, self.fallback):
            try:
                events += route.poll_events()
            except TransientVenueError:
                continue
        return [e for e in events if self._first_time(e)]

    def _first_time(self, ev: OrderEvent) -> bool:
        key = ev.fill.exec_id if ev.fill is not None else ev.extra.get("exec_id")
        if key is None:
            key = f"{ev.kind.value}:{ev.client_order_id}:{ev.cum_qty}:{ev.reason}"
        key = str(key)
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self._window:
            self._seen.popitem(last=False)
        return True
