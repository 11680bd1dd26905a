"""Alembic migrations of the keel schema (run them with ``keel db upgrade``)."""
