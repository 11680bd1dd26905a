"""Interop with a real QuickFIX engine (its Python binding), both directions, over TCP.

1. QuickFIX initiator -> keel's exchange (``FixExchangeServer``): logon, an order filled in two
   partial fills, a resting order, a cancel, a connection dropped by the venue while the
   resting order fills (the fills reach QuickFIX by resend, PossDup), an order QuickFIX sent
   while down (resent PossDup, booked once), a sequence gap answered by QuickFIX's
   SequenceReset-GapFill, logout.
2. keel's ``FixBroker`` initiator -> QuickFIX acceptor: logon, order filled, resting order,
   cancel, dropped connection with messages queued on both sides (resent both ways, PossDup),
   a QuickFIX sequence jump keel fills with a gap fill request, logout.

Slow; runs only where ``import quickfix`` works (build it with ``bench/fix/build_quickfix.sh``
and run ``bench/fix/.venv-quickfix/bin/python -m pytest -m slow -s`` on this file).
"""

from __future__ import annotations

import queue
import tempfile
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from keel.types import EventKind, Order, OrderEvent, OrderType, Side, utc
from keel.venues.exchange.core import LiquidityProvider, SimulatedExchange
from keel.venues.exchange.fix_front import FixExchangeServer
from keel.venues.fix.broker import FixBroker
from keel.venues.fix.session import SessionConfig
from keel.venues.fix.store import FileStore

try:
    import quickfix as fix
except ImportError:  # pragma: no cover - depends on the optional build
    fix = None

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(fix is None, reason="QuickFIX binding not importable: build it with "
                       "bench/fix/build_quickfix.sh and run this file with its venv's python"),
]

T0 = utc(2024, 1, 2, 15)
D = Decimal
LOG: list[str] = []


