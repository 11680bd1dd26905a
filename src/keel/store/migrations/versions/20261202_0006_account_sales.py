"""Executed account batches and the realised-sales history (the wash-sale guard's memory).

Types are spelled out here (not imported from ``keel.store.tables``) so this revision keeps
meaning what it meant when it was written.

Revision ID: 0006_account_sales
Revises: 0005_accounts
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_account_sales"
down_revision: str | None = "0005_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ExactDecimal: NUMERIC(38, 12) on PostgreSQL, fixed-point text on SQLite.
EXACT = sa.Numeric(38, 12).with_variant(sa.String(64), "sqlite")
# UTCDateTime: timestamptz on PostgreSQL, UTC text on SQLite.
UTC_TS = sa.DateTime(timezone=True)


def _s(name: str, length: int) -> sa.Column[str]:
    return sa.Column(name, sa.String(length), nullable=False)


def _d(name: str) -> sa.Column[object]:
    return sa.Column(name, EXACT, nullable=False)


def upgrade() -> None:
    op.create_table(
        "account_batches", _s("batch_id", 64),
        sa.Column("executed_at", UTC_TS, nullable=False),
        sa.Column("blocks", sa.Integer(), nullable=False),
        sa.Column("allocations", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_account_batches")),
    )
    op.create_table(
        "account_sales", _s("batch_id", 64), _s("account_id", 64),
        sa.Column("seq", sa.Integer(), nullable=False), _s("symbol", 32), _s("lot_id", 64),
        _d("qty"), _d("price"), _d("cost_per_share"),
        sa.Column("acquired", sa.Date(), nullable=False),
        sa.Column("sold", sa.Date(), nullable=False), _d("gain"),
        sa.Column("long_term", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE",
                                name=op.f("fk_account_sales_account_id_accounts")),
        sa.ForeignKeyConstraint(["batch_id"], ["account_batches.batch_id"], ondelete="CASCADE",
                                name=op.f("fk_account_sales_batch_id_account_batches")),
        sa.PrimaryKeyConstraint("batch_id", "account_id", "seq",
                                name=op.f("pk_account_sales")),
    )
    op.create_index("ix_account_sales_account_sold", "account_sales", ["account_id", "sold"])


def downgrade() -> None:
    op.drop_index("ix_account_sales_account_sold", table_name="account_sales")
    op.drop_table("account_sales")
    op.drop_table("account_batches")
