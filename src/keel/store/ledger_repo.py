"""Repository of the portfolio ledger: versioned entries, snapshots and their audit rows.

Works on the existing tables ``ledger_entries``, ``portfolio_snapshots`` and ``audit_log``.
The repository speaks plain dicts and Decimals (it knows nothing of ``keel.portfolio``): the
ledger serialises its own changes. Optimistic locking: versions are consecutive from 1, so a
writer whose expected version is stale tries to insert a version that exists; the unique
``(account, version)`` constraint refuses it and :meth:`append` raises
:class:`~keel.errors.ConcurrencyError` (a head check after the insert covers the rest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from keel.errors import ConcurrencyError, StoreError
from keel.store.audit import audit_row
from keel.store.db import Store
from keel.store.tables import AuditRow, LedgerEntryRow, PortfolioSnapshotRow


@dataclass(frozen=True, slots=True)
class EntryRecord:
    """One booked ledger change at ``version`` (payload values are JSON: exact decimal strings)."""

    version: int
    kind: str
    payload: dict[str, Any]
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """A full ledger state saved at ``version``; ``state`` is the ledger's JSON form."""

    version: int
    timestamp: datetime
    cash: Decimal
    equity: Decimal
    state: dict[str, Any]
    label: str = ""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An audit-log line written in the same database transaction as the change it describes."""

    timestamp: datetime
    actor: str
    action: str
    entity: str = ""
    entity_id: str = ""
    payload: dict[str, Any] = field(default_factory=dict)


class LedgerRepository:
    """Reads and appends one account's ledger history in a :class:`~keel.store.db.Store`.

    Args:
        store: the database.
        account: the ledger account name (several ledgers can share a database).
    """

    def __init__(self, store: Store, account: str = "default") -> None:
        self.store = store
        self.account = account

    # ------------------------------------------------------------------ reads

    def head_version(self) -> int:
        """Highest booked version of the account (0 when nothing is booked)."""
        with self.store.session() as s:
            return self._head(s)

    def _head(self, s: Any) -> int:
        q = select(func.max(LedgerEntryRow.version)).where(
            LedgerEntryRow.account == self.account)
        head = s.execute(q).scalar_one_or_none()
        return int(head or 0)

    def entries_after(self, version: int) -> list[EntryRecord]:
        """Every entry with a version greater than ``version``, in version order."""
        with self.store.session() as s:
            t = LedgerEntryRow
            rows = s.execute(
                select(t.version, t.kind, t.payload, t.timestamp)  # columns: no ORM objects
                .where(t.account == self.account, t.version > version)
                .order_by(t.version)).all()
            return [EntryRecord(int(v), k, dict(p), ts) for v, k, p, ts in rows]

    def latest_snapshot(self, max_version: int | None = None) -> SnapshotRecord | None:
        """The newest snapshot (at or below ``max_version`` if given), or None."""
        with self.store.session() as s:
            q = select(PortfolioSnapshotRow).where(PortfolioSnapshotRow.account == self.account)
            if max_version is not None:
                q = q.where(PortfolioSnapshotRow.version <= max_version)
            row = s.execute(q.order_by(PortfolioSnapshotRow.version.desc()).limit(1)
                            ).scalars().first()
            if row is None:
                return None
            return SnapshotRecord(int(row.version), row.timestamp, row.cash, row.equity,
                                  dict(row.positions), row.label)

    def audit_rows(self, action_prefix: str = "") -> list[AuditRecord]:
        """Audit rows of this account whose action starts with ``action_prefix``, oldest first."""
        with self.store.session() as s:
            q = (select(AuditRow)
                 .where(AuditRow.entity_id.like(f"{self.account}:%"))
                 .order_by(AuditRow.id))
            if action_prefix:
                q = q.where(AuditRow.action.like(f"{action_prefix}%"))
            return [AuditRecord(r.timestamp, r.actor, r.action, r.entity, r.entity_id,
                                dict(r.payload)) for r in s.execute(q).scalars().all()]

    # ------------------------------------------------------------------ writes

    def append(self, expected_version: int, entries: list[EntryRecord],
               audits: list[AuditRecord]) -> int:
        """Insert ``entries`` (versions ``expected_version + 1 ...``) and ``audits`` atomically.

        Returns:
            the new head version.

        Raises:
            ConcurrencyError: the stored head is not ``expected_version`` (a concurrent writer
                booked first), or a concurrent insert of the same version won the race.
            StoreError: any other database failure; nothing is written.
        """
        for i, e in enumerate(entries, start=1):
            if e.version != expected_version + i:
                raise StoreError("ledger entries must carry consecutive versions",
                                 field="version", value=e.version)
        audit_rows = [_row(a) for a in audits]  # validated before anything is written
        try:
            with self.store.session(immediate=True) as s:
                # Write first, check after: the insert takes the write lock at once (SQLite
                # waits on busy_timeout instead of failing a read-to-write upgrade) and a
                # taken version hits the unique constraint on every backend.
                if entries:
                    s.execute(insert(LedgerEntryRow), [
                        {"account": self.account, "version": e.version, "kind": e.kind,
                         "payload": e.payload, "timestamp": e.timestamp} for e in entries])
                s.add_all(audit_rows)
                head = self._head(s)
                if head != expected_version + len(entries):
                    raise ConcurrencyError(
                        "stale ledger version: another writer booked first",
                        field="version", value=expected_version, account=self.account,
                        head=head)
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise ConcurrencyError(
                    "stale ledger version: a concurrent writer inserted the same version",
                    field="version", value=expected_version, account=self.account) from None
            raise
        return expected_version + len(entries)

    def save_snapshot(self, snap: SnapshotRecord, audit: AuditRecord | None = None) -> None:
        """Store a snapshot (one per version; saving the same version twice is refused)."""
        row = _row(audit) if audit is not None else None
        try:
            with self.store.session(immediate=True) as s:
                s.add(PortfolioSnapshotRow(
                    account=self.account, version=snap.version, timestamp=snap.timestamp,
                    cash=snap.cash, equity=snap.equity, positions=snap.state,
                    label=snap.label))
                if row is not None:
                    s.add(row)
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise ConcurrencyError("a snapshot already exists at this version",
                                       field="version", value=snap.version,
                                       account=self.account) from None
            raise


def _row(a: AuditRecord) -> AuditRow:
    return audit_row(a.actor, a.action, a.entity, a.entity_id, a.payload, a.timestamp)
