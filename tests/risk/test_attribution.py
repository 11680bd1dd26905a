import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from keel.errors import DataError, ValidationError
from keel.risk.attribution import (
    component_risk,
    decompose,
    factor_regression,
    marginal_risk,
)
from keel.risk.base import FactorCovariance


def _fc(n=12, k=4, seed=0):
    rng = np.random.default_rng(seed)
    b = rng.normal(size=(n, k))
    a = rng.normal(size=(k, k)) * 0.01
    return FactorCovariance(pd.Index([f"S{i}" for i in range(n)]),
                            pd.Index(["market", "sector:A", "beta", "size"][:k]), b, a @ a.T,
                            rng.uniform(1e-5, 1e-4, n))


def test_marginal_is_the_gradient_and_components_sum():
    fc = _fc()
    w = np.random.default_rng(1).normal(size=12)
    cov = fc.covariance()

    def vol(v):
        return np.sqrt(v @ cov @ v)

    eps = 1e-6
    grad = np.array([(vol(w + eps * e) - vol(w - eps * e)) / (2 * eps) for e in np.eye(12)])
    np.testing.assert_allclose(marginal_risk(fc, w), grad, rtol=1e-6)
    np.testing.assert_allclose(marginal_risk(cov, w), marginal_risk(fc, w), rtol=1e-12)
    assert component_risk(fc, w).sum() == pytest.approx(vol(w), rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, 12, elements=st.floats(-1, 1)), st.integers(0, 50))
def test_components_sum_to_total(w, seed):
    if np.abs(w).sum() < 1e-3:
        w = w + 0.1
    fc = _fc(seed=seed)
    total = np.sqrt(fc.portfolio_variance(w))
    assert component_risk(fc, w).sum() == pytest.approx(total, rel=1e-10)
    d = decompose(fc, w, groups=pd.Series({"market": "market", "sector:A": "sector",
                                           "beta": "style", "size": "style"}),
                  annualize=False)
    assert d.total == pytest.approx(total, rel=1e-10)
    assert d.factor + d.specific == d.total
    assert d.by_group.sum() == pytest.approx(d.factor, rel=1e-9, abs=1e-15)
    assert d.by_asset.sum() == pytest.approx(d.total, rel=1e-9)
    assert d.by_sector["risk"].sum() == pytest.approx(d.total, rel=1e-9)


def test_decomposition_closed_form_and_summary():
    fc = _fc()
    w = pd.Series(np.full(12, 1 / 12), index=fc.symbols)
    groups = pd.Series({"market": "market", "sector:A": "sector", "beta": "style",
                        "size": "style"})
    sectors = pd.Series(["Tech", "Energy"] * 6, index=fc.symbols)
    d = decompose(fc, w, groups=groups, sectors=sectors)
    x = fc.exposures.T @ w.to_numpy()
    fv = x @ fc.factor_covariance @ x
    sv = np.sum(fc.specific_variance * w.to_numpy() ** 2)
    assert d.total == pytest.approx(np.sqrt(252 * (fv + sv)), rel=1e-12)
    assert d.factor_share == pytest.approx(fv / (fv + sv), rel=1e-12)
    assert list(d.by_group.index) == ["market", "sector", "style"]
    assert d.summary().startswith("Total ") and "Market" in d.summary()
    assert set(d.by_sector.index) == {"Tech", "Energy"}
    assert d.by_sector["weight"].sum() == pytest.approx(1.0)
    assert d.to_dict()["total"] == d.total
    with pytest.raises(ValidationError) as e:
        decompose(fc, pd.Series({"ZZZ": 1.0}))
    assert e.value.symbol == "ZZZ"


def test_factor_regression_against_scipy_linregress():
    rng = np.random.default_rng(5)
    idx = pd.date_range("2020-01-01 21:00", periods=500, freq="B", tz="UTC")
    ff = pd.DataFrame({"Mkt-RF": rng.normal(0, 0.01, 500), "RF": 0.0001}, index=idx)
    r = pd.Series(0.0002 + 1.3 * ff["Mkt-RF"] + ff["RF"] + rng.normal(0, 0.004, 500),
                  index=idx)
    res = factor_regression(r, ff)
    lr = stats.linregress(ff["Mkt-RF"], r - ff["RF"])
    assert res.betas["Mkt-RF"] == pytest.approx(lr.slope, rel=1e-12)
    assert res.alpha == pytest.approx(lr.intercept, rel=1e-10)
    assert res.std_errors["Mkt-RF"] == pytest.approx(lr.stderr, rel=1e-10)
    assert res.std_errors["alpha"] == pytest.approx(lr.intercept_stderr, rel=1e-10)
    assert res.t_stats["Mkt-RF"] == pytest.approx(lr.slope / lr.stderr, rel=1e-10)
    assert res.r2 == pytest.approx(lr.rvalue**2, rel=1e-12)
    with pytest.raises(DataError) as e:
        factor_regression(r.iloc[:2], ff)
    assert e.value.field == "factors"


def test_fama_french_regression_on_real_sp500(shared_data):
    from _sp500 import fama_french, sp500_market

    ff = fama_french(str(shared_data))
    assert list(ff.columns) == ["Mkt-RF", "SMB", "HML", "RF"]
    assert abs(ff["Mkt-RF"]).max() < 0.25  # fractions, not percent
    market = sp500_market(str(shared_data))
    ew = market.returns.mean(axis=1)
    res = factor_regression(ew, ff)
    assert res.n_obs > 1200
    assert 0.9 < res.betas["Mkt-RF"] < 1.2 and res.t_stats["Mkt-RF"] > 50
    assert res.r2 > 0.9


def test_bias_statistic_is_one_for_calibrated_forecasts():
    from keel.risk.evaluation import bias_statistic

    rng = np.random.default_rng(0)
    sig = rng.uniform(0.005, 0.03, 5000)
    r = rng.normal(size=5000) * sig
    res = bias_statistic(r, sig)
    assert res.within_band and res.n_obs == 5000
    assert bias_statistic(r, sig / 2).bias == pytest.approx(2 * res.bias)
    with pytest.raises(ValidationError) as e:
        bias_statistic(r, np.zeros(5000))
    assert e.value.field == "predicted_vol"
