"""asyncio transport at the edge: TCP (optionally TLS) acceptor and initiator driving sessions.

The transport owns sockets and timers only: bytes go through a
:class:`~keel.venues.fix.codec.FrameSplitter` into :meth:`Session.on_frame`, the session's
output is written back, and :meth:`Session.on_timer` runs every ``tick`` seconds. Outbound data
a peer does not read is bounded by ``max_outbound_bytes`` (the connection is dropped past it);
frames over ``max_message_size`` bytes drop the connection too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl as _ssl
import time
from collections.abc import Callable, Iterable
from typing import cast

from keel.venues.fix.codec import FrameSplitter, InvalidMessage, parse_fields
from keel.venues.fix.session import Session

log = logging.getLogger("keel.venues.fix")

Clock = Callable[[], float]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when it is installed (``pip install keel[fast]``) and
    ``KEEL_FIX_UVLOOP`` is not ``0``, else asyncio's default loop."""
    if os.environ.get("KEEL_FIX_UVLOOP", "1") != "0":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class _Connection(asyncio.Protocol):
    def __init__(self, owner: _Endpoint, session: Session | None) -> None:
        self.owner = owner
        self.session = session
        self.splitter = FrameSplitter(owner.max_message_size)
        self.transport: asyncio.Transport | None = None
        self.opened_at = owner.clock()
        self.closed = asyncio.get_running_loop().create_future()
        self.had_logon = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.owner.connections.add(self)
        if self.session is not None:
            self.session.on_connect(self.owner.clock())
            self.flush()

    def data_received(self, data: bytes) -> None:
        try:
            self._received(data)
        except Exception:  # an application bug must not take the server down
            log.exception("FIX frame processing failed; dropping the connection")
            self.abort()

    def _received(self, data: bytes) -> None:
        frames = self.splitter.feed(data)
        if self.splitter.oversized:
            log.warning("oversized FIX frame; dropping the connection")
            self.abort()
            return
        now = self.owner.clock()
        for f in frames:
            session = self.session
            if session is None:
                session = self.owner.attach(f, self)
                if session is None:
                    self.abort()
                    return
                self.session = session
                session.on_connect(now)
            session.on_frame(f, now)
            if session.disconnect_requested:
                break
        self.flush()

    def tick(self, now: float) -> None:
        if self.session is None:
            if now - self.opened_at > self.owner.logon_timeout:
                self.abort()
            return
        self.session.on_timer(now)
        self.flush()

    def flush(self) -> None:
        session, transport = self.session, self.transport
        if session is None or transport is None:
            return
        if session.is_logged_on:
            self.had_logon = True
        out = session.take_output()
        if out:
            transport.write(out[0] if len(out) == 1 else b"".join(out))
            if transport.get_write_buffer_size() > self.owner.max_outbound_bytes:
                log.warning("%s: peer is not reading; dropping the connection",
                            session.session_id)
                self.abort()
                return
        if session.disconnect_requested:
            self.close()

    def _release(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.on_disconnect(self.owner.clock())
            self.owner.detach(session, self)

    def close(self) -> None:
        self._release()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        self._release()
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        self.owner.connections.discard(self)
        if not self.closed.done():
            self.closed.set_result(None)


class _Endpoint:
    def __init__(self, *, clock: Clock = time.time, tick: float = 0.1,
                 max_message_size: int = 1 << 20, max_outbound_bytes: int = 8 << 20,
                 logon_timeout: float = 10.0) -> None:
        self.clock = clock
        self.tick = tick
        self.max_message_size = max_message_size
        self.max_outbound_bytes = max_outbound_bytes
        self.logon_timeout = logon_timeout
        self.connections: set[_Connection] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._pending_flush: set[Session] = set()

    def attach(self, frame: bytes, conn: _Connection) -> Session | None:
        return None

    def detach(self, session: Session, conn: _Connection) -> None:
        pass

    def connection_of(self, session: Session) -> _Connection | None:
        for c in self.connections:
            if c.session is session:
                return c
        return None

    def flush(self, session: Session) -> None:
        """Write what ``session`` produced outside a callback (e.g. after ``session.send``)."""
        conn = self.connection_of(session)
        if conn is not None:
            conn.flush()
        else:
            session.take_output()

    def flush_soon(self, session: Session) -> None:
        """Flush ``session`` at the end of this loop iteration: a burst of ``send`` calls
        (e.g. several orders handed over at once) leaves in one write."""
        if session not in self._pending_flush:
            self._pending_flush.add(session)
            asyncio.get_running_loop().call_soon(self._flush_pending)

    def _flush_pending(self) -> None:
        pending, self._pending_flush = self._pending_flush, set()
        for session in pending:
            self.flush(session)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            now = self.clock()
            for c in list(self.connections):
                try:
                    c.tick(now)
                except Exception:  # a bug in one session must not stop the others' timers
                    log.exception("FIX timer failed; dropping the connection")
                    c.abort()


class Acceptor(_Endpoint):
    """Serve ``sessions`` on ``host:port``; each connection is bound to the session its first
    frame names (BeginString, SenderCompID, TargetCompID) or dropped.

    A second connection for a session that already has one is dropped (duplicate identity).
    """

    def __init__(self, sessions: Iterable[Session], host: str = "127.0.0.1", port: int = 0, *,
                 ssl: _ssl.SSLContext | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.sessions = {(s.config.begin_string, s.config.sender_comp_id,
                          s.config.target_comp_id): s for s in sessions}
        self.host, self.port, self.ssl = host, port, ssl
        self._active: dict[Session, _Connection] = {}
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen; returns the bound port (useful with ``port=0``)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self, None), self.host,
                                                self.port, ssl=self.ssl, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ticker = asyncio.create_task(self._tick_loop())
        return self.port

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self._server is not None:
            self._server.close()
        for c in list(self.connections):
            c.abort()

    def attach(self, frame: bytes, conn: _Connection) -> Session | None:
        try:
            fields = dict(parse_fields(frame.decode("latin-1")))
        except InvalidMessage:
            return None
        key = (fields.get(8, ""), fields.get(56, ""), fields.get(49, ""))
        session = self.sessions.get(key)
        if session is None:
            log.info("no session for %s; dropping the connection", key)
            return None
        if session in self._active:
            log.info("%s already connected; dropping the new connection", session.session_id)
            return None
        self._active[session] = conn
        return session

    def detach(self, session: Session, conn: _Connection) -> None:
        if self._active.get(session) is conn:
            del self._active[session]

    def connection_of(self, session: Session) -> _Connection | None:
        return self._active.get(session)


class Initiator(_Endpoint):
    """Keep ``session`` connected to ``host:port``, reconnecting with exponential backoff
    (``reconnect_interval`` doubling up to ``max_backoff`` seconds, reset after a Logon)."""

    def __init__(self, session: Session, host: str, port: int, *,
                 ssl: _ssl.SSLContext | None = None, server_hostname: str | None = None,
                 reconnect_interval: float = 0.5, max_backoff: float = 30.0,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.session = session
        self.host, self.port = host, port
        self.ssl, self.server_hostname = ssl, server_hostname
        self.reconnect_interval = reconnect_interval
        self.max_backoff = max_backoff
        self.connects = 0
        self._stopping = False
        self._stop_event: asyncio.Event | None = None
        self._conn: _Connection | None = None

    async def run(self) -> None:
        """Connect, wait for the connection to end, back off, repeat until :meth:`stop`."""
        loop = asyncio.get_running_loop()
        self._ticker = asyncio.create_task(self._tick_loop())
        self._stop_event = asyncio.Event()
        if self._stopping:
            self._stop_event.set()
        delay = self.reconnect_interval
        try:
            while not self._stopping:
                try:
                    _, conn = await loop.create_connection(
                        lambda: _Connection(self, self.session), self.host, self.port,
                        ssl=self.ssl,
                        server_hostname=self.server_hostname if self.ssl else None)
                except OSError as exc:
                    log.info("%s: connect failed (%s); retry in %.1f s",
                             self.session.session_id, exc, delay)
                else:
                    self.connects += 1
                    self._conn = conn
                    await conn.closed
                    self._conn = None
                    if conn.had_logon:
                        delay = self.reconnect_interval
                if self._stopping:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_event.wait(), delay)
                delay = min(delay * 2, self.max_backoff)
        finally:
            self._ticker.cancel()

    def stop(self) -> None:
        """Stop reconnecting and drop the connection (call on the loop's thread)."""
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()
        if self._conn is not None:
            self._conn.abort()

    def connection_of(self, session: Session) -> _Connection | None:
        return self._conn if self._conn is not None and self._conn.session is session else None
