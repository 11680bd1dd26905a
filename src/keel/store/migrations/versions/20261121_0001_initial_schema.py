"""Initial schema: orders, child orders, fills, order events, portfolio snapshots, ledger
entries, audit log, FIX sessions and messages, runs.

Types are spelled out here (not imported from ``keel.store.tables``) so this revision keeps
meaning what it meant when it was written, whatever the code's types become later.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ExactDecimal: NUMERIC(38, 12) on PostgreSQL, fixed-point text on SQLite.
EXACT = sa.Numeric(38, 12).with_variant(sa.String(64), "sqlite")
# UTCDateTime: timestamptz on PostgreSQL, UTC text on SQLite.
UTC_TS = sa.DateTime(timezone=True)
# Surrogate keys: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column[int]:
    return sa.Column("id", BIG_ID, autoincrement=True, nullable=False)


def _s(name: str, length: int, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.String(length), nullable=nullable)


def _d(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, EXACT, nullable=nullable)


def _t(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, UTC_TS, nullable=nullable)


def _index(table: str, *columns: str, unique: bool = False, name: str | None = None) -> None:
    op.create_index(name or op.f(f"ix_{table}_{columns[0]}"), table, list(columns),
                    unique=unique)


def upgrade() -> None:
    op.create_table(
        "orders", _id(),
        _s("client_order_id", 64), _s("symbol", 32), _s("side", 8), _d("qty"),
        _s("order_type", 16), _s("tif", 8), _d("limit_price", True), _d("stop_price", True),
        _s("status", 24), _d("filled_qty"), _d("avg_fill_price", True),
        _s("strategy", 64, True), _s("algo", 32, True), _d("arrival_price", True),
        _d("decision_price", True), _t("created_at"), _t("updated_at"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
    )
    _index("orders", "client_order_id", unique=True)
    _index("orders", "status")
    _index("orders", "symbol")

    op.create_table(
        "child_orders", _id(),
        _s("client_order_id", 64), _s("parent_id", 64),
        sa.Column("slice_index", sa.Integer(), nullable=False),
        _s("symbol", 32), _s("side", 8), _d("qty"), _s("order_type", 16), _s("tif", 8),
        _d("limit_price", True), _t("not_before", True), _t("expire_at", True),
        _s("status", 24), _d("filled_qty"), _s("venue_order_id", 64, True),
        _s("venue", 32, True), _t("created_at"), _t("updated_at"),
        sa.ForeignKeyConstraint(["parent_id"], ["orders.client_order_id"],
                                name=op.f("fk_child_orders_parent_id_orders"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_child_orders")),
    )
    _index("child_orders", "client_order_id", unique=True)
    _index("child_orders", "parent_id")
    _index("child_orders", "status")

    op.create_table(
        "fills", _id(),
        _s("exec_id", 64), _s("client_order_id", 64), _s("parent_id", 64, True),
        _s("symbol", 32), _s("side", 8), _d("qty"), _d("price"), _d("commission"),
        _s("venue", 32), _t("timestamp"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fills")),
        sa.UniqueConstraint("exec_id", name=op.f("uq_fills_exec_id")),
    )
    _index("fills", "client_order_id")
    _index("fills", "client_order_id", "timestamp", name="ix_fills_order_ts")
    _index("fills", "parent_id")
    _index("fills", "symbol")
    _index("fills", "timestamp")

    op.create_table(
        "order_events", _id(),
        _s("client_order_id", 64), _s("from_status", 24, True), _s("to_status", 24),
        sa.Column("reason", sa.Text(), nullable=False), _t("timestamp"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_events")),
    )
    _index("order_events", "client_order_id")

    op.create_table(
        "portfolio_snapshots", _id(),
        _s("account", 64), sa.Column("version", sa.BigInteger(), nullable=False),
        _t("timestamp"), _d("cash"), _d("equity"),
        sa.Column("positions", sa.JSON(), nullable=False), _s("label", 64),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portfolio_snapshots")),
        sa.UniqueConstraint("account", "version", name="uq_snapshot_version"),
    )
    _index("portfolio_snapshots", "account")

    op.create_table(
        "ledger_entries", _id(),
        _s("account", 64), sa.Column("version", sa.BigInteger(), nullable=False),
        _s("kind", 32), sa.Column("payload", sa.JSON(), nullable=False), _t("timestamp"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("account", "version", name="uq_ledger_version"),
    )
    _index("ledger_entries", "account")

    op.create_table(
        "audit_log", _id(),
        _t("timestamp"), _s("actor", 64), _s("action", 64), _s("entity", 64),
        _s("entity_id", 128), sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    _index("audit_log", "action")
    _index("audit_log", "timestamp")

    op.create_table(
        "fix_sessions",
        _s("session_id", 128),
        sa.Column("next_sender_seq", sa.BigInteger(), nullable=False),
        sa.Column("next_target_seq", sa.BigInteger(), nullable=False),
        _t("creation_time"), _t("updated_at"),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_fix_sessions")),
    )
    op.create_table(
        "fix_messages",
        _s("session_id", 128), sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["fix_sessions.session_id"],
                                name=op.f("fk_fix_messages_session_id_fix_sessions"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("session_id", "seq", name=op.f("pk_fix_messages")),
    )

    op.create_table(
        "runs", _id(),
        _s("run_id", 64), _s("kind", 32), _t("started_at"), _t("finished_at", True),
        _s("status", 16), sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("run_id", name=op.f("uq_runs_run_id")),
    )


def downgrade() -> None:
    # Dropping a table drops its indexes and constraints; children before parents.
    for table in ("runs", "fix_messages", "fix_sessions", "audit_log", "ledger_entries",
                  "portfolio_snapshots", "order_events", "fills", "child_orders", "orders"):
        op.drop_table(table)
