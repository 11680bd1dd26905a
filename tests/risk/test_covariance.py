import numpy as np
import pandas as pd
import pytest
import sklearn.covariance as skc
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from keel.errors import DataError, ValidationError
from keel.risk.covariance import (
    OAS,
    EWMACovariance,
    LedoitWolf,
    SampleCovariance,
    make_psd,
)


def _returns(t=120, n=6, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n))
    x = rng.normal(size=(t, n)) @ a * 0.01 + 0.0005
    idx = pd.date_range("2024-01-02 21:00", periods=t, freq="B", tz="UTC")
    return pd.DataFrame(x, index=idx, columns=[f"S{i}" for i in range(n)])


def test_sample_matches_numpy_and_sklearn():
    r = _returns()
    est = SampleCovariance().fit(r)
    np.testing.assert_allclose(est.covariance_, np.cov(r.to_numpy(), rowvar=False), rtol=1e-12)
    emp = skc.EmpiricalCovariance().fit(r.to_numpy())
    np.testing.assert_allclose(SampleCovariance(ddof=0).fit(r).covariance_, emp.covariance_,
                               rtol=1e-12)
    assert list(est.symbols_) == list(r.columns) and est.n_observations_ == 120
    np.testing.assert_allclose(est.annualized_covariance(), 252 * est.covariance_)
    assert not est.psd_repaired_


def test_ewma_against_pandas_and_brute_force():
    r = _returns(t=200, n=4)
    lam = 0.94
    est = EWMACovariance(lambda_=lam, assume_centered=False).fit(r)
    pdc = r.ewm(alpha=1 - lam, adjust=True).cov(bias=True).loc[r.index[-1]]
    np.testing.assert_allclose(est.covariance_, pdc.to_numpy(), rtol=1e-10)
    x = r.to_numpy()
    num = np.zeros((4, 4))
    den = 0.0
    for t in range(len(x)):
        w = lam ** (len(x) - 1 - t)
        num += w * np.outer(x[t], x[t])
        den += w
    np.testing.assert_allclose(EWMACovariance().fit(r).covariance_, num / den, rtol=1e-12)
    hl = EWMACovariance(halflife=10).fit(r)
    np.testing.assert_allclose(
        hl.covariance_, EWMACovariance(lambda_=0.5 ** 0.1).fit(r).covariance_, rtol=1e-14)
    with pytest.raises(ValidationError) as e:
        EWMACovariance(lambda_=0.9, halflife=3).fit(r)
    assert e.value.field == "halflife"
    with pytest.raises(ValidationError) as e:
        EWMACovariance(lambda_=1.5).fit(r)
    assert e.value.field == "lambda_"


@pytest.mark.parametrize("centered", [False, True])
def test_ledoit_wolf_identity_and_oas_match_sklearn(centered):
    r = _returns(t=60, n=30, seed=3)
    lw = LedoitWolf(assume_centered=centered).fit(r)
    sk = skc.LedoitWolf(assume_centered=centered).fit(r.to_numpy())
    assert abs(lw.shrinkage_ - sk.shrinkage_) < 1e-12
    np.testing.assert_allclose(lw.covariance_, sk.covariance_, atol=1e-15, rtol=1e-10)
    oas = OAS(assume_centered=centered).fit(r)
    sko = skc.OAS(assume_centered=centered).fit(r.to_numpy())
    assert abs(oas.shrinkage_ - sko.shrinkage_) < 1e-12
    np.testing.assert_allclose(oas.covariance_, sko.covariance_, atol=1e-15, rtol=1e-10)


