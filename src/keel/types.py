"""Immutable value types shared by every layer: orders, child orders, fills, positions, events.

Booked quantities and prices are ``Decimal`` (exact); times are UTC tz-aware ``datetime``.
Constructors coerce ``int``/``str``/``float`` to ``Decimal`` (floats through their shortest
``repr``, so ``0.1`` becomes ``Decimal('0.1')``) and refuse anything invalid with a
:class:`~keel.errors.ValidationError` naming the field and the value.

The money boundary lives here too: :func:`to_price`, :func:`to_qty` and :func:`to_money` are
the only way a float becomes money (an explicit grid and rounding mode, computed under the
pinned :data:`MONEY_CONTEXT`, never the ambient thread-global Decimal context), and
:func:`average_price` divides under the same context.
"""

from __future__ import annotations

import decimal
import math
import numbers
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Context, Decimal, InvalidOperation, localcontext
from enum import StrEnum
from typing import Any

from keel.errors import ValidationError

ZERO = Decimal(0)


# --------------------------------------------------------------------------- enums


class Side(StrEnum):
    """Direction of an order or fill."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for BUY, -1 for SELL."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY

    @classmethod
    def from_qty(cls, signed_qty: Decimal | float | int) -> Side:
        """BUY for a positive signed quantity, SELL for a negative one."""
        if signed_qty == 0:
            raise ValidationError("cannot take a side from a zero quantity", field="qty",
                                  value=signed_qty)
        return cls.BUY if signed_qty > 0 else cls.SELL


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(StrEnum):
    DAY = "DAY"
    GTC = "GTC"
    IOC = "IOC"  # immediate or cancel: fill what you can now, cancel the rest
    FOK = "FOK"  # fill or kill: all now or nothing
    OPG = "OPG"  # at the open
    CLS = "CLS"  # at the close


class OrderStatus(StrEnum):
    """Life cycle of an order. The legal transitions live in the order manager."""

    NEW = "NEW"  # created locally, not yet sent
    PENDING = "PENDING"  # sent, not yet acknowledged
    ACKNOWLEDGED = "ACKNOWLEDGED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_open(self) -> bool:
        return not self.is_terminal


_TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


class EventKind(StrEnum):
    """What a venue reports about an order (the keel view of a FIX ExecutionReport)."""

    ACK = "ACK"
    FILL = "FILL"  # a fill (partial or complete; see OrderEvent.leaves_qty)
    CANCELLED = "CANCELLED"
    REPLACED = "REPLACED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    CANCEL_REJECTED = "CANCEL_REJECTED"


# --------------------------------------------------------------------------- coercion helpers


def to_decimal(value: Any, field_name: str, *, symbol: str | None = None) -> Decimal:
    """Coerce ``value`` to a finite ``Decimal`` or raise ``ValidationError`` naming the field."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, float):  # float and np.float64 first: the hot path (no ABC check)
        if not math.isfinite(value):
            raise ValidationError("number must be finite", field=field_name, symbol=symbol,
                                  value=value)
        result = Decimal(repr(float(value)))
    elif isinstance(value, bool):
        raise ValidationError("expected a number, got a bool", field=field_name, symbol=symbol,
                              value=value)
    elif isinstance(value, numbers.Integral):  # int and numpy integers
        result = Decimal(int(value))
    elif isinstance(value, numbers.Real):  # float and numpy floats (float32 included)
        if not math.isfinite(value):
            raise ValidationError("number must be finite", field=field_name, symbol=symbol,
                                  value=value)
        result = Decimal(repr(float(value)))  # float(): numpy 2 scalars repr as np.float64(x)
    elif isinstance(value, str):
        if "_" in value:  # Decimal("1_90") reads 190: digit separators are not money
            raise ValidationError("not a number", field=field_name, symbol=symbol,
                                  value=value[:32])
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValidationError("not a number", field=field_name, symbol=symbol,
                                  value=value) from None
    else:
        raise ValidationError(f"expected a number, got {type(value).__name__}",
                              field=field_name, symbol=symbol, value=value)
    if not result.is_finite():
        raise ValidationError("number must be finite", field=field_name, symbol=symbol,
                              value=value)
    return result


# --------------------------------------------------------------------------- money boundary


