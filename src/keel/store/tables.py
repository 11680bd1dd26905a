"""SQLAlchemy 2 tables: orders, child orders, fills, order events, portfolio snapshots, ledger
entries, audit log, FIX session state and FIX messages, runs, and the learned cost-model state.

Money and quantities are stored exactly (:class:`ExactDecimal`: NUMERIC on PostgreSQL, text on
SQLite, which has no exact decimal type); times are stored in UTC and come back tz-aware
(:class:`UTCDateTime`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Context, Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from keel.errors import StoreError, ValidationError
from keel.types import ensure_utc, to_decimal

# Scale and precision of every exact column: 26 integer digits and 12 decimal places.
DECIMAL_PRECISION = 38
DECIMAL_SCALE = 12
_WIDE = Context(prec=DECIMAL_PRECISION + 10)  # no rounding in normalize/quantize below

# Surrogate keys: 64-bit on PostgreSQL (fills and audit rows can outgrow 2**31); on SQLite
# INTEGER, the only type that aliases the 64-bit rowid and so autoincrements.
BIG_ID = BigInteger().with_variant(Integer(), "sqlite")

# Deterministic constraint names: Alembic (and SQLite batch mode) can only alter what has a name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def exact_decimal(value: Any, field_name: str = "decimal") -> Decimal:
    """``value`` as a finite ``Decimal`` that NUMERIC(38, 12) holds without rounding.

    Raises ``ValidationError`` naming ``field_name`` for a non-number, a non-finite value, more
    than 12 decimal places (PostgreSQL would round them away silently) or more than 26 integer
    digits (PostgreSQL would refuse the row). Both backends refuse the same values.
    """
    d = to_decimal(value, field_name)
    if d.is_zero():
        return Decimal(0)
    if d.normalize(_WIDE).as_tuple().exponent < -DECIMAL_SCALE:  # type: ignore[operator]
        raise ValidationError(f"more than {DECIMAL_SCALE} decimal places would be rounded",
                              field=field_name, value=d)
    if d.adjusted() >= DECIMAL_PRECISION - DECIMAL_SCALE:
        raise ValidationError(
            f"more than {DECIMAL_PRECISION - DECIMAL_SCALE} integer digits do not fit",
            field=field_name, value=d)
    return d


def canonical_decimal(d: Decimal) -> Decimal:
    """Trailing zeros dropped (PostgreSQL pads to the scale), integers without exponent."""
    if d == d.to_integral_value(context=_WIDE):
        return d.quantize(Decimal(1), context=_WIDE)
    return d.normalize(_WIDE)


class ExactDecimal(TypeDecorator[Decimal]):
    """A ``Decimal`` stored without loss: NUMERIC(38, 12) on PostgreSQL, TEXT on SQLite.

    SQLite has no exact decimal type, so values are kept as fixed-point text there (exact, but
    SQL arithmetic and ordering on these columns are textual: do the maths in Python). Values
    that NUMERIC(38, 12) cannot hold exactly are refused on every backend.
    """

    impl = String(64)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(
            Numeric(DECIMAL_PRECISION, DECIMAL_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        d = exact_decimal(value)
        return format(d, "f") if dialect.name == "sqlite" else d

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return canonical_decimal(value if isinstance(value, Decimal) else Decimal(value))


class UTCDateTime(TypeDecorator[datetime]):
    """A tz-aware UTC datetime on every backend (naive input is refused).

    PostgreSQL: ``timestamp with time zone``. SQLite: the UTC wall time as fixed-width text,
    so ordering and range queries are correct.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = ensure_utc(value, "datetime")
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        Decimal: ExactDecimal(), datetime: UTCDateTime(), dict[str, Any]: JSON()}


