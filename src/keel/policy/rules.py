"""Pre-trade governance rules. Each reviews one order against the projected book and returns
a :class:`~keel.policy.verdicts.RuleOutcome`: approve, resize (new quantity) or reject.

Exposure rules (position, sector, cluster, drawdown, volatility, regime) only ever touch the
*risk-increasing* part of an order: the part that reduces an existing position always passes.
Resized quantities are rounded down to the instrument's lot; a resize to zero is a reject.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import numpy as np

from keel.policy import sessions
from keel.policy.batch import BatchBook
from keel.policy.regime import DEFAULT_MULTIPLIERS, Regime, RegimeDetector, RegimeReading
from keel.policy.triggers import at_least
from keel.policy.verdicts import (
    Action,
    GovernanceContext,
    Projection,
    RuleOutcome,
    split_order,
)
from keel.types import ZERO, Order, to_decimal, to_qty


def _approve(rule: str, qty: Decimal, code: str = "OK") -> RuleOutcome:
    return RuleOutcome(rule, Action.APPROVE, qty, code)


def _reject(rule: str, code: str, reason: str) -> RuleOutcome:
    return RuleOutcome(rule, Action.REJECT, ZERO, code, reason)


def _resized(rule: str, order: Order, qty: Decimal, new_qty: Decimal, ctx: GovernanceContext,
             code: str, reason: str) -> RuleOutcome:
    new_qty = ctx.round_qty(order.symbol, max(new_qty, ZERO))
    if new_qty >= qty:
        return _approve(rule, qty)
    if new_qty <= 0:
        return _reject(rule, code, reason)
    return RuleOutcome(rule, Action.RESIZE, new_qty, code, reason)


def _cap_increase(rule: str, order: Order, qty: Decimal, book: Projection,
                  ctx: GovernanceContext, room_value: Decimal, code: str,
                  reason: str) -> RuleOutcome:
    """Allow the reducing part plus as much increase as ``room_value`` (currency) buys."""
    reduce, inc = split_order(order, qty, book.qty.get(order.symbol, ZERO))
    if inc == 0:
        return _approve(rule, qty)
    unit = ctx.prices[order.symbol] * ctx.multiplier(order.symbol)
    max_inc = max(room_value, ZERO) / unit
    if inc <= max_inc:
        return _approve(rule, qty)
    return _resized(rule, order, qty, reduce + max_inc, ctx, code, reason)


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class MarketHours:
    """Rejects orders while the exchange is closed; instruments trading 24/7 are exempt."""

    calendar: str = "XNYS"
    name: str = "MarketHours"

    def review(self, order: Order, qty: Decimal, book: Projection,
               ctx: GovernanceContext) -> RuleOutcome:
        reg = ctx.registry
        if reg is not None and order.symbol in reg and reg.get(order.symbol).trades_24_7:
            return _approve(self.name, qty)
        if sessions.is_open(ctx.now, self.calendar):
            return _approve(self.name, qty)
        return _reject(self.name, "MARKET_CLOSED",
                       f"{self.calendar} is closed at {ctx.now.isoformat()}")


@dataclass(frozen=True)
class PriceFreshness:
    """Rejects orders priced from a stale price: older than ``max_age`` at ``ctx.now``
    (code ``STALE_PRICE``), or with no observation time when ``ctx.price_times`` is given.
    A price is never silently replaced by an older one (the last close): it is refused here.
    Without ``ctx.price_times`` the caller vouches for the prices and the rule approves.
    At exactly ``max_age`` the price is still fresh."""

    max_age: timedelta = timedelta(minutes=15)
    name: str = "PriceFreshness"

    def review(self, order: Order, qty: Decimal, book: Projection,
               ctx: GovernanceContext) -> RuleOutcome:
        if ctx.price_times is None:
            return _approve(self.name, qty)
        t = ctx.price_times.get(order.symbol)
        if t is None:
            return _reject(self.name, "STALE_PRICE", "no observation time for the price")
        age = ctx.now - t
        if age > self.max_age:
            return _reject(self.name, "STALE_PRICE",
                           f"price is {age} old (limit {self.max_age}), observed {t.isoformat()}")
        return _approve(self.name, qty)


@dataclass(frozen=True)
class MinTradeValue:
    """Rejects orders worth less than ``min_value`` (currency)."""

    min_value: Decimal = Decimal(1)
    name: str = "MinTradeValue"

    def review(self, order: Order, qty: Decimal, book: Projection,
               ctx: GovernanceContext) -> RuleOutcome:
        value = abs(book.value(order.symbol, qty))
        if value >= self.min_value:
            return _approve(self.name, qty)
        return _reject(self.name, "MIN_TRADE_VALUE",
                       f"order worth {value:.2f} < minimum {self.min_value}")

    def clears(self, j: int, signed_qty: float, book: BatchBook) -> bool:
        """Float screen (see :mod:`keel.policy.batch`): surely worth the minimum."""
        value = abs(signed_qty) * book.prices[j]
        return bool(value * (1.0 - 1e-6) >= float(self.min_value))


@dataclass(frozen=True)
class PositionLimit:
    """Caps each position at ``max_weight`` of NAV (absolute value, after the trade)."""

    max_weight: float = 0.10
    name: str = "PositionLimit"

    def review(self, order: Order, qty: Decimal, book: Projection,
               ctx: GovernanceContext) -> RuleOutcome:
        cap = ctx.nav * to_decimal(self.max_weight, "max_weight")
        room = cap - abs(book.value(order.symbol))
        reduce, _ = split_order(order, qty, book.qty.get(order.symbol, ZERO))
        if reduce:  # crossing zero: the new side starts from nothing
            room = cap
        return _cap_increase(self.name, order, qty, book, ctx, room, "POSITION_LIMIT",
                             f"position would exceed {self.max_weight:.0%} of NAV")

    def clears(self, j: int, signed_qty: float, book: BatchBook) -> bool:
        """Float screen (see :mod:`keel.policy.batch`): surely inside the cap."""
        reduces, only_reduces, inc = book.split(j, signed_qty)
        if only_reduces:
            return True
        cap = book.nav * self.max_weight
        room = cap if reduces else cap - abs(book.held[j] * book.prices[j])
        return bool(inc * book.prices[j] <= room - book.margin)


@dataclass(frozen=True)
class SectorConcentration:
    """Caps the gross value of each sector at ``cap`` of NAV (``Unknown`` exempt by default)."""

    cap: float = 0.30
    exempt: tuple[str, ...] = ("Unknown",)
    name: str = "SectorConcentration"

    def review(self, order: Order, qty: Decimal, book: Projection,
               ctx: GovernanceContext) -> RuleOutcome:
        sector = ctx.sector(order.symbol)
        if sector in self.exempt:
            return _approve(self.name, qty)
        room = ctx.nav * to_decimal(self.cap, "cap") - book.group_gross("sector", ctx.sector,
                                                                    sector)
        return _cap_increase(self.name, order, qty, book, ctx, room, "SECTOR_CAP",
                             f"sector {sector} would exceed {self.cap:.0%} of NAV")

    def clears(self, j: int, signed_qty: float, book: BatchBook) -> bool:
        """Float screen (see :mod:`keel.policy.batch`): exempt, or surely inside the cap."""
        sector = book.sector(j)
        if sector in self.exempt:
            return True
        _, only_reduces, inc = book.split(j, signed_qty)
        if only_reduces:
            return True
        room = book.nav * self.cap - book.sector_gross[sector]
        return bool(inc * book.prices[j] <= room - book.margin)


def correlation_clusters(corr: np.ndarray, threshold: float = 0.7) -> np.ndarray:
    """Cluster labels (1..k) from complete-linkage clustering on ``1 - corr``, cut at
    ``1 - threshold``: every pair inside a cluster has correlation >= ``threshold``."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = corr.shape[0]
    if n == 1:
        return np.ones(1, dtype=int)
    c = np.nan_to_num(np.asarray(corr, dtype=np.float64), nan=0.0)
    dist = np.clip(1.0 - (c + c.T) / 2.0, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    z = linkage(squareform(dist, checks=False), method="complete")
    return fcluster(z, t=1.0 - threshold + 1e-12, criterion="distance")


@dataclass(frozen=True)
class CorrelationCluster:
    """Caps the gross value of each correlation cluster at ``cap`` of NAV.

    Clusters: complete linkage on ``1 - correlation`` cut so that every pair in a cluster
    correlates above ``threshold`` (``scipy.cluster.hierarchy``). Symbols without
    correlation data are their own cluster. Without ``ctx.correlation`` the rule rejects
    risk-increasing orders (code ``NO_CORRELATION``).
    """

    threshold: float = 0.7
    cap: float = 0.40
    name: str = "CorrelationCluster"
    _cache: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    def clusters(self, ctx: GovernanceContext) -> dict[str, int]:
        """Symbol -> cluster label for ``ctx.correlation`` (cached per correlation object)."""
        corr = ctx.correlation
        if self._cache.get("corr") is not corr or "labels" not in self._cache:
            labels: dict[str, int] = {}
            if corr is not None and not corr.empty:
                ks = correlation_clusters(corr.to_numpy(), self.threshold)
                labels = {str(s): int(k) for s, k in zip(corr.index, ks, strict=True)}
            self._cache.update(corr=corr, labels=labels)
        return self._cache["labels"]  # type: ignore[return-value]

    def review(self, order: Order, qty: Decimal, book: Projection,
               ctx: GovernanceContext) -> RuleOutcome:
        _, inc = split_order(order, qty, book.qty.get(order.symbol, ZERO))
        if inc == 0:
            return _approve(self.name, qty)
        if ctx.correlation is None:
            return _reject(self.name, "NO_CORRELATION", "no correlation data")
        labels = self.clusters(ctx)

        def cluster_of(sym: str) -> str | int:
            return labels.get(sym, sym)  # no data: a cluster of its own

        k = cluster_of(order.symbol)
        room = ctx.nav * to_decimal(self.cap, "cap") - book.group_gross(
            f"cluster{self.threshold}", cluster_of, k)
        return _cap_increase(self.name, order, qty, book, ctx, room, "CLUSTER_CAP",
                             f"correlation cluster {k} (with {order.symbol}) would exceed "
                             f"{self.cap:.0%} of NAV")


@dataclass(frozen=True)
class LiquidityParticipation:
    """Caps an order at ``max_participation`` of the symbol's ADV (units); no ADV -> reject."""

    max_participation: float = 0.05
    name: str = "LiquidityParticipation"

    def review(self, order: Order, qty: Decimal, book: Projection,
               ctx: GovernanceContext) -> RuleOutcome:
        adv = None if ctx.adv_shares is None else ctx.adv_shares.get(order.symbol)
        if adv is None or not np.isfinite(adv) or adv <= 0:
            return _reject(self.name, "NO_ADV", "no average daily volume for the symbol")
        # in Decimal: 100 x 0.29 is 29, where the float product is 28.999999999999996
        cap = to_qty(to_decimal(adv, "adv_shares", symbol=order.symbol)
                     * to_decimal(self.max_participation, "max_participation"),
                     symbol=order.symbol, field_name="adv_shares")
        if qty <= cap:
            return _approve(self.name, qty)
        return _resized(self.name, order, qty, cap, ctx, "LIQUIDITY",
                        f"order above {self.max_participation:.0%} of ADV {adv:,.0f}")


@dataclass(frozen=True)
class Drawdown:
    """Cuts gross exposure as drawdown deepens: full size up to ``soft``, a linear cut of the
    allowed gross (``max_gross`` x NAV) down to zero at ``hard``; at or past ``hard`` every
    risk-increasing order is rejected."""

    soft: float = 0.10
    hard: float = 0.20
    max_gross: float = 1.0
    name: str = "Drawdown"

    def review(self, order: Order, qty: Decimal, book: Projection,
               ctx: GovernanceContext) -> RuleOutcome:
        dd = ctx.drawdown
        _, inc = split_order(order, qty, book.qty.get(order.symbol, ZERO))
        if inc == 0 or dd <= self.soft:
            return _approve(self.name, qty)
        if at_least(dd, self.hard):
            return _reject(self.name, "DRAWDOWN_HARD",
                           f"drawdown {dd:.1%} at or past the {self.hard:.0%} hard limit")
        scale = (self.hard - dd) / (self.hard - self.soft)
        allowed = ctx.nav * to_decimal(self.max_gross * scale, "max_gross")
        return _cap_increase(self.name, order, qty, book, ctx, allowed - book.gross(),
                             "DRAWDOWN_CUT",
                             f"drawdown {dd:.1%}: gross capped at {self.max_gross * scale:.0%}")

    def clears(self, j: int, signed_qty: float, bb: BatchBook) -> bool:
        """Float screen (see :mod:`keel.policy.batch`): drawdown within ``soft``, or the
        order surely inside the cut gross."""
        dd = bb.drawdown
        _, only_reduces, inc = bb.split(j, signed_qty)
        if only_reduces or dd <= self.soft:
            return True
        if at_least(dd, self.hard):
            return False
        scale = (self.hard - dd) / (self.hard - self.soft)
        room = bb.nav * self.max_gross * scale - bb.gross
        return bool(inc * bb.prices[j] <= room - bb.margin)


@dataclass(frozen=True)
class VolatilityRegime:
    """Scales risk-increasing orders by ``target_vol / market_vol`` when the market's
    annualised volatility exceeds ``target_vol``; rejects them at ``halt_vol`` and above.
    Unknown market volatility is never taken as calm: risk-increasing orders are rejected
    (``NO_VOLATILITY``); reducing ones pass."""

    target_vol: float = 0.20
    halt_vol: float = 0.60
    name: str = "VolatilityRegime"

    def review(self, order: Order, qty: Decimal, book: Projection,
               ctx: GovernanceContext) -> RuleOutcome:
        v = ctx.market_vol
        reduce, inc = split_order(order, qty, book.qty.get(order.symbol, ZERO))
        if inc == 0:
            return _approve(self.name, qty)
        if v is None or not np.isfinite(v):
            return _reject(self.name, "NO_VOLATILITY", "no market volatility")
        if v <= self.target_vol:
            return _approve(self.name, qty)
        if at_least(v, self.halt_vol):
            return _reject(self.name, "VOL_HALT",
                           f"market vol {v:.0%} at or above {self.halt_vol:.0%}")
        f = to_decimal(self.target_vol / v, "volatility", symbol=order.symbol)
        return _resized(self.name, order, qty, reduce + inc * f, ctx, "VOL_SCALE",
                        f"market vol {v:.0%} above target {self.target_vol:.0%}")


@dataclass(frozen=True)
class RegimeSizing:
    """Sizes the risk-increasing part of orders by the market regime's multiplier (up or
    down; see :mod:`keel.policy.regime`). No market prices: approve unchanged."""

    detector: RegimeDetector = field(default_factory=RegimeDetector)
    multipliers: Mapping[Regime, float] = field(
        default_factory=lambda: dict(DEFAULT_MULTIPLIERS))
    name: str = "RegimeSizing"
    _cache: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    def reading(self, ctx: GovernanceContext) -> RegimeReading:
        """The regime of ``ctx.market_prices`` (cached per series object)."""
        mp = ctx.market_prices
        if self._cache.get("prices") is not mp or "reading" not in self._cache:
            assert mp is not None
            self._cache.update(prices=mp, reading=self.detector.detect(mp))
        return self._cache["reading"]  # type: ignore[return-value]

    def review(self, order: Order, qty: Decimal, book: Projection,
               ctx: GovernanceContext) -> RuleOutcome:
        if ctx.market_prices is None:
            return _approve(self.name, qty)
        reduce, inc = split_order(order, qty, book.qty.get(order.symbol, ZERO))
        if inc == 0:
            return _approve(self.name, qty)
        reading = self.reading(ctx)
        m = self.multipliers[reading.regime]
        if m == 1.0:
            return _approve(self.name, qty, f"REGIME_{reading.regime.name}")
        mult = to_decimal(m, "multiplier", symbol=order.symbol)
        new = ctx.round_qty(order.symbol, reduce + inc * mult)
        code = f"REGIME_{reading.regime.name}"
        reason = (f"{reading.regime.value} regime (trend {reading.trend_strength:.2f}, vol "
                  f"ratio {reading.vol_ratio:.2f}): size x{m}")
        if new <= 0:
            return _reject(self.name, code, reason)
        if new == qty:
            return _approve(self.name, qty, code)
        return RuleOutcome(self.name, Action.RESIZE, new, code, reason)

