"""Runs of keel (demo, backtest, live): started with their config, finished with a status and
summary metrics. Times come from the caller's :class:`~keel.clock.Clock`.

>>> runs = RunRegistry(store)
>>> runs.start("bt-2024-001", "backtest", config_as_dict(cfg), clock.now())
>>> runs.finish("bt-2024-001", RunStatus.SUCCEEDED, {"sharpe": 1.3}, clock.now())
>>> runs.get("bt-2024-001").status
<RunStatus.SUCCEEDED: 'succeeded'>
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update

from keel.errors import StoreError, ValidationError
from keel.store.db import Store
from keel.store.tables import RunRow
from keel.store.values import check_limit, json_object, text_field
from keel.types import ensure_utc


class RunStatus(StrEnum):
    """Lifecycle of a run: ``running`` until finished with one of the three others."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as stored (times UTC tz-aware; ``finished_at`` is ``None`` while running)."""

    run_id: str
    kind: str
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    config: dict[str, Any]
    metrics: dict[str, Any]

    @classmethod
    def from_row(cls, row: RunRow) -> RunRecord:
        return cls(run_id=row.run_id, kind=row.kind, status=RunStatus(row.status),
                   started_at=row.started_at, finished_at=row.finished_at,
                   config=dict(row.config), metrics=dict(row.metrics))


def _status(value: Any) -> RunStatus:
    try:
        return RunStatus(value)
    except ValueError:
        raise ValidationError(f"unknown run status (one of {[s.value for s in RunStatus]})",
                              field="status", value=value) from None


class RunRegistry:
    """The ``runs`` table: start, finish, get, list.

    Args:
        store: the database.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def start(self, run_id: str, kind: str, config: dict[str, Any],
              started_at: datetime) -> RunRecord:
        """Record a new run in status ``running``.

        Raises:
            ValidationError: a bad argument (names the field).
            StoreError: ``run_id`` exists already (``kind=integrity``) or the database failed.
        """
        row = RunRow(run_id=text_field(run_id, "run_id", 64), kind=text_field(kind, "kind", 32),
                     started_at=ensure_utc(started_at, "started_at"), finished_at=None,
                     status=RunStatus.RUNNING.value, config=json_object(config, "config"),
                     metrics={})
        with self.store.session() as s:
            s.add(row)
        return RunRecord.from_row(row)

    def finish(self, run_id: str, status: RunStatus | str, metrics: dict[str, Any] | None,
               finished_at: datetime) -> RunRecord:
        """Close a running run with a final status and its metrics (JSON, finite numbers).

        Raises:
            ValidationError: ``status`` is not final, ``finished_at`` precedes the start, or
                the metrics are not JSON (names the field).
            StoreError: unknown ``run_id`` or a run finished already (field ``run_id``).
        """
        final = _status(status)
        if final is RunStatus.RUNNING:
            raise ValidationError("a run is finished with a final status", field="status",
                                  value=final.value)
        when = ensure_utc(finished_at, "finished_at")
        values = json_object(metrics, "metrics")
        with self.store.session() as s:
            row = s.scalar(select(RunRow).where(RunRow.run_id == run_id))
            if row is None:
                raise StoreError("unknown run", field="run_id", value=run_id)
            if when < row.started_at:
                raise ValidationError("a run cannot finish before it started",
                                      field="finished_at", value=when,
                                      started_at=row.started_at)
            # Conditional update: of two concurrent finishers exactly one wins.
            done = s.execute(
                update(RunRow)
                .where(RunRow.run_id == run_id, RunRow.status == RunStatus.RUNNING.value)
                .values(status=final.value, finished_at=when, metrics=values)
                .execution_options(synchronize_session=False))
            if getattr(done, "rowcount", 1) != 1:
                raise StoreError("run is finished already", field="run_id", value=run_id,
                                 status=row.status)
        return self.get(run_id)

    def get(self, run_id: str) -> RunRecord:
        """The run ``run_id``; ``StoreError`` (field ``run_id``) when there is none."""
        with self.store.session() as s:
            row = s.scalar(select(RunRow).where(RunRow.run_id == run_id))
            if row is None:
                raise StoreError("unknown run", field="run_id", value=run_id)
            return RunRecord.from_row(row)

    def list_runs(self, *, kind: str | None = None, status: RunStatus | str | None = None,
                  limit: int | None = None) -> list[RunRecord]:
        """Runs newest first (by start time), optionally of one kind and/or status."""
        stmt = select(RunRow).order_by(RunRow.started_at.desc(), RunRow.id.desc())
        if kind is not None:
            stmt = stmt.where(RunRow.kind == kind)
        if status is not None:
            stmt = stmt.where(RunRow.status == _status(status).value)
        if check_limit(limit) is not None:
            stmt = stmt.limit(limit)
        with self.store.session() as s:
            return [RunRecord.from_row(r) for r in s.scalars(stmt)]
