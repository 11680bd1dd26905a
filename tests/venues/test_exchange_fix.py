"""FixBroker -> FixExchangeServer -> SimulatedExchange end to end over localhost sockets."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from tests.conftest import FIX_SPEC

from keel.errors import ConfigError
from keel.types import EventKind, Order, OrderEvent, OrderType, Side, TimeInForce, utc
from keel.venues.exchange.core import LiquidityProvider, SimulatedExchange
from keel.venues.exchange.fix_front import FixExchangeServer
from keel.venues.fix.broker import FixBroker
from keel.venues.fix.codec import Message
from keel.venues.fix.messages import new_order_single
from keel.venues.fix.session import SessionConfig
from keel.venues.fix.store import FileStore

T0 = utc(2024, 1, 2, 15)
SPEC = FIX_SPEC


@pytest.fixture(scope="module")
def spec_dir() -> Path:
    return SPEC


def lim(cid: str, side: Side, qty: int, px: str, symbol: str = "AAPL") -> Order:
    return Order(cid, symbol, side, qty, T0, order_type=OrderType.LIMIT, limit_price=px)


def wait_for(broker: FixBroker, got: list[OrderEvent], pred: Callable[[], bool],
             timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got += broker.poll_events()
        if pred():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; events: {[(e.kind, e.client_order_id) for e in got]}")
        time.sleep(0.01)


def of(got: list[OrderEvent], cid: str) -> list[EventKind]:
    return [e.kind for e in got if e.client_order_id == cid]


def make_broker(port: int, spec_dir: Path, begin: str = "FIX.4.2", store=None) -> FixBroker:
    return FixBroker(SessionConfig(begin, "KEEL", "KEELX"), "127.0.0.1", port,
                     spec_dir=str(spec_dir), store=store, reconnect_interval=0.05,
                     max_backoff=0.2)


@pytest.fixture
def venue(spec_dir: Path) -> Iterator[tuple[SimulatedExchange, LiquidityProvider,
                                            FixExchangeServer]]:
    ex = SimulatedExchange(["AAPL", "MSFT"])
    lp = LiquidityProvider(ex, half_spread_bps=5, levels=3, level_step_bps=2, size=100)
    lp.quote("AAPL", 100.0, T0)  # asks 100.05 x100, 100.07 x150, 100.09 x200; bids mirrored
    with FixExchangeServer(ex, spec_dir=spec_dir) as server:
        yield ex, lp, server


@pytest.mark.parametrize("begin", ["FIX.4.2", "FIX.4.4"])
def test_trade_end_to_end(venue, spec_dir: Path, begin: str) -> None:
    ex, lp, server = venue
    got: list[OrderEvent] = []
    with make_broker(server.port, spec_dir, begin) as broker:
        assert broker.wait_logged_on(5)
        # 1. takes two ask levels: partial fill then fill
        broker.submit(lim("b1", Side.BUY, 200, "100.07"))
        wait_for(broker, got, lambda: of(got, "b1") == [EventKind.ACK, EventKind.FILL,
                                                        EventKind.FILL])
        fills = [e.fill for e in got if e.fill is not None]
        assert [(f.qty, f.price) for f in fills] == [(100, Decimal("100.05")),
                                                     (100, Decimal("100.07"))]
        assert [e.leaves_qty for e in got if e.kind is EventKind.FILL] == [100, 0]
        # 2. a resting bid filled later, when the liquidity provider requotes lower (the
        # fills happen on this thread, outside the FIX session's message handling)
        broker.submit(lim("b2", Side.BUY, 300, "99.90"))
        wait_for(broker, got, lambda: of(got, "b2") == [EventKind.ACK])
        lp.quote("AAPL", 99.80, T0)  # asks 99.85 x100, 99.87 x150, 99.89 x200 cross 99.90
        wait_for(broker, got, lambda: of(got, "b2").count(EventKind.FILL) == 3)
        assert sum(e.fill.qty for e in got if e.fill and e.client_order_id == "b2") == 300
        # 3. another participant lifts a resting offer
        broker.submit(lim("s1", Side.SELL, 50, "99.88"))  # inside the provider's 99.89 ask
        wait_for(broker, got, lambda: of(got, "s1") == [EventKind.ACK])
        ex.submit("OTHER", lim("x1", Side.BUY, 30, "99.88"), T0)
        wait_for(broker, got, lambda: of(got, "s1") == [EventKind.ACK, EventKind.FILL])
        # 4. cancel
        broker.submit(lim("c1", Side.BUY, 40, "90.00"))
        wait_for(broker, got, lambda: of(got, "c1") == [EventKind.ACK])
        broker.cancel("c1")
        wait_for(broker, got, lambda: of(got, "c1") == [EventKind.ACK, EventKind.CANCELLED])
        # 5. replace (new price and qty), then the new id fills against the book
        broker.submit(lim("r1", Side.BUY, 40, "90.00"))
        wait_for(broker, got, lambda: of(got, "r1") == [EventKind.ACK])
        broker.replace("r1", lim("r2", Side.BUY, 60, "99.80"))  # best bid now
        wait_for(broker, got, lambda: of(got, "r1") == [EventKind.ACK, EventKind.REPLACED])
        assert ex.order("default", "r2").qty == 60
        ex.submit("OTHER", Order("x2", "AAPL", Side.SELL, 60, T0), T0)  # market sell
        wait_for(broker, got, lambda: of(got, "r2") == [EventKind.FILL])
        # 6. rejects: unknown symbol; cancel of a filled order
        broker.submit(lim("u1", Side.BUY, 1, "10", symbol="ZZZZ"))
        wait_for(broker, got, lambda: of(got, "u1") == [EventKind.REJECTED])
        assert "unknown symbol" in next(e.reason for e in got if e.client_order_id == "u1")
        broker.cancel("b1")
        wait_for(broker, got, lambda: EventKind.CANCEL_REJECTED in of(got, "b1"))
        # positions agree between the broker's fills and the exchange; each fill once
        time.sleep(0.1)
        got += broker.poll_events()
        fills = [e.fill for e in got if e.fill is not None]
        assert len({f.exec_id for f in fills}) == len(fills) == 7
        assert broker.positions() == ex.positions("default") == {"AAPL": Decimal(200 + 300
                                                                         - 30 + 60)}
        assert sorted(v.client_order_id for v in ex.orders("default")) == [
            "b1", "b2", "c1", "r2", "s1"]


def test_possdup_resend_of_a_known_order_is_not_booked_twice(spec_dir: Path) -> None:
    ex = SimulatedExchange(["AAPL"])
    server = FixExchangeServer(ex, spec_dir=spec_dir, begin_string="FIX.4.2")
    session = server.sessions[0]
    app = session.app
    msg = new_order_single(lim("d1", Side.BUY, 10, "99"))
    app.from_app(msg, session)
    assert len(ex.orders("default")) == 1
    again = Message("D", dict(msg.body.fields))
    again.header[43] = "Y"
    app.from_app(again, session)
    assert len(ex.orders("default")) == 1 and server.duplicates == 1
    assert [e.kind for _, e in ex.events_since("default")] == [EventKind.ACK]


def test_order_replayed_after_front_end_restart_is_booked_once(tmp_path: Path,
                                                               spec_dir: Path) -> None:
    """The front end dies after booking an order but before persisting its sequence number:
    the broker replays the order (PossDupFlag=Y) and the exchange keeps one."""
    ex = SimulatedExchange(["AAPL"])
    server = FixExchangeServer(ex, spec_dir=spec_dir, begin_string="FIX.4.2",
                               store_dir=tmp_path / "venue").start()
    port = server.port
    got: list[OrderEvent] = []
    broker = make_broker(port, spec_dir, store=FileStore(tmp_path / "client",
                                                          "KEEL-KEELX")).start(wait_logon=5)
    try:
        broker.submit(lim("k1", Side.BUY, 10, "99"))
        wait_for(broker, got, lambda: of(got, "k1") == [EventKind.ACK])
        server.stop()
        # roll the venue's incoming sequence number back by one, as if the crash lost it
        seqfile = next((tmp_path / "venue").glob("FIX.4.2*.seqnums"))
        sender, target = (int(x) for x in seqfile.read_text().split(":"))
        seqfile.write_text(f"{sender}:{target - 1}")
        broker.submit(lim("k2", Side.BUY, 10, "98"))  # sent while the venue is down
        server = FixExchangeServer(ex, spec_dir=spec_dir, begin_string="FIX.4.2",
                                   store_dir=tmp_path / "venue", port=port).start()
        wait_for(broker, got, lambda: of(got, "k2") == [EventKind.ACK])
        assert [v.client_order_id for v in ex.orders("default")] == ["k1", "k2"]
        assert server.duplicates == 1
        assert of(got, "k1") == [EventKind.ACK]
    finally:
        broker.close()
        server.stop()


def test_bad_configuration_names_the_field(spec_dir: Path) -> None:
    ex = SimulatedExchange()
    with pytest.raises(ConfigError) as e:
        FixExchangeServer(ex, begin_string="FIX.5.0", spec_dir=spec_dir)
    assert e.value.field == "begin_string"
    with pytest.raises(ConfigError) as e:
        FixExchangeServer(ex, clients={}, spec_dir=spec_dir)
    assert e.value.field == "clients"


def test_two_fix_clients_trade_with_each_other_and_ioc_fok(spec_dir: Path) -> None:
    """A resting order of one FIX client is filled by another client's order: the fill
    reaches the first client although it arrives while the loop handles the second's."""
    ex = SimulatedExchange(["AAPL"])
    with FixExchangeServer(ex, spec_dir=spec_dir, clients={"KEEL": "A", "KEEL2": "B"},
                           begin_string="FIX.4.4") as server:
        a = make_broker(server.port, spec_dir, "FIX.4.4").start(wait_logon=5)
        b = FixBroker(SessionConfig("FIX.4.4", "KEEL2", "KEELX"), "127.0.0.1", server.port,
                      spec_dir=str(spec_dir)).start(wait_logon=5)
        ga: list[OrderEvent] = []
        gb: list[OrderEvent] = []
        try:
            a.submit(lim("a1", Side.SELL, 100, "50.00"))
            wait_for(a, ga, lambda: of(ga, "a1") == [EventKind.ACK])
            b.submit(lim("b1", Side.BUY, 40, "50.00"))
            wait_for(b, gb, lambda: of(gb, "b1") == [EventKind.ACK, EventKind.FILL])
            wait_for(a, ga, lambda: of(ga, "a1") == [EventKind.ACK, EventKind.FILL])
            # IOC takes what there is and cancels the rest; FOK that cannot fill is cancelled
            b.submit(lim("b2", Side.BUY, 100, "50.00").with_changes(tif=TimeInForce.IOC))
            wait_for(b, gb, lambda: of(gb, "b2") == [EventKind.ACK, EventKind.FILL,
                                                     EventKind.CANCELLED])
            b.submit(lim("b3", Side.BUY, 10, "50.00").with_changes(tif=TimeInForce.FOK))
            wait_for(b, gb, lambda: of(gb, "b3") == [EventKind.ACK, EventKind.CANCELLED])
            wait_for(a, ga, lambda: of(ga, "a1").count(EventKind.FILL) == 2)
            assert a.positions() == ex.positions("A") == {"AAPL": Decimal(-100)}
            assert b.positions() == ex.positions("B") == {"AAPL": Decimal(100)}
        finally:
            a.close()
            b.close()


