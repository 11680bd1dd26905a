"""Fail over between two real REST front ends of one exchange, and back, losing nothing."""

from decimal import Decimal

from keel.clock import SimulatedClock
from keel.types import EventKind, Order, OrderType, Side, utc
from keel.venues.exchange.core import LiquidityProvider, SimulatedExchange
from keel.venues.exchange.rest_api import create_rest_app
from keel.venues.exchange.server import BackgroundServer
from keel.venues.rest import RestBroker
from keel.venues.routing import RoutingBroker

T0 = utc(2024, 1, 2, 15)


def _buy(cid, qty=10):
    return Order(cid, "AAPL", Side.BUY, qty, T0, order_type=OrderType.LIMIT, limit_price="101")


def test_failover_and_return_without_loss_or_duplicate():
    clock = SimulatedClock(T0)
    ex = SimulatedExchange(["AAPL"])
    LiquidityProvider(ex, half_spread_bps=5, size=10_000).quote("AAPL", 100.0, T0)
    keys = {"k": "ACCT"}
    primary_srv = BackgroundServer(create_rest_app(ex, clock, keys)).start()
    fallback_srv = BackgroundServer(create_rest_app(ex, clock, keys)).start()
    primary = RestBroker(primary_srv.url, "k", timeout_s=0.5)
    fallback = RestBroker(fallback_srv.url, "k", timeout_s=2)
    state = {"up": True}
    router = RoutingBroker(primary, fallback, primary_up=lambda: state["up"])
    try:
        router.submit(_buy("o1"))
        assert router.route_log[-1] == ("o1", "primary")
        # The primary dies without the router knowing yet: the submit fails over.
        primary_srv.stop()
        router.submit(_buy("o2"))
        assert router.route_log[-1] == ("o2", "fallback")
        # Re-submitting an order the venue already has (e.g. after an ambiguous failure)
        # does not duplicate it.
        router.submit(_buy("o2"))
        assert router.route_log[-1] == ("o2", "already-at-venue")
        # The primary comes back on the same port; the router returns to it.
        primary_srv = BackgroundServer(create_rest_app(ex, clock, keys),
                                       port=primary_srv.port).start()
        router.submit(_buy("o3"))
        assert router.route_log[-1] == ("o3", "primary")
        events = router.poll_events()
        fills = [e.fill for e in events if e.kind is EventKind.FILL]
        assert sorted(f.client_order_id for f in fills) == ["o1", "o2", "o3"]
        assert len({f.exec_id for f in fills}) == 3  # each venue fill reported once
        assert router.poll_events() == []
        assert ex.positions("ACCT") == {"AAPL": Decimal(30)}
        assert [v.client_order_id for v in ex.orders("ACCT")] == ["o1", "o2", "o3"]
    finally:
        primary_srv.stop()
        fallback_srv.stop()
