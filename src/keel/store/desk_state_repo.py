"""A live desk's state in the store (``desk_state``): one JSON row per desk name, versioned.

What lives here is what ``keel run`` must not forget when it restarts: the equity watermark the
drawdown rule reads, the annual turnover already spent, the standing target the drift bands sit
around (see :meth:`keel.app.cycle.DecisionCycle.state`). Each :meth:`DeskStateRepo.put` bumps
the version; ``expected_version`` guards against a second writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update

from keel.errors import StoreError
from keel.store.db import Store
from keel.store.tables import DeskStateRow
from keel.store.values import json_object, text_field
from keel.types import ensure_utc


@dataclass(frozen=True, slots=True)
class DeskStateRecord:
    """A desk's state as stored (``updated_at`` UTC tz-aware)."""

    name: str
    version: int
    state: dict[str, Any]
    updated_at: datetime


class DeskStateRepo:
    """The ``desk_state`` table.

    Args:
        store: the database.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, name: str) -> DeskStateRecord | None:
        """The current state of desk ``name`` (None when never saved)."""
        text_field(name, "name", 64)
        with self.store.session() as s:
            row = s.get(DeskStateRow, name)
            if row is None:
                return None
            return DeskStateRecord(row.name, row.version, dict(row.state), row.updated_at)

    def put(self, name: str, state: dict[str, Any], at: datetime, *,
            expected_version: int | None = None) -> DeskStateRecord:
        """Save ``state`` as the next version of desk ``name``.

        Args:
            name: desk name (<= 64 characters; ``general.name``).
            state: JSON object (finite numbers).
            at: time of the save (UTC tz-aware).
            expected_version: refuse unless the stored version is this one (None: no check;
                0: the name must be new).

        Raises:
            ValidationError: a bad name, time or a state that is not JSON (names the field).
            StoreError: the stored version differs (``kind=conflict``), or the database failed.
        """
        text_field(name, "name", 64)
        when = ensure_utc(at, "at")
        payload = json_object(state, "state")
        with self.store.session(immediate=True) as s:
            row = s.get(DeskStateRow, name)
            current = 0 if row is None else row.version
            if expected_version is not None and expected_version != current:
                raise StoreError("desk state was changed by another writer", field="version",
                                 value=current, expected=expected_version, kind="conflict")
            version = current + 1
            if row is None:
                s.add(DeskStateRow(name=name, version=version, state=payload, updated_at=when))
            else:
                done = s.execute(
                    update(DeskStateRow)
                    .where(DeskStateRow.name == name, DeskStateRow.version == current)
                    .values(version=version, state=payload, updated_at=when)
                    .execution_options(synchronize_session=False))
                if getattr(done, "rowcount", 1) != 1:
                    raise StoreError("desk state was changed by another writer",
                                     field="version", value=current, kind="conflict")
        return DeskStateRecord(name, version, payload, when)