class OrderRow(Base):
    """A parent order and its current state."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    client_order_id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    symbol: Mapped[str] = mapped_column(String(32), index=True)
    side: Mapped[str] = mapped_column(String(8))
    qty: Mapped[Decimal]
    order_type: Mapped[str] = mapped_column(String(16))
    tif: Mapped[str] = mapped_column(String(8))
    limit_price: Mapped[Decimal | None]
    stop_price: Mapped[Decimal | None]
    status: Mapped[str] = mapped_column(String(24), index=True)
    filled_qty: Mapped[Decimal] = mapped_column(default=Decimal(0))
    avg_fill_price: Mapped[Decimal | None]
    strategy: Mapped[str | None] = mapped_column(String(64))
    algo: Mapped[str | None] = mapped_column(String(32))
    arrival_price: Mapped[Decimal | None]
    decision_price: Mapped[Decimal | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)


class ChildOrderRow(Base):
    """A slice of a parent order, linked to it."""

    __tablename__ = "child_orders"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    client_order_id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    parent_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("orders.client_order_id", ondelete="CASCADE"), index=True)
    slice_index: Mapped[int] = mapped_column(Integer)
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))
    qty: Mapped[Decimal]
    order_type: Mapped[str] = mapped_column(String(16))
    tif: Mapped[str] = mapped_column(String(8))
    limit_price: Mapped[Decimal | None]
    not_before: Mapped[datetime | None]
    expire_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(24), index=True)
    filled_qty: Mapped[Decimal] = mapped_column(default=Decimal(0))
    venue_order_id: Mapped[str | None] = mapped_column(String(64))
    venue: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class FillRow(Base):
    """An execution. ``exec_id`` is unique: a fill is booked once."""

    __tablename__ = "fills"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    exec_id: Mapped[str] = mapped_column(String(64), unique=True)
    client_order_id: Mapped[str] = mapped_column(String(64), index=True)
    parent_id: Mapped[str | None] = mapped_column(String(64), index=True)
    symbol: Mapped[str] = mapped_column(String(32), index=True)
    side: Mapped[str] = mapped_column(String(8))
    qty: Mapped[Decimal]
    price: Mapped[Decimal]
    commission: Mapped[Decimal] = mapped_column(default=Decimal(0))
    venue: Mapped[str] = mapped_column(String(32), default="")
    timestamp: Mapped[datetime] = mapped_column(index=True)


class OrderEventRow(Base):
    """Every state change of an order or child order (the order audit trail)."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    client_order_id: Mapped[str] = mapped_column(String(64), index=True)
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str] = mapped_column(Text, default="")
    timestamp: Mapped[datetime]


class PortfolioSnapshotRow(Base):
    """A full ledger state at a version: cash, equity and positions (JSON of exact strings)."""

    __tablename__ = "portfolio_snapshots"
    __table_args__ = (UniqueConstraint("account", "version", name="uq_snapshot_version"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64), default="default", index=True)
    version: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[datetime]
    cash: Mapped[Decimal]
    equity: Mapped[Decimal]
    positions: Mapped[dict[str, Any]]
    label: Mapped[str] = mapped_column(String(64), default="")


class LedgerEntryRow(Base):
    """One booked change to the ledger (fill, deposit, fee, ...) at a version; replayable."""

    __tablename__ = "ledger_entries"
    __table_args__ = (UniqueConstraint("account", "version", name="uq_ledger_version"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64), default="default", index=True)
    version: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]]
    timestamp: Mapped[datetime]


class AuditRow(Base):
    """Who did what, when: an append-only log of decisions and changes."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    timestamp: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    entity: Mapped[str] = mapped_column(String(64), default="")
    entity_id: Mapped[str] = mapped_column(String(128), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)


class FixSessionRow(Base):
    """Sequence numbers of a FIX session, persisted across restarts."""

    __tablename__ = "fix_sessions"

    session_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    next_sender_seq: Mapped[int] = mapped_column(BigInteger, default=1)
    next_target_seq: Mapped[int] = mapped_column(BigInteger, default=1)
    creation_time: Mapped[datetime]
    updated_at: Mapped[datetime]


class FixMessageRow(Base):
    """Outbound FIX messages by sequence number, for resend requests."""

    __tablename__ = "fix_messages"

    session_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("fix_sessions.session_id", ondelete="CASCADE"),
        primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)


class RunRow(Base):
    """A run of keel (demo, backtest, live): its config, status and summary metrics."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)


