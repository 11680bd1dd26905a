"""Multi-period optimization: keel's MultiPeriod beside cvxportfolio's MultiPeriodOptimization on
the same problem, H = 1, 2, 5, 10, in one process.

    python bench/optimize/bench_mpo.py [--data ../shared/data] [--n 100]

Problem (both libraries, every period): maximise ``alpha' w - gamma w' Sigma w - a |w - w_prev|``
over long-only weights with cash >= 0 (keel: ``LongOnly`` + ``GrossExposure(1)``; cvxportfolio:
``LongOnly(applies_to_cash=True)``), starting from all cash; ``Sigma`` the sample covariance of
the first ``n`` S&P 500 names over two years, ``alpha`` their 12-1 momentum scaled to 5 bp/day
per unit z-score, constant over the horizon, ``a`` 5 bp. Both use Clarabel. cvxportfolio (GPL) runs
here as an external tool, never imported by keel. Columns: the first solve (compile included),
the best of the re-solves with a new alpha (same structure), and the largest difference of the
first-period weights.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from keel.optimize.constraints import GrossExposure, LongOnly
from keel.optimize.inputs import PortfolioInputs
from keel.optimize.multi_period import MultiPeriod
from keel.optimize.terms import Alpha, Risk, TransactionCost

PRICES = Path("daily/sp500_all_stocks_5yr/all_stocks_5yr.csv.gz")
GAMMA, HALF_SPREAD = 5.0, 5e-4


def data(root: Path, n: int) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    raw = pd.read_csv(root / PRICES, usecols=["date", "Name", "close"])
    close = raw.pivot(index="date", columns="Name", values="close")
    close = close.loc[:, close.notna().all()].iloc[:, :n]
    r = close.pct_change().iloc[1:]
    cov = r.iloc[-504:].cov()
    mom = close.iloc[-22] / close.iloc[-253] - 1.0
    z = (mom - mom.mean()) / mom.std()
    return cov, 5e-4 * z, 5e-4 * z.rank(pct=True).sub(0.5)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3]
                    / "shared" / "data")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cov, alpha, alpha2 = data(args.data, args.n)
    sym = cov.index
    from keel.costs.base import CostModel, TradeContext

    class LinearCost(CostModel):
        name = "linear"

        def cost_array(self, trades_notional: np.ndarray, ctx: TradeContext) -> np.ndarray:
            return HALF_SPREAD * np.abs(trades_notional)

        def expr(self, trade_weights, ctx):  # type: ignore[no-untyped-def]
            import cvxpy as cp
            return HALF_SPREAD * cp.norm1(trade_weights)

    ctx = TradeContext(symbols=sym, prices=np.full(len(sym), 100.0),
                       adv_notional=np.full(len(sym), 1e9), volatility=np.full(len(sym), 0.02),
                       spreads=np.full(len(sym), 2 * HALF_SPREAD), nav=1e6)
    try:
        import cvxportfolio as cvx
    except ImportError:
        cvx = None
    print(f"n={len(sym)} repeat={args.repeat} load={os.getloadavg()[0]:.1f}")
    print("| H | keel first ms | keel re-solve ms | cvxportfolio first ms | "
          "cvxportfolio re-solve ms | max abs diff w_1 |")
    print("|---|---|---|---|---|---|")
    for horizon in (1, 2, 5, 10):
        def plan(a: pd.Series, horizon: int = horizon) -> list[PortfolioInputs]:
            x = PortfolioInputs.build(a, pd.Series(0.0, index=sym), risk=cov,
                                      trade_context=ctx)
            return [x] * horizon

        mpo = MultiPeriod([Alpha(), Risk(GAMMA), TransactionCost(LinearCost())],
                          [LongOnly(), GrossExposure(1.0)], horizon=horizon,
                          solvers=["CLARABEL"])
        t0 = time.perf_counter()
        ours = mpo.solve(plan(alpha)).first.weights
        k_first = time.perf_counter() - t0
        k_re = min(_timed(mpo.solve, plan(alpha2)) for _ in range(args.repeat))
        ours = mpo.solve(plan(alpha)).first.weights
        if cvx is None:
            print(f"| {horizon} | {k_first * 1e3:.0f} | {k_re * 1e3:.0f} | - | - | - |")
            continue
        h = pd.Series(np.r_[np.zeros(len(sym)), 1e6], index=[*sym, "USDOLLAR"])

        def policy(a: pd.Series, horizon: int = horizon):  # type: ignore[no-untyped-def]
            obj = (cvx.ReturnsForecast(r_hat=a) - GAMMA * cvx.FullCovariance(Sigma=cov)
                   - cvx.TransactionCost(a=pd.Series(HALF_SPREAD, index=sym), b=None))
            return cvx.MultiPeriodOptimization(obj, [cvx.LongOnly(applies_to_cash=True)],
                                               planning_horizon=horizon,
                                               include_cash_return=False, solver="CLARABEL")

        pol = policy(alpha)
        t0 = time.perf_counter()
        u, _, _ = pol.execute(h, None, t=pd.Timestamp("2018-02-07"))
        c_first = time.perf_counter() - t0
        c_re = min(_timed(pol.execute, h, None, t=pd.Timestamp("2018-02-08"))
                   for _ in range(args.repeat))
        theirs = ((h + u) / 1e6).iloc[:-1]
        diff = float(np.max(np.abs(theirs.to_numpy() - ours.reindex(theirs.index).to_numpy())))
        print(f"| {horizon} | {k_first * 1e3:.0f} | {k_re * 1e3:.0f} | {c_first * 1e3:.0f} | "
              f"{c_re * 1e3:.0f} | {diff:.1e} |")


def _timed(fn, *args, **kwargs) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
