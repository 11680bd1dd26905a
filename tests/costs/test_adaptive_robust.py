"""AdaptiveCost on synthetic fills whose true multipliers are known: noise like a real desk's
(the market moving while an order works, fat-tailed), not the 5% jitter of the older tests."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keel.costs.adaptive import AdaptiveCost
from keel.costs.models import SpreadCost, SquareRootImpact
from keel.errors import DataError

from .helpers import make_ctx


def _orders(model: AdaptiveCost, k_true: np.ndarray, rounds: int, *, seed: int = 0,
            horizon_days: float = 0.1) -> np.ndarray:
    """Feed ``rounds`` x 20 orders; realised = sum k_true f + t(3) noise of scale
    sigma sqrt(horizon) |notional|. Returns the (rounds, C) path of the multipliers."""
    rng = np.random.default_rng(seed)
    ctx = make_ctx(20, seed=seed)
    path = []
    for _ in range(rounds):
        part = np.exp(rng.uniform(np.log(1e-4), np.log(0.2), 20))  # 0.01% .. 20% of ADV
        trades = rng.choice([-1.0, 1.0], 20) * part * ctx.adv_notional
        feats = np.stack([m.cost_array(trades, ctx) for m in model.parts], axis=1)
        noise = (rng.standard_t(3, 20) / np.sqrt(3) * ctx.volatility * np.sqrt(horizon_days)
                 * np.abs(trades))
        model.observe(trades, ctx, feats @ k_true + noise)
        path.append(model.multipliers_.copy())
    return np.array(path)


def test_recovers_known_multipliers_from_noisy_fills() -> None:
    model = AdaptiveCost(SpreadCost() + SquareRootImpact(), forgetting=1.0)
    path = _orders(model, np.array([1.0, 2.0]), 500)
    assert model.n_obs_ == 10_000
    np.testing.assert_allclose(path[-1], [1.0, 2.0], atol=0.1)
    np.testing.assert_allclose(path[-1][1], 2.0, rtol=0.02)  # impact: most of the signal


def test_does_not_drift_under_pure_noise() -> None:
    model = AdaptiveCost(SpreadCost() + SquareRootImpact())
    path = _orders(model, np.array([1.0, 1.0]), 500, seed=3)
    late = path[250:]
    assert np.all(np.abs(late.mean(axis=0) - 1.0) < 0.15), late.mean(axis=0)
    assert np.all(np.abs(path[-1] - 1.0) < 0.3), path[-1]
    assert np.abs(late[:, 1] - 1.0).max() < 0.25  # impact: near 1 all along


def test_tracks_a_change_of_regime() -> None:
    model = AdaptiveCost(SpreadCost() + SquareRootImpact(), forgetting=0.99)
    _orders(model, np.array([1.0, 1.0]), 100, seed=5)
    path = _orders(model, np.array([1.0, 2.0]), 200, seed=6)
    assert path[-1][1] == pytest.approx(2.0, rel=0.1)


def test_one_wild_fill_has_bounded_influence() -> None:
    model = AdaptiveCost(SpreadCost() + SquareRootImpact())
    _orders(model, np.array([1.0, 1.5]), 100, seed=7)
    before = model.multipliers_.copy()
    ctx = make_ctx(20, seed=7)
    trades = np.zeros(20)
    trades[0] = 0.05 * ctx.adv_notional[0]
    pred = model.base.cost_array(trades, ctx)
    model.observe(trades, ctx, pred * 1e4)  # a fat-finger print: 10,000x the prediction
    assert np.abs(model.multipliers_ - before).max() < 0.05


def test_state_round_trip_is_identical_and_keeps_learning_identically() -> None:
    base = SpreadCost() + SquareRootImpact()
    model = AdaptiveCost(base, forgetting=0.99, huber_c=2.0, prior_strength=3.0)
    _orders(model, np.array([1.2, 0.8]), 30, seed=8)
    back = AdaptiveCost.from_state(json.loads(json.dumps(model.state())), base)
    for name in ("multipliers_", "info_", "moment_"):
        np.testing.assert_array_equal(getattr(back, name), getattr(model, name))
    assert (back.wsum_, back.scale_, back.n_obs_) == (model.wsum_, model.scale_, model.n_obs_)
    assert back.settings() == model.settings()
    _orders(model, np.array([1.2, 0.8]), 5, seed=9)
    _orders(back, np.array([1.2, 0.8]), 5, seed=9)
    np.testing.assert_array_equal(back.multipliers_, model.multipliers_)
    fresh = AdaptiveCost(base).state()
    assert fresh["scale"] is None and AdaptiveCost.from_state(fresh, base).n_obs_ == 0
    with pytest.raises(DataError) as e:
        AdaptiveCost.from_state(model.state(), SpreadCost())
    assert e.value.field == "multipliers"
    with pytest.raises(DataError):
        AdaptiveCost.from_state({"settings": {}}, base)
