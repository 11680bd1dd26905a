"""Execution feedback and TCA: how well each parent order was executed, and what to change.

Per parent order (from the store: its decision and arrival prices and every fill):

* ``slippage_bps``: side x (average fill - arrival) / arrival, in bps (positive = cost);
* ``is_bps``: implementation shortfall vs the decision price (Perold), including the
  opportunity cost of the unfilled part valued at ``end_price`` when given;
* ``vwap_slippage_bps``: side x (average fill - market VWAP over the execution interval);
* ``participation``: filled quantity / market volume over the interval;
* ``spread_capture``: where fills landed inside the quoted spread, quantity-weighted
  (0 = paid the far touch, 0.5 = mid, 1 = the near touch);
* ``predicted_bps``: the cost model's prediction, when a model and context are given.

Aggregates per symbol and per algorithm, a :class:`Recommendation` when a group's recent
quality degrades, :meth:`TCA.feed` to update an adaptive cost model (anything with
``observe(trades, ctx, realised_cost)``, e.g. ``keel.costs.adaptive.AdaptiveCost``), and
:meth:`TCA.persist` to write each order's metrics to the audit log.

:class:`CostFeedback` closes the loop for the desk: after a cycle, the finished parents and
their fills -> TCA summaries -> ``AdaptiveCost.observe`` (one vectorised update) -> the store
(``keel.store.cost_state_repo``), so the next cycle, and the next process, price with the
learned multipliers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol

import numpy as np
import pandas as pd

from keel.costs.adaptive import AdaptiveCost
from keel.costs.base import CostModel, TradeContext
from keel.errors import ValidationError
from keel.store.audit import AuditLog
from keel.store.cost_state_repo import CostStateRepo
from keel.store.db import Store
from keel.store.orders_repo import OrderRecord, OrdersRepo
from keel.types import Fill, ensure_utc


class CostLearner(Protocol):
    def observe(self, trades: Any, ctx: TradeContext, realised_cost: Any) -> Any:
        ...


@dataclass(frozen=True)
class ExecutionSummary:
    """TCA of one parent order (prices currency/share, costs bps of traded notional)."""

    parent_id: str
    symbol: str
    side: int
    algo: str
    qty: float
    filled_qty: float
    avg_price: float
    arrival_price: float
    decision_price: float
    start: datetime | None
    end: datetime | None
    slippage_bps: float
    is_bps: float
    vwap_slippage_bps: float
    participation: float
    spread_capture: float
    commission: float
    predicted_bps: float = float("nan")

    @property
    def realised_cost(self) -> float:
        """Cost vs arrival in currency (positive = cost), commission included."""
        return (self.side * (self.avg_price - self.arrival_price) * self.filled_qty
                + self.commission)


def summarize(parent: OrderRecord, fills: Sequence[Fill], bars: pd.DataFrame | None = None,
              *, end_price: float | None = None, predicted_bps: float = float("nan")
              ) -> ExecutionSummary:
    """TCA of ``parent`` from its ``fills`` and (optional) minute ``bars`` of its symbol.

    Bars: UTC bar-start index, columns ``close, volume`` and optionally ``bid, ask`` and
    ``high, low``. The interval is from the parent's creation to its last fill.
    """
    o = parent.order
    side = o.side.sign
    q = np.array([float(f.qty) for f in fills])
    p = np.array([float(f.price) for f in fills])
    filled = float(q.sum())
    avg = float((p * q).sum() / filled) if filled > 0 else float("nan")
    arrival = float(parent.arrival_price) if parent.arrival_price is not None else float("nan")
    decision = (float(parent.decision_price) if parent.decision_price is not None else arrival)
    commission = float(sum(float(f.commission) for f in fills))
    start = o.created_at
    end = max((f.timestamp for f in fills), default=None)
    slip = side * (avg - arrival) / arrival * 1e4 if filled > 0 else float("nan")
    qty = float(o.qty)
    paid = side * ((p - decision) * q).sum()
    opp = 0.0
    if end_price is not None and qty > filled:
        opp = side * (end_price - decision) * (qty - filled)
    is_bps = (paid + opp + commission) / (decision * qty) * 1e4 if qty > 0 else float("nan")
    vwap_slip, participation, capture = float("nan"), float("nan"), float("nan")
    if bars is not None and len(bars) and filled > 0 and end is not None:
        win = bars[(bars.index >= pd.Timestamp(start).floor("min"))
                   & (bars.index < pd.Timestamp(end))]
        if len(win) and win["volume"].sum() > 0:
            typical = ((win["high"] + win["low"] + win["close"]) / 3.0
                       if {"high", "low"} <= set(win.columns) else win["close"])
            vwap = float((typical * win["volume"]).sum() / win["volume"].sum())
            vwap_slip = side * (avg - vwap) / vwap * 1e4
            participation = filled / float(win["volume"].sum())
        if {"bid", "ask"} <= set(bars.columns):
            ts = pd.DatetimeIndex([f.timestamp for f in fills])
            # the quote in force when the fill happened: the last bar that started before it
            pos = np.clip(bars.index.searchsorted(ts, side="left") - 1, 0, len(bars) - 1)
            bid = bars["bid"].to_numpy()[pos]
            ask = bars["ask"].to_numpy()[pos]
            ok = np.isfinite(bid) & np.isfinite(ask) & (ask > bid)
            if ok.any():
                far = np.where(side > 0, ask, bid)
                cap = np.clip(side * (far - p) / (ask - bid), -1.0, 2.0)
                capture = float((cap[ok] * q[ok]).sum() / q[ok].sum())
    return ExecutionSummary(parent.client_order_id, o.symbol, side, parent.algo or "",
                            qty, filled, avg, arrival, decision, start, end, slip, is_bps,
                            vwap_slip, participation, capture, commission, predicted_bps)


@dataclass(frozen=True)
class Recommendation:
    """A group (symbol, algo) whose recent execution quality degraded, and what to try."""

    symbol: str
    algo: str
    metric: str
    recent: float
    baseline: float
    action: str


class TCAReport:
    """TCA of many parent orders: per order, per symbol, per algorithm, recommendations."""

    def __init__(self, summaries: Sequence[ExecutionSummary],
                 parents: Mapping[str, OrderRecord] | None = None) -> None:
        self.summaries = list(summaries)
        #: parent id -> the parent record the summary was computed from (when known)
        self.parents: dict[str, OrderRecord] = dict(parents or {})

    @cached_property
    def orders(self) -> pd.DataFrame:
        """One row per summary (built on first use: the backtest's per-session feedback
        result is never read, and an empty frame costs milliseconds)."""
        rows = [asdict(s) for s in self.summaries]
        return pd.DataFrame(rows) if rows else pd.DataFrame(
            columns=list(ExecutionSummary.__dataclass_fields__))

    def _group(self, key: str) -> pd.DataFrame:
        if self.orders.empty:
            return pd.DataFrame()
        df = self.orders.assign(notional=self.orders["filled_qty"] * self.orders["avg_price"])
        g = df.groupby(key)
        out = pd.DataFrame({
            "orders": g.size(),
            "notional": g["notional"].sum(),
            "slippage_bps_mean": g.apply(_wmean("slippage_bps"), include_groups=False),
            "slippage_bps_median": g["slippage_bps"].median(),
            "is_bps_mean": g.apply(_wmean("is_bps"), include_groups=False),
            "vwap_slippage_bps_mean": g["vwap_slippage_bps"].mean(),
            "participation_mean": g["participation"].mean(),
            "spread_capture_mean": g["spread_capture"].mean(),
        })
        pred = g["predicted_bps"].mean()
        if pred.notna().any():
            out["predicted_bps_mean"] = pred
            err = (df["predicted_bps"] - df["slippage_bps"]).abs()
            out["prediction_mae_bps"] = err.groupby(df[key]).mean()
        return out

    def by_symbol(self) -> pd.DataFrame:
        return self._group("symbol")

    def by_algo(self) -> pd.DataFrame:
        return self._group("algo")

    def recommendations(self, *, window: int = 10, degrade_bps: float = 5.0,
                        max_bps: float = 25.0, min_orders: int = 3) -> list[Recommendation]:
        """Groups whose median slippage over the last ``window`` orders is ``degrade_bps``
        worse than before, or above ``max_bps`` outright."""
        out: list[Recommendation] = []
        if self.orders.empty:
            return out
        for (sym, algo), g in self.orders.sort_values("end").groupby(["symbol", "algo"]):
            s = g["slippage_bps"].dropna()
            if len(s) < min_orders:
                continue
            recent = float(s.iloc[-window:].median())
            base = float(s.iloc[:-window].median()) if len(s) > window else float("nan")
            worse = (np.isfinite(base) and recent > base + degrade_bps) or recent > max_bps
            if not worse:
                continue
            part = float(g["participation"].iloc[-window:].mean())
            cap = float(g["spread_capture"].iloc[-window:].mean())
            if np.isfinite(part) and part > 0.15:
                action = "participation is high: lengthen the horizon or lower the POV rate"
            elif np.isfinite(cap) and cap < 0.2:
                action = "paying the full spread: add a passive limit offset"
            elif algo in ("market", "twap"):
                action = "switch to VWAP or IS (lower risk aversion)"
            else:
                action = "recalibrate the cost model and review the schedule horizon"
            out.append(Recommendation(str(sym), str(algo), "slippage_bps", recent, base,
                                      action))
        return out

    def to_text(self) -> str:
        if self.orders.empty:
            return "no executed parent orders"
        lines = [f"{len(self.orders)} parent orders", "", "by algorithm:",
                 self.by_algo().round(2).to_string(), "", "by symbol:",
                 self.by_symbol().round(2).to_string()]
        recs = self.recommendations()
        lines += ["", "recommendations:" if recs else "recommendations: none"]
        lines += [f"  {r.symbol}/{r.algo}: {r.metric} {r.recent:.1f} bps "
                  f"(before {r.baseline:.1f}): {r.action}" for r in recs]
        return "\n".join(lines)


def _wmean(col: str) -> Callable[[pd.DataFrame], float]:
    def f(g: pd.DataFrame) -> float:
        w = g["notional"].to_numpy(dtype=np.float64)
        v = g[col].to_numpy(dtype=np.float64)
        ok = np.isfinite(v) & (w > 0)
        return float((v[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else float("nan")
    return f


class TCA:
    """TCA over the order store.

    Args:
        repo: the order manager's store.
        bars: minute bars per symbol (interval VWAP, participation, spread capture).
        cost_model: predicts each order's cost (``predicted_bps``) with ``context``.
        context: builds the one-symbol :class:`TradeContext` of a parent (its arrival price,
            ADV, volatility, spread); needed by ``cost_model`` and :meth:`feed`.
    """

    def __init__(self, repo: OrdersRepo, bars: dict[str, pd.DataFrame] | None = None, *,
                 cost_model: CostModel | None = None,
                 context: Callable[[OrderRecord], TradeContext] | None = None) -> None:
        self.repo, self.bars = repo, bars or {}
        self.cost_model, self.context = cost_model, context

    def summaries(self) -> list[ExecutionSummary]:
        return self.report().summaries

    def report(self) -> TCAReport:
        """Reads the parents and the fills once each, summarises every filled parent."""
        by_parent = group_fills(self.repo.fills())
        out = []
        parents = {}
        for parent in self.repo.parents():
            fills = by_parent.get(parent.client_order_id, [])
            if not fills:
                continue
            pred = float("nan")
            if self.cost_model is not None and self.context is not None:
                ctx = self.context(parent)
                notional = float(parent.order.qty) * float(ctx.prices[0])
                est = self.cost_model.cost(np.array([notional]), ctx)
                pred = float(est.bps.iloc[0])
            out.append(summarize(parent, fills, self.bars.get(parent.order.symbol),
                                 predicted_bps=pred))
            parents[parent.client_order_id] = parent
        return TCAReport(out, parents)

    def feed(self, learner: CostLearner, report: TCAReport | None = None) -> int:
        """Update ``learner`` with each filled order's realised cost; returns how many."""
        if self.context is None:
            raise ValidationError("feed needs a context builder", field="context")
        rep = report or self.report()
        parents = rep.parents
        if any(s.parent_id not in parents for s in rep.summaries):
            # a report built elsewhere: read the parents once, not once per order
            parents = {**{p.client_order_id: p for p in self.repo.parents()}, **parents}
        n = 0
        for s in rep.summaries:
            if s.filled_qty <= 0 or not np.isfinite(s.arrival_price):
                continue
            parent = parents.get(s.parent_id)
            if parent is None:
                raise ValidationError("summary of an unknown parent order", field="parent_id",
                                      value=s.parent_id)
            ctx = self.context(parent)
            trade = np.array([s.side * s.filled_qty * s.arrival_price])
            learner.observe(trade, ctx, np.array([s.realised_cost]))
            n += 1
        return n

    def persist(self, report: TCAReport, now: datetime, actor: str = "tca") -> int:
        """Write each order's metrics to the audit log (action ``tca.order``)."""
        log = AuditLog(self.repo.store)
        with self.repo.store.session() as s:
            for summ in report.summaries:
                payload = {k: None if isinstance(v, float) and not np.isfinite(v) else v
                           for k, v in asdict(summ).items()}
                log.append(actor, "tca.order", "order", summ.parent_id, payload, now,
                           session=s)
        return len(report.summaries)


