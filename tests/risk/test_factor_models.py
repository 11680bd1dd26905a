import numpy as np
import pandas as pd
import pytest
from _synthetic import synthetic_market
from sklearn.decomposition import PCA

from keel.errors import DataError, ValidationError
from keel.risk.base import FactorCovariance, FactorRiskModel
from keel.risk.factor_model import StatisticalFactorModel, ewma_factor_covariance
from keel.risk.fundamental import FundamentalFactorModel
from keel.risk.styles import Style, standardize


@pytest.fixture(scope="module")
def synth():
    return synthetic_market(n_days=420, n_assets=60, n_sectors=4, seed=1)


@pytest.fixture(scope="module")
def fitted(synth):
    return FundamentalFactorModel().fit(synth[0])


def _constrained_wls_brute(y, x, v, c):
    """min sum v (y - X f)^2 s.t. c'f = 0, by null-space reparametrisation and lstsq."""
    q, _ = np.linalg.qr(c[:, None], mode="complete")
    ns = q[:, 1:]  # basis of {f: c'f = 0}
    sw = np.sqrt(v)
    g, *_ = np.linalg.lstsq((x @ ns) * sw[:, None], y * sw, rcond=None)
    return ns @ g


def test_fundamental_factor_returns_match_day_by_day_brute_force(synth, fitted):
    market, _ = synth
    mod = fitted
    assert isinstance(mod, FactorRiskModel)
    r = market.returns
    styles = mod.styles_
    capw = market.market_caps.iloc[1:].to_numpy()  # means and sector constraint: caps
    adv = market.adv_notional.iloc[1:].to_numpy()  # regression weights: sqrt(ADV)
    from keel.risk.styles import raw_style

    z = np.stack([standardize(raw_style(market, s).to_numpy(), capw) for s in styles], axis=2)
    sectors = mod.sectors_
    sec_names = sorted(sectors.unique())
    dummies = (sectors.to_numpy()[:, None] == np.array(sec_names)[None, :]).astype(float)
    for day in [mod.regression_dates_[0], mod.regression_dates_[57], mod.regression_dates_[-1]]:
        t = r.index.get_loc(day)
        x = np.hstack([np.ones((r.shape[1], 1)), dummies, z[t - 1]])
        v = np.sqrt(adv[t - 1])
        c = np.concatenate([[0.0], capw[t - 1] @ dummies, np.zeros(len(styles))])
        f = _constrained_wls_brute(r.iloc[t].to_numpy(), x, v, c)
        np.testing.assert_allclose(mod.factor_returns_.loc[day].to_numpy(), f, atol=1e-12)
        e = r.iloc[t].to_numpy() - x @ f
        np.testing.assert_allclose(mod.specific_returns_.loc[day].to_numpy(), e, atol=1e-12)


def test_fundamental_recovers_the_known_structure(synth, fitted):
    truth = synth[1]
    mod = fitted
    fr = mod.factor_returns_
    n_days = len(fr)
    true_m = truth["market"][-n_days:]
    # the market factor is the cap-weighted universe: follows the true market closely
    assert np.corrcoef(fr["market"], true_m)[0, 1] > 0.85
    g = truth["sector"][-n_days:]
    # sector factors are returns relative to the market (the sector-sum constraint)
    assert np.corrcoef(fr["sector:Sec2"], g[:, 2] - g.mean(axis=1))[0, 1] > 0.7
    # specific volatilities line up with the truth
    sv = np.sqrt(mod.specific_variance_.to_numpy())
    assert np.corrcoef(sv, truth["spec_vol"])[0, 1] > 0.8
    assert 0.2 < mod.mean_r2_ < 1.0
    assert set(mod.factor_groups_) == {"market", "sector", "style"}
    # exposures: market 1, exactly one sector per name
    b = mod.exposures_
    assert (b["market"] == 1).all()
    assert (b.filter(like="sector:").sum(axis=1) == 1).all()
    # styles standardised: equal-weighted std one
    assert np.allclose(b[[s.value for s in mod.styles_]].std(ddof=0), 1.0, atol=0.2)