class Rounding(StrEnum):
    """Decimal rounding modes, named (values are the ``decimal.ROUND_*`` constants)."""

    DOWN = decimal.ROUND_DOWN  # toward zero
    UP = decimal.ROUND_UP  # away from zero
    FLOOR = decimal.ROUND_FLOOR
    CEILING = decimal.ROUND_CEILING
    HALF_EVEN = decimal.ROUND_HALF_EVEN
    HALF_UP = decimal.ROUND_HALF_UP


#: The one Decimal context money arithmetic runs under, whatever the calling thread set:
#: 38 significant digits (what the store's NUMERIC(38, 12) columns hold), half-even, and
#: invalid operations, division by zero and overflow trapped. Entered with
#: ``decimal.localcontext(MONEY_CONTEXT)`` (see :func:`money_context`), never set globally.
MONEY_CONTEXT = Context(prec=38, rounding=decimal.ROUND_HALF_EVEN, Emin=-999_999,
                        Emax=999_999, traps=[InvalidOperation, decimal.DivisionByZero,
                                             decimal.Overflow])

#: Grid of a price, quantity or amount when no instrument gives one (the backtest's book,
#: analytics-sized fills): 1e-8, inside the 12 decimal places the store keeps exactly.
FINE_QUANTUM = Decimal("1e-8")


def money_context() -> AbstractContextManager[Context]:
    """``with money_context(): ...`` runs Decimal arithmetic under :data:`MONEY_CONTEXT`."""
    return localcontext(MONEY_CONTEXT)


def quantize_to(value: Decimal, step: Decimal, rounding: Rounding | str) -> Decimal:
    """``value`` rounded to a whole multiple of ``step`` (> 0) with ``rounding``, computed
    under :data:`MONEY_CONTEXT`."""
    mode = rounding.value if isinstance(rounding, Rounding) else Rounding(rounding).value
    with localcontext(MONEY_CONTEXT):
        return (value / step).to_integral_value(rounding=mode) * step


def _grid(step: Any, name: str, symbol: str | None) -> Decimal:
    if step is None:
        return FINE_QUANTUM
    d = to_decimal(step, name, symbol=symbol)
    if d <= 0:
        raise ValidationError(f"{name} must be > 0", field=name, symbol=symbol, value=step)
    return d


def to_price(value: Any, tick: Any = None, rounding: Rounding | str = Rounding.HALF_EVEN, *,
             symbol: str | None = None, field_name: str = "price") -> Decimal:
    """A price (> 0) on the ``tick`` grid: where a float becomes a price.

    Args:
        value: float, int, str or Decimal (floats through their shortest ``repr``).
        tick: the instrument's tick size (``InstrumentRegistry.make_price`` passes it);
            ``None`` is :data:`FINE_QUANTUM`.
        rounding: explicit mode; half-even by default.

    Raises:
        ValidationError: not a finite number, <= 0, or rounding to 0 on the grid.
    """
    p = to_decimal(value, field_name, symbol=symbol)
    if p <= 0:
        raise ValidationError(f"{field_name} must be > 0", field=field_name, symbol=symbol,
                              value=value)
    out = quantize_to(p, _grid(tick, "tick_size", symbol), rounding)
    if out <= 0:
        raise ValidationError("price rounds to zero at this tick size", field=field_name,
                              symbol=symbol, value=value)
    return out


def to_qty(value: Any, lot: Any = None, rounding: Rounding | str = Rounding.DOWN, *,
           symbol: str | None = None, field_name: str = "qty") -> Decimal:
    """A signed quantity (units) on the ``lot`` grid: where a float becomes a quantity.

    ``lot`` ``None`` is :data:`FINE_QUANTUM`; ``rounding`` defaults toward zero (never trade
    more than asked). A result of 0 is returned as is: the caller decides whether to skip.
    """
    q = to_decimal(value, field_name, symbol=symbol)
    return quantize_to(q, _grid(lot, "lot_size", symbol), rounding)


def to_money(value: Any, quantum: Any = None, rounding: Rounding | str = Rounding.HALF_EVEN,
             *, field_name: str = "amount") -> Decimal:
    """A signed currency amount on the ``quantum`` grid (``Decimal("0.01")`` for cents;
    ``None`` is :data:`FINE_QUANTUM`)."""
    return quantize_to(to_decimal(value, field_name), _grid(quantum, "quantum", None),
                       rounding)


