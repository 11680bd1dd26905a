"""Shared fixtures: paths to the real data in ../shared, databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KEEL_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"
# FIX data dictionaries: the shared reference copy when present, else the one keel ships
# (so FIX tests run, and can fail, on a checkout without ../shared).
_SHARED_FIX_SPEC = SHARED / "fix" / "spec"
FIX_SPEC = (_SHARED_FIX_SPEC if (_SHARED_FIX_SPEC / "FIX42.xml").is_file()
            else Path(__import__("keel.venues.fix.dictionary", fromlist=["x"]).PACKAGED_SPEC_DIR))
PG_URL = os.environ.get("KEEL_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("KEEL_REQUIRE_POSTGRES", "") in ("1", "true", "yes")

_pg_state: dict[str, str | None] = {}


def _pg_unreachable_reason() -> str | None:
    """None when PostgreSQL answers at PG_URL, else why not (cached per session)."""
    if "reason" not in _pg_state:
        try:
            import sqlalchemy as sa

            eng = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with eng.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            eng.dispose()
            _pg_state["reason"] = None
        except Exception as exc:
            _pg_state["reason"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return _pg_state["reason"]


def pytest_report_header(config: pytest.Config) -> list[str]:
    reason = _pg_unreachable_reason()
    if reason is None:
        return [f"keel: PostgreSQL reachable at {PG_URL}: store tests run on SQLite and PG"]
    if REQUIRE_PG:
        return [f"keel: PostgreSQL NOT reachable ({reason}) and KEEL_REQUIRE_POSTGRES=1: "
                "PostgreSQL tests will FAIL"]
    return [f"keel: PostgreSQL NOT reachable ({reason}): PostgreSQL tests will be SKIPPED"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _pg_state.get("reason"):
        terminalreporter.write_line(
            f"NOTE: PostgreSQL tests were skipped (no server at {PG_URL}).", yellow=True)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real market data; tests needing it are skipped when ../shared is absent."""
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA}")
    return DATA


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'keel.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema per test (dropped afterwards)."""
    reason = _pg_unreachable_reason()
    if reason is not None:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL required (KEEL_REQUIRE_POSTGRES=1) but unreachable: {reason}")
        pytest.skip(f"PostgreSQL not reachable: {reason}")
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    eng = sa.create_engine(PG_URL)
    try:
        with eng.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = (sa.engine.make_url(PG_URL)
               .update_query_dict({"options": f"-csearch_path={schema}"})
               .render_as_string(hide_password=False))
        yield url
    finally:
        with eng.begin() as conn:
            # A test that left a transaction open must not hang the suite on the drop.
            conn.execute(sa.text("SET lock_timeout = '10s'"))
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        eng.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Parametrises a test over both databases."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'keel.db'}"
    else:
        yield request.getfixturevalue("pg_url")