def test_fill_while_the_client_is_disconnected_arrives_after_reconnect(spec_dir: Path,
                                                                       tmp_path: Path) -> None:
    ex = SimulatedExchange(["AAPL"])
    with FixExchangeServer(ex, spec_dir=spec_dir, begin_string="FIX.4.2") as server:
        got: list[OrderEvent] = []
        store = FileStore(tmp_path, "KEEL-KEELX")
        broker = make_broker(server.port, spec_dir, store=store).start(wait_logon=5)
        broker.submit(lim("w1", Side.BUY, 10, "99"))
        wait_for(broker, got, lambda: of(got, "w1") == [EventKind.ACK])
        broker.close()
        deadline = time.monotonic() + 5
        while server.logged_on():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        ex.submit("OTHER", Order("x", "AAPL", Side.SELL, 10, T0), T0)  # fills w1 meanwhile
        broker = make_broker(server.port, spec_dir,
                             store=FileStore(tmp_path, "KEEL-KEELX")).start(wait_logon=5)
        try:
            wait_for(broker, got, lambda: of(got, "w1") == [EventKind.ACK, EventKind.FILL])
        finally:
            broker.close()


def test_file_stores_of_the_two_versions_do_not_collide(spec_dir: Path, tmp_path: Path) -> None:
    server = FixExchangeServer(SimulatedExchange(), spec_dir=spec_dir, store_dir=tmp_path)
    assert len(server.sessions) == 2
    names = sorted(p.name for p in tmp_path.glob("*.seqnums"))
    assert len(names) == 2 and names[0].startswith("FIX.4.2") and names[1].startswith("FIX.4.4")
    for s in server.sessions:
        s.store.close()
