"""Construction engines of the desk: one :class:`Step` in, target weights and reason codes out.

Built by :func:`build_engine` from ``[optimize]`` (every constraint from the config) and the
one cost model; the backtest, ``keel run``, the demo and ``keel optimize`` call the same
objects through :class:`keel.app.pipeline.Pipeline`.

Units: weights are fractions of NAV (cash is ``1 - sum``), arrays are (N,) in
``step.symbols`` order, alpha per session.
"""

from __future__ import annotations

from collections.abc import Mapping
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
from keel.optimize.dual_as import BackOff, DualActiveSet
from keel.optimize.fastqp import ClarabelDirect, PDASDirect
from keel.optimize.limits import SolverLimits
from keel.optimize.piqp_direct import PIQPDirect
from keel.risk.base import FactorCovariance


@dataclass(frozen=True, eq=False)
class Step:
    """What an engine knows at ``now`` (arrays (N,) in ``symbols`` order).

    The session's universe is ``tradable`` ((N,) bool; None: every name). An engine trades
    only there: a name outside it (its data stopped or has a gap, too little history, not in
    the risk model, no beta under a beta band, ...) is **pinned** at its current weight, never
    traded, and none of its inputs is read (they may be NaN). :meth:`sub` is the step over the
    universe alone and :meth:`expand` puts the pinned weights back; the pinned weight is
    carried by the budget, the sector caps and the beta band (:func:`constraints_from_config`).

    Attributes:
        now: decision time (UTC).
        symbols: the book's names (the order of ``current`` and of the target).
        alpha: expected return per session per name (fraction).
        score: composite z-score per name.
        current: current weights (fraction of NAV).
        risk: factor covariance per session; covers at least ``symbols[tradable]``.
        trade_context: prices, ADV, volatility, spreads and NAV for the cost model; covers
            at least ``symbols[tradable]``.
        sectors: sector per name (or None); betas: beta per name (or None).
        scenarios: (T, N) past returns (mean_cvar), or None.
        tradable: the session's universe (None: every name).
        excluded: code -> names the pipeline left out of the universe
            (``EXCLUDED_NO_BETA``, ``EXCLUDED_NO_SCENARIOS``) or gave no view
            (``NO_SCORE_ZERO_ALPHA``); the engines' codes count them (``<code>:<n>``).
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
    tradable: np.ndarray | None = None
    excluded: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def mask(self) -> np.ndarray:
        """(N,) bool: the names an engine may trade."""
        if self.tradable is None:
            return np.ones(len(self.symbols), dtype=bool)
        return np.asarray(self.tradable, dtype=bool)

    @property
    def pinned(self) -> np.ndarray:
        """(N,) the weights an engine must leave as they are (0 where tradable)."""
        return np.where(self.mask, 0.0, self.current)

    @property
    def codes(self) -> tuple[str, ...]:
        """``<code>:<n>`` of the names the pipeline left out (or gave no view), and
        ``PINNED:<n>``: held names outside the universe."""
        out = [f"{k}:{len(v)}" for k, v in sorted(self.excluded.items()) if v]
        n_pinned = int(np.sum(np.abs(self.pinned) > 1e-12))
        if n_pinned:
            out.append(f"PINNED:{n_pinned}")
        return tuple(out)

    def sub(self) -> Step:
        """The step over the universe alone (itself when every name is tradable)."""
        m = self.mask
        if m.all():
            return self
        idx = np.flatnonzero(m)
        names = self.symbols[idx]
        pos = self.trade_context.symbols.get_indexer(names)
        if np.any(pos < 0):
            raise ValidationError("the trade context lacks a tradable name",
                                  field="trade_context",
                                  value=str(names[int(np.argmax(pos < 0))]))
        ctx = self.trade_context if np.array_equal(pos, np.arange(len(
            self.trade_context.symbols))) else self.trade_context.subset(pos)
        return Step(self.now, names, self.alpha[idx], self.score[idx], self.current[idx],
                    self.risk.reindex(names), ctx,
                    sectors=None if self.sectors is None else self.sectors.reindex(names),
                    betas=None if self.betas is None else self.betas[idx],
                    scenarios=None if self.scenarios is None else self.scenarios[:, idx])

    def expand(self, weights: np.ndarray) -> np.ndarray:
        """(N,) weights: ``weights`` (over :meth:`sub`'s names) where tradable, the current
        weight elsewhere."""
        m = self.mask
        out = np.asarray(self.current, dtype=np.float64).copy()
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (int(m.sum()),):
            raise ValidationError("engine weights do not match the tradable universe",
                                  field="target", value=w.shape)
        out[m] = w
        return out

    def expand_solved(self, weights: pd.Series, names: pd.Index) -> np.ndarray:
        """(N,) weights from a solver's answer over ``names`` (:meth:`sub`'s symbols), the
        current weight outside the universe; a name the answer lacks is an error, never 0."""
        w = weights.reindex(names)
        if w.isna().any():
            raise ValidationError("the solver left names without a weight", field="target",
                                  value=", ".join(map(str, w.index[w.isna()][:10])))
        return self.expand(w.to_numpy(dtype=np.float64))

    def carried(self) -> Carried:
        """What the pinned names hold: total weight, long weight per sector, beta."""
        p = self.pinned
        held = np.abs(p) > 1e-12
        if not held.any():
            return Carried()
        sector: dict[str, float] = {}
        if self.sectors is not None:
            sec = self.sectors.reindex(self.symbols[held]).astype(str).to_numpy()
            for s, w in zip(sec, p[held], strict=True):
                if w > 0:
                    sector[s] = sector.get(s, 0.0) + float(w)
        beta = 0.0
        if self.betas is not None:
            b = np.asarray(self.betas, dtype=np.float64)[held]
            if not np.all(np.isfinite(b)):
                bad = self.symbols[held][~np.isfinite(b)]
                raise ValidationError("a pinned holding has no beta for the beta band",
                                      field="betas", value=", ".join(map(str, bad)))
            beta = float(b @ p[held])
        return Carried(float(p.sum()), sector, beta)


@dataclass(frozen=True)
class Carried:
    """Weight held by pinned names: it counts against the budget, sector caps and beta band
    of the names an engine trades."""

    weight: float = 0.0
    sectors: Mapping[str, float] = field(default_factory=dict)
    beta: float = 0.0

    @property
    def key(self) -> tuple[Any, ...]:
        return (round(self.weight, 12), tuple(sorted((k, round(v, 12))
                                                      for k, v in self.sectors.items())),
                round(self.beta, 12))


class Engine(Protocol):
    name: str
    #: reason codes of the last ``target`` call
    codes: tuple[str, ...]

    def target(self, step: Step) -> np.ndarray: ...


def constraints_from_config(o: OptimizeConfig, *, sectors: pd.Series | None, betas: bool,
                            adv: bool, carried: Carried | None = None) -> list[Constraint]:
    """Every ``[optimize]`` constraint (those whose data the step has). The sector cap
    applies to named sectors; ``Unknown`` is exempt, as in governance. ``carried``: weight
    held by pinned names outside the problem, taken off the budget, the sector caps and the
    beta band (so the whole book keeps them)."""
    c = carried or Carried()
    budget = 1.0 - o.cash_buffer - c.weight
    if o.long_only and budget < 0:
        budget = 0.0  # pinned names hold more than the budget: the traded names hold nothing
    cons: list[Constraint] = [Budget() if budget == 1.0 else NetExposure(budget, budget)]
    if o.long_only:
        cons += [LongOnly(), WeightBounds(upper=o.max_weight)]
    else:
        cons.append(WeightBounds(lower=-o.max_weight, upper=o.max_weight))
    if o.sector_cap is not None and sectors is not None:
        named = sorted({str(x) for x in sectors.to_numpy()} - {"Unknown"})
        if named:
            cap = o.sector_cap
            cons.append(SectorCaps(long={s: max(cap - c.sectors.get(s, 0.0), 0.0)
                                         for s in named}))
    if (o.beta_min is not None or o.beta_max is not None) and betas:
        lo = o.beta_min if o.beta_min is not None else -10.0
        hi = o.beta_max if o.beta_max is not None else 10.0
        cons.append(BetaNeutral(tolerance=(hi - lo) / 2, target=(hi + lo) / 2 - c.beta))
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
        self._carried_key: tuple[Any, ...] | None = None
        #: the warm-started dual active set, backed off while it fails (kept across
        #: rebuilds so its warm start and back-off state survive a new carried budget)
        self.dual_as = BackOff(DualActiveSet())

    def _build(self, step: Step, carried: Carried | None = None) -> Any:
        o = self.o
        cons = constraints_from_config(o, sectors=step.sectors,
                                       betas=step.betas is not None, adv=True, carried=carried)
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
                            limits=SolverLimits(o.solver_time_limit_s, o.solver_max_iter),
                            direct=[PDASDirect(), self.dual_as, ClarabelDirect(),
                                    PIQPDirect()])

    def target(self, step: Step) -> np.ndarray:
        carried = step.carried()
        full, step = step, step.sub()
        if self.problem is None or carried.key != self._carried_key:
            # pinned names outside the problem change its budget / caps / beta band
            self.problem = self._build(step, carried)
            self._carried_key = carried.key
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
        self.codes = (f"MV_{str(res.status).upper()}", *(f"BINDING_{b}" for b in binding),
                      *full.codes)
        return full.expand_solved(res.weights, step.symbols)


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
        full = step
        budget = self.budget - max(step.carried().weight, 0.0)
        step = step.sub()
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
        if total > budget:  # unequal per-name targets, or pinned names: scale into the budget
            w = w * (max(budget, 0.0) / total)
            reasons.append("SCALED_TO_BUDGET")
        out = w.reindex(symbols).fillna(0.0)  # names the rotation does not hold: weight 0
        # holding ages by name over the whole book (a pinned name keeps its age)
        full_w = pd.Series(full.expand(out.to_numpy(dtype=np.float64)), index=full.symbols)
        prev = (self._age.reindex(full.symbols).fillna(0.0) if self._age is not None
                else 0.0)
        self._age = ((prev + 1.0) * (full_w > 0)).astype(float)
        from collections import Counter

        self.codes = ("GREEDY", *(f"{c}:{n}" for c, n in sorted(Counter(reasons).items())),
                      *full.codes)
        return full_w.to_numpy(dtype=np.float64)


class RiskParityEngine:
    """Equal risk contribution under the factor model (long only, the budget invested)."""

    def __init__(self, name: str, o: OptimizeConfig) -> None:
        self.name, self.budget = name, 1.0 - o.cash_buffer
        self.codes: tuple[str, ...] = ("RISK_PARITY",)

    def target(self, step: Step) -> np.ndarray:
        budget = max(self.budget - step.carried().weight, 0.0)
        sub = step.sub()
        w = risk_parity(sub.risk).reindex(sub.symbols).to_numpy(dtype=np.float64)
        self.codes = ("RISK_PARITY", *step.codes)
        return step.expand(w * budget)


class EqualWeightEngine:
    """``budget / N`` in every name (the benchmark-like reference)."""

    def __init__(self, name: str, o: OptimizeConfig) -> None:
        self.name, self.budget = name, 1.0 - o.cash_buffer
        self.codes: tuple[str, ...] = ("EQUAL_WEIGHT",)

    def target(self, step: Step) -> np.ndarray:
        budget = max(self.budget - step.carried().weight, 0.0)
        sub = step.sub()
        self.codes = ("EQUAL_WEIGHT", *step.codes)
        return step.expand(equal_weight(sub.symbols).to_numpy(dtype=np.float64) * budget)


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
