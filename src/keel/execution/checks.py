"""Pre-trade checks, the governance chain and circuit breakers of the order manager.

A check is one small object with ``check(order, ctx)`` that raises
:class:`~keel.errors.OrderRejected` with a stable ``reason_code`` (``MAX_NOTIONAL``,
``MAX_QTY``, ``PRICE_COLLAR``, ``POSITION_LIMIT``, ``RESTRICTED``, ``GOVERNANCE``, ``HALTED``)
naming the field, symbol and value. Checks combine in a list.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from keel.errors import OrderRejected, ValidationError
from keel.types import ZERO, ChildOrder, Order, to_decimal


@dataclass(frozen=True)
class GateContext:
    """What a check may look at for one order.

    Attributes:
        reference_price: last known price of the symbol (currency/share), None if unknown.
        position: current signed position in shares.
        open_qty: signed quantity still working or scheduled (not yet filled) in the symbol.
        now: UTC time of the check.
    """

    reference_price: Decimal | None
    position: Decimal
    open_qty: Decimal
    now: datetime
    extra: dict[str, Any] = field(default_factory=dict)


class PreTradeCheck(Protocol):
    def check(self, order: Order | ChildOrder, ctx: GateContext) -> None:
        """Raise ``OrderRejected`` when ``order`` must not go out."""
        ...


def _price(order: Order | ChildOrder, ctx: GateContext) -> Decimal | None:
    return order.limit_price if order.limit_price is not None else ctx.reference_price


@dataclass(frozen=True)
class MaxQty:
    """Refuse an order above ``limit`` shares."""

    limit: Decimal

    def check(self, order: Order | ChildOrder, ctx: GateContext) -> None:
        if order.qty > to_decimal(self.limit, "limit"):
            raise OrderRejected("order quantity above the limit", reason_code="MAX_QTY",
                                field="qty", symbol=order.symbol, value=order.qty,
                                limit=self.limit)


@dataclass(frozen=True)
class MaxNotional:
    """Refuse an order worth more than ``limit`` currency (limit price, else reference)."""

    limit: Decimal

    def check(self, order: Order | ChildOrder, ctx: GateContext) -> None:
        px = _price(order, ctx)
        if px is None:
            raise OrderRejected("no price to value the order", reason_code="NO_PRICE",
                                field="reference_price", symbol=order.symbol)
        notional = order.qty * px
        if notional > to_decimal(self.limit, "limit"):
            raise OrderRejected("order notional above the limit", reason_code="MAX_NOTIONAL",
                                field="notional", symbol=order.symbol, value=notional,
                                limit=self.limit)


@dataclass(frozen=True)
class PriceCollar:
    """Refuse a limit price more than ``max_bps`` away from the reference price."""

    max_bps: float

    def check(self, order: Order | ChildOrder, ctx: GateContext) -> None:
        if order.limit_price is None or ctx.reference_price is None:
            return
        dev = abs(order.limit_price / ctx.reference_price - 1) * 10_000
        if dev > Decimal(repr(float(self.max_bps))):
            raise OrderRejected("limit price outside the collar", reason_code="PRICE_COLLAR",
                                field="limit_price", symbol=order.symbol,
                                value=order.limit_price, reference=ctx.reference_price)


@dataclass(frozen=True)
class PositionLimit:
    """Refuse an order whose post-trade |position| (incl. open orders) exceeds the limit.

    ``limits`` maps symbol to a share limit; ``default`` applies to other symbols (None: none).
    """

    limits: Mapping[str, Decimal] = field(default_factory=dict)
    default: Decimal | None = None

    def check(self, order: Order | ChildOrder, ctx: GateContext) -> None:
        limit = self.limits.get(order.symbol, self.default)
        if limit is None:
            return
        post = ctx.position + ctx.open_qty + order.signed_qty
        if abs(post) > to_decimal(limit, "limit"):
            raise OrderRejected("post-trade position above the limit",
                                reason_code="POSITION_LIMIT", field="position",
                                symbol=order.symbol, value=post, limit=limit)


@dataclass(frozen=True)
class RestrictedList:
    """Refuse any order in a restricted symbol."""

    symbols: frozenset[str]

    def check(self, order: Order | ChildOrder, ctx: GateContext) -> None:
        if order.symbol in self.symbols:
            raise OrderRejected("symbol is restricted", reason_code="RESTRICTED",
                                field="symbol", symbol=order.symbol, value=order.symbol)


# --------------------------------------------------------------------------- governance


@runtime_checkable
class GovernanceRule(Protocol):
    """Anything with ``evaluate(order, ctx)``; see :func:`run_governance` for the answers."""

    def evaluate(self, order: Any, ctx: Any) -> Any:
        ...


def run_governance(rules: Iterable[GovernanceRule], order: Order | ChildOrder,
                   ctx: GateContext) -> None:
    """Run each rule; refuse the order on the first "no".

    A rule says no by raising ``OrderRejected``, returning ``False``, or returning an object
    whose ``approved`` / ``allowed`` / ``ok`` attribute is false (its ``reason`` or
    ``reason_code`` is reported). ``None`` or ``True`` means yes.
    """
    for rule in rules:
        answer = rule.evaluate(order, ctx)
        if answer is None or answer is True:
            continue
        if answer is False:
            ok, reason = False, type(rule).__name__
        else:
            ok = True
            for attr in ("approved", "allowed", "ok"):
                if hasattr(answer, attr):
                    ok = bool(getattr(answer, attr))
                    break
            reason = str(getattr(answer, "reason", "") or getattr(answer, "reason_code", "")
                         or type(rule).__name__)
        if not ok:
            raise OrderRejected(f"refused by governance: {reason}", reason_code="GOVERNANCE",
                                field="governance", symbol=order.symbol,
                                value=type(rule).__name__)


@dataclass(frozen=True)
class _GateAnswer:
    approved: bool
    reason: str


class PolicyGate:
    """The policy layer's governance chain as one rule of the order manager's gate.

    ``chain`` is anything with ``evaluate_one(order, context) -> verdict`` whose verdict has
    ``approved``, ``qty``, ``reason_code`` and ``reason`` (``keel.policy.governance.
    GovernanceChain``); ``context(order, gate_ctx)`` builds the chain's context (its positions
    should include ``gate_ctx.open_qty``). The gate passes an order only when the chain approves
    it at its full quantity: a resize down is a refusal naming the allowed quantity, because
    sizing belongs upstream (the policy layer resizes before scheduling; the gate enforces).
    """

    def __init__(self, chain: Any, context: Callable[[Order, GateContext], Any]) -> None:
        self.chain, self.context = chain, context

    def evaluate(self, order: Order | ChildOrder, ctx: GateContext) -> _GateAnswer:
        parent = order.as_order() if isinstance(order, ChildOrder) else order
        v = self.chain.evaluate_one(parent, self.context(parent, ctx))
        if v.approved and v.qty >= parent.qty:
            return _GateAnswer(True, "")
        return _GateAnswer(False, f"{v.reason_code}: {v.reason} (allowed qty {v.qty})")


# --------------------------------------------------------------------------- circuit breakers


class MoveBreaker:
    """Halts a symbol when its price moves more than ``max_move_bps`` within ``window``.

    Feed it with :meth:`on_price`; it answers True when the symbol must be halted.
    """

    def __init__(self, max_move_bps: float, window: timedelta) -> None:
        if max_move_bps <= 0 or window <= timedelta(0):
            raise ValidationError("max_move_bps and window must be > 0", field="max_move_bps",
                                  value=(max_move_bps, window))
        self.max_move_bps = max_move_bps
        self.window = window
        self._prices: dict[str, deque[tuple[datetime, float]]] = {}

    def on_price(self, symbol: str, price: float, ts: datetime) -> bool:
        q = self._prices.setdefault(symbol, deque())
        q.append((ts, float(price)))
        while q and q[0][0] < ts - self.window:
            q.popleft()
        lo = min(p for _, p in q)
        hi = max(p for _, p in q)
        return (hi / lo - 1.0) * 1e4 > self.max_move_bps


class RejectRateBreaker:
    """Halts a symbol when more than ``max_rate`` of its last ``window`` venue answers are
    rejects (after at least ``min_count`` answers)."""

    def __init__(self, max_rate: float = 0.5, window: int = 20, min_count: int = 5) -> None:
        if not 0 < max_rate <= 1 or window < 1 or min_count < 1:
            raise ValidationError("need 0 < max_rate <= 1, window >= 1, min_count >= 1",
                                  field="max_rate", value=(max_rate, window, min_count))
        self.max_rate, self.window, self.min_count = max_rate, window, min_count
        self._answers: dict[str, deque[bool]] = {}

    def on_answer(self, symbol: str, rejected: bool) -> bool:
        q = self._answers.setdefault(symbol, deque(maxlen=self.window))
        q.append(rejected)
        return len(q) >= self.min_count and sum(q) / len(q) > self.max_rate


def run_checks(checks: Iterable[PreTradeCheck], order: Order | ChildOrder,
               ctx: GateContext) -> None:
    """Every check in order; the first refusal raises."""
    for c in checks:
        c.check(order, ctx)


__all__ = ["ZERO", "GateContext", "GovernanceRule", "MaxNotional", "MaxQty", "MoveBreaker",
           "PolicyGate", "PositionLimit", "PreTradeCheck", "PriceCollar", "RejectRateBreaker",
           "RestrictedList", "run_checks", "run_governance"]
