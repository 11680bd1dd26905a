"""Execution-layer speed: scheduling, order-manager throughput with the paper broker, TCA.

Usage:  PYTHONPATH=src python bench/execution/bench_speed.py
Prints one line per measurement (best of ``--repeat`` runs, wall time).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pandas as pd

from keel.clock import SimulatedClock
from keel.execution.feedback import TCA
from keel.execution.oms import OrderManager
from keel.execution.profile import VolumeProfile
from keel.execution.schedule import (
    TWAP,
    VWAP,
    ExecutionContext,
    ImplementationShortfall,
    ScheduleConfig,
    allocate,
)
from keel.store.db import Store
from keel.store.orders_repo import OrdersRepo
from keel.types import Order, Side, utc
from keel.venues.fills import BarFillModel
from keel.venues.paper import PaperBroker

T0 = utc(2013, 10, 8, 13, 30)


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bars() -> pd.DataFrame:
    idx = pd.date_range(T0, periods=390, freq="min")
    p = np.full(390, 100.0)
    return pd.DataFrame({"open": p, "high": p, "low": p, "close": p,
                         "volume": np.full(390, 10_000.0), "bid": p - 0.01, "ask": p + 0.01},
                        index=idx)


def oms_run(n_children: int) -> tuple[int, OrdersRepo]:
    clock = SimulatedClock(T0)
    store = Store.from_url("sqlite://")
    store.create_all()
    repo = OrdersRepo(store)
    broker = PaperBroker(clock, BarFillModel({"SPY": bars()}, participation=0.05))
    oms = OrderManager(broker, repo, clock, sleep=lambda s: None)
    parent = Order("B1", "SPY", Side.BUY, Decimal(1000 * n_children), T0)
    kids = TWAP(ScheduleConfig(n_slices=n_children)).schedule(
        parent, ExecutionContext(price=100.0), clock)
    oms.submit(parent, kids, algo="twap", arrival_price=100)
    for _ in range(391):
        oms.step()
        clock.advance(timedelta(minutes=1))
    return len(repo.fills()), repo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    ctx = ExecutionContext(price=100.0, adv_shares=5e6)
    clock = SimulatedClock(T0)
    parent = Order("P", "SPY", Side.BUY, Decimal(123_457), T0)
    prof = VolumeProfile.flat()
    for name, sched in [("TWAP", TWAP()), ("VWAP", VWAP(prof)),
                        ("IS", ImplementationShortfall(urgency=2.0))]:
        t = best(lambda s=sched: [s.schedule(parent, ctx, clock) for _ in range(100)],
                 args.repeat)
        print(f"schedule {name} (13 slices): {1e3 * t / 100:.2f} ms per parent")
    w = np.random.default_rng(0).random(10_000)
    t = best(lambda: allocate(Decimal(10_000_000), w, lot_size=100,
                              min_child_qty=Decimal(200)), args.repeat)
    print(f"allocate 10,000 slices exactly: {1e3 * t:.1f} ms")
    t0 = time.perf_counter()
    n_fills, repo = oms_run(390)
    dt = time.perf_counter() - t0
    print(f"OMS + paper broker, 390 children, 391 one-minute steps, {n_fills} fills "
          f"(in-memory SQLite): {dt:.2f} s = {n_fills / dt:,.0f} fills/s booked")
    t = best(lambda: TCA(repo, {"SPY": bars()}).report().to_text(), args.repeat)
    print(f"TCA report over {n_fills} fills: {1e3 * t:.0f} ms")


if __name__ == "__main__":
    main()
