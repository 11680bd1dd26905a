"""Merge the two 0002 heads (deploy lease, signals cost feedback): no schema change.

Revision ID: 0003_desk_merge_heads
Revises: 0002_deploy_lease, 0002_signals_cost_feedback
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0003_desk_merge_heads"
down_revision: str | Sequence[str] | None = ("0002_deploy_lease", "0002_signals_cost_feedback")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
