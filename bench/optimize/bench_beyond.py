"""Black-Litterman, HRP, HERC, min-CDaR and min-EVaR: keel beside PyPortfolioOpt and skfolio,
same inputs, same process, with an agreement column.

    python bench/optimize/bench_beyond.py [--data ../shared/data] [--n 100] [--t 750]

Data: the first ``n`` S&P 500 names with complete closes, the first ``t`` daily returns
(``daily/sp500_all_stocks_5yr``). Peers come from bench/requirements-optimize.txt; a missing
peer prints "-" in its columns. Times are CPU-bound wall clock, best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keel.optimize.black_litterman import BlackLitterman, View, implied_returns
from keel.optimize.constraints import Budget, LongOnly
from keel.optimize.engine import ConvexPortfolioProblem
from keel.optimize.hierarchical import herc, hrp
from keel.optimize.inputs import PortfolioInputs
from keel.optimize.risk_measures import CDaRRisk, EVaRRisk, cdar, evar

PRICES = Path("daily/sp500_all_stocks_5yr/all_stocks_5yr.csv.gz")


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    out, times = None, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def returns(root: Path, n: int, t: int) -> pd.DataFrame:
    raw = pd.read_csv(root / PRICES, usecols=["date", "Name", "close"])
    close = raw.pivot(index="date", columns="Name", values="close")
    close = close.loc[:, close.notna().all()].iloc[:, :n]
    return close.pct_change().iloc[1:t + 1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3]
                    / "shared" / "data")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--t", type=int, default=750)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    r = returns(args.data, args.n, args.t)
    cov = r.cov()
    rows: list[tuple[str, float, str, float | None, str]] = []
    try:
        import pypfopt
    except ImportError:
        pypfopt = None
    try:
        import skfolio
        from skfolio.cluster import HierarchicalClustering, LinkageMethod
        from skfolio.optimization import (
            HierarchicalEqualRiskContribution,
            MeanRisk,
            ObjectiveFunction,
        )
    except ImportError:
        skfolio = None

    # Black-Litterman: 3 views, Idzorek confidences
    mkt = pd.Series(1.0 / args.n, index=r.columns)
    names = list(r.columns)
    views = [View({names[0]: 1.0}, 0.001, 0.6), View({names[1]: 1.0, names[2]: -1.0}, 0.0005,
                                                     0.4),
             View({names[3]: 0.5, names[4]: 0.5}, -0.0002, 0.8)]
    t_k, bl = best(lambda: BlackLitterman(tau=0.05, risk_aversion=2.5).fit(
        cov, views, market_weights=mkt), args.repeat)
    mu = bl.posterior_returns_
    if pypfopt is not None:
        pi = implied_returns(cov, mkt, 2.5)

        def peer_bl() -> pd.Series:
            m = pypfopt.black_litterman.BlackLittermanModel(
                cov, pi=pi, P=bl.P_, Q=bl.Q_.reshape(-1, 1), omega="idzorek",
                view_confidences=[0.6, 0.4, 0.8], tau=0.05, risk_aversion=2.5)
            return m.bl_returns()

        t_p, peer = best(peer_bl, args.repeat)
        rows.append(("Black-Litterman posterior", t_k, "PyPortfolioOpt", t_p,
                     f"max |diff| {np.max(np.abs(peer.to_numpy() - mu.to_numpy())):.1e}"))
    else:
        rows.append(("Black-Litterman posterior", t_k, "-", None, "-"))

    # HRP (single linkage) vs PyPortfolioOpt
    t_k, w = best(lambda: hrp(cov, linkage="single"), args.repeat)
    if pypfopt is not None:
        t_p, peer = best(lambda: pd.Series(pypfopt.HRPOpt(returns=r, cov_matrix=cov).optimize(
            linkage_method="single")), args.repeat)
        rows.append(("HRP (single)", t_k, "PyPortfolioOpt", t_p,
                     f"max |diff| {np.max(np.abs(peer.reindex(w.index) - w)):.1e}"))

    if skfolio is not None:
        # HERC (ward, 8 clusters, variance)
        t_k, w = best(lambda: herc(cov, n_clusters=8, linkage="ward"), args.repeat)
        t_p, peer = best(lambda: HierarchicalEqualRiskContribution(
            risk_measure=skfolio.RiskMeasure.VARIANCE,
            hierarchical_clustering_estimator=HierarchicalClustering(
                max_clusters=8, linkage_method=LinkageMethod.WARD)).fit(r).weights_,
            args.repeat)
        rows.append(("HERC (ward, 8 clusters)", t_k, "skfolio", t_p,
                     f"max |diff| {np.max(np.abs(peer - w.to_numpy())):.1e}"))

        inputs = PortfolioInputs.build(pd.Series(0.0, index=r.columns), scenarios=r)
        rr = r.to_numpy()
        for label, term, measure, fn, key in (
                ("min CDaR 95%", CDaRRisk(0.95), skfolio.RiskMeasure.CDAR,
                 lambda x: cdar(rr @ x, 0.95), "cdar_beta"),
                ("min EVaR 95%", EVaRRisk(0.95), skfolio.RiskMeasure.EVAR,
                 lambda x: evar(-(rr @ x), 0.95), "evar_beta")):
            def ours(term: Any = term) -> np.ndarray:
                res = ConvexPortfolioProblem([term], [Budget(), LongOnly()],
                                             solvers=["CLARABEL"]).solve(inputs)
                return res.weights.to_numpy()

            def theirs(measure: Any = measure, key: str = key) -> np.ndarray:
                model = MeanRisk(risk_measure=measure, **{key: 0.95},
                                 objective_function=ObjectiveFunction.MINIMIZE_RISK,
                                 solver="CLARABEL")
                return model.fit(r).weights_

            t_k, wk = best(ours, args.repeat)
            t_p, wp = best(theirs, args.repeat)
            rows.append((label, t_k, "skfolio", t_p,
                         f"risk keel {fn(wk):.6f} vs {fn(wp):.6f}"))

    print(f"n={args.n} t={len(r)} repeat={args.repeat} load={os.getloadavg()[0]:.1f}")
    print("| problem | keel ms | peer | peer ms | agreement |")
    print("|---|---|---|---|---|")
    for label, tk, peer, tp, agree in rows:
        tp_s = f"{tp * 1e3:.1f}" if tp is not None else "-"
        print(f"| {label} | {tk * 1e3:.1f} | {peer} | {tp_s} | {agree} |")


if __name__ == "__main__":
    main()
