"""Sweeps: a grid of backtests over dotted config keys, on a local process pool or on Ray.

``[backtest.sweep] grid = {"risk.n_pca_factors" = [5, 10], "optimize.risk_aversion" = [1, 5]}``
(or ``"backtest.books.0.optimize.greedy_k"``) runs
the cartesian product; each point is a full backtest (its config stored with its metrics).
Results are gathered into one table (one row per point x book) and one report.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ProcessPoolExecutor
from enum import StrEnum
from typing import Any

import pandas as pd

from keel.config import KeelConfig, config_as_dict, with_overrides
from keel.errors import ConfigError


class Engine(StrEnum):
    LOCAL = "local"
    RAY = "ray"


def grid_points(cfg: KeelConfig) -> list[dict[str, Any]]:
    """The cartesian product of ``backtest.sweep.grid`` as override dicts (``[{}]`` if
    empty); every point is validated (a bad dotted key is a ConfigError naming it)."""
    grid = cfg.backtest.sweep.grid
    keys = sorted(grid)
    for k in keys:
        if not isinstance(grid[k], list) or not grid[k]:
            raise ConfigError("a sweep axis needs a non-empty list",
                              field=f"backtest.sweep.grid.{k}")
    points = [dict(zip(keys, combo, strict=True))
              for combo in itertools.product(*(grid[k] for k in keys))]
    for p in points:
        with_overrides(cfg, p)
    return points


def run_point(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """One grid point (picklable: plain dicts in and out). Returns metrics rows, nav, errors."""
    from keel.backtest.run import load_market
    from keel.config import KeelConfig
    from keel.errors import KeelError

    cfg = with_overrides(KeelConfig.model_validate(config), overrides)
    label = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "base"
    try:
        from keel.backtest.engine import Backtester

        res = Backtester(cfg).run(load_market(cfg))
    except KeelError as exc:
        return {"point": label, "overrides": overrides, "error": f"{type(exc).__name__}: {exc}",
                "metrics": [], "nav": {}}
    m = res.metrics().reset_index()
    return {"point": label, "overrides": overrides, "error": None,
            "metrics": m.to_dict(orient="records"),
            "nav": {f"{label} | {k}": b.nav for k, b in res.books.items()}}


def run_sweep(cfg: KeelConfig, *, engine: Engine | str = Engine.LOCAL,
              workers: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every grid point; returns (table: one row per point x book, nav: sessions x runs).

    ``engine="ray"`` uses Ray tasks (``ray.init()`` locally unless already connected).
    """
    eng = Engine(engine)
    points = grid_points(cfg)
    base = config_as_dict(cfg)
    base["backtest"]["sweep"] = {"grid": {}, "workers": cfg.backtest.sweep.workers}
    n = workers or cfg.backtest.sweep.workers
    if eng is Engine.RAY:
        try:
            import ray
        except ImportError:
            raise ConfigError("--engine ray needs the ray extra (pip install 'keel[ray]')",
                              field="engine", value="ray") from None
        started = False
        if not ray.is_initialized():
            from pathlib import Path

            import keel

            # workers import keel from the same source tree as the driver
            src = str(Path(keel.__file__).resolve().parents[1])
            ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": src}})
            started = True
        try:
            task = ray.remote(run_point)
            outs = ray.get([task.remote(base, p) for p in points])
        finally:
            if started:
                ray.shutdown()
    elif n == 1 or len(points) == 1:
        outs = [run_point(base, p) for p in points]
    else:
        with ProcessPoolExecutor(max_workers=n) as pool:
            outs = list(pool.map(run_point, [base] * len(points), points))
    rows = []
    navs: dict[str, pd.Series] = {}
    for o in outs:
        if o["error"] is not None:
            rows.append({"point": o["point"], "error": o["error"], **o["overrides"]})
            continue
        for r in o["metrics"]:
            rows.append({"point": o["point"], "error": None, **o["overrides"], **r})
        navs.update(o["nav"])
    return pd.DataFrame(rows), pd.DataFrame(navs)
