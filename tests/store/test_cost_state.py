"""The learned cost-model state in the store: identical reload after a restart, versions,
history, conflicts; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from keel.costs.adaptive import AdaptiveCost
from keel.costs.base import TradeContext
from keel.costs.models import SpreadCost, SquareRootImpact
from keel.errors import StoreError, ValidationError
from keel.store import Store
from keel.store.cost_state_repo import CostStateRepo
from keel.types import utc

T0 = utc(2024, 1, 2, 21)


def _learned(seed: int = 0) -> AdaptiveCost:
    """A model after 200 noisy synthetic orders (true multipliers 1.3, 0.7)."""
    rng = np.random.default_rng(seed)
    ctx = TradeContext(symbols=pd.Index([f"S{i}" for i in range(10)]),
                       prices=rng.uniform(10, 300, 10), adv_notional=rng.uniform(1e7, 5e8, 10),
                       volatility=rng.uniform(0.01, 0.04, 10),
                       spreads=rng.uniform(2e-4, 2e-3, 10))
    model = AdaptiveCost(SpreadCost() + SquareRootImpact(), forgetting=0.99)
    for _ in range(20):
        trades = rng.normal(0, 0.02, 10) * ctx.adv_notional
        feats = np.stack([m.cost_array(trades, ctx) for m in model.parts], axis=1)
        noise = rng.normal(0, 1, 10) * ctx.volatility * 0.3 * np.abs(trades)
        model.observe(trades, ctx, feats @ np.array([1.3, 0.7]) + noise)
    return model


def test_state_survives_a_restart_identically(store: Store) -> None:
    model = _learned()
    rec = CostStateRepo(store).put("default", model.state(), T0, observed=400)
    assert rec.version == 1 and rec.multipliers == dict(zip(
        ["spread", "impact"], model.multipliers_.tolist(), strict=True))
    url = store.url
    store.dispose()
    reopened = Store.from_url(url)
    try:
        got = CostStateRepo(reopened).get("default")
        assert got is not None and got.version == 1 and got.updated_at == T0
        back = AdaptiveCost.from_state(got.state, SpreadCost() + SquareRootImpact())
        for name in ("multipliers_", "info_", "moment_"):
            np.testing.assert_array_equal(getattr(back, name), getattr(model, name))
        assert (back.wsum_, back.scale_, back.n_obs_) == (model.wsum_, model.scale_,
                                                          model.n_obs_)
    finally:
        reopened.dispose()


def test_versions_history_and_conflicts(store: Store) -> None:
    repo = CostStateRepo(store)
    assert repo.get("default") is None and repo.history() == []
    a, b = _learned(1), _learned(2)
    repo.put("default", a.state(), T0, observed=3, expected_version=0)
    repo.put("default", b.state(), T0 + timedelta(days=1), observed=5, expected_version=1)
    repo.put("other", a.state(), T0)
    assert repo.get("default").version == 2  # type: ignore[union-attr]
    hist = repo.history("default")
    assert [h.version for h in hist] == [2, 1] and [h.observed for h in hist] == [5, 3]
    assert hist[0].multipliers["impact"] == b.multipliers_[1]
    assert hist[1].n_obs == a.n_obs_ and hist[1].recorded_at == T0
    assert repo.history("default", limit=1)[0].version == 2
    assert repo.names() == ["default", "other"]
    with pytest.raises(StoreError) as e:
        repo.put("default", a.state(), T0, expected_version=1)
    assert e.value.field == "version" and e.value.context["kind"] == "conflict"
    assert repo.get("default").version == 2  # type: ignore[union-attr]
    assert len(repo.history("default")) == 2  # nothing half-written
    with pytest.raises(ValidationError) as v:
        repo.put("default", {"parts": ["spread"]}, T0)
    assert v.value.field == "state"
    bad = a.state()
    bad["scale"] = float("nan")
    with pytest.raises(ValidationError):
        repo.put("default", bad, T0)
