"""A single-writer lease kept in the store: two live loops on one book must never run at once.

``keel run`` takes the lease named ``keel-run`` before it touches the book and renews it from a
heartbeat thread; a second ``keel run`` on the same store refuses to start (or waits) while the
lease is held. A holder that dies without releasing (SIGKILL, a lost pod) blocks the next writer
for at most one time-to-live: after ``expires_at`` the lease may be taken over, and at once when
the holder was a process on the same host that no longer exists.

The row update is a compare-and-set inside one transaction (``BEGIN IMMEDIATE`` on SQLite,
``SELECT ... FOR UPDATE`` on PostgreSQL), so two contenders can never both win. Expiry is
judged by the contender's clock: hosts sharing a store are assumed NTP-synchronised to well
within the time-to-live (default 30 s).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from keel.clock import Clock, WallClock
from keel.errors import LeaseHeldError, StoreError, ValidationError
from keel.store.db import Store
from keel.store.tables import LeaseRow

log = logging.getLogger("keel.store.lease")

#: the lease every ``keel run`` on one store contends for
LIVE_LEASE = "keel-run"


def default_holder() -> str:
    """``host:pid:random``: unique per process, readable in an error message."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_gone(holder: str) -> bool:
    """True when ``holder`` (``host:pid:random``) names a process on this host that no longer
    exists: a SIGKILLed ``keel run`` restarted on the same machine takes over at once instead
    of waiting out the time-to-live. Another host's holder, or an unparseable id, is never
    judged gone (only expiry frees it); a live pid, even if reused, keeps the lease."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


class Lease:
    """A named, expiring, renewable lease on ``store``.

    Args:
        store: the store (migrated to a revision that has the ``leases`` table).
        name: the lease's name (``keel-run`` for the live loop).
        ttl_s: time-to-live in seconds; the heartbeat renews every ``ttl_s / 3``.
        holder: this holder's id (default :func:`default_holder`).
        clock: time source for expiry (default the wall clock: a lease is about real time even
            when the trading loop runs on a simulated clock).
        on_lost: called (from the heartbeat thread) when a renewal finds the lease taken
            over: the holder must stop writing (``keel run`` drains and exits).
    """

    def __init__(self, store: Store, name: str = LIVE_LEASE, *, ttl_s: float = 30.0,
                 holder: str | None = None, clock: Clock | None = None,
                 on_lost: Callable[[], None] | None = None) -> None:
        if not (ttl_s > 0 and ttl_s < 86_400):
            raise ValidationError("lease time-to-live must be in (0, 86400) seconds",
                                  field="ttl_s", value=ttl_s)
        if not name or len(name) > 64:
            raise ValidationError("lease name must be 1-64 characters", field="name", value=name)
        self.store = store
        self.name = name
        self.ttl = timedelta(seconds=ttl_s)
        self.holder = holder or default_holder()
        self.clock: Clock = clock or WallClock()
        self.on_lost = on_lost
        self._held = False
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ state

    @property
    def held(self) -> bool:
        """True between a successful :meth:`acquire` and :meth:`release` (unless lost)."""
        return self._held and not self._lost.is_set()

    @property
    def lost(self) -> bool:
        """True once a renewal found the lease taken over (the holder must stop writing)."""
        return self._lost.is_set()

    def current(self) -> tuple[str, datetime] | None:
        """``(holder, expires_at)`` of the lease as stored, or None when nobody holds it."""
        with self.store.session() as s:
            row = s.get(LeaseRow, self.name)
            return None if row is None else (row.holder, row.expires_at)

    # ------------------------------------------------------------------ acquire / renew

    def _take(self, *, renew_only: bool) -> None:
        now = self.clock.now()
        with self.store.session(immediate=True) as s:
            row = s.get(LeaseRow, self.name, with_for_update=True)
            if row is None:
                if renew_only:
                    raise LeaseHeldError("lease lost: its row is gone", field="lease",
                                         value=self.name, holder=self.holder)
                s.add(LeaseRow(name=self.name, holder=self.holder, acquired_at=now,
                               expires_at=now + self.ttl))
                return
            ours = row.holder == self.holder
            gone = not ours and not renew_only and holder_is_gone(row.holder)
            if not ours and not gone and (renew_only or row.expires_at > now):
                raise LeaseHeldError(
                    "lease lost: taken over by another holder" if renew_only
                    else "another process holds the single-writer lease",
                    field="lease", value=self.name, holder=row.holder,
                    expires_at=row.expires_at.isoformat())
            if not ours:
                log.warning("taking over lease %s from %s (%s)", self.name, row.holder,
                            "its process is gone" if gone
                            else f"expired {row.expires_at.isoformat()}")
                row.acquired_at = now
            row.holder = self.holder
            row.expires_at = now + self.ttl

    def acquire(self) -> Lease:
        """Take the lease, or raise :class:`~keel.errors.LeaseHeldError` naming its holder.

        Taking a lease this holder already has just renews it.
        """
        try:
            self._take(renew_only=False)
        except StoreError as exc:
            # Two first-time contenders on PostgreSQL: the loser's INSERT hits the primary key.
            if isinstance(exc, LeaseHeldError) or not isinstance(exc.__cause__, IntegrityError):
                raise
            held = self.current()
            raise LeaseHeldError("another process holds the single-writer lease",
                                 field="lease", value=self.name,
                                 holder=held[0] if held else None) from None
        self._held = True
        self._lost.clear()
        return self

    def acquire_waiting(self, timeout_s: float, *, poll_s: float = 0.5) -> Lease:
        """:meth:`acquire`, retrying every ``poll_s`` for up to ``timeout_s`` seconds."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.acquire()
            except LeaseHeldError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(poll_s)

    def renew(self) -> None:
        """Push ``expires_at`` one time-to-live ahead; ``LeaseHeldError`` if taken over."""
        try:
            self._take(renew_only=True)
        except LeaseHeldError:
            self._lost.set()
            raise

    def release(self) -> None:
        """Stop the heartbeat and delete the lease if this holder still has it."""
        self.stop_heartbeat()
        if self._held:
            with self.store.session() as s:
                s.execute(delete(LeaseRow).where(LeaseRow.name == self.name,
                                                 LeaseRow.holder == self.holder))
        self._held = False

    # ------------------------------------------------------------------ heartbeat

    def start_heartbeat(self) -> None:
        """Renew every ``ttl / 3`` from a daemon thread until :meth:`release`.

        A renewal that finds the lease taken over sets :attr:`lost` and ends the thread; a
        store outage is logged and retried (the lease expires if it lasts a whole ttl).
        """
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _beat(self) -> None:
        period = self.ttl.total_seconds() / 3
        while not self._stop.wait(period):
            try:
                self.renew()
            except LeaseHeldError as exc:
                log.error("single-writer lease lost: %s", exc)
                if self.on_lost is not None:
                    self.on_lost()
                return
            except StoreError as exc:
                log.warning("lease renewal failed (will retry): %s", exc)

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> Lease:
        self.acquire()
        self.start_heartbeat()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
