"""`keel run` as a real subprocess: SIGKILL mid-day and restart, then the store, the ledger and
the exchange must agree (no lost, no duplicated order); SIGTERM drains and exits 0.

The exchange lives in the test process (REST front end on localhost), so it survives the
trading process being killed, exactly like a real venue would.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from keel.app.venue import fix_spec_dir, fix_unavailable
from keel.clock import WallClock
from keel.config import DataConfig
from keel.data.source import load_market
from keel.portfolio.ledger import Ledger
from keel.store.audit import AuditLog
from keel.store.db import Store
from keel.store.orders_repo import OrdersRepo
from keel.types import OrderStatus
from keel.venues.exchange.core import SimulatedExchange
from keel.venues.exchange.rest_api import create_rest_app
from keel.venues.exchange.server import BackgroundServer
from keel.venues.exchange.simulator import MarketSimulator

SRC = Path(__file__).resolve().parents[2] / "src"
NAV = 10_000_000
MARKET = ["--assets", "30", "--days", "300", "--seed", "3"]
CYCLE = re.compile(r"CYCLE \S+ engine=\S+ triggers=(\S+) orders=(\d+) working=(\d+) "
                   r"fills=(\d+)")


@pytest.fixture
def exchange():
    """A simulated exchange quoting around the synthetic market's last closes, with its REST
    API and (when the FIX dictionaries are found) its FIX acceptor: (exchange, url, fix port)."""
    market = load_market(DataConfig(n_assets=30, n_days=300), seed=3)
    clock = WallClock()
    ex = SimulatedExchange(list(market.symbols), starting_cash=NAV)
    sim = MarketSimulator(ex, market.latest("prices").to_dict(), 0.02, seed=1)
    sim.quote_all(clock.now())
    server = BackgroundServer(create_rest_app(ex, clock, {"keel": "default"})).start()
    fix = None
    if fix_unavailable() is None:
        from keel.venues.exchange.fix_front import FixExchangeServer

        fix = FixExchangeServer(ex, clock=clock, spec_dir=fix_spec_dir()).start()
    yield ex, server.url, None if fix is None else fix.port
    if fix is not None:
        fix.stop()
    server.stop()


def _keel_run(out: Path, *args: str) -> subprocess.Popen[str]:
    # 4 slices over 30 minutes: a short day keeps the test cheap, the kill still lands mid-way
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONUNBUFFERED": "1", "COLUMNS": "200",
           "KEEL_EXECUTION__SLICES": "4"}
    env.pop("KEEL_STORE__URL", None)
    cmd = [sys.executable, "-m", "keel", "run", "--out-dir", str(out), *MARKET,
           "--nav", str(NAV), "--horizon-minutes", "30", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)


def _read_until(proc: subprocess.Popen[str], done, timeout: float = 90.0) -> list[str]:
    """Lines of ``proc`` until ``done(line)`` is true (or the process ends)."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line.rstrip())
        if done(line) or time.monotonic() > deadline:
            break
    return lines


def _mid_execution(line: str) -> bool:
    m = CYCLE.search(line)
    return bool(m) and int(m.group(4)) > 0 and int(m.group(3)) > 0


def _venue(url: str, fix_port: int | None) -> list[str]:
    """FIX with REST fallback when the exchange has a FIX acceptor, else REST."""
    if fix_port is None:
        return ["--venue", "rest", "--rest-url", url]
    return ["--venue", "fix", "--fix-port", str(fix_port), "--rest-url", url]


def _start_mid_execution(out: Path, venue: list[str], *args: str
                         ) -> tuple[subprocess.Popen[str], list[str]]:
    """A `keel run` read until a bar where fills arrived and parents are still working."""
    proc = _keel_run(out, *venue, *args)
    lines = _read_until(proc, _mid_execution)
    assert _mid_execution(lines[-1]), "\n".join(lines)
    return proc, lines


def _check_agreement(out: Path, ex: SimulatedExchange) -> dict[str, int]:
    """Store, ledger and exchange tell the same story."""
    store = Store.from_url(f"sqlite:///{out / 'keel.db'}")
    repo = OrdersRepo(store)
    parents = repo.parents()
    children = repo.children()
    fills = [f for f, _ in repo.fills()]
    # no duplicated booking
    assert len({f.exec_id for f in fills}) == len(fills)
    # every order the exchange saw for us is a stored child, each exactly once
    venue = {o.client_order_id: o for o in ex.orders("default")}
    stored = {c.client_order_id: c for c in children}
    assert set(venue) <= set(stored), "an order reached the venue without being stored"
    sent = {coid for coid, _, to, _, _ in repo.events()
            if coid in stored and to == OrderStatus.PENDING.value}
    assert sent == set(venue), "a stored, sent child never reached the venue (lost)"
    # quantities agree child by child, and no parent is overfilled
    for coid, o in venue.items():
        assert stored[coid].filled_qty == o.cum_qty, coid
    by_parent = Counter()
    for f, pid in repo.fills():
        by_parent[pid] += f.qty
    for p in parents:
        assert p.filled_qty == by_parent.get(p.client_order_id, 0)
        assert p.filled_qty <= p.order.qty
        assert not p.status.is_open
    # the ledger rebuilt from the store holds what the exchange says we hold
    ledger = Ledger.open(store, clock=WallClock())
    ex_pos = {s: q for s, q in ex.positions("default").items() if q != 0}
    assert {s: p.qty for s, p in ledger.positions.items()} == ex_pos
    assert ledger.cash == ex.cash("default")
    assert ledger.state.net_deposits == Decimal(NAV)  # funded once, not at each restart
    return {"parents": len(parents), "children_sent": len(sent), "fills": len(fills)}


