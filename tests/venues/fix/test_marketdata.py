"""Top-of-book market data over FIX: FixBroker -> FixExchangeServer over localhost sockets.

Snapshots (35=W) match the exchange's book read independently; liquidity requotes (which
produce no account event) and a client's own order reach the subscriber as incremental
refreshes (35=X: change / new / delete); bad requests get a MarketDataRequestReject (35=Y).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from keel.types import Order, OrderType, Side, utc
from keel.venues.exchange.core import LiquidityProvider, SimulatedExchange
from keel.venues.exchange.fix_front import FixExchangeServer
from keel.venues.fix.broker import FixBroker
from keel.venues.fix.codec import Message
from keel.venues.fix.marketdata import (
    MarketDataPublisher,
    MarketDataView,
    TopOfBook,
    exchange_book_reader,
    market_data_request,
)
from keel.venues.fix.session import SessionConfig

T0 = utc(2024, 1, 2, 15)
D = Decimal


def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


@pytest.fixture
def venue(spec_dir) -> Iterator[tuple[SimulatedExchange, LiquidityProvider, FixExchangeServer]]:
    ex = SimulatedExchange(["AAPL", "MSFT"])
    lp = LiquidityProvider(ex, half_spread_bps=5, levels=3, level_step_bps=2, size=100)
    lp.quote("AAPL", 100.0, T0)  # best 99.95 x100 / 100.05 x100
    with FixExchangeServer(ex, spec_dir=spec_dir) as server:
        yield ex, lp, server


@pytest.mark.parametrize("begin", ["FIX.4.2", "FIX.4.4"])
def test_snapshot_then_incremental_refreshes(venue, spec_dir, begin: str) -> None:
    ex, lp, server = venue
    with FixBroker(SessionConfig(begin, "KEEL", "KEELX"), "127.0.0.1", server.port,
                   spec_dir=str(spec_dir), reconnect_interval=0.05) as broker:
        assert broker.wait_logged_on(5)
        req = broker.subscribe_market_data(["AAPL", "MSFT"])
        until(lambda: broker.top_of_book("AAPL") is not None
              and broker.top_of_book("MSFT") is not None)
        aapl = broker.top_of_book("AAPL")
        assert aapl is not None
        # the independent read of the book, straight from the matching engine
        book = ex.engine.book("AAPL")
        assert (aapl.bid_px, aapl.bid_qty) == (book.best_bid(), D(100)) == (D("99.95"), D(100))
        assert (aapl.ask_px, aapl.ask_qty) == (book.best_ask(), D(100)) == (D("100.05"), D(100))
        assert broker.top_of_book("MSFT") == TopOfBook("MSFT", sending_time=aapl.sending_time) \
            or broker.top_of_book("MSFT").bid_px is None  # empty book: no entries
        # a requote from the liquidity provider (no account event): pushed by the timer
        lp.quote("AAPL", 101.0, T0)
        until(lambda: broker.top_of_book("AAPL").bid_px == D("100.95"))
        assert broker.top_of_book("AAPL").ask_px == D("101.05")
        # our own order improves the bid: reported through the drain after the order
        broker.submit(Order("b1", "AAPL", Side.BUY, D(7), T0, order_type=OrderType.LIMIT,
                            limit_price=D("101.00")))
        until(lambda: broker.top_of_book("AAPL").bid_px == D("101.00"))
        assert broker.top_of_book("AAPL").bid_qty == D(7)
        # a new side on an empty book (279=0) and its deletion (279=2)
        ex.submit("OTHER", Order("m1", "MSFT", Side.SELL, D(5), T0,
                                 order_type=OrderType.LIMIT, limit_price=D("300")), T0)
        until(lambda: broker.top_of_book("MSFT").ask_px == D(300))
        ex.cancel("OTHER", "m1", T0)
        until(lambda: broker.top_of_book("MSFT").ask_px is None)
        assert broker.market_data.rejects == {}
        # unsubscribe: later changes are not sent
        broker.unsubscribe_market_data(req)
        until(lambda: server.market_data.subscriptions == 0)
        n = broker.market_data.updates
        lp.quote("AAPL", 102.0, T0)
        time.sleep(0.3)
        assert broker.market_data.updates == n


def test_unknown_symbol_is_rejected(venue, spec_dir) -> None:
    _, _, server = venue
    with FixBroker(SessionConfig("FIX.4.2", "KEEL", "KEELX"), "127.0.0.1", server.port,
                   spec_dir=str(spec_dir), reconnect_interval=0.05) as broker:
        assert broker.wait_logged_on(5)
        req = broker.subscribe_market_data(["ZZZZ"])
        until(lambda: req in broker.market_data.rejects)
        assert broker.market_data.rejects[req].startswith("0:")  # 281=0 unknown symbol
        assert "ZZZZ" in broker.market_data.rejects[req]
        assert server.market_data.subscriptions == 0


class _Sink:
    """A stand-in session for the sans-I/O publisher: records what it would send."""

    def __init__(self, begin: str = "FIX.4.2") -> None:
        self.config = SessionConfig(begin, "KEELX", "KEEL")
        self.is_logged_on = True
        self.sent: list[Message] = []

    def send(self, msg: Message, now: float | None = None) -> int:
        self.sent.append(msg)
        return len(self.sent)


def test_publisher_rejects_what_it_cannot_serve() -> None:
    ex = SimulatedExchange(["AAPL"])
    pub = MarketDataPublisher(exchange_book_reader(ex))
    s = _Sink()
    deep = market_data_request("r1", ["AAPL"])
    deep[264] = "5"
    trades = market_data_request("r2", ["AAPL"])
    trades.body.set_group(267, [{269: "2"}])
    dup = market_data_request("r3", ["AAPL"])
    for m in (deep, trades, dup, dup):
        pub.on_request(m, s)  # type: ignore[arg-type]
    kinds = [(m.msg_type, m.get(262), m.get(281)) for m in s.sent]
    assert kinds == [("Y", "r1", "5"), ("Y", "r2", "8"), ("W", "r3", None), ("Y", "r3", "1")]
    assert s.sent[2].body.groups[268] == []  # empty book: a snapshot with no entries
    assert pub.subscriptions == 1


def test_view_folds_snapshot_and_increments() -> None:
    v = MarketDataView()
    w = Message("W", {262: "r", 55: "AAPL"})
    w.body.set_group(268, [{269: "0", 270: "9.5", 271: "100"}, {269: "1", 270: "9.6", 271: "50"}])
    v.on_message(w, 1.0)
    x = Message("X", {262: "r"})
    x.body.set_group(268, [{279: "1", 269: "0", 55: "AAPL", 270: "9.55", 271: "10"},
                           {279: "2", 269: "1", 55: "AAPL", 270: "9.6"}])
    v.on_message(x, 2.0)
    assert v.get("AAPL") == TopOfBook("AAPL", D("9.55"), D(10), None, None, 2.0)
