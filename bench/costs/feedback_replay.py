"""Closed cost feedback on a replay of real minute bars: learned vs fixed cost model.

Parents (market, TWAP, VWAP, IS; 1%, 5%, 10% of ADV; buy and sell) are executed from the open
of every session of SPY, IBM (2013) and AAPL (2014, pre-split) in ``/work/shared/data/
intraday/lean_minute`` through the order manager and the paper broker on the real quotes and
volumes, exactly as ``bench/execution/evidence.py`` does (its ``run_one``; the paper venue adds
a square-root impact of our own flow). Per symbol, the first half of the sessions is the
training half, the second the held-out half.

Models, each keyed by algorithm as a desk would (one ``AdaptiveCost`` per algo name):

* fixed: keel's default pre-trade model, ``SpreadCost() + SquareRootImpact()`` (multipliers 1);
* learned: ``AdaptiveCost`` over it, fed each training order's realised cost vs arrival (the
  number ``CostFeedback`` feeds from TCA: side x (avg fill - arrival) x qty), then frozen;
* learned (prequential): the same, but it keeps learning through the held-out half, each
  order predicted *before* its own cost is observed (what the live loop does);
* old estimator: the ratio-clipped RLS ``AdaptiveCost`` had before (observed ratio clipped to
  [0, 10], forgetting 0.98, prior 5), re-implemented here for comparison.

Reported: MAE in bps of the prediction vs (a) the realised cost vs arrival (what TCA measures,
timing noise included) and (b) the execution cost vs the mid at each fill (spread + impact,
no timing), on the held-out orders.

Usage:  PYTHONPATH=src python bench/costs/feedback_replay.py [--data DIR] [--runs CSV]
        (--save FILE.csv keeps the replay, --runs FILE.csv reuses it)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from keel.costs.adaptive import AdaptiveCost
from keel.costs.base import CostModel, TradeContext
from keel.costs.models import SpreadCost, SquareRootImpact
from keel.execution.bars import load_minute_bars, sessions
from keel.execution.profile import VolumeProfile
from keel.types import Side

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "execution"))
from evidence import ALGOS, DAYS, SIZES, daily_sigma, pretrade, run_one

DATA = Path(os.environ.get("KEEL_SHARED", "/work/shared")) / "data/intraday/lean_minute"


def replay(data: Path) -> pd.DataFrame:
    rows = []
    for sym, keep in DAYS.items():
        all_bars = load_minute_bars(data / sym)
        days = {d: g for d, g in sessions(all_bars).items()
                if (keep is None and d.year == 2013) or (keep and str(d.date()) in keep)}
        for d, g in days.items():
            others = pd.concat([b for k, b in days.items() if k != d])
            adv = float(others["volume"].sum() / (len(days) - 1))  # leave-one-out ADV
            profile = VolumeProfile.fit(others)
            sigma = daily_sigma(g)
            for frac in SIZES:
                for algo in ALGOS:
                    for side in (Side.BUY, Side.SELL):
                        rows.append(run_one(sym.upper(), g, adv, sigma, profile, algo, frac,
                                            side))
            print(f"replayed {sym} {d.date()}", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    df["split"] = "train"
    for sym, g in df.groupby("symbol"):
        days_ = sorted(g["day"].unique())
        df.loc[(df["symbol"] == sym) & df["day"].isin(days_[len(days_) // 2:]), "split"] = "test"
    return df


class OldRatioClip:
    """The estimator AdaptiveCost had before: RLS on realised/predicted, ratio clipped."""

    def __init__(self, base: CostModel, forgetting: float = 0.98, prior: float = 5.0,
                 clip: tuple[float, float] = (0.0, 10.0),
                 bounds: tuple[float, float] = (0.2, 5.0)) -> None:
        self.parts = base.models if hasattr(base, "models") else (base,)
        c = len(self.parts)
        self.k, self.p = np.ones(c), np.eye(c) / prior
        self.lam, self.clip, self.bounds = forgetting, clip, bounds

    def feats(self, n: np.ndarray, ctx: TradeContext) -> np.ndarray:
        return np.stack([m.cost_array(n, ctx) for m in self.parts], axis=1)

    def observe(self, n: np.ndarray, ctx: TradeContext, y: np.ndarray) -> None:
        f = self.feats(n, ctx)[0]
        p = f.sum()
        x = f / p
        ratio = float(np.clip(y[0] / p, *self.clip))
        px = self.p @ x
        gain = px / (self.lam + x @ px)
        self.k = np.clip(self.k + gain * (ratio - x @ self.k), *self.bounds)
        self.p = (self.p - np.outer(gain, px)) / self.lam

    def predict(self, n: np.ndarray, ctx: TradeContext) -> float:
        return float(self.feats(n, ctx)[0] @ self.k)


def evaluate(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, dict[str, list[float]]]]:
    df = df.sort_values(["day", "symbol", "algo", "frac", "side"]).reset_index(drop=True)
    for col in ("fixed", "learned", "prequential", "old"):
        df[col] = np.nan
    mults: dict[str, dict[str, list[float]]] = {}
    for algo, g in df.groupby("algo", sort=False):
        base = SpreadCost() + SquareRootImpact()
        learned, preq = AdaptiveCost(base), AdaptiveCost(base)
        old = OldRatioClip(base)
        frozen: AdaptiveCost | None = None
        for i, r in g.iterrows():
            ctx, notional = pretrade(r)
            n = np.array([notional])
            scale = 1e4 / abs(notional)
            realised = np.array([r["cost_bps"] / scale])
            if r["split"] == "test" and frozen is None:
                frozen = learned
            df.loc[i, "fixed"] = float(base.cost_array(n, ctx)[0]) * scale
            df.loc[i, "prequential"] = float(preq.cost_array(n, ctx)[0]) * scale
            df.loc[i, "old"] = old.predict(n, ctx) * scale
            if r["split"] == "train":
                learned.observe(n, ctx, realised)
                old.observe(n, ctx, realised)
            else:
                assert frozen is not None
                df.loc[i, "learned"] = float(frozen.cost_array(n, ctx)[0]) * scale
            preq.observe(n, ctx, realised)
        mults[str(algo)] = {"learned": learned.multipliers_.round(3).tolist(),
                            "old": old.k.round(3).tolist()}
    return df, mults


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--runs", type=Path, default=None, help="a saved replay (CSV) to reuse")
    ap.add_argument("--save", type=Path, default=None, help="write the replay here (CSV)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.runs is not None:
        df = pd.read_csv(args.runs)
    else:
        df = replay(args.data)
        if args.save is not None:
            df.to_csv(args.save, index=False)
    t_replay = time.perf_counter() - t0
    df, mults = evaluate(df)
    df["exec_cost_bps"] = df["spread_bps"] + df["impact_bps"]
    test = df[df["split"] == "test"]
    rows = []
    for algo, g in [*test.groupby("algo"), ("all", test)]:
        row: dict[str, object] = {"algo": algo, "orders": len(g)}
        for m in ("fixed", "learned", "prequential", "old"):
            row[f"{m} vs arrival"] = (g[m] - g["cost_bps"]).abs().mean()
        for m in ("fixed", "learned", "old"):
            row[f"{m} vs mid"] = (g[m] - g["exec_cost_bps"]).abs().mean()
        rows.append(row)
    table = pd.DataFrame(rows)
    print(f"| {' | '.join(table.columns)} |")
    print("|" + "---|" * len(table.columns))
    for _, r in table.iterrows():
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in r]
        print(f"| {' | '.join(cells)} |")
    print("\nmultipliers (spread, impact) after the training half:")
    for algo, m in mults.items():
        print(f"  {algo}: learned {m['learned']}, old estimator {m['old']}")
    print(f"\n{len(df)} orders ({len(test)} held out); replay {t_replay:.0f} s; "
          f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
