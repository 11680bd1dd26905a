"""Store fixtures: a migrated ``Store`` on each backend (``db_url`` from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from keel.store import Store


def _opened(url: str, *, migrate: bool) -> Iterator[Store]:
    s = Store.from_url(url)
    if migrate:
        s.upgrade()
    try:
        yield s
    finally:
        # Close pooled connections before the PG fixture drops the schema.
        s.dispose()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A store migrated to head, on SQLite and on PostgreSQL (own schema per test)."""
    yield from _opened(db_url, migrate=True)


@pytest.fixture
def empty_store(db_url: str) -> Iterator[Store]:
    """A store with no tables at all, on both backends."""
    yield from _opened(db_url, migrate=False)


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    """A migrated store on PostgreSQL only (skipped, or failed in CI, without a server)."""
    yield from _opened(pg_url, migrate=True)
