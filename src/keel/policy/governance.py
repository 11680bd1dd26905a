"""Governance: an ordered chain of pre-trade rules, each approving, resizing or rejecting.

>>> chain = GovernanceChain.default()
>>> verdicts = chain.evaluate(orders, ctx)          # list[Verdict], one per order, same order
>>> sendable = [v.approved_order for v in verdicts if v.approved]

Orders are reviewed in the order given (put sells first), each against the book *projected*
by the orders approved before it, so concentration limits see the batch's cumulative effect.
For one order the rules run in chain order; each sees the quantity left by the previous one;
the first reject stops the chain. The execution layer's order manager calls the same chain
one order at a time (:meth:`GovernanceChain.evaluate_one`) with positions that include its
open orders.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Protocol

import numpy as np

from keel.policy.batch import BatchBook, batch_is_screenable
from keel.policy.regime import DEFAULT_MULTIPLIERS, Regime, RegimeDetector, RegimeReading
from keel.policy.rules import (
    CorrelationCluster,
    Drawdown,
    LiquidityParticipation,
    MarketHours,
    MinTradeValue,
    PositionLimit,
    PriceFreshness,
    RegimeSizing,
    SectorConcentration,
    VolatilityRegime,
    correlation_clusters,
)
from keel.policy.verdicts import (
    Action,
    GovernanceContext,
    Projection,
    RuleOutcome,
    Verdict,
    split_order,
)
from keel.types import ZERO, Order


class GovernanceRule(Protocol):
    """A pre-trade rule: ``review`` one order (at ``qty``) against the projected book."""

    @property
    def name(self) -> str: ...

    def review(self, order: Order, qty: Decimal, book: Projection,
               ctx: GovernanceContext) -> RuleOutcome: ...


class GovernanceChain:
    """An ordered list of :class:`GovernanceRule` applied to orders.

    Args:
        rules: the rules, in the order they run.
    """

    def __init__(self, rules: Iterable[GovernanceRule]) -> None:
        self.rules = list(rules)

    @classmethod
    def default(cls) -> GovernanceChain:
        """Market hours, price freshness (15 min), regime sizing, volatility regime, drawdown,
        position limit (10%), sector (30%), correlation cluster (0.7 / 40%), liquidity
        (5% ADV), min value ($1).

        Sizing rules come before the limits so an upsized order is still capped; the minimum
        trade value comes last so a resize that leaves dust is rejected.
        """
        return cls([MarketHours(), PriceFreshness(), RegimeSizing(), VolatilityRegime(), Drawdown(),
                    PositionLimit(), SectorConcentration(), CorrelationCluster(),
                    LiquidityParticipation(), MinTradeValue()])

    def evaluate(self, orders: Sequence[Order], ctx: GovernanceContext) -> list[Verdict]:
        """One :class:`Verdict` per order, in the same order. Pure: books nothing."""
        book = Projection(ctx)
        return [self._review(o, book, ctx) for o in orders]

    def clears(self, book: BatchBook, names: Sequence[int] | np.ndarray,
               signed_qty: Sequence[float] | np.ndarray) -> bool:
        """True when every order (name index ``names[i]``, signed units ``signed_qty[i]``,
        in review order) surely passes every rule unchanged: :meth:`evaluate` would then
        approve each at its quantity. False means "not sure" (a rule near or past its
        limit, or a rule without a float screen): run :meth:`evaluate`. See
        :mod:`keel.policy.batch`. Instrument registries are not screened (multiplier 1)."""
        screens = [getattr(r, "clears", None) for r in self.rules]
        if any(s is None for s in screens):
            return False
        for j, q in zip(names, signed_qty, strict=True):
            for screen in screens:
                if not screen(int(j), float(q), book):  # type: ignore[misc]
                    return False
            book.apply(int(j), float(q))
        return True

    def evaluate_one(self, order: Order, ctx: GovernanceContext) -> Verdict:
        """The verdict on a single order against ``ctx.positions``."""
        return self._review(order, Projection(ctx), ctx)

    def _review(self, order: Order, book: Projection, ctx: GovernanceContext) -> Verdict:
        if order.symbol not in ctx.prices:
            return Verdict(order, Action.REJECT, ZERO, "NO_PRICE",
                           "no price for the symbol in the governance context")
        if ctx.registry is not None and order.symbol not in ctx.registry:
            return Verdict(order, Action.REJECT, ZERO, "UNKNOWN_SYMBOL",
                           "symbol not in the instrument registry")
        qty = order.qty
        acted: list[RuleOutcome] = []
        for rule in self.rules:
            out = rule.review(order, qty, book, ctx)
            if out.action is Action.APPROVE:
                continue
            acted.append(out)
            if out.action is Action.REJECT:
                return Verdict(order, Action.REJECT, ZERO, out.reason_code, out.reason,
                               tuple(acted))
            qty = out.qty
        book.apply(order.symbol, qty * order.side.sign)
        if not acted or qty == order.qty:
            return Verdict(order, Action.APPROVE, qty, "APPROVED", "", tuple(acted))
        last = acted[-1]
        return Verdict(order, Action.RESIZE, qty, last.reason_code, last.reason, tuple(acted))


__all__ = [
    "DEFAULT_MULTIPLIERS", "Action", "BatchBook", "CorrelationCluster", "Drawdown",
    "GovernanceChain", "GovernanceContext", "GovernanceRule", "LiquidityParticipation",
    "MarketHours", "MinTradeValue", "PositionLimit", "PriceFreshness", "Projection", "Regime",
    "RegimeDetector", "RegimeReading", "RegimeSizing", "RuleOutcome", "SectorConcentration",
    "Verdict", "VolatilityRegime", "batch_is_screenable", "correlation_clusters",
    "split_order",
]
