"""Data-path overheads of a daily backtest on the real S&P 500 file (issue 15 point 6).

Two measurements, run against any keel source tree (``PYTHONPATH=<tree>/src``), so the same
script times the code before and after a change in one session:

* ``walk``: the data accesses a daily backtest makes per session on ``market.head(i)``
  (last prices, ADV, volatility, a 252-row return window as NumPy, betas at every 21-session
  refit), over 938 sessions after a 320-session warm-up; a checksum of every value read;
* ``backtest`` (``--backtest``): keel's daily mean-variance backtest (statistical risk model,
  K=10, refit every 21 sessions) on the same market, total seconds and the final NAV.

The market is loaded as the backtest loads it today (``on_missing="drop"``: 468 names).

    PYTHONPATH=src python bench/data/bench_views.py [--repeat 3] [--backtest [--no-walk]]

Prints one JSON line per measurement (best and median of ``--repeat`` after a short warm-up
for ``walk``; best of ``--repeat`` for ``backtest``) with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SP500 = REPO.parent / "shared" / "data" / "daily/sp500_all_stocks_5yr/all_stocks_5yr.csv.gz"
WARMUP, REFIT = 320, 21


def walk(market, stop: int | None = None) -> float:
    """Read what a daily backtest reads each session; returns a checksum of the values.

    Like the backtest engine, the root's returns, volatility, ADV and market returns are
    computed once up front; betas are asked of each refit's view (the fundamental risk model's
    beta style)."""
    for name in ("returns", "volatility", "adv_notional", "market_returns"):
        getattr(market, name)
    total = 0.0
    for i in range(WARMUP, stop or len(market.prices)):
        v = market.head(i + 1)
        total += float(np.nansum(v.prices.to_numpy()[-1]))
        total += float(np.nansum(v.latest("adv_notional").to_numpy())) * 1e-9
        total += float(np.nansum(v.latest("volatility").to_numpy()))
        total += float(np.nansum(v.returns.iloc[-252:].to_numpy()))
        if (i - WARMUP) % REFIT == 0:
            total += float(np.nansum(v.betas.iloc[-1].to_numpy()))
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backtest", action="store_true")
    ap.add_argument("--no-walk", action="store_true", help="only the backtest")
    args = ap.parse_args()

    import keel
    from keel.data.prices import load_prices_long

    src = str(Path(keel.__file__).resolve().parents[1])

    def load():
        return load_prices_long(SP500, on_missing="drop")

    market = load()
    walk(market, WARMUP + 50)  # warm-up (imports, calendar cache)
    runs, check = [], 0.0
    for _ in range(0 if args.no_walk else args.repeat):
        market = load()  # a fresh market: nothing cached from the previous run
        t0 = time.perf_counter()
        check = walk(market)
        runs.append(time.perf_counter() - t0)
    if runs:
        print(json.dumps({"bench": "walk", "src": src, "symbols": market.n_assets,
                          "sessions": len(market.prices) - WARMUP,
                          "best_s": round(min(runs), 3),
                          "median_s": round(statistics.median(runs), 3),
                          "checksum": repr(check), "loadavg": os.getloadavg()[0]}))
    if not args.backtest:
        return
    from keel.backtest.config import parse_config
    from keel.backtest.engine import Backtester

    spec = {"seed": 1, "policy": {"frequency": "daily"},
            "risk": {"model": "statistical", "n_factors": 10, "window": 252, "refit_every": 21},
            "strategies": [{"name": "mv", "kind": "mean_variance", "risk_aversion": 5.0,
                            "max_weight": 0.02}],
            "backtest": {"warmup": WARMUP, "ledger": "none", "nav": 1e8}}
    best, nav = float("inf"), 0.0
    for _ in range(args.repeat):
        market = load()
        t0 = time.perf_counter()
        res = Backtester(parse_config(spec)).run(market)
        best = min(best, time.perf_counter() - t0)
        nav = float(next(iter(res.books.values())).nav.iloc[-1])
    print(json.dumps({"bench": "backtest daily MV", "src": src, "best_s": round(best, 2),
                      "final_nav": repr(nav), "loadavg": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
