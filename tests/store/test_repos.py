"""Audit log and run registry on both backends; JSON payload checks."""

from __future__ import annotations

from datetime import timedelta, timezone
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from keel.clock import SimulatedClock
from keel.config import config_as_dict, load_config
from keel.errors import StoreError, ValidationError
from keel.store import Store
from keel.store.audit import AuditLog
from keel.store.runs import RunRegistry, RunStatus
from keel.store.tables import FillRow
from keel.store.values import jsonable
from keel.types import Side, utc

T0 = utc(2024, 3, 1, 14, 30)


def _log(store: Store) -> tuple[AuditLog, SimulatedClock]:
    clock = SimulatedClock(T0)
    log = AuditLog(store)
    for i, (actor, action, entity) in enumerate([
            ("oms", "order.submit", "order"), ("risk", "limit.breach", "portfolio"),
            ("oms", "order.cancel", "order"), ("oms", "order.submit", "order")]):
        log.append(actor, action, entity, f"id-{i}", {"i": i}, clock.now())
        clock.advance(60)
    return log, clock


def test_audit_append_and_query(store: Store) -> None:
    log, _ = _log(store)
    everything = log.query()
    assert [r.entity_id for r in everything] == ["id-0", "id-1", "id-2", "id-3"]
    assert everything[1].timestamp == T0 + timedelta(minutes=1)
    assert everything[1].payload == {"i": 1}
    assert [r.entity_id for r in log.query(action="order.submit")] == ["id-0", "id-3"]
    assert [r.entity_id for r in log.query(actor="risk")] == ["id-1"]
    assert [r.entity_id for r in log.query(entity="order", entity_id="id-2")] == ["id-2"]
    window = log.query(start=T0 + timedelta(minutes=1), end=T0 + timedelta(minutes=3))
    assert [r.entity_id for r in window] == ["id-1", "id-2"]  # [start, end)
    assert [r.entity_id for r in log.query(newest_first=True, limit=2)] == ["id-3", "id-2"]
    assert log.count(action="order.submit") == 2 and log.count() == 4


def test_audit_time_filters_accept_any_zone(store: Store) -> None:
    log, _ = _log(store)
    ny = timezone(timedelta(hours=-5))
    start = (T0 + timedelta(minutes=2)).astimezone(ny)
    assert [r.entity_id for r in log.query(start=start)] == ["id-2", "id-3"]


def test_audit_payload_keeps_decimals_exact(store: Store) -> None:
    class Colour(Enum):
        RED = "red"

    log = AuditLog(store)
    rec = log.append("oms", "fill", "order", "o-1",
                     {"qty": Decimal("123456.000000000001"), "side": Side.BUY,
                      "at": T0.astimezone(timezone(timedelta(hours=9))), "tags": ("a", "b"),
                      "c": Colour.RED, "nested": {"tiny": Decimal("1E-12")}}, T0)
    (got,) = log.query()
    assert got == rec
    assert got.payload == {"qty": "123456.000000000001", "side": "BUY",
                           "at": "2024-03-01T14:30:00+00:00", "tags": ["a", "b"], "c": "red",
                           "nested": {"tiny": "1E-12"}}
    assert Decimal(got.payload["qty"]) == Decimal("123456.000000000001")


def test_audit_joins_the_callers_unit_of_work(store: Store) -> None:
    log = AuditLog(store)
    with pytest.raises(StoreError), store.session() as s:
        log.append("oms", "fill.book", "fill", "e-1", None, T0, session=s)
        s.add(FillRow(exec_id="e-1", client_order_id="c", symbol="X", side="BUY", qty=1,
                      price=1, timestamp=None))  # NOT NULL: the whole unit fails
    assert log.query() == []
    with store.session() as s:
        log.append("oms", "fill.book", "fill", "e-1", None, T0, session=s)
    assert [r.payload for r in log.query()] == [{}]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"actor": ""}, "actor"),
    ({"actor": "x" * 65}, "actor"),
    ({"action": 3}, "action"),
    ({"entity_id": "x" * 129}, "entity_id"),
    ({"timestamp": T0.replace(tzinfo=None)}, "timestamp"),
    ({"payload": [1, 2]}, "payload"),
    ({"payload": {"x": float("nan")}}, "payload.x"),
    ({"payload": {"x": [1, {"y": object()}]}}, "payload.x[1].y"),
    ({"payload": {1: "a"}}, "payload"),
])
def test_audit_refuses_bad_input(sqlite_url: str, kwargs: dict[str, Any], field: str) -> None:
    # Refused before any SQL is sent: one backend is enough.
    store = Store.from_url(sqlite_url)
    store.upgrade()
    args: dict[str, Any] = dict(actor="oms", action="a", entity="e", entity_id="i",
                                payload={}, timestamp=T0)
    args.update(kwargs)
    with pytest.raises(ValidationError) as info:
        AuditLog(store).append(**args)
    assert info.value.field == field
    assert AuditLog(store).query() == []
    store.dispose()


