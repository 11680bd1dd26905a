"""One account's rebalance: drift check, target (closed form or the shared QP), lot-rounded
orders within its cash, tax lots relieved and the wash-sale guard.

The problem of an account (weights are fractions of its NAV, ``b = 1 - optimize.cash_buffer``
the invested budget, ``m`` its model):

* **Trigger.** Nothing trades while every name is within the account's drift band of ``b m``,
  idle cash above ``1 - b`` is within the band too (else ``CASH_DRIFT``) and no name it may
  not hold is held (``IN_BAND``).
* **Target.** ``minimise  g (w - b m)' Sigma (w - b m) + tax(w)`` subject to ``w >= 0``,
  ``sum w <= b``, each name within its drift band of ``b m`` (``[max(b m - band, 0),
  b m + band]``), ``w = 0`` on names it may not hold and ``w <= w0`` on names it may not buy.
  ``Sigma`` is the desk's shared risk model (fitted once per batch), ``g`` is
  ``accounts.tracking_aversion`` per year, ``tax`` the :class:`~keel.optimize.tax_term.TaxCost`
  of a tax-aware account. When the account is not tax-aware and no restriction touches the
  model (``b m`` is feasible), ``w = b m`` is the exact minimiser (zero tracking error) and
  no solver runs (``TARGET_MODEL``); otherwise one compiled problem per worker is re-solved
  with the account's bounds, benchmark, holdings and tax rates (``TARGET_QP``; the desk's
  :class:`~keel.optimize.MeanVariance` on its direct QP path).
* **Orders.** :func:`keel.portfolio.rebalance.rebalance`: sells first, whole shares, buys
  shrunk to the cash plus the sale proceeds, orders below ``execution.min_order_value``
  dropped.
* **Tax.** Sells relieve the account's lots (``accounts.lot_method``); a sale realising a
  loss on a symbol with a lot bought in the 30 days before is a wash sale: ``block`` re-plans
  the account without selling that symbol, ``flag`` keeps the sale and reports it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from keel.accounts.book import Account, ModelPortfolio
from keel.accounts.tax import (
    Gains,
    LotMethod,
    TaxLot,
    WashSalePolicy,
    recent_buys,
    sell,
    sell_tax_rates,
    wash_sale_conflicts,
)
from keel.errors import KeelError, ValidationError
from keel.risk.base import FactorCovariance
from keel.types import ZERO, Side

_Q = Decimal("1e-12")


@dataclass(frozen=True)
class Settings:
    """What every account's problem shares (from the one configuration)."""

    cash_buffer: float = 0.0
    min_order_value: float = 1000.0
    tracking_aversion: float = 100.0
    short_term_rate: float = 0.37
    long_term_rate: float = 0.20
    lot_method: LotMethod = LotMethod.HIFO
    wash_sale: WashSalePolicy = WashSalePolicy.BLOCK
    solver_time_limit_s: float | None = None
    solver_max_iter: int | None = None

    @classmethod
    def from_config(cls, config: Any) -> Settings:
        a, o = config.accounts, config.optimize
        return cls(cash_buffer=o.cash_buffer,
                   min_order_value=config.execution.min_order_value,
                   tracking_aversion=a.tracking_aversion, short_term_rate=a.short_term_rate,
                   long_term_rate=a.long_term_rate, lot_method=a.lot_method,
                   wash_sale=a.wash_sale, solver_time_limit_s=o.solver_time_limit_s,
                   solver_max_iter=o.solver_max_iter)


@dataclass(frozen=True)
class Shared:
    """The batch's common inputs, sent once to each worker.

    Attributes:
        token: identifies the batch (a worker keeps one compiled problem per token).
        now: UTC time stamped on the orders; its date is the trade date for tax.
        symbols: the universe; prices: exact price per symbol; risk: the shared risk model
            (per session, fitted once); models: model portfolios by id.
    """

    token: str
    now: datetime
    symbols: tuple[str, ...]
    prices: dict[str, Decimal]
    risk: FactorCovariance
    models: dict[str, ModelPortfolio]
    settings: Settings

    @property
    def trade_date(self) -> date:
        return self.now.date()


