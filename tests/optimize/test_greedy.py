"""GreedyRotation, rule by rule, with its reason codes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.errors import ValidationError
from keel.optimize.greedy import GreedyRotation


def scores(values: list[float]) -> pd.Series:
    return pd.Series(values, index=[f"N{i:02d}" for i in range(len(values))])


def small(**kw) -> GreedyRotation:
    base = dict(k=3, k_buy=2, k_sell=5, z_keep=0.8, z_cut=0.2, delta_z_min=0.25,
                alpha_per_z=0.01)
    base.update(kw)
    return GreedyRotation(**base)


def test_defaults_match_the_issue() -> None:
    g = GreedyRotation()
    assert (g.k, g.k_buy, g.k_sell) == (20, 18, 24)
    assert (g.z_keep, g.z_cut, g.delta_z_min) == (0.8, 0.2, 0.25)


def test_buy_top_fills_empty_book_within_k_buy_only() -> None:
    z = scores([3.0, 2.5, 2.0, 1.5, 1.0, 0.5])
    res = small().rebalance(z)
    # K=3 slots but only the top K_buy=2 may be bought
    assert list(res.weights.index) == ["N00", "N01"]
    assert set(res.reasons()) == {"BUY_TOP"}
    assert res.weights.sum() == pytest.approx(2 / 3)


def test_buy_needs_z_keep() -> None:
    z = scores([3.0, 0.7, 0.6, 0.5])
    res = small().rebalance(z)
    assert list(res.weights.index) == ["N00"]


def test_cut_low_performer() -> None:
    z = scores([3.0, 2.5, 2.0, 0.1])
    res = small().rebalance(z, held=["N03"])
    assert res.decisions.loc["N03", "reason"] == "CUT_LOW_PERFORMER"
    assert res.decisions.loc["N03", "action"] == "SELL"
    assert "N03" not in res.weights.index


def test_hold_band_keeps_a_name_between_k_and_k_sell() -> None:
    z = scores([3.0, 2.9, 2.8, 2.7, 1.0, 0.9])
    # N04 ranks 5th (outside K=3) but inside K_sell=5: kept; no rotation since gaps are
    # large but the book has a free slot first
    res = small().rebalance(z, held=["N00", "N01", "N04"])
    assert res.decisions.loc["N04", "reason"] in ("HOLD_BAND", "ROTATE")
    res2 = small(delta_z_min=10.0).rebalance(z, held=["N00", "N01", "N04"])
    assert res2.decisions.loc["N04", "reason"] == "HOLD_BAND"
    assert res2.decisions.loc["N00", "reason"] == "HOLD"


def test_cut_rank_outside_k_sell() -> None:
    z = scores([3.0, 2.9, 2.8, 2.7, 2.6, 2.5, 1.0])
    res = small().rebalance(z, held=["N06"])
    assert res.decisions.loc["N06", "reason"] == "CUT_RANK"


def test_rotate_and_buy_better_when_gap_and_gain_clear_costs() -> None:
    z = scores([3.0, 2.0, 1.9, 1.5, 1.4])
    res = small(k=2, k_buy=1, k_sell=5).rebalance(z, held=["N03", "N04"])
    d = res.decisions
    # N00 is the best candidate, N04 the worst held: gap 1.6 >= 0.25 and gain > 0
    assert d.loc["N04", "reason"] == "ROTATE" and d.loc["N04", "action"] == "SELL"
    assert d.loc["N00", "reason"] == "BUY_BETTER" and d.loc["N00", "action"] == "BUY"
    assert d.loc["N03", "reason"] == "HOLD_BAND"


def test_delta_z_min_blocks_small_gaps() -> None:
    z = scores([1.6, 1.5, 1.45])
    res = small(k=2, k_buy=1, k_sell=3).rebalance(z, held=["N01", "N02"])
    assert set(res.reasons()) == {"HOLD", "HOLD_BAND"} or "N00" not in res.weights.index
    assert "N00" not in res.weights.index


def test_round_trip_cost_blocks_rotation_with_hold_cost() -> None:
    z = scores([3.0, 2.0, 1.9, 1.5, 1.4])
    g = small(k=2, k_buy=1, k_sell=5, alpha_per_z=0.001)
    # gain = 0.001 * 1.6 * 0.5 = 8e-4 ; cost = (1% + 1%)/2 * 0.5 = 5e-3 > gain
    res = g.rebalance(z, held=["N03", "N04"], round_trip_cost=0.01)
    assert res.decisions.loc["N04", "reason"] == "HOLD_COST"
    assert "N00" not in res.weights.index
    # cheap trading: the same rotation goes through
    res2 = g.rebalance(z, held=["N03", "N04"], round_trip_cost=0.0001)
    assert res2.decisions.loc["N04", "reason"] == "ROTATE"


def test_utility_threshold() -> None:
    z = scores([3.0, 2.0, 1.9, 1.5, 1.4])
    res = small(k=2, k_buy=1, k_sell=5, utility_threshold=1.0).rebalance(
        z, held=["N03", "N04"])
    assert "N00" not in res.weights.index


def test_time_stop_sells_dead_money_only() -> None:
    z = scores([3.0, 2.0, 0.5, 1.5])
    g = small(time_stop=10)
    age = pd.Series({"N02": 12, "N03": 12})
    res = g.rebalance(z, held=["N02", "N03"], age=age)
    assert res.decisions.loc["N02", "reason"] == "TIME_STOP"   # 0.5 < z_keep after 12 days
    assert res.decisions.loc["N03", "action"] == "HOLD"         # still above z_keep
    young = small(time_stop=10, delta_z_min=5.0).rebalance(z, held=["N02", "N03"],
                                                            age=pd.Series({"N02": 3}))
    assert young.decisions.loc["N02", "action"] == "HOLD"


def test_per_name_target_weight() -> None:
    z = scores([3.0, 2.5, 2.0])
    tw = pd.Series({"N00": 0.5, "N01": 0.2, "N02": 0.1})
    res = small(target_weight=tw).rebalance(z)
    assert res.weights.to_dict() == {"N00": 0.5, "N01": 0.2}


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        GreedyRotation(k=5, k_buy=6, k_sell=7)
    assert exc.value.field == "k"
    with pytest.raises(ValidationError) as exc:
        small().rebalance(scores([1.0, np.nan]))
    assert exc.value.field == "scores" and exc.value.symbol == "N01"
    with pytest.raises(ValidationError) as exc:
        small().rebalance(scores([1.0, 2.0]), held=["ZZZ"])
    assert exc.value.symbol == "ZZZ"


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(5, 200), n_held=st.integers(0, 30))
def test_invariants(seed: int, n: int, n_held: int) -> None:
    rng = np.random.default_rng(seed)
    z = pd.Series(rng.normal(0.5, 1.0, n), index=[f"X{i}" for i in range(n)])
    held = list(rng.choice(z.index, size=min(n_held, n), replace=False))
    g = GreedyRotation(k=10, k_buy=8, k_sell=14)
    res = g.rebalance(z, held=held, round_trip_cost=0.001)
    d = res.decisions
    assert set(held) <= set(d.index)
    bought = d.index[d["action"] == "BUY"]
    assert not set(bought) & set(held)
    # buys are inside the top K_buy and above z_keep
    thr_buy = np.sort(z.to_numpy())[::-1][min(8, n) - 1]
    assert (z[bought] >= thr_buy).all() and (z[bought] >= 0.8).all()
    # a sold name is below z_cut, out of the top K_sell, or rotated out
    sold = d[d["action"] == "SELL"]
    assert sold["reason"].isin(["CUT_LOW_PERFORMER", "CUT_RANK", "ROTATE"]).all()
    # the book never grows past K unless names were already held in the band
    assert len(res.weights) <= max(10, len(held))
    # a greedy rebalance of the result is stable apart from further rotations
    assert (res.weights == 0.1).all()
