"""Synthetic market: determinism, the exact factor identity, stylised facts, validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from keel.data.synthetic import SyntheticConfig, generate_market, synthetic_market
from keel.errors import ValidationError


@pytest.fixture(scope="module")
def sm():
    return generate_market(n_assets=300, n_days=1000, seed=11)


def test_same_seed_same_market_other_seed_differs():
    a = generate_market(n_assets=20, n_days=50, seed=3)
    b = generate_market(n_assets=20, n_days=50, seed=3)
    c = generate_market(n_assets=20, n_days=50, seed=4)
    for name in ("prices", "volumes", "spreads", "market_caps"):
        pd.testing.assert_frame_equal(getattr(a.market, name), getattr(b.market, name))
    pd.testing.assert_series_equal(a.market.sectors, b.market.sectors)
    assert not np.allclose(a.market.prices, c.market.prices)
    g1 = generate_market(n_assets=20, n_days=50, seed=np.random.default_rng(5))
    g2 = generate_market(n_assets=20, n_days=50, seed=np.random.default_rng(5))
    pd.testing.assert_frame_equal(g1.market.prices, g2.market.prices)


def test_stamped_at_nyse_closes():
    md = synthetic_market(5, 300, seed=1, start="2013-01-02")
    idx = md.prices.index
    assert str(idx.tz) == "UTC"
    assert idx[0] == pd.Timestamp("2013-01-02 21:00", tz="UTC")
    assert pd.Timestamp("2013-11-29 18:00", tz="UTC") in idx  # half day
    assert pd.Timestamp("2013-11-28 21:00", tz="UTC") not in idx  # Thanksgiving
    assert pd.Timestamp("2013-03-11 20:00", tz="UTC") in idx  # DST


def test_returns_are_exactly_the_stated_factor_model(sm):
    t = sm.truth
    b = t.exposures.to_numpy()
    model = t.factor_returns.to_numpy() @ b.T + t.specific_returns.to_numpy()
    np.testing.assert_allclose(sm.market.log_returns.to_numpy(), model, atol=1e-10)
    assert list(t.exposures.columns[:2]) == ["market", "sector:Information Technology"]
    assert (t.exposures.filter(like="sector:").sum(axis=1) == 1).all()
    assert np.allclose(np.diag(t.factor_covariance.to_numpy()) > 0, True)


def test_factor_returns_are_recovered_by_cross_sectional_regression(sm):
    b = sm.truth.exposures.to_numpy()
    r = sm.market.log_returns.to_numpy()
    f_hat = np.linalg.lstsq(b, r.T, rcond=None)[0].T
    f = sm.truth.factor_returns.to_numpy()
    cols = list(sm.truth.exposures.columns)

    def corr(x, y):
        return np.corrcoef(x, y)[0, 1]

    styles = [k for k, c in enumerate(cols) if c.startswith("style:")]
    assert min(corr(f_hat[:, k], f[:, k]) for k in styles) > 0.85
    assert corr(f_hat[:, 0], f[:, 0]) > 0.85  # market
    # Market and sector dummies are nearly collinear (betas cluster around 1), so what is
    # sharply identified per sector is its total move: mean beta x market + sector factor.
    beta = sm.truth.betas.to_numpy()
    for k, c in enumerate(cols):
        if c.startswith("sector:"):
            members = sm.truth.exposures[c].to_numpy() == 1
            bb = beta[members].mean()
            total_hat = bb * f_hat[:, 0] + f_hat[:, k]
            assert corr(total_hat, bb * f[:, 0] + f[:, k]) > 0.85, c


def test_unconditional_covariance_matches_sample():
    s = generate_market(n_assets=40, n_days=3000, seed=2)
    sample = np.cov(s.market.log_returns.to_numpy(), rowvar=False)
    true = s.truth.covariance().to_numpy()
    w = np.full(40, 1 / 40)
    assert w @ sample @ w == pytest.approx(w @ true @ w, rel=0.2)
    assert np.diag(sample).mean() == pytest.approx(np.diag(true).mean(), rel=0.2)


def test_fat_tails_and_volatility_clustering(sm):
    t = sm.truth
    z = (t.specific_returns.div(t.vol_multiplier, axis=0)
         / np.sqrt(t.specific_variance)).to_numpy().ravel()
    assert np.std(z) == pytest.approx(1.0, rel=0.05)
    assert stats.kurtosis(z) > 3  # Student-t(5): excess kurtosis 6 (Gaussian: 0)
    mkt = sm.market.log_returns.mean(axis=1).to_numpy()
    assert stats.kurtosis(mkt) > 0.2
    a = np.abs(mkt)
    assert np.corrcoef(a[1:], a[:-1])[0, 1] > 0.05  # |r| autocorrelated


def test_liquidity_spreads_and_betas_follow_size(sm):
    md = sm.market
    log_cap = np.log(md.market_caps.iloc[0])
    adv = np.log(md.adv_notional.iloc[-1])
    spread = np.log(md.spreads.mean())
    assert np.corrcoef(log_cap, adv)[0, 1] > 0.5
    assert np.corrcoef(adv, spread)[0, 1] < -0.7
    assert (md.spreads > 0).all().all()
    assert np.corrcoef(md.betas.iloc[-1], sm.truth.betas)[0, 1] > 0.7
    absr = md.log_returns.abs().to_numpy().ravel()
    vol = np.log(md.volumes.iloc[1:]).sub(np.log(md.volumes.iloc[1:]).mean()).to_numpy().ravel()
    assert np.corrcoef(absr, vol)[0, 1] > 0.1  # volume rises with |return|
    assert set(md.sectors) <= {s for s in md.sectors} and md.sectors.nunique() >= 8


def test_bad_configuration_names_the_field():
    with pytest.raises(ValidationError) as e:
        generate_market(n_assets=1)
    assert e.value.field == "n_assets"
    with pytest.raises(ValidationError) as e:
        generate_market(colour="red")
    assert e.value.field == "colour"
    with pytest.raises(ValidationError) as e:
        SyntheticConfig(t_dof=2.0)
    assert e.value.field == "t_dof"
    with pytest.raises(ValidationError) as e:
        SyntheticConfig(specific_vol_annual=-0.1)
    assert e.value.field == "specific_vol_annual"
