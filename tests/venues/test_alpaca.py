"""AlpacaBroker (the unmodified alpaca-py SDK) end to end against keel's exchange over real
sockets: REST for orders/positions/account, the trade-updates websocket for fills."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from tests.venues.alpaca_support import front_of, require_alpaca, until

require_alpaca()

from alpaca.common.exceptions import APIError  # noqa: E402
from alpaca.trading.client import TradingClient  # noqa: E402
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest  # noqa: E402

from keel.clock import SimulatedClock  # noqa: E402
from keel.errors import OrderRejected  # noqa: E402
from keel.types import (  # noqa: E402
    EventKind,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    utc,
)
from keel.venues.alpaca import AlpacaBroker  # noqa: E402
from keel.venues.base import Broker  # noqa: E402
from keel.venues.exchange.core import LiquidityProvider, SimulatedExchange  # noqa: E402
from keel.venues.exchange.rest_api import create_rest_app  # noqa: E402
from keel.venues.exchange.server import BackgroundServer  # noqa: E402

T0 = utc(2024, 1, 2, 15)
ACCT = "ACCT-A"


@pytest.fixture(scope="module")
def venue() -> Iterator[tuple[SimulatedExchange, BackgroundServer]]:
    ex = SimulatedExchange(["AAPL", "MSFT", "IBM"], starting_cash=200_000)
    LiquidityProvider(ex, half_spread_bps=5, levels=3, size=100).quote("AAPL", 100.0, T0)
    app = create_rest_app(ex, SimulatedClock(T0), {"key-a": ACCT}, {"key-a": "secret-a"})
    with BackgroundServer(app) as server:
        yield ex, server


@pytest.fixture
def broker(venue: tuple[SimulatedExchange, BackgroundServer]) -> Iterator[AlpacaBroker]:
    _, server = venue
    b = AlpacaBroker("key-a", "secret-a", server.url + "/alpaca", reconnect_s=0.2)
    assert b.wait_connected()
    yield b
    b.close()


class Collector:
    """Polls a broker and keeps every event."""

    def __init__(self, broker: AlpacaBroker) -> None:
        self.broker = broker
        self.events: list[OrderEvent] = []

    def poll(self) -> list[OrderEvent]:
        self.events += self.broker.poll_events()
        return self.events

    def of(self, cid: str, kind: EventKind | None = None) -> list[OrderEvent]:
        self.poll()
        return [e for e in self.events if e.client_order_id == cid
                and (kind is None or e.kind is kind)]

    def filled(self, cid: str) -> Decimal:
        return sum((e.fill.qty for e in self.of(cid, EventKind.FILL) if e.fill), Decimal(0))


def street_sell(ex: SimulatedExchange, cid: str, symbol: str, qty: int, px: str) -> None:
    """Another account sells into the book (the counterparty of a resting buy)."""
    ex.submit("STREET", Order(cid, symbol, Side.SELL, Decimal(qty), T0,
                              order_type=OrderType.LIMIT, limit_price=Decimal(px),
                              tif=TimeInForce.IOC), T0)


def limit_buy(cid: str, symbol: str, qty: int, px: str) -> Order:
    return Order(cid, symbol, Side.BUY, Decimal(qty), T0, order_type=OrderType.LIMIT,
                 limit_price=Decimal(px), tif=TimeInForce.GTC)


def test_alpaca_broker_is_a_broker(broker: AlpacaBroker) -> None:
    assert isinstance(broker, Broker)


def test_submit_fill_positions_account_match_the_exchange(venue, broker) -> None:
    ex, _ = venue
    c = Collector(broker)
    pos0 = broker.positions().get("AAPL", Decimal(0))
    cash0 = broker.account().cash
    broker.submit(Order("mkt-1", "AAPL", Side.BUY, Decimal(150), T0))  # sweeps two levels
    until(lambda: c.filled("mkt-1") == 150)
    # the stream's fills are the exchange's fills: same quantities and prices
    venue_fills = [e.fill for _, e in ex.events_since(ACCT)
                   if e.fill is not None and e.client_order_id == "mkt-1"]
    mine = [e.fill for e in c.of("mkt-1", EventKind.FILL) if e.fill]
    assert [(f.qty, f.price) for f in mine] == [(f.qty, f.price) for f in venue_fills]
    assert len(venue_fills) == 2 and len({f.exec_id for f in mine}) == 2
    assert c.of("mkt-1")[0].kind is EventKind.ACK
    last = c.of("mkt-1", EventKind.FILL)[-1]
    assert last.cum_qty == 150 and last.leaves_qty == 0
    assert broker.positions()["AAPL"] - pos0 == 150 == ex.positions(ACCT)["AAPL"] - pos0
    spent = sum((f.qty * f.price for f in venue_fills), Decimal(0))
    assert cash0 - broker.account().cash == spent
    st = broker.order_status("mkt-1")
    assert st is not None and st.status is OrderStatus.FILLED and st.cum_qty == 150


def test_rejects_bad_symbol_buying_power_duplicate(venue, broker) -> None:
    with pytest.raises(OrderRejected, match="unknown symbol") as bad:
        broker.submit(Order("bad-sym", "NOPE", Side.BUY, Decimal(1), T0))
    assert bad.value.reason_code == "VENUE_REJECT"
    with pytest.raises(OrderRejected, match="insufficient buying power") as bp:
        broker.submit(limit_buy("too-big", "MSFT", 10_000, "50"))  # 500k > 200k cash
    assert bp.value.reason_code == "INSUFFICIENT_BUYING_POWER"
    broker.submit(limit_buy("dup-1", "MSFT", 1, "1"))
    with pytest.raises(OrderRejected) as dup:
        broker.submit(limit_buy("dup-1", "MSFT", 1, "1"))
    assert dup.value.reason_code == "DUPLICATE_ID"
    assert broker.lookup("bad-sym") is None and broker.lookup("too-big") is None
    broker.cancel("dup-1")


def test_sdk_sees_alpaca_error_bodies_and_auth(venue) -> None:
    _, server = venue
    client = TradingClient("key-a", "secret-a", url_override=server.url + "/alpaca")
    with pytest.raises(APIError) as exc:
        client.submit_order(MarketOrderRequest(symbol="NOPE", qty=1, side="buy",
                                               time_in_force="day"))
    assert exc.value.status_code == 422 and exc.value.code == 42210000
    with pytest.raises(APIError) as exc:
        client.submit_order(LimitOrderRequest(symbol="MSFT", qty=10_000, side="buy",
                                              time_in_force="day", limit_price=50))
    assert exc.value.status_code == 403 and exc.value.code == 40310000
    # client_order_id is optional: the exchange makes one up
    o = client.submit_order(LimitOrderRequest(symbol="IBM", qty=1, side="buy",
                                              time_in_force="day", limit_price=1))
    assert o.client_order_id and o.status.value == "new" and o.filled_qty == "0"
    client.cancel_order_by_id(o.id)
    assert client.get_order_by_id(o.id).status.value == "canceled"
    wrong = TradingClient("key-a", "not-the-secret", url_override=server.url + "/alpaca")
    with pytest.raises(APIError) as exc:
        wrong.get_account()
    assert exc.value.status_code == 401 and exc.value.code == 40110000


def test_partial_fills_then_fill(venue, broker) -> None:
    ex, _ = venue
    c = Collector(broker)
    broker.submit(limit_buy("part-1", "MSFT", 10, "50"))
    until(lambda: bool(c.of("part-1", EventKind.ACK)))
    street_sell(ex, "st-p1", "MSFT", 4, "50")
    until(lambda: c.filled("part-1") == 4)
    first = c.of("part-1", EventKind.FILL)[0]
    assert (first.cum_qty, first.leaves_qty, first.fill and first.fill.price) == (
        4, 6, Decimal("50"))
    st = broker.order_status("part-1")
    assert st is not None and st.status is OrderStatus.PARTIALLY_FILLED
    assert [o.client_order_id for o in broker.open_orders()].count("part-1") == 1
    street_sell(ex, "st-p2", "MSFT", 6, "49")  # trades at the resting price
    until(lambda: c.filled("part-1") == 10)
    second = c.of("part-1", EventKind.FILL)[1]
    assert (second.cum_qty, second.leaves_qty, second.fill and second.fill.price) == (
        10, 0, Decimal("50"))


def test_cancel_and_cancel_of_a_done_order(venue, broker) -> None:
    c = Collector(broker)
    broker.submit(limit_buy("can-1", "IBM", 5, "10"))
    until(lambda: bool(c.of("can-1", EventKind.ACK)))
    broker.cancel("can-1")
    until(lambda: bool(c.of("can-1", EventKind.CANCELLED)))
    st = broker.order_status("can-1")
    assert st is not None and st.status is OrderStatus.CANCELLED
    broker.cancel("can-1")  # already done: an event, not an exception
    until(lambda: bool(c.of("can-1", EventKind.CANCEL_REJECTED)))
    rej = c.of("can-1", EventKind.CANCEL_REJECTED)[0]
    assert rej.extra["status"] == OrderStatus.CANCELLED.value
    broker.cancel("never-sent")
    until(lambda: bool(c.of("never-sent", EventKind.CANCEL_REJECTED)))


def test_replace_then_fill_on_the_new_id(venue, broker) -> None:
    ex, _ = venue
    c = Collector(broker)
    broker.submit(limit_buy("rep-1", "IBM", 5, "20"))
    until(lambda: bool(c.of("rep-1", EventKind.ACK)))
    broker.replace("rep-1", limit_buy("rep-2", "IBM", 8, "21"))
    until(lambda: bool(c.of("rep-1", EventKind.REPLACED)))
    assert c.of("rep-1", EventKind.REPLACED)[0].extra["new_client_order_id"] == "rep-2"
    street_sell(ex, "st-r", "IBM", 8, "21")
    until(lambda: c.filled("rep-2") == 8)
    assert c.filled("rep-1") == 0


def test_dropped_stream_reconnects_without_losing_a_fill(venue, broker) -> None:
    ex, server = venue
    c = Collector(broker)
    broker.submit(limit_buy("drop-1", "MSFT", 10, "40"))
    until(lambda: bool(c.of("drop-1", EventKind.ACK)))
    street_sell(ex, "st-d1", "MSFT", 3, "40")
    until(lambda: c.filled("drop-1") == 3)
    front = front_of(server)
    connects = broker.stream_connects
    assert front.drop_streams() >= 1
    # these fills happen after the drop: the old connection never carries them
    street_sell(ex, "st-d2", "MSFT", 2, "40")
    street_sell(ex, "st-d3", "MSFT", 5, "39")
    until(lambda: broker.stream_connects > connects)
    until(lambda: c.filled("drop-1") == 10)
    fills = c.of("drop-1", EventKind.FILL)
    # the missed 7 come back as one reconciled fill, priced from the averages, once
    assert [(e.fill.qty, e.fill.price) for e in fills if e.fill] == [
        (3, Decimal("40")), (7, Decimal("40"))]
    assert fills[-1].cum_qty == 10 and fills[-1].leaves_qty == 0
    assert broker.connection_epoch >= 1
    # the stream works again after the reconnect
    broker.submit(limit_buy("drop-2", "MSFT", 1, "40"))
    street_sell(ex, "st-d4", "MSFT", 1, "40")
    until(lambda: c.filled("drop-2") == 1)
    assert c.filled("drop-1") == 10  # nothing reported twice


def test_order_manager_over_alpaca_books_every_fill_once_across_a_drop(venue, broker,
                                                                       db_url) -> None:
    from keel.execution.oms import OrderManager
    from keel.store.db import Store
    from keel.store.orders_repo import OrdersRepo

    ex, server = venue
    run = db_url.split(":")[0]  # unique ids per database run on the shared exchange
    pid = f"P-{run}"
    store = Store.from_url(db_url)
    store.create_all()
    repo = OrdersRepo(store)
    oms = OrderManager(broker, repo, SimulatedClock(T0), sleep=lambda s: None)
    booked: list[Decimal] = []
    oms.add_fill_listener(lambda f, parent: booked.append(f.qty))
    px = "30" if run == "sqlite" else "31"  # the other run's order must not be hit
    oms.on_price("MSFT", px)
    oms.submit(Order(pid, "MSFT", Side.BUY, Decimal(10), T0, order_type=OrderType.LIMIT,
                     limit_price=Decimal(px), tif=TimeInForce.GTC))

    def step_until(pred) -> None:  # type: ignore[no-untyped-def]
        def done() -> bool:
            oms.step()
            return bool(pred())
        until(done)

    step_until(lambda: [v for v in ex.orders(ACCT, open_only=True) if v.symbol == "MSFT"
                        and v.limit_price == Decimal(px)])
    street_sell(ex, f"st-o1-{run}", "MSFT", 4, px)
    step_until(lambda: sum(booked) == 4)
    connects = broker.stream_connects
    front_of(server).drop_streams()
    street_sell(ex, f"st-o2-{run}", "MSFT", 6, px)  # while the stream is down
    until(lambda: broker.stream_connects > connects)
    step_until(lambda: repo.get(pid).status is OrderStatus.FILLED)
    p = repo.get(pid)
    assert p.filled_qty == 10 and p.avg_price == Decimal(px) and booked == [4, 6]
    assert len(repo.fills(parent_id=pid)) == 2
