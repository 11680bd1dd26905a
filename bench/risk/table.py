"""Render bench/risk/results/bench_risk.json as the Markdown tables of docs/benchmarks.md."""

from __future__ import annotations

import json
from pathlib import Path

RES = json.loads((Path(__file__).parent / "results" / "bench_risk.json").read_text())


def ms(v: float | None) -> str:
    return "-" if v is None else (f"{1000 * v:.0f} ms" if v < 1 else f"{v:.2f} s")


def diff(v: float | None) -> str:
    return "-" if v is None else f"{v:.0e}"


print("| data | estimator | keel | scikit-learn | skfolio | max abs diff vs sklearn / skfolio |")
print("|---|---|---|---|---|---|")
for r in RES["estimators"]:
    print(f"| {r['data']} | {r['estimator']} | {ms(r['keel_s'])} | {ms(r.get('sklearn_s'))} "
          f"| {ms(r.get('skfolio_s'))} | {diff(r.get('max_abs_diff_vs_sklearn'))} / "
          f"{diff(r.get('max_abs_diff_vs_skfolio'))} |")
print()
print("| data | model | keel | peer |")
print("|---|---|---|---|")
for r in RES["factor_models"]:
    if "sklearn_pca_full_s" in r:
        peer = (f"sklearn PCA full {ms(r['sklearn_pca_full_s'])}, randomized "
                f"{ms(r['sklearn_pca_randomized_s'])}")
    elif "skfolio_characteristics_s" in r:
        peer = (f"skfolio CharacteristicsFactorModel ({r['skfolio_factors']} factors) "
                f"{ms(r['skfolio_characteristics_s'])}")
    else:
        peer = "- (no market caps: skfolio's model needs them)"
    extra = (f" ({r['factors']} factors, {r['regression_days']} regression days; market "
             f"panels {ms(r['keel_market_panels_s'])})" if "factors" in r else "")
    print(f"| {r['data']} | {r['model']}{extra} | {ms(r['keel_s'])} | {peer} |")
print()
print("machine:", RES["machine"])
