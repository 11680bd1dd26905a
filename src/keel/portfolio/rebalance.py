"""Target weights -> orders: sells first, lot-rounded, never spending cash the account lacks.

>>> plan = rebalance(targets, prices, ledger.state, registry, now=clock.now())
>>> plan.orders          # tuple[keel.types.Order], sells then buys, deterministic ids

Weights are fractions of the *investable* capital: ``NAV x (1 - cash_buffer) - reserve``,
where NAV (currency) is cash plus positions valued at ``prices`` (held symbols without a price
are valued at the ledger's mark). Three modes (:class:`RebalanceMode`): ``FULL`` trades every
name to its target; ``INVEST_CASH`` only buys, deploying spare cash along the targets (most
underweight first); ``RAISE_CASH`` only sells, raising ``reserve`` (a pending withdrawal) from
the most overweight names first. Buys are budgeted at ``price x (1 + cost_buffer_bps)`` and
shrink lot by lot until they fit the cash on hand plus the proceeds of the planned sells, so
the plan never overspends at the given prices.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal, localcontext
from enum import StrEnum
from typing import Any

import pandas as pd

from keel.errors import ValidationError
from keel.portfolio.book import LedgerState
from keel.portfolio.instruments import InstrumentRegistry, Rounding
from keel.types import ZERO, Order, OrderType, Side, TimeInForce, ensure_utc, to_decimal

BPS = Decimal("0.0001")


class TargetSum(StrEnum):
    """How target weights must add up (within ``sum_tolerance``)."""

    EXACTLY_ONE = "exactly_one"
    AT_MOST_ONE = "at_most_one"
    ANY = "any"


class RebalanceMode(StrEnum):
    FULL = "full"
    INVEST_CASH = "invest_cash"
    RAISE_CASH = "raise_cash"


class SkipReason(StrEnum):
    """Why a name that needed a trade got no order."""

    BELOW_MIN_ORDER = "BELOW_MIN_ORDER"
    ROUNDS_TO_ZERO = "ROUNDS_TO_ZERO"
    NO_CASH = "NO_CASH"
    NOT_SELECTED = "NOT_SELECTED"


@dataclass(frozen=True)
class RebalanceConfig:
    """Frozen settings of :func:`rebalance`.

    Attributes:
        min_order_value: orders worth less (currency) are dropped.
        cash_buffer: fraction of NAV always left in cash.
        target_sum: rule the target weights must satisfy.
        sum_tolerance: slack on that rule (weight units).
        allow_short: accept negative targets and sells below zero.
        cost_buffer_bps: buys budgeted at ``price x (1 + bps/1e4)``, sells credited at
            ``price x (1 - bps/1e4)`` (room for spread and fees).
        strategy: tag written on the orders.
        id_prefix: prefix of the deterministic client order ids.
    """

    min_order_value: Decimal = Decimal(1)
    cash_buffer: Decimal = ZERO
    target_sum: TargetSum = TargetSum.AT_MOST_ONE
    sum_tolerance: Decimal = Decimal("1e-6")
    allow_short: bool = False
    cost_buffer_bps: Decimal = ZERO
    strategy: str = "rebalance"
    id_prefix: str = "rb"

    def __post_init__(self) -> None:
        for name in ("min_order_value", "cash_buffer", "sum_tolerance", "cost_buffer_bps"):
            v = to_decimal(getattr(self, name), name)
            if v < 0:
                raise ValidationError(f"{name} must be >= 0", field=name, value=v)
            object.__setattr__(self, name, v)
        if self.cash_buffer >= 1:
            raise ValidationError("cash_buffer must be < 1", field="cash_buffer",
                                  value=self.cash_buffer)
        object.__setattr__(self, "target_sum", TargetSum(self.target_sum))


@dataclass(frozen=True)
class PlannedTrade:
    """One order of a plan with its context; ``notional`` in currency at the plan price."""

    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    notional: Decimal
    weight_before: float
    weight_target: float
    weight_after: float


@dataclass(frozen=True)
class RebalancePlan:
    """What :func:`rebalance` decided. ``cash_after`` is estimated at the plan prices."""

    orders: tuple[Order, ...]
    trades: tuple[PlannedTrade, ...]
    skipped: dict[str, SkipReason]
    mode: RebalanceMode
    nav: Decimal
    cash_before: Decimal
    cash_after: Decimal
    buy_budget: Decimal
    reasons: tuple[str, ...] = field(default=())

    @property
    def buy_notional(self) -> Decimal:
        return sum((t.notional for t in self.trades if t.side is Side.BUY), ZERO)

    @property
    def sell_notional(self) -> Decimal:
        return sum((t.notional for t in self.trades if t.side is Side.SELL), ZERO)

    def to_frame(self) -> pd.DataFrame:
        """One row per order (client id, symbol, side, qty, price, notional, weights)."""
        rows = [{"client_order_id": o.client_order_id, "symbol": t.symbol,
                 "side": t.side.value, "qty": t.qty, "price": t.price, "notional": t.notional,
                 "weight_before": t.weight_before, "weight_target": t.weight_target,
                 "weight_after": t.weight_after}
                for o, t in zip(self.orders, self.trades, strict=True)]
        return pd.DataFrame(rows)


# --------------------------------------------------------------------------- validation


def validate_targets(targets: Mapping[str, Any], registry: InstrumentRegistry,
                     config: RebalanceConfig) -> dict[str, Decimal]:
    """Target weights as Decimals, checked against the registry and the sum rule."""
    out: dict[str, Decimal] = {}
    for sym, w in targets.items():
        registry.get(sym)  # unknown symbol -> ValidationError(field='symbol')
        d = to_decimal(w, "weight", symbol=sym)
        if d < 0 and not config.allow_short:
            raise ValidationError("negative target weight but shorts are not allowed",
                                  field="weight", symbol=sym, value=w)
        out[sym] = d
    total = sum(out.values(), ZERO)
    tol = config.sum_tolerance
    rule = config.target_sum
    if (rule is TargetSum.EXACTLY_ONE and abs(total - 1) > tol) or (
            rule is TargetSum.AT_MOST_ONE and total > 1 + tol):
        raise ValidationError(f"target weights sum to {total}, rule is {rule.value}",
                              field="targets", value=str(total))
    return out


def validate_prices(prices: Mapping[str, Any], symbols: Iterable[str],
                    state: LedgerState) -> dict[str, Decimal]:
    """Prices (> 0) for ``symbols``; held names without a price fall back to their mark."""
    out: dict[str, Decimal] = {}
    for sym, px in prices.items():
        d = to_decimal(px, "price", symbol=sym)
        if d <= 0:
            raise ValidationError("price must be > 0", field="price", symbol=sym, value=px)
        out[sym] = d
    for sym in symbols:
        if sym not in out:
            h = state.holdings.get(sym)
            if h is None:
                raise ValidationError("missing price", field="prices", symbol=sym)
            out[sym] = h.mark
    return out


# --------------------------------------------------------------------------- planning


def _fit_buys(buys: dict[str, Decimal], unit_cost: Mapping[str, Decimal],
              registry: InstrumentRegistry, budget: Decimal) -> dict[str, Decimal]:
    """Shrink buy quantities (lot-rounded down) until their cost fits ``budget``."""
    def cost(b: Mapping[str, Decimal]) -> Decimal:
        return sum((q * unit_cost[s] for s, q in b.items()), ZERO)

    if budget <= 0:
        return {}
    total = cost(buys)
    if total > budget:
        with localcontext() as ctx:
            ctx.rounding = ROUND_FLOOR
            f = budget / total
        buys = {s: registry.make_qty(s, q * f, Rounding.DOWN) for s, q in buys.items()}
    # Guard against the last rounding digit: take whole lots off the largest buy.
    while buys and cost(buys) > budget:
        s = max(buys, key=lambda k: (buys[k] * unit_cost[k], k))
        buys[s] = buys[s] - registry.get(s).lot_size
    return {s: q for s, q in buys.items() if q > 0}


def _client_ids(prefix: str, now: datetime, legs: list[tuple[str, Side, Decimal]]
                ) -> list[str]:
    h = hashlib.sha256(now.isoformat().encode())
    for sym, side, qty in legs:
        h.update(f"|{sym}|{side.value}|{qty}".encode())
    digest = h.hexdigest()[:16]
    return [f"{prefix}-{digest}-{i:03d}" for i in range(len(legs))]


def rebalance(targets: Mapping[str, Any], prices: Mapping[str, Any], state: LedgerState,
              registry: InstrumentRegistry, *, now: datetime,
              config: RebalanceConfig | None = None,
              mode: RebalanceMode = RebalanceMode.FULL, reserve: Any = 0,
              names: Iterable[str] | None = None) -> RebalancePlan:
    """Orders that move ``state`` toward ``targets`` at ``prices``.

    Args:
        targets: symbol -> weight (fraction of investable capital); held symbols absent from
            ``targets`` have target 0.
        prices: symbol -> price (> 0, currency per unit).
        state: the ledger state (``ledger.state``).
        registry: instrument specs (lot size, multiplier); unknown symbols are refused.
        now: UTC time stamped on the orders (from the caller's clock).
        config: :class:`RebalanceConfig`.
        mode: :class:`RebalanceMode`.
        reserve: cash (currency, >= 0) to set aside, e.g. a pending withdrawal; in
            ``RAISE_CASH`` mode the amount to raise.
        names: trade only these symbols (e.g. the drifted names of a ``RebalanceDecision``).

    Raises:
        ValidationError: unknown symbol, negative or missing price, weights breaking the sum
            rule, negative reserve. Nothing is booked either way: this is a pure function.
    """
    cfg = config or RebalanceConfig()
    mode = RebalanceMode(mode)
    now = ensure_utc(now, "now")
    reserve_d = to_decimal(reserve, "reserve")
    if reserve_d < 0:
        raise ValidationError("reserve must be >= 0", field="reserve", value=reserve)
    w = validate_targets(targets, registry, cfg)
    for sym in state.holdings:
        registry.get(sym)
    universe = sorted(set(w) | set(state.holdings))
    px = validate_prices(prices, universe, state)
    mult = {s: registry.multiplier(s) for s in universe}
    qty = {s: state.qty(s) for s in universe}
    value = {s: qty[s] * px[s] * mult[s] for s in universe}
    nav = state.cash + sum(value.values(), ZERO)
    if nav <= 0:
        raise ValidationError("net asset value must be > 0 to rebalance", field="nav",
                              value=str(nav))
    selected = set(universe) if names is None else set(names)
    investable = nav * (1 - cfg.cash_buffer) - reserve_d
    target_value = {s: w.get(s, ZERO) * investable for s in universe}
    buy_cost = {s: px[s] * mult[s] * (1 + cfg.cost_buffer_bps * BPS) for s in universe}
    sell_credit = {s: px[s] * mult[s] * (1 - cfg.cost_buffer_bps * BPS) for s in universe}
    keep_cash = nav * cfg.cash_buffer + reserve_d
    skipped: dict[str, SkipReason] = {}

    sells: dict[str, Decimal] = {}
    buys: dict[str, Decimal] = {}
    if mode is RebalanceMode.FULL:
        for s in universe:
            delta = (target_value[s] - value[s]) / (px[s] * mult[s])
            if delta < 0:
                q = qty[s] if w.get(s, ZERO) == 0 and qty[s] > 0 else \
                    registry.make_qty(s, -delta, Rounding.DOWN)
                if not cfg.allow_short and q > max(qty[s], ZERO):
                    q = max(qty[s], ZERO)
                sells[s] = q
            elif delta > 0:
                buys[s] = registry.make_qty(s, delta, Rounding.DOWN)
    elif mode is RebalanceMode.INVEST_CASH:
        spare = state.cash - keep_cash
        deficit = {s: max(target_value[s] - value[s], ZERO) for s in universe
                   if s in selected}
        total_def = sum(deficit.values(), ZERO)
        if spare > 0 and total_def > 0:
            pos_w = {s: max(w.get(s, ZERO), ZERO) for s in deficit}
            sw = sum(pos_w.values(), ZERO)
            for s, d in deficit.items():
                alloc = d * spare / total_def if total_def >= spare else \
                    d + (spare - total_def) * (pos_w[s] / sw if sw else ZERO)
                buys[s] = registry.make_qty(s, alloc / buy_cost[s], Rounding.DOWN)
    else:  # RAISE_CASH: fund `reserve` (and the buffer) by selling
        need = keep_cash - state.cash
        longs = {s: value[s] for s in universe if value[s] > 0 and s in selected}
        excess = {s: max(v - target_value[s], ZERO) for s, v in longs.items()}
        total_ex = sum(excess.values(), ZERO)
        rest = {s: longs[s] - excess[s] for s in longs}
        total_rest = sum(rest.values(), ZERO)
        if need > 0 and longs:
            for s in longs:
                raise_s = (excess[s] * need / total_ex if total_ex >= need else
                           excess[s] + (need - total_ex) * (rest[s] / total_rest
                                                            if total_rest else ZERO))
                q = registry.make_qty(s, raise_s / sell_credit[s], Rounding.UP)
                sells[s] = min(q, qty[s])

    def keep(side_map: dict[str, Decimal]) -> dict[str, Decimal]:
        out = {}
        for s, q in side_map.items():
            if s not in selected:
                skipped[s] = SkipReason.NOT_SELECTED
            elif q <= 0:
                skipped[s] = SkipReason.ROUNDS_TO_ZERO
            elif q * px[s] * mult[s] < cfg.min_order_value:
                skipped[s] = SkipReason.BELOW_MIN_ORDER
            else:
                out[s] = q
        return out

    sells = keep(sells)
    long_proceeds = sum((min(q, max(qty[s], ZERO)) * sell_credit[s]
                         for s, q in sells.items()), ZERO)
    budget = state.cash + long_proceeds - keep_cash
    wanted = keep(buys)
    fitted = _fit_buys(dict(wanted), buy_cost, registry, budget)
    for s in wanted:
        if s not in fitted:
            skipped[s] = SkipReason.NO_CASH
    buys = keep(fitted)

    legs = ([(s, Side.SELL, sells[s]) for s in sorted(sells)]
            + [(s, Side.BUY, buys[s]) for s in sorted(buys)])
    ids = _client_ids(cfg.id_prefix, now, legs)
    orders: list[Order] = []
    trades: list[PlannedTrade] = []
    cash_after = state.cash
    for cid, (s, side, q) in zip(ids, legs, strict=True):
        notional = q * px[s] * mult[s]
        signed = q if side is Side.BUY else -q
        cash_after -= signed * px[s] * mult[s]
        after = (qty[s] + signed) * px[s] * mult[s]
        orders.append(Order(client_order_id=cid, symbol=s, side=side, qty=q, created_at=now,
                            order_type=OrderType.MARKET, tif=TimeInForce.DAY,
                            strategy=cfg.strategy))
        trades.append(PlannedTrade(s, side, q, px[s], notional, float(value[s] / nav),
                                   float(w.get(s, ZERO)), float(after / nav)))
    for s in list(skipped):
        if s in sells or s in buys:
            del skipped[s]
    return RebalancePlan(orders=tuple(orders), trades=tuple(trades), skipped=skipped,
                         mode=mode, nav=nav, cash_before=state.cash, cash_after=cash_after,
                         buy_budget=budget)