def test_factored_form_equals_brute_force_covariance(fitted):
    fc = fitted.factored()
    assert isinstance(fc, FactorCovariance)
    b = fitted.exposures_.to_numpy()
    f = fitted.factor_covariance_.to_numpy()
    d = fitted.specific_variance_.to_numpy()
    dense = np.zeros((len(d), len(d)))
    for i in range(len(d)):
        for j in range(len(d)):
            dense[i, j] = sum(b[i, k] * f[k, m] * b[j, m]
                              for k in range(f.shape[0]) for m in range(f.shape[0]))
        dense[i, i] += d[i]
    np.testing.assert_allclose(fitted.covariance().to_numpy(), dense, rtol=1e-10, atol=1e-18)
    w = np.random.default_rng(0).normal(size=len(d))
    assert fc.portfolio_variance(w) == pytest.approx(w @ dense @ w, rel=1e-10)
    assert fitted.predict_volatility(w) == pytest.approx(np.sqrt(w @ dense @ w), rel=1e-10)
    assert np.linalg.eigvalsh(f).min() >= -1e-15


def test_factor_covariance_ewma_and_newey_west_brute_force():
    f = np.random.default_rng(3).normal(size=(300, 3)) * 0.01
    hl, lags = 30.0, 2
    lam = 0.5 ** (1 / hl)
    t = len(f)
    w = np.array([lam ** (t - 1 - i) for i in range(t)])

    def gamma(lag):
        ww = w[lag:] / w[lag:].sum()
        return sum(ww[i] * np.outer(f[lag + i], f[i]) for i in range(t - lag))

    ref = gamma(0) + sum((1 - lag / (lags + 1)) * (gamma(lag) + gamma(lag).T)
                         for lag in range(1, lags + 1))
    got, _ = ewma_factor_covariance(f, hl, lags)
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_fundamental_options_and_errors(synth):
    market, _ = synth
    cap = FundamentalFactorModel(weighting="sqrt_cap", styles=["beta", "size"], window=100,
                                 newey_west_lags=2).fit(market)
    assert len(cap.factor_returns_) == 100
    assert list(cap.factor_groups_[cap.factor_groups_ == "style"].index) == ["beta", "size"]
    nocap, _ = synthetic_market(n_days=300, n_assets=30, with_caps=False, seed=2)
    with pytest.raises(ValidationError) as e:
        FundamentalFactorModel(weighting="sqrt_cap").fit(nocap)
    assert e.value.field == "weighting"
    with pytest.raises(ValidationError) as e:
        FundamentalFactorModel(styles=["beta", "nope"]).fit(market)
    assert e.value.field == "styles"
    with pytest.raises(ValidationError) as e:
        FundamentalFactorModel().fit(market.returns)
    assert e.value.field == "market"
    short, _ = synthetic_market(n_days=120, n_assets=30, seed=3)
    with pytest.raises(DataError) as e:
        FundamentalFactorModel().fit(short)
    assert e.value.field == "returns"
    # without momentum the 252-day window is not needed
    ok = FundamentalFactorModel(styles=[Style.VOLATILITY, Style.REVERSAL]).fit(short)
    assert len(ok.factor_returns_) > 50
    with pytest.raises(ValidationError) as e:
        FundamentalFactorModel(specific_shrinkage=2).fit(market)
    assert e.value.field == "specific_shrinkage"


def test_fundamental_refuses_a_constant_series(synth):
    market, _ = synth
    px = market.prices.copy()
    px["S0003"] = 10.0
    from keel.data.market import MarketData

    bad = MarketData(px, market.volumes, sectors=market.sectors)
    with pytest.raises(DataError) as e:
        FundamentalFactorModel().fit(bad)
    assert e.value.symbol == "S0003"


