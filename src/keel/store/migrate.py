"""Alembic migrations run from the package: upgrade, downgrade, current revision, drift check.

The scripts live in ``keel/store/migrations`` (found through the package path; no ``alembic.ini``
is needed at run time). Every migration runs in one transaction with the caller's connection:
on PostgreSQL (transactional DDL) and on SQLite (keel emits BEGIN itself) a failed upgrade
leaves the schema as it was. On PostgreSQL concurrent upgraders are serialised by an advisory
lock. The version table ``alembic_version`` lives in the connection's default schema (the
first schema of the ``search_path`` on PostgreSQL), next to the tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from keel.errors import StoreError
from keel.store.db import Store, store_error
from keel.store.tables import Base

MIGRATIONS = Path(__file__).resolve().with_name("migrations")
_LOCK_KEY = 0x6B65656C  # "keel": pg_advisory_xact_lock key of the migration lock

SchemaDiff = Any
"""One difference as Alembic reports it: ``("add_table", Table)``, or a list of column changes."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` pointing at the packaged scripts (and ``connection``, if given)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision shipped with this code."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships the initial revision
        raise StoreError("no migration scripts found", path=str(MIGRATIONS))
    return head


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _diff(conn: Connection) -> list[SchemaDiff]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, Base.metadata))


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})


@contextmanager
def migration_transaction(store: Store, doing: str, revision: str) -> Iterator[Connection]:
    """One transaction for a migration step; Alembic and database errors become ``StoreError``.

    PostgreSQL: the transaction holds an advisory lock, so concurrent upgraders queue.
    SQLite: foreign-key enforcement is switched off for the transaction (it can only be
    switched outside one): batch mode recreates a table by copy, drop and rename, and dropping
    ``orders`` with enforcement on would cascade-delete every child order. Before the commit
    ``PRAGMA foreign_key_check`` must come back empty, else everything is rolled back.
    """
    try:
        with store.engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                _raw_pragma(conn, "PRAGMA foreign_keys=OFF")
            try:
                with conn.begin():
                    _lock(conn)
                    yield conn
                    if sqlite:
                        dangling = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                        if dangling:
                            raise StoreError(
                                f"{doing}: foreign key violations after migration, rolled "
                                f"back: {[tuple(r) for r in dangling[:5]]}",
                                field="revision", value=revision, url=store.url)
            finally:
                if sqlite:
                    _raw_pragma(conn, "PRAGMA foreign_keys=ON")
    except CommandError as exc:
        raise StoreError(f"{doing}: {exc}", field="revision", value=revision,
                         url=store.url) from exc
    except SQLAlchemyError as exc:
        raise store_error(exc, doing, store.url) from exc


def _raw_pragma(conn: Connection, pragma: str) -> None:
    # On the DBAPI connection, outside any transaction (SQLAlchemy would BEGIN first).
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cur = dbapi.cursor()
    try:
        cur.execute(pragma)
    finally:
        cur.close()


def upgrade(store: Store, revision: str = "head") -> str | None:
    """Apply migrations up to ``revision``; returns the revision now current.

    A database created without migrations (``create_all``) is adopted (stamped at head) when
    its schema equals the metadata exactly; otherwise ``StoreError`` lists the differences.
    """
    with migration_transaction(store, "migration failed", revision) as conn:
        if _current(conn) is None and _has_keel_tables(conn):
            diffs = _diff(conn)
            if diffs:
                raise StoreError(
                    "database has keel tables but no migration revision, and they differ "
                    f"from the code: {describe(diffs)}", url=store.url)
            command.stamp(alembic_config(conn), "head")
        else:
            command.upgrade(alembic_config(conn), revision)
        return _current(conn)


def downgrade(store: Store, revision: str = "base") -> str | None:
    """Revert migrations down to ``revision``; returns the revision now current."""
    with migration_transaction(store, "downgrade failed", revision) as conn:
        command.downgrade(alembic_config(conn), revision)
        return _current(conn)


def current_revision(store: Store) -> str | None:
    """The revision recorded in the database (``None``: never migrated)."""
    try:
        with store.engine.connect() as conn:
            return _current(conn)
    except SQLAlchemyError as exc:
        raise store_error(exc, "cannot read the schema revision", store.url) from exc


def schema_diff(store: Store) -> list[SchemaDiff]:
    """What differs between the database and ``keel.store.tables`` (empty: identical)."""
    try:
        with store.engine.connect() as conn:
            return _diff(conn)
    except SQLAlchemyError as exc:
        raise store_error(exc, "cannot compare the schema", store.url) from exc


def check_schema(store: Store) -> None:
    """Raise ``StoreError`` unless the database is at the head revision and equals the code."""
    current, head = current_revision(store), head_revision()
    if current != head:
        raise StoreError("database schema is not at the head revision (run `keel db upgrade`)",
                         field="revision", value=current, head=head, url=store.url)
    diffs = schema_diff(store)
    if diffs:
        raise StoreError(f"database schema differs from the code: {describe(diffs)}",
                         url=store.url)


def describe(diffs: list[SchemaDiff]) -> str:
    """One item per difference, e.g. ``remove_column fills.sneaky; add_index ix_fills_symbol``."""
    out = []
    for d in diffs:
        if isinstance(d, list):  # the changes of one column come grouped
            out.append(describe(d))
            continue
        names = [x if isinstance(x, str) else str(getattr(x, "name", "") or "")
                 for x in d[1:] if isinstance(x, str) or hasattr(x, "name")]
        out.append(f"{d[0]} {'.'.join(n for n in names if n)[:120]}")
    return "; ".join(out)


def _has_keel_tables(conn: Connection) -> bool:
    existing = set(inspect(conn).get_table_names())
    return bool(existing & set(Base.metadata.tables))
