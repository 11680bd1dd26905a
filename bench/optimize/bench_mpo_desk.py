"""MPO vs single-period on the S&P 500 file through the desk backtest, with the same costs.

    PYTHONPATH=src python bench/optimize/bench_mpo_desk.py [--config examples/sp500.toml]
        [--horizons 2 5] [--decay 0.5] [--max-assets N]

One backtest run (``examples/sp500.toml``: fundamental risk model, the built-in blend of
signals, monthly rebalances plus the 5% drift band, spread + square-root impact + commission
charged on every trade, next-session TWAP execution), books side by side that differ only in
``optimize.engine``: ``mean_variance`` (single period) and ``mpo`` at each horizon (alpha of
period h = alpha x decay^(h-1)). Every book has the same optimizer cost term (spread +
commission, ``cost_aversion`` amortised over the rebalance period) and is charged the same
simulated costs. Columns: net total return and annualised return (after every cost), Sharpe,
annualised one-sided turnover, costs charged (bps of NAV per year), rebalances that traded,
and the engine's own wall time (every ``target`` call of that book, timed around the engine).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from keel.app.pipeline import Pipeline, load_market
from keel.backtest.engine import Backtester
from keel.config import load_config, with_overrides


class Timed:
    """An engine timed around ``target`` (the engine's wall time inside the backtest)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.seconds, self.calls = inner, 0.0, 0

    def target(self, step: Any) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self.inner.target(step)  # type: ignore[no-any-return]
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1

    def __getattr__(self, item: str) -> Any:
        return getattr(self.__dict__["inner"], item)


def main() -> None:
    ap = argparse.ArgumentParser()
    root = Path(__file__).resolve().parents[2]
    ap.add_argument("--config", type=Path, default=root / "examples" / "sp500.toml")
    ap.add_argument("--horizons", type=int, nargs="+", default=[2, 5])
    ap.add_argument("--decay", type=float, default=0.5)
    ap.add_argument("--max-assets", type=int, default=None)
    args = ap.parse_args()
    os.chdir(root)
    base = load_config(args.config)
    books: list[dict[str, Any]] = [{"name": "single_period",
                                    "optimize": {"engine": "mean_variance"}}]
    for h in args.horizons:
        books.append({"name": f"mpo_h{h}", "optimize": {
            "engine": "mpo", "mpo_horizon": h, "mpo_alpha_decay": args.decay}})
    over: dict[str, Any] = {"backtest.books": books, "backtest.ledger": "none",
                            "backtest.report": False}
    if args.max_assets:
        over["data.max_assets"] = args.max_assets
    cfg = with_overrides(base, over)
    t0 = time.perf_counter()
    market = load_market(cfg)
    load_s = time.perf_counter() - t0
    bt = Backtester(cfg)
    engines = {name: Timed(Pipeline(bc, live=False).engine(name)) for name, bc in bt.books_cfg}
    bt = Backtester(cfg, engines=engines)  # type: ignore[arg-type]
    print(f"names={market.n_assets} sessions={len(market.dates)} load={load_s:.1f}s "
          f"loadavg(before)={os.getloadavg()[0]:.1f} decay={args.decay}")
    t0 = time.perf_counter()
    res = bt.run(market)
    wall = time.perf_counter() - t0
    m = res.metrics()
    print(f"backtest wall {wall:.0f}s loadavg(after)={os.getloadavg()[0]:.1f}")
    print("| book | net total return | net ann. return | Sharpe | turnover / yr | "
          "costs bps/yr | rebalances | engine s (calls) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, row in m.iterrows():
        e = engines[str(name)]
        print(f"| {name} | {row['total_return']:.2%} | {row['ann_return']:.2%} | "
              f"{row['sharpe']:.2f} | {row['turnover_ann']:.2f} | {row['cost_total_bps']:.1f} "
              f"| {int(row['rebalances'])} | {e.seconds:.1f} ({e.calls}) |")
    fails = res.failures
    if fails:
        print("failures:", fails)


if __name__ == "__main__":
    main()
