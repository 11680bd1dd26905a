"""`ExchangeBroker`: the `Broker` protocol straight onto an in-process `SimulatedExchange`.

No socket, no thread: what the FIX and REST front ends do, minus the wire. For soak and chaos
tests, benchmarks and a backtest that wants the exchange's matching. It keeps the broker error
contract of :mod:`keel.execution.broker`: a venue refusal of a new order arrives as a
``REJECTED`` event, a cancel or replace of a done or unknown order as ``CANCEL_REJECTED``.
"""

from __future__ import annotations

from decimal import Decimal

from keel.clock import Clock
from keel.types import Order, OrderEvent
from keel.venues.base import Account, OpenOrder
from keel.venues.exchange.core import SimulatedExchange


class ExchangeBroker:
    """A broker for ``account`` on ``exchange``; events stamped with ``clock``."""

    name = "exchange"

    def __init__(self, exchange: SimulatedExchange, clock: Clock,
                 account: str = "default") -> None:
        self.exchange, self.clock, self.account_name = exchange, clock, account
        self._seq = 0
        self.connection_epoch = 0

    def submit(self, order: Order) -> None:
        self.exchange.submit(self.account_name, order, self.clock.now())

    def cancel(self, client_order_id: str) -> None:
        self.exchange.cancel(self.account_name, client_order_id, self.clock.now())

    def replace(self, client_order_id: str, new_order: Order) -> None:
        self.exchange.replace(self.account_name, client_order_id, new_order, self.clock.now())

    def order_status(self, client_order_id: str) -> OpenOrder | None:
        v = self.exchange.order(self.account_name, client_order_id)
        return None if v is None else OpenOrder(v.client_order_id, v.symbol, v.status, v.qty,
                                                v.cum_qty, v.venue_order_id)

    def open_orders(self) -> list[OpenOrder]:
        return self.exchange.open_orders(self.account_name)

    def positions(self) -> dict[str, Decimal]:
        return self.exchange.positions(self.account_name)

    def account(self) -> Account:
        return self.exchange.account(self.account_name)

    def poll_events(self) -> list[OrderEvent]:
        out = self.exchange.events_since(self.account_name, self._seq)
        if out:
            self._seq = out[-1][0]
        return [ev for _, ev in out]
