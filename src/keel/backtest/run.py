"""Run a configured backtest end to end: data -> simulation -> files, report, store, MLflow.

Outputs in ``output.dir``: ``metrics.csv`` (one row per book), ``nav.csv`` (sessions x books),
``costs.csv``, ``result.json`` (config, metrics, failures, timings, ledger reconciliation) and
``report.html``. With ``output.store_url`` the run is recorded in the store's ``runs`` table
(config at start, metrics at the end); with ``output.mlflow`` it is logged to MLflow.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from keel.backtest.config import BacktestConfig, DataKind
from keel.backtest.engine import Backtester, BacktestResult
from keel.data.market import MarketData
from keel.errors import ConfigError


def resolve_path(path: str, base: Path | None) -> Path:
    """``path`` as given if it exists (relative to the working directory), else relative to
    ``base`` (the config file's folder)."""
    p = Path(path)
    if p.is_absolute() or p.exists() or base is None:
        return p
    return base / p


def load_market(cfg: BacktestConfig, base: Path | None = None) -> MarketData:
    """The market named by ``cfg.data`` (synthetic from the seed, or a long price file)."""
    d = cfg.data
    if d.source is DataKind.SYNTHETIC:
        from keel.data.synthetic import synthetic_market

        market = synthetic_market(d.n_assets, d.n_days, seed=cfg.seed)
    else:
        if d.path is None:
            raise ConfigError("data.path is required for source = 'csv'", field="data.path")
        from keel.data.prices import load_prices_long

        path = resolve_path(d.path, base)
        if not path.exists():
            raise ConfigError("price file not found", field="data.path", value=str(path))
        sectors = None
        if d.sectors is not None:
            sectors = resolve_path(d.sectors, base)
            if not sectors.exists():
                raise ConfigError("sector file not found", field="data.sectors",
                                  value=str(sectors))
        market = load_prices_long(path, sectors=sectors, on_missing=d.on_missing,
                                  spreads=d.spread_estimate)
    if d.max_assets is not None and d.max_assets < market.n_assets:
        market = market.select(market.symbols[: d.max_assets])
    return market


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


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
    doc = {"config": result.config,
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


def run_backtest(cfg: BacktestConfig, *, base: Path | None = None,
                 market: MarketData | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 out_dir: Path | None = None) -> tuple[BacktestResult, dict[str, Path]]:
    """Load data, simulate, write outputs, record in the store and MLflow as configured."""
    from keel.clock import WallClock

    clock = WallClock()
    run_id = None
    registry = None
    if cfg.output.store_url is not None:
        from keel.store.db import Store
        from keel.store.runs import RunRegistry

        store = Store.from_url(cfg.output.store_url)
        store.create_all()
        registry = RunRegistry(store)
        run_id = f"{cfg.name}-{clock.now():%Y%m%dT%H%M%S%f}"[:64]
        registry.start(run_id, "backtest", cfg.as_dict(), clock.now())
    try:
        mkt = market if market is not None else load_market(cfg, base)
        result = Backtester(cfg).run(mkt, progress=progress)
    except Exception:
        if registry is not None and run_id is not None:
            from keel.store.runs import RunStatus

            registry.finish(run_id, RunStatus.FAILED, {}, clock.now())
        raise
    out = out_dir if out_dir is not None else Path(cfg.output.dir)
    paths = save_outputs(result, out, report=cfg.output.report, title=cfg.name)
    if registry is not None and run_id is not None:
        from keel.store.runs import RunStatus

        registry.finish(run_id, RunStatus.SUCCEEDED, summary_metrics(result), clock.now())
    if cfg.output.mlflow:
        from keel.backtest.tracking import log_to_mlflow

        log_to_mlflow(result, paths, tracking_uri=cfg.output.mlflow_uri, out_dir=out,
                      run_name=cfg.name)
    return result, paths
