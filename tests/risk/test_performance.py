"""Return attribution: a hand-worked Brinson-Fachler example, exact additivity per period and
linked over time (hypothesis), cash as its own bucket, and factor attribution against a model
whose returns are built from known factor returns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.errors import ValidationError
from keel.risk.performance import brinson_fachler, carino_factors, factor_attribution

SECTORS = pd.Series({"A1": "A", "A2": "A", "B1": "B", "B2": "B"})


def test_hand_worked_single_period() -> None:
    returns = pd.Series({"A1": 0.10, "A2": 0.06, "B1": 0.02, "B2": 0.04})
    port = pd.Series({"A1": 0.6, "A2": 0.0, "B1": 0.4, "B2": 0.0})
    bench = pd.Series({"A1": 0.25, "A2": 0.25, "B1": 0.25, "B2": 0.25})
    res = brinson_fachler(port, bench, returns, SECTORS)
    # sector returns: portfolio A 10%, B 2%; benchmark A 8%, B 3%; Rb = 5.5%, Rp = 6.8%
    row = res.by_period.iloc[0]
    assert row["allocation"] == pytest.approx(0.005, abs=1e-15)
    assert row["selection"] == pytest.approx(0.005, abs=1e-15)
    assert row["interaction"] == pytest.approx(0.003, abs=1e-15)
    assert res.active_return == pytest.approx(0.013, abs=1e-15)
    assert res.by_sector.loc["A", "allocation"] == pytest.approx(0.1 * 0.025)
    assert res.by_sector["total"].sum() == pytest.approx(0.013, abs=1e-15)


def test_uninvested_weight_is_cash_with_zero_return() -> None:
    returns = pd.Series({"A1": 0.10, "A2": 0.06, "B1": 0.02, "B2": 0.04})
    port = pd.Series({"A1": 0.5, "A2": 0.0, "B1": 0.4, "B2": 0.0})      # 10% cash
    bench = pd.Series(0.25, index=SECTORS.index)
    res = brinson_fachler(port, bench, returns, SECTORS)
    assert res.portfolio_return == pytest.approx(0.5 * 0.10 + 0.4 * 0.02)
    assert res.by_sector.loc["cash", "allocation"] == pytest.approx(0.1 * (0.0 - 0.055))
    assert res.by_sector["total"].sum() == pytest.approx(res.active_return, abs=1e-15)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 100_000), st.integers(1, 12), st.integers(2, 5))
def test_effects_add_up_per_period_and_linked(seed: int, periods: int, n_sectors: int) -> None:
    rng = np.random.default_rng(seed)
    symbols = [f"S{i}" for i in range(12)]
    sectors = pd.Series(rng.integers(0, n_sectors, 12).astype(str), index=symbols)
    dates = pd.date_range("2024-01-31", periods=periods, freq="ME")
    w = pd.DataFrame(rng.dirichlet(np.ones(12), periods) * rng.uniform(0.8, 1.0, (periods, 1)),
                     index=dates, columns=symbols)
    b = pd.DataFrame(rng.dirichlet(np.ones(12), periods), index=dates, columns=symbols)
    r = pd.DataFrame(rng.normal(0.01, 0.06, (periods, 12)), index=dates, columns=symbols)
    res = brinson_fachler(w, b, r, sectors)
    assert np.abs(res.by_period["residual"]).max() < 1e-15
    assert res.by_sector["total"].sum() == pytest.approx(res.active_return, abs=1e-13)
    rp = (w * r).sum(axis=1).to_numpy()
    assert res.portfolio_return == pytest.approx(np.prod(1 + rp) - 1, abs=1e-14)


def test_carino_links_any_split_exactly() -> None:
    rp = np.array([0.02, -0.01, 0.03])
    rb = np.array([0.01, 0.00, 0.02])
    f = carino_factors(rp, rb)
    linked = np.sum((rp - rb) * f)
    assert linked == pytest.approx(np.prod(1 + rp) - np.prod(1 + rb), abs=1e-15)


def test_factor_attribution_recovers_built_in_factor_returns() -> None:
    rng = np.random.default_rng(4)
    n, k, t = 30, 3, 40
    symbols = [f"S{i}" for i in range(n)]
    names = ["mkt", "value", "size"]
    dates = pd.bdate_range("2024-01-02", periods=t)
    b = pd.DataFrame(rng.normal(0, 1, (n, k)), index=symbols, columns=names)
    f = pd.DataFrame(rng.normal(0, 0.01, (t, k)), index=dates, columns=names)
    u = rng.normal(0, 0.005, (t, n))
    r = pd.DataFrame(f.to_numpy() @ b.to_numpy().T + u, index=dates, columns=symbols)
    w = pd.DataFrame(rng.dirichlet(np.ones(n), t), index=dates, columns=symbols)
    att = factor_attribution(w, r, b, f)
    x = w.to_numpy() @ b.to_numpy()
    np.testing.assert_allclose(att.exposures.to_numpy(), x, rtol=1e-12)
    np.testing.assert_allclose(att.by_period[names].to_numpy(), x * f.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(att.by_period["specific"].to_numpy(),
                               np.sum(w.to_numpy() * u, axis=1), atol=1e-15)
    parts = att.by_period.drop(columns="total").sum(axis=1)
    np.testing.assert_allclose(parts, att.by_period["total"], atol=1e-15)
    assert att.linked.sum() == pytest.approx(att.total_return, abs=1e-14)
    # per-date exposures give the same answer when they are the same matrix
    same = factor_attribution(w, r, {d: b for d in dates}, f)
    pd.testing.assert_frame_equal(same.by_period, att.by_period)


def test_bad_input_is_named() -> None:
    r = pd.Series({"A1": 0.1, "A2": 0.0, "B1": 0.0, "B2": 0.0})
    with pytest.raises(ValidationError, match="sectors") as err:
        brinson_fachler(r.abs(), r.abs(), r, SECTORS.drop("B2"))
    assert err.value.symbol == "B2"
    with pytest.raises(ValidationError, match="without returns"):
        brinson_fachler(r.rename({"A1": "Z9"}).abs(), r.abs(), r, SECTORS)
    with pytest.raises(ValidationError, match="returns"):
        brinson_fachler(r.abs(), r.abs(), r.replace(0.1, np.nan), SECTORS)
