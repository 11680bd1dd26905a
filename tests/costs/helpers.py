"""Shared test helpers for the costs layer."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pandas as pd

from keel.costs.base import CostModel, TradeContext


def make_ctx(n: int = 5, *, nav: float = 1e7, seed: int = 0, **kw: object) -> TradeContext:
    rng = np.random.default_rng(seed)
    return TradeContext(
        symbols=pd.Index([f"S{i}" for i in range(n)]),
        prices=rng.uniform(10, 300, n), adv_notional=rng.uniform(1e7, 5e8, n),
        volatility=rng.uniform(0.01, 0.04, n), spreads=rng.uniform(2e-4, 2e-3, n), nav=nav,
        **kw)  # type: ignore[arg-type]


def expr_value(model: CostModel, weights: np.ndarray, ctx: TradeContext) -> float:
    """The model's CVXPY expression evaluated at ``weights`` (checks DCP and convexity)."""
    w = cp.Variable(len(weights))
    e = model.expr(w, ctx)
    assert e.is_dcp() and e.is_convex(), repr(model)
    w.value = weights
    return float(e.value)


def numeric_nav(model: CostModel, weights: np.ndarray, ctx: TradeContext) -> float:
    return float(model.cost(weights * ctx.nav, ctx).total / ctx.nav)
