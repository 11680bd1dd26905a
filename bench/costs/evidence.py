"""Evidence for docs/costs.md on real data. Prints markdown tables.

Run from the repository root:  PYTHONPATH=src python bench/costs/evidence.py
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from keel.costs.allocation import optimal_split
from keel.costs.impact import book_samples, market_order_samples
from keel.costs.impact_fit import fit_impact_model
from keel.costs.models import SpreadCurve
from keel.data.lean import load_lean_minute_folder
from keel.data.lobster import find_lobster_pair, load_lobster

DATA = Path(os.environ.get("KEEL_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "data"


def fits_table(model: object) -> None:
    print("| curve | parameters | R² in | R² out | R² slippage in | R² slippage out "
          "| RMSE out | n train / test |\n|---|---|---|---|---|---|---|---|")
    for k, f in model.fits.items():  # type: ignore[attr-defined]
        params = ", ".join(f"{n}={v[0]:.4g}" for n, v in f.curve.params().items())
        print(f"| {k} | {params} | {f.r2_in:.3f} | {f.r2_out:.3f} | {f.r2_slippage_in:.3f} "
              f"| {f.r2_slippage_out:.3f} | {f.rmse_out:.3g} | {f.n_train} / {f.n_test} |")


def main() -> None:
    day = load_lobster(*find_lobster_pair(DATA / "lob/lobster_AMZN_2012-06-21_L1"))
    book = day.book
    samples = market_order_samples(day.messages, book)
    model = fit_impact_model(samples, symbol="AMZN", method="trades", n_buckets=13)
    print(f"## AMZN 2012-06-21: {len(samples):,} marketable orders from {book.n_snapshots:,} "
          "messages; train first 70 % by time, test last 30 %\n")
    fits_table(model)
    test = samples.sort_values("time").iloc[round(0.7 * len(samples)):]
    y, yhat = test["cost"].to_numpy(), (test["size"] * test["half_spread"]).to_numpy()
    r2 = 1 - np.sum((y - yhat) ** 2) / np.sum((y - y.mean()) ** 2)
    print(f"\nReference: size x prevailing half spread (known before each order), R² out = "
          f"{r2:.3f}")
    tod = model.tod_curves
    print("\nTime-of-day quadratic g_t (30-minute buckets): b_t (currency/share) "
          + ", ".join(f"{v:.4f}" for v in tod.params()["b"]))
    print("volume by bucket (shares): "
          + ", ".join(f"{v:,.0f}" for v in model.volume_by_bucket))
    print("\n| S shares | T | cap | optimal cost | uniform cost | improvement "
          "| uniform within caps |\n|---|---|---|---|---|---|---|")
    day = model.volume_by_bucket.sum()
    for s in (5_000, 20_000, 50_000):
        for t in (13, 78, 390):
            curves, share = model.interval_curves(t)
            for part in (0.1, 0.25):
                caps = part * day * share
                if caps.sum() < s:
                    continue
                r = optimal_split(s, curves, caps=caps)
                print(f"| {s:,} | {t} | {part:.0%} of interval volume | {r.cost:,.2f} "
                      f"| {r.uniform_cost:,.2f} | {r.improvement_pct:.1f} % "
                      f"| {'yes' if r.uniform_feasible else 'no'} |")

    # honest version: choose the split with curves fitted on every other order, cost it with
    # curves fitted on the remaining orders (the same day, so this is cross-validation in time
    # of day, not a forecast of another day)
    odd = samples.iloc[1::2]
    even = samples.iloc[0::2]
    m_fit = fit_impact_model(odd, symbol="AMZN", n_buckets=13)
    m_eval = fit_impact_model(even, symbol="AMZN", n_buckets=13)
    print("\nCross-fitted (split chosen on odd-numbered orders, costed on even-numbered ones):\n")
    print("| S shares | T | cap | optimal cost | uniform cost | improvement |\n"
          "|---|---|---|---|---|---|")
    for s in (5_000, 20_000, 50_000):
        t = 390
        curves_fit, share = m_fit.interval_curves(t)
        curves_eval, _ = m_eval.interval_curves(t)
        caps = 0.1 * day * share
        r = optimal_split(s, curves_fit, caps=caps)
        cost = curves_eval.total(r.shares)
        uni = curves_eval.total(np.full(t, s / t))
        print(f"| {s:,} | {t} | 10% of interval volume | {cost:,.2f} | {uni:,.2f} "
              f"| {100 * (uni - cost) / uni:.1f} % |")

    aapl = load_lobster(*find_lobster_pair(DATA / "lob/lobster_AAPL_2012-06-21_L10_head")).book
    top = float(np.nanmedian(aapl.depth("ask")))
    grid = np.unique(np.round(np.geomspace(1.0, top, 40)))
    bs = book_samples(aapl, grid, "buy")
    m2 = fit_impact_model(bs, symbol="AAPL", method="book", n_buckets=1, min_samples=2)
    print(f"\n## AAPL 2012-06-21 10-level book, first 49 s: {len(bs):,} (snapshot, size) pairs "
          f"walked (sizes 1..{top:,.0f} shares, {bs.attrs['unfilled']} beyond the book)\n")
    fits_table(m2)

    for sym in ("ibm", "spy"):
        bars = load_lean_minute_folder(DATA / "intraday/lean_minute" / sym, "quote")
        bars = bars[pd.DatetimeIndex(bars["bar_start"]).year == 2013]
        curve = SpreadCurve.fit_quote_bars(bars, bucket_minutes=30)
        n_days = pd.DatetimeIndex(bars["bar_start"]).normalize().nunique()
        print(f"\n{sym.upper()} spread multiplier by 30-minute bucket ({n_days} days): "
              + ", ".join(f"{v:.2f}" for v in curve.multipliers))


if __name__ == "__main__":
    main()
