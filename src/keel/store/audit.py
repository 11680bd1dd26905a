"""Append-only audit log: who did what, to which entity, when, with which details.

Rows are only ever inserted: there is no update or delete here, and the ORM refuses to flush
a change or a deletion of an ``AuditRow`` (see ``keel.store.tables``). Timestamps come from the
caller (its :class:`~keel.clock.Clock`), never from the system clock.

>>> audit = AuditLog(store)
>>> audit.append("oms", "order.submit", "order", "o-1", {"qty": Decimal("10")}, clock.now())
>>> audit.query(action="order.submit", start=t0, end=t1)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from keel.store.db import Store
from keel.store.tables import AuditRow
from keel.store.values import check_limit, json_object, text_field
from keel.types import ensure_utc


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit entry as stored (``timestamp`` UTC tz-aware; ``payload`` plain JSON)."""

    id: int
    timestamp: datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    payload: dict[str, Any]

    @classmethod
    def from_row(cls, row: AuditRow) -> AuditRecord:
        return cls(id=row.id, timestamp=row.timestamp, actor=row.actor, action=row.action,
                   entity=row.entity, entity_id=row.entity_id, payload=dict(row.payload))


def audit_row(actor: str, action: str, entity: str, entity_id: str,
              payload: dict[str, Any] | None, timestamp: datetime) -> AuditRow:
    """A validated, not yet added audit row (lengths, UTC time, JSON payload checked).

    :meth:`AuditLog.append` uses it, and so do repositories that write audit rows inside a
    transaction of their own (the ledger), so every audit row passes the same checks.

    Raises:
        ValidationError: a bad argument (names the field).
    """
    return AuditRow(
        timestamp=ensure_utc(timestamp, "timestamp"),
        actor=text_field(actor, "actor", 64),
        action=text_field(action, "action", 64),
        entity=text_field(entity, "entity", 64, allow_empty=True),
        entity_id=text_field(entity_id, "entity_id", 128, allow_empty=True),
        payload=json_object(payload, "payload"),
    )


class AuditLog:
    """The ``audit_log`` table, append and query.

    Args:
        store: the database.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    @contextmanager
    def _unit(self, session: Session | None) -> Iterator[Session]:
        if session is not None:
            yield session
        else:
            with self.store.session() as s:
                yield s

    def append(self, actor: str, action: str, entity: str, entity_id: str,
               payload: dict[str, Any] | None, timestamp: datetime, *,
               session: Session | None = None) -> AuditRecord:
        """Record one entry; returns it with its id.

        Args:
            actor: who acted (component or user), 1-64 characters.
            action: what was done, e.g. ``order.submit``, 1-64 characters.
            entity: kind of thing acted on (``order``, ``run``...), up to 64 characters.
            entity_id: its id, up to 128 characters.
            payload: details; Decimals are kept as exact strings (see ``keel.store.jsonable``).
            timestamp: when, tz-aware (stored in UTC).
            session: write inside the caller's unit of work (committed with it) instead of
                a transaction of its own.

        Raises:
            ValidationError: a bad argument (names the field).
            StoreError: the database refused or failed.
        """
        row = audit_row(actor, action, entity, entity_id, payload, timestamp)
        with self._unit(session) as s:
            s.add(row)
            s.flush()
            return AuditRecord.from_row(row)

    def query(self, *, start: datetime | None = None, end: datetime | None = None,
              action: str | None = None, actor: str | None = None, entity: str | None = None,
              entity_id: str | None = None, limit: int | None = None,
              newest_first: bool = False) -> list[AuditRecord]:
        """Entries matching every given filter, in time order (ties by insertion order).

        ``start`` is inclusive and ``end`` exclusive (both tz-aware); ``limit`` caps the count.
        """
        stmt = self._filtered(select(AuditRow), start, end, action, actor, entity, entity_id)
        if newest_first:
            stmt = stmt.order_by(AuditRow.timestamp.desc(), AuditRow.id.desc())
        else:
            stmt = stmt.order_by(AuditRow.timestamp, AuditRow.id)
        if check_limit(limit) is not None:
            stmt = stmt.limit(limit)
        with self.store.session() as s:
            return [AuditRecord.from_row(r) for r in s.scalars(stmt)]

    def count(self, *, start: datetime | None = None, end: datetime | None = None,
              action: str | None = None, actor: str | None = None, entity: str | None = None,
              entity_id: str | None = None) -> int:
        """Number of entries matching the filters of :meth:`query`."""
        stmt = self._filtered(select(func.count()).select_from(AuditRow), start, end, action,
                              actor, entity, entity_id)
        with self.store.session() as s:
            return int(s.scalar(stmt) or 0)

    @staticmethod
    def _filtered(stmt: Select[Any], start: datetime | None, end: datetime | None,
                  action: str | None, actor: str | None, entity: str | None,
                  entity_id: str | None) -> Select[Any]:
        if start is not None:
            stmt = stmt.where(AuditRow.timestamp >= ensure_utc(start, "start"))
        if end is not None:
            stmt = stmt.where(AuditRow.timestamp < ensure_utc(end, "end"))
        for column, value in ((AuditRow.action, action), (AuditRow.actor, actor),
                              (AuditRow.entity, entity), (AuditRow.entity_id, entity_id)):
            if value is not None:
                stmt = stmt.where(column == value)
        return stmt
