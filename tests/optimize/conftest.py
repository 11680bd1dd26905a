"""Fixtures of the optimize tests: random factor models and tiny cost models."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest

from keel.costs.base import CostModel, SeparableForm, TradeContext
from keel.optimize.inputs import PortfolioInputs
from keel.risk.base import FactorCovariance


class LinearCost(CostModel):
    """``bps`` basis points of |trade| (a stand-in for the spread/commission models)."""

    name = "linear"

    def __init__(self, bps: float) -> None:
        self.bps = bps

    def cost_array(self, trades_notional: np.ndarray, ctx: TradeContext) -> np.ndarray:
        return self.bps * 1e-4 * np.abs(trades_notional)

    def expr(self, trade_weights: cp.Expression, ctx: TradeContext) -> cp.Expression:
        return self.bps * 1e-4 * cp.norm1(trade_weights)

    def separable_form(self, ctx: TradeContext) -> SeparableForm | None:
        return SeparableForm(np.full(len(ctx.symbols), self.bps * 1e-4))


class PowerCost(CostModel):
    """``c * sigma * |t|^1.5 / sqrt(ADV)`` in NAV units (a stand-in for square-root impact)."""

    name = "power"

    def __init__(self, c: float = 1.0) -> None:
        self.c = c

    def _coef(self, ctx: TradeContext) -> np.ndarray:
        return self.c * ctx.volatility / np.sqrt(ctx.adv_notional / ctx.nav)

    def cost_array(self, trades_notional: np.ndarray, ctx: TradeContext) -> np.ndarray:
        t = np.abs(trades_notional) / ctx.nav
        return self._coef(ctx) * t ** 1.5 * ctx.nav

    def expr(self, trade_weights: cp.Expression, ctx: TradeContext) -> cp.Expression:
        return self._coef(ctx) @ cp.power(cp.abs(trade_weights), 1.5)

    def separable_form(self, ctx: TradeContext) -> SeparableForm | None:
        return SeparableForm(np.zeros(len(ctx.symbols)), self._coef(ctx), 1.5)


def make_factor(n: int, k: int, seed: int = 0) -> FactorCovariance:
    rng = np.random.default_rng(seed)
    sym = pd.Index([f"S{i:04d}" for i in range(n)])
    b = rng.normal(0, 1, (n, k))
    b[:, 0] = 1.0 + 0.3 * rng.normal(size=n)
    a = rng.normal(0, 1, (k, k))
    f = (a @ a.T / k + np.eye(k)) * 1e-5
    d = rng.uniform(1e-4, 4e-4, n)
    return FactorCovariance(sym, pd.Index([f"f{j}" for j in range(k)]), b, f, d)


def make_inputs(n: int = 30, k: int = 3, seed: int = 0, *, current: bool = False,
                nav: float = 1e7) -> PortfolioInputs:
    rng = np.random.default_rng(seed + 100)
    fc = make_factor(n, k, seed)
    sym = fc.symbols
    alpha = pd.Series(rng.normal(0, 1e-3, n), index=sym)
    cur = pd.Series(rng.dirichlet(np.ones(n)), index=sym) if current else None
    ctx = TradeContext(symbols=sym, prices=rng.uniform(10, 100, n),
                       adv_notional=rng.uniform(1e6, 5e7, n),
                       volatility=rng.uniform(0.01, 0.03, n),
                       spreads=rng.uniform(2e-4, 1e-3, n), nav=nav)
    sectors = pd.Series([["Tech", "Energy", "Health"][i % 3] for i in range(n)], index=sym)
    betas = pd.Series(rng.uniform(0.5, 1.5, n), index=sym)
    return PortfolioInputs.build(alpha, cur, risk=fc, trade_context=ctx, betas=betas,
                                 sectors=sectors)


@pytest.fixture
def inputs() -> PortfolioInputs:
    return make_inputs()


class Helpers:
    """Test helpers handed out as one fixture (importlib mode cannot import conftest)."""

    LinearCost = LinearCost
    PowerCost = PowerCost
    make_factor = staticmethod(make_factor)
    make_inputs = staticmethod(make_inputs)


@pytest.fixture
def h() -> type[Helpers]:
    return Helpers
