"""`keel db ...`: database migrations and inspection."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``db`` command group to ``app``."""
