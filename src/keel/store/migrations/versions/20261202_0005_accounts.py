"""Separately managed accounts: ``models``, ``accounts``, ``holdings`` and ``tax_lots``.

Types are spelled out here (not imported from ``keel.store.tables``) so this revision keeps
meaning what it meant when it was written.

Revision ID: 0005_accounts
Revises: 0004_desk_state
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_accounts"
down_revision: str | None = "0004_desk_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ExactDecimal: NUMERIC(38, 12) on PostgreSQL, fixed-point text on SQLite.
EXACT = sa.Numeric(38, 12).with_variant(sa.String(64), "sqlite")


def _s(name: str, length: int) -> sa.Column[str]:
    return sa.Column(name, sa.String(length), nullable=False)


def _d(name: str) -> sa.Column[object]:
    return sa.Column(name, EXACT, nullable=False)


def upgrade() -> None:
    op.create_table(
        "models", _s("model_id", 64), _s("symbol", 32), _d("weight"),
        sa.PrimaryKeyConstraint("model_id", "symbol", name=op.f("pk_models")),
    )
    op.create_table(
        "accounts", _s("id", 64), _s("name", 128), _d("cash"), _s("model_id", 64),
        _d("drift_band"), sa.Column("restrictions", sa.JSON(), nullable=False),
        sa.Column("tax_aware", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )
    op.create_index(op.f("ix_accounts_model_id"), "accounts", ["model_id"])
    op.create_table(
        "holdings", _s("account_id", 64), _s("symbol", 32), _d("qty"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE",
                                name=op.f("fk_holdings_account_id_accounts")),
        sa.PrimaryKeyConstraint("account_id", "symbol", name=op.f("pk_holdings")),
    )
    op.create_table(
        "tax_lots", _s("account_id", 64), _s("lot_id", 64), _s("symbol", 32), _d("qty"),
        _d("cost_per_share"), sa.Column("acquired", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE",
                                name=op.f("fk_tax_lots_account_id_accounts")),
        sa.PrimaryKeyConstraint("account_id", "lot_id", name=op.f("pk_tax_lots")),
    )
    op.create_index("ix_tax_lots_account_symbol", "tax_lots", ["account_id", "symbol"])


def downgrade() -> None:
    op.drop_index("ix_tax_lots_account_symbol", table_name="tax_lots")
    op.drop_table("tax_lots")
    op.drop_table("holdings")
    op.drop_index(op.f("ix_accounts_model_id"), table_name="accounts")
    op.drop_table("accounts")
    op.drop_table("models")
