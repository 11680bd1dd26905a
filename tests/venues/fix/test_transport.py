"""Real sockets: acceptor and initiator, TLS, reconnect, and hostile peers."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.venues.fix.conftest import fixify

from keel.venues.fix.application import Application
from keel.venues.fix.codec import FrameSplitter, Message, decode, format_utc
from keel.venues.fix.session import Session, SessionConfig
from keel.venues.fix.sim import AckFillApplication
from keel.venues.fix.transport import Acceptor, Initiator


class Loop:
    """An asyncio loop in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 10):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], object]) -> None:
        self.loop.call_soon_threadsafe(fn)

    def stop(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def loop() -> Iterator[Loop]:
    lp = Loop()
    yield lp
    lp.stop()


def venue_session(dd, app: Application | None = None, **kw) -> Session:
    kw.setdefault("reset_on_logon", True)
    return Session(SessionConfig("FIX.4.2", "ISLD", "TW42", **kw), dd,
                   application=app or AckFillApplication())


def start_acceptor(loop: Loop, sessions: list[Session], **kw) -> Acceptor:
    acc = Acceptor(sessions, "127.0.0.1", 0, **kw)
    loop.run(acc.start())
    return acc


def wait(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


class Client:
    """A raw TCP peer speaking as TW42."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sp = FrameSplitter()
        self.seq = 1
        self.frames: list[bytes] = []

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, body: str) -> None:
        stamp = format_utc(time.time(), millis=False)
        mt, _, rest = body.partition("|")
        self.send_raw(fixify(f"8=FIX.4.2|{mt}|34={self.seq}|49=TW42|52={stamp}|56=ISLD|{rest}"))
        self.seq += 1

    def recv(self, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while not self.frames:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.frames += self.sp.feed(data)
        return self.frames.pop(0)

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def logon(self) -> bytes:
        self.send("35=A|98=0|108=30|")
        return self.recv()

    def close(self) -> None:
        self.sock.close()


def test_garbage_before_logon_is_skipped(loop: Loop, dd42) -> None:
    s = venue_session(dd42)
    acc = start_acceptor(loop, [s])
    c = Client(acc.port)
    c.send_raw(b"\x00\xffjunk\x01\x01 8=nothing\x01")
    assert b"35=A" in c.logon()
    assert s.is_logged_on
    c.close()


def test_garbage_only_connection_is_closed_after_logon_timeout(loop: Loop, dd42) -> None:
    acc = start_acceptor(loop, [venue_session(dd42)], logon_timeout=0.3)
    c = Client(acc.port)
    c.send_raw(b"x" * 10_000)
    assert c.closed_by_peer(5)


def test_unknown_session_and_bad_checksum_logon_are_dropped(loop: Loop, dd42) -> None:
    acc = start_acceptor(loop, [venue_session(dd42)])
    c = Client(acc.port)
    c.send_raw(fixify("8=FIX.4.2|35=A|34=1|49=NOBODY|52=20251121-08:30:00|56=ISLD|98=0|108=30|"))
    assert c.closed_by_peer()
    c2 = Client(acc.port)
    stamp = format_utc(time.time(), millis=False)
    good = fixify(f"8=FIX.4.2|35=A|34=1|49=TW42|52={stamp}|56=ISLD|98=0|108=30|")
    c2.send_raw(good[:-4] + (b"000" if not good.endswith(b"=000\x01") else b"001") + b"\x01")
    assert c2.closed_by_peer()


def test_oversized_message_drops_the_connection(loop: Loop, dd42) -> None:
    s = venue_session(dd42)
    acc = start_acceptor(loop, [s], max_message_size=4096)
    c = Client(acc.port)
    c.logon()
    c.send_raw(b"8=FIX.4.2\x019=100000\x0135=0\x01" + b"A" * 8000)
    assert c.closed_by_peer()
    assert wait(lambda: not s.is_logged_on)
    c2 = Client(acc.port)  # the acceptor lives on
    assert b"35=A" in c2.logon()
    c2.close()


def test_corrupt_frames_after_logon_are_ignored(loop: Loop, dd42) -> None:
    s = venue_session(dd42)
    acc = start_acceptor(loop, [s])
    c = Client(acc.port)
    c.logon()
    stamp = format_utc(time.time(), millis=False)
    hb = fixify(f"8=FIX.4.2|35=0|34=2|49=TW42|52={stamp}|56=ISLD|")
    c.send_raw(hb.replace(b"9=47", b"9=46"))  # wrong BodyLength
    c.send_raw(hb[:-4] + (b"001" if not hb.endswith(b"=001\x01") else b"002") + b"\x01")
    c.seq = 2
    c.send("35=1|112=ALIVE|")
    assert b"112=ALIVE" in c.recv()
    c.close()


def test_truncated_frame_swallows_the_next_and_the_gap_is_recovered(loop: Loop, dd42) -> None:
    s = venue_session(dd42)
    acc = start_acceptor(loop, [s])
    c = Client(acc.port)
    c.logon()
    c.send_raw(b"8=FIX.4.2\x019=5\x0135=")  # cut short: framed up to the next CheckSum
    c.send("35=1|112=LOST|")  # seq 2, swallowed with the garbage
    c.send("35=1|112=NEXT|")  # seq 3: too high
    rr = decode(c.recv(), dd42)
    assert (rr.msg_type, rr[7], rr[16]) == ("2", "2", "0")
    assert s.is_logged_on
    c.close()


def test_duplicate_connection_is_dropped_and_first_survives(loop: Loop, dd42) -> None:
    s = venue_session(dd42)
    acc = start_acceptor(loop, [s])
    c1, c2 = Client(acc.port), Client(acc.port)
    c1.logon()
    c2.send("35=A|98=0|108=30|")
    assert c2.closed_by_peer()
    c1.send("35=1|112=STILL|")
    assert b"112=STILL" in c1.recv()


class Flood(Application):
    def from_app(self, msg: Message, session: Session) -> None:
        for i in range(3000):
            session.send(Message("8", {37: str(i), 58: "x" * 10_000}))


def test_peer_that_stops_reading_is_dropped(loop: Loop, dd42) -> None:
    s = venue_session(dd42, Flood())
    acc = start_acceptor(loop, [s], max_outbound_bytes=256 * 1024)
    c = Client(acc.port)
    c.logon()
    c.send("35=D|11=ID|21=1|40=1|54=1|55=X|60=20251121-08:30:00|")
    assert wait(lambda: not s.is_logged_on)  # never read: dropped, not buffered forever
    c.close()


def _initiator(dd, port: int, **kw) -> tuple[Session, Initiator]:
    ses = Session(SessionConfig("FIX.4.2", "TW42", "ISLD", initiator=True), dd,
                  application=Application())
    return ses, Initiator(ses, "127.0.0.1", port, reconnect_interval=0.05, **kw)


def test_initiator_connects_late_and_reconnects(loop: Loop, dd42) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ses, ini = _initiator(dd42, port, max_backoff=0.2)
    fut = asyncio.run_coroutine_threadsafe(ini.run(), loop.loop)
    time.sleep(0.3)  # nobody listening yet: connect fails and backs off
    venue = venue_session(dd42, reset_on_logon=False)
    acc = Acceptor([venue], "127.0.0.1", port)
    loop.run(acc.start())
    assert wait(lambda: ses.is_logged_on)
    conn = acc.connection_of(venue)
    assert conn is not None
    loop.call(conn.abort)  # the venue drops us
    assert wait(lambda: not ses.is_logged_on)
    assert wait(lambda: ses.is_logged_on and ini.connects >= 2)
    loop.call(ini.stop)
    fut.result(5)


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not available to make a test certificate")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    return cert, key


def test_tls_session(loop: Loop, dd42, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    venue = venue_session(dd42, reset_on_logon=False)
    acc = start_acceptor(loop, [venue], ssl=server_ctx)
    ses, ini = _initiator(dd42, acc.port, ssl=client_ctx, server_hostname="localhost")
    fut = asyncio.run_coroutine_threadsafe(ini.run(), loop.loop)
    assert wait(lambda: ses.is_logged_on and venue.is_logged_on)
    loop.call(ini.stop)
    fut.result(5)
    sent = decode(venue.store.get(1, 1)[0][1], dd42)
    assert sent.msg_type == "A"


class Crashy(Application):
    def from_app(self, msg: Message, session: Session) -> None:
        raise KeyError("application bug")


def test_application_crash_drops_only_that_connection(loop: Loop, dd42) -> None:
    s = venue_session(dd42, Crashy())
    acc = start_acceptor(loop, [s])
    c = Client(acc.port)
    c.logon()
    c.send("35=D|11=ID|21=1|40=1|54=1|55=X|60=20251121-08:30:00|")
    assert c.closed_by_peer()
    c2 = Client(acc.port)
    assert b"35=A" in c2.logon()
    c2.close()


def test_unparseable_order_gets_a_business_reject(loop: Loop, dd42) -> None:
    acc = start_acceptor(loop, [venue_session(dd42)])
    c = Client(acc.port)
    c.logon()
    c.send("35=D|11=ID|21=1|40=1|54=1|55=X|60=20251121-08:30:00|")  # no OrderQty
    j = decode(c.recv(), dd42)
    assert (j.msg_type, j[380], j[45]) == ("j", "0", "2")
    c.close()
