"""Construction engines of the desk: one :class:`Step` in, target weights and reason codes out.

Built by :func:`build_engine` from ``[optimize]`` (every constraint from the config) and the
one cost model; the backtest, ``keel run``, the demo and ``keel optimize`` call the same
objects through :class:`keel.app.pipeline.Pipeline`.

Units: weights are fractions of NAV (cash is ``1 - sum``), arrays are (N,) in
``step.symbols`` order, alpha per session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from keel.config import EngineKind, OptimizeConfig
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
    WeightBounds,
    equal_weight,
    risk_parity,
)
from keel.optimize.constraints import (
    BetaNeutral,
    Constraint,
    Liquidity,
    NetExposure,
    SectorCaps,
)
from keel.optimize.limits import SolverLimits
from keel.risk.base import FactorCovariance


@dataclass(frozen=True, eq=False)
class Step:
    """What an engine knows at ``now`` (arrays (N,) in ``symbols`` order).

    Attributes:
        now: decision time (UTC).
        symbols: the universe.
        alpha: expected return per session per name (fraction).
        score: composite z-score per name.
        current: current weights (fraction of NAV).
        risk: factor covariance per session.
        trade_context: prices, ADV, volatility, spreads and NAV for the cost model.
        sectors: sector per name (or None); betas: beta per name (or None).
        scenarios: (T, N) past returns (mean_cvar), or None.
    """

    now: pd.Timestamp
    symbols: pd.Index
    alpha: np.ndarray
    score: np.ndarray
    current: np.ndarray
    risk: FactorCovariance
    trade_context: TradeContext
    sectors: pd.Series | None = None
    betas: np.ndarray | None = None
    scenarios: np.ndarray | None = None


class Engine(Protocol):
    name: str
    #: reason codes of the last ``target`` call
    codes: tuple[str, ...]

    def target(self, step: Step) -> np.ndarray: ...


def constraints_from_config(o: OptimizeConfig, *, sectors: pd.Series | None, betas: bool,
                            adv: bool) -> list[Constraint]:
    """Every ``[optimize]`` constraint (those whose data the step has). The sector cap
    applies to named sectors; ``Unknown`` is exempt, as in governance."""
    budget = 1.0 - o.cash_buffer
    cons: list[Constraint] = [Budget() if budget == 1.0 else NetExposure(budget, budget)]
    if o.long_only:
        cons += [LongOnly(), WeightBounds(upper=o.max_weight)]
    else:
        cons.append(WeightBounds(lower=-o.max_weight, upper=o.max_weight))
    if o.sector_cap is not None and sectors is not None:
        named = sorted({str(x) for x in sectors.to_numpy()} - {"Unknown"})
        if named:
            cons.append(SectorCaps(long=dict.fromkeys(named, o.sector_cap)))
    if (o.beta_min is not None or o.beta_max is not None) and betas:
        lo = o.beta_min if o.beta_min is not None else -10.0
        hi = o.beta_max if o.beta_max is not None else 10.0
        cons.append(BetaNeutral(tolerance=(hi - lo) / 2, target=(hi + lo) / 2))
    if o.max_trade_adv is not None and adv:
        cons.append(Liquidity(max_trade_adv=o.max_trade_adv))
    return cons


class MeanVarianceEngine:
    """Mean-variance (or mean-CVaR) with factor risk and the cost model in the objective;
    the problem is compiled once and re-solved (parameters updated) every step."""

    def __init__(self, name: str, o: OptimizeConfig, *, costs: CostModel,
                 period_days: int = 1, holding: HoldingCost | None = None) -> None:
        self.name, self.o, self.costs = name, o, costs
        self.period_days = period_days
        self.holding = holding
        self.problem: Any = None
        self._inputs: PortfolioInputs | None = None
        self.codes: tuple[str, ...] = ()
        self.solver = ""
        self.last_result: Any = None

    def _build(self, step: Step) -> Any:
        o = self.o
        cons = constraints_from_config(o, sectors=step.sectors,
                                       betas=step.betas is not None, adv=True)
        scale = o.cost_aversion / self.period_days
        if o.engine is EngineKind.MEAN_CVAR:
            from keel.optimize.cvar import MeanCVaR

            costs = [self.costs] if scale > 0 else []
            from keel.optimize.cvar_highs import HighsDirectBackend

            caps = SolverLimits(o.solver_time_limit_s, o.solver_max_iter).options("HIGHS")
            return MeanCVaR(cons, beta=o.cvar_beta, cvar_aversion=o.risk_aversion, costs=costs,
                            backend=HighsDirectBackend(**caps))
        terms: list[Any] = [Alpha(), Risk(o.risk_aversion)]
        if scale > 0:
            terms.append(TransactionCost(self.costs, scale=scale))
        if self.holding is not None and not o.long_only:
            terms.append(self.holding)
        return MeanVariance(terms=terms, constraints=cons,
                            limits=SolverLimits(o.solver_time_limit_s, o.solver_max_iter))

    def target(self, step: Step) -> np.ndarray:
        if self.problem is None:
            self.problem = self._build(step)
        ctx = step.trade_context
        if self._inputs is None or not self._inputs.symbols.equals(step.symbols):
            self._inputs = PortfolioInputs.build(
                pd.Series(step.alpha, index=step.symbols),
                pd.Series(step.current, index=step.symbols), risk=step.risk,
                trade_context=ctx, sectors=step.sectors,
                betas=None if step.betas is None else pd.Series(step.betas, index=step.symbols),
                nav=ctx.nav, scenarios=step.scenarios)
        else:
            self._inputs = self._inputs.with_(
                alpha=step.alpha, current=step.current, risk=step.risk, trade_context=ctx,
                adv_weight=ctx.adv_notional / ctx.nav, betas=step.betas,
                scenarios=step.scenarios)
        res = self.problem.solve(self._inputs)
        self.last_result = res
        binding = [b if isinstance(b, str) else str(getattr(b, "name", b))
                   for b in (res.binding or [])]
        self.solver = str(res.solver)
        self.codes = (f"MV_{str(res.status).upper()}", *(f"BINDING_{b}" for b in binding))
        return res.weights.reindex(step.symbols).fillna(0.0).to_numpy(dtype=np.float64)


class GreedyEngine:
    """Top-K rotation on the composite score (``1/k`` of the budget each, hysteresis, the
    cost model's round trip). Never above the budget: when more than K names sit in the
    hysteresis band (after an engine switch, or a held top ``k_sell``), the worst-ranked are
    sold (``TRIM_BUDGET``)."""

    def __init__(self, name: str, o: OptimizeConfig, *, costs: CostModel) -> None:
        k = o.greedy_k
        self.name, self.costs = name, costs
        self.budget = 1.0 - o.cash_buffer
        kb = o.greedy_k_buy if o.greedy_k_buy is not None else max(1, int(0.9 * k))
        ks = o.greedy_k_sell if o.greedy_k_sell is not None else max(k, int(np.ceil(1.2 * k)))
        self.rotation = GreedyRotation(k=k, k_buy=kb, k_sell=ks, z_keep=0.5, z_cut=0.0,
                                       target_weight=self.budget / k)
        self._age: pd.Series | None = None
        self.codes: tuple[str, ...] = ()

    def target(self, step: Step) -> np.ndarray:
        symbols = step.symbols
        held = symbols[step.current > 1e-9]
        ctx = step.trade_context
        # round trip of one 1/k slot with the one cost model (fraction of traded value)
        notional = np.full(len(symbols), ctx.nav * self.budget / self.rotation.k)
        one_way = self.costs.cost_array(notional, ctx) / np.maximum(notional, 1e-12)
        age = None if self._age is None else self._age.reindex(held).fillna(0.0)
        scores = pd.Series(step.score, index=symbols)
        res = self.rotation.rebalance(scores, held, age=age,
                                      round_trip_cost=pd.Series(2.0 * one_way, index=symbols))
        w = res.weights[res.weights > 0]
        reasons = [str(r) for r in res.decisions["reason"]]
        k = self.rotation.k
        if len(w) > k:  # the hysteresis band kept more than the budget holds: trim by rank
            keep = scores.reindex(w.index).sort_values(ascending=False, kind="stable")
            dropped = keep.index[k:]
            w = w.drop(dropped)
            reasons += ["TRIM_BUDGET"] * len(dropped)
        total = float(w.sum())
        if total > self.budget:  # unequal per-name targets: scale into the budget
            w = w * (self.budget / total)
            reasons.append("SCALED_TO_BUDGET")
        out = w.reindex(symbols).fillna(0.0)
        prev = self._age.reindex(symbols).fillna(0.0) if self._age is not None else 0.0
        self._age = ((prev + 1.0) * (out > 0)).astype(float)
        from collections import Counter

        self.codes = ("GREEDY", *(f"{c}:{n}" for c, n in sorted(Counter(reasons).items())))
        return out.to_numpy(dtype=np.float64)


class RiskParityEngine:
    """Equal risk contribution under the factor model (long only, the budget invested)."""

    def __init__(self, name: str, o: OptimizeConfig) -> None:
        self.name, self.budget = name, 1.0 - o.cash_buffer
        self.codes: tuple[str, ...] = ("RISK_PARITY",)

    def target(self, step: Step) -> np.ndarray:
        w = risk_parity(step.risk).reindex(step.symbols).to_numpy(dtype=np.float64)
        return w * self.budget


class EqualWeightEngine:
    """``budget / N`` in every name (the benchmark-like reference)."""

    def __init__(self, name: str, o: OptimizeConfig) -> None:
        self.name, self.budget = name, 1.0 - o.cash_buffer
        self.codes: tuple[str, ...] = ("EQUAL_WEIGHT",)

    def target(self, step: Step) -> np.ndarray:
        return equal_weight(step.symbols).to_numpy(dtype=np.float64) * self.budget


def build_engine(name: str, o: OptimizeConfig, *, costs: CostModel, period_days: int = 1,
                 holding: HoldingCost | None = None) -> Engine:
    """The engine of ``o.engine`` with every ``[optimize]`` setting."""
    if str(o.engine) == "mpo" or str(o.bl_views) != "none":  # keel.app.engines_mpo
        from keel.app.engines_mpo import build_extended
        return build_extended(name, o, costs=costs, period_days=period_days, holding=holding)
    if o.engine in (EngineKind.MEAN_VARIANCE, EngineKind.MEAN_CVAR):
        return MeanVarianceEngine(name, o, costs=costs, period_days=period_days,
                                  holding=holding)
    if o.engine is EngineKind.GREEDY:
        return GreedyEngine(name, o, costs=costs)
    if o.engine is EngineKind.RISK_PARITY:
        return RiskParityEngine(name, o)
    return EqualWeightEngine(name, o)


# --------------------------------------------------------------------------- turnover


@dataclass
class TurnoverGovernor:
    """Caps what one rebalance trades, per rebalance and per year.

    Turnover is ``sum |w_new - w_old|`` (fraction of NAV). With ``funding = exempt`` the part
    of a trade that invests idle cash up to the budget is not counted; with ``spread`` every
    trade counts (a book from cash is funded over several rebalances). Over the cap, the step
    goes part of the way from the current weights to the targets (a convex combination, so
    every linear constraint both ends satisfy still holds).

    Attributes:
        max_turnover: cap per rebalance (None: none).
        annual: budget over any 365 days (None: none), charged by :meth:`commit`.
        exempt_funding: see above.
        budget: invested fraction the engine aims at (``1 - cash_buffer``).
        spent: (session stamp, counted turnover) of past rebalances.
    """

    max_turnover: float | None
    annual: float | None
    exempt_funding: bool
    budget: float = 1.0
    spent: list[tuple[pd.Timestamp, float]] = field(default_factory=list)

    def allowed(self, now: pd.Timestamp) -> float | None:
        caps = []
        if self.max_turnover is not None:
            caps.append(self.max_turnover)
        if self.annual is not None:
            start = now - pd.Timedelta(days=365)
            used = sum(t for d, t in self.spent if d > start)
            caps.append(max(self.annual - used, 0.0))
        return min(caps) if caps else None

    def apply(self, now: pd.Timestamp, current: np.ndarray, target: np.ndarray
              ) -> tuple[np.ndarray, tuple[str, ...]]:
        """The weights to trade to, and reason codes (``TURNOVER_CAP``, ``FUNDING_EXEMPT``).

        Spends nothing: the annual budget is charged by :meth:`commit` once a rebalance
        actually trades (a cycle that holds, or a bar with working orders, spends nothing)."""
        if not np.all(np.isfinite(target)):
            raise ValidationError("target weights are not finite", field="target")
        gross = float(np.abs(target - current).sum())
        funding = (max(min(float(target.sum()), self.budget) - float(current.sum()), 0.0)
                   if self.exempt_funding else 0.0)
        counted = self.counted(current, target)
        cap = self.allowed(now)
        codes: list[str] = []
        if funding > 0:
            codes.append("FUNDING_EXEMPT")
        w = target
        if cap is not None and counted > cap + 1e-12:
            f = (cap + funding) / gross if gross > 0 else 0.0
            w = current + f * (target - current)
            codes.append("TURNOVER_CAP")
        return w, tuple(codes)

    def counted(self, current: np.ndarray, target: np.ndarray) -> float:
        """The turnover a move from ``current`` to ``target`` counts against the budgets."""
        gross = float(np.abs(target - current).sum())
        funding = (max(min(float(target.sum()), self.budget) - float(current.sum()), 0.0)
                   if self.exempt_funding else 0.0)
        return max(gross - funding, 0.0)

    def commit(self, now: pd.Timestamp, current: np.ndarray, traded_to: np.ndarray) -> None:
        """Charge the annual budget with a rebalance that traded from ``current`` to
        ``traded_to`` (weights after every later cut: mask, governance, participation);
        entries older than a year are dropped."""
        if self.annual is None:
            return
        start = now - pd.Timedelta(days=365)
        self.spent = [(d, t) for d, t in self.spent if d > start]
        self.spent.append((now, self.counted(current, traded_to)))
