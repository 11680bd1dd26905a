"""Latency of the service's endpoints over a real uvicorn server on a store holding a busy day.

A store with ``--parents`` parent orders of ``--slices`` children each, every child filled
(SQLite file, WAL, synchronous=FULL), a fundamental risk model on a synthetic market of
``--assets`` names. Each endpoint is requested ``--n`` times after one warm-up request;
prints the median and p95 in milliseconds. Run: ``PYTHONPATH=src python bench/service/latency.py``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from keel.app.sample import deposit, mark, trade
from keel.app.service import BackgroundServer, create_app
from keel.clock import SimulatedClock
from keel.data.synthetic import synthetic_market
from keel.risk.limits import RiskLimits
from keel.store.db import Store
from keel.types import Side


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parents", type=int, default=100)
    ap.add_argument("--slices", type=int, default=13)
    ap.add_argument("--assets", type=int, default=100)
    ap.add_argument("--n", type=int, default=30)
    a = ap.parse_args()
    market = synthetic_market(a.assets, 756, seed=7)
    with tempfile.TemporaryDirectory() as d:
        store = Store.from_url(f"sqlite:///{Path(d) / 'keel.db'}")
        store.create_all()
        clock = SimulatedClock(market.now.to_pydatetime())
        deposit(store, clock, "100000000")
        t0 = time.perf_counter()
        for i in range(a.parents):
            sym = str(market.symbols[i % a.assets])
            trade(store, clock, market, f"p{i:05d}", sym, Side.BUY, 100 * a.slices,
                  slices=a.slices)
        mark(store, clock, market)
        print(f"store: {a.parents} parents x {a.slices} children, all filled "
              f"({time.perf_counter() - t0:.1f} s to write)")
        app = create_app(store, market=lambda: market, clock=clock,
                         limits=RiskLimits(max_position=0.01, max_sector_weight=0.3))
        with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
            print(f"{'endpoint':<26}{'median ms':>10}{'p95 ms':>10}")
            for path in ("/health", "/metrics", "/api/portfolio", "/api/risk",
                         "/api/orders?limit=25", "/api/orders?limit=1000", "/api/execution",
                         "/api/timeseries/equity", "/api/timeseries/trading",
                         "/api/timeseries/breaches"):
                c.get(path).raise_for_status()  # warm-up (fits the risk model once)
                ts = []
                for _ in range(a.n):
                    t = time.perf_counter()
                    c.get(path).raise_for_status()
                    ts.append(1e3 * (time.perf_counter() - t))
                ts.sort()
                p95 = ts[min(len(ts) - 1, int(0.95 * len(ts)))]
                print(f"{path:<26}{statistics.median(ts):>10.1f}{p95:>10.1f}")
        store.dispose()


if __name__ == "__main__":
    main()
