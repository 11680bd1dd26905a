"""Cross-check keel's backtester against cvxportfolio (GPL: used as an external tool only).

Same returns (a synthetic keel market), same costs (half the quoted spread on |trade|, no
impact, no commission, no cash interest), same policies:

1. equal weight rebalanced every session (keel ``equal_weight`` vs ``cvx.Uniform()``);
2. a fixed-weights policy whose random long/short targets change every session (keel: a
   strategy object returning the same targets; cvxportfolio: ``cvx.FixedWeights``).

keel executes at the decision close (algo ``close``), which is cvxportfolio's convention
(``h_plus = h + u`` at t, costs at t, then the return over [t, t+1)). We compare the NAV
paths and the per-session turnover ``sum |u| / (2 v)``.

    pip install -r bench/requirements-backtest.txt
    PYTHONPATH=src python bench/backtest/crosscheck_cvxportfolio.py
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from keel.backtest.engine import Backtester
from keel.config import parse_config
from keel.data.synthetic import synthetic_market

TOL_NAV = 1e-9      # relative, on every session's NAV
TOL_TURNOVER = 1e-9  # absolute, on every session's turnover (fraction of NAV)
N, T, WARMUP, NAV = 40, 400, 260, 1e6


class Targets:
    """A keel strategy returning pre-drawn targets (the same table cvxportfolio gets)."""

    def __init__(self, name: str, table: pd.DataFrame) -> None:
        self.name = name
        self.table = table
        self.codes = ()

    def target(self, step):
        return self.table.loc[step.now].to_numpy()


def keel_run(market, strategies, spec):
    cfg = parse_config({
        "policy": {"frequency": "daily", "drift_band": None},
        "costs": {"spread_fraction": 1.0, "commission_per_share": 0.0, "commission_bps": 0.0,
                  "impact_coefficient": 0.0, "borrow_bps": 0.0, "cash_rate": 0.0,
                  "margin_rate": 0.0, "feedback": False},
        "governance": {"enabled": False}, "execution": {"max_participation": 1.0},
        "optimize": {"long_only": False, "max_weight": 1.0},
        "backtest": {"warmup": WARMUP, "nav": NAV, "ledger": "none",
                     "execution_lag": "same_close", "books": spec},
        "risk": {"model": "pca", "n_pca_factors": 3, "lookback_days": 120,
                 "refit_every": 50}})
    engines = {s.name: s for s in strategies or []}
    return Backtester(cfg, engines=engines).run(market)


def main() -> int:
    import cvxportfolio as cvx

    market = synthetic_market(N, T, seed=21)
    dates = market.dates
    syms = list(market.symbols)
    # cvxportfolio's row t is the return over [t, t+1): keel's return stamped t+1
    fwd = market.returns.shift(-1).reindex(dates).iloc[:-1]
    rets = fwd.copy()
    rets["USDOLLAR"] = 0.0
    half_spread = 0.5 * market.spreads.reindex(dates).iloc[:-1]
    md = cvx.UserProvidedMarketData(returns=rets, volumes=market.volumes.iloc[:-1],
                                    prices=market.prices.iloc[:-1], cash_key="USDOLLAR",
                                    min_history=pd.Timedelta(0))
    sim = cvx.MarketSimulator(market_data=md, costs=[cvx.TransactionCost(a=half_spread,
                                                                         b=None)])
    start, end = dates[WARMUP], dates[-1]
    rng = np.random.default_rng(5)
    raw = rng.normal(0.0, 1.0, (len(dates), N))
    w = raw / np.abs(raw).sum(axis=1, keepdims=True) * 1.5  # gross 150%, net ~0
    table = pd.DataFrame(w, index=dates, columns=syms)
    cvx_fixed = table.copy()
    cvx_fixed["USDOLLAR"] = 1.0 - cvx_fixed.sum(axis=1)
    out = {}
    cases = {
        "equal_weight": (cvx.Uniform(), None,
                         [{"name": "ew", "optimize": {"engine": "equal_weight"}}]),
        "fixed_weights": (cvx.FixedWeights(cvx_fixed), [Targets("fixed", table)],
                          [{"name": "fixed", "optimize": {"engine": "equal_weight"}}]),
    }
    ok = True
    for case, (policy, strategies, spec) in cases.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res_c = sim.backtest(policy, start_time=start, end_time=end, initial_value=NAV)
        res_k = keel_run(market, strategies, spec)
        book = next(iter(res_k.books.values()))
        v_c = res_c.v
        v_k = book.nav
        common = v_c.index.intersection(v_k.index)
        nav_err = float(np.max(np.abs(v_k.loc[common] / v_c.loc[common] - 1.0)))
        to_c = res_c.turnover
        to_k = book.turnover
        # cvxportfolio's last row is the end of the backtest (no trade): leave it out
        tc = to_c.index[:-1].intersection(to_k.index)
        to_err = float(np.max(np.abs(to_k.loc[tc] - to_c.loc[tc])))
        passed = nav_err <= TOL_NAV and to_err <= TOL_TURNOVER and len(common) > 100
        ok &= passed
        out[case] = {"sessions": len(common), "max_rel_nav_diff": nav_err,
                     "max_abs_turnover_diff": to_err,
                     "final_nav_keel": float(v_k.loc[common[-1]]),
                     "final_nav_cvxportfolio": float(v_c.loc[common[-1]]),
                     "mean_turnover": float(to_k.loc[tc].mean()), "passed": passed}
        print(f"{case:14s} sessions={len(common)} max|nav_k/nav_c-1|={nav_err:.2e} "
              f"max|turnover diff|={to_err:.2e} -> {'PASS' if passed else 'FAIL'}")
    out["tolerance"] = {"nav_rel": TOL_NAV, "turnover_abs": TOL_TURNOVER}
    out["cvxportfolio"] = cvx.__version__
    path = Path(__file__).with_name("results") / "crosscheck_cvxportfolio.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