class LeaseRow(Base):
    """A named single-writer lease (e.g. ``keel-run``): who holds it and until when.

    A holder renews ``expires_at`` while alive; a lease past ``expires_at`` may be taken over,
    so a SIGKILLed holder blocks the next writer for at most one time-to-live.
    """

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class DeskStateRow(Base):
    """What a live desk must remember across restarts (one current row per desk name): the
    equity watermark behind the drawdown rule, the annual turnover spent, the standing target."""

    __tablename__ = "desk_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class CostModelStateRow(Base):
    """The learned state of an adaptive cost model (one current row per model name)."""

    __tablename__ = "cost_model_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class CostModelHistoryRow(Base):
    """Each saved version's multipliers (append-only): how the learned model moved."""

    __tablename__ = "cost_model_history"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_cost_model_history_version"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(BigInteger)
    multipliers: Mapped[dict[str, Any]]
    n_obs: Mapped[int] = mapped_column(BigInteger)
    observed: Mapped[int] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime]


class ModelWeightRow(Base):
    """One weight of a model portfolio (``keel.accounts``): a model is its rows."""

    __tablename__ = "models"

    model_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    weight: Mapped[Decimal]


class AccountRow(Base):
    """A separately managed account: cash, the model it tracks, its drift band, restrictions
    (``{"no_buy": [...], "no_hold": [...]}``) and whether it is managed tax-aware."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    cash: Mapped[Decimal]
    model_id: Mapped[str] = mapped_column(String(64), index=True)
    drift_band: Mapped[Decimal]
    restrictions: Mapped[dict[str, Any]]
    tax_aware: Mapped[bool] = mapped_column(Boolean, default=False)


class HoldingRow(Base):
    """Shares of ``symbol`` an account holds (the sum of its tax lots when it keeps lots)."""

    __tablename__ = "holdings"

    account_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    qty: Mapped[Decimal]


class TaxLotRow(Base):
    """One tax lot: shares bought together at one cost per share on one date."""

    __tablename__ = "tax_lots"

    account_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    lot_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32))
    qty: Mapped[Decimal]
    cost_per_share: Mapped[Decimal]
    acquired: Mapped[date] = mapped_column(Date)


class AccountBatchRow(Base):
    """A rebalance batch whose block fills were booked into the accounts (the idempotency
    key of ``keel accounts rebalance --execute``)."""

    __tablename__ = "account_batches"

    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    executed_at: Mapped[datetime]
    blocks: Mapped[int] = mapped_column(Integer)
    allocations: Mapped[int] = mapped_column(Integer)


class AccountSaleRow(Base):
    """One tax lot (or part of it) an account sold: the realised-sales history the wash-sale
    guard reads (a buy within 30 days after a loss sale)."""

    __tablename__ = "account_sales"

    batch_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("account_batches.batch_id", ondelete="CASCADE"),
        primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32))
    lot_id: Mapped[str] = mapped_column(String(64))
    qty: Mapped[Decimal]
    price: Mapped[Decimal]
    cost_per_share: Mapped[Decimal]
    acquired: Mapped[date] = mapped_column(Date)
    sold: Mapped[date] = mapped_column(Date)
    gain: Mapped[Decimal]
    long_term: Mapped[bool] = mapped_column(Boolean)


Index("ix_fills_order_ts", FillRow.client_order_id, FillRow.timestamp)
Index("ix_tax_lots_account_symbol", TaxLotRow.account_id, TaxLotRow.symbol)
Index("ix_account_sales_account_sold", AccountSaleRow.account_id, AccountSaleRow.sold)


def _refuse_audit_change(_mapper: Any, _connection: Any, target: AuditRow) -> None:
    raise StoreError("the audit log is append-only: rows cannot be changed or deleted",
                     field="audit_log.id", value=target.id)


event.listen(AuditRow, "before_update", _refuse_audit_change)
event.listen(AuditRow, "before_delete", _refuse_audit_change)
