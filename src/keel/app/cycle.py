"""One decision cycle: market view -> scores -> optimize -> triggers -> governance -> orders ->
child schedules -> order manager, with a reason code from every stage.

The cycle is the unit both ``keel demo`` and ``keel run`` repeat. It books nothing itself: the
ledger is read (``ledger.state``), orders go to the :class:`~keel.execution.oms.OrderManager`
(the one risk gate), and fills come back through the order manager's listeners.

Units: weights are fractions of NAV, prices currency per share, quantities shares (Decimal),
times UTC. The engine (``mean_variance`` or ``greedy``) is an attribute that may be switched
between two cycles (:meth:`DecisionCycle.set_engine`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from keel.config import EngineKind, ExecutionAlgo, KeelConfig, RiskModelKind
from keel.errors import OrderRejected, ValidationError
from keel.types import Order, to_price

if TYPE_CHECKING:
    from keel.clock import Clock
    from keel.data.market import MarketData
    from keel.execution.oms import OrderManager
    from keel.policy.governance import GovernanceChain
    from keel.policy.triggers import RebalanceDecision, RebalancePolicy
    from keel.portfolio.book import LedgerState
    from keel.portfolio.instruments import InstrumentRegistry
    from keel.risk.base import FactorCovariance

#: stages in the order a cycle runs them
STAGES = ("market", "scores", "risk", "optimize", "triggers", "rebalance", "governance",
          "schedule", "oms")


@dataclass(frozen=True)
class CycleConfig:
    """Frozen settings of a :class:`DecisionCycle`.

    Attributes:
        engine: ``mean_variance`` or ``greedy``.
        risk_aversion / max_weight / sector_cap: mean-variance settings (fractions of NAV).
        greedy_k: names held by the greedy rotation (each at ``1/greedy_k``).
        algo: default child schedule (``vwap``); parents above ``is_above_adv`` of their ADV
            are worked with implementation shortfall (``is``) instead.
        is_above_adv: participation (fraction of ADV) from which a parent gets IS.
        slices / horizon: child slices per parent and the horizon (None: to the close).
        cash_buffer: fraction of NAV kept in cash by the rebalance.
        ic: information coefficient turning scores into expected returns.
        refit_risk: refit the risk model when the market view's last session changes.
        risk_model / risk_lookback / n_pca_factors: the ``[risk]`` model, its history in
            sessions and the PCA factor count (dense estimators are used in factored form).
    """

    engine: EngineKind = EngineKind.MEAN_VARIANCE
    risk_aversion: float = 5.0
    max_weight: float = 0.05
    sector_cap: float | None = 0.30
    greedy_k: int = 20
    algo: ExecutionAlgo = ExecutionAlgo.VWAP
    is_above_adv: float = 0.002
    slices: int = 13
    horizon: timedelta | None = None
    cash_buffer: float = 0.02
    ic: float = 0.05
    refit_risk: bool = True
    risk_model: RiskModelKind = RiskModelKind.FUNDAMENTAL
    risk_lookback: int = 504
    n_pca_factors: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "engine", _engine(self.engine))
        object.__setattr__(self, "risk_model", RiskModelKind(self.risk_model))
        if self.risk_lookback < 21:
            raise ValidationError("risk_lookback must be >= 21 sessions",
                                  field="risk_lookback", value=self.risk_lookback)
        if self.engine not in (EngineKind.MEAN_VARIANCE, EngineKind.GREEDY):
            raise ValidationError("the live cycle runs mean_variance or greedy",
                                  field="engine", value=self.engine.value)
        if self.greedy_k < 1:
            raise ValidationError("greedy_k must be >= 1", field="greedy_k",
                                  value=self.greedy_k)
        if not 0 <= self.cash_buffer < 1:
            raise ValidationError("cash_buffer must be in [0, 1)", field="cash_buffer",
                                  value=self.cash_buffer)

    @classmethod
    def from_config(cls, config: KeelConfig, **overrides: Any) -> CycleConfig:
        """Settings from the application config (``[optimize]``, ``[execution]``, ``[risk]``)."""
        o, e, r = config.optimize, config.execution, config.risk
        values: dict[str, Any] = dict(engine=o.engine, risk_aversion=o.risk_aversion,
                                      max_weight=o.max_weight, sector_cap=o.sector_cap,
                                      algo=e.algo, slices=e.slices, risk_model=r.model,
                                      risk_lookback=r.lookback_days,
                                      n_pca_factors=r.n_pca_factors)
        values.update(overrides)
        return cls(**values)


def _engine(value: EngineKind | str) -> EngineKind:
    try:
        return EngineKind(str(getattr(value, "value", value)).lower().replace("-", "_"))
    except ValueError:
        raise ValidationError("unknown engine", field="engine", value=value) from None


@dataclass(frozen=True)
class StageReport:
    """What one stage did: reason ``codes`` (stable, machine-readable) and numbers."""

    stage: str
    codes: tuple[str, ...]
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class CycleResult:
    """Everything one cycle decided, with the reasons.

    Attributes:
        now: UTC decision time.
        engine: the engine that ran.
        stages: one :class:`StageReport` per stage reached, in order.
        targets: target weights by symbol (fraction of NAV).
        decision: the rebalance decision (None if the cycle stopped before the triggers).
        orders: parent orders admitted by the order manager.
        rejected: client order id -> reason code (governance or order manager).
        children: child orders scheduled per parent id.
        algos: parent id -> algorithm used.
    """

    now: datetime
    engine: EngineKind
    stages: list[StageReport] = field(default_factory=list)
    targets: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    decision: RebalanceDecision | None = None
    orders: list[Order] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    children: dict[str, int] = field(default_factory=dict)
    algos: dict[str, str] = field(default_factory=dict)

    @property
    def traded(self) -> bool:
        """True when at least one parent order reached the order manager."""
        return bool(self.orders)

    def stage(self, name: str) -> StageReport:
        for s in self.stages:
            if s.stage == name:
                return s
        raise KeyError(name)

    def codes(self, name: str) -> tuple[str, ...]:
        """Reason codes of stage ``name`` (empty if the cycle did not reach it)."""
        return next((s.codes for s in self.stages if s.stage == name), ())

    def explain(self) -> str:
        """One line per stage: ``stage: CODE, CODE``."""
        return "\n".join(f"{s.stage}: {', '.join(s.codes)}" for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (audit log)."""
        return {"now": self.now.isoformat(), "engine": self.engine.value,
                "traded": self.traded,
                "stages": {s.stage: list(s.codes) for s in self.stages},
                "orders": [o.client_order_id for o in self.orders],
                "rejected": dict(self.rejected), "algos": dict(self.algos)}


