"""Speed of the backtester: 500 names x 5 years (1,260 sessions after a 260-session warm-up),
mean-variance with a statistical factor risk model (K=10, refit every 21 sessions) and costs
(spread + commission in the optimizer; spread, square-root impact, commission, timing, borrow
and cash interest charged by the TWAP execution simulation), daily and monthly rebalancing.

    PYTHONPATH=src python bench/backtest/bench_backtest.py [--repeat 1]

Writes bench/backtest/results/bench_backtest.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from keel.backtest.engine import Backtester
from keel.config import parse_config
from keel.data.synthetic import synthetic_market

N_ASSETS, YEARS_DAYS, WARMUP = 500, 1260, 260


def case(freq: str, ledger: str, books: list[dict]) -> dict:
    # calendar trigger only, no participation cap, no governance: the cases measured before
    # the one-config rework (drift bands and the 5% participation cap are on by default now)
    return {"general": {"seed": 1}, "policy": {"frequency": freq, "drift_band": None},
            "risk": {"model": "pca", "n_pca_factors": 10, "lookback_days": 252,
                     "refit_every": 21},
            "execution": {"algo": "twap", "max_participation": 1.0},
            "governance": {"enabled": False},
            "backtest": {"warmup": WARMUP, "ledger": ledger, "nav": 1e8, "books": books}}


MV = [{"name": "mv", "optimize": {"risk_aversion": 5.0, "max_weight": 0.02}}]
ALL = [*MV, {"name": "greedy", "optimize": {"engine": "greedy", "greedy_k": 50}},
       {"name": "rp", "optimize": {"engine": "risk_parity"}},
       {"name": "ew", "optimize": {"engine": "equal_weight"}}]
CASES = {
    "daily, mean-variance, float book": case("daily", "none", MV),
    "monthly, mean-variance, float book": case("monthly", "none", MV),
    "monthly, mean-variance, Decimal ledger (every fill)": case("monthly", "fills", MV),
    "monthly, 4 strategies side by side, Decimal ledger": case("monthly", "fills", ALL),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    t = time.perf_counter()
    market = synthetic_market(N_ASSETS, YEARS_DAYS + WARMUP, seed=1)
    data_s = time.perf_counter() - t
    rows = []
    for name, spec in CASES.items():
        best = None
        for _ in range(args.repeat):
            res = Backtester(parse_config(spec)).run(market)
            if best is None or res.timings["total_s"] < best["total_s"]:
                best = dict(res.timings)
        assert best is not None
        steps = len(next(iter(res.books.values())).turnover)
        row = {"case": name, "sessions": steps, **{k: round(v, 2) for k, v in best.items()},
               "per_session_ms": round(1e3 * best["total_s"] / steps, 1),
               "sharpe": round(float(res.metrics()["sharpe"].iloc[0]), 3)}
        rows.append(row)
        print(json.dumps(row))
    out = {"machine": f"{platform.machine()}, {platform.python_version()}",
           "synthetic_market_s": round(data_s, 2), "n_assets": N_ASSETS, "rows": rows}
    path = Path(__file__).with_name("results") / "bench_backtest.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
