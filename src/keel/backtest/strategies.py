"""Strategies: small objects turning one step's point-in-time inputs into target weights.

A strategy has a ``name`` and ``target(step) -> (N,) weights`` (fractions of NAV, cash is
``1 - sum``) in ``step.symbols`` order. Everything a strategy sees is in :class:`Step`, built
from ``market.head(n)`` by the simulator, so it cannot read the future.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from keel.backtest.config import StrategyKind, StrategySection
from keel.costs.base import CostModel, TradeContext
from keel.errors import ValidationError
from keel.optimize import (
    Alpha,
    Budget,
    GreedyRotation,
    HoldingCost,
    LongOnly,
    MeanVariance,
    PortfolioInputs,
    Risk,
    TransactionCost,
    Turnover,
    WeightBounds,
    equal_weight,
    risk_parity,
)
from keel.optimize.constraints import Constraint
from keel.risk.base import FactorCovariance


@dataclass(frozen=True, eq=False)
class Step:
    """What a strategy knows at ``now`` (all arrays (N,) in ``symbols`` order).

    Attributes:
        now: decision time (UTC, the session close).
        symbols: the universe.
        alpha: expected return over the next period per name (fraction).
        score: composite z-score per name.
        current: current weights (fraction of NAV, after today's price move).
        risk: factor covariance per period (daily), refitted on the configured cadence.
        trade_context: prices, ADV, volatility, spreads and NAV for the cost models.
    """

    now: pd.Timestamp
    symbols: pd.Index
    alpha: np.ndarray
    score: np.ndarray
    current: np.ndarray
    risk: FactorCovariance
    trade_context: TradeContext


class Strategy(Protocol):
    name: str

    def target(self, step: Step) -> np.ndarray: ...


class MeanVarianceStrategy:
    """Mean-variance with factor risk and the (L1) spread + commission cost in the objective;
    compiled on the first step and re-solved on the direct path afterwards."""

    def __init__(self, name: str, *, risk_aversion: float, costs: CostModel,
                 constraints: list[Constraint], cost_aversion: float = 1.0,
                 holding: HoldingCost | None = None) -> None:
        self.name = name
        terms = [Alpha(), Risk(risk_aversion)]
        if cost_aversion > 0:
            terms.append(TransactionCost(costs, scale=cost_aversion))
        if holding is not None:
            terms.append(holding)
        self.problem = MeanVariance(terms=terms, constraints=constraints)
        self._inputs: PortfolioInputs | None = None
        self.last_status = ""

    def target(self, step: Step) -> np.ndarray:
        if self._inputs is None or not self._inputs.symbols.equals(step.symbols):
            self._inputs = PortfolioInputs.build(
                pd.Series(step.alpha, index=step.symbols),
                pd.Series(step.current, index=step.symbols),
                risk=step.risk, trade_context=step.trade_context)
        else:
            self._inputs = self._inputs.with_(
                alpha=step.alpha, current=step.current, risk=step.risk,
                trade_context=step.trade_context,
                adv_weight=step.trade_context.adv_notional / step.trade_context.nav)
        res = self.problem.solve(self._inputs)
        self.last_status = str(res.status)
        return res.weights.to_numpy(dtype=np.float64)


class GreedyStrategy:
    """Top-K rotation on the composite score (equal weight ``1/k``, hysteresis, costs)."""

    def __init__(self, name: str, *, k: int) -> None:
        self.name = name
        self.rotation = GreedyRotation(k=k, k_buy=max(1, k - 2), k_sell=k + 4, z_keep=0.5,
                                       z_cut=0.0)
        self._age: pd.Series | None = None

    def target(self, step: Step) -> np.ndarray:
        held = step.symbols[step.current > 1e-9]
        rt = 2.0 * 0.5 * step.trade_context.spreads
        age = None if self._age is None else self._age.reindex(held).fillna(0.0)
        res = self.rotation.rebalance(pd.Series(step.score, index=step.symbols), held,
                                      age=age, round_trip_cost=pd.Series(rt, index=step.symbols))
        w = res.weights.reindex(step.symbols).fillna(0.0)
        prev = self._age.reindex(step.symbols).fillna(0.0) if self._age is not None else 0.0
        self._age = ((prev + 1.0) * (w > 0)).astype(float)
        return w.to_numpy(dtype=np.float64)


class RiskParityStrategy:
    """Equal risk contribution under the factor model (long only, fully invested)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def target(self, step: Step) -> np.ndarray:
        return risk_parity(step.risk).reindex(step.symbols).to_numpy(dtype=np.float64)


class EqualWeightStrategy:
    """``1/N`` in every name (the benchmark-like reference)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def target(self, step: Step) -> np.ndarray:
        return equal_weight(step.symbols).to_numpy(dtype=np.float64)


class FailingStrategy:
    """Wraps a strategy and raises from ``fail_on`` (tests the failure path of a run)."""

    def __init__(self, inner: Strategy, fail_on: pd.Timestamp) -> None:
        self.inner = inner
        self.name = inner.name
        self.fail_on = fail_on

    def target(self, step: Step) -> np.ndarray:
        if step.now >= self.fail_on:
            raise ValidationError("injected failure", field="fail_on", value=str(self.fail_on))
        return self.inner.target(step)


def build_strategy(spec: StrategySection, *, costs: CostModel,
                   holding: HoldingCost | None, period_days: int = 1,
                   impact: CostModel | None = None) -> Strategy:
    """The strategy object for one ``[[strategies]]`` entry.

    Alpha and risk are per session; a trade's cost is paid once per rebalancing period, so
    the optimizer's cost term is amortised over ``period_days`` sessions.
    """
    kind = StrategyKind(spec.kind)
    strat: Strategy
    if kind is StrategyKind.MEAN_VARIANCE:
        cons: list[Constraint] = [Budget(), WeightBounds(upper=spec.max_weight)]
        if spec.long_only:
            cons.insert(1, LongOnly())
        else:
            cons[1] = WeightBounds(lower=-spec.max_weight, upper=spec.max_weight)
        if spec.max_turnover is not None:
            cons.append(Turnover(max_total=spec.max_turnover))
        if spec.impact_aware and impact is not None:
            costs = costs + impact
        strat = MeanVarianceStrategy(spec.name, risk_aversion=spec.risk_aversion, costs=costs,
                                     constraints=cons,
                                     cost_aversion=spec.cost_aversion / period_days,
                                     holding=None if spec.long_only else holding)
    elif kind is StrategyKind.GREEDY:
        strat = GreedyStrategy(spec.name, k=spec.k)
    elif kind is StrategyKind.RISK_PARITY:
        strat = RiskParityStrategy(spec.name)
    else:
        strat = EqualWeightStrategy(spec.name)
    if spec.fail_on is not None:
        strat = FailingStrategy(strat, pd.Timestamp(spec.fail_on, tz="UTC"))
    return strat
