"""Governance value types: the context rules read, the projected book, outcomes and verdicts.

Units: ``nav`` and values in currency; prices per unit; quantities in units (Decimal);
``adv_shares`` units per day; ``volatility`` daily fraction; ``market_vol`` annualised
fraction; ``drawdown`` fraction below the equity peak (0.12 = 12% down).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from typing import Any, Protocol

import numpy as np
import pandas as pd

from keel.errors import OrderRejected, ValidationError
from keel.types import ZERO, Order, ensure_utc, to_decimal

ONE = Decimal(1)


class InstrumentLookup(Protocol):
    """What governance needs of an instrument registry
    (:class:`keel.portfolio.instruments.InstrumentRegistry` fits; policy does not import it)."""

    def __contains__(self, symbol: object) -> bool: ...

    def multiplier(self, symbol: str) -> Decimal: ...

    def make_qty(self, symbol: str, qty: Any, rounding: Any = None) -> Decimal: ...

    def get(self, symbol: str) -> Any: ...  # a spec with .sector and .trades_24_7


class Action(StrEnum):
    APPROVE = "approve"
    RESIZE = "resize"
    REJECT = "reject"


@dataclass(frozen=True)
class RuleOutcome:
    """What one rule said about one order: the quantity it allows and why."""

    rule: str
    action: Action
    qty: Decimal
    reason_code: str
    reason: str = ""


@dataclass(frozen=True)
class Verdict:
    """The chain's final word on one order.

    Attributes:
        order: the order as submitted.
        action: APPROVE (unchanged), RESIZE (``qty`` smaller or larger) or REJECT.
        qty: the approved quantity (0 when rejected).
        reason_code: code of the rejecting rule, else of the last resizing rule, else
            ``APPROVED``.
        reason: its text.
        outcomes: every rule that resized or rejected, in chain order.
    """

    order: Order
    action: Action
    qty: Decimal
    reason_code: str
    reason: str
    outcomes: tuple[RuleOutcome, ...] = ()

    @property
    def approved(self) -> bool:
        return self.action is not Action.REJECT

    @property
    def approved_order(self) -> Order | None:
        """The order to send (resized if needed), or None when rejected."""
        if not self.approved:
            return None
        return self.order if self.qty == self.order.qty else self.order.with_changes(qty=self.qty)

    def raise_if_rejected(self) -> None:
        """Raise :class:`~keel.errors.OrderRejected` (with ``reason_code``) if rejected."""
        if not self.approved:
            raise OrderRejected(self.reason, reason_code=self.reason_code,
                                symbol=self.order.symbol, field="qty", value=self.order.qty,
                                client_order_id=self.order.client_order_id)


def _clean_prices(prices: Mapping[str, Any]) -> dict[str, Decimal]:
    out = {}
    for sym, px in prices.items():
        d = to_decimal(px, "price", symbol=sym)
        if d <= 0:
            raise ValidationError("price must be > 0", field="price", symbol=sym, value=px)
        out[sym] = d
    return out


@dataclass(frozen=True)
class GovernanceContext:
    """Everything governance rules may read. Optional inputs switch their rules off or make
    them reject (each rule documents which).

    Attributes:
        now: UTC time of the check.
        nav: net asset value (currency, > 0).
        prices: symbol -> price for every held and ordered symbol.
        positions: symbol -> signed quantity (or :class:`~keel.types.Position`) held before
            these orders; the order manager adds its open orders.
        registry: instrument specs (multiplier, lot size, asset class, sector).
        sectors: symbol -> sector (overrides the registry's).
        adv_shares: symbol -> average daily volume (units).
        volatility: symbol -> daily return volatility.
        correlation: symbols x symbols correlation matrix.
        market_prices: a market index level series (oldest first) for regime detection.
        market_vol: annualised realised volatility of the market.
        drawdown: current drawdown from the equity peak (fraction, >= 0).
        price_times: symbol -> UTC time each price was observed; with it the
            :class:`~keel.policy.rules.PriceFreshness` rule refuses prices older than its
            limit (and symbols without a time). ``None``: the caller vouches the prices are
            current (a backtest deciding at the bar it prices from).
    """

    now: datetime
    nav: Decimal
    prices: Mapping[str, Decimal]
    positions: Mapping[str, Decimal] = field(default_factory=dict)
    registry: InstrumentLookup | None = None
    sectors: Mapping[str, str] | None = None
    adv_shares: Mapping[str, float] | None = None
    volatility: Mapping[str, float] | None = None
    correlation: pd.DataFrame | None = None
    market_prices: pd.Series | None = None
    market_vol: float | None = None
    drawdown: float = 0.0
    price_times: Mapping[str, datetime] | None = None

    def __post_init__(self) -> None:
        _set = object.__setattr__
        _set(self, "now", ensure_utc(self.now, "now"))
        if self.price_times is not None:
            _set(self, "price_times", {s: ensure_utc(t, "price_times")
                                       for s, t in self.price_times.items()})
        nav = to_decimal(self.nav, "nav")
        if nav <= 0:
            raise ValidationError("nav must be > 0", field="nav", value=self.nav)
        _set(self, "nav", nav)
        _set(self, "prices", _clean_prices(self.prices))
        pos = {s: to_decimal(getattr(q, "qty", q), "qty", symbol=s)  # qty or a Position
               for s, q in self.positions.items()}
        for s, q in pos.items():
            if q != 0 and s not in self.prices:
                raise ValidationError("held symbol has no price", field="prices", symbol=s)
        _set(self, "positions", {s: q for s, q in pos.items() if q != 0})
        if not (np.isfinite(self.drawdown) and 0 <= self.drawdown <= 1):
            raise ValidationError("drawdown must be in [0, 1]", field="drawdown",
                                  value=self.drawdown)

    def multiplier(self, symbol: str) -> Decimal:
        if self.registry is not None and symbol in self.registry:
            return self.registry.multiplier(symbol)
        return ONE

    def sector(self, symbol: str) -> str:
        if self.sectors is not None and symbol in self.sectors:
            return str(self.sectors[symbol])
        if self.registry is not None and symbol in self.registry:
            return self.registry.get(symbol).sector
        return "Unknown"

    def round_qty(self, symbol: str, qty: Decimal) -> Decimal:
        """``qty`` rounded down to the instrument's lot (whole units without a registry)."""
        if self.registry is not None and symbol in self.registry:
            return self.registry.make_qty(symbol, qty, ROUND_DOWN)
        return qty.to_integral_value(rounding=ROUND_DOWN)

    @classmethod
    def from_market(cls, *, now: datetime, nav: Any, prices: Mapping[str, Any],
                    positions: Mapping[str, Any], market: Any,
                    registry: InstrumentLookup | None = None, drawdown: float = 0.0,
                    corr_window: int = 126, vol_window: int = 21,
                    price_times: Mapping[str, datetime] | None = None) -> GovernanceContext:
        """A context whose market inputs come from a :class:`~keel.data.market.MarketData`
        as of ``now``: ADV (shares), daily volatility, sectors, the correlation of the last
        ``corr_window`` returns, the cumulated market index and its annualised volatility
        over ``vol_window`` sessions (None with fewer than 3 returns: never 0).
        ``price_times`` as in the class."""
        view = market.as_of(now)
        rets = view.returns
        mret = view.market_returns
        index = (1.0 + mret).cumprod()
        mvol = float(mret.tail(vol_window).std() * np.sqrt(252.0)) if len(mret) > 2 else None
        return cls(now=now, nav=nav, prices=prices, positions=positions, registry=registry,
                   sectors=dict(view.sectors), adv_shares=view.latest("adv_shares").to_dict(),
                   volatility=view.latest("volatility").to_dict(),
                   correlation=rets.tail(corr_window).corr(), market_prices=index,
                   market_vol=mvol if mvol is not None and np.isfinite(mvol) else None,
                   drawdown=drawdown, price_times=price_times)


class Projection:
    """Positions as they will be after the orders approved so far in one evaluation.

    Group totals (gross value per sector, per cluster, overall) are built on first use and
    then kept up to date as orders are applied, so a batch costs O(orders), not O(orders x
    positions).
    """

    def __init__(self, ctx: GovernanceContext) -> None:
        self.ctx = ctx
        self.qty: dict[str, Decimal] = dict(ctx.positions)
        self._groups: dict[str, tuple[Callable[[str], Hashable], dict[Hashable, Decimal]]] = {}

    def value(self, symbol: str, qty: Decimal | None = None) -> Decimal:
        """Signed value (currency) of ``qty`` (default: the projected holding)."""
        q = self.qty.get(symbol, ZERO) if qty is None else qty
        return q * self.ctx.prices[symbol] * self.ctx.multiplier(symbol)

    def group_gross(self, grouping: str, key_of: Callable[[str], Hashable],
                    key: Hashable) -> Decimal:
        """Gross value (currency) of the names whose ``key_of(symbol) == key``."""
        if grouping not in self._groups:
            totals: dict[Hashable, Decimal] = defaultdict(lambda: ZERO)
            for s in self.qty:
                totals[key_of(s)] += abs(self.value(s))
            self._groups[grouping] = (key_of, totals)
        return self._groups[grouping][1][key]

    def gross(self) -> Decimal:
        return self.group_gross("__all__", _all, None)

    def apply(self, symbol: str, signed_qty: Decimal) -> None:
        before = abs(self.value(symbol))
        q = self.qty.get(symbol, ZERO) + signed_qty
        if q == 0:
            self.qty.pop(symbol, None)
        else:
            self.qty[symbol] = q
        delta = abs(self.value(symbol)) - before
        for key_of, totals in self._groups.values():
            totals[key_of(symbol)] += delta


def _all(_: str) -> None:
    return None


def split_order(order: Order, qty: Decimal, held: Decimal) -> tuple[Decimal, Decimal]:
    """(reducing part, increasing part) of trading ``qty`` on a holding of ``held`` units."""
    signed = qty * order.side.sign
    if held == 0 or (held > 0) == (signed > 0):
        return ZERO, qty
    reduce = min(qty, abs(held))
    return reduce, qty - reduce
