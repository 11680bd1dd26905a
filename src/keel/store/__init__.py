"""Persistence: SQLAlchemy tables, migrations and repositories; SQLite by default, PostgreSQL
by URL. Layers write their own repositories (ledger_repo, orders_repo...) on these tables."""

from keel.store.db import Store, make_engine

__all__ = ["Store", "make_engine"]
