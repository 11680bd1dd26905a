"""Store fixtures: a migrated ``Store`` on each backend (``db_url`` from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from keel.store import Store


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A store migrated to head, on SQLite and on PostgreSQL (own schema per test)."""
    s = Store.from_url(db_url)
    s.upgrade()
    try:
        yield s
    finally:
        # Close pooled connections before the PG fixture drops the schema.
        s.dispose()


@pytest.fixture
def empty_store(db_url: str) -> Iterator[Store]:
    """A store with no tables at all."""
    s = Store.from_url(db_url)
    try:
        yield s
    finally:
        s.dispose()


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    """A migrated store on PostgreSQL only (skipped, or failed in CI, without a server)."""
    s = Store.from_url(pg_url)
    s.upgrade()
    try:
        yield s
    finally:
        s.dispose()
