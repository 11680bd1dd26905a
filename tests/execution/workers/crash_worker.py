"""A trading process for the crash test: runs a TWAP parent through the order manager and a
journaled paper broker, one simulated minute per step, printing ``STEP n`` after each.

Run again on the same folder, it recovers from the store and the venue journal and finishes.
Usage: python crash_worker.py FOLDER
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from keel.clock import SimulatedClock
from keel.execution.oms import OrderManager
from keel.execution.schedule import TWAP, ExecutionContext, ScheduleConfig
from keel.store.db import Store
from keel.store.orders_repo import OrdersRepo
from keel.types import Order, Side, utc
from keel.venues.fills import BarFillModel
from keel.venues.paper import PaperBroker, RandomLatency

T0 = utc(2013, 10, 8, 13, 30)


def bars() -> pd.DataFrame:
    idx = pd.date_range(T0, periods=120, freq="min")
    p = 100.0 + 0.01 * np.arange(120)
    return pd.DataFrame({"open": p, "high": p, "low": p, "close": p,
                         "volume": np.full(120, 700.0), "bid": p - 0.01, "ask": p + 0.01},
                        index=idx)


def main(folder: Path) -> None:
    clock_file = folder / "clock.txt"
    start = (datetime.fromisoformat(clock_file.read_text()) if clock_file.exists() else T0)
    clock = SimulatedClock(start)
    store = Store.from_url(f"sqlite:///{folder / 'keel.db'}")
    store.create_all()
    repo = OrdersRepo(store)
    broker = PaperBroker(clock, BarFillModel({"SPY": bars()}, participation=0.1),
                         latency=RandomLatency(0.2, 0.1, seed=3), journal=folder / "venue.jsonl")
    oms = OrderManager(broker, repo, clock, sleep=lambda s: None)
    report = oms.recover()
    print(f"RECOVERED {report.loaded} resubmitted={report.resubmitted}", flush=True)
    parent = Order("CR1", "SPY", Side.BUY, Decimal(2_000), T0)
    if repo.get("CR1") is None:
        kids = TWAP(ScheduleConfig(n_slices=10, horizon=timedelta(minutes=50))).schedule(
            parent, ExecutionContext(price=100.0), clock)
        oms.submit(parent, kids, algo="twap", arrival_price=100)
    step = 0
    while oms.get("CR1").status.is_open and step < 200:
        oms.step()
        clock.advance(timedelta(seconds=30))
        tmp = clock_file.with_suffix(".tmp")
        tmp.write_text(clock.now().isoformat())
        os.replace(tmp, clock_file)  # atomic: a kill never leaves a torn clock file
        step += 1
        print(f"STEP {step}", flush=True)
    print(f"DONE {oms.get('CR1').status.value} {oms.get('CR1').filled_qty}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
