"""``/ready`` beside ``/health``: store reachable, schema at head, the process's own checks; and
internal errors answered with an error id, their detail only in the log."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from keel.app.service import create_app
from keel.store.db import Store


@pytest.fixture
def migrated(db_url: str):
    store = Store.from_url(db_url)
    store.upgrade()
    yield store
    store.dispose()


def test_ready_when_migrated_and_checks_pass(migrated: Store) -> None:
    r = TestClient(create_app(migrated, readiness={"venue": lambda: None})).get("/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["ready"] is True
    assert body["checks"] == {"store": None, "migrations": None, "venue": None}


def test_not_ready_below_head_but_still_alive(migrated: Store) -> None:
    migrated.downgrade("0001")
    c = TestClient(create_app(migrated))
    r = c.get("/ready")
    assert r.status_code == 503
    assert r.json()["checks"]["migrations"] == (
        f"schema at 0001, code needs {migrated.head_revision()}")
    assert c.get("/health").status_code == 200      # liveness does not depend on migrations


def test_not_ready_when_the_store_is_unreachable(tmp_path) -> None:
    bad = Store.from_url(f"sqlite:///{tmp_path}")    # a folder where the file should be
    r = TestClient(create_app(bad, readiness={"venue": lambda: None})).get("/ready")
    assert r.status_code == 503
    checks = r.json()["checks"]
    assert checks["store"] and checks["migrations"] == "skipped" and checks["venue"] == "skipped"


def test_a_failing_or_raising_process_check_is_named(migrated: Store) -> None:
    def broken() -> str | None:
        raise RuntimeError("socket closed")

    c = TestClient(create_app(migrated, readiness={"venue": lambda: "FIX session not logged on"}))
    assert c.get("/ready").json()["checks"]["venue"] == "FIX session not logged on"
    c = TestClient(create_app(migrated, readiness={"venue": broken}))
    r = c.get("/ready")
    assert r.status_code == 503 and r.json()["checks"]["venue"] == "RuntimeError: socket closed"


def test_internal_errors_give_an_id_not_a_traceback(migrated: Store, caplog) -> None:
    app = create_app(migrated)

    @app.get("/boom")
    def boom() -> None:
        raise ZeroDivisionError("secret internal detail")

    with caplog.at_level(logging.ERROR, logger="keel.app.service"):
        r = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert r.status_code == 500
    body = r.json()
    assert body["detail"] == "internal error" and len(body["error_id"]) == 12
    assert "secret" not in r.text and "Traceback" not in r.text
    logged = [rec for rec in caplog.records if body["error_id"] in rec.getMessage()]
    assert logged and logged[0].exc_info is not None
