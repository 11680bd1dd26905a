"""Persistence: SQLAlchemy tables and repositories; SQLite by default, PostgreSQL by URL."""

from keel.store.db import Store, make_engine

__all__ = ["Store", "make_engine"]