def test_statistical_model_matches_sklearn_pca(synth):
    r = synth[0].returns
    mod = StatisticalFactorModel(n_factors=5).fit(r)
    pca = PCA(n_components=5).fit(r.to_numpy())
    np.testing.assert_allclose(np.diag(mod.factor_covariance_), pca.explained_variance_,
                               rtol=1e-10)
    np.testing.assert_allclose(mod.explained_variance_ratio_, pca.explained_variance_ratio_,
                               rtol=1e-10)
    b = mod.exposures_.to_numpy()
    np.testing.assert_allclose(np.abs(b.T), np.abs(pca.components_), atol=1e-10)
    # the model reproduces the sample variances exactly (no floor binding here)
    s = np.cov(r.to_numpy(), rowvar=False)
    np.testing.assert_allclose(np.diag(mod.covariance().to_numpy()), np.diag(s), rtol=1e-10)
    np.testing.assert_allclose(mod.factor_returns_.cov().to_numpy(),
                               mod.factor_covariance_.to_numpy(), atol=1e-14)


def test_statistical_model_explained_variance_rule(synth):
    r = synth[0].returns
    mod = StatisticalFactorModel(explained_variance=0.6).fit(r)
    cum = np.cumsum(PCA().fit(r.to_numpy()).explained_variance_ratio_)
    assert mod.n_factors_ == int(np.argmax(cum >= 0.6)) + 1
    assert mod.factored().n_factors == mod.n_factors_
    with pytest.raises(ValidationError) as e:
        StatisticalFactorModel(n_factors=0).fit(r)
    assert e.value.field == "n_factors"
    with pytest.raises(ValidationError) as e:
        StatisticalFactorModel().predict_volatility(np.ones(3))
    assert e.value.field == "fit"
    with pytest.raises(DataError) as e:
        StatisticalFactorModel().fit(r.iloc[:2])
    assert e.value.field == "returns"


def test_fundamental_on_real_sp500(shared_data):
    from _sp500 import sp500_market

    market = sp500_market(str(shared_data))
    mod = FundamentalFactorModel().fit(market)
    assert len(mod.regression_dates_) > 900
    assert mod.exposures_.shape[0] == market.n_assets
    assert 0.15 < mod.mean_r2_ < 0.6
    w = pd.Series(1.0 / market.n_assets, index=market.symbols)
    fc = mod.factored()
    x = fc.exposures.T @ w.to_numpy()
    share = x @ fc.factor_covariance @ x / fc.portfolio_variance(w.to_numpy())
    assert share > 0.9
    vol = mod.predict_volatility(w, annualize=True)
    assert 0.05 < vol < 0.3


def test_fundamental_on_the_keel_data_synthetic_market():
    from keel.data.synthetic import generate_market

    sm = generate_market(n_assets=200, n_days=420, seed=11)
    mod = FundamentalFactorModel().fit(sm.market)
    truth = sm.truth
    sv_true = np.sqrt(truth.specific_variance.reindex(mod.exposures_.index))
    sv_fit = np.sqrt(mod.specific_variance_)
    assert np.corrcoef(sv_true, sv_fit)[0, 1] > 0.85
    fitted_beta = mod.exposures_["beta"]
    assert np.corrcoef(fitted_beta, truth.betas.reindex(fitted_beta.index))[0, 1] > 0.75
    w = np.full(200, 1 / 200)
    true_vol = np.sqrt(w @ truth.covariance().to_numpy() @ w)
    m_t = float(np.sqrt(np.mean(truth.vol_multiplier.iloc[-60:] ** 2)))
    assert 0.85 < mod.predict_volatility(w) / (true_vol * m_t) < 1.15


def test_style_helpers_match_pandas(synth):
    from keel.risk.styles import _trailing_mean, _trailing_sum

    dv = synth[0].dollar_volumes
    np.testing.assert_allclose(_trailing_mean(dv, 21).to_numpy(),
                               dv.rolling(21, min_periods=21).mean().to_numpy(), rtol=1e-9)
    x = synth[0].log_returns.to_numpy()
    got = _trailing_sum(x, 231, skip=21)
    t = 300
    np.testing.assert_allclose(got[t], x[t - 251:t - 20].sum(axis=0), rtol=1e-10, atol=1e-14)
    assert np.isnan(got[250]).all() and np.isfinite(got[251]).all()
