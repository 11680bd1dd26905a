"""Risk-layer benchmarks: keel vs scikit-learn vs skfolio, same data, one run.

Run from the worktree root (bench-only peers: bench/requirements-risk.txt):

    PYTHONPATH=src python bench/risk/bench_risk.py [DATA_ROOT]

Data: the S&P 500 5-year file (daily returns, 470 names after dropping names with gaps x 1,258
days) and a synthetic market of 3,000 names x 1,260 days with 23 sectors (known factor
structure, see tests/risk/_synthetic.py). Times are the best of ``REPEATS`` wall-clock runs
(one run for the large factor-model fits); results go to bench/risk/results/bench_risk.json.
Peers run with ``store_precision=False`` (keel does not invert the matrix either); skfolio's
estimators keep their default nearest-PD check, as keel's fit does its PSD check.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests" / "risk"))

from _synthetic import synthetic_market  # noqa: E402

from keel.cli.risk_cmd import read_market  # noqa: E402
from keel.risk import covariance as kc  # noqa: E402
from keel.risk.factor_model import StatisticalFactorModel  # noqa: E402
from keel.risk.fundamental import FundamentalFactorModel  # noqa: E402

ROOT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/data")
OUT = HERE / "results" / "bench_risk.json"
REPEATS = 3


def best(fn: Callable[[], object], repeats: int = REPEATS) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def bench_estimators(name: str, x: np.ndarray) -> list[dict]:
    import skfolio.moments as skm
    import sklearn.covariance as skc

    rows = []
    hl = 20.0
    cases = [
        ("sample (ddof=0 as sklearn)", lambda: kc.SampleCovariance(ddof=0).fit(x),
         lambda: skc.EmpiricalCovariance(store_precision=False).fit(x), None),
        ("sample (ddof=1 as skfolio)", lambda: kc.SampleCovariance().fit(x), None,
         lambda: skm.EmpiricalCovariance().fit(x)),
        ("ewma (half-life 20)", lambda: kc.EWMACovariance(halflife=hl).fit(x), None,
         lambda: skm.EWCovariance(half_life=hl).fit(x)),
        ("ledoit-wolf identity", lambda: kc.LedoitWolf().fit(x),
         lambda: skc.LedoitWolf(store_precision=False).fit(x),
         lambda: skm.LedoitWolf(store_precision=False).fit(x)),
        ("ledoit-wolf const-corr", lambda: kc.LedoitWolf(target="constant_correlation")
         .fit(x), None, None),
        ("oas", lambda: kc.OAS().fit(x), lambda: skc.OAS(store_precision=False).fit(x),
         lambda: skm.OAS(store_precision=False).fit(x)),
    ]
    for label, k, s, f in cases:
        tk, ek = best(k)
        row = {"data": name, "estimator": label, "keel_s": tk}
        if s is not None:
            ts, es = best(s)
            row["sklearn_s"] = ts
            row["max_abs_diff_vs_sklearn"] = float(np.max(np.abs(
                ek.covariance_ - es.covariance_)))  # type: ignore[attr-defined]
        if f is not None:
            tf, ef = best(f)
            row["skfolio_s"] = tf
            row["max_abs_diff_vs_skfolio"] = float(np.max(np.abs(
                ek.covariance_ - ef.covariance_)))  # type: ignore[attr-defined]
        rows.append(row)
        print(row, flush=True)
    return rows


def skfolio_characteristics_fit(market) -> float:
    from skfolio.containers import AssetPanel, Field2D, FieldCategorical
    from skfolio.descriptor import EWMarketBeta, EWMomentum, LogMarketCap
    from skfolio.factor_exposure import (
        FixedWeightedFactor,
        GlobalFactor,
        OneHotCategoricalFactors,
    )
    from skfolio.prior import CharacteristicsFactorModel

    r = market.returns
    caps = market.market_caps.iloc[1:].to_numpy()
    cats = sorted(market.sectors.unique())
    codes = np.tile(np.array([cats.index(s) for s in market.sectors[r.columns]]),
                    (len(r), 1))
    panel = AssetPanel(fields={"returns": Field2D(r.to_numpy()),
                               "market_cap": Field2D(caps),
                               "industry": FieldCategorical(codes, np.array(cats))},
                       observations=r.index.tz_localize(None).to_numpy(),
                       asset_names=np.array(r.columns))

    def style(desc_name, desc):
        return FixedWeightedFactor(descriptors=[(desc_name, desc)], family="style")

    model = CharacteristicsFactorModel(factors=[
        ("market", GlobalFactor()),
        ("industry", OneHotCategoricalFactors(category="industry", family="industry")),
        ("beta", style("market_beta", EWMarketBeta(half_life=63))),
        ("momentum", style("momentum", EWMomentum(half_life=126, skip=21))),
        ("size", style("log_market_cap", LogMarketCap())),
    ], constrained_families=[("industry", None)])
    t = time.perf_counter()
    model.fit(characteristics=panel)
    return time.perf_counter() - t


def bench_factor_models(name: str, market, repeats: int) -> list[dict]:
    from sklearn.decomposition import PCA

    rows = []
    x = market.returns.to_numpy()
    t0 = time.perf_counter()
    _ = (market.betas, market.volatility, market.adv_notional, market.log_returns,
         market.dollar_volumes)
    panels = time.perf_counter() - t0
    tk, mod = best(lambda: FundamentalFactorModel().fit(market), repeats)
    row = {"data": name, "model": "fundamental (Barra-style)",
           "factors": mod.factor_covariance_.shape[0],  # type: ignore[attr-defined]
           "regression_days": len(mod.r2_),  # type: ignore[attr-defined]
           "keel_s": tk, "keel_market_panels_s": panels}
    if market.market_caps is not None:
        row["skfolio_characteristics_s"] = skfolio_characteristics_fit(market)
        row["skfolio_factors"] = 1 + market.sectors.nunique() + 3
    rows.append(row)
    print(row, flush=True)
    tk, _ = best(lambda: StatisticalFactorModel(n_factors=30).fit(x), repeats)
    ts, _ = best(lambda: PCA(n_components=30, svd_solver="full").fit(x), repeats)
    tr, _ = best(lambda: PCA(n_components=30, svd_solver="randomized", random_state=0)
                 .fit(x), repeats)
    row = {"data": name, "model": "statistical (PCA, K=30)", "keel_s": tk,
           "sklearn_pca_full_s": ts, "sklearn_pca_randomized_s": tr}
    rows.append(row)
    print(row, flush=True)
    return rows


def main() -> None:
    import skfolio
    import sklearn

    sp = read_market(ROOT / "daily/sp500_all_stocks_5yr/all_stocks_5yr.csv.gz",
                     ROOT / "daily/sp500_constituents/constituents_2018-04-02.csv")
    syn, _ = synthetic_market(n_days=1260, n_assets=3000, n_sectors=23, seed=0)
    out = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, "sklearn": sklearn.__version__,
                    "skfolio": skfolio.__version__, "note": "2 cores shared with other jobs"},
        "estimators": (bench_estimators(f"S&P 500 {sp.n_assets}x{len(sp.returns)}",
                                        sp.returns.to_numpy())
                       + bench_estimators("synthetic 3000x1259",
                                          syn.returns.to_numpy())),
        "factor_models": (bench_factor_models(f"S&P 500 {sp.n_assets}x{len(sp.returns)}",
                                              sp, REPEATS)
                          + bench_factor_models("synthetic 3000x1259", syn, 1)),
    }
    OUT.write_text(json.dumps(out, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
