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
from collections.abc import Iterator
from contextlib import contextmanager
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


def run(url: str, n: int, batch: int) -> tuple[float, float]:
    """Orders per second for ``n`` orders submitted ``batch`` at a time (1: no grouping):
    by the wall clock, and per CPU second of this process (what the desk itself costs; on a
    shared machine the wall figure also counts waiting for a core)."""
    oms, clock, repo = _desk(url)
    orders = [Order(f"T{i}-{uuid.uuid4().hex[:6]}", "SPY", Side.BUY if i % 2 else Side.SELL,
                    Decimal(10), clock.now()) for i in range(n)]
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, n, batch):
        chunk = orders[i:i + batch]
        if batch == 1:
            oms.submit(chunk[0])
        else:
            oms.submit_many([(o, None) for o in chunk])
        oms.step()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert len(repo.fills()) >= n and not oms.open_parents()
    repo.store.engine.dispose()
    return n / dt, n / cpu


@contextmanager
def pg_schema(url: str) -> Iterator[str]:
    """A scratch PostgreSQL schema for one run (dropped afterwards; nothing in ``public``)."""
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield (sa.engine.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
               .render_as_string(hide_password=False))
    finally:
        with eng.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        eng.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--pg", default=None)
    args = ap.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f}")
    print("orders/s by the wall clock (per CPU second of the desk process)")
    print("| store | one commit per order | group commit, batch 50 | batch 200 |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as d:
        urls = [("SQLite file (FULL)", f"sqlite:///{Path(d) / 'tp.db'}")]
        if args.pg:
            urls.append(("PostgreSQL", args.pg))
        for name, url in urls:
            figures = []
            for tag, n, batch in (("1", max(100, args.n // 10), 1), ("50", args.n, 50),
                                  ("200", args.n, 200)):
                if url.startswith("sqlite"):
                    figures.append(run(url.replace("tp.db", f"tp{tag}.db"), n, batch))
                else:
                    with pg_schema(url) as scratch:
                        figures.append(run(scratch, n, batch))
            print(f"| {name} | " + " | ".join(f"{w:.0f} ({c:.0f})" for w, c in figures) + " |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