def group_fills(fills: Mapping[str, Sequence[Fill]] | Iterable[tuple[Fill, str | None]]
                ) -> dict[str, list[Fill]]:
    """Fills by parent id, from ``{parent_id: fills}`` or ``OrdersRepo.fills()`` pairs
    (a fill without a parent id belongs to the order it names)."""
    if isinstance(fills, Mapping):
        return {str(k): list(v) for k, v in fills.items()}
    out: dict[str, list[Fill]] = {}
    for f, pid in fills:
        out.setdefault(pid or f.client_order_id, []).append(f)
    return out


#: Why a parent was not fed to the cost model (``FeedbackResult.skipped``).
SKIP_WORKING = "WORKING"          # still open: fed once it is done, never twice
SKIP_SEEN = "ALREADY_OBSERVED"    # fed in an earlier cycle (or before a restart)
SKIP_NO_FILLS = "NO_FILLS"
SKIP_NO_ARRIVAL = "NO_ARRIVAL_PRICE"
SKIP_NO_CONTEXT = "NOT_IN_CONTEXT"  # its symbol is not in the cycle's TradeContext
SKIP_NO_ESTIMATE = "NO_VOL_OR_ADV"  # the context has no volatility / ADV estimate for it


@dataclass(frozen=True)
class FeedbackResult:
    """What one feedback step did.

    Attributes:
        at: the time of the step (UTC).
        observed: parent ids fed to the model, in order.
        skipped: parent id -> reason code (``WORKING``, ``ALREADY_OBSERVED``, ...).
        multipliers_before, multipliers: part name -> multiplier, before and after.
        n_obs: observations the model has learned from in total.
        version: the stored state's version after the step (None: no store, or nothing new).
        report: the TCA of the observed parents, ``predicted_bps`` from the model *before*
            this update (so ``prediction_mae_bps`` is an honest out-of-sample error).
    """

    at: datetime
    observed: tuple[str, ...]
    skipped: dict[str, str]
    multipliers_before: dict[str, float]
    multipliers: dict[str, float]
    n_obs: int
    version: int | None
    report: TCAReport = field(repr=False)


