"""Production limits wired from the one configuration: the risk fit's memory budget (refused,
the next model of the chain used), solver limits reaching the engines, and one ``keel run`` per
store (the second refused by the single-writer lease, or waiting for it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keel.app.pipeline import Pipeline, load_market
from keel.config import KeelConfig, RiskModelKind
from keel.risk.memory import fit_bytes

SRC = Path(__file__).resolve().parents[2] / "src"
MARKET = ["--assets", "20", "--days", "300", "--seed", "3"]


def _cfg(**sections: dict) -> KeelConfig:
    base: dict = {"data": {"n_assets": 30, "n_days": 300}, "risk": {"lookback_days": 200}}
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v}
    return KeelConfig(**base)


def test_a_fit_above_the_memory_budget_falls_back_and_says_why() -> None:
    view = load_market(_cfg())
    n, t = len(view.symbols), 200
    # between the PCA model's estimate and the fundamental model's: fundamental is refused
    budget = (fit_bytes("pca", n, t, 10) + fit_bytes("fundamental", n, t, 10)) / 2 / 2**20
    assert fit_bytes("pca", n, t, 10) < fit_bytes("fundamental", n, t, 10)
    fit = Pipeline(_cfg(risk={"memory_budget_mb": budget})).fit_risk(view)
    assert fit.used is RiskModelKind.PCA
    assert any("memory_budget_mb" in why for _, why in fit.failed)
    unlimited = Pipeline(_cfg(risk={"memory_budget_mb": None})).fit_risk(view)
    assert unlimited.used is RiskModelKind.FUNDAMENTAL


def test_solver_limits_reach_the_engine() -> None:
    cfg = _cfg(optimize={"solver_time_limit_s": 2.5, "solver_max_iter": 77})
    pipe = Pipeline(cfg)
    view = load_market(cfg)
    engine = pipe.engine()
    problem = engine._build(_step(pipe, view))  # the compiled problem the engine solves
    assert problem.limits.time_limit_s == 2.5 and problem.limits.max_iter == 77


def _step(pipe: Pipeline, view):  # type: ignore[no-untyped-def]
    import numpy as np

    from keel.costs.base import TradeContext

    score, alpha = pipe.signals(view)
    risk = pipe.fit_risk(view).model
    ctx = TradeContext.from_market(view, nav=1e6)
    return pipe.step(view, view.dates[-1], score, alpha, np.zeros(len(view.symbols)), risk, ctx)


def _keel_run(out: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    env.pop("KEEL_STORE__URL", None)
    cmd = [sys.executable, "-m", "keel", "run", "--out-dir", str(out), *MARKET,
           "--venue", "local", "--local-protocol", "rest", "--interval", "0.2", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)


@pytest.mark.slow
def test_a_second_keel_run_on_the_same_store_is_refused(tmp_path: Path) -> None:
    first = _keel_run(tmp_path)
    try:
        assert first.stdout is not None
        deadline = time.monotonic() + 120
        for line in first.stdout:
            if line.startswith("CYCLE") or time.monotonic() > deadline:
                break
        second = _keel_run(tmp_path, "--max-bars", "1")
        out, _ = second.communicate(timeout=120)
        assert second.returncode == 2, out
        assert "single-writer lease" in out and "holder=" in out
        waiting = _keel_run(tmp_path, "--max-bars", "1", "--wait-lease", "90")
        time.sleep(1.0)
        first.send_signal(signal.SIGTERM)          # drains and releases the lease
        first.wait(timeout=60)
        out, _ = waiting.communicate(timeout=150)
        assert waiting.returncode == 0, out
        assert "STOPPED bars=1" in out
    finally:
        for p in (first,):
            if p.poll() is None:
                p.kill()