def average_price(notional: Decimal, qty: Decimal, quantum: Any = None,
                  rounding: Rounding | str = Rounding.HALF_EVEN) -> Decimal:
    """``notional / qty`` (volume-weighted average price) under :data:`MONEY_CONTEXT`,
    rounded to ``quantum`` (``None``: :data:`FINE_QUANTUM`)."""
    if qty == 0:
        raise ValidationError("average price of a zero quantity", field="qty", value=qty)
    with localcontext(MONEY_CONTEXT):
        return quantize_to(notional / qty, _grid(quantum, "quantum", None), rounding)


def ensure_utc(ts: datetime, field_name: str = "timestamp") -> datetime:
    """Return ``ts`` converted to UTC; refuse naive datetimes (their time zone is unknowable)."""
    if not isinstance(ts, datetime):
        raise ValidationError("expected a datetime", field=field_name, value=ts)
    if ts.tzinfo is None or ts.tzinfo.utcoffset(ts) is None:
        raise ValidationError("naive datetime: a time zone is required", field=field_name,
                              value=ts)
    return ts.astimezone(UTC)


def _check_symbol(symbol: Any) -> str:
    if not isinstance(symbol, str) or not symbol.strip():
        raise ValidationError("symbol must be a non-empty string", field="symbol", value=symbol)
    return symbol


#: longest identifier (client order id, parent id, symbol) an order may carry, characters
MAX_ID_LEN = 128
#: longest free-text tag (``strategy``), characters
MAX_TEXT_LEN = 256