class CostFeedback:
    """The closed cost loop: finished parents + fills -> TCA -> ``AdaptiveCost`` -> store.

    Each parent is fed once, when it is no longer open: the ids fed are kept with the
    model's state (a watermark on the parents' last update plus the ids at it), so neither a
    second call nor a restart feeds an order twice. A finished parent last updated before the
    watermark counts as fed: pass every finished parent each time (``observe_store`` does).

    Args:
        model: the adaptive cost model the desk prices with (shared, updated in place).
        repo: where the state is persisted (None: in memory only).
        name: the model's name in the store.

    Use :meth:`open` to build one from the store after a restart.
    """

    def __init__(self, model: AdaptiveCost, *, repo: CostStateRepo | None = None,
                 name: str = "default", watermark: datetime | None = None,
                 seen_at_watermark: Iterable[str] = (), version: int | None = None) -> None:
        if not isinstance(model, AdaptiveCost):
            raise ValidationError("CostFeedback needs an AdaptiveCost", field="model",
                                  value=type(model).__name__)
        self.model, self.repo, self.name = model, repo, name
        self.watermark = watermark
        self.seen_at_watermark = set(seen_at_watermark)
        self.version = version

    @classmethod
    def open(cls, base: CostModel, store: Store | None = None, *, name: str = "default",
             **settings: Any) -> CostFeedback:
        """The feedback loop for ``base``, restored from ``store`` when it holds a state.

        Args:
            base: the configured cost model (the multipliers scale its parts).
            store: the desk's store (None: nothing persisted).
            name: the model's name in the store.
            **settings: ``AdaptiveCost`` hyper-parameters for a fresh model (a stored state
                keeps its own).

        Raises:
            DataError: the stored state does not fit ``base`` (different parts).
        """
        repo = CostStateRepo(store) if store is not None else None
        rec = repo.get(name) if repo is not None else None
        if rec is None:
            return cls(AdaptiveCost(base, **settings), repo=repo, name=name)
        model = AdaptiveCost.from_state(rec.state, base, source=f"cost_model_state:{name}")
        fb = rec.state.get("feedback") or {}
        wm = fb.get("watermark")
        return cls(model, repo=repo, name=name,
                   watermark=None if wm is None else datetime.fromisoformat(wm),
                   seen_at_watermark=fb.get("seen", ()), version=rec.version)

    @property
    def multipliers(self) -> dict[str, float]:
        """Part name -> the multiplier in force."""
        return dict(zip(self.model.part_names, self.model.multipliers_.tolist(), strict=True))

    def _is_new(self, parent: OrderRecord) -> bool:
        t = parent.updated_at
        if self.watermark is None or t is None:
            return parent.client_order_id not in self.seen_at_watermark
        if t > self.watermark:
            return True
        return t == self.watermark and parent.client_order_id not in self.seen_at_watermark

    def observe_cycle(self, parents: Iterable[OrderRecord],
                      fills: Mapping[str, Sequence[Fill]] | Iterable[tuple[Fill, str | None]],
                      ctx: TradeContext, now: datetime, *,
                      bars: Mapping[str, pd.DataFrame] | None = None) -> FeedbackResult:
        """Feed the finished, not yet observed ``parents`` to the model and persist it.

        Args:
            parents: parent orders of the cycle (or all of them: working and already fed
                ones are skipped with a reason).
            fills: their fills, ``{parent_id: [Fill]}`` or ``OrdersRepo.fills()`` pairs.
            ctx: the cycle's :class:`TradeContext` (from the decision's market view); it
                gives each symbol's ADV, volatility and spread. Realised cost is measured
                against each parent's arrival price, commission included.
            now: the time of the step (stamps the stored version).
            bars: minute bars per symbol for the TCA (optional).

        Returns: a :class:`FeedbackResult`; the store gets a new version only when at least
        one parent was fed.
        """
        now = ensure_utc(now, "now")
        by_parent = group_fills(fills)
        before = self.multipliers
        skipped: dict[str, str] = {}
        chosen: list[tuple[OrderRecord, list[Fill], int]] = []
        for p in parents:
            pid = p.client_order_id
            fl = by_parent.get(pid, [])
            if p.status.is_open:
                skipped[pid] = SKIP_WORKING
            elif not self._is_new(p):
                skipped[pid] = SKIP_SEEN
            elif not fl or sum(float(f.qty) for f in fl) <= 0:
                skipped[pid] = SKIP_NO_FILLS
            elif p.arrival_price is None:
                skipped[pid] = SKIP_NO_ARRIVAL
            else:
                i = int(ctx.symbols.get_indexer([p.order.symbol])[0])
                if i < 0:
                    skipped[pid] = SKIP_NO_CONTEXT
                elif not (ctx.volatility[i] > 0 and ctx.adv_notional[i] > 0):
                    skipped[pid] = SKIP_NO_ESTIMATE
                else:
                    chosen.append((p, fl, i))
        summaries: list[ExecutionSummary] = []
        if chosen:
            sub = ctx.subset(np.array([i for _, _, i in chosen]))
            raw = [summarize(p, fl) for p, fl, _ in chosen]
            trades = np.array([s.side * s.filled_qty * s.arrival_price for s in raw])
            realised = np.array([s.realised_cost for s in raw])
            with np.errstate(divide="ignore", invalid="ignore"):
                pred_bps = 1e4 * self.model.cost_array(trades, sub) / np.abs(trades)
            summaries = [summarize(p, fl, (bars or {}).get(p.order.symbol),
                                   predicted_bps=float(b))
                         for (p, fl, _), b in zip(chosen, pred_bps, strict=True)]
            self.model.observe(trades, sub, realised)
            self._advance([p for p, _, _ in chosen])
            if self.repo is not None:
                rec = self.repo.put(self.name, self._payload(), now, observed=len(chosen))
                self.version = rec.version
        return FeedbackResult(
            at=now, observed=tuple(p.client_order_id for p, _, _ in chosen), skipped=skipped,
            multipliers_before=before, multipliers=self.multipliers, n_obs=self.model.n_obs_,
            version=self.version if chosen else None,
            report=TCAReport(summaries, {p.client_order_id: p for p, _, _ in chosen}))

    def observe_store(self, orders: OrdersRepo, ctx: TradeContext, now: datetime, *,
                      bars: Mapping[str, pd.DataFrame] | None = None) -> FeedbackResult:
        """:meth:`observe_cycle` over every parent in the order store (one read of the parents,
        one of the fills): what the live loop calls after each cycle."""
        return self.observe_cycle(orders.parents(), orders.fills(), ctx, now, bars=bars)

    def observe_trades(self, trades: np.ndarray, ctx: TradeContext,
                       realised_cost: np.ndarray, now: datetime) -> FeedbackResult:
        """Feed realised costs that come without order records (the backtest's simulated
        fills) and persist, like :meth:`observe_cycle`.

        Args:
            trades: (N,) signed traded notional (currency) aligned to ``ctx.symbols``; 0 for
                names not traded.
            ctx: the context the trades were priced in.
            realised_cost: (N,) realised cost in currency vs the arrival (decision) price.
            now: the time of the step.
        """
        now = ensure_utc(now, "now")
        before = self.multipliers
        n0 = self.model.n_obs_
        self.model.observe(np.asarray(trades, dtype=np.float64), ctx,
                           np.asarray(realised_cost, dtype=np.float64))
        fed = self.model.n_obs_ - n0
        version = None
        if fed and self.repo is not None:
            self.version = version = self.repo.put(self.name, self._payload(), now,
                                                   observed=fed).version
        return FeedbackResult(at=now, observed=(), skipped={}, multipliers_before=before,
                              multipliers=self.multipliers, n_obs=self.model.n_obs_,
                              version=version, report=TCAReport([]))

    def _advance(self, fed: Sequence[OrderRecord]) -> None:
        stamps = [p.updated_at for p in fed if p.updated_at is not None]
        if not stamps:
            self.seen_at_watermark |= {p.client_order_id for p in fed}
            return
        top = max(stamps)
        if self.watermark is None or top > self.watermark:
            self.watermark = top
            self.seen_at_watermark = set()
        self.seen_at_watermark |= {p.client_order_id for p in fed
                                   if p.updated_at is None or p.updated_at == self.watermark}

    def _payload(self) -> dict[str, Any]:
        state = self.model.state()
        state["feedback"] = {
            "watermark": None if self.watermark is None else self.watermark.isoformat(),
            "seen": sorted(self.seen_at_watermark)}
        return state
