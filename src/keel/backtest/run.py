"""Run a configured backtest end to end: data -> simulation -> files, report, store, MLflow.

Outputs in ``general.out_dir/backtest`` (or ``--out``): ``metrics.csv`` (one row per book),
``nav.csv`` (sessions x books), ``costs.csv``, ``universe.csv`` (per session: names the
engines could trade, and names in the point-in-time tradable mask), ``events.csv`` (labelled
events: delisted holdings liquidated, unfilled trades), ``result.json`` (config, metrics,
failures, decisions, events, timings, ledger reconciliation) and
``report.html``. With ``tracking.record_runs`` the run is recorded in the store's ``runs``
table (config at start, metrics at the end); with ``tracking.mlflow`` it is logged to MLflow.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from keel.backtest.engine import Backtester, BacktestResult
from keel.config import KeelConfig, config_as_dict
from keel.data.market import MarketData


def load_market(cfg: KeelConfig) -> MarketData:
    """The market ``[data]`` names (see :func:`keel.app.pipeline.load_market`)."""
    from keel.app.pipeline import load_market as _load

    return _load(cfg)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _int(v: Any) -> int | None:
    return None if v is None or not math.isfinite(float(v)) else int(v)


def save_outputs(result: BacktestResult, out: Path, *, report: bool = True,
                 title: str = "keel backtest") -> dict[str, Path]:
    """Write the result files into ``out``; returns name -> path."""
    out.mkdir(parents=True, exist_ok=True)
    m = result.metrics()
    paths = {"metrics": out / "metrics.csv", "nav": out / "nav.csv",
             "costs": out / "costs.csv", "result": out / "result.json"}
    m.to_csv(paths["metrics"])
    pd.DataFrame({k: b.nav for k, b in result.books.items()}).to_csv(paths["nav"])
    pd.concat({k: b.costs for k, b in result.books.items()}, axis=1).to_csv(paths["costs"])
    pd.DataFrame({"universe": result.universe, "tradable": result.tradable}).to_csv(
        out / "universe.csv")
    events = [{"book": k, **e} for k, b in result.books.items() for e in b.events]
    pd.DataFrame(events, columns=["book", "date", "symbol", "event", "price", "notional",
                                  "cost", "last_close_date"]).to_csv(out / "events.csv",
                                                                      index=False)
    doc = {"config": result.config, "execution_lag": result.execution_lag,
           "caveats": list(result.caveats),
           "risk_models": [[str(d), m] for d, m in result.risk_models],
           "decisions": {k: b.decisions for k, b in result.books.items()},
           "events": {k: b.events for k, b in result.books.items()},
           "universe": {"min": _int(result.universe.min()),
                        "max": _int(result.universe.max()),
                        "first": _int(result.universe.iloc[0]) if len(result.universe) else None,
                        "last": _int(result.universe.iloc[-1]) if len(result.universe) else None},
           "metrics": {k: {c: _clean(v) for c, v in row.items()}
                       for k, row in m.to_dict(orient="index").items()},
           "failures": result.failures, "timings": result.timings,
           "ledger": {k: b.ledger for k, b in result.books.items()}}
    paths["result"].write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")
    if report:
        from keel.backtest.report import write_report

        paths["report"] = write_report(result, out / "report.html", title)
    return paths


def summary_metrics(result: BacktestResult) -> dict[str, float]:
    """Flat ``book.metric -> value`` of the numeric metrics (for the store and MLflow)."""
    out: dict[str, float] = {}
    for book, row in result.metrics().to_dict(orient="index").items():
        for k, v in row.items():
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                out[f"{book}.{k}".replace("/", "_")] = float(v)
    return out


def run_backtest(cfg: KeelConfig, *, market: MarketData | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 out_dir: Path | None = None) -> tuple[BacktestResult, dict[str, Path]]:
    """Load data, simulate, write outputs (``general.out_dir/backtest`` by default), record
    in the store (``tracking.record_runs``) and MLflow (``tracking.mlflow``)."""
    from keel.clock import WallClock

    clock = WallClock()
    run_id = None
    registry = None
    name = cfg.general.name
    if cfg.tracking.record_runs:
        from keel.store.db import Store
        from keel.store.runs import RunRegistry

        store = Store.from_url(cfg.store.url, echo=cfg.store.echo)
        store.upgrade()
        registry = RunRegistry(store)
        run_id = f"{name}-{clock.now():%Y%m%dT%H%M%S%f}"[:64]
        registry.start(run_id, "backtest", config_as_dict(cfg), clock.now())
    try:
        mkt = market if market is not None else load_market(cfg)
        result = Backtester(cfg).run(mkt, progress=progress)
        result.caveats = tuple(mkt.caveats)
    except Exception:
        if registry is not None and run_id is not None:
            from keel.store.runs import RunStatus

            registry.finish(run_id, RunStatus.FAILED, {}, clock.now())
        raise
    out = out_dir if out_dir is not None else Path(cfg.general.out_dir) / "backtest"
    paths = save_outputs(result, out, report=cfg.backtest.report, title=name)
    if registry is not None and run_id is not None:
        from keel.store.runs import RunStatus

        registry.finish(run_id, RunStatus.SUCCEEDED, summary_metrics(result), clock.now())
    if cfg.tracking.mlflow:
        from keel.backtest.tracking import log_to_mlflow

        log_to_mlflow(result, paths, tracking_uri=cfg.tracking.mlflow_uri, out_dir=out,
                      run_name=name)
    return result, paths
