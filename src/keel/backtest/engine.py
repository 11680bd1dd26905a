"""The multi-period simulator.

Per session ``t`` (a close), for every book (strategy x execution algorithm) side by side:

1. the step sees ``market.head(n)`` only (rows stamped ``<= t``): a look-ahead is impossible;
2. the risk model is refitted every ``risk.refit_every`` sessions (shared by the books);
3. the triggers (:class:`~keel.policy.triggers.RebalancePolicy`: calendar, optional drift)
   decide whether the book trades; if so the strategy gives target weights;
4. optional governance (:class:`~keel.policy.governance.GovernanceChain`) resizes or rejects
   the orders;
5. the trades are executed along the algorithm's schedule with the keel cost models
   (:mod:`keel.backtest.execution`): spread, impact, commission, timing;
6. holdings earn the next session's return; shorts pay borrow, cash earns (or pays) interest;
7. with ``ledger = "fills"`` every fill is booked in a Decimal :class:`~keel.portfolio.ledger.
   Ledger` and its equity is reconciled with the float book at the end.

The float book (currency holdings per name, float64) drives the loop; the Decimal ledger is the
booked record. A strategy that raises is stopped and reported with the date and the reason;
the others continue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from keel.backtest.config import BacktestConfig, LedgerMode, RiskKind
from keel.backtest.execution import ExecutionSimulator, slice_shape
from keel.backtest.strategies import Step, Strategy, build_strategy
from keel.clock import SimulatedClock
from keel.costs.base import CostModel, TradeContext
from keel.costs.models import Commission, SpreadCost, SquareRootImpact
from keel.data.market import MarketData
from keel.errors import KeelError, ValidationError
from keel.optimize import HoldingCost
from keel.policy.governance import GovernanceChain
from keel.policy.rules import LiquidityParticipation, MinTradeValue, PositionLimit
from keel.policy.triggers import (
    AbsoluteDrift,
    CalendarSchedule,
    KillSwitch,
    PolicyContext,
    RebalancePolicy,
)
from keel.policy.triggers import Frequency as PolicyFrequency
from keel.policy.verdicts import GovernanceContext
from keel.portfolio.ledger import Ledger
from keel.risk.attribution import decompose
from keel.risk.base import FactorCovariance
from keel.signals import composite_score, expected_returns
from keel.types import Fill, Order, Rounding, Side, to_money, to_price, to_qty

TRADING_DAYS = 252
PERIOD_DAYS = {"daily": 1, "weekly": 5, "monthly": 21, "quarterly": 63}
COMPONENTS = ("spread", "impact", "commission", "timing", "borrow", "interest")


@dataclass
class BookResult:
    """One book's path.

    Attributes:
        name: ``strategy`` or ``strategy/algo``.
        strategy, algo: what it ran.
        nav: (T,) NAV in currency per session (the first is the initial NAV).
        turnover: (T,) one-sided turnover per session, ``sum |trade| / (2 NAV)``.
        costs: T x components, currency per session (spread, impact, commission, timing,
            borrow, interest; interest < 0 is income).
        traded: (T,) traded notional per session (currency).
        risk: dates x (total, factor, specific) annualised predicted volatility of the
            holdings at each risk-model refit.
        failure: ``{"date", "reason"}`` if the strategy failed (the book then stops).
        rebalances: decisions that traded; governance: counts of resized / rejected orders.
        final_weights: weights at the last session.
        ledger: reconciliation of the Decimal ledger vs the float book (``fills`` mode).
    """

    name: str
    strategy: str
    algo: str
    nav: pd.Series
    turnover: pd.Series
    costs: pd.DataFrame
    traded: pd.Series
    risk: pd.DataFrame
    failure: dict[str, str] | None = None
    rebalances: int = 0
    governance: dict[str, int] = field(default_factory=dict)
    final_weights: pd.Series | None = None
    ledger: dict[str, Any] = field(default_factory=dict)

    @property
    def returns(self) -> pd.Series:
        return self.nav.pct_change().iloc[1:].dropna()


class _Book:
    def __init__(self, name: str, strategy: Strategy, algo: str, sim: ExecutionSimulator,
                 n: int, n_steps: int, nav: float, policy: RebalancePolicy,
                 ledger: Ledger | None) -> None:
        self.name, self.strategy, self.algo, self.sim = name, strategy, algo, sim
        self.h = np.zeros(n)
        self.cash = nav
        self.target: np.ndarray | None = None
        self.last_rebalance: pd.Timestamp | None = None
        self.policy = policy
        self.ledger = ledger
        self.nav = np.full(n_steps + 1, np.nan)
        self.nav[0] = nav
        self.turnover = np.zeros(n_steps)
        self.traded = np.zeros(n_steps)
        self.costs = np.zeros((n_steps, len(COMPONENTS)))
        self.risk: list[tuple[pd.Timestamp, float, float, float]] = []
        self.failure: dict[str, str] | None = None
        self.rebalances = 0
        self.gov = {"resized": 0, "rejected": 0}
        self.fill_seq = 0


class Backtester:
    """Runs a :class:`~keel.backtest.config.BacktestConfig` on a :class:`MarketData`.

    Args:
        config: the backtest config (strategies, costs, risk cadence, policy, ...).
        strategies: optional strategy objects replacing ``config.strategies`` (any object
            with ``name`` and ``target(step)``).
    """

    def __init__(self, config: BacktestConfig,
                 strategies: list[Strategy] | None = None) -> None:
        self.config = config
        c = config.costs
        self.spread = SpreadCost(fraction=c.spread_fraction)
        self.commission = Commission(per_share=c.commission_per_share, bps=c.commission_bps)
        self.impact = SquareRootImpact(y=c.impact_y) if c.impact_y > 0 else None
        freq = config.policy.frequency.value
        self.period_days = PERIOD_DAYS[freq]
        daily_borrow = c.borrow_bps * 1e-4 / TRADING_DAYS
        self.holding = HoldingCost(borrow_fee=daily_borrow * self.period_days)
        # the optimizer sees the L1 part of the costs (spread + proportional commission)
        self.opt_costs: CostModel = self.spread + Commission(per_share=c.commission_per_share,
                                                             bps=c.commission_bps)
        self._strategies = strategies

    # ------------------------------------------------------------------ pieces

    def _strategies_for(self) -> list[Strategy]:
        if self._strategies is not None:
            return list(self._strategies)
        return [build_strategy(s, costs=self.opt_costs, holding=self.holding,
                                   period_days=self.period_days, impact=self.impact)
                for s in self.config.strategies]

    def _policy(self) -> RebalancePolicy:
        rules: list[Any] = [CalendarSchedule(PolicyFrequency(self.config.policy.frequency.value))]
        if self.config.policy.drift is not None:
            rules.append(AbsoluteDrift(self.config.policy.drift))
        rules.append(KillSwitch())
        return RebalancePolicy(rules)

    def _governance(self) -> GovernanceChain | None:
        g = self.config.governance
        if not g.enabled:
            return None
        return GovernanceChain([PositionLimit(g.max_position),
                                LiquidityParticipation(g.max_participation),
                                MinTradeValue(to_money(g.min_trade_value))])

    def _fit_risk(self, view: MarketData) -> FactorCovariance:
        r = self.config.risk
        if r.model is RiskKind.FUNDAMENTAL:
            from keel.risk.fundamental import FundamentalFactorModel

            return FundamentalFactorModel(window=r.window).fit(view).factored()
        from keel.risk.factor_model import StatisticalFactorModel

        rets = view.returns.iloc[-r.window:]
        return StatisticalFactorModel(n_factors=r.n_factors).fit(rets).factored()

    # ------------------------------------------------------------------ run

    def run(self, market: MarketData, *, progress: Callable[[int, int], None] | None = None,
            blas_threads: int | None = 1) -> BacktestResult:
        """Simulate every book over ``market``; returns a :class:`BacktestResult`.

        ``blas_threads``: BLAS/OpenMP threads during the run (default 1: the per-step
        matrices are small, and threaded BLAS on a busy machine was 30-50x slower; None
        leaves the process setting).
        """
        if blas_threads is None:
            return self._run(market, progress)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(blas_threads):
            return self._run(market, progress)

    def _run(self, market: MarketData, progress: Callable[[int, int], None] | None
             ) -> BacktestResult:
        t0 = time.perf_counter()
        cfg = self.config
        dates = market.dates
        lo, hi = cfg.backtest.warmup, len(dates) - 1
        if cfg.backtest.start is not None:
            lo = max(lo, int(dates.searchsorted(pd.Timestamp(cfg.backtest.start, tz="UTC"))))
        if cfg.backtest.end is not None:
            hi = min(hi, int(dates.searchsorted(pd.Timestamp(cfg.backtest.end, tz="UTC"),
                                                side="right")) - 1)
        if hi - lo < 2:
            raise ValidationError("not enough sessions after the warm-up",
                                  field="backtest.warmup", value=cfg.backtest.warmup)
        n_steps = hi - lo
        symbols = market.symbols
        self._symbols = [str(x) for x in symbols]
        n = len(symbols)
        # compute the causal panels once on the full market: every head(n) view then reuses
        # their first rows (they are causal, so the prefix is what was known at the time)
        for panel in ("returns", "volatility", "adv_notional", "adv_shares", "market_returns"):
            getattr(market, panel)
        rets = market.returns.to_numpy()  # row i-1: return from session i-1 to i
        nav0 = cfg.backtest.nav
        clock = SimulatedClock(dates[lo].to_pydatetime())
        books: list[_Book] = []
        for strat in self._strategies_for():
            for algo in cfg.execution.algos:
                shape = slice_shape(algo, n_slices=cfg.execution.n_slices,
                                    urgency=cfg.execution.is_urgency)
                sim = ExecutionSimulator(shape, self.spread, self.impact, self.commission)
                name = strat.name if len(cfg.execution.algos) == 1 else f"{strat.name}/{algo}"
                ledger = None
                if cfg.backtest.ledger is LedgerMode.FILLS:
                    ledger = Ledger(None, clock=clock, account=name)
                    ledger.deposit(to_money(nav0), timestamp=dates[lo].to_pydatetime())
                books.append(_Book(name, strat, algo, sim, n, n_steps, nav0, self._policy(),
                                   ledger))
        # strategies sharing an object across algos must not share state: one per book
        if len(cfg.execution.algos) > 1 and self._strategies is None:
            fresh = iter([build_strategy(s, costs=self.opt_costs, holding=self.holding,
                                   period_days=self.period_days, impact=self.impact)
                          for s in cfg.strategies for _ in cfg.execution.algos])
            for b in books:
                b.strategy = next(fresh)
        chain = self._governance()
        c = cfg.costs
        borrow_d = c.borrow_bps * 1e-4 / TRADING_DAYS
        cash_d, margin_d = c.cash_rate / TRADING_DAYS, c.margin_rate / TRADING_DAYS
        risk: FactorCovariance | None = None
        timings = {"risk_s": 0.0, "signals_s": 0.0, "optimize_s": 0.0, "execute_s": 0.0,
                   "policy_s": 0.0, "ledger_s": 0.0}
        for k, i in enumerate(range(lo, hi)):
            now = dates[i]
            clock.set(now.to_pydatetime())
            view = market.head(i + 1)
            refit = k % cfg.risk.refit_every == 0
            if refit:
                t = time.perf_counter()
                risk = self._fit_risk(view).reindex(symbols)
                timings["risk_s"] += time.perf_counter() - t
            assert risk is not None
            ctx = TradeContext.from_market(
                view, default_spread=self.config.data.default_spread_bps * 1e-4)
            step_alpha: tuple[np.ndarray, np.ndarray] | None = None
            nxt = rets[i]  # session i -> i+1, realised after the decision
            for b in books:
                if b.failure is not None:
                    continue
                nav = float(b.h.sum() + b.cash)
                w = b.h / nav
                t = time.perf_counter()
                decision = b.policy.decide(PolicyContext(
                    now=now.to_pydatetime(), weights=pd.Series(w, index=symbols),
                    targets=pd.Series(b.target if b.target is not None else w, index=symbols),
                    last_rebalance=None if b.last_rebalance is None
                    else b.last_rebalance.to_pydatetime()))
                timings["policy_s"] += time.perf_counter() - t
                u = np.zeros(n)
                if decision.trade:
                    if step_alpha is None:
                        t = time.perf_counter()
                        score = composite_score(view, cfg.signals.weights)
                        vol = view.volatility.iloc[-1]
                        alpha = expected_returns(score, vol, ic=cfg.signals.ic)
                        step_alpha = (alpha.reindex(symbols).to_numpy(),
                                      score.reindex(symbols).fillna(0.0).to_numpy())
                        timings["signals_s"] += time.perf_counter() - t
                    bctx = TradeContext(symbols, ctx.prices, ctx.adv_notional, ctx.volatility,
                                        ctx.spreads, nav=nav)
                    t = time.perf_counter()
                    try:
                        target = np.asarray(b.strategy.target(Step(
                            now, symbols, step_alpha[0], step_alpha[1], w, risk, bctx)),
                            dtype=np.float64)
                        if target.shape != (n,) or not np.all(np.isfinite(target)):
                            raise ValidationError("strategy returned bad weights",
                                                  field="target", value=target.shape)
                    except (KeelError, ArithmeticError, ValueError, RuntimeError) as exc:
                        b.failure = {"date": now.isoformat(),
                                     "reason": f"{type(exc).__name__}: {exc}"}
                        timings["optimize_s"] += time.perf_counter() - t
                        continue
                    timings["optimize_s"] += time.perf_counter() - t
                    if len(decision.names) < n:
                        keep = ~symbols.isin(decision.names)
                        target = np.where(keep, w, target)
                    b.target = target
                    b.last_rebalance = now
                    b.rebalances += 1
                    u = target * nav - b.h
                    u[np.abs(u) < 1e-9 * nav] = 0.0
                    if chain is not None:
                        u = self._govern(chain, b, u, ctx, view, nav, now)
                t = time.perf_counter()
                ex = b.sim.costs(u, ctx, nxt)
                h_plus = b.h + u
                cash = b.cash - float(u.sum()) - float(ex.total().sum())
                borrow = borrow_d * float(np.maximum(-h_plus, 0.0).sum())
                interest = (cash_d if cash > 0 else margin_d) * cash
                b.cash = cash - borrow + interest
                b.h = h_plus * (1.0 + np.nan_to_num(nxt))
                traded = float(np.abs(u).sum())
                b.traded[k] = traded
                b.turnover[k] = traded / (2.0 * nav)
                b.costs[k] = (ex.spread.sum(), ex.impact.sum(), ex.commission.sum(),
                              ex.timing.sum(), borrow, -interest)
                b.nav[k + 1] = float(b.h.sum() + b.cash)
                timings["execute_s"] += time.perf_counter() - t
                if b.ledger is not None:
                    t = time.perf_counter()
                    self._book(b, u, ex.total() - ex.commission, ex.commission, ctx.prices,
                               borrow, interest, now)
                    timings["ledger_s"] += time.perf_counter() - t
                if refit and nav > 0:
                    wn = h_plus / nav
                    if np.any(wn != 0):
                        d = decompose(risk, wn)
                        b.risk.append((now, d.total, d.factor, d.specific))
            if progress is not None:
                progress(k + 1, n_steps)
        index = dates[lo:hi + 1]
        results = {b.name: self._finish(b, index, market) for b in books}
        bench = market.market_returns.iloc[lo:hi].to_numpy()
        timings["total_s"] = time.perf_counter() - t0
        return BacktestResult(config=cfg.as_dict(), books=results,
                              benchmark=pd.Series(bench, index=index[1:], name="benchmark"),
                              timings=timings)

    # ------------------------------------------------------------------ helpers

    def _govern(self, chain: GovernanceChain, b: _Book, u: np.ndarray, ctx: TradeContext,
                view: MarketData, nav: float, now: pd.Timestamp) -> np.ndarray:
        symbols = view.symbols
        px = ctx.prices
        shares = b.h / px
        idx = np.flatnonzero(u)
        order = idx[np.argsort(u[idx] > 0, kind="stable")]  # sells first
        prices = {str(symbols[j]): to_price(px[j]) for j in idx}
        held = np.flatnonzero(np.abs(shares) > 1e-9)
        prices.update({str(symbols[j]): to_price(px[j]) for j in held})
        gctx = GovernanceContext(
            now=now.to_pydatetime(), nav=to_money(nav), prices=prices,
            positions={str(symbols[j]): to_qty(shares[j], rounding=Rounding.HALF_EVEN)
                       for j in held},
            sectors=None if view.sectors is None
            else {str(s): str(v) for s, v in view.sectors.items()},
            adv_shares=dict(zip(map(str, symbols),
                                view.adv_shares.iloc[-1].to_numpy(), strict=True)))
        orders = [Order(f"{b.name}-{now:%Y%m%d}-{j}", str(symbols[j]),
                        Side.BUY if u[j] > 0 else Side.SELL,
                        to_qty(abs(u[j]) / px[j]), now.to_pydatetime(),
                        strategy=b.name) for j in order]
        orders_ok = [o for o in orders if o.qty > 0]
        out = np.zeros_like(u)
        pos = {o.symbol: j for o, j in zip(orders, order, strict=True)}
        for v in chain.evaluate(orders_ok, gctx):
            j = pos[v.order.symbol]
            if not v.approved:
                b.gov["rejected"] += 1
                continue
            if v.qty != v.order.qty:
                b.gov["resized"] += 1
            out[j] = float(v.qty) * px[j] * np.sign(u[j])
        return out

    def _book(self, b: _Book, u: np.ndarray, slip: np.ndarray, comm: np.ndarray,
              px: np.ndarray, borrow: float, interest: float, now: pd.Timestamp) -> None:
        assert b.ledger is not None
        ts = now.to_pydatetime()
        fills = []
        for j in np.flatnonzero(u):  # one Fill per traded name: the booked record
            qty = abs(u[j]) / px[j]
            # all-in price: the execution slippage (spread, impact, timing) per share
            price = px[j] + np.sign(u[j]) * slip[j] / qty
            b.fill_seq += 1
            fills.append(Fill(f"{b.name}-{b.fill_seq}", f"{b.name}-{now:%Y%m%d}",
                              self._symbols[j], Side.BUY if u[j] > 0 else Side.SELL,
                              to_qty(qty, rounding=Rounding.HALF_EVEN),
                              to_price(max(price, 1e-6)), ts,
                              commission=to_money(comm[j])))
        if fills:
            b.ledger.apply_fills(fills)
        borrow_d, interest_d = to_money(borrow), to_money(interest)  # 0 below the 1e-8 grid
        if borrow_d > 0:
            b.ledger.charge_fee(borrow_d, timestamp=ts, memo="borrow")
        if interest_d > 0:
            b.ledger.deposit(interest_d, timestamp=ts, memo="interest")
        elif interest_d < 0:
            b.ledger.charge_fee(-interest_d, timestamp=ts, memo="margin")

    def _finish(self, b: _Book, index: pd.DatetimeIndex, market: MarketData) -> BookResult:
        steps = index[:-1]
        risk = pd.DataFrame(b.risk, columns=["date", "total", "factor", "specific"])
        risk = risk.set_index("date")
        nav = pd.Series(b.nav, index=index, name=b.name)
        final_w = None
        if b.failure is None and nav.iloc[-1] > 0:
            final_w = pd.Series(b.h / nav.iloc[-1], index=market.symbols, name="weight")
        ledger: dict[str, Any] = {}
        if b.ledger is not None and b.failure is None:
            last = market.prices.loc[index[-1]]
            held = {s: to_price(last[s]) for s in b.ledger.positions}
            if held:
                b.ledger.mark(held, timestamp=index[-1].to_pydatetime())
            eq = float(b.ledger.equity)
            ledger = {"equity": eq, "float_nav": float(nav.iloc[-1]),
                      "abs_diff": abs(eq - float(nav.iloc[-1])),
                      "rel_diff": abs(eq - float(nav.iloc[-1])) / abs(float(nav.iloc[-1]))}
        return BookResult(
            name=b.name, strategy=b.strategy.name, algo=b.algo, nav=nav,
            turnover=pd.Series(b.turnover, index=steps, name="turnover"),
            costs=pd.DataFrame(b.costs, index=steps, columns=list(COMPONENTS)),
            traded=pd.Series(b.traded, index=steps, name="traded"), risk=risk,
            failure=b.failure, rebalances=b.rebalances, governance=dict(b.gov),
            final_weights=final_w, ledger=ledger)


@dataclass
class BacktestResult:
    """All books of one run, the benchmark, the config that produced them and timings."""

    config: dict[str, Any]
    books: dict[str, BookResult]
    benchmark: pd.Series
    timings: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> pd.DataFrame:
        """One row per book (see :func:`keel.backtest.metrics.book_metrics`)."""
        from keel.backtest.metrics import metrics_table

        return metrics_table(self)

    @property
    def failures(self) -> dict[str, dict[str, str]]:
        return {k: b.failure for k, b in self.books.items() if b.failure is not None}
