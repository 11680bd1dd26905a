"""Merge the two revisions branched off 0001: the deploy lease and the learned cost state.

No schema change; it joins the heads so ``alembic upgrade head`` has one target.

Revision ID: 0003_signals_merge_heads
Revises: 0002_deploy_lease, 0002_signals_cost_feedback
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0003_signals_merge_heads"
down_revision: str | Sequence[str] | None = ("0002_deploy_lease", "0002_signals_cost_feedback")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
