"""The single-writer lease: one holder at a time, expiry after a SIGKILL, on SQLite and PG."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keel.clock import SimulatedClock
from keel.errors import LeaseHeldError, ValidationError
from keel.store import Store
from keel.store.lease import Lease, holder_is_gone

SRC = Path(__file__).resolve().parents[2] / "src"
T0 = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)


def test_second_holder_is_refused_until_release(store: Store) -> None:
    clock = SimulatedClock(T0)
    a = Lease(store, ttl_s=30, holder="a", clock=clock).acquire()
    b = Lease(store, ttl_s=30, holder="b", clock=clock)
    with pytest.raises(LeaseHeldError) as err:
        b.acquire()
    assert err.value.context["holder"] == "a"
    assert "expires_at" in err.value.context
    assert b.current() == ("a", T0 + timedelta(seconds=30))
    a.release()
    assert b.current() is None
    b.acquire()
    assert b.current() is not None and b.current()[0] == "b"  # type: ignore[index]


def test_expired_lease_is_taken_over_and_old_holder_learns_it(store: Store) -> None:
    clock = SimulatedClock(T0)
    a = Lease(store, ttl_s=10, holder="a", clock=clock).acquire()
    b = Lease(store, ttl_s=10, holder="b", clock=clock)
    clock.advance(9.999)
    with pytest.raises(LeaseHeldError):
        b.acquire()                       # not yet expired
    clock.advance(0.002)
    b.acquire()                           # expired: taken over
    with pytest.raises(LeaseHeldError, match="lost"):
        a.renew()
    assert a.lost and not a.held
    a.release()                           # must not delete b's lease
    assert b.current() == ("b", T0 + timedelta(seconds=20.001))


def test_a_dead_holder_on_this_host_is_taken_over_at_once(store: Store) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    clock = SimulatedClock(T0)
    Lease(store, ttl_s=30, holder=f"{host}:{dead.pid}:deadbeef", clock=clock).acquire()
    Lease(store, ttl_s=30, holder="next", clock=clock).acquire()          # pid gone: taken
    Lease(store, name="other", ttl_s=30, holder=f"{host}:{os.getpid()}:alive001",
          clock=clock).acquire()
    with pytest.raises(LeaseHeldError):                                   # pid alive: held
        Lease(store, name="other", ttl_s=30, holder="next", clock=clock).acquire()
    Lease(store, name="far", ttl_s=30, holder="elsewhere:1:x", clock=clock).acquire()
    with pytest.raises(LeaseHeldError):                                   # other host: held
        Lease(store, name="far", ttl_s=30, holder="next", clock=clock).acquire()
    assert holder_is_gone(f"{host}:{dead.pid}:x") and not holder_is_gone("victim")


def test_renewal_pushes_expiry(store: Store) -> None:
    clock = SimulatedClock(T0)
    a = Lease(store, ttl_s=10, holder="a", clock=clock).acquire()
    clock.advance(8)
    a.renew()
    clock.advance(8)                      # 16 s after acquire, 8 s after the renewal
    with pytest.raises(LeaseHeldError):
        Lease(store, ttl_s=10, holder="b", clock=clock).acquire()


def test_concurrent_contenders_one_winner(store: Store) -> None:
    winners: list[str] = []
    barrier = threading.Barrier(6)

    def contend(name: str) -> None:
        lease = Lease(store, ttl_s=30, holder=name)
        barrier.wait()
        try:
            lease.acquire()
            winners.append(name)
        except LeaseHeldError:
            pass

    threads = [threading.Thread(target=contend, args=(f"h{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert Lease(store, holder="x").current()[0] == winners[0]  # type: ignore[index]


def test_bad_arguments_are_named(store: Store) -> None:
    with pytest.raises(ValidationError, match="ttl_s"):
        Lease(store, ttl_s=0)
    with pytest.raises(ValidationError, match="name"):
        Lease(store, name="")


HOLDER = textwrap.dedent("""
    import sys, time
    from keel.store import Store
    from keel.store.lease import Lease, holder_is_gone
    lease = Lease(Store.from_url(sys.argv[1]), ttl_s=float(sys.argv[2]), holder="victim")
    lease.acquire(); lease.start_heartbeat()
    print("held", flush=True)
    time.sleep(600)
""")


@pytest.mark.slow  # waits out a real time-to-live
def test_lease_of_a_sigkilled_holder_expires(store: Store, db_url: str) -> None:
    ttl = 5.0  # renewed every ttl/3: ample slack for a loaded machine
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p))
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, db_url, str(ttl)],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        time.sleep(ttl / 2)
        with pytest.raises(LeaseHeldError):
            Lease(store, ttl_s=ttl, holder="next").acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    with pytest.raises(LeaseHeldError):   # a dead holder still blocks until its expiry...
        Lease(store, ttl_s=ttl, holder="next").acquire()
    expires = Lease(store, holder="probe").current()[1]  # type: ignore[index]
    # ...and not past it (the order of events is checked, not how long they took)
    nxt = Lease(store, ttl_s=ttl, holder="next").acquire_waiting(timeout_s=ttl * 6, poll_s=0.1)
    assert nxt.held and nxt.current()[0] == "next"  # type: ignore[index]
    assert nxt.current()[1] > expires  # type: ignore[index]
