"""`keel demo`: the main job, run on the built-in synthetic market."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add ``keel demo`` to ``app``."""
