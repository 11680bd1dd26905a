"""Order-manager throughput with synchronous durability: one commit per order (``submit`` +
``step`` per order, the figure before group commit) against group commit (``submit_many``
and one ``step`` for a batch: one transaction for the batch's parents, one marking its
children PENDING before any is sent, one for the venue's acks and fills).

    PYTHONPATH=$PWD/src python3 bench/reliability/throughput.py --n 2000 \\
        [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]

Venue: the in-process simulated exchange (``ExchangeBroker``), market orders against deep
liquidity, so every order is acknowledged and filled. Orders/s counts parents submitted,
sent, acknowledged and filled, with every state change and fill committed (SQLite file with
keel's default ``synchronous=FULL``; PostgreSQL default ``synchronous_commit=on``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

from keel.clock import SimulatedClock
from keel.execution.oms import OrderManager
from keel.store.db import Store
from keel.store.orders_repo import OrdersRepo
from keel.types import Order, Side, utc
from keel.venues.exchange.core import LiquidityProvider, SimulatedExchange
from keel.venues.exchange.direct import ExchangeBroker


def _desk(url: str) -> tuple[OrderManager, SimulatedClock, OrdersRepo]:
    clock = SimulatedClock(utc(2024, 1, 2, 15))
    ex = SimulatedExchange(["SPY"])
    LiquidityProvider(ex, levels=5, size=10_000_000).quote("SPY", 400.0, clock.now())
    store = Store.from_url(url)
    store.create_all()
    repo = OrdersRepo(store)
    return OrderManager(ExchangeBroker(ex, clock), repo, clock), clock, repo


def run(url: str, n: int, batch: int) -> float:
    """Orders per second for ``n`` orders submitted ``batch`` at a time (1: no grouping)."""
    oms, clock, repo = _desk(url)
    orders = [Order(f"T{i}-{uuid.uuid4().hex[:6]}", "SPY", Side.BUY if i % 2 else Side.SELL,
                    Decimal(10), clock.now()) for i in range(n)]
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        chunk = orders[i:i + batch]
        if batch == 1:
            oms.submit(chunk[0])
        else:
            oms.submit_many([(o, None) for o in chunk])
        oms.step()
    dt = time.perf_counter() - t0
    assert len(repo.fills()) >= n and not oms.open_parents()
    repo.store.engine.dispose()
    return n / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--pg", default=None)
    args = ap.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f}")
    print("| store | one commit per order (orders/s) | group commit, batch 50 | batch 200 |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as d:
        urls = [("SQLite file (FULL)", f"sqlite:///{Path(d) / 'tp.db'}")]
        if args.pg:
            urls.append(("PostgreSQL", args.pg))
        for name, url in urls:
            single = run(url.replace("tp.db", "tp1.db"), max(100, args.n // 10), 1)
            b50 = run(url.replace("tp.db", "tp50.db"), args.n, 50)
            b200 = run(url.replace("tp.db", "tp200.db"), args.n, 200)
            print(f"| {name} | {single:.0f} | {b50:.0f} | {b200:.0f} |")


if __name__ == "__main__":
    main()