def _count_codes(values: Any) -> tuple[str, ...]:
    return tuple(f"{k}:{n}" for k, n in sorted(Counter(map(str, values)).items()))


class DecisionCycle:
    """One decision cycle, reusable across bars; holds the fitted risk model between cycles.

    Args:
        config: :class:`CycleConfig`.
        policy: rebalance triggers (default ``RebalancePolicy.default()``).
        governance: the governance chain (default ``GovernanceChain.default()``).
        registry: instrument specs (default: whole-share equities of the market's symbols).
    """

    def __init__(self, config: CycleConfig | None = None, *,
                 policy: RebalancePolicy | None = None,
                 governance: GovernanceChain | None = None,
                 registry: InstrumentRegistry | None = None) -> None:
        from keel.policy.governance import GovernanceChain
        from keel.policy.triggers import KillSwitch, RebalancePolicy

        self.config = config or CycleConfig()
        self.engine = self.config.engine
        #: engaged: every cycle holds with ``KILL_SWITCH`` (default policy only)
        self.kill_switch = KillSwitch()
        self.policy = policy or RebalancePolicy.default(self.kill_switch)
        self.governance = governance or GovernanceChain.default()
        self.registry = registry
        self.risk_: FactorCovariance | None = None
        self.risk_groups_: pd.Series | None = None
        self._risk_asof: pd.Timestamp | None = None
        self._held_age: dict[str, int] = {}
        # Compiled once and re-solved every bar (the optimizer keeps its problem per instance).
        self._mv: Any = None
        # Scores and alpha change only when a new daily row arrives: keyed on the view's stamp.
        self._scores: tuple[pd.Timestamp, pd.Series, pd.Series] | None = None

    def set_engine(self, engine: EngineKind | str) -> EngineKind:
        """Switch the construction engine for the next cycles; returns the new engine."""
        eng = _engine(engine)
        if eng not in (EngineKind.MEAN_VARIANCE, EngineKind.GREEDY):
            raise ValidationError("the live cycle runs mean_variance or greedy",
                                  field="engine", value=eng.value)
        self.engine = eng
        return eng

    # ------------------------------------------------------------------ stages

    def fit_risk(self, view: MarketData) -> tuple[str, ...]:
        """Fit the configured risk model on the last ``risk_lookback`` sessions of ``view``
        (once per session)."""
        from keel.risk import covariance as cov
        from keel.risk.factor_model import StatisticalFactorModel
        from keel.risk.fundamental import FundamentalFactorModel

        if self.risk_ is not None and (not self.config.refit_risk
                                       or self._risk_asof == view.now):
            return ("RISK_CACHED",)
        c = self.config
        rets = view.returns.iloc[-c.risk_lookback:]
        self.risk_groups_ = None
        if c.risk_model is RiskModelKind.FUNDAMENTAL:
            model = FundamentalFactorModel(window=c.risk_lookback).fit(view)
            self.risk_, self.risk_groups_ = model.factored(), model.factor_groups_
        elif c.risk_model is RiskModelKind.PCA:
            self.risk_ = StatisticalFactorModel(n_factors=c.n_pca_factors).fit(rets).factored()
        else:
            est = {RiskModelKind.LEDOIT_WOLF: cov.LedoitWolf, RiskModelKind.SAMPLE:
                   cov.SampleCovariance, RiskModelKind.EWMA: cov.EWMACovariance}[c.risk_model]
            self.risk_ = est().fit(rets).factored(rank=c.n_pca_factors)
        self._risk_asof = view.now
        return ("RISK_FITTED", f"RISK_{c.risk_model.name}")

    def optimize(self, view: MarketData, scores: pd.Series, alpha: pd.Series,
                 current: pd.Series, nav: float) -> tuple[pd.Series, StageReport]:
        """Target weights by the current engine, and the stage's report."""
        if self.engine is EngineKind.GREEDY:
            return self._greedy(scores, current)
        return self._mean_variance(view, alpha, current, nav)

    def _greedy(self, scores: pd.Series, current: pd.Series
                ) -> tuple[pd.Series, StageReport]:
        from keel.optimize.greedy import GreedyRotation

        k = min(self.config.greedy_k, len(scores))
        held = [s for s, w in current.items() if w > 1e-9]
        rot = GreedyRotation(k=k, k_buy=max(1, int(0.9 * k)), k_sell=max(k, int(1.2 * k)),
                             z_keep=0.5, z_cut=0.0,
                             target_weight=(1.0 - self.config.cash_buffer) / k
                             ).rebalance(scores, held,
                                         age=pd.Series(self._held_age, dtype=float))
        self._held_age = {s: self._held_age.get(s, 0) + 1 for s in rot.weights.index}
        codes = ("GREEDY", *_count_codes(rot.decisions["reason"]))
        return rot.weights, StageReport("optimize", codes, {"n_names": len(rot.weights)})

    def _mean_variance(self, view: MarketData, alpha: pd.Series, current: pd.Series,
                       nav: float) -> tuple[pd.Series, StageReport]:
        from keel.costs import SpreadCost, TradeContext
        from keel.optimize import Budget, LongOnly, MeanVariance, SectorCaps, WeightBounds
        from keel.optimize.inputs import PortfolioInputs

        c = self.config
        ctx = TradeContext.from_market(view, max(nav, 1.0), default_spread=1e-3)
        inputs = PortfolioInputs.build(alpha, current.reindex(alpha.index).fillna(0.0),
                                       risk=self.risk_, trade_context=ctx,
                                       sectors=view.sectors, nav=max(nav, 1.0))
        if self._mv is None:
            cons: list[Any] = [Budget(), LongOnly(), WeightBounds(upper=c.max_weight)]
            if c.sector_cap is not None:
                cons.append(SectorCaps(long=c.sector_cap))
            self._mv = MeanVariance(constraints=cons, risk_aversion=c.risk_aversion,
                                    costs=[SpreadCost()])
        res = self._mv.solve(inputs)
        weights = res.weights[res.weights > 1e-6]
        binding = [b if isinstance(b, str) else str(getattr(b, "name", b))
                   for b in (res.binding or [])]
        codes = (f"MV_{str(res.status).upper()}", *tuple(f"BINDING_{b}" for b in binding))
        split = {k: float(v) for k, v in dict(res.objective_split).items()}
        return weights, StageReport("optimize", codes,
                                    {"n_names": len(weights), "solver": str(res.solver),
                                     **split})

    # ------------------------------------------------------------------ the cycle

    def run(self, market: MarketData, *, now: datetime, state: LedgerState,
            prices: Mapping[str, Decimal], clock: Clock, oms: OrderManager | None = None,
            last_rebalance: datetime | None = None, working: int = 0,
            force: bool = False) -> CycleResult:
        """Run one cycle at ``now``.

        Args:
            market: daily history; the cycle sees ``market.as_of(now)`` only.
            state: the ledger's state (positions, cash, equity at the latest marks).
            prices: live reference prices (currency/share) for sizing and governance.
            clock: the clock the schedules start from.
            oms: the order manager; None stops after the schedules (dry run).
            last_rebalance: time of the last rebalance (cooldown, calendar triggers).
            working: parent orders still working; the cycle trades only when none is
                (``WORKING_ORDERS``), so a restart never stacks a second rebalance on one
                that is still executing.
            force: trade whatever the triggers say (``FORCED``).
        """
        from keel.policy.governance import GovernanceContext
        from keel.policy.triggers import PolicyContext
        from keel.portfolio.instruments import InstrumentRegistry
        from keel.portfolio.rebalance import RebalanceConfig, rebalance
        from keel.signals import composite_score, expected_returns

        res = CycleResult(now=now, engine=self.engine)
        view = market.as_of(now)
        px = pd.Series({s: float(p) for s, p in prices.items()}, dtype=float)
        px = px.reindex(view.symbols).fillna(view.latest("prices"))
        res.stages.append(StageReport("market", ("MARKET_OK",),
                                      {"n_assets": int(view.n_assets),
                                       "asof": str(view.now)}))
        # scores
        if self._scores is None or self._scores[0] != view.now:
            sc = composite_score(view)
            self._scores = (view.now, sc,
                            expected_returns(sc, view.latest("volatility"), ic=self.config.ic))
        _, scores, alpha = self._scores
        res.stages.append(StageReport("scores", ("SCORED",),
                                      {"top": str(scores.idxmax()),
                                       "mean_alpha_bps": float(alpha.mean() * 1e4)}))
        # risk + optimize
        res.stages.append(StageReport("risk", self.fit_risk(view)))
        nav = float(state.equity)
        current = pd.Series(state.weights(), dtype=float)
        targets, rep = self.optimize(view, scores, alpha, current, nav)
        res.targets = targets
        res.stages.append(rep)
        # triggers
        if working:
            res.stages.append(StageReport("triggers", ("WORKING_ORDERS",),
                                          {"working": working}))
            return res
        pctx = PolicyContext.from_market(now, current.reindex(view.symbols).fillna(0.0),
                                         targets.reindex(view.symbols).fillna(0.0), view,
                                         last_rebalance)
        decision = self.policy.decide(pctx)
        res.decision = decision
        names: tuple[str, ...] | None = decision.names
        killed = any(r.value == "KILL_SWITCH" for r in decision.reasons)
        if force and not decision.trade and not killed:
            names = None
            why = tuple(r.value for r in decision.reasons)
            res.stages.append(StageReport("triggers", ("FORCED", *why)))
        else:
            res.stages.append(StageReport("triggers", tuple(r.value for r in decision.reasons),
                                          {"names": len(decision.names)}))
            if not decision.trade:
                return res
        # weights -> orders
        registry = self.registry or InstrumentRegistry.equities(
            view.symbols, sectors=None if view.sectors is None else dict(view.sectors))
        dprices = {s: to_price(prices[s] if s in prices else px[s], symbol=s) for s in view.symbols}
        plan = rebalance(targets.to_dict(), dprices, state, registry, now=now,
                         config=RebalanceConfig(
                             cash_buffer=Decimal(str(self.config.cash_buffer)),
                             min_order_value=Decimal(1000), strategy=f"live-{self.engine}"),
                         names=names)
        res.stages.append(StageReport(
            "rebalance", ("ORDERS", *_count_codes(plan.skipped.values())),
            {"orders": len(plan.orders), "buy_notional": float(plan.buy_notional)}))
        if not plan.orders:
            return res
        # governance
        positions = {s: p.qty for s, p in state.positions.items()}
        gctx = GovernanceContext.from_market(now=now, nav=state.equity, prices=dprices,
                                             positions=positions, market=view,
                                             registry=registry, price_times={
                                                 s: now if s in prices else view.now
                                                 for s in dprices})  # stale: refused
        verdicts = self.governance.evaluate(list(plan.orders), gctx)
        approved: list[Order] = []
        gcodes: list[str] = []
        for o, v in zip(plan.orders, verdicts, strict=True):
            gcodes.append(v.reason_code)
            if v.approved_order is None:
                res.rejected[o.client_order_id] = v.reason_code
            elif v.approved_order.qty > o.qty:
                # the plan is budgeted to never overspend; governance may shrink it, not grow it
                approved.append(o)
                gcodes.append("UPSIZE_CAPPED")
            else:
                approved.append(v.approved_order)
        res.stages.append(StageReport("governance", _count_codes(gcodes),
                                      {"approved": len(approved)}))
        # schedules
        scheduled = self._schedule(approved, view, px, clock, res)
        if oms is None:
            return res
        # order manager
        codes: list[str] = []
        for order, kids, algo in scheduled:
            try:
                oms.on_price(order.symbol, dprices[order.symbol])
                oms.submit(order, kids, algo=algo, arrival_price=dprices[order.symbol],
                           decision_price=dprices[order.symbol])
            except OrderRejected as exc:
                res.rejected[order.client_order_id] = exc.reason_code
                codes.append(exc.reason_code)
                continue
            res.orders.append(order)
            codes.append("SUBMITTED")
        res.stages.append(StageReport("oms", _count_codes(codes),
                                      {"submitted": len(res.orders)}))
        return res

    def _schedule(self, orders: list[Order], view: MarketData, px: pd.Series, clock: Clock,
                  res: CycleResult) -> list[tuple[Order, list[Any], str]]:
        from keel.execution.schedule import ExecutionContext, ScheduleConfig, make_scheduler

        cfg = ScheduleConfig(n_slices=self.config.slices, horizon=self.config.horizon)
        adv = view.latest("adv_shares")
        out = []
        for order in orders:
            base = ExecutionContext.from_market(view, order.symbol, default_spread_bps=5.0)
            ectx = ExecutionContext(price=float(px[order.symbol]), adv_shares=base.adv_shares,
                                    daily_volatility=base.daily_volatility,
                                    spread_bps=base.spread_bps)
            part = float(order.qty) / float(adv.get(order.symbol, np.nan) or np.nan)
            algo = (ExecutionAlgo.IS if np.isfinite(part) and part > self.config.is_above_adv
                    else self.config.algo)
            sched = make_scheduler(algo.value, cfg, urgency=2.0)
            kids = sched.schedule(order, ectx, clock)
            res.children[order.client_order_id] = len(kids)
            res.algos[order.client_order_id] = algo.value
            out.append((order, kids, algo.value))
        res.stages.append(StageReport("schedule", _count_codes(a for _, _, a in out),
                                      {"children": sum(len(k) for _, k, _ in out)}))
        return out
