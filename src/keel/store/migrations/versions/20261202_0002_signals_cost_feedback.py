"""Learned cost-model state: the current state per model name and its version history.

Types are spelled out here (not imported from ``keel.store.tables``) so this revision keeps
meaning what it meant when it was written.

Revision ID: 0002_signals_cost_feedback
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_signals_cost_feedback"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# UTCDateTime: timestamptz on PostgreSQL, UTC text on SQLite.
UTC_TS = sa.DateTime(timezone=True)
# Surrogate keys: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "cost_model_state",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_cost_model_state")),
    )
    op.create_table(
        "cost_model_history",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("multipliers", sa.JSON(), nullable=False),
        sa.Column("n_obs", sa.BigInteger(), nullable=False),
        sa.Column("observed", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cost_model_history")),
        sa.UniqueConstraint("name", "version", name="uq_cost_model_history_version"),
    )


def downgrade() -> None:
    op.drop_table("cost_model_history")
    op.drop_table("cost_model_state")
