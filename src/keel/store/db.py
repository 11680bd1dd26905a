"""Database engine and sessions: SQLite (WAL) at a path by default, PostgreSQL by URL.

The application creates and evolves its schema with Alembic migrations shipped inside the
package (:meth:`Store.upgrade`, ``keel db upgrade``); :meth:`Store.create_all` is for tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)
from sqlalchemy.orm import Session, sessionmaker

from keel.errors import KeelError, StoreError

if TYPE_CHECKING:
    from keel.config import KeelConfig
    from keel.store.migrate import SchemaDiff


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN itself (see _sqlite_begin): the sqlite3 module's legacy mode
    # starts transactions only before DML, which breaks SAVEPOINT and repeatable reads.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before it returns, also across power loss (NORMAL in WAL mode
    # may lose the last commits on power loss, never on a process crash).
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql(conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN"))


_BEGIN_OPTION = "keel_sqlite_begin"


def make_engine(url: str, *, echo: bool = False, create: bool = True) -> Engine:
    """An engine for ``url``; SQLite files get WAL, foreign keys and a busy timeout.

    ``postgresql://`` URLs use the psycopg (3) driver. The parent folder of a SQLite file is
    created, unless ``create=False`` (read-only commands): then a SQLite file that does not
    exist is a ``StoreError`` with ``context['kind'] == 'missing'`` and nothing is made.
    Raises ``StoreError`` (field ``url``) for a malformed URL or an unknown backend.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"invalid database URL: {exc}", field="url", value=url) from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    kwargs: dict[str, Any] = {"echo": echo}
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            if not create and not Path(db).is_file():
                raise StoreError("no database at this path (nothing was created; "
                                 "`keel db upgrade` makes one)", field="url", value=url,
                                 kind="missing")
            if create:
                Path(db).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except (ArgumentError, ImportError) as exc:
        safe = parsed.render_as_string(hide_password=True)
        raise StoreError(f"unsupported database URL: {exc}", field="url", value=safe) from None
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def store_error(exc: BaseException, doing: str, url: str) -> StoreError:
    """A ``StoreError`` for a failed database call; ``context['kind']`` says which failure.

    ``kind`` is ``integrity`` (a unique, foreign-key or not-null constraint refused the row),
    ``invalid`` (a value the column types refuse: naive datetime, inexact decimal; the original
    ``field`` and ``value`` are kept), ``unavailable`` (connection, lock or disk trouble) or
    ``error``.
    """
    if isinstance(exc, StatementError) and isinstance(exc.orig, KeelError):
        orig = exc.orig
        return StoreError(f"{doing}: {orig.message}", field=orig.field, value=orig.value,
                          kind="invalid", url=url)
    if isinstance(exc, IntegrityError):
        kind = "integrity"
    elif isinstance(exc, OperationalError):
        kind = "unavailable"
    else:
        kind = "error"
    detail = exc.orig if isinstance(exc, DBAPIError) else exc
    first = str(detail).strip().splitlines()[0] if str(detail).strip() else type(detail).__name__
    return StoreError(f"{doing}: {type(detail).__name__}: {first}", kind=kind, url=url)


class Store:
    """Owns an engine and hands out transactional sessions.

    >>> store = Store.from_url("sqlite:///keel-out/keel.db")
    >>> store.upgrade()                # apply the migrations (the application path)
    >>> with store.session() as s:     # commits on success, rolls back on any error
    ...     s.add(...)
    """

    def __init__(self, engine: Engine) -> None:
        """Wrap ``engine``; build it with :func:`make_engine` (SQLite settings live there)."""
        self.engine = engine
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str, *, echo: bool = False, create: bool = True) -> Store:
        """The store at ``url``; ``create=False`` for readers: a missing SQLite file is a
        ``StoreError`` (kind ``missing``) instead of a new empty database."""
        return cls(make_engine(url, echo=echo, create=create))

    @classmethod
    def from_config(cls, config: KeelConfig | None = None) -> Store:
        """The store of ``config.store`` (default: ``load_config()``, i.e. defaults + KEEL_*)."""
        from keel.config import load_config

        cfg = config if config is not None else load_config()
        return cls.from_url(cfg.store.url, echo=cfg.store.echo)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def create_all(self) -> None:
        """Create every missing table straight from the metadata (tests only).

        The application path is :meth:`upgrade`; a database made here carries no Alembic
        revision, and :meth:`upgrade` adopts it only if its schema equals the metadata.
        """
        from keel.store.tables import Base

        try:
            Base.metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise store_error(exc, "cannot create tables", self.url) from exc

    @contextmanager
    def session(self, *, immediate: bool = False) -> Iterator[Session]:
        """A unit of work: commit on normal exit, roll back and raise ``StoreError`` on failure.

        Anything else raised inside the block rolls back too and propagates unchanged.

        Args:
            immediate: SQLite only: take the write lock when the transaction begins
                (``BEGIN IMMEDIATE``). Use it for read-modify-write units of work: with a plain
                ``BEGIN``, a transaction that has read cannot write once another connection
                has committed since, and fails at once (``StoreError``, kind ``unavailable``);
                with ``immediate`` it waits for the other writer (busy timeout) instead.
                PostgreSQL ignores it.
        """
        s = self._sessions()
        try:
            if immediate and self.dialect == "sqlite":
                s.connection(execution_options={_BEGIN_OPTION: "BEGIN IMMEDIATE"})
            yield s
            s.commit()
        except SQLAlchemyError as exc:
            _quiet_rollback(s)
            raise store_error(exc, "database operation failed", self.url) from exc
        except BaseException:
            _quiet_rollback(s)
            raise
        finally:
            s.close()

    def ping(self) -> None:
        """Raise ``StoreError`` unless the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise store_error(exc, "database unreachable", self.url) from None

    # ------------------------------------------------------------------ migrations

    def upgrade(self, revision: str = "head") -> str | None:
        """Migrate the schema up to ``revision``; returns the revision now current."""
        from keel.store import migrate

        return migrate.upgrade(self, revision)

    def downgrade(self, revision: str = "base") -> str | None:
        """Migrate the schema down to ``revision`` (``base``: no tables left)."""
        from keel.store import migrate

        return migrate.downgrade(self, revision)

    def current_revision(self) -> str | None:
        """The Alembic revision of the database (``None``: never migrated)."""
        from keel.store import migrate

        return migrate.current_revision(self)

    def head_revision(self) -> str:
        """The newest revision shipped with this code."""
        from keel.store import migrate

        return migrate.head_revision()

    def schema_diff(self) -> list[SchemaDiff]:
        """Differences between the database schema and ``tables.Base.metadata`` (empty: equal)."""
        from keel.store import migrate

        return migrate.schema_diff(self)

    def check_schema(self) -> None:
        """Raise ``StoreError`` unless the database is at head and equals the metadata."""
        from keel.store import migrate

        migrate.check_schema(self)

    def dispose(self) -> None:
        self.engine.dispose()


def _quiet_rollback(s: Session) -> None:
    with suppress(SQLAlchemyError):  # connection gone: the server rolls back on its own
        s.rollback()