def until(pred: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n" + "\n".join(LOG[-30:]))
        time.sleep(0.02)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cfg(folder: Path, spec_dir: Path, role: str, sender: str, target: str, port: int) -> str:
    extra = (f"SocketAcceptPort={port}\n" if role == "acceptor" else
             f"SocketConnectHost=127.0.0.1\nSocketConnectPort={port}\nHeartBtInt=30\n"
             "ReconnectInterval=1\n")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{role}.cfg"
    path.write_text(
        f"[DEFAULT]\nConnectionType={role}\nStartTime=00:00:00\nEndTime=00:00:00\n"
        f"UseDataDictionary=Y\nDataDictionary={spec_dir}/FIX42.xml\nResetOnLogon=N\n"
        f"FileStorePath={folder}/store\nSocketNodelay=Y\n{extra}"
        f"[SESSION]\nBeginString=FIX.4.2\nSenderCompID={sender}\nTargetCompID={target}\n")
    return str(path)


def _fields(msg: Any, tags: tuple[int, ...]) -> dict[int, str]:
    return {t: msg.getField(t) for t in tags if msg.isSetField(t)}


class _QfApp(fix.Application if fix is not None else object):  # type: ignore[misc]
    """Records every message QuickFIX hands up; ``on_app`` lets a test answer."""

    def __init__(self, name: str, on_app: Callable[[Any, Any], None] | None = None) -> None:
        super().__init__()
        self.name = name
        self.sid: Any = None
        self.logons = 0
        self.logouts = 0
        self.app: queue.SimpleQueue[tuple[str, dict[int, str], bool]] = queue.SimpleQueue()
        self.admin: list[str] = []
        self.on_app = on_app

    def onCreate(self, sid: Any) -> None:
        self.sid = sid

    def onLogon(self, sid: Any) -> None:
        self.logons += 1
        LOG.append(f"[{self.name}] logon #{self.logons}")

    def onLogout(self, sid: Any) -> None:
        self.logouts += 1
        LOG.append(f"[{self.name}] logout #{self.logouts}")

    def toAdmin(self, msg: Any, sid: Any) -> None:
        LOG.append(f"[{self.name}] -> admin {msg.toString().replace(chr(1), '|')}")

    def fromAdmin(self, msg: Any, sid: Any) -> None:
        mt = msg.getHeader().getField(35)
        self.admin.append(mt)
        LOG.append(f"[{self.name}] <- admin {msg.toString().replace(chr(1), '|')}")

    def toApp(self, msg: Any, sid: Any) -> None:
        LOG.append(f"[{self.name}] -> app {msg.toString().replace(chr(1), '|')}")

    def fromApp(self, msg: Any, sid: Any) -> None:
        h = msg.getHeader()
        mt = h.getField(35)
        possdup = h.isSetField(43) and h.getField(43) == "Y"
        LOG.append(f"[{self.name}] <- app {msg.toString().replace(chr(1), '|')}")
        self.app.put((mt, _fields(msg, (11, 17, 37, 39, 41, 55, 14, 31, 32, 38, 150, 151)),
                      possdup))
        if self.on_app is not None:
            self.on_app(msg, sid)

    def take(self, n: int, timeout: float = 10.0) -> list[tuple[str, dict[int, str], bool]]:
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            try:
                out.append(self.app.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"{self.name}: got {out}, wanted {n}\n"
                                     + "\n".join(LOG[-30:])) from None
        return out


def _session(sid: Any) -> Any:
    return fix.Session.lookupSession(sid)


def _nos(cl_ord_id: str, side: str, qty: int, px: str) -> Any:
    m = fix.Message()
    m.getHeader().setField(fix.MsgType("D"))
    for tag, value in ((11, cl_ord_id), (21, "1"), (55, "AAPL"), (54, side), (38, str(qty)),
                       (40, "2"), (44, px), (59, "0"), (60, "20240102-15:00:00.000")):
        m.setField(tag, value)
    return m


# --------------------------------------------------------------------- 1. QuickFIX -> keel


@pytest.fixture
def exchange(spec_dir: Path) -> Iterator[tuple[SimulatedExchange, LiquidityProvider,
                                               FixExchangeServer]]:
    ex = SimulatedExchange(["AAPL"])
    lp = LiquidityProvider(ex, half_spread_bps=5, levels=3, level_step_bps=2, size=100)
    lp.quote("AAPL", 100.0, T0)  # asks 100.05 x100, 100.07 x150, ...; bids mirrored
    with tempfile.TemporaryDirectory() as store, \
            FixExchangeServer(ex, spec_dir=spec_dir, begin_string="FIX.4.2",
                              store_dir=store) as server:
        yield ex, lp, server


def test_quickfix_initiator_against_keel_exchange(exchange, spec_dir: Path,
                                                  tmp_path: Path) -> None:
    ex, _, server = exchange
    LOG.append("=== QuickFIX initiator -> keel exchange ===")
    settings = fix.SessionSettings(_cfg(tmp_path, spec_dir, "initiator", "KEEL", "KEELX",
                                        server.port))
    app = _QfApp("qf-ini")
    store, log = fix.FileStoreFactory(settings), fix.ScreenLogFactory(False, False, False)
    ini = fix.SocketInitiator(app, store, settings, log)  # (the factories stay referenced)
    ini.start()
    try:
        until(lambda: app.logons == 1, what="logon")
        sid = app.sid
        # an order that takes two ask levels: ack, partial fill, fill
        fix.Session.sendToTarget(_nos("q1", "1", 200, "100.07"), sid)
        got = app.take(3)
        assert [(m, f[150], f[39]) for m, f, _ in got] == [("8", "0", "0"), ("8", "1", "1"),
                                                             ("8", "2", "2")]
        assert [(f[32], f[31]) for _, f, _ in got[1:]] == [("100", "100.05"),
                                                          ("100", "100.07")]
        # a resting order, then its cancel
        fix.Session.sendToTarget(_nos("q2", "1", 50, "90"), sid)
        assert app.take(1)[0][1][150] == "0"
        cxl = fix.Message()
        cxl.getHeader().setField(fix.MsgType("F"))
        for tag, value in ((41, "q2"), (11, "q2x"), (55, "AAPL"), (54, "1"), (38, "50"),
                           (60, "20240102-15:00:00.000")):
            cxl.setField(tag, value)
        fix.Session.sendToTarget(cxl, sid)
        (m, f, _), = app.take(1)
        assert (m, f[150], f[39], f[11], f[41]) == ("8", "4", "4", "q2x", "q2")
        # a resting bid; the venue drops the connection; the bid fills while QuickFIX is away
        fix.Session.sendToTarget(_nos("q3", "1", 30, "99.97"), sid)  # inside the spread
        assert app.take(1)[0][1][150] == "0"
        sess = server.sessions[0]
        server._loop.call_soon_threadsafe(  # type: ignore[union-attr]
            lambda: server._acceptor.connection_of(sess).abort())  # type: ignore[union-attr]
        until(lambda: app.logouts == 1, what="drop")
        ex.submit("OTHER", Order("x1", "AAPL", Side.SELL, D(30), T0,
                                 order_type=OrderType.LIMIT, limit_price=D("99.97")), T0)
        # ... and QuickFIX sends an order while it is down (stored, resent after logon)
        fix.Session.sendToTarget(_nos("q4", "1", 10, "100.09"), sid)  # takes the 100.07s
        until(lambda: app.logons == 2, timeout=15, what="reconnect")
        got = app.take(3)  # the fill of q3 (resent, PossDup) and q4's ack + fill
        by_id = {(f[11], f[150]): dup for _, f, dup in got}
        assert by_id[("q3", "2")] is True  # replayed by keel's resend
        assert ("q4", "0") in by_id and ("q4", "2") in by_id
        assert ex.order("default", "q4").cum_qty == 10  # booked once
        # a sequence gap: QuickFIX jumps its sender number; keel asks for the gap and
        # QuickFIX answers with SequenceReset-GapFill; the next order goes through
        qs = _session(sid)
        nxt = qs.getExpectedSenderNum()
        qs.setNextSenderMsgSeqNum(nxt + 5)
        fix.Session.sendToTarget(_nos("q5", "1", 10, "100.09"), sid)
        got = app.take(2)
        assert [f[150] for _, f, _ in got] == ["0", "2"]
        until(lambda: sess.store.next_target == qs.getExpectedSenderNum() >= nxt + 6
              and qs.getExpectedTargetNum() == sess.store.next_sender,
              what="sequence numbers in step")
        assert "2" in app.admin  # keel's ResendRequest reached QuickFIX
        # orderly logout
        ini.stop()
        until(lambda: not sess.is_logged_on, what="logout")
    finally:
        ini.stop(True)
        del ini, store, log


# --------------------------------------------------------------------- 2. keel -> QuickFIX


class _QfVenue:
    """QuickFIX acceptor answering NewOrderSingle with ack (+ fill unless the price is below
    95) and OrderCancelRequest with a cancel (or a reject for an unknown order)."""

    def __init__(self, folder: Path, spec_dir: Path, port: int) -> None:
        self.resting: dict[str, tuple[str, str]] = {}
        self.n = 0
        self.app = _QfApp("qf-acc", self._answer)
        settings = fix.SessionSettings(_cfg(folder, spec_dir, "acceptor", "QFX", "KEEL", port))
        # the factories must outlive the acceptor: SWIG does not keep them alive for C++
        self._keep = (settings, fix.FileStoreFactory(settings),
                      fix.ScreenLogFactory(False, False, False))
        self.acc = fix.SocketAcceptor(self.app, self._keep[1], settings, self._keep[2])
        self.acc.start()

    def er(self, cl_ord_id: str, qty: str, px: str, exec_type: str, status: str,
           cum: str, last: str = "0", orig: str | None = None) -> Any:
        self.n += 1
        m = fix.Message()
        m.getHeader().setField(fix.MsgType("8"))
        leaves = "0" if status in ("2", "4") else str(int(qty) - int(cum))
        for tag, value in ((37, f"O-{orig or cl_ord_id}"), (17, f"QE{self.n}"), (20, "0"),
                           (150, exec_type), (39, status), (11, cl_ord_id), (55, "AAPL"),
                           (54, "1"), (38, qty), (151, leaves), (14, cum), (6, px)):
            m.setField(tag, value)
        if last != "0":
            m.setField(32, last)
            m.setField(31, px)
        if orig:
            m.setField(41, orig)
        return m

    def _answer(self, msg: Any, sid: Any) -> None:
        mt = msg.getHeader().getField(35)
        if mt == "D":
            cid, qty, px = msg.getField(11), msg.getField(38), msg.getField(44)
            fix.Session.sendToTarget(self.er(cid, qty, px, "0", "0", "0"), sid)
            if D(px) >= 95:
                fix.Session.sendToTarget(self.er(cid, qty, px, "2", "2", qty, qty), sid)
            else:
                self.resting[cid] = (qty, px)
        elif mt == "F":
            orig, cid = msg.getField(41), msg.getField(11)
            if orig in self.resting:
                qty, px = self.resting.pop(orig)
                fix.Session.sendToTarget(self.er(cid, qty, px, "4", "4", "0", orig=orig), sid)
            else:
                r = fix.Message()
                r.getHeader().setField(fix.MsgType("9"))
                for tag, value in ((37, "NONE"), (11, cid), (41, orig), (39, "8"),
                                   (434, "1")):
                    r.setField(tag, value)
                fix.Session.sendToTarget(r, sid)


def _events(broker: FixBroker, got: list[OrderEvent], pred: Callable[[], bool],
            what: str) -> None:
    def check() -> bool:
        got.extend(broker.poll_events())
        return pred()

    until(check, timeout=15, what=what)


def _kinds(got: list[OrderEvent], cid: str) -> list[EventKind]:
    return [e.kind for e in got if e.client_order_id == cid]


def test_keel_initiator_against_quickfix_acceptor(spec_dir: Path, tmp_path: Path) -> None:
    LOG.append("=== keel FixBroker -> QuickFIX acceptor ===")
    port = _free_port()
    venue = _QfVenue(tmp_path / "qf", spec_dir, port)
    cfg = SessionConfig("FIX.4.2", "KEEL", "QFX", heartbeat_interval=30)
    store = FileStore(tmp_path / "keel", cfg.session_id)
    broker = FixBroker(cfg, "127.0.0.1", port, spec_dir=str(spec_dir), store=store,
                       reconnect_interval=2.0, max_backoff=2.0)  # time to queue while down
    got: list[OrderEvent] = []
    try:
        broker.start(wait_logon=10)
        until(lambda: venue.app.logons == 1, what="QuickFIX saw the logon")

        def lim(cid: str, qty: int, px: str) -> Order:
            return Order(cid, "AAPL", Side.BUY, D(qty), T0, order_type=OrderType.LIMIT,
                         limit_price=D(px))

        broker.submit(lim("k1", 100, "100"))
        _events(broker, got, lambda: _kinds(got, "k1") == [EventKind.ACK, EventKind.FILL],
                "k1 filled")
        fill = next(e.fill for e in got if e.fill is not None)
        assert (fill.qty, fill.price, fill.exec_id) == (D(100), D(100), "QE2")
        broker.submit(lim("k2", 40, "90"))
        _events(broker, got, lambda: _kinds(got, "k2") == [EventKind.ACK], "k2 acked")
        broker.cancel("k2")
        _events(broker, got, lambda: _kinds(got, "k2") == [EventKind.ACK, EventKind.CANCELLED],
                "k2 cancelled")
        broker.cancel("k1")  # filled: QuickFIX's venue rejects the cancel
        _events(broker, got, lambda: EventKind.CANCEL_REJECTED in _kinds(got, "k1"),
                "cancel reject")
        # a resting order, then the connection drops; while it is down keel sends an order
        # and QuickFIX fills the resting one: both are resent after the next logon
        broker.submit(lim("k3", 25, "90"))
        _events(broker, got, lambda: _kinds(got, "k3") == [EventKind.ACK], "k3 acked")
        loop = broker._loop
        assert loop is not None
        loop.call_soon_threadsafe(lambda: broker.initiator._conn.abort())  # type: ignore[union-attr]
        until(lambda: not broker.is_logged_on and venue.app.logouts == 1, what="drop")
        broker.submit(lim("k4", 10, "100"))  # stored, resent PossDup on QuickFIX's request
        fix.Session.sendToTarget(venue.er("k3", "25", "90", "2", "2", "25", "25"),
                                 venue.app.sid)
        until(lambda: broker.is_logged_on, timeout=15, what="reconnect")
        _events(broker, got, lambda: _kinds(got, "k3")[-1:] == [EventKind.FILL]
                and _kinds(got, "k4") == [EventKind.ACK, EventKind.FILL], "resends")
        assert sum(1 for e in got if e.kind is EventKind.FILL) == 3  # nothing doubled
        seen = []
        while not venue.app.app.empty():
            seen.append(venue.app.app.get())
        assert ("D", "k4", True) in [(m, f.get(11), dup) for m, f, dup in seen]  # keel's resend
        assert any(line.startswith("[qf-acc] -> app") and "43=Y" in line and "11=k3" in line
                   for line in LOG)  # QuickFIX's resend of the fill
        assert broker.positions() == {"AAPL": D(135)}
        # a sequence jump on QuickFIX's side: keel asks for the gap, QuickFIX gap-fills
        qs = _session(venue.app.sid)
        nxt = qs.getExpectedSenderNum()
        qs.setNextSenderMsgSeqNum(nxt + 4)
        broker.submit(lim("k5", 5, "100"))
        _events(broker, got, lambda: _kinds(got, "k5") == [EventKind.ACK, EventKind.FILL],
                "k5 after the gap")
        # sequence numbers agree both ways once the gap is filled
        until(lambda: broker.session.store.next_target == qs.getExpectedSenderNum()
              and qs.getExpectedTargetNum() == broker.session.store.next_sender,
              what="sequence numbers in step")
        assert broker.session.store.next_target >= nxt + 6
        assert any("35=2" in line and line.startswith("[qf-acc] <- admin") for line in LOG)
        assert any("35=4" in line and "123=Y" in line for line in LOG)  # QuickFIX's GapFill
    finally:
        broker.close()
        until(lambda: venue.app.logouts >= 2, what="logout")
        venue.acc.stop()
    print("\n".join(LOG))
