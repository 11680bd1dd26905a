"""Database engine and sessions: SQLite (WAL) at a path by default, PostgreSQL by URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from keel.errors import StoreError


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``; SQLite files get WAL, foreign keys and a busy timeout.

    The parent folder of a SQLite file is created. Raises ``StoreError`` for a bad URL.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"invalid database URL: {exc}", field="url", value=url) from None
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False}
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs["pool_pre_ping"] = True
    return create_engine(url, **kwargs)


class Store:
    """Owns an engine and hands out transactional sessions.

    >>> store = Store.from_url("sqlite:///keel-out/keel.db")
    >>> store.create_all()
    >>> with store.session() as s:   # commits on success, rolls back on any error
    ...     s.add(...)
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False, future=True)

    @classmethod
    def from_url(cls, url: str, *, echo: bool = False) -> Store:
        return cls(make_engine(url, echo=echo))

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def create_all(self) -> None:
        """Create every missing table (tests, first run); migrations: ``keel db upgrade``."""
        from keel.store.tables import Base

        try:
            Base.metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot create tables: {exc}", url=self.url) from exc

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commit on normal exit, roll back and raise ``StoreError`` on failure."""
        s = self._sessions()
        try:
            yield s
            s.commit()
        except SQLAlchemyError as exc:
            s.rollback()
            raise StoreError(f"database operation failed: {exc.__class__.__name__}: {exc}",
                             url=self.url) from exc
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def ping(self) -> None:
        """Raise ``StoreError`` unless the database answers."""
        from sqlalchemy import text

        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            raise StoreError(f"database unreachable: {exc.orig}", url=self.url) from None

    def dispose(self) -> None:
        self.engine.dispose()
