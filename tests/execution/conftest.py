"""Fixtures of the execution tests: synthetic minute bars, a scripted venue, a store."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from keel.errors import OrderRejected, TransientVenueError
from keel.store.db import Store
from keel.store.orders_repo import OrdersRepo
from keel.types import Order, OrderEvent, OrderStatus
from keel.venues.base import Account, OpenOrder


def make_bars(day: str = "2013-10-08", n: int = 390, price: float = 100.0,
              volume: float = 1000.0, spread: float = 0.02) -> pd.DataFrame:
    """Flat one-minute bars from 09:30 ET: close ``price``, bid/ask +/- spread/2."""
    idx = pd.date_range(pd.Timestamp(f"{day} 09:30", tz="America/New_York"), periods=n,
                        freq="min").tz_convert("UTC")
    p = np.full(n, price)
    return pd.DataFrame({"open": p, "high": p + 0.05, "low": p - 0.05, "close": p,
                         "volume": np.full(n, volume), "bid": p - spread / 2,
                         "ask": p + spread / 2}, index=idx)


class ScriptedBroker:
    """A venue whose answers the test writes: it records requests and returns pushed events."""

    name = "scripted"

    def __init__(self) -> None:
        self.submitted: list[Order] = []
        self.cancelled: list[str] = []
        self.events: list[OrderEvent] = []
        self.fail_next: int = 0
        self.reject_codes: dict[str, str] = {}
        self.working: dict[str, OpenOrder] = {}

    def submit(self, order: Order) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise TransientVenueError("timeout", field="submit", value=order.client_order_id)
        if order.client_order_id in self.reject_codes:
            raise OrderRejected("venue says no",
                                reason_code=self.reject_codes[order.client_order_id])
        self.submitted.append(order)
        self.working[order.client_order_id] = OpenOrder(order.client_order_id, order.symbol,
                                                        OrderStatus.ACKNOWLEDGED, order.qty)

    def cancel(self, client_order_id: str) -> None:
        self.cancelled.append(client_order_id)

    def replace(self, client_order_id: str, new_order: Order) -> None:
        self.cancel(client_order_id)
        self.submit(new_order)

    def open_orders(self) -> list[OpenOrder]:
        return list(self.working.values())

    def positions(self) -> dict[str, Decimal]:
        return {}

    def account(self) -> Account:
        return Account(Decimal(0), Decimal(0), Decimal(0))

    def poll_events(self) -> list[OrderEvent]:
        out, self.events = self.events, []
        return out


@pytest.fixture
def bars() -> pd.DataFrame:
    return make_bars()


@pytest.fixture
def repo(sqlite_url: str) -> OrdersRepo:
    store = Store.from_url(sqlite_url)
    store.create_all()
    return OrdersRepo(store)


@pytest.fixture
def scripted() -> ScriptedBroker:
    return ScriptedBroker()


@pytest.fixture
def bar_factory():
    return make_bars


@pytest.fixture
def repo_any(db_url: str) -> OrdersRepo:
    """An orders repository on SQLite and on PostgreSQL."""
    store = Store.from_url(db_url)
    store.create_all()
    return OrdersRepo(store)
