"""Tax lots, realised gains and the wash-sale guard (pure: no store, no clock).

* **Lot relief.** A sale relieves an account's lots of the symbol in one of three orders
  (:class:`LotMethod`): ``FIFO`` (oldest acquired first), ``HIFO`` (highest cost per share
  first: the smallest gain, the largest loss) or ``SPECIFIC`` (the lot ids the caller names,
  in that order). Ties (same date for FIFO, same cost for HIFO) break by acquired date, then
  lot id, so relief is deterministic. Quantities and money are exact ``Decimal``.
* **Realised gains.** Each relieved piece has proceeds ``qty x price``, basis
  ``qty x cost_per_share`` and gain ``proceeds - basis``; it is long-term when the holding
  period is more than one year: sold after the anniversary of the acquisition date
  (:func:`is_long_term`; a lot bought on 29 February has its anniversary on 28 February).
* **Wash sales.** A loss sale of a symbol is a wash sale when the same symbol is bought within
  30 calendar days before or after it (both ends inclusive: :func:`in_wash_window`).
  :func:`wash_sale_conflicts` lists them; what to do (block the loss sale or flag it) is the
  caller's policy (:class:`WashSalePolicy`).
* **Tax cost rates** for the optimizer (:func:`sell_tax_rates`): tax per unit of value sold,
  taken from the first lot the method would relieve (``gain / price x rate``), never below 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal

from keel.config import LotMethod, WashSalePolicy
from keel.errors import ValidationError
from keel.types import ZERO, to_decimal

WASH_DAYS = 30

__all__ = ["WASH_DAYS", "Gains", "LotMethod", "Relief", "Sale", "TaxLot", "WashSale",
           "WashSalePolicy", "anniversary", "in_wash_window", "is_long_term", "lots_by_symbol",
           "realised", "recent_buys", "relief_order", "sell", "sell_tax_rates",
           "wash_sale_conflicts"]


@dataclass(frozen=True)
class TaxLot:
    """Shares of ``symbol`` bought together: ``qty`` (> 0) at ``cost_per_share`` on
    ``acquired``."""

    lot_id: str
    symbol: str
    qty: Decimal
    cost_per_share: Decimal
    acquired: date

    def __post_init__(self) -> None:
        q = to_decimal(self.qty, "qty", symbol=self.symbol)
        c = to_decimal(self.cost_per_share, "cost_per_share", symbol=self.symbol)
        if q <= 0:
            raise ValidationError("lot qty must be > 0", field="qty", symbol=self.symbol,
                                  value=q, lot_id=self.lot_id)
        if c < 0:
            raise ValidationError("cost_per_share must be >= 0", field="cost_per_share",
                                  symbol=self.symbol, value=c, lot_id=self.lot_id)
        if not isinstance(self.acquired, date):
            raise ValidationError("acquired must be a date", field="acquired",
                                  value=self.acquired, lot_id=self.lot_id)
        object.__setattr__(self, "qty", q)
        object.__setattr__(self, "cost_per_share", c)

    @property
    def basis(self) -> Decimal:
        return self.qty * self.cost_per_share


@dataclass(frozen=True)
class Relief:
    """One lot (or part of it) relieved by a sale."""

    lot_id: str
    symbol: str
    qty: Decimal
    cost_per_share: Decimal
    acquired: date
    sold: date
    price: Decimal

    @property
    def proceeds(self) -> Decimal:
        return self.qty * self.price

    @property
    def basis(self) -> Decimal:
        return self.qty * self.cost_per_share

    @property
    def gain(self) -> Decimal:
        return self.proceeds - self.basis

    @property
    def long_term(self) -> bool:
        return is_long_term(self.acquired, self.sold)


@dataclass(frozen=True)
class Gains:
    """Realised gains (losses negative), split by holding period."""

    short_term: Decimal = ZERO
    long_term: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.short_term + self.long_term

    def __add__(self, other: Gains) -> Gains:
        return Gains(self.short_term + other.short_term, self.long_term + other.long_term)

    def tax(self, short_rate: float, long_rate: float) -> Decimal:
        """Tax on these gains at the two rates (a net loss gives a negative amount)."""
        return (self.short_term * to_decimal(short_rate, "short_term_rate")
                + self.long_term * to_decimal(long_rate, "long_term_rate"))


@dataclass(frozen=True)
class Sale:
    """What a sale relieved and the lots left of the account (every symbol)."""

    reliefs: tuple[Relief, ...]
    remaining: tuple[TaxLot, ...]

    @property
    def gains(self) -> Gains:
        return realised(self.reliefs)

    @property
    def qty(self) -> Decimal:
        return sum((r.qty for r in self.reliefs), ZERO)


def anniversary(d: date) -> date:
    """``d`` one year later (29 February -> 28 February)."""
    try:
        return d.replace(year=d.year + 1)
    except ValueError:
        return d.replace(year=d.year + 1, day=28)


def is_long_term(acquired: date, sold: date) -> bool:
    """Held more than one year: sold after the anniversary of ``acquired``."""
    return sold > anniversary(acquired)


def realised(reliefs: Iterable[Relief]) -> Gains:
    st, lt = ZERO, ZERO
    for r in reliefs:
        if r.long_term:
            lt += r.gain
        else:
            st += r.gain
    return Gains(st, lt)


def relief_order(lots: Iterable[TaxLot], method: LotMethod | str,
                 lot_ids: Sequence[str] | None = None) -> list[TaxLot]:
    """The lots in the order a sale relieves them (one symbol's lots)."""
    method = LotMethod(method)
    lots = list(lots)
    if method is LotMethod.FIFO:
        return sorted(lots, key=lambda x: (x.acquired, x.lot_id))
    if method is LotMethod.HIFO:
        return sorted(lots, key=lambda x: (-x.cost_per_share, x.acquired, x.lot_id))
    if not lot_ids:
        raise ValidationError("a specific-identification sale names its lots",
                              field="lot_ids", value=lot_ids)
    by_id = {x.lot_id: x for x in lots}
    if len(set(lot_ids)) != len(lot_ids):
        raise ValidationError("a lot is named twice", field="lot_ids", value=list(lot_ids))
    out = []
    for lid in lot_ids:
        if lid not in by_id:
            raise ValidationError("no such lot of the symbol", field="lot_ids", value=lid)
        out.append(by_id[lid])
    return out


def sell(lots: Iterable[TaxLot], symbol: str, qty: object, price: object, sold: date,
         method: LotMethod | str = LotMethod.FIFO,
         lot_ids: Sequence[str] | None = None) -> Sale:
    """Relieve ``qty`` shares of ``symbol`` sold at ``price`` on ``sold``.

    Raises:
        ValidationError: qty <= 0, price < 0, more shares than the lots hold (or than the
            named lots hold, for ``SPECIFIC``), an unknown lot id. Nothing is changed: the
            input lots are immutable and a new tuple is returned.
    """
    q = to_decimal(qty, "qty", symbol=symbol)
    px = to_decimal(price, "price", symbol=symbol)
    if q <= 0:
        raise ValidationError("sale qty must be > 0", field="qty", symbol=symbol, value=q)
    if px < 0:
        raise ValidationError("price must be >= 0", field="price", symbol=symbol, value=px)
    lots = list(lots)
    mine = [x for x in lots if x.symbol == symbol]
    order = relief_order(mine, method, lot_ids)
    available = sum((x.qty for x in order), ZERO)
    if q > available:
        raise ValidationError("sale exceeds the shares in the lots", field="qty",
                              symbol=symbol, value=q, available=available)
    left = q
    reliefs: list[Relief] = []
    after: dict[str, TaxLot | None] = {}
    for lot in order:
        if left <= 0:
            break
        take = min(lot.qty, left)
        reliefs.append(Relief(lot.lot_id, symbol, take, lot.cost_per_share, lot.acquired,
                              sold, px))
        after[lot.lot_id] = replace(lot, qty=lot.qty - take) if take < lot.qty else None
        left -= take
    remaining = []
    for x in lots:
        if x.symbol == symbol and x.lot_id in after:
            kept = after[x.lot_id]
            if kept is not None:
                remaining.append(kept)
        else:
            remaining.append(x)
    return Sale(tuple(reliefs), tuple(remaining))


def lots_by_symbol(lots: Iterable[TaxLot]) -> dict[str, Decimal]:
    """Shares per symbol the lots hold."""
    out: dict[str, Decimal] = {}
    for x in lots:
        out[x.symbol] = out.get(x.symbol, ZERO) + x.qty
    return out


# --------------------------------------------------------------------------- wash sales


def in_wash_window(loss_sale: date, buy: date) -> bool:
    """A buy on ``buy`` is within 30 days before or after a loss sale on ``loss_sale``."""
    return abs((buy - loss_sale).days) <= WASH_DAYS


@dataclass(frozen=True)
class WashSale:
    """A loss sale of ``symbol`` on ``sold`` and a buy of it on ``bought`` within 30 days."""

    symbol: str
    sold: date
    bought: date
    loss: Decimal


def wash_sale_conflicts(loss_sales: Iterable[tuple[str, date, Decimal]],
                        buys: Iterable[tuple[str, date]]) -> list[WashSale]:
    """Every (loss sale, buy) pair of one symbol within the window.

    Args:
        loss_sales: (symbol, sale date, loss amount as a negative gain).
        buys: (symbol, buy date).
    """
    by_sym: dict[str, list[date]] = {}
    for s, d in buys:
        by_sym.setdefault(s, []).append(d)
    out = []
    for s, sold, loss in loss_sales:
        if loss >= 0:
            continue
        for b in sorted(by_sym.get(s, [])):
            if in_wash_window(sold, b):
                out.append(WashSale(s, sold, b, loss))
    return out


def recent_buys(lots: Iterable[TaxLot], on: date) -> list[tuple[str, date]]:
    """(symbol, acquired) of the lots bought within the 30 days up to ``on``."""
    start = on - timedelta(days=WASH_DAYS)
    return [(x.symbol, x.acquired) for x in lots if start <= x.acquired <= on]


# --------------------------------------------------------------------------- optimizer input


def sell_tax_rates(lots: Iterable[TaxLot], prices: Mapping[str, Decimal | float], on: date,
                   method: LotMethod | str, short_rate: float, long_rate: float
                   ) -> dict[str, float]:
    """Tax per unit of value sold, per symbol: the first lot the method relieves,
    ``max(price - cost, 0) / price x (short or long rate)`` (0 for a loss: the convex term
    never rewards a sale; harvesting losses is a decision of its own).

    ``SPECIFIC`` has no order before the caller names the lots, so it is priced as HIFO
    (the order a tax-aware manager would name them in)."""
    method = LotMethod(method)
    if method is LotMethod.SPECIFIC:
        method = LotMethod.HIFO
    groups: dict[str, list[TaxLot]] = {}
    for x in lots:
        groups.setdefault(x.symbol, []).append(x)
    out: dict[str, float] = {}
    for s, mine in groups.items():
        px = float(prices[s])
        if px <= 0:
            raise ValidationError("price must be > 0", field="prices", symbol=s, value=px)
        first = relief_order(mine, method)[0]
        rate = long_rate if is_long_term(first.acquired, on) else short_rate
        out[s] = max(px - float(first.cost_per_share), 0.0) / px * rate
    return out
