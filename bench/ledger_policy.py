"""Ledger and policy throughput: fills booked per second (memory, SQLite), recovery time,
rebalance and governance latency for a 500-name book.

Run: PYTHONPATH=src python bench/ledger_policy.py [--fills 5000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from keel.clock import SimulatedClock
from keel.data.market import MarketData
from keel.policy import sessions
from keel.policy.governance import GovernanceChain, GovernanceContext
from keel.portfolio.instruments import InstrumentRegistry
from keel.portfolio.ledger import Ledger
from keel.portfolio.rebalance import rebalance
from keel.store.db import Store
from keel.types import Fill, Side, utc

T0 = utc(2024, 2, 14, 15)


def fills(n: int, n_syms: int = 50) -> list[Fill]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        out.append(Fill(f"e{i}", f"o{i}", f"S{rng.integers(n_syms)}",
                        Side.BUY if rng.random() < 0.55 else Side.SELL,
                        Decimal(int(rng.integers(1, 500))),
                        Decimal(str(round(float(rng.uniform(5, 500)), 2))), T0,
                        commission=Decimal("0.35")))
    return out


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fills", type=int, default=5000)
    n = ap.parse_args().fills
    fs = fills(n)
    clock = SimulatedClock(T0)
    mem = Ledger(clock=clock)
    dt = timed(lambda: [mem.apply_fill(f) for f in fs])
    print(f"in-memory ledger: {n / dt:,.0f} fills/s ({n} fills)")
    with tempfile.TemporaryDirectory() as d:
        store = Store.from_url(f"sqlite:///{Path(d) / 'b.db'}")
        store.create_all()
        lg = Ledger(store, clock=clock)
        k = min(n, 1000)
        dt = timed(lambda: [lg.apply_fill(f) for f in fs[:k]])
        print(f"SQLite, one transaction per fill: {k / dt:,.0f} fills/s ({k} fills)")
        rest = fs[k:]
        dt = timed(lambda: lg.apply_fills(rest))
        print(f"SQLite, one transaction for {len(rest)} fills: {len(rest) / dt:,.0f} fills/s")
        dt = timed(lambda: Ledger.open(store, clock=clock))
        print(f"recovery by full replay of {lg.version} entries: {dt * 1e3:,.0f} ms")
        lg.snapshot()
        dt = timed(lambda: Ledger.open(store, clock=clock))
        print(f"recovery from a snapshot: {dt * 1e3:,.1f} ms")
        store.dispose()

    m = 500
    syms = [f"N{i:03d}" for i in range(m)]
    rng = np.random.default_rng(1)
    idx = pd.date_range("2023-01-03 21:00", periods=300, freq="B", tz="UTC")
    px = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.01, (300, m)), axis=0)), idx,
                      columns=syms)
    md = MarketData(px, pd.DataFrame(1e6, index=idx, columns=syms),
                    sectors=pd.Series({s: f"sec{i % 11}" for i, s in enumerate(syms)}))
    prices = {s: Decimal(str(round(float(px[s].asof(T0)), 2))) for s in syms}
    reg = InstrumentRegistry.equities(syms, sectors=dict(md.sectors))
    book = Ledger(clock=clock, registry=reg)
    book.deposit("10000000")
    w = rng.dirichlet(np.ones(m))
    targets = dict(zip(syms, w, strict=True))
    plan = None

    def run_plan() -> None:
        nonlocal plan
        plan = rebalance(targets, prices, book.state, reg, now=T0)

    dt = timed(run_plan)
    assert plan is not None
    print(f"rebalance {m} names from cash: {dt * 1e3:,.1f} ms ({len(plan.orders)} orders)")
    ctx = GovernanceContext.from_market(now=T0, nav=Decimal(10_000_000), prices=prices,
                                        positions={}, market=md, registry=reg)
    chain = GovernanceChain.default()
    sessions.is_open(T0)  # build the exchange calendar outside the timing (~2 s, once)
    dt = timed(lambda: chain.evaluate(list(plan.orders), ctx))
    print(f"governance default chain on {len(plan.orders)} orders: {dt * 1e3:,.1f} ms "
          f"(incl. clustering {m} names)")
    o = plan.orders[0]
    reps = 200
    dt = timed(lambda: [chain.evaluate_one(o, ctx) for _ in range(reps)])
    print(f"governance evaluate_one: {dt / reps * 1e6:,.0f} us per order")


if __name__ == "__main__":
    main()
