"""Black-Litterman views from signals vs the raw signal alpha, through the desk backtest on the
S&P 500 file.

    PYTHONPATH=src python bench/optimize/bench_views.py [--config examples/sp500.toml]
        [--start 2016-01-01] [--max-assets N]

One backtest run (``examples/sp500.toml``: fundamental risk model, the built-in blend of
signals with IC 0.05, mean-variance with risk aversion 5 and 5% caps, monthly rebalances plus
the 5% drift band, spread + square-root impact + commission charged on every trade,
next-session TWAP), books side by side that differ only in ``optimize.bl_views``:

* ``raw_alpha``: the signals' alpha (``IC x vol x z``) straight into mean-variance;
* ``bl_relative``: one relative view (top ``bl_quantile`` of the score outperforms the bottom)
  on the equal-weight equilibrium prior, Idzorek confidence from the score's track record;
* ``bl_absolute``: one absolute view per name in the top and bottom quantiles.

Columns: net total and annualised return (after every cost), annualised volatility, Sharpe,
annualised one-sided turnover, costs charged (bps of NAV per year), rebalances that traded,
the engine's wall time (every ``target`` call of the book).
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
    """An engine timed around ``target`` (as in bench_mpo_desk.py)."""

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


BOOKS = {"raw_alpha": "none", "bl_relative": "relative", "bl_absolute": "absolute"}


def main() -> None:
    ap = argparse.ArgumentParser()
    root = Path(__file__).resolve().parents[2]
    ap.add_argument("--config", type=Path, default=root / "examples" / "sp500.toml")
    ap.add_argument("--start", default=None, help="first decision date (ISO)")
    ap.add_argument("--max-assets", type=int, default=None)
    args = ap.parse_args()
    os.chdir(root)
    base = load_config(args.config)
    books: list[dict[str, Any]] = [
        {"name": name, "optimize": {"engine": "mean_variance", "bl_views": views}}
        for name, views in BOOKS.items()]
    over: dict[str, Any] = {"backtest.books": books, "backtest.ledger": "none",
                            "backtest.report": False}
    if args.start:
        over["backtest.start"] = args.start
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
          f"start={args.start} loadavg(before)={os.getloadavg()[0]:.1f}")
    t0 = time.perf_counter()
    res = bt.run(market)
    wall = time.perf_counter() - t0
    m = res.metrics()
    print(f"backtest wall {wall:.0f}s loadavg(after)={os.getloadavg()[0]:.1f}")
    print("| book | net total return | net ann. return | ann. vol | Sharpe | turnover / yr | "
          "costs bps/yr | rebalances | engine s (calls) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, row in m.iterrows():
        e = engines[str(name)]
        print(f"| {name} | {row['total_return']:.2%} | {row['ann_return']:.2%} | "
              f"{row['ann_vol']:.2%} | {row['sharpe']:.2f} | {row['turnover_ann']:.2f} | "
              f"{row['cost_total_bps']:.1f} | {int(row['rebalances'])} | "
              f"{e.seconds:.1f} ({e.calls}) |")
    if res.failures:
        print("failures:", res.failures)


if __name__ == "__main__":
    main()
