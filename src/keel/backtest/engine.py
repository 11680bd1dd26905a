"""The multi-period simulator: the desk pipeline driven over history.

Per session ``t`` (a close), for every book (``[[backtest.books]]``) side by side:

1. the step sees ``market.head(n)`` only (rows stamped ``<= t``): a look-ahead is impossible;
2. the risk model (with its fallback chain) is refitted every ``risk.refit_every`` sessions;
3. the book's :class:`~keel.app.pipeline.Pipeline` policy decides whether it trades; if so its
   engine gives target weights, the turnover governor caps them (per rebalance and per year);
4. governance resizes or rejects the orders (drawdown from the book's own NAV history), and
   every trade is capped at ``execution.max_participation`` of the expected volume;
5. ``backtest.execution_lag = next_session`` (default): the trades are worked through session
   t+1 along the algorithm's slices (timing: the price moves with the t -> t+1 return while
   they work); ``same_close`` (opt-in, labelled in the report) fills at close t;
6. holdings earn the next session's return; shorts pay borrow, cash earns (or pays) interest;
7. with ``ledger = "fills"`` every fill is booked in a Decimal :class:`~keel.portfolio.ledger.
   Ledger` and its equity is reconciled with the float book at the end.

The daily data hold no opening prices, so the overnight gap is spread across the session by
the slice timing (a limit of the data, stated in docs/backtest.md). A book whose engine raises
is stopped and reported with the date and the reason; the others continue.

Universe and missing data (``data.on_missing = "mask"``, docs/backtest.md): each session the
engines see only the names tradable by the point-in-time mask *and* covered by that refit's
risk model (complete returns over its window); every other name is pinned at its weight. A
held name whose close is missing at a decision (its data stopped: a delisting, a halt, a gap:
the data cannot tell them apart at the time) is **liquidated at its last traded close** that
session, charged spread and commission, and reported as a ``DATA_STOPPED_LIQUIDATED`` event;
a next-session trade in a name with no next session is not filled (``UNFILLED_NO_SESSION``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from keel.app.engines import Engine
from keel.app.pipeline import TRADING_DAYS, Pipeline, RiskFit, drawdown
from keel.backtest.execution import ExecutionCosts, ExecutionSimulator, slice_shape
from keel.clock import SimulatedClock
from keel.config import (
    ExecutionLag,
    KeelConfig,
    LedgerMode,
    SpreadSource,
    book_configs,
    config_as_dict,
)
from keel.costs.base import TradeContext
from keel.data.market import MarketData
from keel.errors import KeelError, ValidationError
from keel.policy.governance import BatchBook, batch_is_screenable
from keel.policy.triggers import PolicyContext
from keel.policy.verdicts import GovernanceContext
from keel.portfolio.ledger import Ledger, fine_decimals
from keel.risk.attribution import decompose
from keel.types import Order, Rounding, Side, to_money, to_price, to_qty

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
            holdings at each risk-model refit, and ``outside_model``: gross weight held in
            names the model does not cover (no complete returns over its window; given no
            made-up risk).
        failure: ``{"date", "reason"}`` if the strategy failed (the book then stops).
        rebalances: decisions that traded; governance: counts of resized / rejected orders.
        final_weights: weights at the last session.
        ledger: reconciliation of the Decimal ledger vs the float book (``fills`` mode).
        events: labelled events that are not decisions (``DATA_STOPPED_LIQUIDATED``,
            ``UNFILLED_NO_SESSION``, ``MARKED_AT_LAST_CLOSE``), never silent fills.
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
    decisions: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def returns(self) -> pd.Series:
        return self.nav.pct_change().iloc[1:].dropna()


class _Book:
    def __init__(self, name: str, pipeline: Pipeline, engine: Engine, sim: ExecutionSimulator,
                 n: int, n_steps: int, nav: float, ledger: Ledger | None) -> None:
        self.name, self.pipeline, self.engine, self.sim = name, pipeline, engine, sim
        self.algo = pipeline.config.execution.algo.value
        self.policy = pipeline.policy
        self.chain = pipeline.governance
        self.governor = pipeline.turnover_governor()
        self.h = np.zeros(n)
        self.cash = nav
        self.target: np.ndarray | None = None
        self.last_rebalance: pd.Timestamp | None = None
        self.ledger = ledger
        self.nav = np.full(n_steps + 1, np.nan)
        self.nav[0] = nav
        self.turnover = np.zeros(n_steps)
        self.traded = np.zeros(n_steps)
        self.costs = np.zeros((n_steps, len(COMPONENTS)))
        self.risk: list[tuple[pd.Timestamp, float, float, float, float]] = []
        self.failure: dict[str, str] | None = None
        self.rebalances = 0
        self.gov = {"resized": 0, "rejected": 0, "participation_capped": 0,
                    "turnover_capped": 0}
        self.decisions: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.fill_seq = 0


class Backtester:
    """Runs the one :class:`~keel.config.KeelConfig` on a :class:`MarketData`.

    Each book (``[[backtest.books]]``, or one book from the config) is a
    :class:`~keel.app.pipeline.Pipeline` built from its effective config: the same signals,
    risk chain, engine, turnover governor, policy, governance and cost model as ``keel run``.

    Args:
        config: the configuration.
        engines: optional engine objects by book name replacing the configured ones (any
            object with ``name``, ``codes`` and ``target(step)``).
    """

    def __init__(self, config: KeelConfig, engines: dict[str, Engine] | None = None) -> None:
        self.config = config
        self.books_cfg = book_configs(config)
        self.base = Pipeline(config, live=False)
        self._engines = engines or {}

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
        bt = cfg.backtest
        dates = market.dates
        lo, hi = bt.warmup, len(dates) - 1
        if bt.start is not None:
            lo = max(lo, int(dates.searchsorted(pd.Timestamp(bt.start, tz="UTC"))))
        if bt.end is not None:
            hi = min(hi, int(dates.searchsorted(pd.Timestamp(bt.end, tz="UTC"),
                                                side="right")) - 1)
        if hi - lo < 2:
            raise ValidationError("not enough sessions after the warm-up",
                                  field="backtest.warmup", value=bt.warmup)
        n_steps = hi - lo
        symbols = market.symbols
        self._symbols = [str(x) for x in symbols]
        n = len(symbols)
        # compute the causal panels once on the full market: every head(n) view then reuses
        # their first rows (they are causal, so the prefix is what was known at the time)
        for panel in ("returns", "volatility", "adv_notional", "adv_shares", "market_returns"):
            getattr(market, panel)
        rets = market.returns.to_numpy()  # row i-1: return from session i-1 to i
        nav0 = bt.nav
        same_close = bt.execution_lag is ExecutionLag.SAME_CLOSE
        clock = SimulatedClock(dates[lo].to_pydatetime())
        books: list[_Book] = []
        for name, bcfg in self.books_cfg:
            pipe = Pipeline(bcfg, live=False)
            e = bcfg.execution
            shape = slice_shape("close" if same_close else e.algo.value, n_slices=e.slices,
                                urgency=e.is_urgency)
            sim = ExecutionSimulator(shape, pipe.spread, pipe.impact, pipe.commission)
            ledger = None
            if bt.ledger is LedgerMode.FILLS:
                ledger = Ledger(None, clock=clock, account=name)
                ledger.deposit(to_money(nav0), timestamp=dates[lo].to_pydatetime())
            engine = self._engines.get(name) or pipe.engine(name)
            books.append(_Book(name, pipe, engine, sim, n, n_steps, nav0, ledger))
        c = cfg.costs
        borrow_d = c.borrow_bps * 1e-4 / TRADING_DAYS
        cash_d, margin_d = c.cash_rate / TRADING_DAYS, c.margin_rate / TRADING_DAYS
        fit: RiskFit | None = None
        risk_used: list[tuple[pd.Timestamp, str]] = []
        universe = np.zeros(n_steps, dtype=np.int64)
        in_mask = np.zeros(n_steps, dtype=np.int64)
        # the universe is the point-in-time tradable mask (keel.data: close and volume known
        # over the last min_history sessions) within the refit's risk model
        tradable = market.tradable.to_numpy()
        closes = market.prices.to_numpy()
        # last traded close per name up to each session (causal): the delisting price
        last_close = market.prices.ffill().to_numpy()
        timings = {"risk_s": 0.0, "signals_s": 0.0, "optimize_s": 0.0, "execute_s": 0.0,
                   "policy_s": 0.0, "ledger_s": 0.0}
        for k, i in enumerate(range(lo, hi)):
            now = dates[i]
            clock.set(now.to_pydatetime())
            view = market.head(i + 1)
            in_mask[k] = int(tradable[i].sum())
            refit = k % cfg.risk.refit_every == 0
            if refit:
                t = time.perf_counter()
                fit = self.base.fit_risk(view)
                risk_used.append((now, fit.used.value))
                timings["risk_s"] += time.perf_counter() - t
            assert fit is not None
            risk = fit.model
            uni = self.base.universe(view, risk)
            universe[k] = int(uni.sum())
            idx = np.flatnonzero(uni)
            ctx = self.base.trade_context(view, symbols=symbols[idx])  # the universe only
            px = closes[i]  # NaN where the close is unknown (never traded there)
            adv_sh = view.adv_shares.iloc[-1].to_numpy()
            step_alpha: tuple[pd.Series, pd.Series] | None = None
            nxt = rets[i]  # session i -> i+1, realised after the decision
            for b in books:
                if b.failure is not None:
                    continue
                gone = (b.h != 0) & ~np.isfinite(px)
                liq = (self._liquidate(b, gone, i, k, now, dates, closes, last_close, view)
                       if gone.any() else 0.0)
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
                        step_alpha = self.base.signals(view)
                        timings["signals_s"] += time.perf_counter() - t
                    bctx = TradeContext(ctx.symbols, ctx.prices, ctx.adv_notional,
                                        ctx.volatility, ctx.spreads, nav=nav)
                    t = time.perf_counter()
                    try:
                        step = b.pipeline.step(view, now, step_alpha[0], step_alpha[1], w,
                                               risk, bctx)
                        target = np.asarray(b.engine.target(step), dtype=np.float64)
                        if target.shape != (n,) or not np.all(np.isfinite(target)):
                            raise ValidationError("engine returned bad weights",
                                                  field="target", value=target.shape)
                        target, tcodes = b.governor.apply(now, w, target)
                    except (KeelError, ArithmeticError, ValueError, RuntimeError) as exc:
                        b.failure = {"date": now.isoformat(),
                                     "reason": f"{type(exc).__name__}: {exc}"}
                        timings["optimize_s"] += time.perf_counter() - t
                        continue
                    timings["optimize_s"] += time.perf_counter() - t
                    b.gov["turnover_capped"] += int("TURNOVER_CAP" in tcodes)
                    # names outside today's universe are never traded (the engines pin them;
                    # this guards an engine object passed in that does not)
                    target = np.where(step.mask, target, w)
                    if len(decision.names) < n:
                        keep = ~symbols.isin(decision.names)
                        target = np.where(keep, w, target)
                    b.target = target
                    b.last_rebalance = now
                    b.rebalances += 1
                    u = target * nav - b.h
                    u[np.abs(u) < 1e-9 * nav] = 0.0
                    if b.chain is not None:
                        u = self._govern(b, u, px, view, nav, now)
                    shares, capped = b.pipeline.cap_participation(
                        np.divide(u, px, out=np.zeros(n), where=u != 0), adv_sh)
                    if capped:
                        u = np.where(u != 0, shares * px, 0.0)
                        b.gov["participation_capped"] += capped
                    if not same_close:
                        # a trade worked through the next session in a name that has none
                        # (its data stops) is not filled: reported, never filled at a
                        # made-up price, and never charged to the turnover budget
                        lost = (u != 0) & ~np.isfinite(nxt)
                        for j in np.flatnonzero(lost):
                            b.events.append({"date": dates[i + 1].isoformat(),
                                             "symbol": self._symbols[j],
                                             "event": "UNFILLED_NO_SESSION",
                                             "notional": float(u[j])})
                        u = np.where(lost, 0.0, u)
                    # the annual budget pays for what is traded, after every cut above
                    b.governor.commit(now, w, (b.h + u) / nav)
                    b.decisions.append({
                        "date": now.isoformat(), "engine": list(b.engine.codes),
                        "triggers": [r.value for r in decision.reasons],
                        "turnover": list(tcodes), "risk_model": fit.used.value,
                        "target": [float(x) for x in target]})
                t = time.perf_counter()
                sub = b.sim.costs(u[idx], ctx, nxt[idx])
                ex = ExecutionCosts(*(self._scatter(getattr(sub, c), idx, n)
                                      for c in ("spread", "impact", "commission", "timing")))
                fb = b.pipeline.feedback
                if fb is not None and np.any(u):  # the loop on simulated fills
                    fb.observe_trades(u[idx], TradeContext(ctx.symbols, ctx.prices,
                                                           ctx.adv_notional, ctx.volatility,
                                                           ctx.spreads, nav=nav),
                                      ex.total()[idx], now.to_pydatetime())
                h_plus = b.h + u
                cash = b.cash - float(u.sum()) - float(ex.total().sum())
                borrow = borrow_d * float(np.maximum(-h_plus, 0.0).sum())
                interest = (cash_d if cash > 0 else margin_d) * cash
                b.cash = cash - borrow + interest
                # a name whose next close is unknown is held at its last close until the next
                # decision liquidates it (DATA_STOPPED_LIQUIDATED)
                b.h = h_plus * np.where(np.isfinite(nxt), 1.0 + nxt, 1.0)
                traded = float(np.abs(u).sum()) + liq
                b.traded[k] = traded
                b.turnover[k] = traded / (2.0 * nav)
                b.costs[k] += (ex.spread.sum(), ex.impact.sum(), ex.commission.sum(),
                               ex.timing.sum(), borrow, -interest)
                b.nav[k + 1] = float(b.h.sum() + b.cash)
                timings["execute_s"] += time.perf_counter() - t
                if b.ledger is not None:
                    t = time.perf_counter()
                    self._book(b, u, ex.total() - ex.commission, ex.commission, px,
                               borrow, interest, now)
                    timings["ledger_s"] += time.perf_counter() - t
                if refit and nav > 0:
                    wn = h_plus / nav
                    if np.any(wn != 0):
                        # the model covers the names with complete returns over its window;
                        # weight held outside it is reported, not given a made-up risk
                        pos = symbols.get_indexer(risk.symbols)
                        d = decompose(risk, wn[pos])
                        out_w = float(np.abs(wn).sum() - np.abs(wn[pos]).sum())
                        b.risk.append((now, d.total, d.factor, d.specific, out_w))
            if progress is not None:
                progress(k + 1, n_steps)
        index = dates[lo:hi + 1]
        results = {b.name: self._finish(b, index, market) for b in books}
        bench = market.market_returns.iloc[lo:hi].to_numpy()
        timings["total_s"] = time.perf_counter() - t0
        return BacktestResult(config=config_as_dict(cfg), books=results,
                              benchmark=pd.Series(bench, index=index[1:], name="benchmark"),
                              timings=timings, execution_lag=bt.execution_lag.value,
                              universe=pd.Series(universe, index=index[:-1], name="universe"),
                              tradable=pd.Series(in_mask, index=index[:-1], name="tradable"),
                              risk_models=risk_used)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _scatter(values: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
        out = np.zeros(n)
        out[idx] = values
        return out

    def _liquidate(self, b: _Book, gone: np.ndarray, i: int, k: int, now: pd.Timestamp,
                   dates: pd.DatetimeIndex, closes: np.ndarray, last_close: np.ndarray,
                   view: MarketData) -> float:
        """Sell (or buy back) every held name in ``gone`` (no close at session ``i``: its
        data stopped) at its last traded close, charged spread and commission of the one cost
        model; each is a ``DATA_STOPPED_LIQUIDATED`` event. Returns the traded notional."""
        jj = np.flatnonzero(gone)
        price = last_close[i, jj]
        u = -b.h[jj]  # the holding is valued at the last close (held there since)
        spreads = (view.spreads.to_numpy()[:, jj] if view.spreads is not None
                   else np.full((1, len(jj)), np.nan))
        spr = pd.DataFrame(spreads).ffill().to_numpy()[-1]
        spr = np.where(np.isfinite(spr), spr, b.pipeline.default_spread)
        if b.pipeline.config.costs.spread_source is SpreadSource.FIXED:
            spr = np.full(len(jj), b.pipeline.default_spread)
        # no volatility or ADV is read by spread and commission; flagged so nothing else can
        lctx = TradeContext(view.symbols[jj], price, np.zeros(len(jj)), np.zeros(len(jj)),
                            spr, extra={"missing_inputs": np.ones(len(jj))})
        spread = b.sim.spread.cost_array(u, lctx)
        comm = (np.zeros(len(jj)) if b.sim.commission is None
                else b.sim.commission.cost_array(u, lctx))
        b.cash += float(u.sum() * -1.0) - float(spread.sum() + comm.sum())
        b.h[jj] = 0.0
        b.costs[k, 0] += float(spread.sum())
        b.costs[k, 2] += float(comm.sum())
        for n_, j in enumerate(jj):
            known = np.flatnonzero(np.isfinite(closes[: i + 1, j]))
            b.events.append({
                "date": now.isoformat(), "symbol": self._symbols[j],
                "event": "DATA_STOPPED_LIQUIDATED",
                "last_close_date": dates[int(known[-1])].isoformat() if len(known) else None,
                "price": float(price[n_]), "notional": float(u[n_]),
                "cost": float(spread[n_] + comm[n_])})
        if b.ledger is not None:
            full_u = np.zeros(len(b.h))
            slip, cm, pxs = np.zeros(len(b.h)), np.zeros(len(b.h)), np.ones(len(b.h))
            full_u[jj], slip[jj], cm[jj], pxs[jj] = u, spread, comm, price
            self._book(b, full_u, slip, cm, pxs, 0.0, 0.0, now)
        return float(np.abs(u).sum())

    def _govern(self, b: _Book, u: np.ndarray, px: np.ndarray,
                view: MarketData, nav: float, now: pd.Timestamp) -> np.ndarray:
        chain = b.chain
        assert chain is not None
        symbols = self._symbols
        shares = b.h / px
        idx = np.flatnonzero(u)
        order = idx[np.argsort(u[idx] > 0, kind="stable")]  # sells first
        qty = [to_qty(abs(u[j]) / px[j]) for j in order]
        dd = drawdown(b.nav[np.isfinite(b.nav)])
        sectors = self._sector_list(view)
        # fast path: a float screen of the whole batch; when every rule surely approves
        # every order unchanged, the Decimal review below would return exactly these
        # quantities (keel.policy.batch)
        market = self._gov_market(b, view)
        if not market:  # rules reading market inputs (cluster, regime, vol): no screen
            held_f = np.where(np.abs(shares) > 1e-9, shares, 0.0)
            signed = np.array([float(q) for q in qty]) * np.sign(u[order])
            if batch_is_screenable(nav, px, held_f, order, signed, dd) and chain.clears(
                    BatchBook(nav, px, held_f, sectors, dd, float(np.abs(u).sum())),
                    order, signed):
                out = np.zeros_like(u)
                for j, q in zip(order, qty, strict=True):
                    out[j] = float(q) * px[j] * np.sign(u[j])
                return out
        prices = {symbols[j]: to_price(px[j]) for j in idx}
        held = np.flatnonzero(np.abs(shares) > 1e-9)
        prices.update({symbols[j]: to_price(px[j]) for j in held})
        gctx = GovernanceContext(
            now=now.to_pydatetime(), nav=to_money(nav), prices=prices,
            positions={symbols[j]: to_qty(shares[j], rounding=Rounding.HALF_EVEN)
                       for j in held},
            sectors=None if sectors is None else dict(zip(symbols, sectors, strict=True)),
            adv_shares=dict(zip(symbols, view.adv_shares.iloc[-1].to_numpy(), strict=True)),
            drawdown=dd, **market)
        orders = [Order(f"{b.name}-{now:%Y%m%d}-{j}", symbols[j],
                        Side.BUY if u[j] > 0 else Side.SELL,
                        q, now.to_pydatetime(), strategy=b.name)
                  for j, q in zip(order, qty, strict=True)]
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

    def _sector_list(self, view: MarketData) -> list[str] | None:
        """Sector of each symbol as strings (computed once per run: sectors are static)."""
        if view.sectors is None:
            return None
        cached = getattr(self, "_sectors", None)
        if cached is None or cached[0] is not view.sectors:
            sec = view.sectors
            cached = (sec, [str(sec[s]) if s in sec.index else "Unknown"
                            for s in view.symbols])
            self._sectors = cached
        return cached[1]

    @staticmethod
    def _gov_market(b: _Book, view: MarketData) -> dict[str, Any]:
        """Market inputs only the configured rules need (correlation, market index, vol)."""
        g = b.pipeline.config.governance
        out: dict[str, Any] = {}
        if g.cluster_cap is not None:
            out["correlation"] = view.returns.tail(126).corr()
        if g.regime_sizing or g.vol_target is not None:
            mret = view.market_returns
            out["market_prices"] = (1.0 + mret).cumprod()
            out["market_vol"] = float(mret.tail(21).std() * np.sqrt(252.0))
        return out

    def _book(self, b: _Book, u: np.ndarray, slip: np.ndarray, comm: np.ndarray,
              px: np.ndarray, borrow: float, interest: float, now: pd.Timestamp) -> None:
        assert b.ledger is not None
        ts = now.to_pydatetime()
        jj = np.flatnonzero(u)  # one fill per traded name: the booked record
        if len(jj):
            with np.errstate(divide="ignore", invalid="ignore"):
                qty = np.abs(u[jj]) / px[jj]
                # all-in price: the execution slippage (spread, impact, timing) per share
                price = np.maximum(px[jj] + np.sign(u[jj]) * slip[jj] / qty, 1e-6)
            q_dec = fine_decimals(qty, Rounding.HALF_EVEN, "qty")
            # below the share grid (a liquidated residue): nothing to book
            keep = [m for m, q in enumerate(q_dec) if q != 0]
            if keep:
                kj = jj[keep]
                first = b.fill_seq + 1
                b.fill_seq += len(keep)
                b.ledger.apply_trades(
                    f"{b.name}-{now:%Y%m%d}",
                    [f"{b.name}-{seq}" for seq in range(first, b.fill_seq + 1)],
                    [self._symbols[j] for j in kj],
                    [Side.BUY if u[j] > 0 else Side.SELL for j in kj],
                    [q_dec[m] for m in keep],
                    fine_decimals(price[keep], Rounding.HALF_EVEN, "price"),
                    fine_decimals(comm[kj], Rounding.HALF_EVEN, "commission"), ts)
        borrow_d, interest_d = to_money(borrow), to_money(interest)  # 0 below the 1e-8 grid
        if borrow_d > 0:
            b.ledger.charge_fee(borrow_d, timestamp=ts, memo="borrow")
        if interest_d > 0:
            b.ledger.deposit(interest_d, timestamp=ts, memo="interest")
        elif interest_d < 0:
            b.ledger.charge_fee(-interest_d, timestamp=ts, memo="margin")

    def _finish(self, b: _Book, index: pd.DatetimeIndex, market: MarketData) -> BookResult:
        # a decision at close t trades through session t+1 (next_session): its costs, traded
        # notional and turnover are dated when they are realised, not when decided
        same_close = self.config.backtest.execution_lag is ExecutionLag.SAME_CLOSE
        steps = index[:-1] if same_close else index[1:]
        risk = pd.DataFrame(b.risk, columns=["date", "total", "factor", "specific",
                                             "outside_model"])
        risk = risk.set_index("date")
        nav = pd.Series(b.nav, index=index, name=b.name)
        final_w = None
        if b.failure is None and nav.iloc[-1] > 0:
            final_w = pd.Series(b.h / nav.iloc[-1], index=market.symbols, name="weight")
        ledger: dict[str, Any] = {}
        if b.ledger is not None and b.failure is None:
            last = market.prices.loc[index[-1]]
            known = market.prices.loc[:index[-1]].ffill().iloc[-1]
            held = {}
            for s in b.ledger.positions:
                if not np.isfinite(last[s]):  # data stopped on the last session
                    b.events.append({"date": index[-1].isoformat(), "symbol": s,
                                     "event": "MARKED_AT_LAST_CLOSE",
                                     "price": float(known[s])})
                held[s] = to_price(last[s] if np.isfinite(last[s]) else known[s])
            if held:
                b.ledger.mark(held, timestamp=index[-1].to_pydatetime())
            eq = float(b.ledger.equity)
            ledger = {"equity": eq, "float_nav": float(nav.iloc[-1]),
                      "abs_diff": abs(eq - float(nav.iloc[-1])),
                      "rel_diff": abs(eq - float(nav.iloc[-1])) / abs(float(nav.iloc[-1]))}
        return BookResult(
            name=b.name, strategy=b.pipeline.config.optimize.engine.value, algo=b.algo,
            nav=nav,
            turnover=pd.Series(b.turnover, index=steps, name="turnover"),
            costs=pd.DataFrame(b.costs, index=steps, columns=list(COMPONENTS)),
            traded=pd.Series(b.traded, index=steps, name="traded"), risk=risk,
            failure=b.failure, rebalances=b.rebalances, governance=dict(b.gov),
            final_weights=final_w, ledger=ledger, decisions=b.decisions, events=b.events)


@dataclass
class BacktestResult:
    """All books of one run, the benchmark, the config that produced them and timings."""

    config: dict[str, Any]
    books: dict[str, BookResult]
    benchmark: pd.Series
    timings: dict[str, float] = field(default_factory=dict)
    #: ``next_session`` (default) or ``same_close`` (opt-in), shown in the report
    execution_lag: str = ExecutionLag.NEXT_SESSION.value
    #: names the engines could trade per decision session: the point-in-time tradable mask
    #: within the risk model's names (complete returns over its window)
    universe: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    #: names in the point-in-time tradable mask alone per decision session
    tradable: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    #: (refit date, risk model used) of each refit (the fallback chain names it)
    risk_models: list[tuple[pd.Timestamp, str]] = field(default_factory=list)
    #: what a reader of these figures must know about the data (``market.caveats``: spreads
    #: that are a fixed stand-in or an estimate, not quotes); in result.json, report and CLI
    caveats: tuple[str, ...] = ()

    def metrics(self) -> pd.DataFrame:
        """One row per book (see :func:`keel.backtest.metrics.book_metrics`)."""
        from keel.backtest.metrics import metrics_table

        return metrics_table(self)

    @property
    def failures(self) -> dict[str, dict[str, str]]:
        return {k: b.failure for k, b in self.books.items() if b.failure is not None}