def check_text(value: Any, field_name: str, *, ident: bool = True,
               symbol: str | None = None) -> str:
    """Refuse a string a wire protocol could misread; return it unchanged.

    Identifiers (``ident=True``: ids, symbols) must be non-empty printable ASCII without spaces
    at either end, at most :data:`MAX_ID_LEN` characters; free text must be printable (no
    control character, SOH included) and encodable as UTF-8, at most :data:`MAX_TEXT_LEN`.
    So no field can smuggle a FIX ``<SOH>tag=value`` pair or break an encoder after the
    order was accepted. Cost: one pass over the string (bounded by the length check first).
    """
    if not isinstance(value, str):
        raise ValidationError("expected a string", field=field_name, symbol=symbol,
                              value=type(value).__name__)
    limit = MAX_ID_LEN if ident else MAX_TEXT_LEN
    if len(value) > limit:
        raise ValidationError(f"longer than {limit} characters", field=field_name,
                              symbol=symbol, value=value[:32] + "...")
    if ident:
        if not value or not value.isascii() or not value.isprintable():
            raise ValidationError("must be non-empty printable ASCII (no control character, "
                                  "no SOH)", field=field_name, symbol=symbol, value=value)
        if value != value.strip():
            raise ValidationError("leading or trailing whitespace", field=field_name,
                                  symbol=symbol, value=value)
        return value
    if not value.isprintable():
        raise ValidationError("control character (SOH, newline, ...) in text",
                              field=field_name, symbol=symbol, value=value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("not encodable as UTF-8", field=field_name, symbol=symbol,
                              value=value.encode("utf-8", "backslashreplace").decode()
                              ) from None
    return value


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


# --------------------------------------------------------------------------- orders


@dataclass(frozen=True, slots=True)
class Order:
    """A parent order: what the portfolio wants to trade.

    Attributes:
        client_order_id: unique, caller-chosen id; the idempotency key.
        symbol: instrument symbol.
        side: BUY or SELL.
        qty: quantity in shares/contracts/units (> 0, Decimal).
        order_type: MARKET, LIMIT, ...
        limit_price: required for LIMIT and STOP_LIMIT, price per unit.
        stop_price: required for STOP and STOP_LIMIT.
        tif: time in force.
        created_at: UTC tz-aware creation time.
        strategy: free tag of the strategy or algo that produced it.
    """

    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    created_at: datetime
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    tif: TimeInForce = TimeInForce.DAY
    strategy: str | None = None

    def __post_init__(self) -> None:
        _validate_order_fields(self)

    @property
    def signed_qty(self) -> Decimal:
        return self.qty * self.side.sign

    def notional(self, price: Decimal | float) -> Decimal:
        """Absolute value of the order at ``price`` (currency)."""
        return self.qty * to_decimal(price, "price", symbol=self.symbol)

    def with_changes(self, **changes: Any) -> Order:
        """A copy with ``changes`` applied and validated (orders are immutable)."""
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class ChildOrder:
    """A slice of a parent order, scheduled for a time window.

    Attributes:
        parent_id: ``client_order_id`` of the parent :class:`Order`.
        slice_index: position of this slice in the parent's schedule (0-based).
        not_before: earliest UTC time the slice may be sent.
        expire_at: UTC time after which an unfilled remainder is cancelled (None: end of day).
    """

    client_order_id: str
    parent_id: str
    symbol: str
    side: Side
    qty: Decimal
    created_at: datetime
    slice_index: int = 0
    not_before: datetime | None = None
    expire_at: datetime | None = None
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    tif: TimeInForce = TimeInForce.DAY
    strategy: str | None = None

    def __post_init__(self) -> None:
        _validate_order_fields(self)
        if not isinstance(self.parent_id, str) or not self.parent_id:
            raise ValidationError("parent_id must be a non-empty string", field="parent_id",
                                  value=self.parent_id)
        check_text(self.parent_id, "parent_id", symbol=self.symbol)
        if self.slice_index < 0:
            raise ValidationError("slice_index must be >= 0", field="slice_index",
                                  value=self.slice_index)
        for name in ("not_before", "expire_at"):
            ts = getattr(self, name)
            if ts is not None:
                _set(self, name, ensure_utc(ts, name))
        if (self.not_before is not None and self.expire_at is not None
                and self.expire_at < self.not_before):
            raise ValidationError("expire_at is before not_before", field="expire_at",
                                  value=self.expire_at, symbol=self.symbol)

    @property
    def signed_qty(self) -> Decimal:
        return self.qty * self.side.sign

    def as_order(self) -> Order:
        """The child as a plain :class:`Order` (what a venue sees)."""
        return Order(
            client_order_id=self.client_order_id, symbol=self.symbol, side=self.side,
            qty=self.qty, created_at=self.created_at, order_type=self.order_type,
            limit_price=self.limit_price, stop_price=self.stop_price, tif=self.tif,
            strategy=self.strategy,
        )

    def with_changes(self, **changes: Any) -> ChildOrder:
        return replace(self, **changes)


def _validate_order_fields(order: Order | ChildOrder) -> None:
    if not isinstance(order.client_order_id, str) or not order.client_order_id:
        raise ValidationError("client_order_id must be a non-empty string",
                              field="client_order_id", value=order.client_order_id)
    _check_symbol(order.symbol)
    check_text(order.symbol, "symbol")
    sym = order.symbol
    check_text(order.client_order_id, "client_order_id", symbol=sym)
    if order.strategy is not None:
        check_text(order.strategy, "strategy", ident=False, symbol=sym)
    _set(order, "side", Side(order.side))
    _set(order, "order_type", OrderType(order.order_type))
    _set(order, "tif", TimeInForce(order.tif))
    qty = to_decimal(order.qty, "qty", symbol=sym)
    if qty <= 0:
        raise ValidationError("qty must be > 0 (the side carries the direction)", field="qty",
                              symbol=sym, value=order.qty)
    _set(order, "qty", qty)
    _set(order, "created_at", ensure_utc(order.created_at, "created_at"))
    for name in ("limit_price", "stop_price"):
        px = getattr(order, name)
        if px is not None:
            px = to_decimal(px, name, symbol=sym)
            if px <= 0:
                raise ValidationError(f"{name} must be > 0", field=name, symbol=sym, value=px)
            _set(order, name, px)
    needs_limit = order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    needs_stop = order.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
    if needs_limit and order.limit_price is None:
        raise ValidationError(f"{order.order_type.value} order needs a limit_price",
                              field="limit_price", symbol=sym)
    if needs_stop and order.stop_price is None:
        raise ValidationError(f"{order.order_type.value} order needs a stop_price",
                              field="stop_price", symbol=sym)
    if order.order_type is OrderType.MARKET and order.limit_price is not None:
        raise ValidationError("a MARKET order takes no limit_price", field="limit_price",
                              symbol=sym, value=order.limit_price)


# --------------------------------------------------------------------------- fills & positions


@dataclass(frozen=True, slots=True)
class Fill:
    """An execution: ``qty`` units of ``symbol`` traded at ``price``.

    Attributes:
        exec_id: the venue's unique execution id (the dedup key).
        client_order_id: the order (parent or child) this fill belongs to.
        commission: fees charged on this fill, in currency (>= 0).
    """

    exec_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    timestamp: datetime
    commission: Decimal = ZERO
    venue: str = ""

    def __post_init__(self) -> None:
        for name in ("exec_id", "client_order_id"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v:
                raise ValidationError(f"{name} must be a non-empty string", field=name, value=v)
        sym = _check_symbol(self.symbol)
        _set(self, "side", Side(self.side))
        qty = to_decimal(self.qty, "qty", symbol=sym)
        if qty <= 0:
            raise ValidationError("fill qty must be > 0", field="qty", symbol=sym, value=qty)
        price = to_decimal(self.price, "price", symbol=sym)
        if price <= 0:
            raise ValidationError("fill price must be > 0", field="price", symbol=sym,
                                  value=price)
        commission = to_decimal(self.commission, "commission", symbol=sym)
        if commission < 0:
            raise ValidationError("commission must be >= 0", field="commission", symbol=sym,
                                  value=commission)
        _set(self, "qty", qty)
        _set(self, "price", price)
        _set(self, "commission", commission)
        _set(self, "timestamp", ensure_utc(self.timestamp, "timestamp"))

    @property
    def signed_qty(self) -> Decimal:
        return self.qty * self.side.sign

    @property
    def notional(self) -> Decimal:
        """qty x price, in currency (unsigned)."""
        return self.qty * self.price

    @property
    def cash_delta(self) -> Decimal:
        """Change in cash this fill causes: buys pay, sells receive, commission always pays."""
        return -self.signed_qty * self.price - self.commission


@dataclass(frozen=True, slots=True)
class Position:
    """A holding: signed quantity (negative is short) and its average entry price."""

    symbol: str
    qty: Decimal = ZERO
    avg_price: Decimal = ZERO

    def __post_init__(self) -> None:
        sym = _check_symbol(self.symbol)
        _set(self, "qty", to_decimal(self.qty, "qty", symbol=sym))
        avg = to_decimal(self.avg_price, "avg_price", symbol=sym)
        if avg < 0:
            raise ValidationError("avg_price must be >= 0", field="avg_price", symbol=sym,
                                  value=avg)
        _set(self, "avg_price", avg)

    @property
    def is_flat(self) -> bool:
        return self.qty == 0

    def market_value(self, price: Decimal | float) -> Decimal:
        """Signed value at ``price`` (currency)."""
        return self.qty * to_decimal(price, "price", symbol=self.symbol)


# --------------------------------------------------------------------------- venue events


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """A venue's report about one order (acknowledged, filled, cancelled, rejected, ...).

    Attributes:
        kind: what happened.
        client_order_id: the order it concerns.
        timestamp: UTC venue time.
        fill: the execution, for ``EventKind.FILL``.
        cum_qty: total quantity filled so far on this order.
        leaves_qty: quantity still open on this order.
        reason: the venue's text for rejects and cancels.
        venue_order_id: the venue's own id for the order.
    """

    kind: EventKind
    client_order_id: str
    timestamp: datetime
    fill: Fill | None = None
    cum_qty: Decimal = ZERO
    leaves_qty: Decimal = ZERO
    reason: str = ""
    venue_order_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _set(self, "kind", EventKind(self.kind))
        _set(self, "timestamp", ensure_utc(self.timestamp, "timestamp"))
        _set(self, "cum_qty", to_decimal(self.cum_qty, "cum_qty"))
        _set(self, "leaves_qty", to_decimal(self.leaves_qty, "leaves_qty"))
        if self.kind is EventKind.FILL and self.fill is None:
            raise ValidationError("a FILL event needs its fill", field="fill",
                                  value=self.client_order_id)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        microsecond: int = 0) -> datetime:
    """Shorthand for a UTC datetime (tests, examples)."""
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)