@dataclass(frozen=True)
class AccountResult:
    """One account's outcome: orders ``(symbol, side, whole shares)``, reason codes, realised
    gains of the planned sells, the target path (``none``, ``model``, ``qp``)."""

    account_id: str
    orders: tuple[tuple[str, Side, int], ...]
    reasons: tuple[str, ...]
    nav: Decimal = ZERO
    path: str = "none"
    gains: Gains = field(default_factory=Gains)
    wash_sales: tuple[str, ...] = ()
    error: str | None = None


class AccountSolver:
    """Solves accounts against one :class:`Shared`; one per worker process (the compiled
    problem, the instrument registry and the universe index are built once)."""

    def __init__(self, shared: Shared) -> None:
        from keel.optimize import LongOnly, MeanVariance, NetExposure, PortfolioInputs, Risk
        from keel.optimize.constraints import WeightBounds
        from keel.optimize.limits import SolverLimits
        from keel.optimize.tax_term import TaxCost
        from keel.portfolio.instruments import InstrumentRegistry
        from keel.portfolio.rebalance import RebalanceConfig

        self.shared = shared
        st = shared.settings
        self.symbols = pd.Index(shared.symbols, name="symbol")
        self.index = {s: i for i, s in enumerate(shared.symbols)}
        self.n = len(shared.symbols)
        self.px = np.array([float(shared.prices[s]) for s in shared.symbols])
        self.budget = 1.0 - st.cash_buffer
        self.registry = InstrumentRegistry.equities(shared.symbols)
        self.rb_config = RebalanceConfig(min_order_value=Decimal(repr(st.min_order_value)),
                                         strategy="accounts")
        self.model_w = {mid: self._dense(m) for mid, m in shared.models.items()}
        self._gamma = st.tracking_aversion * shared.risk.periods_per_year
        self._limits = SolverLimits(st.solver_time_limit_s, st.solver_max_iter)
        self._classes = (MeanVariance, Risk, LongOnly, NetExposure, WeightBounds, TaxCost)
        self.reset()
        zeros = pd.Series(0.0, index=self.symbols)
        self.inputs = PortfolioInputs.build(zeros, zeros, risk=shared.risk, benchmark=zeros)

    def reset(self) -> None:
        """A fresh problem (compiled on its first solve, then re-solved per account)."""
        mv, risk, long_only, net, bounds, tax = self._classes
        self.bounds = bounds(lower=np.zeros(self.n), upper=np.full(self.n, self.budget))
        self.tax = tax(0.0)
        self.problem = mv(terms=[risk(self._gamma, benchmark_relative=True), self.tax],
                          constraints=[long_only(), self.bounds, net(0.0, self.budget)],
                          limits=self._limits)

    def _dense(self, m: ModelPortfolio) -> np.ndarray:
        w = np.zeros(self.n)
        for s, v in m.weights.items():
            if s not in self.index:
                raise ValidationError("model names a symbol outside the universe",
                                      field="models", symbol=s, model=m.model_id)
            w[self.index[s]] = float(v)
        return w

    # ------------------------------------------------------------------ one account

    def solve(self, acc: Account) -> AccountResult:
        """The account's orders and reasons; a bad account is reported, never raised
        (``ERROR:<type>``), so one account cannot stop a batch."""
        try:
            return self._solve(acc)
        except KeelError as exc:
            return AccountResult(acc.account_id, (), (f"ERROR:{type(exc).__name__}",),
                                 error=str(exc))

    def _solve(self, acc: Account) -> AccountResult:
        sh = self.shared
        if acc.model_id not in self.model_w:
            raise ValidationError("unknown model", field="model_id", value=acc.model_id,
                                  account=acc.account_id)
        for s in acc.holdings:
            if s not in self.index:
                raise ValidationError("holding outside the universe (no price)",
                                      field="holdings", symbol=s, account=acc.account_id)
        held_idx = np.array([self.index[s] for s in acc.holdings], dtype=np.int64)
        qty = np.zeros(self.n)
        qty[held_idx] = [float(q) for q in acc.holdings.values()]
        nav = acc.cash + sum((q * sh.prices[s] for s, q in acc.holdings.items()), ZERO)
        if nav <= 0:
            return AccountResult(acc.account_id, (), ("EMPTY_ACCOUNT",), nav=nav)
        w0 = qty * self.px / float(nav)
        bm = self.budget * self.model_w[acc.model_id]
        band = float(acc.drift_band)
        no_hold = self._mask(acc.no_hold)
        no_buy = self._mask(acc.no_buy)
        out = np.abs(w0 - bm) > band
        held_forbidden = no_hold & (qty > 0)
        idle = (1.0 - float(w0.sum())) - (1.0 - self.budget) > band
        if not out.any() and not held_forbidden.any() and not idle:
            return AccountResult(acc.account_id, (), ("IN_BAND",), nav=nav)
        reasons = [f"DRIFT:{int(out.sum())}"] if out.any() else []
        if idle:
            reasons.append("CASH_DRIFT")
        if held_forbidden.any():
            reasons.append(f"RESTRICTED_HELD:{int(held_forbidden.sum())}")
        touches = (no_hold & (bm > 0)).any() or (no_buy & (bm > w0 + 1e-12)).any()
        if not acc.tax_aware and not touches:
            target, path = bm, "model"
            reasons.append("TARGET_MODEL")
        else:
            target, codes = self._qp(acc, w0, bm, band, no_hold, no_buy)
            path = "qp"
            reasons += codes
        return self._orders(acc, target, w0, nav, reasons, path)

    def _mask(self, names: frozenset[str]) -> np.ndarray:
        m = np.zeros(self.n, dtype=bool)
        for s in names:
            i = self.index.get(s)
            if i is not None:
                m[i] = True
        return m

    def _qp(self, acc: Account, w0: np.ndarray, bm: np.ndarray, band: float,
            no_hold: np.ndarray, no_buy: np.ndarray) -> tuple[np.ndarray, list[str]]:
        lo = np.maximum(bm - band, 0.0)
        hi = bm + band
        hi = np.where(no_buy, np.minimum(hi, w0), hi)
        hi = np.where(no_hold, 0.0, hi)
        lo = np.minimum(lo, hi)
        self.bounds.lower, self.bounds.upper = lo, hi
        rates = np.zeros(self.n)
        st = self.shared.settings
        if acc.tax_aware and acc.lots:
            r = sell_tax_rates(acc.lots, self.shared.prices, self.shared.trade_date,
                               st.lot_method, st.short_term_rate, st.long_term_rate)
            for sym, v in r.items():
                rates[self.index[sym]] = v
        self.tax.set_rates(rates)
        inputs = self.inputs.with_(current=w0, benchmark=bm)
        res = self.problem.solve(inputs)
        status = str(res.status)
        codes = [f"TARGET_QP:{status.upper()}"]
        if res.status.name.startswith("HOLD"):
            codes.append("HELD:SOLVER_FAILED")
            return w0, codes
        codes += [f"BINDING_{b.name}" for b in res.binding]
        w = np.clip(res.weights.to_numpy(dtype=np.float64), 0.0, None)
        return w, codes

    def _orders(self, acc: Account, target: np.ndarray, w0: np.ndarray, nav: Decimal,
                reasons: list[str], path: str) -> AccountResult:
        from keel.portfolio.book import Holding, LedgerState
        from keel.portfolio.rebalance import rebalance

        sh = self.shared
        names = sorted({self.shared.symbols[i] for i in np.flatnonzero(target > 0)}
                       | set(acc.holdings))
        targets = {s: Decimal(repr(float(target[self.index[s]]))).quantize(_Q)
                   for s in names}
        prices = {s: sh.prices[s] for s in names}
        state = LedgerState(cash=acc.cash, holdings={
            s: Holding(q, sh.prices[s], sh.prices[s]) for s, q in acc.holdings.items()})
        blocked: set[str] = set()
        wash: list[str] = []
        for _ in range(2):  # a blocked wash sale re-plans once without that symbol
            sel = None if not blocked else [s for s in names if s not in blocked]
            plan = rebalance(targets, prices, state, self.registry, now=sh.now,
                             config=self.rb_config, names=sel)
            orders = [(t.symbol, t.side, int(t.qty)) for t in plan.trades
                      if not (t.side is Side.BUY and (t.symbol in acc.no_buy
                                                      or t.symbol in acc.no_hold))]
            gains, washes = self._tax(acc, orders)
            if washes and sh.settings.wash_sale is WashSalePolicy.BLOCK and not blocked:
                blocked = set(washes)
                continue
            wash = washes
            break
        codes = list(reasons)
        codes += [f"{k}:{v}" for k, v in sorted(Counter(
            str(r.value) for r in plan.skipped.values()).items())]
        if blocked:
            codes += [f"WASH_SALE_BLOCKED:{s}" for s in sorted(blocked)]
        if wash:
            codes += [f"WASH_SALE_FLAG:{s}" for s in sorted(wash)]
        if not orders:
            codes.append("NO_ORDERS")
        return AccountResult(acc.account_id, tuple(orders), tuple(codes), nav=nav, path=path,
                             gains=gains, wash_sales=tuple(sorted(wash or blocked)))

    def _tax(self, acc: Account, orders: list[tuple[str, Side, int]]
             ) -> tuple[Gains, list[str]]:
        """Realised gains of the planned sells (lot relief) and the symbols whose loss sale
        meets a lot bought in the 30 days before, or whose planned buy comes within 30 days
        after an earlier loss sale of the account (the sales history)."""
        if not acc.lots and not acc.loss_sales:
            return Gains(), []
        sh = self.shared
        lots: tuple[TaxLot, ...] = acc.lots
        total = Gains()
        washes: list[str] = []
        day = sh.trade_date
        for sym, side, q in orders:
            if side is not Side.SELL or not acc.lots:
                continue
            method = sh.settings.lot_method
            if method is LotMethod.SPECIFIC:  # the batch names lots as HIFO would
                method = LotMethod.HIFO
            sale = sell(lots, sym, q, sh.prices[sym], day, method)
            lots = sale.remaining
            total = total + sale.gains
            loss = sum((r.gain for r in sale.reliefs if r.gain < 0), ZERO)
            buys = [b for b in recent_buys(sale.remaining, day) if b[0] == sym]
            if wash_sale_conflicts([(sym, day, loss)], buys):
                washes.append(sym)
        if acc.loss_sales:
            planned = [(sym, day) for sym, side, _ in orders if side is Side.BUY]
            washes += sorted({w.symbol for w in wash_sale_conflicts(acc.loss_sales, planned)}
                             - set(washes))
        return total, washes


# --------------------------------------------------------------------------- chunks

_CACHE: dict[str, AccountSolver] = {}


def solve_chunk(shared: Shared, accounts: list[Account]) -> list[AccountResult]:
    """Solve a chunk of accounts (the one function local processes and Ray both run).

    The process keeps one :class:`AccountSolver` per batch token (universe, registry,
    models); its QP is rebuilt at the start of every chunk, so a chunk's answer depends only
    on the chunk, never on which chunks the worker solved before (local and Ray agree)."""
    solver = _CACHE.get(shared.token)
    if solver is None:
        _CACHE.clear()
        solver = _CACHE[shared.token] = AccountSolver(shared)
    solver.reset()
    return [solver.solve(a) for a in accounts]
