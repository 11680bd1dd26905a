"""A live desk's memory across restarts: drawdown watermark, annual turnover, standing target.

Types are spelled out here (not imported from ``keel.store.tables``) so this revision keeps
meaning what it meant when it was written.

Revision ID: 0004_desk_state
Revises: 0003_desk_merge_heads
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_desk_state"
down_revision: str | None = "0003_desk_merge_heads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# UTCDateTime: timestamptz on PostgreSQL, UTC text on SQLite.
UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "desk_state",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_desk_state")),
    )


def downgrade() -> None:
    op.drop_table("desk_state")
