"""Alembic migrations: up from empty, schema equals the code, down to base, drift detected."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from keel.errors import StoreError
from keel.store import Store
from keel.store.migrate import MIGRATIONS, describe
from keel.store.tables import Base


def _tables(store: Store) -> set[str]:
    return set(sa.inspect(store.engine).get_table_names())


def test_upgrade_from_empty_matches_the_metadata(empty_store: Store) -> None:
    store = empty_store
    assert store.current_revision() is None
    assert _tables(store) == set()
    assert store.upgrade() == store.head_revision()
    assert store.current_revision() == store.head_revision()
    assert _tables(store) == set(Base.metadata.tables) | {"alembic_version"}
    # The drift test: any table change in code must come with a migration.
    assert store.schema_diff() == [], describe(store.schema_diff())
    store.check_schema()
    assert store.upgrade() == store.head_revision()  # idempotent


def test_downgrade_to_base_and_back(store: Store) -> None:
    assert store.downgrade("base") is None
    assert _tables(store) == {"alembic_version"}
    assert store.upgrade("head") == store.head_revision()
    assert store.schema_diff() == []


def test_migration_scripts_ship_inside_the_package() -> None:
    assert (MIGRATIONS / "env.py").is_file()
    assert (MIGRATIONS / "script.py.mako").is_file()
    assert list((MIGRATIONS / "versions").glob("*_0001_*.py"))


def test_postgres_version_table_follows_search_path(pg_url: str) -> None:
    # Snapshot the other schemas first: tables another tool left there are not ours to judge.
    probe = Store.from_url(pg_url)
    q = sa.text("SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_name IN ('alembic_version', 'orders', 'runs')")
    with probe.engine.connect() as conn:
        before = set(conn.execute(q).all())
    probe.upgrade()
    with probe.engine.connect() as conn:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
        added = set(conn.execute(q).all()) - before
    probe.dispose()
    assert schema.startswith("t_")  # the per-test schema of tests/conftest.py
    assert added == {(schema, "alembic_version"), (schema, "orders"), (schema, "runs")}


def test_drift_is_detected(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE fills ADD COLUMN sneaky INTEGER"))
        conn.execute(sa.text("CREATE TABLE stray (x INTEGER)"))
    diffs = describe(store.schema_diff())
    assert "add_column" not in diffs  # the DB has more than the code: removals
    assert "remove_column fills.sneaky" in diffs
    assert "remove_table stray" in diffs
    with pytest.raises(StoreError, match="differs from the code"):
        store.check_schema()


def test_type_drift_is_detected(pg_store: Store) -> None:
    store = pg_store  # SQLite cannot ALTER a column type in place
    with store.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE fills ALTER COLUMN qty TYPE NUMERIC(20, 4)"))
    assert "modify_type" in describe(store.schema_diff())


def test_check_refuses_an_unmigrated_database(empty_store: Store) -> None:
    with pytest.raises(StoreError, match="not at the head revision") as info:
        empty_store.check_schema()
    assert info.value.field == "revision"


def test_upgrade_adopts_a_create_all_database(empty_store: Store) -> None:
    empty_store.create_all()
    assert empty_store.current_revision() is None
    assert empty_store.upgrade() == empty_store.head_revision()
    empty_store.check_schema()


def test_upgrade_refuses_an_unknown_schema_without_revision(empty_store: Store) -> None:
    with empty_store.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE orders (id INTEGER PRIMARY KEY)"))
    with pytest.raises(StoreError, match="no migration revision"):
        empty_store.upgrade()
    assert empty_store.current_revision() is None


def test_unknown_revision_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="migration failed") as info:
        store.upgrade("nope")
    assert info.value.field == "revision" and info.value.value == "nope"
