"""Execution evidence on real Lean minute bars (SPY, IBM, AAPL).

For each session and parent size (1%, 5%, 10% of ADV), a buy and a sell parent are executed
from the open as MARKET, TWAP, VWAP and IS (Almgren-Chriss, urgency kappa*T = 2) through the
order manager and the paper broker, on the real quotes and volumes (5-minute bars). The paper
venue adds the impact of our own flow: a square-root law (Y sigma sqrt(Q/ADV)) on a flow that
decays with a 30-minute half-life-like e-folding time. Realised cost vs the arrival price
(the open) is split into spread (crossing to the far touch), impact (beyond the touch) and
timing (the real market's drift while the order works).

Cost-model accuracy: a pre-trade model (keel.costs: SpreadCost on the session's mean quoted
spread + SquareRootImpact) wrapped in keel.costs.adaptive.AdaptiveCost is calibrated per
algorithm (one multiplier per component) on the first half of each symbol's sessions and
scored on the other half: MAE of predicted vs realised bps.

Usage:  PYTHONPATH=src python bench/execution/evidence.py [--data DIR] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from keel.clock import SimulatedClock
from keel.costs.adaptive import AdaptiveCost
from keel.costs.base import TradeContext
from keel.costs.models import SpreadCost, SquareRootImpact
from keel.execution.bars import load_minute_bars, sessions
from keel.execution.oms import OrderManager
from keel.execution.profile import VolumeProfile
from keel.execution.schedule import (
    TWAP,
    VWAP,
    ExecutionContext,
    ImplementationShortfall,
    ScheduleConfig,
)
from keel.store.db import Store
from keel.store.orders_repo import OrdersRepo
from keel.types import Order, Side
from keel.venues.fills import BarFillModel
from keel.venues.paper import PaperBroker

Y_TRUE = 0.6  # the paper venue's impact coefficient (the "market")
DECAY_MIN = 30.0
ALGOS = ("market", "twap", "vwap", "is")
SIZES = (0.01, 0.05, 0.10)
DAYS = {"spy": None, "ibm": None, "aapl": ["2014-06-05", "2014-06-06"]}  # AAPL: pre-split


def five_minute(b: pd.DataFrame) -> pd.DataFrame:
    r = b.resample("5min", label="left", closed="left")
    out = pd.DataFrame({"open": r["open"].first(), "high": r["high"].max(),
                        "low": r["low"].min(), "close": r["close"].last(),
                        "volume": r["volume"].sum(), "bid": r["bid"].last(),
                        "ask": r["ask"].last()})
    return out.dropna(subset=["close"])


def run_one(sym: str, bars1: pd.DataFrame, adv: float, sigma: float, profile: VolumeProfile,
            algo: str, frac: float, side: Side) -> dict[str, float | str]:
    bars = five_minute(bars1)
    t0 = bars.index[0].to_pydatetime()
    arrival = float(bars1["open"].iloc[0])
    clock = SimulatedClock(t0)
    store = Store.from_url("sqlite://")
    store.create_all()
    repo = OrdersRepo(store)
    fill_model = BarFillModel({sym: bars}, participation=1.0 if algo == "market" else 0.3,
                              bar_length=pd.Timedelta(minutes=5))
    broker = PaperBroker(clock, fill_model,
                         cost_model=SquareRootImpact(y=Y_TRUE, beta=0.5), adv_shares={sym: adv},
                         daily_volatility={sym: sigma}, impact_decay_minutes=DECAY_MIN)
    oms = OrderManager(broker, repo, clock, sleep=lambda s: None, carry_remainder=True)
    oms.on_price(sym, arrival)
    qty = Decimal(round(frac * adv))
    parent = Order(f"{sym}-{algo}", sym, side, qty, t0)
    spread_bps = float(((bars1["ask"] - bars1["bid"]) / bars1["close"]).mean() * 1e4)
    ctx = ExecutionContext(price=arrival, adv_shares=adv, daily_volatility=sigma,
                           spread_bps=spread_bps, profile=profile)
    cfg = ScheduleConfig(n_slices=13)
    if algo == "market":
        kids = None
    else:
        sched = {"twap": TWAP(cfg), "vwap": VWAP(profile, cfg),
                 "is": ImplementationShortfall(config=cfg, urgency=2.0)}[algo]
        kids = sched.schedule(parent, ctx, clock)
    oms.submit(parent, kids, algo=algo, arrival_price=arrival)
    end = bars.index[-1] + pd.Timedelta(minutes=10)
    while clock.now() < end and oms.get(parent.client_order_id).status.is_open:
        oms.step()
        clock.advance(timedelta(minutes=5))
    oms.step()
    fills = [f for f, _ in repo.fills()]
    q = np.array([float(f.qty) for f in fills])
    px = np.array([float(f.price) for f in fills])
    # the quote of the 5-minute bar each fill came from (fills are stamped at the bar end)
    pos = bars.index.searchsorted(pd.DatetimeIndex([f.timestamp for f in fills])
                                  - pd.Timedelta(minutes=5))
    bid, ask = bars["bid"].to_numpy()[pos], bars["ask"].to_numpy()[pos]
    mid, far = 0.5 * (bid + ask), np.where(side is Side.BUY, ask, bid)
    s = side.sign
    filled = float(q.sum())
    notional = arrival * filled
    spread = s * ((far - mid) * q).sum() / notional * 1e4
    impact = s * ((px - far) * q).sum() / notional * 1e4
    timing = s * ((mid - arrival) * q).sum() / notional * 1e4
    duration = (max(f.timestamp for f in fills) - t0).total_seconds() / 60.0
    return {"symbol": sym, "day": str(bars1.index[0].date()), "algo": algo, "frac": frac,
            "side": side.value, "qty": float(qty), "fill_rate": filled / float(qty),
            "cost_bps": spread + impact + timing, "spread_bps": spread,
            "impact_bps": impact, "timing_bps": timing, "duration_min": duration,
            "pred_spread_bps": spread_bps / 2, "arrival": arrival, "adv": adv,
            "sigma": sigma}


def pretrade(r: pd.Series) -> tuple[TradeContext, float]:
    """The one-name context of a run and its signed notional at arrival (currency)."""
    ctx = TradeContext(symbols=pd.Index([r["symbol"]]), prices=np.array([r["arrival"]]),
                       adv_notional=np.array([r["adv"] * r["arrival"]]),
                       volatility=np.array([r["sigma"]]),
                       spreads=np.array([2 * r["pred_spread_bps"] / 1e4]))
    sign = 1.0 if r["side"] == "BUY" else -1.0
    return ctx, sign * r["qty"] * r["fill_rate"] * r["arrival"]


def daily_sigma(b: pd.DataFrame) -> float:
    r = np.log(b["close"].resample("5min").last().dropna()).diff().dropna()
    return float(r.std() * np.sqrt(78))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="/work/shared/data/intraday/lean_minute")
    ap.add_argument("--out", default="bench/execution/evidence.json")
    ap.add_argument("--quick", action="store_true", help="two sessions per symbol (smoke run)")
    args = ap.parse_args()
    t_start = time.perf_counter()
    rows = []
    for sym, keep in DAYS.items():
        all_bars = load_minute_bars(Path(args.data) / sym)
        days = {d: g for d, g in sessions(all_bars).items()
                if (keep is None and d.year == 2013) or (keep and str(d.date()) in keep)}
        if args.quick:
            days = dict(list(days.items())[:2])
        for d, g in days.items():
            others = pd.concat([b for k, b in days.items() if k != d])
            adv = float(others["volume"].sum() / (len(days) - 1))  # leave-one-out ADV
            profile = VolumeProfile.fit(others)  # not fitted on the day it trades
            sigma = daily_sigma(g)
            for frac in SIZES:
                for algo in ALGOS:
                    for side in (Side.BUY, Side.SELL):
                        rows.append(run_one(sym.upper(), g, adv, sigma, profile, algo,
                                            frac, side))
            print(f"{sym} {d.date()} done ({time.perf_counter() - t_start:.0f}s)", flush=True)
    df = pd.DataFrame(rows)
    df["split"] = "train"
    for sym, g in df.groupby("symbol"):
        days = sorted(g["day"].unique())
        test = days[len(days) // 2:]
        df.loc[(df["symbol"] == sym) & df["day"].isin(test), "split"] = "test"
    # calibrate the pre-trade model per algorithm on the train half, predict the test half:
    # (a) least squares on the two components, (b) AdaptiveCost (recursive least squares,
    # the path TCA.feed takes in production)
    df["pred_bps"] = np.nan
    df["pred_adaptive_bps"] = np.nan
    coefs: dict[str, dict[str, list[float]]] = {}
    for algo, g in df.groupby("algo"):
        base = SpreadCost() + SquareRootImpact(y=Y_TRUE, beta=0.5)
        feats = np.array([[float(v[0]) / abs(n) * 1e4 for v in
                           base.components(np.array([n]), c).values()]
                          for c, n in (pretrade(r) for _, r in g.iterrows())]).reshape(len(g), 2)
        train = (g["split"] == "train").to_numpy()
        k, *_ = np.linalg.lstsq(feats[train], g["cost_bps"].to_numpy()[train], rcond=None)
        k = np.clip(k, 0.0, None)
        df.loc[g.index, "pred_bps"] = feats @ k
        model = AdaptiveCost(base, forgetting=1.0, prior_strength=1.0)
        for _, r in g[train].iterrows():
            ctx, notional = pretrade(r)
            model.observe(np.array([notional]), ctx,
                          np.array([r["cost_bps"] * abs(notional) / 1e4]))
        df.loc[g.index, "pred_adaptive_bps"] = feats @ model.multipliers_
        coefs[algo] = {"least_squares": k.round(3).tolist(),
                       "adaptive": model.multipliers_.round(3).tolist()}
    df["exec_cost_bps"] = df["spread_bps"] + df["impact_bps"]  # vs the mid at each fill
    test = df[df["split"] == "test"]
    err = (test["pred_bps"] - test["cost_bps"]).abs()
    err_ex = (test["pred_bps"] - test["exec_cost_bps"]).abs()
    err_ad = (test["pred_adaptive_bps"] - test["cost_bps"]).abs()
    err_ad_ex = (test["pred_adaptive_bps"] - test["exec_cost_bps"]).abs()
    summary = (df.groupby(["algo", "frac"])
               .agg(cost_bps=("cost_bps", "mean"), risk_bps=("cost_bps", "std"),
                    spread_bps=("spread_bps", "mean"), impact_bps=("impact_bps", "mean"),
                    timing_bps=("timing_bps", "mean"), fill_rate=("fill_rate", "mean"),
                    duration_min=("duration_min", "mean"), runs=("cost_bps", "size"))
               .reset_index())
    accuracy = {
        "test_runs": len(test),
        "mae_bps": float(err.mean()),
        "mae_bps_by_algo": err.groupby(test["algo"]).mean().round(2).to_dict(),
        "mae_ex_timing_bps": float(err_ex.mean()),
        "mae_ex_timing_bps_by_algo": err_ex.groupby(test["algo"]).mean().round(2).to_dict(),
        "adaptive_mae_bps": float(err_ad.mean()),
        "adaptive_mae_bps_by_algo": err_ad.groupby(test["algo"]).mean().round(2).to_dict(),
        "adaptive_mae_ex_timing_bps": float(err_ad_ex.mean()),
        "median_slippage_vs_arrival_bps_by_algo":
            test.groupby("algo")["cost_bps"].median().round(2).to_dict(),
        "median_slippage_vs_arrival_bps": float(test["cost_bps"].median()),
        "median_abs_slippage_vs_arrival_bps": float(test["cost_bps"].abs().median()),
        "multipliers_spread_impact": coefs,
    }
    out = {"summary": summary.round(3).to_dict(orient="records"), "accuracy": accuracy,
           "runs": len(df), "seconds": round(time.perf_counter() - t_start, 1)}
    Path(args.out).write_text(json.dumps(out, indent=1))
    pd.set_option("display.width", 160)
    print(summary.round(2).to_string(index=False))
    print(json.dumps(accuracy, indent=1))
    print(f"{len(df)} runs in {out['seconds']} s")


if __name__ == "__main__":
    main()
