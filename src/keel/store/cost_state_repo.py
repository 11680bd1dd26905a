"""The learned cost-model state in the store: current state per model name, version history.

The state is the JSON dict of :meth:`keel.costs.adaptive.AdaptiveCost.state` (this module
does not import the costs layer; it needs only the ``parts``, ``multipliers`` and ``n_obs``
keys, for the history). Each :meth:`CostStateRepo.put` bumps the version and appends a
history row in the same transaction, so the current row and the history never disagree.

>>> repo = CostStateRepo(store)
>>> repo.put("default", model.state(), clock.now(), observed=12)
>>> AdaptiveCost.from_state(repo.get("default").state, base)    # after a restart
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from keel.errors import StoreError, ValidationError
from keel.store.db import Store
from keel.store.tables import CostModelHistoryRow, CostModelStateRow
from keel.store.values import check_limit, json_object, text_field
from keel.types import ensure_utc


@dataclass(frozen=True, slots=True)
class CostStateRecord:
    """A model's current state as stored (``updated_at`` UTC tz-aware)."""

    name: str
    version: int
    state: dict[str, Any]
    updated_at: datetime

    @property
    def multipliers(self) -> dict[str, float]:
        """Part name -> multiplier."""
        return dict(zip(self.state["parts"], self.state["multipliers"], strict=True))


@dataclass(frozen=True, slots=True)
class CostStatePoint:
    """One saved version: the multipliers then, observations so far, orders in this update."""

    name: str
    version: int
    multipliers: dict[str, float]
    n_obs: int
    observed: int
    recorded_at: datetime


def _summary(state: dict[str, Any]) -> tuple[dict[str, float], int]:
    try:
        mult = {str(p): float(k) for p, k in zip(state["parts"], state["multipliers"],
                                                  strict=True)}
        return mult, int(state["n_obs"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationError(f"cost state needs parts, multipliers and n_obs: {exc}",
                              field="state") from None


class CostStateRepo:
    """The ``cost_model_state`` and ``cost_model_history`` tables.

    Args:
        store: the database.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, name: str = "default") -> CostStateRecord | None:
        """The current state of ``name`` (None when never saved)."""
        with self.store.session() as s:
            row = s.get(CostModelStateRow, name)
            if row is None:
                return None
            return CostStateRecord(row.name, row.version, dict(row.state), row.updated_at)

    def put(self, name: str, state: dict[str, Any], at: datetime, *, observed: int = 0,
            expected_version: int | None = None) -> CostStateRecord:
        """Save ``state`` as the next version of ``name`` and append it to the history.

        Args:
            name: model name (<= 64 characters).
            state: ``AdaptiveCost.state()`` (JSON; finite numbers).
            at: the time of the update (UTC tz-aware).
            observed: orders observed in this update (for the history).
            expected_version: refuse unless the stored version is this one (None: no check;
                0: the name must be new). Guards two writers against each other.

        Raises:
            ValidationError: a bad argument or a state that is not JSON (names the field).
            StoreError: the stored version differs from ``expected_version``
                (``kind=conflict``), or the database failed.
        """
        text_field(name, "name", 64)
        when = ensure_utc(at, "at")
        payload = json_object(state, "state")
        mult, n_obs = _summary(payload)
        if isinstance(observed, bool) or not isinstance(observed, int) or observed < 0:
            raise ValidationError("observed must be a non-negative integer", field="observed",
                                  value=observed)
        with self.store.session(immediate=True) as s:
            row = s.get(CostModelStateRow, name)
            current = 0 if row is None else row.version
            if expected_version is not None and expected_version != current:
                raise StoreError("cost state was changed by another writer", field="version",
                                 value=current, expected=expected_version, kind="conflict")
            version = current + 1
            if row is None:
                s.add(CostModelStateRow(name=name, version=version, state=payload,
                                        updated_at=when))
            else:
                done = s.execute(
                    update(CostModelStateRow)
                    .where(CostModelStateRow.name == name,
                           CostModelStateRow.version == current)
                    .values(version=version, state=payload, updated_at=when)
                    .execution_options(synchronize_session=False))
                if getattr(done, "rowcount", 1) != 1:
                    raise StoreError("cost state was changed by another writer",
                                     field="version", value=current, kind="conflict")
            s.add(CostModelHistoryRow(name=name, version=version, multipliers=mult,
                                      n_obs=n_obs, observed=observed, recorded_at=when))
        return CostStateRecord(name, version, payload, when)

    def history(self, name: str = "default", *, limit: int | None = None
                ) -> list[CostStatePoint]:
        """Saved versions of ``name``, newest first."""
        stmt = (select(CostModelHistoryRow).where(CostModelHistoryRow.name == name)
                .order_by(CostModelHistoryRow.version.desc()))
        if check_limit(limit) is not None:
            stmt = stmt.limit(limit)
        with self.store.session() as s:
            return [CostStatePoint(r.name, r.version, dict(r.multipliers), r.n_obs,
                                   r.observed, r.recorded_at) for r in s.scalars(stmt)]

    def names(self) -> list[str]:
        """Every model name with a saved state."""
        with self.store.session() as s:
            return list(s.scalars(select(CostModelStateRow.name)
                                  .order_by(CostModelStateRow.name)))
