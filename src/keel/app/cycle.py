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

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from keel.app.pipeline import Pipeline, drawdown
from keel.config import EngineKind, KeelConfig
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
#: engines ``keel run`` can switch between
LIVE_ENGINES = (EngineKind.MEAN_VARIANCE, EngineKind.GREEDY)


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
    """One decision cycle of the desk :class:`~keel.app.pipeline.Pipeline`, reusable across
    bars; holds the fitted risk model, the engines and the turnover governor between cycles.

    Args:
        config: the one configuration, or a built pipeline (default: the defaults).
        policy: replaces the pipeline's rebalance policy (tests).
        governance: replaces the pipeline's governance chain (tests).
        registry: instrument specs (default: whole-share equities of the market's symbols).
    """

    def __init__(self, config: KeelConfig | Pipeline | None = None, *,
                 policy: RebalancePolicy | None = None,
                 governance: GovernanceChain | None = None,
                 registry: InstrumentRegistry | None = None) -> None:
        self.pipeline = (config if isinstance(config, Pipeline)
                         else Pipeline(config or KeelConfig()))
        self.config = self.pipeline.config
        self.engine = _engine(self.config.optimize.engine)
        #: engaged: every cycle holds with ``KILL_SWITCH``
        self.kill_switch = self.pipeline.kill_switch
        self.policy = policy or self.pipeline.policy
        self.governance = governance if governance is not None else self.pipeline.governance
        self.registry = registry
        self.governor = self.pipeline.turnover_governor()
        self.risk_: FactorCovariance | None = None
        self.risk_groups_: pd.Series | None = None
        self.risk_used_: str | None = None
        self._risk_asof: pd.Timestamp | None = None
        self._engines: dict[EngineKind, Any] = {}
        #: target weights of the last rebalance (the drift bands' centre)
        self.standing_target: pd.Series | None = None
        #: highest equity seen after any cycle (the drawdown rule's watermark; persisted by
        #: ``keel run`` through :meth:`state`, so a restart cannot reset a drawdown)
        self.peak_equity: float | None = None
        self.last_equity: float | None = None
        # Scores and alpha change only when a new daily row arrives: keyed on the view's stamp.
        self._scores: tuple[pd.Timestamp, pd.Series, pd.Series] | None = None

    @property
    def drawdown(self) -> float:
        """Current drawdown from the equity watermark (fraction in [0, 1])."""
        if self.peak_equity is None or self.last_equity is None:
            return 0.0
        return drawdown([self.peak_equity, self.last_equity])

    def state(self) -> dict[str, Any]:
        """What a restart must not forget, as JSON: the equity watermark, the annual turnover
        spent and the standing target (see :meth:`restore`)."""
        target = self.standing_target
        return {
            "peak_equity": self.peak_equity, "last_equity": self.last_equity,
            "turnover_spent": [[d.isoformat(), float(t)] for d, t in self.governor.spent],
            "standing_target": (None if target is None
                                else {str(k): float(v) for k, v in target.items()}),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back a :meth:`state` saved by an earlier process.

        Raises:
            ValidationError: a malformed state (names the field); nothing is changed then.
        """
        def num(key: str) -> float | None:
            v = state.get(key)
            if v is None:
                return None
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValidationError("desk state: not a finite number", field=key, value=v)
            return float(v)

        peak, last = num("peak_equity"), num("last_equity")
        try:
            spent = [(pd.Timestamp(d), float(t)) for d, t in state.get("turnover_spent") or []]
            raw = state.get("standing_target")
            target = (None if raw is None
                      else pd.Series({str(k): float(v) for k, v in dict(raw).items()},
                                     dtype=float))
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"desk state: {exc}", field="turnover_spent") from None
        if any(d.tzinfo is None or not math.isfinite(t) for d, t in spent):
            raise ValidationError("desk state: turnover entries need tz-aware stamps and "
                                  "finite amounts", field="turnover_spent")
        if target is not None and not np.all(np.isfinite(target.to_numpy())):
            raise ValidationError("desk state: standing target not finite",
                                  field="standing_target")
        self.peak_equity, self.last_equity = peak, last
        self.governor.spent = spent
        self.standing_target = target

    def set_engine(self, engine: EngineKind | str) -> EngineKind:
        """Switch the construction engine for the next cycles; returns the new engine."""
        eng = _engine(engine)
        self.engine = eng
        return eng

    # ------------------------------------------------------------------ stages

    def fit_risk(self, view: MarketData) -> tuple[str, ...]:
        """Fit the configured risk model (or the next of its fallback chain) on ``view``
        (once per session)."""
        if self.risk_ is not None and self._risk_asof == view.now:
            return ("RISK_CACHED",)
        fit = self.pipeline.fit_risk(view)
        self.risk_, self.risk_groups_, self.risk_used_ = fit.model, fit.groups, fit.used.value
        self._risk_asof = view.now
        return fit.codes

    def optimize(self, view: MarketData, scores: pd.Series, alpha: pd.Series,
                 current: pd.Series, nav: float) -> tuple[pd.Series, StageReport]:
        """Target weights by the current engine (then the turnover governor), and the
        stage's report."""
        eng = self._engines.get(self.engine)
        if eng is None:
            eng = self._engines[self.engine] = self.pipeline.engine(kind=self.engine)
        assert self.risk_ is not None
        # the session's universe only: a name whose data stopped has no price to give
        universe = view.symbols[self.pipeline.universe(view, self.risk_)]
        ctx = self.pipeline.trade_context(view, max(nav, 1.0), symbols=universe)
        w0 = current.reindex(view.symbols).fillna(0.0).to_numpy(dtype=np.float64)
        step = self.pipeline.step(view, pd.Timestamp(view.now), scores, alpha, w0,
                                  self.risk_, ctx)
        target = np.asarray(eng.target(step), dtype=np.float64)
        if target.shape != w0.shape or not np.all(np.isfinite(target)):
            raise ValidationError("the engine returned invalid target weights",
                                  field="targets", value=target.shape)
        governed, tcodes = self.governor.apply(pd.Timestamp(view.now), w0, target)
        weights = pd.Series(governed, index=view.symbols)
        weights = weights[weights.abs() > 1e-6]
        codes = (*eng.codes, *tcodes)
        detail: dict[str, Any] = {"n_names": len(weights),
                                  "invested": float(weights.sum())}
        solver = getattr(eng, "solver", "")
        if solver:
            detail["solver"] = solver
        return weights, StageReport("optimize", codes, detail)

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

        res = CycleResult(now=now, engine=self.engine)
        view = market.as_of(now)
        px = pd.Series({s: float(p) for s, p in prices.items()}, dtype=float)
        px = px.reindex(view.symbols).fillna(view.latest("prices"))
        res.stages.append(StageReport("market", ("MARKET_OK",),
                                      {"n_assets": int(view.n_assets),
                                       "asof": str(view.now)}))
        # scores
        if self._scores is None or self._scores[0] != view.now:
            self._scores = (view.now, *self.pipeline.signals(view))
        _, scores, alpha = self._scores
        res.stages.append(StageReport("scores", ("SCORED",),
                                      {"top": str(scores.idxmax()),
                                       "mean_alpha_bps": float(alpha.mean() * 1e4)}))
        # risk + optimize
        res.stages.append(StageReport("risk", self.fit_risk(view)))
        nav = float(state.equity)
        self.last_equity = nav
        if math.isfinite(nav) and (self.peak_equity is None or nav > self.peak_equity):
            self.peak_equity = nav
        current = pd.Series(state.weights(), dtype=float)
        targets, rep = self.optimize(view, scores, alpha, current, nav)
        res.targets = targets
        res.stages.append(rep)
        # triggers
        if working:
            res.stages.append(StageReport("triggers", ("WORKING_ORDERS",),
                                          {"working": working}))
            return res
        # drift bands sit around the standing target (set by the last rebalance), as in the
        # backtest; before any rebalance the book is its own target
        w_now = current.reindex(view.symbols).fillna(0.0)
        standing = (w_now if self.standing_target is None
                    else self.standing_target.reindex(view.symbols).fillna(0.0))
        pctx = PolicyContext.from_market(now, w_now, standing, view, last_rebalance)
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
        # a name with no live price and no close (not listed yet, data stopped) has no price:
        # it is outside the universe, so the engine neither targets nor trades it
        dprices = {s: to_price(prices[s] if s in prices else px[s], symbol=s)
                   for s in view.symbols if s in prices or np.isfinite(px[s])}
        # the engine already holds optimize.cash_buffer back: the plan spends what it targets
        plan = rebalance(targets.to_dict(), dprices, state, registry, now=now,
                         config=RebalanceConfig(
                             cash_buffer=Decimal(0),
                             min_order_value=Decimal(repr(self.config.execution.min_order_value)),
                             strategy=f"live-{self.engine}"),
                         names=names)
        self.standing_target = targets
        if plan.orders:  # the annual budget is charged by what this rebalance plans to trade
            w_now_arr = w_now.to_numpy(dtype=np.float64)
            traded = targets.reindex(view.symbols).fillna(0.0).to_numpy(dtype=np.float64)
            if names is not None:
                keep = view.symbols.isin(list(names))
                traded = np.where(keep, traded, w_now_arr)
            self.governor.commit(pd.Timestamp(now), w_now_arr, traded)
        res.stages.append(StageReport(
            "rebalance", ("ORDERS", *_count_codes(plan.skipped.values())),
            {"orders": len(plan.orders), "buy_notional": float(plan.buy_notional)}))
        if not plan.orders:
            return res
        # governance
        positions = {s: p.qty for s, p in state.positions.items()}
        gctx = None if self.governance is None else GovernanceContext.from_market(
            now=now, nav=state.equity, prices=dprices, positions=positions, market=view,
            registry=registry, price_times={s: now if s in prices else view.now
                                            for s in dprices})  # stale: refused
        approved: list[Order] = []
        gcodes: list[str] = []
        if self.governance is None:
            approved = list(plan.orders)
            gcodes.append("GOVERNANCE_OFF")
        else:
            assert gctx is not None
            gctx = replace(gctx, drawdown=self.drawdown)
            verdicts = self.governance.evaluate(list(plan.orders), gctx)
            for o, v in zip(plan.orders, verdicts, strict=True):
                gcodes.append(v.reason_code)
                if v.approved_order is None:
                    res.rejected[o.client_order_id] = v.reason_code
                else:  # regime sizing may upsize (bounded by the limits after it)
                    approved.append(v.approved_order)
        approved = self._cap_participation(approved, view, gcodes)
        res.stages.append(StageReport("governance", _count_codes(gcodes),
                                      {"approved": len(approved),
                                       "drawdown": self.drawdown}))
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

    def _cap_participation(self, orders: list[Order], view: MarketData,
                           codes: list[str]) -> list[Order]:
        """Parents cut to ``execution.max_participation`` of the volume expected over the
        horizon (``PARTICIPATION_CAP``); a parent cut to nothing is dropped."""
        if not orders:
            return orders
        adv = view.latest("adv_shares").reindex([o.symbol for o in orders]).to_numpy()
        qty = np.array([float(o.qty) for o in orders])
        capped, _ = self.pipeline.cap_participation(qty, adv)
        out = []
        for o, q in zip(orders, capped, strict=True):
            new = Decimal(int(np.floor(abs(q) + 1e-9)))
            if new < o.qty:
                codes.append("PARTICIPATION_CAP")
                if new <= 0:
                    continue
                o = replace(o, qty=new)
            out.append(o)
        return out

    def _schedule(self, orders: list[Order], view: MarketData, px: pd.Series, clock: Clock,
                  res: CycleResult) -> list[tuple[Order, list[Any], str]]:
        from keel.execution.schedule import ExecutionContext, make_scheduler
        from keel.types import OrderType

        pipe = self.pipeline
        cfg = pipe.schedule_config()
        adv = view.latest("adv_shares")
        ctx = pipe.trade_context(view, symbols=sorted({o.symbol for o in orders}))
        spread_bps = pd.Series(ctx.spreads * 1e4, index=ctx.symbols)
        out = []
        for order in orders:
            base = ExecutionContext.from_market(view, order.symbol,
                                                default_spread_bps=pipe.default_spread * 1e4)
            ectx = ExecutionContext(price=float(px[order.symbol]), adv_shares=base.adv_shares,
                                    daily_volatility=base.daily_volatility,
                                    spread_bps=float(spread_bps[order.symbol]))
            part = float(order.qty) / float(adv.get(order.symbol, np.nan) or np.nan)
            algo = pipe.algo_for(part)
            sched = make_scheduler(algo.value, cfg, urgency=self.config.execution.is_urgency,
                                   participation=self.config.execution.max_participation)
            kids = sched.schedule(order, ectx, clock)
            limit = pipe.limit_price(order.side.sign, float(px[order.symbol]))
            if limit is not None:
                kids = [replace(k, order_type=OrderType.LIMIT, limit_price=limit) for k in kids]
            res.children[order.client_order_id] = len(kids)
            res.algos[order.client_order_id] = algo.value
            out.append((order, kids, algo.value))
        res.stages.append(StageReport("schedule", _count_codes(a for _, _, a in out),
                                      {"children": sum(len(k) for _, k, _ in out)}))
        return out
