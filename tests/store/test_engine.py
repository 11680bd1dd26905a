"""Engine set-up: SQLite pragmas, URL handling, error mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import StoreError
from keel.store import Store, make_engine


def test_sqlite_engine_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'keel.db'}"
    store = Store.from_url(url)  # creates the parent folders
    with store.engine.connect() as conn:
        pragma = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                  for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")}
    store.dispose()
    assert pragma == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1,
                      "busy_timeout": 5000}
    assert (tmp_path / "nested" / "dir" / "keel.db").is_file()


def test_plain_postgresql_url_uses_psycopg3() -> None:
    engine = make_engine("postgresql://u:secret@127.0.0.1:1/x")
    assert engine.dialect.driver == "psycopg"
    assert "secret" not in Store(engine).url


@pytest.mark.parametrize("url", ["", "::", "nosuchdb://x"])
def test_bad_url(url: str) -> None:
    with pytest.raises(StoreError) as info:
        make_engine(url)
    assert info.value.field == "url"


def test_unreachable_server_is_a_store_error() -> None:
    store = Store.from_url("postgresql+psycopg://u:secret@127.0.0.1:1/x")
    with pytest.raises(StoreError, match="unreachable") as info:
        store.ping()
    assert info.value.context["kind"] == "unavailable"
    assert "secret" not in str(info.value)


def test_ping(db_url: str) -> None:
    store = Store.from_url(db_url)
    store.ping()
    store.dispose()


def test_immediate_sessions_serialise_read_modify_write(sqlite_url: str) -> None:
    import threading

    from sqlalchemy import func, select

    from keel.store.tables import AuditRow
    from keel.types import utc

    store = Store.from_url(sqlite_url)
    store.upgrade()
    errors: list[Exception] = []

    def work(name: str) -> None:
        try:
            for _ in range(10):
                with store.session(immediate=True) as s:
                    seen = s.scalar(select(func.count()).select_from(AuditRow))
                    s.add(AuditRow(timestamp=utc(2024, 1, 1), actor=name, action=str(seen),
                                   payload={}))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with store.session() as s:
        actions = sorted(int(a) for a in s.scalars(select(AuditRow.action)))
    store.dispose()
    assert errors == []
    assert actions == list(range(30))  # every writer saw every earlier commit


def test_immediate_is_harmless_on_every_backend(db_url: str) -> None:
    store = Store.from_url(db_url)
    store.upgrade()
    with store.session(immediate=True) as s:
        assert s.connection().exec_driver_sql("SELECT 1").scalar() == 1
    store.dispose()


def test_store_from_config(tmp_path: Path) -> None:
    from keel.config import load_config

    cfg = load_config(store={"url": f"sqlite:///{tmp_path / 'cfg.db'}"})
    store = Store.from_config(cfg)
    assert store.upgrade() == store.head_revision()
    assert (tmp_path / "cfg.db").is_file()
    store.dispose()
