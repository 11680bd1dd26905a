"""Group commit: a batch of parents, the PENDING marks of the due children and a drained
batch of venue events each go to the store in one transaction, with the same end state as
one commit per change, and an acknowledged batch survives kill -9."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

from keel.clock import SimulatedClock
from keel.errors import OrderRejected
from keel.execution.checks import MaxQty
from keel.execution.oms import OrderManager
from keel.store.db import Store
from keel.store.orders_repo import OrdersRepo
from keel.types import Order, Side, utc
from keel.venues.exchange.core import LiquidityProvider, SimulatedExchange
from keel.venues.exchange.direct import ExchangeBroker

T0 = utc(2024, 1, 2, 15)


def _desk(url: str) -> tuple[OrderManager, OrdersRepo]:
    clock = SimulatedClock(T0)
    ex = SimulatedExchange(["SPY"], epoch="E")
    LiquidityProvider(ex, levels=3, size=100_000).quote("SPY", 400.0, clock.now())
    store = Store.from_url(url)
    store.create_all()
    repo = OrdersRepo(store)
    return OrderManager(ExchangeBroker(ex, clock), repo, clock, checks=[MaxQty(500)]), repo


def _orders() -> list[Order]:
    return [Order(f"G{i}", "SPY", Side.BUY if i % 3 else Side.SELL,
                  Decimal(900 if i == 7 else 10 + i), T0) for i in range(40)]


def _state(repo: OrdersRepo) -> list[tuple]:
    parents = [(p.client_order_id, p.status, p.filled_qty, p.avg_price)
               for p in repo.parents()]
    kids = [(k.client_order_id, k.status, k.filled_qty) for k in repo.children()]
    fills = sorted((f.client_order_id, f.qty, f.price) for f, _ in repo.fills())
    trail = sorted((c, a or "", b) for c, a, b, _, _ in repo.events())
    return [parents, kids, fills, trail]


def test_group_commit_ends_where_one_commit_per_change_does(tmp_path: Path) -> None:
    one, repo1 = _desk(f"sqlite:///{tmp_path / 'one.db'}")
    for o in _orders():
        with contextlib.suppress(OrderRejected):
            one.submit(o)
        one.step()
    many, repo2 = _desk(f"sqlite:///{tmp_path / 'many.db'}")
    recs = many.submit_many([(o, None) for o in _orders()])
    assert [r.status.value for r in recs].count("REJECTED") == 1  # G7 over MaxQty
    many.step()
    assert _state(repo1) == _state(repo2)
    assert len(repo2.fills()) >= 39 and not many.open_parents()
    # an id already known returns its stored record, nothing is rewritten
    again = many.submit_many([(_orders()[0], None)])
    assert again[0].status.value == "FILLED" and len(repo2.parents()) == 40


WORKER = textwrap.dedent("""
    import sys, time
    from decimal import Decimal
    from keel.clock import SimulatedClock
    from keel.execution.oms import OrderManager
    from keel.store.db import Store
    from keel.store.orders_repo import OrdersRepo
    from keel.types import Order, Side, utc
    from keel.venues.exchange.core import LiquidityProvider, SimulatedExchange
    from keel.venues.exchange.direct import ExchangeBroker

    clock = SimulatedClock(utc(2024, 1, 2, 15))
    store = Store.from_url(sys.argv[1]); store.create_all()
    ex = SimulatedExchange(["SPY"])
    LiquidityProvider(ex, levels=3, size=10_000_000).quote("SPY", 400.0, clock.now())
    oms = OrderManager(ExchangeBroker(ex, clock), OrdersRepo(store), clock)
    # the ledger's view: a fill heard here was acknowledged, so it must be durable
    oms.add_fill_listener(lambda f, p: print("FILL", f.exec_id, flush=True))
    n = 0
    while True:
        batch = [(Order(f"K{n + i}", "SPY", Side.BUY, Decimal(5), clock.now()), None)
                 for i in range(100)]
        oms.submit_many(batch)
        n += 100
        print("ACKED", n, flush=True)  # every order up to n is durable now
        oms.step()
""")


def test_an_acknowledged_batch_survives_kill_9(db_url: str) -> None:
    """Orders returned by ``submit_many`` and fills heard by a listener (the ledger) are in
    the store after kill -9, on SQLite and PostgreSQL."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", WORKER, db_url], stdout=subprocess.PIPE,
                            text=True, env=env)
    acked, heard = 0, set()
    assert proc.stdout is not None
    for line in proc.stdout:
        kind, value = line.split()
        if kind == "FILL":
            heard.add(value)
        else:
            acked = int(value)
        if acked >= 500 and len(heard) >= 300:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    store = Store.from_url(db_url)
    repo = OrdersRepo(store)
    stored = {p.client_order_id for p in repo.parents()}
    assert {f"K{i}" for i in range(acked)} <= stored
    assert len(repo.children()) == len(stored)  # each parent with its child, never half
    assert heard <= {f.exec_id for f, _ in repo.fills()}
    store.engine.dispose()
