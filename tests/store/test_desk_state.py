"""The live desk's memory in the store (``desk_state``): versions and conflicts, on SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from keel.errors import StoreError, ValidationError
from keel.store import Store
from keel.store.desk_state_repo import DeskStateRepo
from keel.types import utc

T0 = utc(2024, 1, 2, 21)


def test_put_get_versions_and_conflicts(store: Store) -> None:
    repo = DeskStateRepo(store)
    assert repo.get("desk") is None
    first = repo.put("desk", {"peak_equity": 1e7, "turnover_spent": []}, T0,
                     expected_version=0)
    assert first.version == 1
    second = repo.put("desk", {"peak_equity": 1.1e7}, T0 + timedelta(days=1),
                      expected_version=1)
    got = repo.get("desk")
    assert got is not None and got.version == 2 == second.version
    assert got.state == {"peak_equity": 1.1e7} and got.updated_at == T0 + timedelta(days=1)
    with pytest.raises(StoreError) as e:
        repo.put("desk", {"peak_equity": 0.0}, T0, expected_version=1)
    assert e.value.field == "version"
    got2 = repo.get("desk")
    assert got2 is not None and got2.state == {"peak_equity": 1.1e7}  # nothing half-written


def test_bad_input_is_refused_before_writing(store: Store) -> None:
    repo = DeskStateRepo(store)
    with pytest.raises(ValidationError) as e:
        repo.put("desk", {"peak_equity": float("nan")}, T0)
    assert "peak_equity" in str(e.value.field) or e.value.field.startswith("state")
    with pytest.raises(ValidationError):
        repo.put("x" * 65, {}, T0)
    assert repo.get("desk") is None
