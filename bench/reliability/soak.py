"""Soak: a desk (order manager + SQLite store) trading against the in-process simulated
exchange with a requoting liquidity provider, bar after bar; samples RSS and the sizes of the
structures that used to grow without bound.

    PYTHONPATH=$PWD/src python3 bench/reliability/soak.py --bars 20000 --every 1000

prints a table (bar, RSS MB, exchange live / finished orders, OMS records in memory) that is
copied into docs/benchmarks.md. tests/venues/test_soak.py runs a short version in CI.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from keel.clock import SimulatedClock
from keel.execution.oms import OrderManager
from keel.store.db import Store
from keel.store.orders_repo import OrdersRepo
from keel.types import ChildOrder, Order, OrderType, Side, utc
from keel.venues.exchange.core import LiquidityProvider, SimulatedExchange
from keel.venues.exchange.direct import ExchangeBroker
from keel.venues.exchange.simulator import MarketSimulator

MIDS = {"AAPL": 100.0, "MSFT": 200.0, "SPY": 400.0}


def rss_mb() -> float:
    """Resident set size of this process, MB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass(frozen=True)
class Sample:
    bar: int
    rss_mb: float
    exchange_live: int
    exchange_finished: int
    oms_in_memory: int
    fills: int


def run(bars: int, every: int, db_dir: Path, orders_per_bar: int = 2, seed: int = 0,
        levels: int = 5, max_finished: int = 10_000, max_events: int = 20_000
        ) -> list[Sample]:
    """Trade ``bars`` one-minute bars; a :class:`Sample` every ``every`` bars (and bar 1)."""
    rng = random.Random(seed)
    clock = SimulatedClock(utc(2024, 1, 2, 14, 30))
    ex = SimulatedExchange(list(MIDS), max_events=max_events)
    ex.engine.max_finished = max_finished
    sim = MarketSimulator(ex, MIDS, seed=seed,
                          provider=LiquidityProvider(ex, levels=levels))
    sim.quote_all(clock.now())
    store = Store.from_url(f"sqlite:///{db_dir / 'soak.db'}")
    store.create_all()
    oms = OrderManager(ExchangeBroker(ex, clock), OrdersRepo(store), clock)
    fills = 0

    def count(_fill: object, _parent: object) -> None:
        nonlocal fills
        fills += 1

    oms.add_fill_listener(count)
    out: list[Sample] = []
    for bar in range(1, bars + 1):
        now = clock.advance(60)
        mids = sim.step(now, 60)
        for sym, mid in mids.items():
            oms.on_price(sym, mid)
        for k in range(orders_per_bar):
            pid, sym = f"B{bar}-{k}", rng.choice(list(MIDS))
            qty = Decimal(rng.randrange(1, 300))
            if k % 2:  # a limit that rests below the market for three bars, then expires
                px = Decimal(f"{mids[sym] * 0.995:.2f}")
                kid = ChildOrder(f"{pid}-0", pid, sym, Side.BUY, qty, now,
                                 order_type=OrderType.LIMIT, limit_price=px,
                                 expire_at=now + timedelta(minutes=3))
                oms.submit(Order(pid, sym, Side.BUY, qty, now, order_type=OrderType.LIMIT,
                                 limit_price=px), [kid])
            else:
                oms.submit(Order(pid, sym, rng.choice(list(Side)), qty, now))
        oms.step()
        if bar % every == 0 or bar == 1:
            out.append(Sample(bar, rss_mb(), ex.engine.live_count(),
                              len(ex.engine._finished), oms.in_memory(), fills))
    store.engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=20_000)
    ap.add_argument("--every", type=int, default=1_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        samples = run(args.bars, args.every, Path(d))
    print(f"load average: {os.getloadavg()[0]:.2f}")
    print("| bar | RSS MB | exchange live | exchange finished | OMS in memory | fills |")
    print("|---:|---:|---:|---:|---:|---:|")
    for s in samples:
        print(f"| {s.bar} | {s.rss_mb:.1f} | {s.exchange_live} | {s.exchange_finished} | "
              f"{s.oms_in_memory} | {s.fills} |")


if __name__ == "__main__":
    main()