def _lw_cc_brute(x):
    """Ledoit-Wolf (2004) constant-correlation estimator written loop by loop."""
    t, n = x.shape
    y = x - x.mean(axis=0)
    s = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            s[i, j] = sum(y[k, i] * y[k, j] for k in range(t)) / t
    r = s / np.sqrt(np.outer(np.diag(s), np.diag(s)))
    rbar = sum(r[i, j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    f = np.array([[s[i, i] if i == j else rbar * np.sqrt(s[i, i] * s[j, j])
                   for j in range(n)] for i in range(n)])
    pi = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            pi[i, j] = sum((y[k, i] * y[k, j] - s[i, j]) ** 2 for k in range(t)) / t

    def theta(a, b):  # theta_{aa,ab}
        return sum((y[k, a] ** 2 - s[a, a]) * (y[k, a] * y[k, b] - s[a, b])
                   for k in range(t)) / t

    rho = sum(pi[i, i] for i in range(n))
    for i in range(n):
        for j in range(n):
            if i != j:
                rho += rbar / 2 * (np.sqrt(s[j, j] / s[i, i]) * theta(i, j)
                                   + np.sqrt(s[i, i] / s[j, j]) * theta(j, i))
    gamma = np.sum((f - s) ** 2)
    delta = max(0.0, min(1.0, (pi.sum() - rho) / gamma / t))
    return delta * f + (1 - delta) * s, delta


def test_ledoit_wolf_constant_correlation_matches_brute_force():
    r = _returns(t=40, n=5, seed=7)
    est = LedoitWolf(target="constant_correlation").fit(r)
    ref, delta = _lw_cc_brute(r.to_numpy())
    assert 0 < est.shrinkage_ < 1
    assert abs(est.shrinkage_ - delta) < 1e-12
    np.testing.assert_allclose(est.covariance_, ref, rtol=1e-10)
    # the target keeps the sample variances
    s = np.cov(r.to_numpy(), rowvar=False, ddof=0)
    np.testing.assert_allclose(np.diag(est.covariance_), np.diag(s), rtol=1e-12)


def test_ledoit_wolf_identity_on_real_sp500(shared_data):
    from _sp500 import sp500_returns

    r = sp500_returns(str(shared_data))
    lw = LedoitWolf().fit(r)
    sk = skc.LedoitWolf().fit(r.to_numpy())
    assert abs(lw.shrinkage_ - sk.shrinkage_) < 1e-10
    assert np.max(np.abs(lw.covariance_ - sk.covariance_)) < 1e-10
    assert r.shape[1] > 400 and lw.covariance_.shape == (r.shape[1],) * 2
    oas = OAS().fit(r)
    assert abs(oas.shrinkage_ - skc.OAS().fit(r.to_numpy()).shrinkage_) < 1e-10
    cc = LedoitWolf(target="constant_correlation").fit(r)
    assert 0 < cc.shrinkage_ < 1 and cc.min_eigenvalue_ is None  # Cholesky proved PD


def test_psd_repair_is_reported():
    bad = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])
    fixed, repaired, lo = make_psd(bad)
    assert repaired and lo is not None and lo < 0
    assert np.linalg.eigvalsh(fixed).min() >= -1e-12
    # fewer observations than assets: singular but PSD, not "repaired"
    x = _returns(t=5, n=10).to_numpy()
    s = np.cov(x, rowvar=False)
    same, repaired, lo = make_psd(s)
    assert not repaired and lo is not None and abs(lo) < 1e-15
    np.testing.assert_array_equal(same, 0.5 * (s + s.T))
    # a Gram-matrix estimator is PSD by construction: symmetrised, no eigen check
    est = SampleCovariance().fit(_returns(t=5, n=10))
    assert not est.psd_repaired_ and est.min_eigenvalue_ is None
    assert np.linalg.eigvalsh(est.covariance_).min() > -1e-15


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(3, 30), st.integers(1, 8)),
              elements=st.floats(-0.25, 0.25, allow_nan=False, width=32)),
       st.sampled_from(["sample", "ewma", "lw", "lwcc", "oas"]))
def test_every_estimator_is_symmetric_psd(x, kind):
    if np.any(np.ptp(x, axis=0) == 0):
        x = x + np.arange(x.shape[0])[:, None] * 1e-3 * (1 + np.arange(x.shape[1]))
    est = {"sample": SampleCovariance(), "ewma": EWMACovariance(), "lw": LedoitWolf(),
           "lwcc": LedoitWolf(target="constant_correlation"), "oas": OAS()}[kind]
    c = est.fit(x).covariance_
    assert np.array_equal(c, c.T)
    assert np.linalg.eigvalsh(c).min() >= -1e-12 * max(1.0, np.abs(c).max())


@pytest.mark.parametrize("mutate,field,symbol,match", [
    (lambda r: r.iloc[:1], "returns", None, "too few observations"),
    (lambda r: r.assign(S2=0.01), "returns", "S2", "constant column"),
    (lambda r: r.mask((r.index == r.index[5])[:, None] & (r.columns == "S3")[None, :]),
     "returns", "S3", "NaN"),
    (lambda r: r.replace(r.iat[3, 1], np.inf), "returns", "S1", "infinite"),
])
def test_bad_input_raises_typed_errors(mutate, field, symbol, match):
    with pytest.raises(DataError, match=match) as e:
        SampleCovariance().fit(mutate(_returns()))
    assert e.value.field == field and e.value.symbol == symbol


def test_missing_policies():
    r = _returns()
    r.iloc[5, 3] = np.nan
    r.iloc[0, 1] = np.nan
    d = SampleCovariance(on_missing="drop").fit(r)
    assert list(d.symbols_) == ["S0", "S2", "S4", "S5"]
    assert d.missing_report_.dropped_symbols == ("S1", "S3")
    f = SampleCovariance(on_missing="ffill").fit(r)
    assert "S3" in f.symbols_ and "S1" not in f.symbols_
    assert f.missing_report_.filled_cells == {"S3": 1}


def test_params_and_clone():
    from sklearn.base import clone

    est = LedoitWolf(target="constant_correlation")
    c = clone(est)
    assert c.get_params()["target"] == "constant_correlation" and c is not est
    assert not hasattr(c, "covariance_")
    with pytest.raises(ValidationError):
        LedoitWolf(target="nope").fit(_returns())


def test_dense_estimators_give_the_factored_form():
    r = _returns(t=80, n=8)
    lw = LedoitWolf().fit(r)
    exact = lw.factored()
    np.testing.assert_allclose(exact.covariance(), lw.covariance_, rtol=1e-10, atol=1e-18)
    assert list(exact.symbols) == list(r.columns)
    low = lw.factored(rank=3)
    assert low.n_factors == 3
    np.testing.assert_allclose(np.diag(low.covariance()), np.diag(lw.covariance_), rtol=1e-10)
    with pytest.raises(ValidationError) as e:
        lw.factored(rank=0)
    assert e.value.field == "rank"
