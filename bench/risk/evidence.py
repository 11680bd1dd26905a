"""Real-data evidence for docs/risk.md: how much the fundamental model explains on the
S&P 500 5-year file, and how well its volatility forecasts hold out of sample.

Run from the worktree root:  PYTHONPATH=src python bench/risk/evidence.py [DATA_ROOT]

1. Full-sample fit: average weighted cross-sectional R^2 of the daily regressions, and the
   share of variance that is factor risk for an equal-weight and other portfolios.
2. Walk-forward: every 21 trading days from day 504, refit each model on the data known then
   (``market.head``), predict daily volatility of a set of portfolios and compare with the
   next 21 days' realised returns (bias statistic on daily and on 21-day returns).
3. Fama-French 3-factor regression of the equal-weight portfolio.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from keel.cli.risk_cmd import read_market
from keel.data.factors import load_fama_french
from keel.risk.attribution import decompose, factor_regression
from keel.risk.covariance import EWMACovariance, LedoitWolf
from keel.risk.evaluation import bias_statistic
from keel.risk.factor_model import StatisticalFactorModel
from keel.risk.fundamental import FundamentalFactorModel

ROOT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/data")
OUT = Path(__file__).parent / "results" / "evidence.json"


def portfolios(market, seed: int = 0) -> dict[str, np.ndarray]:
    n = market.n_assets
    rng = np.random.default_rng(seed)
    out = {"equal_weight": np.full(n, 1.0 / n)}
    for i in range(10):
        w = np.zeros(n)
        w[rng.choice(n, 50, replace=False)] = 1.0 / 50
        out[f"long_50_{i}"] = w
    for i in range(10):
        w = np.zeros(n)
        idx = rng.choice(n, 200, replace=False)
        w[idx[:100]] = 1.0 / 100
        w[idx[100:]] = -1.0 / 100
        out[f"long_short_{i}"] = w
    sec = market.sectors.reindex(market.symbols).to_numpy()
    for s in sorted(set(sec)):
        m = sec == s
        if m.sum() >= 5:
            w = np.where(m, 1.0 / m.sum(), 0.0)
            out[f"sector_{s}"] = w
    return out


def main() -> None:
    t0 = time.perf_counter()
    market = read_market(ROOT / "daily/sp500_all_stocks_5yr/all_stocks_5yr.csv.gz",
                         ROOT / "daily/sp500_constituents/constituents_2018-04-02.csv")
    _ = (market.betas, market.volatility, market.adv_notional, market.log_returns)
    ports = portfolios(market)
    result: dict = {"universe": {"n_assets": market.n_assets, "n_days": len(market.returns),
                                 "dropped": market.missing_report.summary()}}

    full = FundamentalFactorModel().fit(market)
    fc = full.factored()
    shares = {}
    for name, w in ports.items():
        d = decompose(fc, w, groups=full.factor_groups_, sectors=market.sectors)
        shares[name] = {"factor_share": d.factor_share, "summary": d.summary()}
    result["full_sample"] = {
        "mean_cross_sectional_r2": full.mean_r2_,
        "median_cross_sectional_r2": float(full.r2_.median()),
        "n_regressions": len(full.r2_),
        "factor_share_equal_weight": shares["equal_weight"]["factor_share"],
        "equal_weight_summary": shares["equal_weight"]["summary"],
        "factor_share_mean_long_50": float(np.mean(
            [v["factor_share"] for k, v in shares.items() if k.startswith("long_50")])),
        "factor_share_mean_long_short": float(np.mean(
            [v["factor_share"] for k, v in shares.items() if k.startswith("long_short")])),
        "factor_share_mean_sector": float(np.mean(
            [v["factor_share"] for k, v in shares.items() if k.startswith("sector")])),
    }

    ff = load_fama_french(ROOT / "factors/fama_french/F-F_Research_Data_Factors_daily.CSV",
                          start="2013-01-01", stamp=True)
    ew = pd.Series(market.returns.to_numpy() @ ports["equal_weight"],
                   index=market.returns.index)
    result["fama_french_equal_weight"] = factor_regression(ew, ff).to_dict()

    # walk-forward bias statistics
    r = market.returns.to_numpy()
    names = list(ports)
    wmat = np.column_stack([ports[k] for k in names])
    models = {
        "fundamental": lambda mk: FundamentalFactorModel().fit(mk).factored(),
        "pca": lambda mk: StatisticalFactorModel(n_factors=15).fit(
            mk.returns.iloc[-504:]).factored(),
        "ewma_0.97": lambda mk: EWMACovariance(lambda_=0.97).fit(mk.returns.iloc[-504:]),
        "ledoit_wolf_2y": lambda mk: LedoitWolf().fit(mk.returns.iloc[-504:]),
    }
    start, step = 504, 21
    daily: dict[str, list] = {m: [] for m in models}
    monthly: dict[str, list] = {m: [] for m in models}
    realised_d, realised_m = [], []
    fit_seconds = {m: 0.0 for m in models}
    for t in range(start, len(r) - step + 1, step):
        view = market.head(t + 1)  # prices rows 0..t -> returns rows 0..t-1
        fut = r[t:t + step] @ wmat  # (21, P) next returns, not seen by the fit
        realised_d.append(fut)
        realised_m.append(np.expm1(np.log1p(fut).sum(axis=0)))
        for m, fit in models.items():
            tt = time.perf_counter()
            est = fit(view)
            fit_seconds[m] += time.perf_counter() - tt
            if hasattr(est, "portfolio_variance"):
                x = est.exposures.T @ wmat
                var = np.einsum("kp,kl,lp->p", x, est.factor_covariance, x) + \
                    (est.specific_variance[:, None] * wmat**2).sum(axis=0)
            else:
                var = np.einsum("np,nm,mp->p", wmat, est.covariance_, wmat)
            sd = np.sqrt(var)
            daily[m].append(np.tile(sd, (step, 1)))
            monthly[m].append(sd * np.sqrt(step))
    rd = np.vstack(realised_d)
    rm = np.vstack(realised_m)
    bias = {}
    for m in models:
        pd_ = np.vstack(daily[m])
        pm = np.vstack(monthly[m])
        bd = [bias_statistic(rd[:, j], pd_[:, j]) for j in range(len(names))]
        bm = [bias_statistic(rm[:, j], pm[:, j]) for j in range(len(names))]
        bias[m] = {
            "daily_mean_bias": float(np.mean([b.bias for b in bd])),
            "daily_share_within_band": float(np.mean([b.within_band for b in bd])),
            "daily_n_obs": bd[0].n_obs,
            "monthly_mean_bias": float(np.mean([b.bias for b in bm])),
            "monthly_share_within_band": float(np.mean([b.within_band for b in bm])),
            "monthly_n_obs": bm[0].n_obs,
            "equal_weight_daily_bias": bd[0].bias,
            "equal_weight_monthly_bias": bm[0].bias,
            "fit_seconds_total": fit_seconds[m],
            "by_portfolio_daily": {n: b.bias for n, b in zip(names, bd, strict=True)},
        }
    result["walk_forward"] = {"first_forecast_day": str(market.returns.index[start]),
                              "refits": len(realised_d), "step_days": step,
                              "n_portfolios": len(names), "models": bias}
    result["seconds"] = time.perf_counter() - t0
    OUT.write_text(json.dumps(result, indent=2, default=float))
    fs = result["full_sample"]
    print(f"mean cross-sectional R2 {fs['mean_cross_sectional_r2']:.3f} "
          f"(median {fs['median_cross_sectional_r2']:.3f}, {fs['n_regressions']} days)")
    print(f"factor share of variance: equal weight {fs['factor_share_equal_weight']:.3f}, "
          f"long-50 {fs['factor_share_mean_long_50']:.3f}, "
          f"long-short {fs['factor_share_mean_long_short']:.3f}, "
          f"sector {fs['factor_share_mean_sector']:.3f}")
    print(fs["equal_weight_summary"])
    for m, b in bias.items():
        print(f"{m:16s} daily bias {b['daily_mean_bias']:.3f} "
              f"(within band {b['daily_share_within_band']:.0%}, T={b['daily_n_obs']}); "
              f"21-day bias {b['monthly_mean_bias']:.3f} "
              f"(within band {b['monthly_share_within_band']:.0%}, T={b['monthly_n_obs']}); "
              f"EW daily {b['equal_weight_daily_bias']:.3f}")
    ffr = result["fama_french_equal_weight"]
    print("FF3 equal weight:", {k: round(v, 3) for k, v in ffr["betas"].items()},
          "t", {k: round(v, 1) for k, v in ffr["t_stats"].items()}, "R2", round(ffr["r2"], 3))
    print(f"wrote {OUT} in {result['seconds']:.1f}s")


if __name__ == "__main__":
    main()