def test_audit_query_refuses_bad_bounds(store: Store) -> None:
    with pytest.raises(ValidationError) as info:
        AuditLog(store).query(start=T0.replace(tzinfo=None))
    assert info.value.field == "start"
    with pytest.raises(ValidationError) as info:
        AuditLog(store).query(limit=-1)
    assert info.value.field == "limit"


def test_run_lifecycle(store: Store) -> None:
    runs = RunRegistry(store)
    cfg = config_as_dict(load_config())
    started = runs.start("r-1", "backtest", cfg, T0)
    assert started.status is RunStatus.RUNNING and started.finished_at is None
    runs.start("r-2", "demo", {"seed": 1}, T0 + timedelta(hours=1))
    done = runs.finish("r-1", RunStatus.SUCCEEDED,
                       {"sharpe": 1.25, "pnl": Decimal("1234.000000000001")},
                       T0 + timedelta(minutes=5))
    assert done.status is RunStatus.SUCCEEDED
    assert done.finished_at == T0 + timedelta(minutes=5)
    assert done.metrics == {"sharpe": 1.25, "pnl": "1234.000000000001"}
    assert runs.get("r-1").config == cfg
    assert [r.run_id for r in runs.list_runs()] == ["r-2", "r-1"]
    assert [r.run_id for r in runs.list_runs(kind="backtest")] == ["r-1"]
    assert [r.run_id for r in runs.list_runs(status="running")] == ["r-2"]
    assert [r.run_id for r in runs.list_runs(limit=1)] == ["r-2"]


def test_run_errors(store: Store) -> None:
    runs = RunRegistry(store)
    runs.start("r-1", "demo", {}, T0)
    with pytest.raises(StoreError) as info:
        runs.start("r-1", "demo", {}, T0)
    assert info.value.context["kind"] == "integrity"
    with pytest.raises(StoreError) as info:
        runs.get("missing")
    assert info.value.field == "run_id" and info.value.value == "missing"
    with pytest.raises(StoreError) as info:
        runs.finish("missing", "failed", {}, T0)
    assert info.value.field == "run_id"
    with pytest.raises(ValidationError) as info:
        runs.finish("r-1", "running", {}, T0)
    assert info.value.field == "status"
    with pytest.raises(ValidationError) as info:
        runs.finish("r-1", "exploded", {}, T0)
    assert info.value.field == "status"
    with pytest.raises(ValidationError) as info:
        runs.finish("r-1", "failed", {}, T0 - timedelta(seconds=1))
    assert info.value.field == "finished_at"
    with pytest.raises(ValidationError) as info:
        runs.finish("r-1", "failed", {"sharpe": float("nan")}, T0)
    assert info.value.field == "metrics.sharpe"
    assert runs.get("r-1").status is RunStatus.RUNNING  # nothing half-done
    runs.finish("r-1", RunStatus.FAILED, None, T0)
    with pytest.raises(StoreError, match="finished already") as info:
        runs.finish("r-1", RunStatus.SUCCEEDED, {}, T0)
    assert info.value.field == "run_id"
    assert runs.get("r-1").status is RunStatus.FAILED


def test_jsonable_conversions() -> None:
    assert jsonable({"p": Path("/a/b"), "d": T0.date(), "n": None, "b": True}) == {
        "p": "/a/b", "d": "2024-03-01", "n": None, "b": True}
    with pytest.raises(ValidationError) as info:
        jsonable({"x": Decimal("Infinity")})
    assert info.value.field == "payload.x"
