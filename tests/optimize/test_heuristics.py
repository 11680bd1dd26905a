"""Heuristics against closed forms and dense recomputations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keel.errors import ValidationError
from keel.optimize.heuristics import (
    cov_solve,
    equal_weight,
    fractional_kelly,
    inverse_volatility,
    risk_contributions,
    risk_parity,
    volatility_target,
)


def test_equal_and_inverse_vol() -> None:
    w = equal_weight(["A", "B", "C", "D"])
    assert (w == 0.25).all()
    iv = inverse_volatility(pd.Series({"A": 0.1, "B": 0.2, "C": 0.4}))
    np.testing.assert_allclose(iv.to_numpy(), np.array([4, 2, 1]) / 7)
    with pytest.raises(ValidationError) as exc:
        inverse_volatility(pd.Series({"A": 0.1, "B": 0.0}))
    assert exc.value.symbol == "B"


def test_risk_parity_equalises_contributions(h) -> None:
    fc = h.make_factor(80, 5, seed=3)
    w = risk_parity(fc)
    assert w.sum() == pytest.approx(1.0)
    rc = risk_contributions(w, fc)
    np.testing.assert_allclose(rc, 1 / 80, atol=1e-6)
    # same answer with the dense covariance
    wd = risk_parity(pd.DataFrame(fc.covariance(), index=fc.symbols, columns=fc.symbols))
    np.testing.assert_allclose(w.to_numpy(), wd.to_numpy(), atol=1e-7)


def test_risk_parity_two_assets_closed_form() -> None:
    cov = np.array([[0.04, 0.006], [0.006, 0.01]])
    w = risk_parity(cov, symbols=pd.Index(["A", "B"]))
    # two assets: ERC is inverse vol regardless of correlation
    np.testing.assert_allclose(w.to_numpy(), np.array([1 / 0.2, 1 / 0.1]) / 15, atol=1e-8)


def test_risk_budgets(h) -> None:
    fc = h.make_factor(20, 2, seed=4)
    b = pd.Series(np.arange(1, 21, dtype=float), index=fc.symbols)
    w = risk_parity(fc, b)
    np.testing.assert_allclose(risk_contributions(w, fc), b / b.sum(), atol=1e-6)


def test_vol_target(h) -> None:
    fc = h.make_factor(30, 3)
    w = equal_weight(fc.symbols)
    scaled = volatility_target(w, fc, 0.02)
    assert np.sqrt(fc.portfolio_variance(scaled.to_numpy())) == pytest.approx(0.02)
    capped = volatility_target(w, fc, 1.0, max_leverage=1.5)
    assert capped.abs().sum() == pytest.approx(1.5)


def test_kelly_matches_dense_solve_and_caps(h) -> None:
    fc = h.make_factor(40, 4, seed=5)
    rng = np.random.default_rng(1)
    alpha = pd.Series(rng.normal(0, 1e-3, 40), index=fc.symbols)
    k = fractional_kelly(alpha, fc, 0.5)
    np.testing.assert_allclose(k.to_numpy(),
                               0.5 * np.linalg.solve(fc.covariance(), alpha.to_numpy()),
                               rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(cov_solve(fc, alpha.to_numpy()),
                               np.linalg.solve(fc.covariance(), alpha.to_numpy()), rtol=1e-8)
    capped = fractional_kelly(alpha, fc, 0.5, max_weight=0.05, max_gross=1.0)
    assert capped.abs().max() <= 0.05 + 1e-12
    assert capped.abs().sum() <= 1.0 + 1e-12
    with pytest.raises(ValidationError) as exc:
        fractional_kelly(alpha, fc, 1.5)
    assert exc.value.field == "fraction"