def test_sigkill_mid_day_then_restart_agrees(tmp_path, exchange):
    ex, url, fix_port = exchange
    venue = _venue(url, fix_port)
    out = tmp_path / "run"
    first, lines = _start_mid_execution(out, venue, "--interval", "0.4")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    decided = [int(m.group(2)) for m in map(CYCLE.search, lines) if m]
    n_parents = sum(decided)
    assert n_parents > 0

    # the restart finishes the day's orders; then SIGTERM stops it cleanly
    second = _keel_run(out, *venue, "--interval", "0.05")
    head = _read_until(second, lambda line: bool(CYCLE.search(line))
                       and CYCLE.search(line).group(3) == "0")  # type: ignore[union-attr]
    second.send_signal(signal.SIGTERM)
    tail, _ = second.communicate(timeout=60)
    rest = "\n".join(head) + "\n" + tail
    assert second.returncode == 0, rest
    assert re.search(r"RECOVERED loaded=[1-9]", rest), rest
    cycles = [m for m in map(CYCLE.search, rest.splitlines()) if m]
    # the restart held while the first rebalance was still working, then no new rebalance
    assert cycles[0].group(1) == "WORKING_ORDERS"
    assert sum(int(m.group(2)) for m in cycles) == 0
    assert "STOPPED" in rest
    if fix_port is not None:  # the children went over the FIX session, none over REST
        assert re.search(r"ROUTES primary=\d+\n", rest), rest
        assert "venue fix" in "\n".join(lines)
    counts = _check_agreement(out, ex)
    assert counts["parents"] == n_parents
    audit = AuditLog(Store.from_url(f"sqlite:///{out / 'keel.db'}"))
    assert len(audit.query(action="live.recover")) == 2


@pytest.mark.slow
def test_sigterm_mid_execution_cancels_and_exits_zero(tmp_path, exchange):
    ex, url, _ = exchange
    out = tmp_path / "run"
    proc, _ = _start_mid_execution(out, _venue(url, None), "--interval", "0.4")
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    m = re.search(r"STOPPED bars=\d+ cancelled=(\d+) still_open=(\d+)", rest)
    assert m, rest
    assert int(m.group(1)) > 0 and int(m.group(2)) == 0
    _check_agreement(out, ex)
    assert not [o for o in ex.orders("default", open_only=True)]
    store = Store.from_url(f"sqlite:///{out / 'keel.db'}")
    statuses = Counter(p.status for p in OrdersRepo(store).parents())
    assert statuses[OrderStatus.CANCELLED] > 0


@pytest.mark.slow
@pytest.mark.parametrize("delays", [(0.0, 0.05, 0.13)])
def test_repeated_sigkills_inside_the_bar(tmp_path, exchange, delays):
    """Kills landing inside a bar's pumping (short interval, a delay after the bar's line)."""
    ex, url, fix_port = exchange
    venue = _venue(url, fix_port)
    out = tmp_path / "run"
    for delay in delays:
        proc, _ = _start_mid_execution(out, venue, "--interval", "0.02")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    last = _keel_run(out, *venue, "--interval", "0.02", "--max-bars", "12")
    text, _ = last.communicate(timeout=120)
    assert last.returncode == 0, text
    counts = _check_agreement(out, ex)
    assert counts["fills"] > 0


@pytest.mark.slow
def test_default_local_venue_and_control_file(tmp_path):
    """`keel run` with its defaults (in-process exchange, FIX with REST fallback when FIX is
    available): engine switched and the run stopped through the control file."""
    out = tmp_path / "run"
    out.mkdir()
    control = out / "control.json"
    proc = _keel_run(out, "--interval", "0.2")
    lines = _read_until(proc, _mid_execution)
    control.write_text('{"engine": "greedy"}')
    lines += _read_until(proc, lambda line: "engine=greedy" in line)
    control.write_text('{"stop": true}')
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    text = "\n".join(lines) + rest
    assert "engine=greedy" in text and "STOPPED" in text
    if fix_unavailable() is None:
        assert "venue local (fix" in text
        assert re.search(r"ROUTES primary=\d+", text), text
    store = Store.from_url(f"sqlite:///{out / 'keel.db'}")
    assert [r.payload for r in AuditLog(store).query(action="live.engine")] == [
        {"from": "mean_variance", "to": "greedy"}]
    assert not OrdersRepo(store).parents(open_only=True)
