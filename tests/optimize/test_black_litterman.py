"""Black-Litterman against its information-form closed form, Idzorek's confidence property,
the factored path against the dense one, and PyPortfolioOpt on the same inputs (when installed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.errors import ValidationError
from keel.optimize.black_litterman import (
    BlackLitterman,
    View,
    implied_returns,
    market_risk_aversion,
)
from keel.risk.base import FactorCovariance


def _factor_model(n: int = 12, k: int = 3, seed: int = 0) -> FactorCovariance:
    rng = np.random.default_rng(seed)
    b = rng.normal(0, 1, (n, k))
    f = np.diag(rng.uniform(1e-5, 4e-5, k))
    d = rng.uniform(5e-5, 2e-4, n)
    return FactorCovariance(pd.Index([f"S{i}" for i in range(n)]),
                            pd.Index([f"F{j}" for j in range(k)]), b, f, d)


def _dense(fc: FactorCovariance) -> pd.DataFrame:
    m = fc.exposures @ fc.factor_covariance @ fc.exposures.T + np.diag(fc.specific_variance)
    return pd.DataFrame(m, index=fc.symbols, columns=fc.symbols)


def _mkt(fc: FactorCovariance, seed: int = 1) -> pd.Series:
    w = np.random.default_rng(seed).uniform(0.5, 2.0, fc.n_assets)
    return pd.Series(w / w.sum(), index=fc.symbols)


VIEWS = [View({"S0": 1.0}, 0.0010), View({"S1": 1.0, "S2": -1.0}, 0.0004, confidence=0.6),
         View({"S3": 0.5, "S4": 0.5, "S5": -1.0}, -0.0002, confidence=0.3)]


def test_posterior_equals_the_information_form() -> None:
    fc = _factor_model()
    sigma = _dense(fc).to_numpy()
    bl = BlackLitterman(tau=0.05, risk_aversion=3.0).fit(fc, VIEWS, market_weights=_mkt(fc))
    pi = 3.0 * sigma @ _mkt(fc).to_numpy()
    np.testing.assert_allclose(bl.prior_returns_.to_numpy(), pi, rtol=1e-12)
    # mu = [(tau S)^-1 + P' O^-1 P]^-1 [(tau S)^-1 pi + P' O^-1 Q]: an independent formula
    ts_inv = np.linalg.inv(0.05 * sigma)
    o_inv = np.diag(1.0 / bl.omega_)
    h = ts_inv + bl.P_.T @ o_inv @ bl.P_
    mu = np.linalg.solve(h, ts_inv @ pi + bl.P_.T @ o_inv @ bl.Q_)
    np.testing.assert_allclose(bl.posterior_returns_.to_numpy(), mu, rtol=1e-9, atol=1e-14)
    # posterior covariance = Sigma + H^-1
    np.testing.assert_allclose(bl.posterior_covariance().to_numpy(), sigma + np.linalg.inv(h),
                               rtol=1e-9, atol=1e-14)


def test_omega_he_litterman_and_idzorek() -> None:
    fc = _factor_model()
    sigma = _dense(fc).to_numpy()
    bl = BlackLitterman(tau=0.025).fit(fc, VIEWS, market_weights=_mkt(fc))
    var = np.einsum("kn,nm,km->k", bl.P_, sigma, bl.P_)
    np.testing.assert_allclose(bl.omega_, 0.025 * var * np.array([1.0, 0.4 / 0.6, 0.7 / 0.3]),
                               rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.floats(0.05, 1.0), st.integers(0, 20))
def test_idzorek_confidence_is_the_fraction_of_the_full_tilt(conf: float, seed: int) -> None:
    fc = _factor_model(seed=seed)
    sigma = _dense(fc).to_numpy()
    mkt = _mkt(fc, seed)
    view = {"S0": 1.0, "S7": -1.0}

    def weights(c: float) -> np.ndarray:
        mu = BlackLitterman(tau=0.05, risk_aversion=2.5).fit(
            fc, [View(view, 0.002, confidence=c)], market_weights=mkt).posterior_returns_
        return np.linalg.solve(2.5 * sigma, mu.to_numpy())

    tilt_full = weights(1.0) - mkt.to_numpy()
    np.testing.assert_allclose(weights(conf) - mkt.to_numpy(), conf * tilt_full,
                               rtol=1e-7, atol=1e-12)


def test_full_confidence_views_hold_exactly_and_no_views_give_the_prior() -> None:
    fc = _factor_model()
    views = [View({"S0": 1.0}, 0.001, confidence=1.0),
             View({"S1": 1.0, "S2": -1.0}, 0.0005, confidence=1.0)]
    bl = BlackLitterman().fit(fc, views, market_weights=_mkt(fc))
    np.testing.assert_allclose(bl.P_ @ bl.posterior_returns_.to_numpy(), bl.Q_, rtol=1e-9)
    none = BlackLitterman().fit(fc, [], market_weights=_mkt(fc))
    pd.testing.assert_series_equal(none.posterior_returns_, none.prior_returns_,
                                   check_names=False)


def test_factor_and_dense_inputs_agree() -> None:
    fc = _factor_model(n=30, k=4, seed=5)
    a = BlackLitterman().fit(fc, VIEWS, market_weights=_mkt(fc))
    b = BlackLitterman().fit(_dense(fc), VIEWS, market_weights=_mkt(fc))
    np.testing.assert_allclose(a.posterior_returns_, b.posterior_returns_, rtol=1e-10)
    np.testing.assert_allclose(a.posterior_covariance(), b.posterior_covariance(), rtol=1e-10)


def test_market_risk_aversion_closed_form() -> None:
    r = np.array([0.01, -0.02, 0.015, 0.005, -0.001])
    assert market_risk_aversion(r, risk_free=0.0001) == pytest.approx(
        (r.mean() - 0.0001) / r.var(ddof=1))


def test_bad_input_is_named() -> None:
    fc = _factor_model()
    with pytest.raises(ValidationError, match=r"views\.0\.assets"):
        BlackLitterman().fit(fc, [View({"NOPE": 1.0}, 0.01)], market_weights=_mkt(fc))
    with pytest.raises(ValidationError, match="confidence"):
        View({"S0": 1.0}, 0.01, confidence=0.0)
    with pytest.raises(ValidationError, match="prior"):
        BlackLitterman().fit(fc, VIEWS)
    with pytest.raises(ValidationError, match="market_weights"):
        implied_returns(fc, _mkt(fc).iloc[:-1], 2.5)


def test_against_pyportfolioopt() -> None:
    pypfopt = pytest.importorskip("pypfopt", reason="PyPortfolioOpt not installed (peer check)")
    fc = _factor_model(n=15, k=3, seed=9)
    cov = _dense(fc)
    mkt = _mkt(fc, 9)
    pi = implied_returns(fc, mkt, 2.5)
    views = [View({"S0": 1.0}, 0.0010, confidence=0.7),
             View({"S1": 1.0, "S2": -1.0}, 0.0004, confidence=0.4)]
    ours = BlackLitterman(tau=0.05, risk_aversion=2.5).fit(fc, views, market_weights=mkt)
    p = ours.P_
    peer = pypfopt.black_litterman.BlackLittermanModel(
        cov, pi=pi, P=p, Q=ours.Q_.reshape(-1, 1), omega="idzorek",
        view_confidences=[0.7, 0.4], tau=0.05, risk_aversion=2.5)
    np.testing.assert_allclose(ours.posterior_returns_.to_numpy(),
                               peer.bl_returns().to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(ours.posterior_covariance().to_numpy(),
                               peer.bl_cov().to_numpy(), rtol=1e-8)
